"""The alert event schema (version 1).

Consumers must tolerate fields they do not know (``extra="ignore"``) so that a newer
pipeline can add information without breaking an older API; a change that alters the
meaning of an existing field bumps ``schema_version``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class EventKind(StrEnum):
    STARTED = "started"  # a gathering episode began: one per episode, never repeated
    ESCALATED = "escalated"  # the same episode reached a higher severity
    ENDED = "ended"  # the people dispersed


class Severity(StrEnum):
    """How serious a gathering is; rises with the count and the density (docs/gathering.md)."""

    NOTICE = "notice"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return SEVERITY_ORDER.index(self)


SEVERITY_ORDER = (Severity.NOTICE, Severity.WARNING, Severity.CRITICAL)


class Tier(StrEnum):
    """The linkage-centre tier that should handle an alert (the API routes on this)."""

    COMMUNITY = "community"  # community / village workstation (社区/村工作站)
    STREET = "street"  # street / town sub-centre (街道/镇分中心)
    DISTRICT = "district"  # district linkage centre (区联动中心)


TIER_FOR_SEVERITY = {
    Severity.NOTICE: Tier.COMMUNITY,
    Severity.WARNING: Tier.STREET,
    Severity.CRITICAL: Tier.DISTRICT,
}


class AlertLocation(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    district: str
    street: str
    community: str
    grid_cell: str
    address: str | None = None


class SnapshotRef(BaseModel):
    """Where the JPEG for this event is kept (a Redis key with a TTL)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    key: str
    content_type: str = "image/jpeg"
    width: int
    height: int


class PersonBox(BaseModel):
    """A detected person, in normalised image coordinates (x1, y1, x2, y2)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    box: tuple[float, float, float, float]
    score: float
    in_zone: bool = True


def new_event_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class AlertEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: int = SCHEMA_VERSION
    event_id: str = Field(default_factory=new_event_id)
    idempotency_key: str = Field(
        description="Stable for one event of one episode: '<episode_id>:<kind>:<seq>'. "
        "Retries and replays carry the same key, so consumers can deduplicate."
    )
    episode_id: str = Field(description="Shared by the started/escalated/ended events.")
    kind: EventKind
    rule: str = Field("sustained", description="sustained | sudden | cluster")
    severity: Severity = Severity.WARNING
    camera_id: str
    camera_name: str
    location: AlertLocation
    zone_id: str | None = None
    zone_name: str | None = None
    zone_polygon: list[tuple[float, float]] | None = None
    count: int = Field(ge=0, description="People counted in the zone at this event.")
    peak_count: int = Field(ge=0)
    threshold: int = Field(ge=0)
    density_per_m2: float | None = Field(
        None, description="People per m² on the ground (calibrated cameras only)."
    )
    tier: Tier | None = Field(
        None,
        description="The tier that should handle it, from the severity: notice → community "
        "workstation, warning → street sub-centre, critical → district centre.",
    )
    zone_area_m2: float | None = Field(None, description="Ground area of the zone or group.")
    count_rise: int | None = Field(
        None, description="For sudden gatherings: how many people more than the recent low."
    )
    rules: list[str] = Field(
        default_factory=list,
        description="Every rule that has confirmed this episode so far, e.g. sudden, sustained.",
    )
    reason: str | None = Field(None, description="Why this event was raised, for operators.")
    episode_started_at: datetime
    occurred_at: datetime = Field(description="Capture time of the frame that caused it.")
    ended_at: datetime | None = None
    snapshot: SnapshotRef | None = None
    people: list[PersonBox] = Field(default_factory=list)
    producer: str | None = Field(None, description="The pipeline worker that raised it.")

    def stream_fields(self) -> dict[str, str]:
        """The flat field map written with XADD."""
        return {
            "v": str(self.schema_version),
            "kind": self.kind.value,
            "key": self.idempotency_key,
            "event": self.model_dump_json(),
        }

    @classmethod
    def from_stream_fields(cls, fields: dict[str, str]) -> AlertEvent:
        """Parse an entry read from the stream; raises ValueError on malformed entries."""
        raw = fields.get("event")
        if raw is None:
            raise ValueError("stream entry has no 'event' field")
        version = fields.get("v", str(SCHEMA_VERSION))
        if not version.isdigit() or int(version) > SCHEMA_VERSION:
            raise ValueError(
                f"event schema version {version!r} is newer than this consumer understands "
                f"({SCHEMA_VERSION}); upgrade the API"
            )
        return cls.model_validate_json(raw)
