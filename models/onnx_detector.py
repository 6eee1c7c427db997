"""A person detector on ONNX Runtime, batched across cameras."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from models.datafiles import DataFiles
from models.detections import Detections
from models.layouts import LAYOUTS, Layout
from models.preprocess import letterbox
from models.providers import select_providers
from models.registry import CARDS
from models.settings import DetectorSettings

log = logging.getLogger(__name__)


class OnnxDetector:
    """Runs one ONNX model over batches of BGR images.

    Models whose graph fixes the batch axis at 1 are run image by image; the caller sees the
    same interface either way.
    """

    def __init__(
        self,
        path: Path,
        layout: Layout,
        input_size: tuple[int, int],
        *,
        name: str,
        providers: Sequence[str] = ("cpu",),
        intra_op_threads: int | None = None,
    ) -> None:
        self.name = name
        self._input_size = input_size
        self._layout = layout
        options = ort.SessionOptions()
        options.log_severity_level = 3  # some exports list initializers as inputs: one warning each
        if intra_op_threads:
            options.intra_op_num_threads = intra_op_threads
        chosen = select_providers(providers, ort.get_available_providers())
        self.session = ort.InferenceSession(str(path), options, providers=chosen)
        log.info(
            "detector loaded",
            extra={"model": name, "providers": ",".join(self.session.get_providers())},
        )
        model_input = self.session.get_inputs()[0]
        self._input_name = model_input.name
        self._fixed_batch = isinstance(model_input.shape[0], int) and model_input.shape[0] == 1

    @property
    def input_size(self) -> tuple[int, int]:
        return self._input_size

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        if not images:
            return []
        batch = letterbox(images, self._input_size)
        tensor = self._layout.prepare(batch.pixels)
        if self._fixed_batch and len(images) > 1:
            parts = [
                self.session.run(None, {self._input_name: tensor[i : i + 1]})
                for i in range(len(images))
            ]
            outputs = [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]
        else:
            outputs = self.session.run(None, {self._input_name: tensor})
        sizes = [(img.shape[1], img.shape[0]) for img in images]
        return self._layout.decode(outputs, batch.scales, sizes)


def load_detector(settings: DetectorSettings, data: DataFiles | None = None) -> OnnxDetector:
    """Build the configured detector, verifying the model file's checksum first."""
    if settings.path is not None:
        path = settings.path
        layout_name = settings.layout or "yolox"
        input_size = settings.input_size or (416, 416)
        person_class = 0
    else:
        card = CARDS[settings.name]
        path = (data or DataFiles.from_env()).path(card.file)
        layout_name = card.layout
        input_size = settings.input_size or card.input_size
        person_class = card.person_class_id
    if layout_name not in LAYOUTS:
        raise ValueError(f"unknown model layout '{layout_name}'; known: {', '.join(LAYOUTS)}")
    layout = LAYOUTS[layout_name](
        input_size,
        person_class_id=person_class,
        score_threshold=settings.score_threshold,
        nms_iou=settings.nms_iou,
    )
    return OnnxDetector(
        path,
        layout,
        input_size,
        name=settings.name,
        providers=settings.providers,
        intra_op_threads=settings.intra_op_threads,
    )
