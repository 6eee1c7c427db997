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
from models.providers import ProviderPlan, plan_providers
from models.registry import CARDS, load_card_beside
from models.settings import DetectorSettings

log = logging.getLogger(__name__)


class ModelMismatchError(ValueError):
    """The model file does not fit its configuration (input size, input type)."""


class OnnxDetector:
    """Runs one ONNX model over batches of BGR images.

    The batch is letterboxed in one array and run in one call when the graph's batch axis is
    dynamic. A graph with a fixed batch size B (often 1) is run in chunks of B, the last one
    padded, so the caller sees the same interface either way.
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
        inter_op_threads: int | None = None,
        allow_spinning: bool = False,
        precision: str = "fp32",
        device_id: int = 0,
        trt_cache_dir: Path | None = None,
        max_batch: int = 16,
    ) -> None:
        self.name = name
        self._input_size = input_size
        self._layout = layout
        options = ort.SessionOptions()
        options.log_severity_level = 3  # some exports list initializers as inputs: one warning each
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if intra_op_threads:
            options.intra_op_num_threads = intra_op_threads
        if inter_op_threads:
            options.inter_op_num_threads = inter_op_threads
        spin = "1" if allow_spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        options.add_session_config_entry("session.inter_op.allow_spinning", spin)
        available = ort.get_available_providers()
        profile = None
        if "tensorrt" in providers and "TensorrtExecutionProvider" in available:
            profile = self._trt_profile(path, max_batch)
        self.plan: ProviderPlan = plan_providers(
            providers,
            available,
            precision=precision,
            device_id=device_id,
            trt_cache_dir=trt_cache_dir,
            trt_profile=profile,
        )
        self.session = ort.InferenceSession(str(path), options, providers=self.plan.providers)
        actual = self.session.get_providers()
        extra = {
            "model": name,
            "requested": ",".join(providers),
            "planned": ",".join(self.plan.names),
            "providers": ",".join(actual),
            "precision": precision,
            "intra_op_threads": intra_op_threads or "default",
        }
        if actual[0] != self.plan.names[0]:
            log.warning("execution provider failed to start; fell back", extra=extra)
        else:
            log.info("detector loaded", extra=extra)
        model_input = self.session.get_inputs()[0]
        self._input_name = model_input.name
        self._output_names = [o.name for o in self.session.get_outputs()]
        batch_dim = model_input.shape[0]
        self.fixed_batch: int | None = batch_dim if isinstance(batch_dim, int) else None
        self._check_input(path, model_input)

    @staticmethod
    def _trt_profile(path: Path, max_batch: int) -> tuple[str, tuple[int, int, int], int] | None:
        """Read the input's name and shape (TensorRT optimisation profiles need them)."""
        probe = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        model_input = probe.get_inputs()[0]
        shape = model_input.shape
        if all(isinstance(d, int) for d in shape[1:]) and shape[1] in (1, 3):
            return model_input.name, (shape[1], shape[2], shape[3]), max_batch
        return None

    def _check_input(self, path: Path, model_input: ort.NodeArg) -> None:
        shape = model_input.shape
        if len(shape) != 4:
            raise ModelMismatchError(
                f"{path.name}: input '{model_input.name}' has shape {shape}; an image detector "
                "takes a 4-D batch"
            )
        nhwc = self._layout.resize == "stretch" and shape[3] == 3
        height, width = (shape[1], shape[2]) if nhwc else (shape[2], shape[3])
        want_w, want_h = self._input_size
        if (isinstance(width, int) and width != want_w) or (
            isinstance(height, int) and height != want_h
        ):
            raise ModelMismatchError(
                f"{path.name} takes {width}×{height} images but the configured input_size is "
                f"{want_w}×{want_h}: set model.input_size to [{width}, {height}] or remove it"
            )

    @property
    def input_size(self) -> tuple[int, int]:
        return self._input_size

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        if not images:
            return []
        layout = self._layout
        batch = letterbox(images, self._input_size, layout.pad_value, layout.resize)
        tensor = layout.prepare(batch.pixels)
        outputs = self._run(tensor)
        sizes = [(img.shape[1], img.shape[0]) for img in images]
        return layout.decode(outputs, batch, sizes)

    def _run(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        step = self.fixed_batch
        n = len(tensor)
        if step is None or step == n:
            arrays = self.session.run(None, {self._input_name: tensor})
            return dict(zip(self._output_names, arrays, strict=True))
        parts = []
        for start in range(0, n, step):
            chunk = tensor[start : start + step]
            if len(chunk) < step:  # pad the last chunk to the graph's fixed batch
                pad = np.zeros((step - len(chunk), *chunk.shape[1:]), chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            parts.append(self.session.run(None, {self._input_name: chunk}))
        return {
            name: np.concatenate([p[k] for p in parts])[:n]
            for k, name in enumerate(self._output_names)
        }


def load_detector(settings: DetectorSettings, data: DataFiles | None = None) -> OnnxDetector:
    """Build the configured detector, verifying the model file's checksum first."""
    if settings.path is not None:
        path = settings.path
        card = load_card_beside(path)
        layout_name = settings.layout or (card.layout if card else None)
        if layout_name is None:
            raise ValueError(
                f"model.path {path}: no layout given and no model card beside it; set "
                "model.layout (one of " + ", ".join(LAYOUTS) + ")"
            )
        input_size = settings.input_size or (card.input_size if card else (416, 416))
        person_class = card.person_class_id if card else 0
        if card is not None and card.sha256:
            from models.datafiles import sha256_of

            if sha256_of(path) != card.sha256:
                raise ValueError(
                    f"model.path {path} does not match the SHA-256 in its model card: the file "
                    "changed since export; export it again or restore the file"
                )
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
        inter_op_threads=settings.inter_op_threads,
        allow_spinning=settings.allow_spinning,
        precision=settings.precision,
        device_id=settings.device_id,
        trt_cache_dir=settings.trt_cache_dir,
        max_batch=settings.max_batch,
    )
