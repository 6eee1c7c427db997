"""Fitting a batch of images to the model's input: letterbox or stretch, one array per batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

ResizeMode = Literal["topleft", "center", "stretch"]


@dataclass(frozen=True)
class LetterboxBatch:
    """A model-ready uint8 batch plus the geometry that maps model pixels back to each image.

    model pixel = image pixel × scale + offset, per image and axis.
    """

    pixels: np.ndarray  # uint8 [N, H, W, 3], BGR
    scales: np.ndarray  # float32 [N, 2]: (sx, sy)
    offsets: np.ndarray  # float32 [N, 2]: (dx, dy) of the image inside the canvas

    def to_image(self, index: int, xyxy: np.ndarray) -> np.ndarray:
        """Boxes in model pixels → pixels of image ``index``."""
        dx, dy = self.offsets[index]
        sx, sy = self.scales[index]
        return (xyxy - np.array([dx, dy, dx, dy], np.float32)) / np.array(
            [sx, sy, sx, sy], np.float32
        )


def fit_size(width: int, height: int, box: tuple[int, int]) -> tuple[int, int]:
    """The largest (w, h) with the image's aspect ratio that fits in ``box`` (w, h)."""
    scale = min(box[0] / width, box[1] / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def letterbox(
    images: Sequence[np.ndarray],
    size: tuple[int, int],
    pad_value: int = 114,
    mode: ResizeMode = "topleft",
) -> LetterboxBatch:
    """Fit every image into ``size`` (w, h) and stack them into one batch array.

    ``topleft`` and ``center`` keep the aspect ratio and pad (YOLOX pads at the top-left,
    ultralytics and NanoDet centre the image); ``stretch`` resizes to exactly ``size``, as
    models trained with a fixed-shape resizer expect (TensorFlow SSD). Frames from the camera
    adapters arrive already resized by the decoder, and cameras of one resolution share a
    shape, so in the hot path each group of equal shapes is one block copy, no resize.
    """
    width, height = size
    n = len(images)
    batch = np.full((n, height, width, 3), pad_value, dtype=np.uint8)
    scales = np.empty((n, 2), dtype=np.float32)
    offsets = np.zeros((n, 2), dtype=np.float32)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"image {i} has shape {image.shape} and dtype {image.dtype}: the detector "
                "takes uint8 BGR images of shape (height, width, 3)"
            )
        groups.setdefault(image.shape, []).append(i)
    for shape, members in groups.items():
        h, w = shape[:2]
        nw, nh = (width, height) if mode == "stretch" else fit_size(w, h, size)
        x0, y0 = ((width - nw) // 2, (height - nh) // 2) if mode == "center" else (0, 0)
        if (nw, nh) == (w, h):
            block = np.stack([images[i] for i in members])
        else:
            interpolation = cv2.INTER_AREA if nw < w else cv2.INTER_LINEAR
            block = np.stack(
                [cv2.resize(images[i], (nw, nh), interpolation=interpolation) for i in members]
            )
        index = np.asarray(members)
        batch[index, y0 : y0 + nh, x0 : x0 + nw] = block
        scales[index] = (nw / w, nh / h)
        offsets[index] = (x0, y0)
    return LetterboxBatch(batch, scales, offsets)
