"""Plain per-image detection results, in the pixel space of the image that was analysed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PERSON_CLASS_ID = 0


@dataclass(frozen=True)
class Detections:
    """Boxes found in one image.

    ``xyxy`` holds corner coordinates in pixels of the image passed to the detector (not of
    the model's letterboxed input), so callers never need to know how a model resized it.
    """

    xyxy: np.ndarray  # float32 [n, 4]
    scores: np.ndarray  # float32 [n]
    class_ids: np.ndarray  # int32 [n]

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.shape != (n, 4) or self.scores.shape != (n,) or self.class_ids.shape != (n,):
            raise ValueError(
                f"inconsistent detection arrays: xyxy {self.xyxy.shape}, "
                f"scores {self.scores.shape}, class_ids {self.class_ids.shape}"
            )

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int32)
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: np.ndarray | slice) -> Detections:
        return Detections(self.xyxy[index], self.scores[index], self.class_ids[index])

    def foot_points(self) -> np.ndarray:
        """Bottom-centre of each box: where a person stands, as zone rules judge position."""
        return np.stack(
            [(self.xyxy[:, 0] + self.xyxy[:, 2]) / 2.0, self.xyxy[:, 3]], axis=1
        ).astype(np.float32)

    def normalised(self, width: int, height: int) -> Detections:
        """Boxes as fractions of the image size, the coordinate system zones are drawn in."""
        scale = np.array([width, height, width, height], np.float32)
        return Detections(self.xyxy / scale, self.scores, self.class_ids)

    def heights(self) -> np.ndarray:
        return self.xyxy[:, 3] - self.xyxy[:, 1]
