"""JPEG snapshots with the people and the zone drawn, as operators see them."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

BOX_IN_ZONE = (0, 0, 255)  # BGR red: counted
BOX_OUTSIDE = (0, 200, 255)  # amber: seen but outside the zone
ZONE_COLOUR = (255, 200, 0)


def render_snapshot(
    image: np.ndarray,
    boxes: Sequence[tuple[float, float, float, float]],
    in_zone: Sequence[bool],
    zone: Sequence[tuple[float, float]] | None = None,
    caption: str | None = None,
    quality: int = 85,
) -> bytes:
    """Draw normalised boxes and zone on a BGR image and encode it as JPEG."""
    canvas = image.copy()
    height, width = canvas.shape[:2]
    thickness = max(1, round(min(width, height) / 300))
    if zone:
        outline = np.array([[x * width, y * height] for x, y in zone], np.int32)
        overlay = canvas.copy()
        cv2.fillPoly(overlay, [outline], ZONE_COLOUR)
        cv2.addWeighted(overlay, 0.15, canvas, 0.85, 0, dst=canvas)
        cv2.polylines(canvas, [outline], True, ZONE_COLOUR, thickness)
    for (x1, y1, x2, y2), inside in zip(boxes, in_zone, strict=True):
        cv2.rectangle(
            canvas,
            (round(x1 * width), round(y1 * height)),
            (round(x2 * width), round(y2 * height)),
            BOX_IN_ZONE if inside else BOX_OUTSIDE,
            thickness,
        )
    if caption:
        scale = max(0.45, min(width, height) / 800)
        (text_w, text_h), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        band = text_h + base + 12
        overlay = canvas.copy()
        cv2.rectangle(overlay, (0, 0), (min(width, text_w + 16), band), (0, 0, 0), -1)
        cv2.addWeighted(overlay, 0.6, canvas, 0.4, 0, dst=canvas)
        cv2.putText(
            canvas,
            caption,
            (8, band - base - 6),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    ok, encoded = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return encoded.tobytes()
