"""Zone geometry on normalised image coordinates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
