"""Output layouts: how a model family's raw tensors become per-image ``Detections``.

A layout owns both ends of the model contract (input tensor format and output decoding),
because the two always change together between model families.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from models.detections import Detections
from models.nms import nms


class Layout(Protocol):
    def prepare(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 BGR NHWC letterboxed batch → the model's input tensor."""
        ...

    def decode(
        self,
        outputs: Sequence[np.ndarray],
        scales: np.ndarray,
        image_sizes: Sequence[tuple[int, int]],
    ) -> list[Detections]: ...


class YoloxLayout:
    """YOLOX exported with ``decode_in_inference`` off: [N, A, 5 + classes] raw per anchor point.

    Decoding follows the YOLOX reference: ``xy = (d + grid) * stride``, ``wh = exp(l) * stride``,
    score = objectness * class probability (both already sigmoid in the graph).
    """

    strides = (8, 16, 32)

    def __init__(
        self,
        input_size: tuple[int, int],
        *,
        person_class_id: int = 0,
        score_threshold: float = 0.3,
        nms_iou: float = 0.45,
    ) -> None:
        self.input_size = input_size
        self.person_class_id = person_class_id
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
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
        outputs: Sequence[np.ndarray],
        scales: np.ndarray,
        image_sizes: Sequence[tuple[int, int]],
    ) -> list[Detections]:
        raw = outputs[0]
        if raw.shape[1] != len(self._grid):
            raise ValueError(
                f"YOLOX output has {raw.shape[1]} anchor points but input size "
                f"{self.input_size} implies {len(self._grid)}: the configured input size does "
                f"not match the model"
            )
        scores = raw[:, :, 4] * raw[:, :, 5 + self.person_class_id]
        results = []
        for i in range(raw.shape[0]):
            keep = scores[i] >= self.score_threshold
            if not keep.any():
                results.append(Detections.empty())
                continue
            rows = raw[i, keep]
            centre = (rows[:, :2] + self._grid[keep]) * self._stride[keep]
            half = np.exp(rows[:, 2:4]) * self._stride[keep] / 2.0
            boxes = np.concatenate([centre - half, centre + half], axis=1)
            results.append(_finish(boxes, scores[i, keep], scales[i], image_sizes[i], self.nms_iou))
        return results


def _finish(
    boxes: np.ndarray,
    scores: np.ndarray,
    scale: np.ndarray,
    image_size: tuple[int, int],
    nms_iou: float,
) -> Detections:
    """NMS in model space, then map back to image pixels and clip to the image."""
    kept = nms(boxes, scores, nms_iou)
    boxes = boxes[kept] / np.array([scale[0], scale[1], scale[0], scale[1]], np.float32)
    width, height = image_size
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    return Detections(
        boxes.astype(np.float32),
        scores[kept].astype(np.float32),
        np.zeros(len(kept), np.int32),
    )


LAYOUTS = {"yolox": YoloxLayout}
