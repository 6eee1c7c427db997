"""API settings: database, HTTP server, and the API's view of the whole config."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from alerting.settings import RedisSettings
from camera_adapters.spec import CameraSpec


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


class HttpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8080, ge=1, le=65535)
    public_url: str | None = Field(
        None, description="URL operators use to reach the API, if behind a proxy."
    )


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


class ApiConfig(BaseModel):
    """Everything the API process needs."""

    model_config = ConfigDict(extra="forbid")

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    consumer: ConsumerSettings = Field(default_factory=ConsumerSettings)
    cameras: list[CameraSpec] = Field(default_factory=list)
