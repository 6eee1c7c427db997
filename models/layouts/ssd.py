"""TensorFlow Object Detection API SSD exports (e.g. SSDLite-MobileNetV2), NMS in the graph."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from models.detections import Detections
from models.layouts.base import LayoutBase
from models.preprocess import LetterboxBatch


class TfSsdLayout(LayoutBase):
    """uint8 RGB NHWC input, stretched to the input size as the model's resizer would.

    Outputs ``detection_boxes`` [N, D, 4] normalised (ymin, xmin, ymax, xmax),
    ``detection_scores`` [N, D], ``detection_classes`` [N, D] (1-based: 1 = person in COCO
    label maps) and ``num_detections`` [N]; NMS already happened inside the graph.
    """

    resize = "stretch"
    pad_value = 0

    def prepare(self, pixels: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(pixels[..., ::-1])

    @staticmethod
    def _named(outputs: Mapping[str, np.ndarray], key: str, position: int) -> np.ndarray:
        for name, array in outputs.items():
            if name.split(":")[0].endswith(key):
                return array
        return list(outputs.values())[position]

    def decode(
        self,
        outputs: Mapping[str, np.ndarray],
        batch: LetterboxBatch,
        image_sizes: list[tuple[int, int]],
    ) -> list[Detections]:
        boxes = self._named(outputs, "detection_boxes", 0)
        scores = self._named(outputs, "detection_scores", 1)
        classes = self._named(outputs, "detection_classes", 2)
        count = self._named(outputs, "num_detections", 3)
        width, height = self.input_size
        scale = np.array([width, height, width, height], np.float32)
        results = []
        for i in range(boxes.shape[0]):
            valid = np.arange(boxes.shape[1]) < int(count[i])
            keep = (
                valid
                & (np.rint(classes[i]) == self.person_class_id)
                & (scores[i] >= self.score_threshold)
            )
            xyxy = boxes[i, keep][:, [1, 0, 3, 2]] * scale
            results.append(
                self.finish(xyxy, scores[i, keep], batch, i, image_sizes[i], apply_nms=False)
            )
        return results
