"""Redis connection, stream and delivery settings (the ``redis:`` config section)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MIB = 1024 * 1024


class OutboxSettings(BaseModel):
    """The pipeline worker's local outbox: where alerts wait while Redis is unreachable."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        "var/outbox/{worker_id}.outbox",
        min_length=1,
        description="Outbox file of a pipeline worker; {worker_id} is replaced by "
        "pipeline.worker_id. Relative paths are relative to the working directory. "
        "Each worker needs its own file (it is locked while in use).",
    )
    max_bytes: int = Field(
        256 * MIB,
        ge=MIB,
        description="Largest size of the outbox file; events that do not fit are dropped "
        "with an error log and the sharpeyes_alerts_failed metric.",
    )
    snapshot_max_bytes: int = Field(
        128 * MIB,
        ge=0,
        description="Snapshots are kept with spooled events only while the outbox stays "
        "within this size; past it, events are spooled without their picture.",
    )
    fsync: bool = Field(
        True,
        description="fsync each event before publishing it (durable across power loss). "
        "Turn off only on disks where fsync is unbearably slow.",
    )
    retry_initial_s: float = Field(
        0.5, gt=0.0, le=60.0, description="First wait after a failed delivery to Redis."
    )
    retry_max_s: float = Field(
        5.0,
        gt=0.0,
        le=300.0,
        description="Longest wait between delivery attempts while Redis is unreachable "
        "(the replay starts at most this long after Redis returns).",
    )

    @field_validator("path")
    @classmethod
    def _placeholders(cls, path: str) -> str:
        unknown = set(re.findall(r"\{([^}]*)\}", path)) - {"worker_id"}
        if unknown:
            names = ", ".join(sorted(f"{{{name}}}" for name in unknown))
            raise ValueError(
                f"unknown placeholder {names} in '{path}': only {{worker_id}} is known"
            )
        return path

    @model_validator(mode="after")
    def _bounds(self) -> OutboxSettings:
        if self.retry_initial_s > self.retry_max_s:
            raise ValueError(
                f"retry_initial_s ({self.retry_initial_s}) is larger than retry_max_s "
                f"({self.retry_max_s}): the first wait cannot exceed the longest"
            )
        return self

    def path_for(self, worker_id: str) -> Path:
        """The outbox file of one worker (worker ids may hold characters unfit for paths)."""
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", worker_id) or "worker"
        return Path(self.path.replace("{worker_id}", safe))


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
    dedup_ttl_s: int = Field(
        7 * 24 * 3600,
        ge=0,
        description="How long Redis remembers an event's idempotency key, so that an event "
        "published twice (a retry after a lost reply, an outbox replay) is added to the "
        "stream once. 0 turns this off (the API still deduplicates).",
    )
    consumer_group: str = Field("sharpeyes-api", min_length=1)
    dead_letter_stream: str = Field("sharpeyes:alerts:dead", min_length=1)
    health_key: str = Field(
        "sharpeyes:camera-health", min_length=1, description="Hash of camera health reports."
    )
    camera_config_stream: str = Field(
        "sharpeyes:camera-config",
        min_length=1,
        description="Stream where the API publishes camera changes to pipeline workers "
        "(format: camera_adapters/config_messages.py).",
    )
    thumbnail_ttl_s: int = Field(
        120,
        ge=10,
        description="How long a camera's latest thumbnail (for drawing zones in the console) "
        "stays in Redis after its worker last refreshed it.",
    )
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)

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

    def thumbnail_key(self, camera_id: str) -> str:
        """The latest JPEG of a camera, refreshed by its pipeline worker with the health
        report, so the console can draw zones on the current view without the API decoding
        video."""
        return f"{self.health_key}:thumbnail:{camera_id}"

    def dedup_key(self, idempotency_key: str) -> str:
        """Shares the stream's hash tag, if it has one, so both live in one Cluster slot."""
        return f"{self.stream}:dedup:{idempotency_key}"
