"""The pipeline service: cameras in, scheduled and batched detection, zone rules, alerts out."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from alerting.publisher import AlertPublisher
from camera_adapters.pyav_source import PyAVSource, SourceOptions
from camera_adapters.spec import CameraSpec
from models.detector import Detector
from pipeline.alert_sink import AlertSink
from pipeline.analysis import CameraAnalyzer
from pipeline.batcher import AnalysisResult, Batch, Batcher
from pipeline.metrics import PipelineMetrics
from pipeline.scheduler import CameraSlot, RateChange, RateController, RateSettings, Scheduler
from pipeline.settings import PipelineSettings

log = logging.getLogger(__name__)


@dataclass
class CameraRuntime:
    spec: CameraSpec
    source: PyAVSource
    analyzer: CameraAnalyzer
    slot: CameraSlot
    last_latency_s: float | None = None

    @property
    def interval_s(self) -> float:
        return self.slot.interval


SourceFactory = Callable[[CameraSpec, SourceOptions], PyAVSource]
ResultObserver = Callable[[AnalysisResult], None]


class PipelineService:
    """Runs every enabled camera through the detector and the gathering rules.

    Threads: one decode thread per camera (the sources), ``inference_workers`` threads that
    form batches and run the detector, the alert sink's publishing thread, and the caller's
    thread for health reports and rate control (``run``). ``step`` does one batch on the
    caller's thread without waiting, for tests and tools that drive time themselves.
    """

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
        on_result: ResultObserver | None = None,
    ) -> None:
        self.metrics = metrics or PipelineMetrics()
        self.detector = detector
        self.publisher = publisher
        self.settings = settings
        self.sink = AlertSink(publisher, settings, self.metrics)
        self.on_result = on_result
        self._clock = clock
        self.cameras: list[CameraRuntime] = []
        for spec in cameras:
            if not spec.enabled:
                continue
            fps = spec.analysis_fps or settings.analysis_fps
            options = SourceOptions(
                analysis_size=detector.input_size, analysis_fps=fps, decode=settings.decode
            )
            source = source_factory(spec, options)
            self.cameras.append(
                CameraRuntime(
                    spec=spec,
                    source=source,
                    analyzer=CameraAnalyzer(spec, settings.worker_id),
                    slot=CameraSlot(spec.id, fps, source.frames),
                )
            )
        self._by_id = {camera.spec.id: camera for camera in self.cameras}
        self.scheduler = Scheduler([camera.slot for camera in self.cameras])
        self.controller = RateController(
            self.scheduler,
            RateSettings(
                enabled=settings.adaptive_rate,
                target_utilisation=settings.target_utilisation,
                high_utilisation=max(settings.target_utilisation, 0.92),
                low_utilisation=settings.target_utilisation * 0.75,
                latency_target_s=settings.latency_target_s,
                min_scale=settings.min_rate_fraction,
                window_s=settings.rate_window_s,
                workers=settings.inference_workers,
            ),
            now=clock(),
            on_change=self._rates_changed,
        )
        self.batcher = Batcher(
            self.scheduler,
            detector,
            max_batch=settings.max_batch,
            max_wait_s=settings.max_wait_ms / 1000.0,
            clock=clock,
            metrics=self.metrics,
            controller=self.controller,
        )
        self.metrics.analysis_demand_fps.set(self.scheduler.demand_fps)
        self.analysed = 0
        self.batches = 0
        self._count_lock = threading.Lock()
        self._next_health = 0.0

    def start(self) -> None:
        if self.settings.metrics_port is not None:
            self.metrics.serve(self.settings.metrics_port)
        self.sink.start()
        for camera in self.cameras:
            camera.source.start()
        log.info(
            "pipeline started",
            extra={
                "cameras": len(self.cameras),
                "detector": self.detector.name,
                "max_batch": self.settings.max_batch,
                "max_wait_ms": self.settings.max_wait_ms,
                "inference_workers": self.settings.inference_workers,
            },
        )

    def stop(self) -> None:
        for camera in self.cameras:
            camera.source.stop(timeout=2.0)
        self.sink.close()
        self.report_health()

    def run(self, stop: threading.Event) -> None:
        self.start()
        workers = [
            threading.Thread(target=self._work, args=(stop,), name=f"inference-{i}", daemon=True)
            for i in range(self.settings.inference_workers)
        ]
        for worker in workers:
            worker.start()
        try:
            while not stop.wait(0.1):
                self._housekeeping()
        finally:
            stop.set()
            for worker in workers:
                worker.join(10.0)
            self.stop()

    def _work(self, stop: threading.Event) -> None:
        while not stop.is_set():
            batch = self.batcher.collect(stop)
            if batch is not None:
                self._process(batch)

    def step(self) -> bool:
        """Analyse one batch of the frames that are due and ready now (at most
        ``max_batch``); returns False if none was."""
        batch = self.batcher.collect()
        if batch is not None:
            self._process(batch)
        self._housekeeping()
        return batch is not None

    def _housekeeping(self) -> None:
        now = self._clock()
        self.controller.maybe_adjust(now)
        self.metrics.inference_utilisation.set(self.controller.last_utilisation)
        if self.controller.last_capacity_fps is not None:
            self.metrics.inference_capacity_fps.set(self.controller.last_capacity_fps)
        if now >= self._next_health:
            self.report_health()

    def _process(self, batch: Batch) -> None:
        results = self.batcher.run(batch)
        with self._count_lock:
            self.batches += 1
            self.analysed += len(results)
        for result in results:
            try:
                self._analyse(self._by_id[result.camera_id], result)
            except Exception:  # one camera's rules must not stop the others
                log.exception("analysis failed", extra={"camera": result.camera_id})
            finally:
                self.scheduler.complete(result.camera_id)

    def _analyse(self, camera: CameraRuntime, result: AnalysisResult) -> None:
        camera.source.mark_analysed()
        camera.last_latency_s = result.latency_s
        self.metrics.frames_analysed.labels(camera.spec.id).inc()
        self.metrics.latency_seconds.observe(result.latency_s)
        for alert in camera.analyzer.analyse(result.frame, result.detections):
            self.metrics.alerts.labels(alert.event.kind.value).inc()
            self.sink.submit(alert)
        if self.on_result is not None:
            self.on_result(result)

    def _rates_changed(self, change: RateChange) -> None:
        """Tell the metrics and the sources, so they also convert fewer frames."""
        self.metrics.analysis_rate_scale.set(change.new_scale)
        direction = "down" if change.new_scale < change.old_scale else "up"
        self.metrics.rate_adjustments.labels(direction).inc()
        for camera in self.cameras:
            set_rate = getattr(camera.source, "set_analysis_rate", None)
            if set_rate is not None:
                set_rate(camera.slot.fps)

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
                analysis_fps=round(camera.slot.fps, 4),
                configured_fps=camera.slot.base_fps,
            )
            payload[camera.spec.id] = json.dumps(health)
        self.metrics.cameras_live.set(live)
        if not payload:
            return
        try:
            self.publisher.client.hset(self.publisher.settings.health_key, mapping=payload)
        except redis.RedisError as error:
            log.warning("camera health not shared", extra={"error": str(error)})
