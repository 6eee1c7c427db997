"""Counting detected people per zone, by the foot point of each box."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from camera_adapters.zone_spec import ZoneSpec
from models.detections import Detections
from pipeline.geometry import points_in_polygon


@dataclass(frozen=True)
class ZoneCount:
    zone: ZoneSpec
    inside: np.ndarray  # bool per detection
    area_m2: float | None = None  # the zone's ground area, when the camera is calibrated

    @property
    def count(self) -> int:
        return int(self.inside.sum())

    @property
    def density(self) -> float | None:
        """People per m² on the ground, or None without calibration."""
        return None if not self.area_m2 else self.count / self.area_m2


def count_zones(
    detections: Detections,
    image_size: tuple[int, int],
    zones: Sequence[ZoneSpec],
    areas_m2: Sequence[float | None] | None = None,
) -> list[ZoneCount]:
    """How many people stand in each zone; ``image_size`` is the analysed image's (w, h)."""
    feet = detections.normalised(*image_size).foot_points()
    areas = areas_m2 if areas_m2 is not None else [None] * len(zones)
    return [
        ZoneCount(zone, points_in_polygon(feet, zone.polygon), area)
        for zone, area in zip(zones, areas, strict=True)
    ]
