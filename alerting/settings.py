"""Redis connection and stream settings (the ``redis:`` config section)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class RedisSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="redis://[user:password@]host:port/db (rediss:// for TLS).",
    )
    stream: str = Field("sharpeyes:alerts", min_length=1, description="Alert stream key.")
    maxlen: int = Field(
        100_000, ge=100, description="Approximate stream retention (XADD MAXLEN ~)."
    )
    snapshot_ttl_s: int = Field(
        7 * 24 * 3600, ge=60, description="How long snapshots stay in Redis."
    )
    consumer_group: str = Field("sharpeyes-api", min_length=1)
    dead_letter_stream: str = Field("sharpeyes:alerts:dead", min_length=1)
    health_key: str = Field(
        "sharpeyes:camera-health", min_length=1, description="Hash of camera health reports."
    )

    @field_validator("url")
    @classmethod
    def _scheme(cls, url: str) -> str:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                f"'{url}' is not a Redis URL: use redis://host:port/db, rediss:// or unix://"
            )
        return url

    def snapshot_key(self, event_id: str) -> str:
        return f"{self.stream}:snapshot:{event_id}"
