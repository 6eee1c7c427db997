"""Which camera is analysed next: due times per camera, fair order, rates that bend under load.

Each camera has a target rate (analyses per second). Due times are kept on the *capture*
clock, not the wall clock: a camera is due when its mailbox holds a frame captured at or
after its next target time (minus half an interval of tolerance). Taking frames the moment
they are due means a frame never sits in a mailbox waiting for a wall-clock tick, so the
end-to-end latency is the batch wait plus inference, whatever the phase of the camera's
keyframes. Targets advance by one interval per analysis, so the long-run rate is exact
even when frames only come at keyframes.

Fairness: due cameras are served most-overdue first (earliest target), so when more cameras
are due than fit in a batch, the ones left out are first in the next one; nobody starves.

Overload: when the detector cannot keep up, latency must not grow. ``RateController`` watches
how busy the inference workers are and how late results come, and scales every camera's
rate by one common factor (evenly, proportional to what each camera asked for). It logs and
reports each change and raises the rates again when the load drops.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from camera_adapters.frames import Frame

log = logging.getLogger(__name__)


class Mailbox(Protocol):
    """The newest-frame slot of a source (``camera_adapters.frames.LatestFrame``)."""

    def peek(self) -> Frame | None: ...

    def take(self) -> Frame | None: ...

    def subscribe(self, listener: Callable[[], None]) -> None: ...

    def unsubscribe(self, listener: Callable[[], None]) -> None: ...

    def want_from(self, captured_at: float) -> None: ...


@dataclass
class CameraSlot:
    """Scheduling state of one camera."""

    camera_id: str
    base_fps: float  # the configured analysis rate
    mailbox: Mailbox
    fps: float = 0.0  # the rate in force (base_fps × the controller's scale)
    target: float = -math.inf  # capture time the next analysed frame should have
    in_flight: bool = False
    served: int = 0
    last_captured_at: float | None = None
    ticket: int = 0  # dispatch order; breaks ties between equally overdue cameras

    def __post_init__(self) -> None:
        self.fps = self.fps or self.base_fps

    @property
    def interval(self) -> float:
        return 1.0 / self.fps

    @property
    def earliest(self) -> float:
        """The earliest capture time a frame may have to be analysed now."""
        return self.target - 0.5 * self.interval


def _stepped_back(slot: CameraSlot, moment: float) -> bool:
    """Whether ``moment`` (a capture time, or now) lies more than an interval before the
    capture of the last frame analysed: capture times are on the wall clock, and a clock set
    back (NTP stepping it) would otherwise leave every frame "too soon" until the clock
    caught up again."""
    last = slot.last_captured_at
    return last is not None and moment < last - slot.interval


@dataclass(frozen=True)
class Dispatched:
    """A frame taken for analysis, and when it was taken."""

    slot: CameraSlot
    frame: Frame
    taken_at: float


class Scheduler:
    """Decides which cameras' frames go into the next batch. Thread-safe."""

    def __init__(self, slots: Sequence[CameraSlot]) -> None:
        ids = [slot.camera_id for slot in slots]
        if len(set(ids)) != len(ids):
            raise ValueError("camera ids must be unique")
        self.slots = list(slots)
        self._by_id = {slot.camera_id: slot for slot in self.slots}
        self._lock = threading.Lock()
        self._tickets = 0
        self.scale = 1.0
        self.waiting = 0  # due cameras with a frame that the last call left out
        # Set whenever what take_ready would return may have changed: a frame arrived, a
        # camera was released, added or rescaled. Time passing alone never makes a camera
        # ready (a frame is taken only if captured after its due time), so the batcher
        # sleeps on this instead of polling every camera's mailbox.
        self._changed = threading.Event()
        for slot in self.slots:
            slot.mailbox.subscribe(self._changed.set)

    def slot(self, camera_id: str) -> CameraSlot:
        return self._by_id[camera_id]

    def add(self, slot: CameraSlot) -> None:
        """Schedule another camera (added while running), at the current rate scale."""
        with self._lock:
            if slot.camera_id in self._by_id:
                raise ValueError(f"camera {slot.camera_id} is already scheduled")
            slot.fps = slot.base_fps * self.scale
            self.slots.append(slot)
            self._by_id[slot.camera_id] = slot
        slot.mailbox.subscribe(self._changed.set)
        self._changed.set()

    def remove(self, camera_id: str) -> CameraSlot | None:
        """Stop scheduling a camera; a frame of it already in flight still completes."""
        with self._lock:
            slot = self._by_id.pop(camera_id, None)
            if slot is not None:
                self.slots.remove(slot)
        if slot is not None:
            slot.mailbox.unsubscribe(self._changed.set)
            slot.mailbox.want_from(-math.inf)
        return slot

    @property
    def demand_fps(self) -> float:
        """Analyses per second all cameras ask for at their configured rates."""
        return sum(slot.base_fps for slot in self.slots)

    def take_ready(self, now: float, limit: int) -> list[Dispatched]:
        """Take up to ``limit`` due frames, most overdue camera first, marking them in flight."""
        taken: list[Dispatched] = []
        with self._lock:
            candidates = [
                s
                for s in self.slots
                if not s.in_flight and (s.earliest <= now or _stepped_back(s, now))
            ]
            candidates.sort(key=lambda s: (s.target, s.ticket))
            ready = 0
            for slot in candidates:
                frame = slot.mailbox.peek()
                if frame is None:
                    continue  # nothing new yet
                if frame.captured_at < slot.earliest and not _stepped_back(slot, frame.captured_at):
                    continue  # captured too soon after the last analysis
                ready += 1
                if len(taken) >= limit:
                    continue  # counted as waiting: it goes first next time
                frame = slot.mailbox.take() or frame
                self._dispatch(slot, frame)
                taken.append(Dispatched(slot, frame, now))
            self.waiting = ready - len(taken)
        return taken

    def wait_for_change(self, timeout: float) -> None:
        """Sleep until a frame arrives, a camera is released, added or rescaled (or
        ``timeout``). A change between the last ``take_ready`` and this call ends the wait at
        once, so none is missed."""
        self._changed.wait(timeout)
        self._changed.clear()

    def wake(self) -> None:
        """End the current ``wait_for_change`` (e.g. to stop)."""
        self._changed.set()

    def _dispatch(self, slot: CameraSlot, frame: Frame) -> None:
        slot.in_flight = True
        slot.served += 1
        self._tickets += 1
        slot.ticket = self._tickets
        stepped_back = _stepped_back(slot, frame.captured_at)
        slot.last_captured_at = frame.captured_at
        if (
            math.isinf(slot.target)
            or frame.captured_at >= slot.target + slot.interval
            or stepped_back
        ):
            # The first frame, one more than an interval late (a stall, a sparse keyframe),
            # or the capture clock stepped back: start the grid again from it, so a late
            # camera does not earn a burst and a clock set back does not stop analyses.
            slot.target = frame.captured_at + slot.interval
        else:
            # Advance by exactly one interval: frames taken a little early or late around
            # the grid average out to the configured rate.
            slot.target += slot.interval
        slot.mailbox.want_from(slot.earliest)

    def complete(self, camera_id: str) -> None:
        """The camera's frame has been analysed; it may be dispatched again when due."""
        with self._lock:
            slot = self._by_id.get(camera_id)
            if slot is not None:  # None: removed while its frame was being analysed
                slot.in_flight = False
        self._changed.set()  # a newer frame may be waiting in its mailbox

    def set_scale(self, scale: float) -> None:
        """Scale every camera's configured rate by ``scale`` (the same factor for all)."""
        with self._lock:
            self.scale = scale
            for slot in self.slots:
                slot.fps = slot.base_fps * scale
                if not math.isinf(slot.target):
                    slot.mailbox.want_from(slot.earliest)
        self._changed.set()


@dataclass(frozen=True)
class RateSettings:
    """When the controller lowers and raises analysis rates (see ``PipelineSettings``)."""

    enabled: bool = True
    target_utilisation: float = 0.8
    high_utilisation: float = 0.92
    low_utilisation: float = 0.6
    latency_target_s: float = 2.0
    min_scale: float = 0.1
    window_s: float = 5.0
    workers: int = 1
    grace_s: float | None = None  # no changes this long after start (default 2 windows)
    # After rates were lowered for latency with the detector not busy (short of CPU for
    # decoding), raising stays under the scale that was late for this long: the detector's
    # idle time says nothing about whether the readers would keep up again.
    late_hold_s: float = 60.0


@dataclass(frozen=True)
class RateChange:
    old_scale: float
    new_scale: float
    utilisation: float
    capacity_fps: float
    demand_fps: float
    latency_p95_s: float | None
    reason: str


@dataclass
class _Window:
    started: float
    busy_s: float = 0.0
    frames: int = 0
    latencies: list[float] = field(default_factory=list)


def _grace(settings: RateSettings) -> float:
    return settings.grace_s if settings.grace_s is not None else 2 * settings.window_s


class RateController:
    """Scales analysis rates so that inference keeps up and latency stays bounded.

    Every ``window_s`` it compares the inference workers' busy time with the wall time. Above
    ``high_utilisation`` it lowers the common scale to what the measured capacity sustains at
    ``target_utilisation``. With the 95th-percentile latency above its target (which includes
    readers falling behind the streams: capture times come from the streams' clocks) it
    lowers it in proportion to how late. Below ``low_utilisation`` with latency well under
    target it raises the scale again, gradually, up to the configured rates. Nothing changes
    during the first two windows, while cameras connect and probe their streams.
    """

    def __init__(
        self,
        scheduler: Scheduler,
        settings: RateSettings,
        now: float,
        on_change: Callable[[RateChange], None] | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.settings = settings
        self.on_change = on_change
        self._lock = threading.Lock()
        self._window = _Window(now)
        self._grace_until = now + _grace(settings)
        self.last_utilisation = 0.0
        self.last_capacity_fps: float | None = None
        self.changes: list[RateChange] = []
        self._late_scale = 1.0  # the scale last found late with the detector not busy ...
        self._late_until = float("-inf")  # ... and until when raising stays under it

    def record_batch(self, frames: int, busy_s: float, latencies: Sequence[float]) -> None:
        with self._lock:
            self._window.busy_s += busy_s
            self._window.frames += frames
            self._window.latencies.extend(latencies)

    def maybe_adjust(self, now: float) -> RateChange | None:
        """Close the window when it is due and change the scale if needed."""
        with self._lock:
            window = self._window
            elapsed = now - window.started
            if elapsed < self.settings.window_s:
                return None
            self._window = _Window(now)
        return self._decide(window, elapsed, now)

    def _decide(self, window: _Window, elapsed: float, now: float) -> RateChange | None:
        s = self.settings
        utilisation = window.busy_s / (elapsed * s.workers)
        self.last_utilisation = utilisation
        if window.frames and window.busy_s > 0:
            self.last_capacity_fps = s.workers * window.frames / window.busy_s
        p95 = float(np.percentile(window.latencies, 95)) if window.latencies else None
        if not s.enabled or not window.frames:
            return None
        if window.started < self._grace_until:
            return None  # cameras are still connecting: their start-up is no measure of load
        scale = self.scheduler.scale
        demand = self.scheduler.demand_fps
        capacity = self.last_capacity_fps or 0.0
        sustainable = s.target_utilisation * capacity / demand if demand else 1.0
        late = p95 is not None and p95 > s.latency_target_s
        if utilisation >= s.high_utilisation:
            # The detector is the bottleneck: go straight to what its capacity sustains.
            new = min(scale * 0.95, sustainable)
            reason = "inference saturated"
        elif late:
            # Late although the detector has headroom (the machine is short of CPU, e.g. for
            # decoding, and the readers fall behind the streams): shed analysis work in
            # proportion to how late, by a fifth to a half per window, as the capacity figure
            # is no guide. Halving at once matters when decoding is short: with a keyframe
            # every 2 s, 0.8 and 0.64 analyses/s still decode between keyframes (further
            # into each GOP than 1/s), 0.5 decodes keyframes only.
            assert p95 is not None
            new = scale * max(0.5, min(0.8, s.latency_target_s / p95))
            reason = "latency above target"
            self._late_scale, self._late_until = scale, now + s.late_hold_s
        elif (
            scale < 1.0
            and utilisation <= s.low_utilisation
            and (p95 is None or p95 <= 0.5 * s.latency_target_s)
        ):
            new = min(1.0, max(scale * 1.25, min(scale * 2.0, sustainable)))
            if now < self._late_until:
                # The idle detector is no guide when decoding was short: back up to just
                # under the scale that was late, not toward the detector's capacity (which
                # took 64 cameras at 1/s from 0.48 straight back to 0.97, still behind).
                new = min(new, 0.9 * self._late_scale)
                if new <= scale:
                    return None
            reason = "load dropped"
        else:
            return None
        new = min(1.0, max(s.min_scale, new))
        if abs(new - scale) < 0.01:
            return None
        change = RateChange(scale, new, utilisation, capacity, demand, p95, reason)
        self.scheduler.set_scale(new)
        self.changes.append(change)
        extra = {
            "scale_from": round(scale, 3),
            "scale_to": round(new, 3),
            "utilisation": round(utilisation, 3),
            "capacity_fps": round(capacity, 2),
            "demand_fps": round(demand, 2),
            "latency_p95_s": None if p95 is None else round(p95, 3),
            "reason": reason,
        }
        if new < scale:
            log.warning("inference cannot keep up: analysis rates lowered", extra=extra)
        else:
            log.info("load dropped: analysis rates raised", extra=extra)
        if self.on_change is not None:
            self.on_change(change)
        return change
