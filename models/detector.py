"""The one interface every detector implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from models.detections import Detections


@runtime_checkable
class Detector(Protocol):
    """A batch of BGR images in, one ``Detections`` per image out (person class only).

    ``input_size`` is the (width, height) the model analyses; sources resize frames to fit
    inside it while decoding, so the detector only pads.
    """

    name: str

    @property
    def input_size(self) -> tuple[int, int]: ...

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]: ...
