"""Ground calibration: four points on the floor, where they are in the image and in metres.

Four correspondences fix the plane-to-plane homography between the image and the ground,
which turns foot points into positions in metres and zones into areas in m² (people per m²).
Validated here so that a mistyped point is refused when the camera is added: the points must
form a proper quadrilateral on both sides, and every zone must lie below the horizon that the
calibration implies (above it, image points have no place on the ground).
"""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from camera_adapters.zone_spec import Point, polygon_problems, shape_problems

GroundPoint = tuple[float, float]


def _collinear_triple(points: list[tuple[float, float]], tolerance: float) -> tuple | None:
    for i in range(4):
        a, b, c = (points[(i + k) % 4] for k in range(3))
        cross = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        if abs(cross) < tolerance:
            return a, b, c
    return None


class GroundCalibration(BaseModel):
    """Four image points (normalised, as zones are) and the same four points on the ground.

    Pick four marks on the floor that you can measure — tile corners, parking-bay lines,
    kerb corners — spread wide over the area you watch; list them in the same order in both
    lists. Ground coordinates are metres in any local frame (e.g. one corner at (0, 0)).
    """

    model_config = ConfigDict(extra="forbid")

    image_points: list[Point] = Field(
        description="4 points [[x, y], ...] as fractions of the image width and height."
    )
    ground_points: list[GroundPoint] = Field(
        description="The same 4 points on the ground, [[x, y], ...] in metres."
    )

    @model_validator(mode="after")
    def _usable(self) -> GroundCalibration:
        for name, points in (
            ("image_points", self.image_points),
            ("ground_points", self.ground_points),
        ):
            if len(points) != 4:
                raise ValueError(f"{name} needs exactly 4 points, got {len(points)}")
        for name, problem in (
            ("image_points", polygon_problems(list(self.image_points))),
            ("ground_points", shape_problems(list(self.ground_points))),
        ):
            if problem:
                problem = problem.replace("the zone's outline", "the four marks")
                raise ValueError(f"{name}: {problem}")
        if _collinear_triple(list(self.image_points), 1e-4):
            raise ValueError("image_points: three of the four points lie on one line")
        spread = np.ptp(np.asarray(self.ground_points), axis=0).max()
        if _collinear_triple(list(self.ground_points), 1e-4 * max(spread, 1.0) ** 2):
            raise ValueError("ground_points: three of the four points lie on one line")
        matrix = self.homography()
        if not np.all(np.isfinite(matrix)):
            raise ValueError("the four point pairs do not define a ground plane")
        # A homography from a real camera keeps every calibration point in front of the
        # camera; a sign change means the two lists are not the same points in one order.
        w = _project_w(matrix, np.asarray(self.image_points, np.float64))
        if not (np.all(w > 0) or np.all(w < 0)):
            raise ValueError(
                "image_points and ground_points do not match (list the same four points in "
                "the same order in both)"
            )
        return self

    def homography(self) -> np.ndarray:
        """3×3 matrix mapping normalised image points to ground metres."""
        return cv2.getPerspectiveTransform(
            np.asarray(self.image_points, np.float32), np.asarray(self.ground_points, np.float32)
        ).astype(np.float64)

    def zone_problem(self, polygon: list[Point]) -> str | None:
        """Why a zone cannot be measured on this ground plane, or None."""
        matrix = self.homography()
        w = _project_w(matrix, np.asarray(polygon, np.float64))
        reference = np.sign(_project_w(matrix, np.asarray(self.image_points, np.float64))[0])
        if np.any(w * reference <= 1e-9):
            return (
                "the zone reaches above the horizon of the camera's ground calibration (those "
                "image points are not on the ground): keep zones on the floor or fix the "
                "calibration points"
            )
        return None


def _project_w(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[2, :2] + matrix[2, 2]
