"""Publishing alert events (and their snapshots) to a Redis Stream."""

from __future__ import annotations

import logging
import time

import redis

from alerting.events import AlertEvent, SnapshotRef
from alerting.settings import RedisSettings

log = logging.getLogger(__name__)


class PublishError(RuntimeError):
    pass


class AlertPublisher:
    """XADD with approximate trimming; the snapshot is stored first under a TTL'd key.

    The snapshot is best effort: an event is never held back because its picture could not
    be stored — operators need the alert more than the image.
    """

    def __init__(
        self,
        client: redis.Redis,
        settings: RedisSettings,
        *,
        attempts: int = 3,
        retry_delay_s: float = 0.5,
    ) -> None:
        self.client = client
        self.settings = settings
        self.attempts = attempts
        self.retry_delay_s = retry_delay_s

    @classmethod
    def from_settings(cls, settings: RedisSettings) -> AlertPublisher:
        client = redis.Redis.from_url(
            settings.url, socket_timeout=5, socket_connect_timeout=5, decode_responses=False
        )
        return cls(client, settings)

    def store_snapshot(
        self, event_id: str, jpeg: bytes, width: int, height: int
    ) -> SnapshotRef | None:
        key = self.settings.snapshot_key(event_id)
        try:
            self.client.set(key, jpeg, ex=self.settings.snapshot_ttl_s)
        except redis.RedisError as error:
            log.warning("snapshot not stored", extra={"key": key, "error": str(error)})
            return None
        return SnapshotRef(key=key, width=width, height=height)

    def publish(self, event: AlertEvent) -> str:
        """Append the event to the stream; returns the entry id."""
        last_error: Exception | None = None
        for attempt in range(1, self.attempts + 1):
            try:
                entry_id = self.client.xadd(
                    self.settings.stream,
                    event.stream_fields(),  # type: ignore[arg-type]
                    maxlen=self.settings.maxlen,
                    approximate=True,
                )
                entry = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                log.info(
                    "alert published",
                    extra={
                        "event_id": event.event_id,
                        "kind": event.kind.value,
                        "camera": event.camera_id,
                        "zone": event.zone_id,
                        "count": event.count,
                        "entry": entry,
                    },
                )
                return entry
            except redis.RedisError as error:
                last_error = error
                if attempt < self.attempts:
                    time.sleep(self.retry_delay_s * attempt)
        raise PublishError(f"could not publish {event.idempotency_key}: {last_error}")

    def close(self) -> None:
        self.client.close()
