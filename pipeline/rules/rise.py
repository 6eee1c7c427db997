"""Sudden rises of a count: ``rise_people`` more than the recent low, within ``within_s``.

Raw counts from a detector dip and spike for a frame or two (a person hidden behind
another, a reflection), and a dip followed by the true count looks like a rise. The rise is
therefore judged on a running median of the last five counts — short dips and spikes vanish,
a real step passes after three samples — and must then hold for ``hold_s``.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

from camera_adapters.zone_spec import SuddenRise
from pipeline.rules.persistence import Persistence

MEDIAN_OF = 5


@dataclass(frozen=True)
class Rise:
    baseline: int  # the recent low the count rose from
    count: int  # the (median-filtered) count it rose to
    since: float  # when the risen count was first seen

    @property
    def amount(self) -> int:
        return self.count - self.baseline


@dataclass
class RiseDetector:
    spec: SuddenRise
    floor: int  # the count must also reach this (the zone's min_people)
    fraction: float
    _recent: deque[int] = field(default_factory=lambda: deque(maxlen=MEDIAN_OF))
    _smoothed: deque[tuple[float, float]] = field(default_factory=deque)
    _baseline: float | None = None
    _hold: Persistence = field(init=False)
    _fired: bool = False

    def __post_init__(self) -> None:
        self._hold = Persistence(self.spec.hold_s, self.fraction)

    @property
    def smoothed(self) -> int:
        return round(self._smoothed[-1][1]) if self._smoothed else 0

    def reset(self) -> None:
        self._recent.clear()
        self._smoothed.clear()
        self._hold.reset()
        self._baseline = None
        self._fired = False

    def update(self, at: float, count: int, interval: float | None) -> Rise | None:
        """Feed one sample; returns the rise once, on the sample that confirms it."""
        self._recent.append(count)
        level = statistics.median(self._recent)
        smoothed = self._smoothed
        smoothed.append((at, level))
        while smoothed and smoothed[0][0] < at - self.spec.within_s:
            smoothed.popleft()
        if self._baseline is None:
            low = min(value for _, value in smoothed)
            if level - low >= self.spec.rise_people and level >= self.floor:
                self._baseline = low
        rising = (
            self._baseline is not None
            and level - self._baseline >= self.spec.rise_people
            and level >= self.floor
        )
        held = self._hold.update(at, rising, interval)
        if self._hold.since is None:  # the rise fell back: look for a new one
            self._baseline = None
            self._fired = False
            return None
        if held and not self._fired:
            self._fired = True
            assert self._baseline is not None
            return Rise(round(self._baseline), round(level), self._hold.since)
        return None
