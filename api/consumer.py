"""The alert stream consumer: a Redis consumer group turning events into cases.

An entry is acknowledged (XACK) only after the transaction that records it has committed,
so a crash between the two redelivers the entry and the idempotency key makes the second
delivery a no-op. Entries that cannot be parsed go to a dead-letter stream with the reason.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field

import redis
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from alerting.events import AlertEvent
from alerting.settings import RedisSettings
from api.ingest import ingest_event
from api.metrics import ApiMetrics
from api.settings import ConsumerSettings

log = logging.getLogger(__name__)


def default_consumer_name() -> str:
    return f"api-{socket.gethostname()}-{os.getpid()}"


@dataclass
class ConsumerStats:
    consumed: int = 0
    duplicates: int = 0
    cases_created: int = 0
    dead_lettered: int = 0
    errors: int = 0
    last_error: str | None = None
    last_entry_id: str | None = None
    connected: bool = False
    started_at: float = field(default_factory=time.time)


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
        self.max_failures = 3
        self._failures: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="alert-consumer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.client.close()

    # -- loop --------------------------------------------------------------------------
    def ensure_group(self) -> None:
        try:
            self.client.xgroup_create(
                self.redis_settings.stream,
                self.redis_settings.consumer_group,
                id="0",
                mkstream=True,
            )
            log.info("consumer group created", extra={"group": self.redis_settings.consumer_group})
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def _run(self) -> None:
        backoff = 0.5
        pending_first = True  # after (re)connecting, finish our own unacknowledged entries
        while not self._stop.is_set():
            try:
                if not self.stats.connected:
                    self.ensure_group()
                    self.stats.connected = True
                    pending_first = True
                    log.info("alert consumer connected", extra={"consumer": self.name})
                if pending_first or self._failures:
                    # Our own unacknowledged entries first: after a restart, and while an
                    # entry is failing (it is retried until it succeeds or is dead-lettered).
                    if self.poll(from_pending=True) == 0:
                        pending_first = False
                        self._failures.clear()
                    elif self._failures:
                        self._stop.wait(0.2)
                else:
                    self.poll()
                backoff = 0.5
            except (redis.ConnectionError, redis.TimeoutError) as error:
                self._record_error(f"redis: {error}")
                self.stats.connected = False
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            except OperationalError as error:
                self._record_error(f"database: {error}")
                pending_first = True
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _record_error(self, message: str) -> None:
        self.stats.errors += 1
        self.stats.last_error = message
        log.warning("alert consumer error", extra={"error": message})

    def poll(self, *, from_pending: bool = False) -> int:
        """Read and handle one batch; returns how many entries were handled."""
        response = self.client.xreadgroup(
            self.redis_settings.consumer_group,
            self.name,
            {self.redis_settings.stream: "0" if from_pending else ">"},
            count=self.settings.batch,
            block=None if from_pending else self.settings.block_ms,
        )
        handled = 0
        for _stream, entries in response or []:
            for entry_id, fields in entries:
                if fields is None:  # trimmed away while pending
                    self.client.xack(
                        self.redis_settings.stream, self.redis_settings.consumer_group, entry_id
                    )
                    continue
                self._handle_guarded(
                    _text(entry_id), {_text(k): _text(v) for k, v in fields.items()}
                )
                handled += 1
        return handled

    def _handle_guarded(self, entry_id: str, fields: dict[str, str]) -> None:
        """Handle one entry; an entry that keeps failing is dead-lettered, not retried forever."""
        try:
            self.handle(entry_id, fields)
            self._failures.pop(entry_id, None)
        except (redis.ConnectionError, redis.TimeoutError, OperationalError):
            raise  # infrastructure trouble: the loop backs off and retries the entry
        except Exception as error:
            failures = self._failures.get(entry_id, 0) + 1
            self._failures[entry_id] = failures
            self._record_error(f"entry {entry_id}: {type(error).__name__}: {error}")
            if failures >= self.max_failures:
                self._failures.pop(entry_id, None)
                self.dead_letter(entry_id, fields, f"failed {failures} times: {error}")

    def handle(self, entry_id: str, fields: dict[str, str]) -> None:
        try:
            event = AlertEvent.from_stream_fields(fields)
        except (ValidationError, ValueError) as error:
            self.dead_letter(entry_id, fields, f"malformed event: {error}")
            return
        snapshot = None
        if event.snapshot is not None:
            try:
                snapshot = self.client.get(event.snapshot.key)
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
                    # Another consumer recorded the same event or episode concurrently.
                    session.rollback()
                    if attempt == 2:
                        raise
        self.client.xack(self.redis_settings.stream, self.redis_settings.consumer_group, entry_id)
        self.stats.consumed += 1
        self.metrics.consumed.inc()
        self.stats.last_entry_id = entry_id
        if result.duplicate:
            self.stats.duplicates += 1
            self.metrics.duplicates.inc()
        if result.case_created:
            self.stats.cases_created += 1
            self.metrics.cases_created.inc()
            log.info(
                "case created",
                extra={"case_id": result.case_id, "event_id": event.event_id, "entry": entry_id},
            )

    def dead_letter(self, entry_id: str, fields: dict[str, str], reason: str) -> None:
        self.client.xadd(
            self.redis_settings.dead_letter_stream,
            {**fields, "original_id": entry_id, "error": reason[:2000], "consumer": self.name},
            maxlen=self.redis_settings.maxlen,
            approximate=True,
        )
        self.client.xack(self.redis_settings.stream, self.redis_settings.consumer_group, entry_id)
        self.stats.dead_lettered += 1
        self.metrics.dead_lettered.inc()
        log.warning("alert dead-lettered", extra={"entry": entry_id, "error": reason[:300]})

    def lag(self) -> int | None:
        """Entries in the stream not yet delivered to the group (Redis 7+), if known."""
        try:
            groups = self.client.xinfo_groups(self.redis_settings.stream)
        except redis.RedisError:
            return None
        for group in groups:
            if _text(group.get("name", b"")) == self.redis_settings.consumer_group:
                lag = group.get("lag")
                return int(lag) if lag is not None else None
        return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
