"""Plane geometry for zones and groups: point in polygon, areas, hulls."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from camera_adapters.zone_spec import signed_area


def points_in_polygon(points: np.ndarray, polygon: Sequence[tuple[float, float]]) -> np.ndarray:
    """Even-odd ray casting for many points at once: bool [n].

    Points exactly on the bottom edge of a zone that reaches the image border (y == 1.0)
    count as inside, because a person's foot point is often clipped to the border.
    """
    if len(points) == 0:
        return np.zeros((0,), dtype=bool)
    poly = np.asarray(polygon, dtype=np.float64)
    px = points[:, 0].astype(np.float64)[:, None]
    py = np.minimum(points[:, 1].astype(np.float64), 1.0 - 1e-9)[:, None]
    x1, y1 = poly[:, 0][None, :], poly[:, 1][None, :]
    x2, y2 = np.roll(poly[:, 0], -1)[None, :], np.roll(poly[:, 1], -1)[None, :]
    straddles = (y1 > py) != (y2 > py)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x1 + (py - y1) * (x2 - x1) / (y2 - y1)
    crossings = straddles & (px < x_cross)
    return (crossings.sum(axis=1) % 2) == 1


def polygon_area(polygon: Sequence[tuple[float, float]] | np.ndarray) -> float:
    """Area enclosed by a simple polygon (shoelace), in the units² of its coordinates."""
    return abs(signed_area([(float(x), float(y)) for x, y in polygon]))


def convex_hull(points: np.ndarray) -> np.ndarray:
    """The convex hull of 2-D points as [k, 2], counter-clockwise; fewer than 3 points as is."""
    if len(points) < 3:
        return np.asarray(points, np.float64).reshape(-1, 2)
    hull = cv2.convexHull(np.asarray(points, np.float32).reshape(-1, 1, 2))
    return hull.reshape(-1, 2).astype(np.float64)


def buffered_area(points: np.ndarray, radius: float) -> float:
    """Area of the convex hull of ``points`` grown by ``radius`` on every side.

    For a convex polygon with area A and perimeter P the grown shape has area
    A + P·r + π·r² (Steiner's formula): the ground a group of people occupies when each
    person is given a disc of radius r around the point where they stand.
    """
    hull = convex_hull(points)
    if len(hull) == 0:
        return 0.0
    closed = np.vstack([hull, hull[:1]])
    perimeter = float(np.linalg.norm(np.diff(closed, axis=0), axis=1).sum())
    area = polygon_area(hull) if len(hull) >= 3 else 0.0
    return area + perimeter * radius + np.pi * radius**2
