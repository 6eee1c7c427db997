"""Zones drawn on a camera's image and the gathering thresholds that apply to each.

Validated here, in the lowest package, so that a bad zone is refused when a camera is added
(through the config file or the API), not discovered later as a rule that never fires.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

SLUG = r"^[a-z0-9][a-z0-9_-]{0,63}$"

Slug = Annotated[
    str,
    Field(
        pattern=SLUG,
        description="Lower-case letters, digits, '-' and '_' (max 64), e.g. plaza-north",
    ),
]
Point = tuple[float, float]


class GatheringThresholds(BaseModel):
    """When a zone counts as gathered: at least ``min_people`` for ``min_duration_s``.

    ``clear_after_s`` is the exit hysteresis: a gathering ends only after the count has stayed
    below the threshold that long, so a count hovering at the limit cannot flap.
    """

    model_config = ConfigDict(extra="forbid")

    min_people: int = Field(20, ge=1, description="People in the zone that make a gathering.")
    min_duration_s: float = Field(
        30.0, ge=0.0, le=3600.0, description="How long the zone must hold them (dwell)."
    )
    clear_after_s: float = Field(
        15.0, ge=0.0, le=3600.0, description="How long below the threshold before it ends."
    )
    min_fraction: float = Field(
        0.8,
        gt=0.0,
        le=1.0,
        description="Share of samples in the dwell window that must meet the count; "
        "tolerates missed detections.",
    )


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
    if abs(_signed_area(points)) < 1e-6:
        return "the polygon has no area (its points are on one line)"
    return None


def _signed_area(points: list[Point]) -> float:
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
