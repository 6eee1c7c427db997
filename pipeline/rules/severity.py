"""Severity levels from a count and a density, with the zone's thresholds."""

from __future__ import annotations

from dataclasses import dataclass

from alerting.events import Severity
from camera_adapters.zone_spec import GatheringThresholds


@dataclass(frozen=True)
class Step:
    severity: Severity
    people: int
    density_per_m2: float | None

    def reached_by(self, count: int, density: float | None) -> bool:
        if count >= self.people:
            return True
        return (
            density is not None
            and self.density_per_m2 is not None
            and (density >= self.density_per_m2)
        )

    def describe(self, count: int, density: float | None) -> str:
        if count >= self.people:
            return f"{count} people ≥ {self.people} ({self.severity} level)"
        return (
            f"{density:.2f} people/m² ≥ {self.density_per_m2:g} ({self.severity} level)"
            if density is not None
            else f"{self.severity} level"
        )


@dataclass(frozen=True)
class SeverityLadder:
    """The steps above ``notice`` (every episode is at least a notice)."""

    steps: tuple[Step, ...]

    @classmethod
    def from_thresholds(cls, thresholds: GatheringThresholds) -> SeverityLadder:
        warning_people, critical_people = thresholds.level_people()
        levels = thresholds.severity
        return cls(
            (
                Step(Severity.WARNING, warning_people, levels.warning.density_per_m2),
                Step(Severity.CRITICAL, critical_people, levels.critical.density_per_m2),
            )
        )

    def level(self, count: int, density: float | None) -> Severity:
        """The highest level this sample reaches."""
        reached = Severity.NOTICE
        for step in self.steps:
            if step.reached_by(count, density):
                reached = step.severity
        return reached

    def step_for(self, severity: Severity) -> Step | None:
        return next((s for s in self.steps if s.severity is severity), None)


def highest(*levels: Severity) -> Severity:
    return max(levels, key=lambda level: level.rank)
