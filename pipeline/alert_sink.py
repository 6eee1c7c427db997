"""Publishing alerts off the analysis thread: snapshot rendering and Redis round trips."""

from __future__ import annotations

import logging
import queue
import threading

from alerting.publisher import AlertPublisher, PublishError
from alerting.snapshots import render_snapshot
from pipeline.alerts import PendingAlert
from pipeline.metrics import PipelineMetrics
from pipeline.settings import PipelineSettings

log = logging.getLogger(__name__)


class AlertSink:
    """Renders snapshots and publishes alerts on its own thread.

    The analysis loop hands alerts over and goes on: JPEG encoding and Redis round trips
    never delay the next batch.
    """

    def __init__(
        self, publisher: AlertPublisher, settings: PipelineSettings, metrics: PipelineMetrics
    ) -> None:
        self.publisher = publisher
        self.metrics = metrics
        self.settings = settings
        self._queue: queue.Queue[PendingAlert | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="alert-sink", daemon=True)
        self.published = 0
        self.failed = 0

    def start(self) -> None:
        self._thread.start()

    def submit(self, alert: PendingAlert) -> None:
        self._queue.put(alert)

    def close(self, timeout: float = 30.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._publish(item)
            except Exception:  # one bad alert must not stop the sink
                self.failed += 1
                log.exception(
                    "alert could not be published", extra={"event_id": item.event.event_id}
                )

    def _publish(self, item: PendingAlert) -> None:
        event = item.event
        image = item.frame.full_resolution(self.settings.snapshot_max_width)
        clock = event.occurred_at.astimezone().strftime("%H:%M:%S")
        caption = f"{event.zone_name}: {event.count} people ({event.kind}) {clock}"
        try:
            jpeg = render_snapshot(
                image,
                [tuple(b) for b in item.boxes.tolist()],
                item.in_zone.tolist(),
                event.zone_polygon,
                caption,
                self.settings.snapshot_quality,
            )
            ref = self.publisher.store_snapshot(
                event.event_id, jpeg, image.shape[1], image.shape[0]
            )
        except (ValueError, OSError) as error:
            log.warning("snapshot failed", extra={"event_id": event.event_id, "error": str(error)})
            ref = None
        if ref is not None:
            event = event.model_copy(update={"snapshot": ref})
        try:
            self.publisher.publish(event)
            self.published += 1
            self.metrics.alerts_published.inc()
        except PublishError as error:
            self.failed += 1
            self.metrics.alerts_failed.inc()
            log.error("alert lost: Redis unreachable", extra={"error": str(error)})
