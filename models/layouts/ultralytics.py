"""Ultralytics YOLO exports: YOLOv5, YOLOv8 / YOLO11, and end-to-end (NMS-free) heads.

All take RGB scaled to 0-1, NCHW, letterboxed at the centre with pad 114, and give boxes as
pixels of that input. They differ in the output tensor:

- YOLOv5: [N, A, 5 + classes] = (cx, cy, w, h, objectness, class scores...), A = 25200 at 640.
- YOLOv8 and YOLO11: [N, 4 + classes, A] = (cx, cy, w, h, class scores...) transposed, no
  objectness, A = 8400 at 640.
- End-to-end exports (YOLOv10, YOLO26 with ``end2end``): [N, D, 6] = (x1, y1, x2, y2, score,
  class), NMS already done by the model.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from models.detections import Detections
from models.layouts.base import LayoutBase, check_classes, first, xywh_to_xyxy
from models.preprocess import LetterboxBatch


class _UltralyticsInput(LayoutBase):
    resize = "center"
    pad_value = 114

    def prepare(self, pixels: np.ndarray) -> np.ndarray:
        rgb = pixels[..., ::-1].transpose(0, 3, 1, 2)
        return np.ascontiguousarray(rgb, dtype=np.float32) * np.float32(1.0 / 255.0)


class YoloV5Layout(_UltralyticsInput):
    def decode(
        self,
        outputs: Mapping[str, np.ndarray],
        batch: LetterboxBatch,
        image_sizes: list[tuple[int, int]],
    ) -> list[Detections]:
        raw = first(outputs)
        if raw.ndim != 3 or raw.shape[2] < 6 or raw.shape[2] > raw.shape[1]:
            raise ValueError(
                f"YOLOv5 output should be [N, anchors, 5 + classes], got {raw.shape}: "
                "a [N, 4 + classes, anchors] output is the yolov8 layout"
            )
        check_classes("YOLOv5", raw.shape[2] - 5, self.person_class_id)
        scores = raw[:, :, 4] * raw[:, :, 5 + self.person_class_id]
        results = []
        for i in range(raw.shape[0]):
            keep = scores[i] >= self.score_threshold
            boxes = xywh_to_xyxy(raw[i, keep, :4])
            results.append(self.finish(boxes, scores[i, keep], batch, i, image_sizes[i]))
        return results


class YoloV8Layout(_UltralyticsInput):
    """Also YOLO11 (and YOLOv9/v12 ultralytics exports): same output layout."""

    def decode(
        self,
        outputs: Mapping[str, np.ndarray],
        batch: LetterboxBatch,
        image_sizes: list[tuple[int, int]],
    ) -> list[Detections]:
        raw = first(outputs)
        if raw.ndim != 3 or raw.shape[1] < 5 or raw.shape[1] > raw.shape[2]:
            raise ValueError(
                f"YOLOv8/YOLO11 output should be [N, 4 + classes, anchors], got {raw.shape}: "
                "a [N, anchors, 5 + classes] output is the yolov5 layout"
            )
        check_classes("YOLOv8", raw.shape[1] - 4, self.person_class_id)
        scores = raw[:, 4 + self.person_class_id, :]
        results = []
        for i in range(raw.shape[0]):
            keep = scores[i] >= self.score_threshold
            boxes = xywh_to_xyxy(raw[i][:4, keep].T)
            results.append(self.finish(boxes, scores[i, keep], batch, i, image_sizes[i]))
        return results


class YoloEnd2EndLayout(_UltralyticsInput):
    def decode(
        self,
        outputs: Mapping[str, np.ndarray],
        batch: LetterboxBatch,
        image_sizes: list[tuple[int, int]],
    ) -> list[Detections]:
        raw = first(outputs)
        if raw.ndim != 3 or raw.shape[2] != 6:
            raise ValueError(
                f"end-to-end YOLO output should be [N, detections, 6], got {raw.shape}"
            )
        results = []
        for i in range(raw.shape[0]):
            rows = raw[i]
            keep = (rows[:, 4] >= self.score_threshold) & (
                np.rint(rows[:, 5]) == self.person_class_id
            )
            results.append(
                self.finish(
                    rows[keep, :4], rows[keep, 4], batch, i, image_sizes[i], apply_nms=False
                )
            )
        return results
