"""The alert stream consumer: a Redis consumer group turning events into cases.

Delivery is at least once, recording is exactly once in effect:

- An entry is acknowledged (XACK) only after the transaction that records it has committed;
  a crash in between redelivers it and the event's idempotency key (unique in the
  database) makes the second delivery a no-op.
- Each API process is a named consumer. On start and every ``claim_interval_s`` it takes
  over (XAUTOCLAIM) entries that any consumer has held unacknowledged for longer than
  ``claim_idle_s`` — the work of a process that died.
- Poison entries cannot block the rest: a malformed entry is dead-lettered at once; an entry
  that fails is retried after ``retry_delay_s`` while new entries keep flowing, and goes to
  the dead-letter stream (with the error) once Redis has delivered it ``max_deliveries``
  times. Redis keeps that delivery count, so it also catches entries whose consumers
  crashed on them, across processes and restarts.
- A fault of Redis or of the database is not the entry's fault: the entries in hand are
  retried from memory after a backoff, without counting as deliveries.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from alerting.events import AlertEvent
from alerting.settings import RedisSettings
from api.ingest import ingest_event
from api.metrics import ApiMetrics
from api.settings import ConsumerSettings

log = logging.getLogger(__name__)

# Fields the consumer adds to a dead-letter entry (the rest are the original entry's).
DEAD_LETTER_META = ("original_id", "error", "consumer", "deliveries", "dead_lettered_at")

# Longest wait between reconnection attempts: a returning Redis is noticed within this.
MAX_BACKOFF_S = 5.0

# Faults of the infrastructure rather than of an entry: retry the same entries later.
INFRASTRUCTURE_ERRORS = (
    redis.ConnectionError,
    redis.TimeoutError,
    OperationalError,
    InterfaceError,
)


def default_consumer_name() -> str:
    return f"api-{socket.gethostname()}-{os.getpid()}"


@dataclass
class ConsumerStats:
    consumed: int = 0
    duplicates: int = 0
    cases_created: int = 0
    dead_lettered: int = 0
    reclaimed: int = 0
    trimmed: int = 0
    failures: int = 0
    errors: int = 0
    last_error: str | None = None
    last_entry_id: str | None = None
    connected: bool = False
    lag: int | None = None
    pending: int | None = None
    dead_letters: int | None = None
    started_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Delivered:
    """A stream entry in this consumer's hands, with Redis' count of its deliveries."""

    entry_id: str
    fields: dict[str, str]
    deliveries: int = 1


class AlertConsumer:
    def __init__(
        self,
        redis_settings: RedisSettings,
        settings: ConsumerSettings,
        sessions: sessionmaker[Session],
        metrics: ApiMetrics | None = None,
    ) -> None:
        self.metrics = metrics or ApiMetrics()
        self.redis_settings = redis_settings
        self.settings = settings
        self.sessions = sessions
        self.name = settings.name or default_consumer_name()
        self.client = redis.Redis.from_url(
            redis_settings.url, socket_timeout=10, socket_connect_timeout=5, decode_responses=False
        )
        self.stats = ConsumerStats()
        self._stalled: list[Delivered] = []  # held back by a Redis or database fault
        self._retry_own_at: float | None = None  # when to re-read our failing entries
        self._next_claim = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stream(self) -> str:
        return self.redis_settings.stream

    @property
    def group(self) -> str:
        return self.redis_settings.consumer_group

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="alert-consumer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._leave_group()
        self.client.close()

    def _leave_group(self) -> None:
        """Remove this consumer from the group on a clean stop if it holds nothing."""
        try:
            for consumer in self.client.xinfo_consumers(self.stream, self.group):
                if _text(consumer["name"]) == self.name and int(consumer["pending"]) == 0:
                    self.client.xgroup_delconsumer(self.stream, self.group, self.name)
        except redis.RedisError:
            pass  # a consumer entry left behind is removed later by forget_idle_s

    # -- loop --------------------------------------------------------------------------
    def ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
            log.info("consumer group created", extra={"group": self.group, "stream": self.stream})
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                if not self.stats.connected:
                    self.ensure_group()
                    self.stats.connected = True
                    # After (re)connecting: our own unacknowledged entries first (a restart
                    # under the same name), then anything idle in the group.
                    self._retry_own_at = time.monotonic()
                    self._next_claim = 0.0
                    log.info("alert consumer connected", extra={"consumer": self.name})
                self.step()
                backoff = 0.5
            except (redis.ConnectionError, redis.TimeoutError) as error:
                self._record_error(f"redis: {error}")
                self.stats.connected = False
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            except (OperationalError, InterfaceError) as error:
                self._record_error(f"database: {error}")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            except redis.ResponseError as error:
                if "NOGROUP" in str(error):
                    # Redis lost the group (restarted without persistence, or deleted):
                    # recreate it from the start of whatever the stream still holds.
                    log.warning(
                        "consumer group missing; recreating it", extra={"group": self.group}
                    )
                    self.stats.connected = False
                else:
                    self._record_error(f"redis: {error}")
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_S)
            except Exception as error:  # the consumer thread must never die
                log.exception("alert consumer error")
                self._record_error(f"{type(error).__name__}: {error}")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    def step(self) -> None:
        """One turn: held-back entries, then due retries or claims, then new entries."""
        if self._stalled:
            self._handle_batch(self._stalled)
            return
        now = time.monotonic()
        if self._retry_own_at is not None and now >= self._retry_own_at:
            self._retry_own_at = None
            self.read_own_pending()
            return
        if now >= self._next_claim:
            self._next_claim = now + self.settings.claim_interval_s
            self.claim_idle()
            self.refresh_gauges()
            self.forget_departed()
            return
        wake = (
            self._next_claim
            if self._retry_own_at is None
            else min(self._next_claim, self._retry_own_at)
        )
        block_ms = max(10, min(self.settings.block_ms, int((wake - now) * 1000)))
        self.poll(block_ms=block_ms)

    def _record_error(self, message: str) -> None:
        self.stats.errors += 1
        self.stats.last_error = message
        log.warning("alert consumer error", extra={"error": message})

    # -- reading -----------------------------------------------------------------------
    def poll(self, *, block_ms: int | None = None) -> int:
        """Read and handle one batch of new entries; returns how many were handled."""
        response = self.client.xreadgroup(
            self.group,
            self.name,
            {self.stream: ">"},
            count=self.settings.batch,
            block=self.settings.block_ms if block_ms is None else block_ms,
        )
        batch = [
            Delivered(_text(entry_id), _fields(fields))
            for _stream, entries in response or []
            for entry_id, fields in entries
        ]
        self._handle_batch(batch)
        return len(batch)

    def read_own_pending(self) -> int:
        """Handle the entries this consumer holds unacknowledged (failed, or from a restart)."""
        handled = 0
        start = "0"
        while not self._stop.is_set():
            response = self.client.xreadgroup(
                self.group, self.name, {self.stream: start}, count=self.settings.batch
            )
            entries = [e for _stream, batch in response or [] for e in batch]
            if not entries:
                break
            start = _text(entries[-1][0])
            handled += self._handle_claimed(entries)
        return handled

    def claim_idle(self) -> int:
        """XAUTOCLAIM every entry idle longer than ``claim_idle_s`` and handle it."""
        min_idle_ms = int(self.settings.claim_idle_s * 1000)
        start = "0-0"
        claimed = 0
        while not self._stop.is_set():
            reply = self.client.xautoclaim(
                self.stream, self.group, self.name, min_idle_ms, start, count=self.settings.batch
            )
            next_id, entries = _text(reply[0]), reply[1]
            # Redis 7 returns the ids of pending entries that were trimmed from the stream in
            # a third element and drops them from the pending list itself.
            for entry_id in reply[2] if len(reply) > 2 else []:
                self._lost_to_trimming(_text(entry_id), acknowledge=False)
            live = [(entry_id, fields) for entry_id, fields in entries if entry_id is not None]
            if live:
                count = sum(1 for _id, fields in live if fields)
                claimed += count
                self.stats.reclaimed += count
                self.metrics.reclaimed.inc(count)
                log.info(
                    "took over idle alert entries",
                    extra={"consumer": self.name, "entries": count, "from_id": _text(live[0][0])},
                )
                self._handle_claimed(live)
            if next_id == "0-0":
                break
            start = next_id
        return claimed

    def _handle_claimed(self, entries: list[tuple[bytes | str, dict | None]]) -> int:
        """Handle entries read from a pending list, each with its delivery count."""
        batch: list[Delivered] = []
        for entry_id, fields in entries:
            if not fields:  # trimmed away while pending (Redis 6.2 shape, history reads)
                self._lost_to_trimming(_text(entry_id), acknowledge=True)
                continue
            batch.append(Delivered(_text(entry_id), _fields(fields)))
        counts = self._delivery_counts([d.entry_id for d in batch])
        batch = [
            Delivered(d.entry_id, d.fields, counts.get(d.entry_id, d.deliveries)) for d in batch
        ]
        self._handle_batch(batch)
        return len(batch)

    def _delivery_counts(self, entry_ids: list[str]) -> dict[str, int]:
        """How many times Redis has delivered each entry (it survives restarts and claims)."""
        if not entry_ids:
            return {}
        rows = self.client.xpending_range(
            self.stream,
            self.group,
            min=entry_ids[0],
            max=entry_ids[-1],
            count=len(entry_ids) * 2 + 100,
            consumername=self.name,
        )
        counts = {_text(row["message_id"]): int(row["times_delivered"]) for row in rows}
        for entry_id in entry_ids:
            if entry_id not in counts:
                single = self.client.xpending_range(
                    self.stream, self.group, min=entry_id, max=entry_id, count=1
                )
                if single:
                    counts[entry_id] = int(single[0]["times_delivered"])
        return counts

    def _lost_to_trimming(self, entry_id: str, *, acknowledge: bool) -> None:
        if acknowledge:
            self.client.xack(self.stream, self.group, entry_id)
        self.stats.trimmed += 1
        self.metrics.trimmed.inc()
        log.error(
            "alert entry was trimmed from the stream before it was recorded: raise redis.maxlen",
            extra={"entry": entry_id, "stream": self.stream},
        )

    # -- handling ----------------------------------------------------------------------
    def _handle_batch(self, batch: list[Delivered]) -> None:
        for index, delivered in enumerate(batch):
            if self._stop.is_set():
                self._stalled = []  # left pending: the next process takes them over
                return
            try:
                self._handle_guarded(delivered)
            except INFRASTRUCTURE_ERRORS:
                self._stalled = batch[index:]
                raise
        self._stalled = []

    def _handle_guarded(self, delivered: Delivered) -> None:
        """Handle one entry; poison goes to the dead-letter stream instead of blocking."""
        limit = self.settings.max_deliveries
        if delivered.deliveries > limit:
            self.dead_letter(
                delivered.entry_id,
                delivered.fields,
                f"delivered {delivered.deliveries} times without being acknowledged "
                "(the consumers that had it crashed or timed out)",
                deliveries=delivered.deliveries,
            )
            return
        try:
            self.handle(delivered.entry_id, delivered.fields)
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as error:
            self.stats.failures += 1
            self.metrics.handle_failures.inc()
            message = f"{type(error).__name__}: {error}"
            self._record_error(
                f"entry {delivered.entry_id} (delivery {delivered.deliveries}): {message}"
            )
            if delivered.deliveries >= limit:
                self.dead_letter(
                    delivered.entry_id,
                    delivered.fields,
                    f"failed {delivered.deliveries} times: {message}",
                    deliveries=delivered.deliveries,
                )
            else:
                retry_at = time.monotonic() + self.settings.retry_delay_s
                if self._retry_own_at is None or retry_at < self._retry_own_at:
                    self._retry_own_at = retry_at

    def handle(self, entry_id: str, fields: dict[str, str]) -> None:
        """Record one entry and acknowledge it after the commit."""
        try:
            event = AlertEvent.from_stream_fields(fields)
        except (ValidationError, ValueError) as error:
            self.dead_letter(entry_id, fields, f"malformed event: {error}")
            return
        snapshot = None
        if event.snapshot is not None:
            try:
                snapshot = self.client.get(event.snapshot.key)
            except (redis.ConnectionError, redis.TimeoutError):
                raise  # Redis is away: try the entry again, picture included, when it is back
            except redis.RedisError as error:
                log.warning(
                    "snapshot unavailable", extra={"key": event.snapshot.key, "error": str(error)}
                )
        for attempt in (1, 2):
            with self.sessions() as session:
                try:
                    result = ingest_event(
                        session, event, stream_entry_id=entry_id, snapshot=snapshot
                    )
                    session.commit()
                    break
                except IntegrityError:
                    # Another consumer recorded the same event or episode concurrently (a
                    # takeover racing a slow owner): the second attempt sees its rows.
                    session.rollback()
                    if attempt == 2:
                        raise
        self.client.xack(self.stream, self.group, entry_id)
        self.stats.consumed += 1
        self.metrics.consumed.inc()
        self.stats.last_entry_id = entry_id
        if result.duplicate:
            self.stats.duplicates += 1
            self.metrics.duplicates.inc()
            return
        self.metrics.delivery_seconds.observe(
            max(0.0, (datetime.now(UTC) - event.occurred_at).total_seconds())
        )
        if result.case_created:
            self.stats.cases_created += 1
            self.metrics.cases_created.inc()
            log.info(
                "case created",
                extra={"case_id": result.case_id, "event_id": event.event_id, "entry": entry_id},
            )

    def dead_letter(
        self, entry_id: str, fields: dict[str, str], reason: str, *, deliveries: int = 1
    ) -> None:
        """Move an entry to the dead-letter stream and acknowledge it, atomically."""
        record = {
            **fields,
            "original_id": entry_id,
            "error": reason[:2000],
            "consumer": self.name,
            "deliveries": str(deliveries),
            "dead_lettered_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(
            self.redis_settings.dead_letter_stream,
            record,  # type: ignore[arg-type]
            maxlen=self.redis_settings.maxlen,
            approximate=True,
        )
        pipe.xack(self.stream, self.group, entry_id)
        pipe.execute()
        self.stats.dead_lettered += 1
        self.metrics.dead_lettered.inc()
        log.warning("alert dead-lettered", extra={"entry": entry_id, "error": reason[:300]})

    # -- housekeeping and state --------------------------------------------------------
    def refresh_gauges(self) -> None:
        """Lag, pending and dead-letter counts for /metrics and /health."""
        try:
            self.stats.lag = self.lag()
            self.stats.pending = int(self.client.xpending(self.stream, self.group)["pending"])
            self.stats.dead_letters = int(self.client.xlen(self.redis_settings.dead_letter_stream))
        except redis.RedisError:
            return  # figures for health and metrics only: keep the last known ones
        if self.stats.lag is not None:
            self.metrics.lag.set(self.stats.lag)
        self.metrics.pending.set(self.stats.pending)
        self.metrics.dead_letters.set(self.stats.dead_letters)

    def forget_departed(self) -> None:
        """Remove consumers that hold nothing and have been silent for ``forget_idle_s``."""
        if self.settings.forget_idle_s <= 0:
            return
        limit_ms = self.settings.forget_idle_s * 1000
        for consumer in self.client.xinfo_consumers(self.stream, self.group):
            name = _text(consumer["name"])
            if name != self.name and int(consumer["pending"]) == 0 and consumer["idle"] > limit_ms:
                self.client.xgroup_delconsumer(self.stream, self.group, name)
                log.info("removed a departed consumer", extra={"consumer": name})

    def lag(self) -> int | None:
        """Entries in the stream not yet delivered to the group (Redis 7+), if known."""
        try:
            groups = self.client.xinfo_groups(self.stream)
        except redis.RedisError:
            return None
        for group in groups:
            if _text(group.get("name", b"")) == self.group:
                lag = group.get("lag")
                return int(lag) if lag is not None else None
        return None


def _text(value: bytes | str) -> str:
    # Not UTF-8 is a malformed entry (dead-lettered), not a reason for the loop to fail.
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _fields(fields: dict) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in fields.items()}
