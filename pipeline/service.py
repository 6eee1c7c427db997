"""The pipeline service: cameras in, batched detection, zone rules, alerts out."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from alerting.publisher import AlertPublisher
from camera_adapters.frames import Frame
from camera_adapters.pyav_source import PyAVSource, SourceOptions
from camera_adapters.spec import CameraSpec
from models.detections import Detections
from models.detector import Detector
from pipeline.alert_sink import AlertSink
from pipeline.analysis import CameraAnalyzer
from pipeline.metrics import PipelineMetrics
from pipeline.settings import PipelineSettings

log = logging.getLogger(__name__)


@dataclass
class CameraRuntime:
    spec: CameraSpec
    source: PyAVSource
    analyzer: CameraAnalyzer
    interval_s: float
    next_due: float = 0.0
    last_latency_s: float | None = None


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
        metrics: PipelineMetrics | None = None,
    ) -> None:
        self.metrics = metrics or PipelineMetrics()
        self.detector = detector
        self.publisher = publisher
        self.settings = settings
        self.sink = AlertSink(publisher, settings, self.metrics)
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
                    analyzer=CameraAnalyzer(spec, settings.worker_id),
                    interval_s=1.0 / fps,
                )
            )
        self.analysed = 0
        self.batches = 0
        self._next_health = 0.0

    def start(self) -> None:
        if self.settings.metrics_port is not None:
            self.metrics.serve(self.settings.metrics_port)
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
            started = time.perf_counter()
            results = self.detector.detect([frame.image for _, frame in chunk])
            self.metrics.inference_seconds.observe(time.perf_counter() - started)
            self.metrics.batch_size.observe(len(chunk))
            self.metrics.batches.inc()
            self.batches += 1
            for (camera, frame), detections in zip(chunk, results, strict=True):
                self._analyse(camera, frame, detections)
        return True

    def _analyse(self, camera: CameraRuntime, frame: Frame, detections: Detections) -> None:
        camera.source.mark_analysed()
        self.analysed += 1
        camera.last_latency_s = self._clock() - frame.captured_at
        self.metrics.frames_analysed.labels(camera.spec.id).inc()
        self.metrics.latency_seconds.observe(camera.last_latency_s)
        for alert in camera.analyzer.analyse(frame, detections):
            self.metrics.alerts.labels(alert.event.kind.value).inc()
            self.sink.submit(alert)

    def report_health(self) -> None:
        """Share each camera's health with the API (a Redis hash, one JSON per camera)."""
        self._next_health = self._clock() + self.settings.health_interval_s
        payload = {}
        live = 0
        for camera in self.cameras:
            snapshot = camera.source.snapshot()
            live += snapshot.state.value == "live"
            health = snapshot.as_dict()
            health.update(
                worker=self.settings.worker_id,
                reported_at=self._clock(),
                zone_counts=camera.analyzer.zone_counts,
                latency_s=camera.last_latency_s,
            )
            payload[camera.spec.id] = json.dumps(health)
        self.metrics.cameras_live.set(live)
        if not payload:
            return
        try:
            self.publisher.client.hset(self.publisher.settings.health_key, mapping=payload)
        except redis.RedisError as error:
            log.warning("camera health not shared", extra={"error": str(error)})
