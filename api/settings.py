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


class ApiConfig(BaseModel):
    """Everything the API process needs."""

    model_config = ConfigDict(extra="forbid")

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    consumer: ConsumerSettings = Field(default_factory=ConsumerSettings)
    cameras: list[CameraSpec] = Field(default_factory=list)
