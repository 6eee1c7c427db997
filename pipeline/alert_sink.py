"""Publishing alerts off the analysis thread: snapshots, the outbox, Redis round trips.

Every alert goes through the worker's outbox (``alerting.outbox``): rendered, written and
fsync'd there, then published, then marked delivered. Delivery is strictly oldest first, so
alerts left from an outage (or a previous run) reach Redis before newer ones. While Redis is
unreachable the thread keeps spooling new alerts and retries with capped backoff; the
analysis loop only ever puts alerts on an in-memory queue and never waits.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

import redis
from pydantic import ValidationError

from alerting.events import AlertEvent
from alerting.outbox import Outbox, OutboxError, OutboxFull, OutboxRecord
from alerting.publisher import AlertPublisher
from alerting.snapshots import render_snapshot
from pipeline.alerts import PendingAlert
from pipeline.metrics import PipelineMetrics
from pipeline.settings import PipelineSettings

log = logging.getLogger(__name__)

_STOP = object()


class AlertSink:
    """Renders snapshots, spools alerts durably and publishes them, on its own thread."""

    def __init__(
        self,
        publisher: AlertPublisher,
        settings: PipelineSettings,
        metrics: PipelineMetrics,
        *,
        outbox: Outbox | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.publisher = publisher
        self.metrics = metrics
        self.settings = settings
        delivery = publisher.settings.outbox
        self.delivery = delivery
        self.outbox = outbox or Outbox(
            delivery.path_for(settings.worker_id),
            max_bytes=delivery.max_bytes,
            snapshot_max_bytes=delivery.snapshot_max_bytes,
            fsync=delivery.fsync,
        )
        self._clock = clock
        self._queue: queue.Queue[PendingAlert | object] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="alert-sink", daemon=True)
        self._waited: set[int] = set()  # outbox seqs that could not be delivered at once
        self._backoff = 0.0
        self._retry_at = 0.0
        self._stopping = False
        self.published = 0
        self.deduplicated = 0
        self.spooled = 0
        self.replayed = 0
        self.failed = 0
        self.last_error: str | None = None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Open (and recover) the outbox, then start delivering: leftovers first."""
        recovery = self.outbox.open()
        self._waited.update(self.outbox.pending_seqs())
        if recovery.pending:
            log.warning(
                "replaying alerts left in the outbox",
                extra={"path": str(self.outbox.path), "pending": recovery.pending},
            )
        self.metrics.outbox_lag_seconds.set_function(self.outbox.oldest_age_s)
        self._update_gauges()
        self._thread.start()

    def submit(self, alert: PendingAlert) -> None:
        """Hand an alert over; returns at once (the analysis loop never waits on delivery)."""
        self._queue.put(alert)

    def close(self, timeout: float = 30.0) -> None:
        """Spool what is queued, try once to deliver what waits, and stop.

        Whatever Redis could not take stays in the outbox for the next start.
        """
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self.outbox.close()

    @property
    def pending(self) -> int:
        """Alerts not yet in Redis: handed over but not spooled, or waiting in the outbox."""
        return self._queue.unfinished_tasks + self.outbox.pending

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every submitted alert is in Redis (or dropped); False on timeout."""
        deadline = time.monotonic() + timeout
        while self.pending:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    # -- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                self._take_queued()
                if self.outbox.pending and (self._stopping or self._clock() >= self._retry_at):
                    delivered_all = self._deliver_waiting()
                    if self._stopping and not delivered_all:
                        break
            except Exception:  # the sink must outlive any one bad alert or disk hiccup
                log.exception("alert sink error")
                if self._stopping:
                    break
                time.sleep(0.5)
            if self._stopping and self._queue.empty() and not self.outbox.pending:
                break
        self._update_gauges()
        if self.outbox.pending:
            log.warning(
                "alerts left in the outbox for the next start",
                extra={"path": str(self.outbox.path), "pending": self.outbox.pending},
            )

    def _take_queued(self, *, wait: bool = True) -> None:
        """Spool the queued alerts; block for the next one only while nothing can be delivered."""
        timeout: float | None
        if self._stopping or not wait:
            timeout = 0.0
        elif not self.outbox.pending:
            timeout = None  # nothing to deliver: sleep until an alert comes
        else:
            timeout = max(0.0, self._retry_at - self._clock())
        while True:
            try:
                if timeout is None or timeout > 0:
                    item = self._queue.get(timeout=timeout)
                else:
                    item = self._queue.get_nowait()
            except queue.Empty:
                return
            try:
                if item is _STOP:
                    self._stopping = True
                else:
                    self._spool(item)  # type: ignore[arg-type]
            finally:
                self._queue.task_done()
            timeout = 0.0

    def _spool(self, item: PendingAlert) -> None:
        event = item.event
        jpeg, width, height = self._render(item)
        try:
            seq, kept = self.outbox.append(event.model_dump_json().encode(), jpeg, width, height)
        except OutboxFull as error:
            self._drop(event, f"{error}; the alert is lost")
            return
        except OutboxError as error:
            # The disk failed us: publish directly if Redis is there, else the alert is lost.
            log.error("outbox unwritable", extra={"error": str(error)})
            self._deliver_without_outbox(event, str(error))
            return
        if jpeg is not None and not kept:
            self.metrics.outbox_snapshots_dropped.inc()
            log.warning(
                "snapshot not kept in the outbox (past its snapshot budget)",
                extra={"event_id": event.event_id, "outbox_bytes": self.outbox.size_bytes},
            )
        if self._retry_at > self._clock():  # Redis is known to be unreachable right now
            self._mark_waited(seq)
        self._update_gauges()

    def _render(self, item: PendingAlert) -> tuple[bytes | None, int, int]:
        event = item.event
        try:
            image = item.frame.full_resolution(self.settings.snapshot_max_width)
            clock = event.occurred_at.astimezone().strftime("%H:%M:%S")
            caption = f"{event.zone_name}: {event.count} people ({event.kind}) {clock}"
            jpeg = render_snapshot(
                image,
                [tuple(b) for b in item.boxes.tolist()],
                item.in_zone.tolist(),
                event.zone_polygon,
                caption,
                self.settings.snapshot_quality,
            )
        except Exception as error:  # a missing picture never holds back an alert
            log.warning("snapshot failed", extra={"event_id": event.event_id, "error": str(error)})
            return None, 0, 0
        return jpeg, image.shape[1], image.shape[0]

    def _deliver_waiting(self) -> bool:
        """Deliver outbox records oldest first until empty (True) or Redis fails (False)."""
        while (record := self.outbox.oldest()) is not None:
            try:
                delivered = self._deliver(record)
            except redis.RedisError as error:
                self._delivery_failed(error)
                return False
            except Exception as error:  # not Redis: retrying the same record cannot help
                log.exception("alert could not be published", extra={"seq": record.seq})
                self._drop(None, f"outbox record {record.seq}: {type(error).__name__}: {error}")
                delivered = False
            if delivered:
                self._backoff = 0.0
                self._retry_at = 0.0
            self.outbox.mark_delivered(record.seq)
            self._update_gauges()
            self._take_queued(wait=False)  # keep new alerts durable during a long replay
        return True

    def _deliver(self, record: OutboxRecord) -> bool:
        """Publish one outbox record; False if the record was unusable and was dropped."""
        try:
            event = AlertEvent.model_validate_json(record.event_json)
        except ValidationError as error:
            self._drop(None, f"outbox record {record.seq} is unreadable: {error}")
            return False
        if record.snapshot is not None:
            ref = self.publisher.store_snapshot(
                event.event_id, record.snapshot, record.width, record.height, strict=True
            )
            if ref is not None:
                event = event.model_copy(update={"snapshot": ref})
        result = self.publisher.deliver(event)
        if result.duplicate:
            self.deduplicated += 1
            self.metrics.alerts_deduplicated.inc()
        else:
            self.published += 1
            self.metrics.alerts_published.inc()
        if record.seq in self._waited:
            self._waited.discard(record.seq)
            self.replayed += 1
            self.metrics.alerts_replayed.inc()
        return True

    def _delivery_failed(self, error: Exception) -> None:
        self.metrics.delivery_errors.inc()
        self.last_error = str(error)
        for waiting in reversed(self.outbox.pending_seqs()):  # all of them wait now
            if waiting in self._waited:
                break
            self._mark_waited(waiting)
        first = self._backoff == 0.0
        self._backoff = (
            self.delivery.retry_initial_s
            if first
            else min(self._backoff * 2, self.delivery.retry_max_s)
        )
        self._retry_at = self._clock() + self._backoff
        (log.error if first else log.debug)(
            "Redis unreachable: alerts wait in the outbox",
            extra={
                "error": str(error),
                "pending": self.outbox.pending,
                "retry_in_s": round(self._backoff, 2),
            },
        )

    def _mark_waited(self, seq: int) -> None:
        if seq not in self._waited:
            self._waited.add(seq)
            self.spooled += 1
            self.metrics.alerts_spooled.inc()

    def _deliver_without_outbox(self, event: AlertEvent, why: str) -> None:
        try:
            result = self.publisher.deliver(event)
        except redis.RedisError as error:
            self._drop(event, f"{why}; and Redis is unreachable ({error}): the alert is lost")
            return
        if result.duplicate:
            self.deduplicated += 1
            self.metrics.alerts_deduplicated.inc()
        else:
            self.published += 1
            self.metrics.alerts_published.inc()

    def _drop(self, event: AlertEvent | None, reason: str) -> None:
        self.failed += 1
        self.metrics.alerts_failed.inc()
        log.error(
            "alert dropped",
            extra={
                "reason": reason,
                "event_id": event.event_id if event else None,
                "key": event.idempotency_key if event else None,
            },
        )

    def _update_gauges(self) -> None:
        self.metrics.outbox_pending.set(self.outbox.pending)
        self.metrics.outbox_bytes.set(self.outbox.size_bytes)
