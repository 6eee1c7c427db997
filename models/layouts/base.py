"""What every output layout shares: the contract, thresholds and the way back to the image."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from models.detections import PERSON_CLASS_ID, Detections
from models.nms import nms
from models.preprocess import LetterboxBatch, ResizeMode


class Layout(Protocol):
    """Both ends of a model family's contract: how its input is fed, how its output reads.

    They live together because they always change together between model families.
    """

    resize: ResizeMode
    pad_value: int

    def prepare(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 BGR NHWC batch (already fitted to the input size) → the model's input."""
        ...

    def decode(
        self,
        outputs: Mapping[str, np.ndarray],
        batch: LetterboxBatch,
        image_sizes: list[tuple[int, int]],
    ) -> list[Detections]:
        """The session's outputs (by name, in graph order) → person detections per image,
        in the pixels of each original image."""
        ...


@dataclass
class Thresholds:
    person_class_id: int = 0
    score_threshold: float = 0.3
    nms_iou: float = 0.45
    max_detections: int = 300


class LayoutBase:
    """Shared constructor and tail of the YOLO-family decoders (score filter → NMS → image)."""

    resize: ClassVar[ResizeMode] = "topleft"
    pad_value: ClassVar[int] = 114

    def __init__(
        self,
        input_size: tuple[int, int],
        *,
        person_class_id: int = 0,
        score_threshold: float = 0.3,
        nms_iou: float = 0.45,
        max_detections: int = 300,
    ) -> None:
        self.input_size = input_size
        self.person_class_id = person_class_id
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.max_detections = max_detections

    def finish(
        self,
        boxes: np.ndarray,
        scores: np.ndarray,
        batch: LetterboxBatch,
        index: int,
        image_size: tuple[int, int],
        *,
        apply_nms: bool = True,
    ) -> Detections:
        """Candidates in model pixels → NMS → the image's pixels, clipped to the image."""
        if len(boxes) == 0:
            return Detections.empty()
        if apply_nms:
            kept = nms(boxes, scores, self.nms_iou)[: self.max_detections]
        else:
            kept = np.argsort(-scores, kind="stable")[: self.max_detections]
        xyxy = batch.to_image(index, boxes[kept].astype(np.float32))
        width, height = image_size
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
        return Detections(
            xyxy.astype(np.float32),
            scores[kept].astype(np.float32),
            np.full(len(kept), PERSON_CLASS_ID, np.int32),
        )


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    half = xywh[:, 2:4] / 2.0
    return np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1)


def first(outputs: Mapping[str, np.ndarray]) -> np.ndarray:
    return next(iter(outputs.values()))


def check_classes(name: str, classes: int, person_class_id: int) -> None:
    if person_class_id >= classes:
        raise ValueError(
            f"{name} output has {classes} classes, so person class id {person_class_id} "
            "does not exist: check the model's layout and person_class_id"
        )
