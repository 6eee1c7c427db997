"""API settings: database, HTTP server, access, workflow, and the API's view of the config."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from alerting.settings import RedisSettings
from camera_adapters.spec import CameraSpec

Tier = Literal["district", "street", "community"]
TIERS: tuple[str, ...] = ("district", "street", "community")


class DatabaseSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        "sqlite:///var/sharpeyes.db",
        description="SQLAlchemy URL: sqlite:///path.db (default) or "
        "postgresql+psycopg://user:password@host:5432/sharpeyes.",
    )
    migrate_on_start: bool = Field(
        True, description="Apply pending schema migrations when the API starts."
    )
    echo: bool = Field(False, description="Log every SQL statement (debugging).")

    @field_validator("url")
    @classmethod
    def _supported(cls, url: str) -> str:
        if not url.startswith(("sqlite:", "postgresql")):
            raise ValueError(
                f"unsupported database URL '{url.split(':', 1)[0]}:…': use sqlite:///file.db "
                "or postgresql+psycopg://user:password@host/db"
            )
        return url


class CameraProbeSettings(BaseModel):
    """Guards for the camera connection test, which opens a socket to a URL a user typed.

    Without them the probe would be a server-side request forgery tool: anyone allowed to
    test a camera could scan the API host's internal network. Private, loopback and
    link-local addresses are refused unless their network is listed here.
    """

    model_config = ConfigDict(extra="forbid")

    schemes: list[Literal["rtsp", "rtsps"]] = Field(
        default_factory=lambda: ["rtsp", "rtsps"], description="URL schemes the probe may open."
    )
    allowed_networks: list[str] = Field(
        default_factory=list,
        description="CIDR networks the probe may reach although they are private, loopback or "
        "link-local, e.g. the camera VLAN 10.20.0.0/16. Public addresses are always allowed.",
    )
    timeout_s: float = Field(5.0, gt=0.0, le=30.0, description="Connect and answer timeout.")

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, networks: list[str]) -> list[str]:
        for network in networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(
                    f"'{network}' is not a CIDR network: write it like 10.20.0.0/16"
                ) from None
        return networks


class HttpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8080, ge=1, le=65535)
    public_url: str | None = Field(
        None, description="URL operators use to reach the API, if behind a proxy."
    )
    camera_probe: CameraProbeSettings = Field(default_factory=CameraProbeSettings)


class ConsumerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Consume the alert stream in this API process.")
    name: str | None = Field(None, description="Consumer name; default api-<host>-<pid>.")
    batch: int = Field(50, ge=1, le=1000, description="Entries read per XREADGROUP.")
    block_ms: int = Field(1000, ge=10, le=60_000)
    claim_idle_s: float = Field(
        60.0,
        ge=0.1,
        le=86_400,
        description="Entries another consumer has held unacknowledged this long are taken "
        "over (XAUTOCLAIM): the work of a crashed API process. Keep it well above the time "
        "one batch takes to record.",
    )
    claim_interval_s: float = Field(
        15.0, ge=0.1, le=3600, description="How often idle entries are looked for (and at start)."
    )
    max_deliveries: int = Field(
        5,
        ge=1,
        le=100,
        description="An entry delivered this many times without success (failures, or "
        "consumers that died on it) goes to the dead-letter stream.",
    )
    retry_delay_s: float = Field(
        1.0, ge=0.0, le=600, description="Wait before trying a failed entry again."
    )
    forget_idle_s: float = Field(
        86_400,
        ge=0,
        description="Consumers with nothing pending that have been silent this long (API "
        "processes that are gone) are removed from the group; 0 keeps them.",
    )


class BootstrapAdmin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, description="Use ${ENV_VAR} to keep it out of the file.")


class AuthSettings(BaseModel):
    """Users log in with the OAuth2 password flow and get a signed (HS256) bearer token."""

    model_config = ConfigDict(extra="forbid")

    secret_key: str | None = Field(
        None,
        min_length=32,
        description="Key that signs tokens (at least 32 characters; use ${ENV_VAR}). Unset: a "
        "random key is generated once and kept in the database, shared by all API processes.",
    )
    token_ttl_s: int = Field(
        12 * 3600, ge=60, le=30 * 24 * 3600, description="How long a login token stays valid."
    )
    bootstrap_admin: BootstrapAdmin | None = Field(
        None,
        description="Create this admin (scoped to the whole organisation) at start if no user "
        "exists yet; or run `sharpeyes users create --role admin`.",
    )


class EscalationSettings(BaseModel):
    """When an unhandled case moves up to the parent centre.

    The SLA clock starts when a case reaches a centre (created, or escalated to it).
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Run the escalation check in this API process.")
    acknowledge_sla_s: dict[str, float] = Field(
        default_factory=lambda: {"notice": 900.0, "warning": 300.0, "critical": 120.0},
        description="Seconds a case of each severity may stay `reported` at one centre.",
    )
    dispatch_sla_s: dict[str, float] = Field(
        default_factory=lambda: {"notice": 1800.0, "warning": 900.0, "critical": 300.0},
        description="Seconds a case of each severity may stay `acknowledged` at one centre.",
    )
    check_interval_s: float = Field(5.0, gt=0.0, le=3600.0)

    @field_validator("acknowledge_sla_s", "dispatch_sla_s")
    @classmethod
    def _severities(cls, slas: dict[str, float]) -> dict[str, float]:
        for severity, seconds in slas.items():
            if severity not in ("notice", "warning", "critical"):
                raise ValueError(f"unknown severity '{severity}': use notice, warning, critical")
            if seconds <= 0:
                raise ValueError(f"the SLA for '{severity}' must be positive, got {seconds}")
        return slas


class RoutingSettings(BaseModel):
    """Which tier of centre handles a case of each severity: the linkage centre's policy."""

    model_config = ConfigDict(extra="forbid")

    tier_by_severity: dict[str, Tier] = Field(
        default_factory=lambda: {
            "notice": "community",
            "warning": "street",
            "critical": "district",
        },
        description="Tier (district | street | community) that handles each severity.",
    )


class UnitSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    kind: Literal["police", "city_management", "joint_patrol", "grid_workers", "other"] = Field(
        description="police (station), city_management, joint_patrol (team), grid_workers "
        "(community grid workers), other."
    )
    phone: str | None = Field(None, max_length=64)


class CentreSpec(BaseModel):
    """A centre of the organisation tree: district → street sub-centres → communities."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    code: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Stable short code; default derived from the name.",
    )
    grid_cells: list[str] = Field(
        default_factory=list, description="Grid cells (网格) a community workstation owns."
    )
    units: list[UnitSpec] = Field(default_factory=list)
    children: list[CentreSpec] = Field(default_factory=list)


class OrganisationSpec(BaseModel):
    """The district centre and everything under it (``organisation:`` in the config)."""

    model_config = ConfigDict(extra="forbid")

    district: CentreSpec

    @field_validator("district")
    @classmethod
    def _three_tiers(cls, district: CentreSpec) -> CentreSpec:
        if district.grid_cells:
            raise ValueError("grid cells belong to community workstations, not to the district")
        for i, street in enumerate(district.children):
            if street.grid_cells:
                raise ValueError(
                    f"children[{i}] ('{street.name}'): grid cells belong to community "
                    "workstations, not to a street sub-centre"
                )
            for j, community in enumerate(street.children):
                if community.children:
                    raise ValueError(
                        f"children[{i}].children[{j}] ('{community.name}'): a community "
                        "workstation is the lowest tier and has no children"
                    )
        return district


class ApiConfig(BaseModel):
    """Everything the API process needs."""

    model_config = ConfigDict(extra="forbid")

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    consumer: ConsumerSettings = Field(default_factory=ConsumerSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    escalation: EscalationSettings = Field(default_factory=EscalationSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    organisation: OrganisationSpec | None = None
    cameras: list[CameraSpec] = Field(default_factory=list)
    feed_retention_days: float = Field(
        30.0, gt=0, description="How long live-feed events are kept for resuming consoles."
    )
    feed_channel: str = Field(
        "sharpeyes:feed", description="Redis pub/sub channel that wakes the live feeds."
    )
