"""The pipeline service: cameras in, scheduled and batched detection, zone rules, alerts out."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import redis

from alerting.publisher import AlertPublisher
from camera_adapters.config_messages import CameraChange
from camera_adapters.frames import Frame
from camera_adapters.pyav_source import PyAVSource, SourceOptions
from camera_adapters.rtsp_receiver import ReceiverPool
from camera_adapters.spec import CameraSpec
from models.detections import Detections
from models.detector import Detector
from pipeline.alert_sink import AlertSink
from pipeline.analysis import CameraAnalyzer
from pipeline.batcher import AnalysisResult, Batch, Batcher
from pipeline.metrics import PipelineMetrics
from pipeline.scheduler import CameraSlot, RateChange, RateController, RateSettings, Scheduler
from pipeline.settings import PipelineSettings

log = logging.getLogger(__name__)


THUMBNAIL_WIDTH = 640
# Fields of a camera spec that change how its stream is opened: a change restarts the source.
STREAM_FIELDS = ("source", "username", "password", "transport", "loop")


@dataclass
class CameraRuntime:
    spec: CameraSpec
    source: PyAVSource
    analyzer: CameraAnalyzer
    slot: CameraSlot
    last_latency_s: float | None = None
    last_frame: Frame | None = None  # the newest analysed frame, for the shared thumbnail
    last_detections: Detections | None = None  # what was found in it
    thumbnail_of: int | None = None  # sequence of the frame last shared as thumbnail

    @property
    def interval_s(self) -> float:
        return self.slot.interval


SourceFactory = Callable[[CameraSpec, SourceOptions], PyAVSource]
ResultObserver = Callable[[AnalysisResult], None]


class PipelineService:
    """Runs every enabled camera through the detector and the gathering rules.

    Threads: one per camera (the sources; an RTSP camera read natively only sets its session
    up there and waits, while the shared receivers, one per core, read and decode it),
    ``inference_workers`` threads that form batches and run the detector, the alert sink's
    publishing thread, and the caller's thread for health reports and rate control (``run``).
    ``step`` does one batch on the caller's thread without waiting, for tests and tools that
    drive time themselves.
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
        # Resolved by plan_inference (which also sets the detector's threads); a detector
        # built without it gets one call at a time, which is always safe.
        self.inference_workers = settings.inference_workers or 1
        self.max_batch = settings.max_batch or 16  # the batch size before plans existed
        self.sink = AlertSink(publisher, settings, self.metrics)
        self.on_result = on_result
        self._clock = clock
        self._source_factory = source_factory
        self.receivers = ReceiverPool(settings.receiver_threads)  # threads start on demand
        self._cameras_lock = threading.Lock()
        self._by_id: dict[str, CameraRuntime] = {}
        for spec in cameras:
            if spec.enabled:
                runtime = self._runtime(spec)
                self._by_id[spec.id] = runtime
        self.scheduler = Scheduler([camera.slot for camera in self._by_id.values()])
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
                workers=self.inference_workers,
            ),
            now=clock(),
            on_change=self._rates_changed,
        )
        self.batcher = Batcher(
            self.scheduler,
            detector,
            max_batch=self.max_batch,
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
        self._next_thumbnails = 0.0
        self._started = False

    # -- cameras --------------------------------------------------------------------------
    @property
    def cameras(self) -> list[CameraRuntime]:
        with self._cameras_lock:
            return list(self._by_id.values())

    def camera(self, camera_id: str) -> CameraRuntime | None:
        with self._cameras_lock:
            return self._by_id.get(camera_id)

    def _runtime(self, spec: CameraSpec) -> CameraRuntime:
        fps = spec.analysis_fps or self.settings.analysis_fps
        options = SourceOptions(
            analysis_size=self.detector.input_size,
            analysis_fps=fps,
            decode=self.settings.decode,
            even_spacing=self.settings.even_spacing,
            deblock=self.settings.deblock,
            hwaccel=self.settings.hwaccel,
            receiver=self.settings.receiver,
            receivers=self.receivers,
        )
        source = self._source_factory(spec, options)
        return CameraRuntime(
            spec=spec,
            source=source,
            analyzer=CameraAnalyzer(spec, self.settings.worker_id),
            slot=CameraSlot(spec.id, fps, source.frames),
        )

    def apply(self, change: CameraChange) -> None:
        """Apply a camera change from the API while running (see camera_updates.py)."""
        if change.op == "delete" or change.spec is None or not change.spec.enabled:
            self.remove_camera(change.camera_id)
        else:
            self.put_camera(change.spec)

    def put_camera(self, spec: CameraSpec) -> None:
        """Add a camera, or change a running one.

        Zones and thresholds change in place: unchanged zones keep their episodes, and an
        open episode of a zone that was changed or removed is ended with the camera's next
        analysed frame (``CameraAnalyzer.reconfigured``). A changed stream (URL,
        credentials, transport) or analysis rate restarts the camera's source; its rule
        state carries over the same way.
        """
        with self._cameras_lock:
            current = self._by_id.get(spec.id)
        if current is not None:
            same_stream = (
                all(getattr(current.spec, name) == getattr(spec, name) for name in STREAM_FIELDS)
                and current.spec.analysis_fps == spec.analysis_fps
            )
            if same_stream:
                current.analyzer = current.analyzer.reconfigured(spec)
                current.spec = spec
                log.info("camera zones updated", extra={"camera": spec.id})
                return
            self.remove_camera(spec.id, end_episodes=False)
        runtime = self._runtime(spec)
        if current is not None:  # the same camera id, a new stream: its episodes go on
            runtime.analyzer = current.analyzer.reconfigured(spec)
            runtime.last_frame = current.last_frame
            runtime.last_detections = current.last_detections
        with self._cameras_lock:  # with start(): exactly one of the two starts the source
            self._by_id[spec.id] = runtime
            started = self._started
        self.scheduler.add(runtime.slot)
        self.metrics.analysis_demand_fps.set(self.scheduler.demand_fps)
        if started:
            runtime.source.start()
        log.info("camera added", extra={"camera": spec.id, "source": spec.display_source()})

    def remove_camera(self, camera_id: str, *, end_episodes: bool = True) -> None:
        """Stop analysing a camera. Its open gathering episodes are ended (counted in its
        last analysed frame), so that their cases do not stay open forever; not when the
        camera is only being restarted with a new stream (``end_episodes=False``)."""
        with self._cameras_lock:
            runtime = self._by_id.pop(camera_id, None)
        if runtime is None:
            return
        self.scheduler.remove(camera_id)
        self.metrics.analysis_demand_fps.set(self.scheduler.demand_fps)
        runtime.source.stop(timeout=2.0)
        frame, detections = runtime.last_frame, runtime.last_detections
        if end_episodes and frame is not None and detections is not None:
            for alert in runtime.analyzer.close_all(frame, detections):
                self.metrics.alerts.labels(alert.event.kind.value).inc()
                self.sink.submit(alert)
        settings = self.publisher.settings
        try:
            self.publisher.client.hdel(settings.health_key, camera_id)
            self.publisher.client.delete(settings.thumbnail_key(camera_id))
        except redis.RedisError as error:
            log.warning("camera health not cleared", extra={"error": str(error)})
        log.info("camera removed", extra={"camera": camera_id})

    def start(self) -> None:
        if self.settings.metrics_port is not None:
            self.metrics.serve(self.settings.metrics_port)
        self.sink.start()
        with self._cameras_lock:
            self._started = True
            cameras = list(self._by_id.values())
        for camera in cameras:
            camera.source.start()
        log.info(
            "pipeline started",
            extra={
                "cameras": len(cameras),
                "detector": self.detector.name,
                "max_batch": self.max_batch,
                "max_wait_ms": self.settings.max_wait_ms,
                "inference_workers": self.inference_workers,
            },
        )

    def stop(self) -> None:
        cameras = self.cameras
        for camera in cameras:  # all at once: each may take a read timeout to notice
            camera.source.request_stop()
        self.receivers.close()  # ends the natively read cameras' sessions at once
        for camera in cameras:
            camera.source.stop(timeout=2.0)
        self.sink.close()
        self.report_health()

    def run(self, stop: threading.Event) -> None:
        self.start()
        workers = [
            threading.Thread(target=self._work, args=(stop,), name=f"inference-{i}", daemon=True)
            for i in range(self.inference_workers)
        ]
        for worker in workers:
            worker.start()
        try:
            while not stop.wait(0.1):
                self._housekeeping()
        finally:
            stop.set()
            self.scheduler.wake()  # a worker waiting for frames notices the stop at once
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
        if now >= self._next_thumbnails:
            self.share_thumbnails()

    def _process(self, batch: Batch) -> None:
        results = self.batcher.run(batch)
        with self._count_lock:
            self.batches += 1
            self.analysed += len(results)
        for result in results:
            with self._cameras_lock:
                camera = self._by_id.get(result.camera_id)
            try:
                if camera is not None:  # None: removed while its frame was analysed
                    self._analyse(camera, result)
            except Exception:  # one camera's rules must not stop the others
                log.exception("analysis failed", extra={"camera": result.camera_id})
            finally:
                self.scheduler.complete(result.camera_id)

    def _analyse(self, camera: CameraRuntime, result: AnalysisResult) -> None:
        camera.source.mark_analysed()
        camera.last_latency_s = result.latency_s
        camera.last_frame = result.frame
        camera.last_detections = result.detections
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

    def share_thumbnails(self) -> None:
        """Each camera's current view as a small JPEG in Redis, for drawing zones in the
        console (the API never decodes video). Only new frames are encoded."""
        self._next_thumbnails = self._clock() + self.settings.thumbnail_interval_s
        settings = self.publisher.settings
        pipe = self.publisher.client.pipeline(transaction=False)
        shared = 0
        for camera in self.cameras:
            frame = camera.last_frame
            if frame is None or frame.sequence == camera.thumbnail_of:
                continue
            try:
                image = frame.full_resolution(THUMBNAIL_WIDTH)
                ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
            except Exception as error:  # a bad frame costs a thumbnail, never the pipeline
                log.warning(
                    "thumbnail failed", extra={"camera": camera.spec.id, "error": str(error)}
                )
                continue
            if ok:
                pipe.set(
                    settings.thumbnail_key(camera.spec.id),
                    jpeg.tobytes(),
                    ex=settings.thumbnail_ttl_s,
                )
                camera.thumbnail_of = frame.sequence
                shared += 1
        if not shared:
            return
        try:
            pipe.execute()
        except redis.RedisError as error:
            log.warning("camera thumbnails not shared", extra={"error": str(error)})

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
