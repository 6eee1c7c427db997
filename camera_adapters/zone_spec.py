"""Zones drawn on a camera's image and the gathering rules that apply to them.

Validated here, in the lowest package, so that a bad zone is refused when a camera is added
(through the config file or the API), not discovered later as a rule that never fires. The
rules themselves run in ``pipeline/``; docs/gathering.md explains every field with examples.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SLUG = r"^[a-z0-9][a-z0-9_-]{0,63}$"

Slug = Annotated[
    str,
    Field(
        pattern=SLUG,
        description="Lower-case letters, digits, '-' and '_' (max 64), e.g. plaza-north",
    ),
]
Point = tuple[float, float]
SeverityName = Literal["notice", "warning", "critical"]

# Pedestrian level-of-service bands for standing (queuing) crowds, after Fruin (1971):
# LOS D starts at 0.7 m² per person (≈1.43 people/m²: no movement without disturbing
# others), LOS E at 0.3 m² (≈3.33 people/m²: body contact unavoidable). See docs/gathering.md.
FRUIN_LOS_D_PER_M2 = 1.43
FRUIN_LOS_E_PER_M2 = 3.33


class SeverityStep(BaseModel):
    """What lifts an episode to one severity level: a people count, a density, or either."""

    model_config = ConfigDict(extra="forbid")

    people: int | None = Field(
        None,
        ge=1,
        description="People in the zone that reach this level (default: a multiple of "
        "min_people, see SeverityLevels).",
    )
    density_per_m2: float | None = Field(
        None,
        gt=0.0,
        le=10.0,
        description="People per m² on the ground that reach this level; needs the camera's "
        "`calibration` (ignored without it).",
    )


class SeverityLevels(BaseModel):
    """When an open episode escalates from ``notice`` to ``warning`` and ``critical``.

    Every episode starts at least at ``notice``. Defaults: warning at twice ``min_people`` or
    1.43 people/m² (Fruin LOS D), critical at five times ``min_people`` or 3.33 people/m²
    (Fruin LOS E) — whichever is reached first.
    """

    model_config = ConfigDict(extra="forbid")

    warning: SeverityStep = Field(
        default_factory=lambda: SeverityStep(density_per_m2=FRUIN_LOS_D_PER_M2)
    )
    critical: SeverityStep = Field(
        default_factory=lambda: SeverityStep(density_per_m2=FRUIN_LOS_E_PER_M2)
    )


WARNING_PEOPLE_FACTOR = 2
CRITICAL_PEOPLE_FACTOR = 5


class SuddenRise(BaseModel):
    """A fast rise in the count: ``rise_people`` more within ``within_s``, raised at once.

    Judged on a running median of the last five counts, so one or two frames of missed
    detections neither fake a rise nor hide one, and the risen count must hold for
    ``hold_s`` (a stream of people walking through is not a gathering).
    """

    model_config = ConfigDict(extra="forbid")

    rise_people: int = Field(ge=1, description="How many more people than the recent low.")
    within_s: float = Field(20.0, gt=0.0, le=600.0, description="Over how many seconds.")
    hold_s: float = Field(
        5.0, ge=0.0, le=120.0, description="How long the risen count must hold before the alert."
    )
    severity: SeverityName = Field(
        "warning", description="Lowest severity of a sudden gathering (it may be higher)."
    )
    cooldown_s: float = Field(
        60.0,
        ge=0.0,
        le=3600.0,
        description="After an episode in this zone ends, a rise opens a new one only after this "
        "long (people coming back after a dispersal or an occlusion are not sudden); the "
        "sustained rule is not affected.",
    )


class GatheringThresholds(BaseModel):
    """When a zone counts as gathered, when that ends, and how severe it is.

    A gathering starts when the zone holds ``min_people`` (or ``min_density_per_m2``) in at
    least ``min_fraction`` of the samples over ``min_duration_s``, or at once on a ``sudden``
    rise. It ends only after the count has stayed below ``exit_people`` for
    ``clear_after_s``: the lower exit bound and the hold stop a count that hovers at the
    limit from flapping.
    """

    model_config = ConfigDict(extra="forbid")

    min_people: int = Field(20, ge=1, description="People in the zone that make a gathering.")
    min_duration_s: float = Field(
        30.0, ge=0.0, le=3600.0, description="How long the zone must hold them (dwell)."
    )
    min_fraction: float = Field(
        0.8,
        gt=0.0,
        le=1.0,
        description="Share of samples in the dwell window that must meet the count; "
        "tolerates missed detections.",
    )
    exit_people: int | None = Field(
        None,
        ge=1,
        description="The gathering ends when the count stays below this (default: 80 % of "
        "min_people, at least 1).",
    )
    clear_after_s: float = Field(
        30.0,
        ge=0.0,
        le=3600.0,
        description="How long the count must stay below exit_people before the episode ends "
        "(the cooldown).",
    )
    min_density_per_m2: float | None = Field(
        None,
        gt=0.0,
        le=10.0,
        description="Also gathered at this many people per m² (calibrated cameras only).",
    )
    escalate_after_s: float = Field(
        5.0,
        ge=0.0,
        le=600.0,
        description="How long a higher severity level must hold before the episode escalates.",
    )
    sudden: SuddenRise | None = Field(
        None, description="Alert on a fast rise of the count, before the dwell passes (off)."
    )
    severity: SeverityLevels = Field(default_factory=SeverityLevels)

    @property
    def exit_bound(self) -> int:
        """The count below which the gathering is over (exit hysteresis)."""
        if self.exit_people is not None:
            return self.exit_people
        return max(1, math.floor(0.8 * self.min_people))

    @property
    def exit_density(self) -> float | None:
        return None if self.min_density_per_m2 is None else 0.8 * self.min_density_per_m2

    def level_people(self) -> tuple[int, int]:
        """People for (warning, critical), with the defaults filled in."""
        warning = self.severity.warning.people or WARNING_PEOPLE_FACTOR * self.min_people
        critical = self.severity.critical.people or CRITICAL_PEOPLE_FACTOR * self.min_people
        return warning, critical

    @model_validator(mode="after")
    def _consistent(self) -> GatheringThresholds:
        if self.exit_people is not None and self.exit_people > self.min_people:
            raise ValueError(
                f"exit_people ({self.exit_people}) must not exceed min_people "
                f"({self.min_people}): the gathering ends below the lower bound"
            )
        warning, critical = self.level_people()
        if warning <= self.min_people:
            raise ValueError(
                f"severity.warning.people ({warning}) must be above min_people ({self.min_people})"
            )
        if critical <= warning:
            raise ValueError(
                f"severity.critical.people ({critical}) must be above the warning level ({warning})"
            )
        low, high = self.severity.warning.density_per_m2, self.severity.critical.density_per_m2
        if low is not None and high is not None and high <= low:
            raise ValueError(
                f"severity.critical.density_per_m2 ({high}) must be above the warning level ({low})"
            )
        return self


def polygon_problems(points: list[Point]) -> str | None:
    """Why a polygon is unusable as a zone, or None when it is fine."""
    if len(points) < 3:
        return f"a zone polygon needs at least 3 points, got {len(points)}"
    for i, (x, y) in enumerate(points):
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            return (
                f"point {i} ({x}, {y}) is outside the image: zone coordinates are fractions "
                "of the image width and height, between 0 and 1"
            )
    return shape_problems(points)


def shape_problems(points: list[Point]) -> str | None:
    """Self-intersection or zero area of a closed polygon, in any coordinate system."""
    n = len(points)
    for i in range(n):
        a1, a2 = points[i], points[(i + 1) % n]
        for j in range(i + 1, n):
            if j == i or (j + 1) % n == i or j == (i + 1) % n:
                continue  # adjacent edges share a vertex
            b1, b2 = points[j], points[(j + 1) % n]
            if _segments_cross(a1, a2, b1, b2):
                return (
                    f"the polygon's edges {i}-{(i + 1) % n} and {j}-{(j + 1) % n} cross each "
                    "other: list the points in order around the zone's outline"
                )
    if abs(signed_area(points)) < 1e-6:
        return "the polygon has no area (its points are on one line)"
    return None


def signed_area(points: list[Point]) -> float:
    """Shoelace area, positive for counter-clockwise points in a y-up frame."""
    return 0.5 * sum(
        x1 * y2 - x2 * y1
        for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True)
    )


def _orient(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _segments_cross(a1: Point, a2: Point, b1: Point, b2: Point) -> bool:
    d1, d2 = _orient(b1, b2, a1), _orient(b1, b2, a2)
    d3, d4 = _orient(a1, a2, b1), _orient(a1, a2, b2)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True

    def on_segment(p: Point, q: Point, r: Point) -> bool:
        return min(p[0], q[0]) <= r[0] <= max(p[0], q[0]) and min(p[1], q[1]) <= r[1] <= max(
            p[1], q[1]
        )

    return (
        (d1 == 0 and on_segment(b1, b2, a1))
        or (d2 == 0 and on_segment(b1, b2, a2))
        or (d3 == 0 and on_segment(a1, a2, b1))
        or (d4 == 0 and on_segment(a1, a2, b2))
    )


class ZoneSpec(BaseModel):
    """A polygon on the image where gatherings are watched; people count by their foot point."""

    model_config = ConfigDict(extra="forbid")

    id: Slug
    name: str = Field(min_length=1, description="Name operators see, e.g. 'Plaza front'.")
    polygon: list[Point] = Field(
        description="Outline in normalised image coordinates: [[x, y], ...] with 0..1 "
        "fractions of width and height, (0, 0) top-left."
    )
    gathering: GatheringThresholds = Field(default_factory=GatheringThresholds)

    @field_validator("polygon")
    @classmethod
    def _valid_polygon(cls, points: list[Point]) -> list[Point]:
        problem = polygon_problems(points)
        if problem:
            raise ValueError(problem)
        return points


def _cluster_defaults() -> GatheringThresholds:
    return GatheringThresholds(min_people=10)


class ClusterSpec(BaseModel):
    """Zone-free gathering: a tight group of people anywhere in the view.

    People are grouped by density-based clustering (DBSCAN) of where they stand: on the
    ground in metres when the camera is calibrated, otherwise by image distance measured in
    body heights (a person's box height stands in for the local scale of the image). Each
    group is followed over time and runs the same episode rules as a zone.
    """

    model_config = ConfigDict(extra="forbid")

    radius_m: float = Field(
        2.0,
        gt=0.0,
        le=20.0,
        description="Neighbours stand at most this far apart on the ground (calibrated).",
    )
    radius_heights: float = Field(
        1.2,
        gt=0.0,
        le=10.0,
        description="Without calibration: at most this many box heights apart in the image.",
    )
    min_neighbours: int = Field(
        4,
        ge=1,
        le=50,
        description="A person is in a group's core with this many people (incl. themself) "
        "within the radius: people walking in single file (two neighbours each) do not "
        "chain into a group at the default.",
    )
    gathering: GatheringThresholds = Field(
        default_factory=_cluster_defaults,
        description="The episode rules of each group (min_people defaults to 10 here).",
    )
