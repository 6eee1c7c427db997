"""Counting detected people per zone, by the foot point of each box."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from camera_adapters.zone_spec import ZoneSpec
from models.detections import Detections
from pipeline.geometry import points_in_polygon


@dataclass(frozen=True)
class ZoneCount:
    zone: ZoneSpec
    inside: np.ndarray  # bool per detection

    @property
    def count(self) -> int:
        return int(self.inside.sum())


def count_zones(
    detections: Detections, image_size: tuple[int, int], zones: list[ZoneSpec]
) -> list[ZoneCount]:
    """How many people stand in each zone; ``image_size`` is the analysed image's (w, h)."""
    feet = detections.normalised(*image_size).foot_points()
    return [ZoneCount(zone, points_in_polygon(feet, zone.polygon)) for zone in zones]
