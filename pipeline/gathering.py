"""Gathering rules: turning a zone's count over time into episodes.

An episode opens (``started``) when the zone has held at least N people for T seconds,
judged over its samples so that a few missed detections do not reset the clock, and closes
(``ended``) only after the count has stayed below N for ``clear_after_s`` — so a count that
hovers at the limit produces one episode, not a flood of alerts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from camera_adapters.zone_spec import GatheringThresholds


class Phase(StrEnum):
    IDLE = "idle"
    PENDING = "pending"  # enough people, dwell time not yet reached
    ACTIVE = "active"  # episode open


@dataclass(frozen=True)
class RuleEvent:
    kind: str  # "started" | "ended"
    episode_id: str
    sequence: int  # position of this event within its episode
    rule: str
    count: int
    peak_count: int
    threshold: int
    episode_started_at: float
    at: float
    ended_at: float | None = None


@dataclass
class SustainedGathering:
    """Per-zone episode state for "at least N people for at least T seconds"."""

    thresholds: GatheringThresholds
    new_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)
    phase: Phase = Phase.IDLE
    _hits: int = 0
    _misses: int = 0
    _candidate_since: float | None = None
    _last_met_at: float | None = None
    _episode_id: str | None = None
    _episode_started_at: float = 0.0
    _sequence: int = 0
    _peak: int = 0

    def update(self, at: float, count: int) -> list[RuleEvent]:
        """Feed one analysed sample (capture time, people in zone); returns events raised."""
        need = self.thresholds.min_people
        met = count >= need
        if met:
            self._last_met_at = at
        if self.phase is Phase.ACTIVE:
            self._peak = max(self._peak, count)
            assert self._last_met_at is not None
            if not met and at - self._last_met_at >= self.thresholds.clear_after_s:
                return [self._end(at, count)]
            return []
        return self._watch(at, count, met)

    def _watch(self, at: float, count: int, met: bool) -> list[RuleEvent]:
        if self._candidate_since is None:
            if not met:
                return []
            self._candidate_since = at
            self._hits = self._misses = 0
            self._peak = 0
            self.phase = Phase.PENDING
        if met:
            self._hits += 1
            self._peak = max(self._peak, count)
        else:
            self._misses += 1
        samples = self._hits + self._misses
        elapsed = at - self._candidate_since
        dwell = self.thresholds.min_duration_s
        # Misses are budgeted over the whole dwell window, estimated from the sample rate so
        # far, so one missed detection early on does not throw the gathering away.
        expected = samples if elapsed <= 0 else max(samples, samples * dwell / elapsed)
        if self._misses > (1.0 - self.thresholds.min_fraction) * expected:
            self._candidate_since = None
            self.phase = Phase.IDLE
            return self._watch(at, count, met) if met else []
        if met and elapsed >= dwell:
            return [self._start(at, count)]
        return []

    def _start(self, at: float, count: int) -> RuleEvent:
        self.phase = Phase.ACTIVE
        self._episode_id = self.new_id()
        self._episode_started_at = self._candidate_since or at
        self._sequence = 0
        self._peak = max(self._peak, count)
        return self._event("started", at, count)

    def _end(self, at: float, count: int) -> RuleEvent:
        event = self._event("ended", at, count, ended_at=at)
        self.phase = Phase.IDLE
        self._candidate_since = None
        self._episode_id = None
        return event

    def _event(self, kind: str, at: float, count: int, ended_at: float | None = None) -> RuleEvent:
        assert self._episode_id is not None
        self._sequence += 1
        return RuleEvent(
            kind=kind,
            episode_id=self._episode_id,
            sequence=self._sequence,
            rule="sustained",
            count=count,
            peak_count=self._peak,
            threshold=self.thresholds.min_people,
            episode_started_at=self._episode_started_at,
            at=at,
            ended_at=ended_at,
        )
