"""Has a condition held for a duration, judged over samples that are sometimes wrong?

Person detectors miss people now and then, so a zone holding 25 people reads 25, 24, 19,
25 … A condition "held for T seconds" that any single miss resets would rarely fire on real
crowds; one that ignores misses would fire on noise. ``Persistence`` keeps a run going while
the misses in its sliding window stay within a budget of ``1 - fraction`` of the samples
expected in ``duration``, and declares it held when the run is ``duration`` old and the hits
in the last ``duration`` are at least ``fraction`` of the expected samples.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

_EPS = 1e-6


@dataclass
class SampleClock:
    """The typical interval between samples (median of the recent ones), for budgets."""

    _last: float | None = None
    _intervals: deque[float] = field(default_factory=lambda: deque(maxlen=15))

    def observe(self, at: float) -> float | None:
        if self._last is not None and at > self._last:
            self._intervals.append(at - self._last)
        self._last = at
        return self.interval

    @property
    def interval(self) -> float | None:
        return statistics.median(self._intervals) if self._intervals else None


@dataclass
class Persistence:
    """A condition that must hold for ``duration`` seconds in ``fraction`` of the samples."""

    duration: float
    fraction: float
    since: float | None = None  # first hit of the current run
    _window: deque[tuple[float, bool]] = field(default_factory=deque)

    def reset(self) -> None:
        self.since = None
        self._window.clear()

    def update(self, at: float, hit: bool, interval: float | None) -> bool:
        """Feed one sample; True while the condition counts as held."""
        if self.since is None:
            if not hit:
                return False
            self.since = at
            self._window.clear()
        window = self._window
        window.append((at, hit))
        while window and window[0][0] < at - self.duration - _EPS:
            window.popleft()
        hits = sum(1 for _, h in window if h)
        misses = len(window) - hits
        if misses > (1.0 - self.fraction) * self._expected(at, interval) + _EPS:
            self.reset()
            return self.update(at, hit, interval) if hit else False
        if not hit or at - self.since < self.duration - _EPS:
            return False
        if interval is None:
            return True
        return hits >= self.fraction * (self.duration / interval) - _EPS

    def _expected(self, at: float, interval: float | None) -> float:
        """Samples expected over the whole duration: misses are budgeted against that, so
        one early miss does not end a run that has barely begun."""
        if interval is not None:
            return self.duration / interval + 1.0
        samples = len(self._window)
        elapsed = at - (self.since or at)
        return samples if elapsed <= 0 else max(samples, samples * self.duration / elapsed)
