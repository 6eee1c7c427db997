"""Letterboxing for a whole batch at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class LetterboxBatch:
    """A model-ready uint8 batch plus the scale that maps model pixels back to each image."""

    pixels: np.ndarray  # uint8 [N, H, W, 3], images pasted at the top-left corner
    scales: np.ndarray  # float32 [N, 2]: (sx, sy) with model pixel = image pixel * scale


def fit_size(width: int, height: int, box: tuple[int, int]) -> tuple[int, int]:
    """The largest (w, h) with the image's aspect ratio that fits in ``box`` (w, h)."""
    scale = min(box[0] / width, box[1] / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def letterbox(
    images: Sequence[np.ndarray], size: tuple[int, int], pad_value: int = 114
) -> LetterboxBatch:
    """Resize each image to fit ``size`` and paste it at the top-left of a padded canvas.

    Frames from the camera adapters already arrive resized by the decoder, so in the hot
    path this is a single copy per image into one preallocated batch array.
    """
    width, height = size
    batch = np.full((len(images), height, width, 3), pad_value, dtype=np.uint8)
    scales = np.empty((len(images), 2), dtype=np.float32)
    for i, image in enumerate(images):
        h, w = image.shape[:2]
        nw, nh = fit_size(w, h, size)
        if (nw, nh) != (w, h):
            interpolation = cv2.INTER_AREA if nw < w else cv2.INTER_LINEAR
            image = cv2.resize(image, (nw, nh), interpolation=interpolation)
        batch[i, :nh, :nw] = image
        scales[i] = (nw / w, nh / h)
    return LetterboxBatch(batch, scales)
