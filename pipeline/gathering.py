"""Gathering episodes: turning one place's count over time into started/escalated/ended.

One ``GatheringMonitor`` watches one zone (or one group of people, see ``pipeline.clusters``)
and keeps at most one episode open. Operators get one case per gathering, so every rule
feeds the same episode:

- **sustained**: at least ``min_people`` (or ``min_density_per_m2``) for ``min_duration_s``,
  in ``min_fraction`` of the samples (missed detections do not reset the clock) → ``started``;
- **sudden**: the count rose by ``sudden.rise_people`` within ``sudden.within_s`` and held
  for ``sudden.hold_s`` → ``started`` at once, before the dwell passes. When the sustained
  rule confirms the same gathering later, nothing new is raised (``rules`` on the next event
  records it); a sudden rise inside an open episode escalates it if that raises its severity;
- **escalated**: the count or density reached a higher severity level and held it for
  ``escalate_after_s``. Severity only goes up, each level at most once per episode;
- **ended**: the count stayed below ``exit_people`` (below ``min_people``: hysteresis) for
  ``clear_after_s``. After that a new episode needs a fresh dwell, or a sudden rise once
  ``sudden.cooldown_s`` has passed.

So an episode raises one ``started``, at most two ``escalated`` and one ``ended`` however
the count hovers or flaps.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from alerting.events import Severity
from camera_adapters.zone_spec import GatheringThresholds
from pipeline.rules.persistence import Persistence, SampleClock
from pipeline.rules.rise import Rise, RiseDetector
from pipeline.rules.severity import SeverityLadder, highest


class Phase(StrEnum):
    IDLE = "idle"
    PENDING = "pending"  # gathered, dwell time not yet reached
    ACTIVE = "active"  # episode open


@dataclass(frozen=True)
class RuleEvent:
    kind: str  # "started" | "escalated" | "ended"
    episode_id: str
    sequence: int  # position of this event within its episode
    rule: str  # the rule that caused this event: sustained | sudden | cluster
    severity: Severity
    count: int
    peak_count: int
    threshold: int
    episode_started_at: float
    at: float
    reason: str
    rules: tuple[str, ...]  # every rule that has confirmed the episode so far
    density: float | None = None
    ended_at: float | None = None
    count_rise: int | None = None


@dataclass
class _Episode:
    id: str
    started_at: float
    rule: str
    severity: Severity
    rules: list[str]
    sequence: int = 0


@dataclass
class GatheringMonitor:
    """The episode state of one zone or group; feed it every analysed sample."""

    thresholds: GatheringThresholds
    rule: str = "sustained"  # the name of the dwell rule (``cluster`` for groups)
    new_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)
    _clock: SampleClock = field(init=False, default_factory=SampleClock)
    _dwell: Persistence = field(init=False)
    _clear: Persistence = field(init=False)
    _levels: dict[Severity, Persistence] = field(init=False)
    _ladder: SeverityLadder = field(init=False)
    _rise: RiseDetector | None = field(init=False)
    _recent: deque[int] = field(init=False, default_factory=lambda: deque(maxlen=3))
    _episode: _Episode | None = None
    _peak: int = 0
    _ended_at: float | None = None

    def __post_init__(self) -> None:
        t = self.thresholds
        self._dwell = Persistence(t.min_duration_s, t.min_fraction)
        self._clear = Persistence(t.clear_after_s, 1.0)
        self._ladder = SeverityLadder.from_thresholds(t)
        self._levels = {
            step.severity: Persistence(t.escalate_after_s, t.min_fraction)
            for step in self._ladder.steps
        }
        self._rise = (
            RiseDetector(t.sudden, floor=t.min_people, fraction=t.min_fraction)
            if t.sudden is not None
            else None
        )

    @property
    def phase(self) -> Phase:
        if self._episode is not None:
            return Phase.ACTIVE
        return Phase.PENDING if self._dwell.since is not None else Phase.IDLE

    def update(self, at: float, count: int, density: float | None = None) -> list[RuleEvent]:
        """Feed one analysed sample (capture time, people, people/m²); returns events raised."""
        t = self.thresholds
        interval = self._clock.observe(at)
        self._recent.append(count)
        gathered = count >= t.min_people or (
            t.min_density_per_m2 is not None
            and density is not None
            and density >= t.min_density_per_m2
        )
        dwelled = self._dwell.update(at, gathered, interval)
        level = self._ladder.level(count, density)
        held = Severity.NOTICE
        for severity, persistence in self._levels.items():
            if persistence.update(at, level.rank >= severity.rank, interval):
                held = highest(held, severity)
        rise = self._rise.update(at, count, interval) if self._rise is not None else None

        if self._episode is None:
            return self._maybe_start(at, count, density, dwelled, held, rise)
        episode = self._episode
        self._peak = max(self._peak, self._typical())
        if dwelled and self.rule not in episode.rules:
            episode.rules.append(self.rule)
        exit_density = t.exit_density
        below = count < t.exit_bound and (
            exit_density is None or density is None or density < exit_density
        )
        if self._clear.update(at, below, interval):
            return [self._end(at, count, density)]
        target, cause, reason = held, self.rule, None
        if rise is not None and self._rise is not None:
            if "sudden" not in episode.rules:
                episode.rules.append("sudden")
            sudden_level = Severity(self._rise.spec.severity)
            if sudden_level.rank > target.rank:
                target, cause = sudden_level, "sudden"
                reason = self._rise_reason(rise)
        if target.rank > episode.severity.rank:
            if reason is None:
                step = self._ladder.step_for(target)
                reason = step.describe(count, density) if step else str(target)
            episode.severity = target
            return [self._event("escalated", at, count, density, rule=cause, reason=reason)]
        return []

    def _maybe_start(
        self,
        at: float,
        count: int,
        density: float | None,
        dwelled: bool,
        held: Severity,
        rise: Rise | None,
    ) -> list[RuleEvent]:
        t = self.thresholds
        if dwelled:
            assert self._dwell.since is not None
            self._open(self._dwell.since, self.rule, held, count)
            reason = (
                f"at least {t.min_people} people for {t.min_duration_s:g} s (now {count})"
                if count >= t.min_people or density is None
                else f"at least {t.min_density_per_m2:g} people/m² for {t.min_duration_s:g} s "
                f"(now {density:.2f})"
            )
            return [self._event("started", at, count, density, rule=self.rule, reason=reason)]
        cooling = (
            self._ended_at is not None
            and self._rise is not None
            and (at - self._ended_at < self._rise.spec.cooldown_s)
        )
        if rise is not None and self._rise is not None and not cooling:
            level = highest(Severity(self._rise.spec.severity), held)
            self._open(rise.since, "sudden", level, count)
            return [
                self._event(
                    "started",
                    at,
                    count,
                    density,
                    rule="sudden",
                    reason=self._rise_reason(rise),
                    count_rise=rise.amount,
                )
            ]
        return []

    def _rise_reason(self, rise: Rise) -> str:
        assert self._rise is not None
        return (
            f"count rose by {rise.amount} (from {rise.baseline} to {rise.count}) within "
            f"{self._rise.spec.within_s:g} s"
        )

    def _typical(self) -> int:
        """The median of the last three counts: a one-frame spike is not a peak."""
        return sorted(self._recent)[len(self._recent) // 2]

    def _open(self, since: float, rule: str, severity: Severity, count: int) -> None:
        self._episode = _Episode(self.new_id(), since, rule, severity, [rule])
        self._peak = max(self._typical(), count)
        self._clear.reset()

    def close(self, at: float, count: int, density: float | None, reason: str) -> RuleEvent | None:
        """End the open episode now, for ``reason`` (its zone was changed or removed), so
        that its case is closed rather than left open forever; None when none is open."""
        if self._episode is None:
            return None
        return self._end(at, count, density, reason)

    def _end(
        self, at: float, count: int, density: float | None, reason: str | None = None
    ) -> RuleEvent:
        assert self._episode is not None
        t = self.thresholds
        event = self._event(
            "ended",
            at,
            count,
            density,
            rule=self._episode.rule,
            reason=reason or f"below {t.exit_bound} people for {t.clear_after_s:g} s",
            ended_at=at,
        )
        self._episode = None
        self._ended_at = at
        # A new episode needs fresh evidence: nothing carries over from the old one.
        self._dwell.reset()
        for persistence in self._levels.values():
            persistence.reset()
        return event

    def _event(
        self,
        kind: str,
        at: float,
        count: int,
        density: float | None,
        *,
        rule: str,
        reason: str,
        ended_at: float | None = None,
        count_rise: int | None = None,
    ) -> RuleEvent:
        episode = self._episode
        assert episode is not None
        episode.sequence += 1
        return RuleEvent(
            kind=kind,
            episode_id=episode.id,
            sequence=episode.sequence,
            rule=rule,
            severity=episode.severity,
            count=count,
            peak_count=self._peak,
            threshold=self.thresholds.min_people,
            episode_started_at=episode.started_at,
            at=at,
            reason=reason,
            rules=tuple(episode.rules),
            density=None if density is None else round(density, 3),
            ended_at=ended_at,
            count_rise=count_rise,
        )
