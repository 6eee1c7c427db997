"""The pipeline service: cameras in, batched detection, zone rules, alerts out."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import redis

from alerting.publisher import AlertPublisher, PublishError
from alerting.snapshots import render_snapshot
from camera_adapters.frames import Frame
from camera_adapters.pyav_source import PyAVSource, SourceOptions
from camera_adapters.spec import CameraSpec
from models.detections import Detections
from models.detector import Detector
from pipeline.alerts import PendingAlert, build_alert
from pipeline.gathering import SustainedGathering
from pipeline.settings import PipelineSettings
from pipeline.zones import count_zones

log = logging.getLogger(__name__)


@dataclass
class CameraRuntime:
    spec: CameraSpec
    source: PyAVSource
    monitors: dict[str, SustainedGathering]
    interval_s: float
    next_due: float = 0.0
    zone_counts: dict[str, int] = field(default_factory=dict)
    last_latency_s: float | None = None


class AlertSink:
    """Renders snapshots and publishes alerts on its own thread.

    The analysis loop hands alerts over and goes on: JPEG encoding and Redis round trips
    never delay the next batch.
    """

    def __init__(self, publisher: AlertPublisher, settings: PipelineSettings) -> None:
        self.publisher = publisher
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
        except PublishError as error:
            self.failed += 1
            log.error("alert lost: Redis unreachable", extra={"error": str(error)})


SourceFactory = Callable[[CameraSpec, SourceOptions], PyAVSource]


class PipelineService:
    """Runs every enabled camera through the detector and the gathering rules."""

    def __init__(
        self,
        cameras: Sequence[CameraSpec],
        detector: Detector,
        publisher: AlertPublisher,
        settings: PipelineSettings,
        *,
        source_factory: SourceFactory = PyAVSource,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.detector = detector
        self.publisher = publisher
        self.settings = settings
        self.sink = AlertSink(publisher, settings)
        self._clock = clock
        self.cameras: list[CameraRuntime] = []
        for spec in cameras:
            if not spec.enabled:
                continue
            fps = spec.analysis_fps or settings.analysis_fps
            options = SourceOptions(
                analysis_size=detector.input_size, analysis_fps=fps, decode=settings.decode
            )
            self.cameras.append(
                CameraRuntime(
                    spec=spec,
                    source=source_factory(spec, options),
                    monitors={z.id: SustainedGathering(z.gathering) for z in spec.zones},
                    interval_s=1.0 / fps,
                )
            )
        self.analysed = 0
        self.batches = 0
        self._next_health = 0.0

    def start(self) -> None:
        self.sink.start()
        for camera in self.cameras:
            camera.source.start()
        log.info(
            "pipeline started",
            extra={"cameras": len(self.cameras), "detector": self.detector.name},
        )

    def stop(self) -> None:
        for camera in self.cameras:
            camera.source.stop(timeout=2.0)
        self.sink.close()
        self.report_health()

    def run(self, stop: threading.Event) -> None:
        self.start()
        try:
            while not stop.is_set():
                if not self.step():
                    stop.wait(0.05)
                if self._clock() >= self._next_health:
                    self.report_health()
        finally:
            self.stop()

    def step(self) -> bool:
        """Analyse every camera that is due and has a new frame; False if none had."""
        now = self._clock()
        due: list[tuple[CameraRuntime, Frame]] = []
        for camera in self.cameras:
            if now < camera.next_due:
                continue
            frame = camera.source.frames.take()
            if frame is None:
                continue
            camera.next_due = now + camera.interval_s * 0.9
            due.append((camera, frame))
        if not due:
            return False
        for start in range(0, len(due), self.settings.max_batch):
            chunk = due[start : start + self.settings.max_batch]
            results = self.detector.detect([frame.image for _, frame in chunk])
            self.batches += 1
            for (camera, frame), detections in zip(chunk, results, strict=True):
                self._analyse(camera, frame, detections)
        return True

    def _analyse(self, camera: CameraRuntime, frame: Frame, detections: Detections) -> None:
        height, width = frame.image.shape[:2]
        camera.source.mark_analysed()
        self.analysed += 1
        camera.last_latency_s = self._clock() - frame.captured_at
        for zone_count in count_zones(detections, (width, height), camera.spec.zones):
            zone = zone_count.zone
            camera.zone_counts[zone.id] = zone_count.count
            for rule_event in camera.monitors[zone.id].update(frame.captured_at, zone_count.count):
                log.info(
                    "gathering %s",
                    rule_event.kind,
                    extra={
                        "camera": camera.spec.id,
                        "zone": zone.id,
                        "count": rule_event.count,
                        "episode": rule_event.episode_id,
                    },
                )
                self.sink.submit(
                    build_alert(
                        camera.spec,
                        zone,
                        rule_event,
                        frame,
                        detections,
                        zone_count.inside,
                        self.settings.worker_id,
                    )
                )

    def report_health(self) -> None:
        """Share each camera's health with the API (a Redis hash, one JSON per camera)."""
        self._next_health = self._clock() + self.settings.health_interval_s
        payload = {}
        for camera in self.cameras:
            health = camera.source.snapshot().as_dict()
            health.update(
                worker=self.settings.worker_id,
                reported_at=self._clock(),
                zone_counts=camera.zone_counts,
                latency_s=camera.last_latency_s,
            )
            payload[camera.spec.id] = json.dumps(health)
        if not payload:
            return
        try:
            self.publisher.client.hset(self.publisher.settings.health_key, mapping=payload)
        except redis.RedisError as error:
            log.warning("camera health not shared", extra={"error": str(error)})
