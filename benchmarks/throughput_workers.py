"""The three sides of the throughput benchmark, each run in its own process.

A separate process per measurement keeps the CPU and memory accounting clean: everything the
process tree spends during the measurement window belongs to that side alone. Each worker
prints one JSON line with its measurements on stdout.

- ``baseline``: the loop most users write — one OpenCV ``VideoCapture`` per camera on its own
  thread, reading every frame, calling the detector on one frame per analysis interval.
- ``sharpeyes``: the real ``PipelineService`` (PyAV sources with keyframe-only decoding where
  it suffices, the scheduler, the dynamic batcher, the detector, gathering rules, Redis).
- ``floor``: keyframe decode and detection timed alone, one after the other, on the clip file,
  in a few passes (the orchestrator measures it several times over a run and pools them).
- ``receive``: receiving and demultiplexing the RTSP streams alone (nothing decoded), the part
  of every live reader's cost the file-based floor leaves out.

Usage (the orchestrator does this): ``python -m benchmarks.throughput_workers '<json>'``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import psutil

from benchmarks.proc_stats import PeakRss, tree_cpu_seconds

if TYPE_CHECKING:
    from camera_adapters.failures import EndKind, SessionEnd
    from camera_adapters.rtp_depacketizer import AccessUnit

log = logging.getLogger("benchmarks.throughput")

FLOOR_REFERENCE_BATCH = 4


@dataclass
class Recorder:
    """Analyses, latencies and stream lag of the cameras during the measurement window."""

    cameras: list[str]
    window_start: float = float("inf")  # nothing counts before the window opens
    window_end: float = float("inf")
    counts: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    lag_origin: dict[str, tuple[float, float]] = field(default_factory=dict)
    last_media: dict[str, float] = field(default_factory=dict)
    max_lag: dict[str, float] = field(default_factory=dict)
    first: dict[str, float] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.counts = dict.fromkeys(self.cameras, 0)
        self.max_lag = dict.fromkeys(self.cameras, 0.0)

    def record(
        self,
        camera: str,
        captured_at: float,
        latency: float,
        media_time: float | None,
        seen_at: float | None = None,
    ) -> None:
        """``media_time`` is the frame's position in the stream: how far behind the live
        stream the camera's reader has fallen is wall time minus media time, relative to the
        first frame of the window. The wall time is ``seen_at`` (when the frame was read or
        its result came), else ``captured_at`` — SharpEyes' capture times come from the
        stream's own clock, so they do not move apart from media time when a reader lags.
        Media time that steps back is a new session (a camera reconnected, its stream clock
        starting again): the lag is measured from there afresh, or the restart would read as
        the reader having fallen behind by the whole session so far."""
        if not self.window_start <= captured_at < self.window_end:
            return
        with self.lock:
            self.counts[camera] += 1
            self.first.setdefault(camera, captured_at)
            self.last[camera] = captured_at
            self.latencies.append(latency)
            if media_time is None:
                return
            seen = captured_at if seen_at is None else seen_at
            if media_time < self.last_media.get(camera, media_time):
                del self.lag_origin[camera]
            self.last_media[camera] = media_time
            origin = self.lag_origin.setdefault(camera, (seen, media_time))
            lag = (seen - origin[0]) - (media_time - origin[1])
            self.max_lag[camera] = max(self.max_lag[camera], lag)


def _window(config: dict[str, Any], recorder: Recorder, stop: threading.Event) -> dict[str, Any]:
    """Wait out the warm-up, then measure CPU and memory over the window."""
    me = psutil.Process(os.getpid())
    if stop.wait(config["warmup_s"]):
        raise RuntimeError("stopped during warm-up")
    recorder.window_start = time.time()
    threads0 = _thread_cpu(me)
    cpu0 = tree_cpu_seconds(me)
    with PeakRss(children=False) as rss:  # every variant runs in this one process
        stop.wait(config["duration_s"])
    cpu1 = tree_cpu_seconds(me)
    threads1 = _thread_cpu(me)
    recorder.window_end = time.time()
    window = recorder.window_end - recorder.window_start
    with recorder.lock:
        return {
            "window_s": window,
            "cpu_s": cpu1 - cpu0,
            "rss_peak_mb": rss.peak / 2**20,
            "analyses": dict(recorder.counts),
            "spans": {c: recorder.last[c] - recorder.first[c] for c in recorder.first},
            "latencies": list(recorder.latencies),
            "max_lag_s": max(recorder.max_lag.values(), default=0.0),
            "cpu_by_thread": _by_role(threads0, threads1),
        }


def _thread_cpu(me: psutil.Process) -> dict[int, float]:
    return {t.id: t.user_time + t.system_time for t in me.threads()}


def _by_role(before: dict[int, float], after: dict[int, float]) -> dict[str, float]:
    """CPU seconds in the window by what the threads do, from their Python names: the
    receivers (receiving and decoding), the inference workers, the pipeline's housekeeping,
    the cameras' own threads; threads that Python did not start (ONNX Runtime's, FFmpeg's)
    are "native". Where the cost above the floor goes, without a profiler's overhead."""
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    roles: dict[str, float] = {}
    for tid, cpu in after.items():
        name = names.get(tid, "native")
        role = "source" if name.startswith("source-") else name.rstrip("0123456789-")
        roles[role] = roles.get(role, 0.0) + cpu - before.get(tid, 0.0)
    return {role: round(cpu, 3) for role, cpu in sorted(roles.items()) if cpu > 0}


def _window_with_threads(
    config: dict[str, Any],
    recorder: Recorder,
    stop: threading.Event,
    camera: Callable[[str, str], None],
    names: list[str],
    urls: list[str],
) -> dict[str, Any]:
    """One thread per camera running ``camera(name, url)`` until the window has been
    measured; the threads are told to stop and joined before returning."""
    threads = [
        threading.Thread(target=camera, args=(n, u), daemon=True)
        for n, u in zip(names, urls, strict=True)
    ]
    for thread in threads:
        thread.start()
    try:
        return _window(config, recorder, stop)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)


def _detector_settings(config: dict[str, Any], threads: int | None = None):  # type: ignore[no-untyped-def]
    from models.settings import DetectorSettings

    return DetectorSettings(
        name=config["model"], intra_op_threads=threads or config.get("intra_op_threads")
    )


def _detector(config: dict[str, Any], threads: int | None = None):  # type: ignore[no-untyped-def]
    from models.onnx_detector import load_detector

    return load_detector(_detector_settings(config, threads))


# -- baseline ---------------------------------------------------------------------------------
def run_baseline(config: dict[str, Any]) -> dict[str, Any]:
    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
    # The same detector threads as SharpEyes' (one per call on a CPU, unless given), so the
    # comparison is about reading the cameras, not about ONNX Runtime's settings.
    detector = _detector(config, config.get("intra_op_threads") or 1)
    detector.detect([np.zeros((1080, 1920, 3), np.uint8)])  # warm the session
    urls: list[str] = config["urls"]
    names = [f"cam{i:03d}" for i in range(len(urls))]
    recorder = Recorder(names)
    stop = threading.Event()
    interval = 1.0 / config["rate"]
    fps = config["stream_fps"]
    failures: list[str] = []

    def camera(name: str, url: str) -> None:
        capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
        if not capture.isOpened():
            failures.append(f"{name}: cannot open {url}")
            return
        frames, last = 0, 0.0
        try:
            while not stop.is_set():
                ok, image = capture.read()
                if not ok:
                    failures.append(f"{name}: read failed")
                    return
                now = time.time()
                frames += 1
                if now - last >= interval:
                    last = now
                    detector.detect([image])
                    recorder.record(name, now, time.time() - now, frames / fps)
        finally:
            capture.release()

    result = _window_with_threads(config, recorder, stop, camera, names, urls)
    result["errors"] = failures
    return result


# -- SharpEyes --------------------------------------------------------------------------------
def run_sharpeyes(config: dict[str, Any]) -> dict[str, Any]:
    from alerting.publisher import AlertPublisher
    from alerting.settings import RedisSettings
    from camera_adapters.spec import CameraSpec
    from models.onnx_detector import load_detector
    from pipeline.batcher import AnalysisResult
    from pipeline.inference_plan import plan_inference
    from pipeline.service import PipelineService
    from pipeline.settings import PipelineSettings

    settings = PipelineSettings(
        analysis_fps=config["rate"],
        max_batch=config["max_batch"],
        max_wait_ms=config["max_wait_ms"],
        inference_workers=config.get("inference_workers"),
        decode=config.get("decode", "auto"),
        receiver=config.get("receiver", "auto"),
        worker_id="bench",
    )
    plan = plan_inference(settings, _detector_settings(config))  # as `sharpeyes run` does
    settings = plan.pipeline(settings)
    detector = load_detector(plan.model)
    detector.detect([np.zeros((234, 416, 3), np.uint8)])
    urls: list[str] = config["urls"]
    location = {"district": "Bench", "street": "Bench", "community": "Bench", "grid_cell": "B"}
    cameras = [
        CameraSpec(id=f"cam{i:03d}", name=f"Bench camera {i}", source=url, location=location)
        for i, url in enumerate(urls)
    ]
    recorder = Recorder([c.id for c in cameras])

    def on_result(result: AnalysisResult) -> None:
        decoded = getattr(result.frame, "_decoded", None)  # the PyAV frame: its stream time
        media = getattr(decoded, "time", None)
        recorder.record(
            result.camera_id, result.captured_at, result.latency_s, media, result.finished_at
        )

    publisher = AlertPublisher.from_settings(RedisSettings(url=config["redis_url"]))
    service = PipelineService(cameras, detector, publisher, settings, on_result=on_result)
    stop = threading.Event()
    runner = threading.Thread(target=service.run, args=(stop,), name="pipeline", daemon=True)
    runner.start()
    try:
        result = _window(config, recorder, stop)
    finally:
        stop.set()
        runner.join(30)
    snapshots = [camera.source.snapshot() for camera in service.cameras]
    result["inference"] = {
        "workers": plan.workers,
        "threads": plan.model.intra_op_threads,
        "max_batch": plan.max_batch,
    }
    result["rate_scale"] = service.scheduler.scale
    result["rate_changes"] = len(service.controller.changes)
    result["decode_modes"] = sorted({s.decode_mode for s in snapshots})
    result["decode_errors"] = sum(s.decode_errors for s in snapshots)
    result["reconnects"] = sum(s.reconnects for s in snapshots)
    result["mean_batch"] = service.analysed / service.batches if service.batches else 0.0
    result["errors"] = [
        f"{s.camera_id}: {s.last_error}" for s in snapshots if s.last_error is not None
    ]
    return result


# -- the floor --------------------------------------------------------------------------------
def run_floor(config: dict[str, Any]) -> dict[str, Any]:
    """Keyframe decode (with the in-decoder resize the sources use) and detection, alone.

    Measured in ``floor_passes`` passes, each decoding the clip's keyframes with a fresh
    decoder and then timing the detections, and summarised by medians over the passes
    (``floor_summary``): one pass is about a second of CPU, and on a shared machine single
    measurements of the same code came out 20.3 to 22.8 ms per analysis minutes apart.
    """
    import av

    from camera_adapters.pyav_source import fit_inside

    detector = _detector(config)
    size = detector.input_size
    calls = max(10, config.get("floor_detections", 40))
    # Batched detection for comparison: the configured batch, else 4 (what a CPU call took
    # before single frames proved cheaper per image, see pipeline/inference_plan.py).
    floor_batch = config.get("max_batch") or FLOOR_REFERENCE_BATCH
    # The cheapest detection on offer: batch 1 or a full batch, with ONNX Runtime's threads
    # as configured and with one thread (cheapest per image on a CPU, see
    # pipeline/inference_plan.py), whatever the pipeline itself was given.
    detectors = {
        str(threads or "default"): _detector(config, threads) if threads else detector
        for threads in sorted({config.get("intra_op_threads") or 0, 1})
    }
    passes: list[dict[str, Any]] = []
    for _ in range(max(1, config.get("floor_passes", 3))):
        frames: list[np.ndarray] = []
        with av.open(config["clip"]) as container:
            stream = container.streams.video[0]
            stream.thread_type = "SLICE"
            stream.codec_context.skip_frame = "NONKEY"
            started = time.process_time()
            for picture in container.decode(stream):
                w, h = fit_inside(picture.width, picture.height, size)
                frames.append(
                    picture.to_ndarray(width=w, height=h, format="bgr24", interpolation="AREA")
                )
            decode_cpu = time.process_time() - started
        keyframes = len(frames)
        timings: dict[str, dict[str, float]] = {}
        for label, each in detectors.items():
            for _ in range(3):
                each.detect(frames[:1])
            started, wall = time.process_time(), time.perf_counter()
            for i in range(calls):
                each.detect([frames[i % keyframes]])
            single_cpu = (time.process_time() - started) / calls
            single_wall = (time.perf_counter() - wall) / calls
            batch = [frames[i % keyframes] for i in range(floor_batch)]
            rounds = max(2, calls // len(batch))
            started = time.process_time()
            for _ in range(rounds):
                each.detect(batch)
            timings[label] = {
                "batch1_cpu_s": single_cpu,
                "batch1_wall_s": single_wall,
                "batched_cpu_s": (time.process_time() - started) / (rounds * len(batch)),
            }
        passes.append(
            {"keyframes": keyframes, "keyframe_decode_cpu_s": decode_cpu / keyframes,
             "detect_by_threads": timings}
        )  # fmt: skip
    return {**floor_summary(passes), "batch": floor_batch}


def floor_summary(passes: list[dict[str, Any]]) -> dict[str, Any]:
    """The floor from passes of ``run_floor`` (from one measurement or several): the median
    keyframe decode plus the cheapest median detection; the passes are kept in the report."""
    decode = float(np.median([p["keyframe_decode_cpu_s"] for p in passes]))
    timings = {
        label: {
            key: float(np.median([p["detect_by_threads"][label][key] for p in passes]))
            for key in ("batch1_cpu_s", "batch1_wall_s", "batched_cpu_s")
        }
        for label in passes[0]["detect_by_threads"]
    }
    detect = _cheapest_detection(timings)
    return {
        "keyframes": passes[0]["keyframes"],
        "keyframe_decode_cpu_s": decode,
        "detect_by_threads": timings,
        "detect_cpu_s": detect,
        "per_analysis_cpu_s": decode + detect,
        "passes": passes,
        "per_analysis_by_pass": [
            p["keyframe_decode_cpu_s"] + _cheapest_detection(p["detect_by_threads"]) for p in passes
        ],
    }


def _cheapest_detection(timings: dict[str, dict[str, float]]) -> float:
    """CPU per image of the cheapest detection on offer: batch 1 or batched, any threads."""
    return min(min(t["batch1_cpu_s"], t["batched_cpu_s"]) for t in timings.values())


def run_receive(config: dict[str, Any]) -> dict[str, Any]:
    """What a reader of a live RTSP stream pays before decoding: RTP over TCP in, split into
    pictures, nothing decoded.

    The floor is measured on the clip file, so it leaves out receiving the stream; this
    measures that part alone for the given cameras, so the report can say how much of
    SharpEyes' cost above the floor is the network input rather than the pipeline.
    ``reader``: ``native`` (SharpEyes' shared receivers, what the pipeline uses) or
    ``ffmpeg`` (PyAV demuxing each camera on its own thread, as before the receivers).
    """
    urls: list[str] = config["urls"]
    names = [f"cam{i:03d}" for i in range(len(urls))]
    recorder = Recorder(names)
    stop = threading.Event()
    units = dict.fromkeys(names, 0)
    failures: list[str] = []
    if config.get("reader", "native") == "native":
        result = _receive_native(config, recorder, stop, names, units, failures)
    else:
        camera = _ffmpeg_demuxer(stop, units, failures)
        result = _window_with_threads(config, recorder, stop, camera, names, urls)
    result["cpu_per_stream"] = result["cpu_s"] / (result["window_s"] * len(urls))
    result["packets"] = sum(units.values())
    result["cameras"] = len(urls)
    result["reader"] = config.get("reader", "native")
    result["errors"] = failures
    return result


def _ffmpeg_demuxer(
    stop: threading.Event, units: dict[str, int], failures: list[str]
) -> Callable[[str, str], None]:
    import av

    from camera_adapters.pyav_source import SourceOptions

    def camera(name: str, url: str) -> None:
        try:
            # Opened as the sources open cameras: FFmpeg's socket timeout bounds reads, PyAV's
            # (a GIL-taking callback on every socket read) only the opening.
            timeout_us = str(int(SourceOptions.stall_timeout_s * 1_000_000))
            options = {"rtsp_transport": "tcp", "timeout": timeout_us}
            with av.open(url, options=options, timeout=(10.0, None)) as container:
                stream = container.streams.video[0]
                for packet in container.demux(stream):
                    if stop.is_set():
                        return
                    if packet.size:
                        units[name] += 1
        except av.FFmpegError as error:
            failures.append(f"{name}: {error}")

    return camera


class _CountingSink:
    """A receiver sink that counts pictures and decodes nothing."""

    def __init__(self, name: str, units: dict[str, int], stop: threading.Event) -> None:
        self.name, self.units, self.stop = name, units, stop

    def access_unit(self, unit: AccessUnit) -> None:
        self.units[self.name] += 1

    def end(self, kind: EndKind, message: str | None = None) -> SessionEnd:
        from camera_adapters.failures import SessionEnd

        return SessionEnd(kind, message)

    def stop_requested(self) -> bool:
        return self.stop.is_set()


def _receive_native(
    config: dict[str, Any],
    recorder: Recorder,
    stop: threading.Event,
    names: list[str],
    units: dict[str, int],
    failures: list[str],
) -> dict[str, Any]:
    from camera_adapters.rtp_depacketizer import depacketizer_for
    from camera_adapters.rtsp_handshake import RtspHandshakeError, open_rtsp
    from camera_adapters.rtsp_receiver import ReceiverPool

    pool = ReceiverPool()
    try:
        for name, url in zip(names, config["urls"], strict=True):
            try:
                playing = open_rtsp(url, timeout_s=10.0)
            except RtspHandshakeError as error:
                failures.append(f"{name}: {error}")
                continue
            depacketizer = depacketizer_for(playing.track.encoding, playing.track.fmtp)
            sink = _CountingSink(name, units, stop)
            pool.attach(playing, depacketizer, sink, stall_timeout_s=5.0)
        return _window(config, recorder, stop)
    finally:
        stop.set()
        pool.close()


WORKERS = {
    "baseline": run_baseline,
    "sharpeyes": run_sharpeyes,
    "floor": run_floor,
    "receive": run_receive,
}


def main(argv: list[str]) -> int:
    from sharpeyes import logs

    logs.configure("WARNING")
    config = json.loads(argv[0])
    result = WORKERS[config["variant"]](config)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
