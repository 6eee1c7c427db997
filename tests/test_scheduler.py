"""Scheduling, fair batching and overload control of the pipeline service.

Time is simulated: a fake clock, camera sources that produce a frame whenever their
simulated camera would, and a detector whose cost advances the clock. This is the one thing
that cannot be produced for real in a test — a detector exactly N times too slow — and it
makes the behaviour under overload deterministic. The real detector, RTSP server and Redis
run in ``test_scheduler_live.py`` and in the benchmark.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import numpy as np
import pytest

from alerting.publisher import AlertPublisher
from alerting.settings import RedisSettings
from camera_adapters.frames import Frame, LatestFrame
from camera_adapters.health import HealthCounters
from camera_adapters.spec import CameraSpec
from models.detections import Detections
from pipeline.batcher import AnalysisResult
from pipeline.scheduler import CameraSlot, Scheduler
from pipeline.service import PipelineService
from pipeline.settings import PipelineSettings

LOCATION = {"district": "D", "street": "S", "community": "C", "grid_cell": "G"}


class Clock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SimulatedCamera:
    """A source that delivers a frame every ``period`` simulated seconds (phase ``offset``)."""

    def __init__(self, spec: CameraSpec, clock: Clock, period: float, offset: float) -> None:
        self.spec = spec
        self.frames = LatestFrame()
        self.health = HealthCounters(spec.id)
        self.clock = clock
        self.period = period
        self.next_at = clock() + offset
        self.sequence = 0
        self.rates: list[float] = []

    def tick(self) -> None:
        while self.clock() >= self.next_at:
            self.sequence += 1
            image = np.zeros((8, 8, 3), np.uint8)
            self.frames.put(Frame(self.spec.id, self.next_at, image, (8, 8), self.sequence))
            self.next_at += self.period

    def start(self) -> None: ...

    def stop(self, timeout: float = 0) -> None: ...

    def snapshot(self):  # type: ignore[no-untyped-def]
        return self.health.snapshot()

    def mark_analysed(self) -> None:
        self.health.add("frames_analysed")

    def set_analysis_rate(self, fps: float) -> None:
        self.rates.append(fps)


class CostlyDetector:
    """Advances the simulated clock by ``per_image`` seconds per image (plus a fixed cost)."""

    name = "costly"
    input_size = (416, 416)

    def __init__(self, clock: Clock, per_image: float, per_call: float = 0.0) -> None:
        self.clock = clock
        self.per_image = per_image
        self.per_call = per_call
        self.batches: list[int] = []

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        self.batches.append(len(images))
        self.clock.advance(self.per_call + self.per_image * len(images))
        return [Detections.empty() for _ in images]


def cameras(n: int) -> list[CameraSpec]:
    return [
        CameraSpec(id=f"cam{i:02d}", name=f"Camera {i}", source=f"cam{i}.mp4", location=LOCATION)
        for i in range(n)
    ]


class Harness:
    def __init__(
        self,
        redis_url: str,
        n: int,
        *,
        period: float = 0.2,
        per_image: float = 0.01,
        phases: bool = True,
        **settings: object,
    ) -> None:
        self.clock = Clock()
        self.detector = CostlyDetector(self.clock, per_image)
        self.sources: dict[str, SimulatedCamera] = {}
        self.results: list[AnalysisResult] = []

        def factory(spec: CameraSpec, _options: object) -> SimulatedCamera:
            offset = (len(self.sources) / n) * period if phases else 0.0
            source = SimulatedCamera(spec, self.clock, period, offset)
            self.sources[spec.id] = source
            return source

        publisher = AlertPublisher.from_settings(RedisSettings(url=redis_url))
        self.service = PipelineService(
            cameras(n),
            self.detector,
            publisher,
            PipelineSettings(worker_id="test", health_interval_s=3600, **settings),
            source_factory=factory,  # type: ignore[arg-type]
            clock=self.clock,
            on_result=self.results.append,
        )

    def run(self, seconds: float, tick: float = 0.005) -> None:
        end = self.clock() + seconds
        while self.clock() < end:
            for source in self.sources.values():
                source.tick()
            if not self.service.step():
                self.clock.advance(tick)

    def rates(self, since: float) -> dict[str, float]:
        span = self.clock() - since
        counts = dict.fromkeys(self.sources, 0)
        for result in self.results:
            if result.captured_at >= since:
                counts[result.camera_id] += 1
        return {camera: count / span for camera, count in counts.items()}


def test_each_camera_is_analysed_at_its_rate(redis_server) -> None:
    h = Harness(redis_server.url, 5, analysis_fps=1.0, period=0.2)
    h.run(30)
    rates = h.rates(since=h.clock() - 25)
    assert all(0.95 <= r <= 1.05 for r in rates.values()), rates
    latencies = [r.latency_s for r in h.results]
    assert max(latencies) < 0.1, "frames are taken when due, not after a wall-clock tick"


def test_rate_is_exact_on_average_when_frames_come_only_at_keyframes(redis_server) -> None:
    """Keyframes every 2 s, analysis every 5 s: frames at 4 s and 6 s spacing average 5 s."""
    h = Harness(redis_server.url, 3, analysis_fps=0.2, period=2.0)
    h.run(120)
    rates = h.rates(since=h.clock() - 100)
    assert all(0.18 <= r <= 0.22 for r in rates.values()), rates


def test_more_due_cameras_than_max_batch_are_served_round_robin(redis_server) -> None:
    h = Harness(redis_server.url, 10, analysis_fps=1.0, max_batch=4, phases=False)
    for source in h.sources.values():
        source.tick()
    served: list[list[str]] = []
    for _ in range(3):
        before = len(h.results)
        assert h.service.step()
        served.append([r.camera_id for r in h.results[before:]])
    assert [len(batch) for batch in served] == [4, 4, 2]
    assert sorted(c for batch in served for c in batch) == sorted(h.sources), "once each"
    assert not h.service.step(), "nobody is due again before its interval"


def test_no_camera_starves_when_inference_cannot_keep_up(redis_server) -> None:
    """12 cameras at 1/s want 12 analyses/s; the detector manages 4/s. Without rate control,
    the cameras still share the capacity evenly."""
    h = Harness(
        redis_server.url,
        12,
        analysis_fps=1.0,
        per_image=0.25,
        max_batch=4,
        adaptive_rate=False,
    )
    h.run(60)
    rates = h.rates(since=h.clock() - 50)
    assert min(rates.values()) > 0.25, rates
    assert max(rates.values()) - min(rates.values()) < 0.1, f"uneven service: {rates}"
    assert sum(rates.values()) == pytest.approx(4.0, rel=0.1)


def test_overload_lowers_rates_evenly_reports_it_and_recovers(redis_server, caplog) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.scheduler")
    h = Harness(
        redis_server.url,
        10,
        analysis_fps=1.0,
        per_image=0.2,  # capacity 5 frames/s for a demand of 10/s
        max_batch=4,
        rate_window_s=5.0,
        target_utilisation=0.8,
    )
    h.run(60)
    scale = h.service.scheduler.scale
    assert 0.3 <= scale <= 0.5, f"capacity 5/s at 80 % for 10/s of demand → ~0.4, got {scale}"
    metrics = h.service.metrics
    assert metrics.analysis_rate_scale._value.get() == pytest.approx(scale)
    assert metrics.rate_adjustments.labels("down")._value.get() >= 1
    lowered = [r for r in caplog.records if "rates lowered" in r.getMessage()]
    assert lowered and lowered[0].levelno == logging.WARNING
    assert lowered[0].scale_to < lowered[0].scale_from  # type: ignore[attr-defined]
    for source in h.sources.values():
        assert source.rates and source.rates[-1] == pytest.approx(scale), (
            "sources are told to hand on fewer frames"
        )

    # At the lowered rate every camera gets the same share and latency stays bounded.
    since = h.clock()
    h.run(30)
    rates = h.rates(since=since)
    assert max(rates.values()) - min(rates.values()) < 0.1, rates
    assert all(abs(r - scale) < 0.1 for r in rates.values()), (rates, scale)
    recent = [r.latency_s for r in h.results if r.captured_at >= since]
    assert np.percentile(recent, 95) < 2.0

    # The load drops (a faster detector): the rates come back to what was configured.
    h.detector.per_image = 0.01
    h.run(60)
    assert h.service.scheduler.scale == 1.0
    assert metrics.rate_adjustments.labels("up")._value.get() >= 1
    assert any("rates raised" in r.getMessage() for r in caplog.records)
    rates = h.rates(since=h.clock() - 10)
    assert all(r >= 0.9 for r in rates.values()), rates


class SimulatedStop(threading.Event):
    """A stop event whose waits pass simulated time (and stand in for the batcher's sleeps)."""

    def __init__(self, harness: Harness) -> None:
        super().__init__()
        self.harness = harness

    def wait(self, timeout: float | None = None) -> bool:
        self.harness.clock.advance(timeout or 0.0)
        for source in self.harness.sources.values():
            source.tick()
        return self.is_set()


@pytest.mark.parametrize(
    ("max_wait_ms", "max_batch", "expected"),
    [(0, 16, 1), (200, 16, 2), (450, 16, 4), (1000, 3, 3)],
)
def test_a_batch_closes_at_max_wait_or_max_batch(
    redis_server, max_wait_ms: float, max_batch: int, expected: int
) -> None:
    """Eight cameras whose frames arrive 125 ms apart: a batch takes those captured within
    max_wait of its oldest frame, or max_batch, whichever comes first."""
    h = Harness(
        redis_server.url,
        8,
        analysis_fps=1.0,
        period=1.0,
        max_wait_ms=max_wait_ms,
        max_batch=max_batch,
    )
    stop = SimulatedStop(h)
    stop.wait(0)
    h.service.batcher.wait = stop.wait  # the batcher's sleeps pass simulated time
    batch = h.service.batcher.collect(stop)
    assert batch is not None
    assert [item.slot.camera_id for item in batch.items] == list(h.sources)[:expected]
    waited = batch.closed_at - batch.items[0].frame.captured_at
    assert waited <= max_wait_ms / 1000 + 1e-9


def test_a_failing_detector_releases_the_cameras(redis_server, caplog) -> None:
    h = Harness(redis_server.url, 3, analysis_fps=1.0)

    def broken(images):  # type: ignore[no-untyped-def]
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    h.detector.detect = broken  # type: ignore[method-assign]
    for source in h.sources.values():
        source.tick()
    h.clock.advance(0.5)
    for source in h.sources.values():
        source.tick()
    assert h.service.step()
    assert h.service.metrics.inference_errors._value.get() == 1
    assert not any(slot.in_flight for slot in h.service.scheduler.slots)
    assert "detector failed" in caplog.text


def test_scheduler_rejects_duplicate_cameras() -> None:
    with pytest.raises(ValueError, match="unique"):
        Scheduler([CameraSlot("a", 1.0, LatestFrame()), CameraSlot("a", 1.0, LatestFrame())])


def _captured_frame(camera: str, captured_at: float, keyframe: bool = False) -> Frame:
    return Frame(camera, captured_at, np.zeros((8, 8, 3), np.uint8), (8, 8), 1, keyframe)


def test_the_scheduler_tells_each_source_from_when_it_takes_the_next_frame() -> None:
    """Between keyframes a source decodes up to the frame it hands on, so it hands on the
    earliest one the scheduler will take: the scheduler says which, on its own grid."""
    mailbox = LatestFrame()
    scheduler = Scheduler([CameraSlot("a", 1.0, mailbox)])
    assert mailbox.wanted_from == float("-inf")  # nothing analysed yet: any frame
    mailbox.put(_captured_frame("a", 100.0, keyframe=True))
    assert len(scheduler.take_ready(100.0, 4)) == 1
    assert mailbox.wanted_from == pytest.approx(100.5)  # due at 101, taken from half before
    scheduler.complete("a")
    mailbox.put(_captured_frame("a", 100.48))  # too soon: not taken, and the hint stays
    assert scheduler.take_ready(100.5, 4) == [] and mailbox.wanted_from == pytest.approx(100.5)
    mailbox.put(_captured_frame("a", 100.52))
    assert len(scheduler.take_ready(100.6, 4)) == 1
    assert mailbox.wanted_from == pytest.approx(101.5)
    scheduler.set_scale(0.5)  # rates halved: due every 2 s, taken from a second before
    assert mailbox.wanted_from == pytest.approx(101.0)
    scheduler.remove("a")
    assert mailbox.wanted_from == float("-inf")


def test_a_capture_clock_set_back_restarts_the_grid_instead_of_stopping_analyses() -> None:
    """Capture times are on the wall clock; NTP stepping it back an hour must not leave every
    frame "too soon" for an hour."""
    mailbox = LatestFrame()
    scheduler = Scheduler([CameraSlot("a", 1.0, mailbox)])
    for t in (5000.0, 5001.0):
        mailbox.put(_captured_frame("a", t))
        assert len(scheduler.take_ready(t, 4)) == 1
        scheduler.complete("a")
    mailbox.put(_captured_frame("a", 1401.0))  # the clock went back an hour
    assert len(scheduler.take_ready(1401.0, 4)) == 1
    scheduler.complete("a")
    assert mailbox.wanted_from == pytest.approx(1401.5)  # the grid restarted on it
    mailbox.put(_captured_frame("a", 1401.2))  # and keeps its rate from there
    assert scheduler.take_ready(1401.2, 4) == []
    mailbox.put(_captured_frame("a", 1402.0))
    assert len(scheduler.take_ready(1402.0, 4)) == 1


def test_controller_waits_out_start_up_and_sheds_gently_when_late_with_headroom() -> None:
    from pipeline.scheduler import RateController, RateSettings

    scheduler = Scheduler([CameraSlot(f"c{i}", 1.0, LatestFrame()) for i in range(10)])
    # No hold under the late scale here (that is the next test).
    settings = RateSettings(window_s=5.0, late_hold_s=0.0)
    controller = RateController(scheduler, settings, now=0.0)
    # Start-up: cameras connecting, everything slow. No change during the grace period.
    controller.record_batch(frames=2, busy_s=1.0, latencies=[6.0, 7.0])
    assert controller.maybe_adjust(5.0) is None and scheduler.scale == 1.0
    controller.record_batch(frames=2, busy_s=1.0, latencies=[6.0, 7.0])
    assert controller.maybe_adjust(10.0) is None and scheduler.scale == 1.0
    # Late, but the detector is mostly idle (CPU short elsewhere): lower gently, not to the
    # (meaningless) capacity figure.
    controller.record_batch(frames=5, busy_s=1.0, latencies=[2.2] * 5)
    change = controller.maybe_adjust(15.0)
    assert change is not None and change.reason == "latency above target"
    assert scheduler.scale == pytest.approx(0.8)
    # Far later (readers falling behind): by up to half per window, in proportion.
    controller.record_batch(frames=5, busy_s=1.0, latencies=[3.2] * 5)
    controller.maybe_adjust(20.0)
    assert scheduler.scale == pytest.approx(0.8 * 2.0 / 3.2)
    scheduler.set_scale(0.8)
    controller.record_batch(frames=5, busy_s=1.0, latencies=[12.0] * 5)
    controller.maybe_adjust(25.0)
    assert scheduler.scale == pytest.approx(0.4)
    scheduler.set_scale(0.8)
    # Saturated: straight to what the measured capacity sustains at 80 %.
    controller.record_batch(frames=20, busy_s=5.0, latencies=[0.5] * 20)  # 4 frames/s
    change = controller.maybe_adjust(30.0)
    assert change is not None and change.reason == "inference saturated"
    assert scheduler.scale == pytest.approx(0.8 * 4.0 / 10.0)
    # Idle and fast again: back up in steps.
    for t in (35.0, 40.0, 45.0, 50.0):
        controller.record_batch(frames=5, busy_s=0.1, latencies=[0.05] * 5)
        controller.maybe_adjust(t)
    assert scheduler.scale == 1.0


class _Instant:
    name = "instant"
    input_size = (416, 416)

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        return [Detections.empty() for _ in images]


def _frame(camera: str, sequence: int = 1) -> Frame:
    import time

    return Frame(camera, time.time(), np.zeros((8, 8, 3), np.uint8), (8, 8), sequence)


def _collect_in_background(batcher, stop):  # type: ignore[no-untyped-def]
    import time

    out: dict[str, object] = {}

    def run() -> None:
        out["batch"] = batcher.collect(stop)
        out["at"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_an_arriving_frame_wakes_the_waiting_batcher_without_polling() -> None:
    """Real threads and real time: the batcher sleeps (idle_s is 30 s here) until a mailbox
    announces a frame, then forms the batch at once; it does not look at the mailboxes
    again while nothing arrives."""
    import time

    from pipeline.batcher import Batcher

    boxes = {c: LatestFrame() for c in ("a", "b")}
    scheduler = Scheduler([CameraSlot(c, 1.0, box) for c, box in boxes.items()])
    looks = []
    take_ready = scheduler.take_ready

    def counted(now: float, limit: int):  # type: ignore[no-untyped-def]
        looks.append(now)
        return take_ready(now, limit)

    scheduler.take_ready = counted  # type: ignore[method-assign]
    batcher = Batcher(scheduler, _Instant(), max_batch=4, max_wait_s=0.0, idle_s=30.0)
    stop = threading.Event()
    thread, out = _collect_in_background(batcher, stop)
    time.sleep(0.5)
    assert "batch" not in out and len(looks) <= 2  # asleep, not polling
    put_at = time.monotonic()
    boxes["b"].put(_frame("b"))
    thread.join(5.0)
    batch = out["batch"]
    assert batch is not None and [i.slot.camera_id for i in batch.items] == ["b"]
    assert out["at"] - put_at < 5.0  # woken by the frame, not by the 30-s idle timeout


def test_a_batch_closes_when_full_before_max_wait_and_a_release_wakes_the_batcher() -> None:
    import time

    from pipeline.batcher import Batcher

    boxes = {c: LatestFrame() for c in ("a", "b", "c")}
    scheduler = Scheduler([CameraSlot(c, 100.0, box) for c, box in boxes.items()])
    batcher = Batcher(scheduler, _Instant(), max_batch=2, max_wait_s=30.0, idle_s=30.0)
    stop = threading.Event()
    thread, out = _collect_in_background(batcher, stop)
    boxes["a"].put(_frame("a"))
    time.sleep(0.2)
    boxes["b"].put(_frame("b"))  # the second of max_batch: the batch closes now, not in 30 s
    thread.join(5.0)
    assert not thread.is_alive()
    first = out["batch"]
    assert first is not None and [i.slot.camera_id for i in first.items] == ["a", "b"]

    # Camera a is in flight; its next frame waits until it is released, which wakes the
    # batcher (no frame arrives then).
    boxes["a"].put(_frame("a", 2))
    batcher = Batcher(scheduler, _Instant(), max_batch=2, max_wait_s=0.0, idle_s=30.0)
    thread, out = _collect_in_background(batcher, stop)
    time.sleep(0.3)
    assert "batch" not in out
    scheduler.complete("a")
    thread.join(5.0)
    assert not thread.is_alive()
    batch = out["batch"]
    assert batch is not None and [i.slot.camera_id for i in batch.items] == ["a"]


def test_stopping_wakes_a_batcher_that_waits_for_frames() -> None:
    from pipeline.batcher import Batcher

    scheduler = Scheduler([CameraSlot("a", 1.0, LatestFrame())])
    batcher = Batcher(scheduler, _Instant(), max_batch=4, max_wait_s=0.0, idle_s=30.0)
    stop = threading.Event()
    thread, out = _collect_in_background(batcher, stop)
    stop.set()
    scheduler.wake()
    thread.join(5.0)
    assert not thread.is_alive() and out["batch"] is None


def test_a_removed_camera_no_longer_wakes_the_batcher() -> None:
    box = LatestFrame()
    scheduler = Scheduler([CameraSlot("a", 1.0, box)])
    scheduler.wait_for_change(0)  # forget the start
    scheduler.remove("a")
    box.put(_frame("a"))
    assert not scheduler._changed.is_set()


def test_after_lateness_with_an_idle_detector_rates_come_back_only_under_the_late_scale() -> None:
    """Late while the detector idles means decoding is short of CPU: the detector's idle time
    is no measure of what the readers sustain, so raising stops under the scale that was late
    until ``late_hold_s`` has passed without lateness."""
    from pipeline.scheduler import RateController, RateSettings

    scheduler = Scheduler([CameraSlot(f"c{i}", 1.0, LatestFrame()) for i in range(10)])
    settings = RateSettings(window_s=5.0, grace_s=0.0, late_hold_s=30.0)
    controller = RateController(scheduler, settings, now=0.0)
    controller.record_batch(frames=5, busy_s=0.5, latencies=[6.0] * 5)  # readers 6 s behind
    assert controller.maybe_adjust(5.0) is not None
    assert scheduler.scale == pytest.approx(0.5)
    # Caught up, the detector idle: back up, but to 0.9 of the late scale, not to 1.
    for t in (10.0, 15.0, 20.0):
        controller.record_batch(frames=5, busy_s=0.1, latencies=[0.05] * 5)
        controller.maybe_adjust(t)
    assert scheduler.scale == pytest.approx(0.9)
    # On time for the whole hold: the ceiling goes, the configured rates come back.
    for t in (25.0, 30.0, 35.0, 40.0):
        controller.record_batch(frames=5, busy_s=0.1, latencies=[0.05] * 5)
        controller.maybe_adjust(t)
    assert scheduler.scale == 1.0
    assert [c.reason for c in controller.changes][:2] == ["latency above target", "load dropped"]
