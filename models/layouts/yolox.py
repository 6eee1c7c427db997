"""YOLOX exported with ``decode_in_inference`` off (Megvii's ONNX export)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from models.detections import Detections
from models.layouts.base import LayoutBase, check_classes, first
from models.preprocess import LetterboxBatch


class YoloxLayout(LayoutBase):
    """[N, A, 5 + classes] raw per anchor point; BGR 0-255 input, pad 114 at the top-left.

    Decoding follows the YOLOX reference: ``xy = (d + grid) * stride``, ``wh = exp(l) * stride``,
    score = objectness * class probability (both already sigmoid in the graph).
    """

    resize = "topleft"
    pad_value = 114
    strides = (8, 16, 32)

    def __init__(self, input_size: tuple[int, int], **thresholds: float) -> None:
        super().__init__(input_size, **thresholds)  # type: ignore[arg-type]
        self._grid, self._stride = self._anchor_grid(input_size)

    def _anchor_grid(self, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        width, height = size
        grids, strides = [], []
        for stride in self.strides:
            ys, xs = np.meshgrid(
                np.arange(height // stride), np.arange(width // stride), indexing="ij"
            )
            grid = np.stack([xs, ys], axis=-1).reshape(-1, 2)
            grids.append(grid)
            strides.append(np.full((len(grid), 1), stride))
        return (
            np.concatenate(grids).astype(np.float32),
            np.concatenate(strides).astype(np.float32),
        )

    def prepare(self, pixels: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), dtype=np.float32)

    def decode(
        self,
        outputs: Mapping[str, np.ndarray],
        batch: LetterboxBatch,
        image_sizes: list[tuple[int, int]],
    ) -> list[Detections]:
        raw = first(outputs)
        if raw.ndim != 3 or raw.shape[1] != len(self._grid):
            raise ValueError(
                f"YOLOX output has shape {raw.shape} but input size {self.input_size} implies "
                f"[N, {len(self._grid)}, 85]: the configured input size does not match the model"
            )
        check_classes("YOLOX", raw.shape[2] - 5, self.person_class_id)
        scores = raw[:, :, 4] * raw[:, :, 5 + self.person_class_id]
        results = []
        for i in range(raw.shape[0]):
            keep = scores[i] >= self.score_threshold
            rows = raw[i, keep]
            centre = (rows[:, :2] + self._grid[keep]) * self._stride[keep]
            half = np.exp(rows[:, 2:4]) * self._stride[keep] / 2.0
            boxes = np.concatenate([centre - half, centre + half], axis=1)
            results.append(self.finish(boxes, scores[i, keep], batch, i, image_sizes[i]))
        return results
