"""Dynamic batching: due frames from all cameras into one detector call.

A batch closes when it holds ``max_batch`` frames or when its oldest frame has waited
``max_wait_ms`` since capture, whichever comes first. Frames are taken from the cameras'
newest-frame mailboxes only when a batch is being formed, never queued ahead: when the
detector is busy, a waiting camera's frame is replaced by a fresher one instead of ageing in
a queue, so latency stays bounded by one batch wait plus one or two inference calls.

Inference runs on worker threads that hold no lock while the detector runs. ONNX Runtime
releases the GIL during ``run``, so the cameras' decode threads (PyAV releases it too) keep
decoding on the other cores while a batch is analysed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from camera_adapters.frames import Frame
from models.detections import Detections
from models.detector import Detector
from pipeline.metrics import PipelineMetrics
from pipeline.scheduler import Dispatched, RateController, Scheduler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnalysisResult:
    """One analysed frame: what was found, when the frame was captured, how long it took."""

    camera_id: str
    frame: Frame
    detections: Detections
    captured_at: float  # when the frame left the decoder (the source's clock)
    taken_at: float  # when the batcher took it from the camera's mailbox
    finished_at: float  # when its detections were ready
    batch_size: int

    @property
    def latency_s(self) -> float:
        """End to end: frame capture to detections ready."""
        return self.finished_at - self.captured_at


@dataclass(frozen=True)
class Batch:
    items: list[Dispatched]
    closed_at: float


class Batcher:
    """Collects due frames into batches and runs the detector on them."""

    def __init__(
        self,
        scheduler: Scheduler,
        detector: Detector,
        *,
        max_batch: int,
        max_wait_s: float,
        clock: Callable[[], float] = time.time,
        metrics: PipelineMetrics | None = None,
        controller: RateController | None = None,
        idle_s: float = 0.1,
        wait: Callable[[float], object] | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.detector = detector
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.clock = clock
        self.metrics = metrics
        self.controller = controller
        self.idle_s = idle_s  # longest sleep between looks when nothing wakes the batcher
        # How the batcher sleeps until something may be ready: woken by frame arrivals and
        # released cameras (tests substitute simulated time).
        self.wait = wait or scheduler.wait_for_change
        # One worker forms a batch at a time, so concurrent workers do not split batches.
        self._collecting = threading.Lock()

    def collect(self, stop: threading.Event | None = None) -> Batch | None:
        """Form the next batch. Without ``stop``, take what is ready now and never wait;
        with it, wait for the first due frame and then up to ``max_wait_s`` for more."""
        items: list[Dispatched] = []
        with self._collecting:
            while True:
                now = self.clock()
                items += self.scheduler.take_ready(now, self.max_batch - len(items))
                if len(items) >= self.max_batch:
                    break
                if items and now >= min(i.frame.captured_at for i in items) + self.max_wait_s:
                    break
                if stop is None or stop.is_set():
                    break
                self.wait(self._pause(now, items))
        if not items:
            return None
        if self.metrics is not None:
            self.metrics.cameras_waiting.set(self.scheduler.waiting)
        return Batch(items, self.clock())

    def _pause(self, now: float, items: list[Dispatched]) -> float:
        """The longest sleep before looking again (arrivals end it sooner): until the batch's
        deadline, or ``idle_s`` with no batch begun.

        This used to poll every 10 ms while due cameras awaited their frames, scanning every
        mailbox each time: at 128 cameras that was ~1 % of the pipeline's CPU, and up to
        10 ms of latency per frame.
        """
        if items:
            deadline = min(i.frame.captured_at for i in items) + self.max_wait_s
            return max(0.0, min(self.idle_s, deadline - now))
        return self.idle_s

    def run(self, batch: Batch) -> list[AnalysisResult]:
        """Detect on the batch.

        The caller releases each camera (``scheduler.complete``) once it has handled the
        result, so one camera's frames are analysed in order even with several workers. If
        the detector fails, the cameras are released here.
        """
        images = [item.frame.image for item in batch.items]
        started = self.clock()
        try:
            found = self.detector.detect(images)
        except Exception:
            # One failing call (a corrupt frame, a transient GPU error) must not stop the
            # pipeline: the cameras are released and analysed again when next due.
            log.exception("detector failed on a batch", extra={"batch_size": len(images)})
            if self.metrics is not None:
                self.metrics.inference_errors.inc()
            for item in batch.items:
                self.scheduler.complete(item.slot.camera_id)
            return []
        finished = self.clock()
        busy = max(0.0, finished - started)
        results = [
            AnalysisResult(
                camera_id=item.slot.camera_id,
                frame=item.frame,
                detections=detections,
                captured_at=item.frame.captured_at,
                taken_at=item.taken_at,
                finished_at=finished,
                batch_size=len(images),
            )
            for item, detections in zip(batch.items, found, strict=True)
        ]
        if self.controller is not None:
            self.controller.record_batch(len(images), busy, [r.latency_s for r in results])
        if self.metrics is not None:
            m = self.metrics
            m.inference_seconds.observe(busy)
            m.batch_size.observe(len(images))
            m.batches.inc()
            oldest = min(item.frame.captured_at for item in batch.items)
            m.batch_wait_seconds.observe(max(0.0, batch.closed_at - oldest))
        return results
