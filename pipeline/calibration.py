"""The ground plane of a calibrated camera: foot points in metres, zone areas in m².

A homography maps the image of a plane to the plane itself, so the four point pairs of the
camera's ``calibration`` are enough to place every foot point on the floor and to measure
any zone drawn on the floor. Valid only for points on that plane: a zone on a staircase or a
balcony needs its own camera calibration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from camera_adapters.ground_spec import GroundCalibration
from pipeline.geometry import polygon_area


@dataclass(frozen=True)
class GroundPlane:
    matrix: np.ndarray  # 3×3: normalised image (x, y, 1) → ground metres (homogeneous)
    front_sign: float  # sign of w for image points on the ground in front of the camera

    @classmethod
    def from_calibration(cls, calibration: GroundCalibration) -> GroundPlane:
        matrix = calibration.homography()
        w = np.asarray(calibration.image_points, np.float64) @ matrix[2, :2] + matrix[2, 2]
        return cls(matrix, float(np.sign(w[0])))

    def to_ground(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ground positions (metres) of normalised image points, and which are on the
        ground at all (points at or above the horizon are not)."""
        points = np.asarray(points, np.float64).reshape(-1, 2)
        homogeneous = points @ self.matrix[:, :2].T + self.matrix[:, 2]
        w = homogeneous[:, 2] * self.front_sign
        valid = w > 1e-9
        ground = np.zeros((len(points), 2))
        ground[valid] = homogeneous[valid, :2] / homogeneous[valid, 2:3]
        return ground, valid

    def area_m2(self, polygon: list[tuple[float, float]]) -> float:
        """Ground area of a zone drawn on the image (its outline is validated to be on the
        ground when the camera spec is loaded)."""
        ground, valid = self.to_ground(np.asarray(polygon))
        if not valid.all():
            raise ValueError("polygon reaches above the horizon of the ground plane")
        return polygon_area(ground)
