"""Publishing alert events (and their snapshots) to a Redis Stream."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis

from alerting.events import AlertEvent, SnapshotRef
from alerting.settings import RedisSettings

log = logging.getLogger(__name__)

# XADD unless this idempotency key was published before, atomically: an event sent twice
# (the reply to the first XADD was lost, or the outbox replays an event after a crash)
# becomes one stream entry. Both keys share the stream's hash tag in Redis Cluster.
_XADD_ONCE = """
local seen = redis.call('GET', KEYS[2])
if seen then
  return {0, seen}
end
local fields = {}
for i = 3, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(fields))
redis.call('SET', KEYS[2], id, 'EX', ARGV[2])
return {1, id}
"""


class PublishError(RuntimeError):
    pass


@dataclass(frozen=True)
class Delivery:
    entry_id: str
    duplicate: bool  # Redis already had this idempotency key: nothing was added


class AlertPublisher:
    """XADD with approximate trimming and idempotency-key deduplication.

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
        self._xadd_once = client.register_script(_XADD_ONCE)

    @classmethod
    def from_settings(cls, settings: RedisSettings) -> AlertPublisher:
        client = redis.Redis.from_url(
            settings.url, socket_timeout=5, socket_connect_timeout=5, decode_responses=False
        )
        return cls(client, settings)

    def store_snapshot(
        self, event_id: str, jpeg: bytes, width: int, height: int, *, strict: bool = False
    ) -> SnapshotRef | None:
        """SET the JPEG under a TTL'd key; None if Redis refused it.

        With ``strict``, an unreachable Redis raises (the caller keeps the picture and tries
        again later) while a refusal (e.g. out of memory) still only drops the picture.
        """
        key = self.settings.snapshot_key(event_id)
        try:
            self.client.set(key, jpeg, ex=self.settings.snapshot_ttl_s)
        except (redis.ConnectionError, redis.TimeoutError):
            if strict:
                raise
            log.warning("snapshot not stored: Redis unreachable", extra={"key": key})
            return None
        except redis.RedisError as error:
            log.warning("snapshot not stored", extra={"key": key, "error": str(error)})
            return None
        return SnapshotRef(key=key, width=width, height=height)

    def deliver(self, event: AlertEvent) -> Delivery:
        """One attempt to append the event to the stream; raises ``redis.RedisError``."""
        fields = event.stream_fields()
        if self.settings.dedup_ttl_s > 0:
            args: list[str | int] = [self.settings.maxlen, self.settings.dedup_ttl_s]
            for name, value in fields.items():
                args += [name, value]
            added, entry_id = self._xadd_once(
                keys=[self.settings.stream, self.settings.dedup_key(event.idempotency_key)],
                args=args,
            )
            delivery = Delivery(_text(entry_id), duplicate=not added)
        else:
            entry_id = self.client.xadd(
                self.settings.stream,
                fields,  # type: ignore[arg-type]
                maxlen=self.settings.maxlen,
                approximate=True,
            )
            delivery = Delivery(_text(entry_id), duplicate=False)
        log.info(
            "alert already in the stream" if delivery.duplicate else "alert published",
            extra={
                "event_id": event.event_id,
                "key": event.idempotency_key,
                "kind": event.kind.value,
                "camera": event.camera_id,
                "zone": event.zone_id,
                "count": event.count,
                "entry": delivery.entry_id,
            },
        )
        return delivery

    def publish(self, event: AlertEvent) -> str:
        """Append the event with a few retries; returns the entry id or raises PublishError."""
        last_error: Exception | None = None
        for attempt in range(1, self.attempts + 1):
            try:
                return self.deliver(event).entry_id
            except redis.RedisError as error:
                last_error = error
                if attempt < self.attempts:
                    time.sleep(self.retry_delay_s * attempt)
        raise PublishError(f"could not publish {event.idempotency_key}: {last_error}")

    def close(self) -> None:
        self.client.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
