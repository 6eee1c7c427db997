"""NanoDet-m (GFL head): per-stride class scores and box-side distributions, no NMS inside."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from models.detections import Detections
from models.layouts.base import LayoutBase, check_classes
from models.preprocess import LetterboxBatch

MEAN_BGR = np.array([103.53, 116.28, 123.675], np.float32)
STD_BGR = np.array([57.375, 57.12, 58.395], np.float32)


class NanoDetLayout(LayoutBase):
    """BGR normalised by NanoDet's mean/std, NCHW, letterboxed at the centre.

    Outputs, per stride 8/16/32: class scores [N, P, classes] (sigmoid in the graph) and box
    distributions [N, P, 4 × bins]. Each side's distance is the expectation of a softmax over
    its bins, times the stride, from the cell centre ``i·stride + 0.5·(stride − 1)``. Outputs
    are matched to strides by their point counts, so graph output order does not matter.
    """

    resize = "center"
    pad_value = 0
    strides = (8, 16, 32)
    bins = 8  # reg_max 7: each side's distance is a distribution over 8 bins

    def __init__(self, input_size: tuple[int, int], **thresholds: float) -> None:
        super().__init__(input_size, **thresholds)  # type: ignore[arg-type]
        width, height = input_size
        self._centres: dict[int, tuple[int, np.ndarray]] = {}
        for stride in self.strides:
            ys, xs = np.meshgrid(
                np.arange(-(-height // stride)), np.arange(-(-width // stride)), indexing="ij"
            )
            centres = np.stack([xs.ravel(), ys.ravel()], axis=1) * stride + 0.5 * (stride - 1)
            self._centres[len(centres)] = (stride, centres.astype(np.float32))

    def prepare(self, pixels: np.ndarray) -> np.ndarray:
        normalised = (pixels.astype(np.float32) - MEAN_BGR) / STD_BGR
        return np.ascontiguousarray(normalised.transpose(0, 3, 1, 2))

    def _levels(
        self, outputs: Mapping[str, np.ndarray]
    ) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        scores: dict[int, np.ndarray] = {}
        boxes: dict[int, np.ndarray] = {}
        for array in outputs.values():
            points = array.shape[1]
            if points not in self._centres:
                raise ValueError(
                    f"NanoDet output {array.shape} matches no stride of input size "
                    f"{self.input_size}: the configured input size does not match the model"
                )
            target = boxes if array.shape[2] == 4 * self.bins else scores
            target[points] = array
        levels = []
        for points, (stride, centres) in self._centres.items():
            if points not in scores or points not in boxes:
                raise ValueError(f"NanoDet outputs lack the class or box tensor of stride {stride}")
            levels.append((stride, centres, scores[points], boxes[points]))
        return levels

    def decode(
        self,
        outputs: Mapping[str, np.ndarray],
        batch: LetterboxBatch,
        image_sizes: list[tuple[int, int]],
    ) -> list[Detections]:
        levels = self._levels(outputs)
        n = batch.pixels.shape[0]
        results = []
        for i in range(n):
            all_boxes, all_scores = [], []
            for stride, centres, cls, dist in levels:
                check_classes("NanoDet", cls.shape[2], self.person_class_id)
                score = cls[i, :, self.person_class_id]
                keep = score >= self.score_threshold
                if not keep.any():
                    continue
                bins = self.bins
                logits = dist[i, keep].reshape(-1, 4, bins)
                logits = logits - logits.max(axis=2, keepdims=True)
                prob = np.exp(logits)
                prob /= prob.sum(axis=2, keepdims=True)
                sides = (prob @ np.arange(bins, dtype=np.float32)) * stride  # l, t, r, b
                c = centres[keep]
                all_boxes.append(np.concatenate([c - sides[:, :2], c + sides[:, 2:]], axis=1))
                all_scores.append(score[keep])
            if not all_boxes:
                results.append(Detections.empty())
                continue
            results.append(
                self.finish(
                    np.concatenate(all_boxes), np.concatenate(all_scores), batch, i, image_sizes[i]
                )
            )
        return results
