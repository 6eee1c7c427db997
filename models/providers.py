"""Choosing ONNX Runtime execution providers from configuration and what is installed.

Preference is TensorRT → CUDA → CPU, as configured: a provider is used when this
onnxruntime build has it, skipped with a warning when it does not, and CPU is always the last
resort, so a GPU config still runs (slowly) on a machine without the GPU build. fp16 is a
TensorRT option (``trt_fp16_enable``); the CUDA provider runs the graph in the precision it
was exported in.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

ORT_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
SHORT_NAMES = {v: k for k, v in ORT_NAMES.items()}


@dataclass(frozen=True)
class ProviderPlan:
    """What to hand ``ort.InferenceSession(providers=...)``, and what was left out and why."""

    providers: list[tuple[str, dict[str, str]]]
    skipped: dict[str, str] = field(default_factory=dict)  # short name → reason

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.providers]

    @property
    def primary(self) -> str:
        return SHORT_NAMES.get(self.providers[0][0], self.providers[0][0])


def plan_providers(
    requested: Sequence[str],
    available: Sequence[str],
    *,
    precision: str = "fp32",
    device_id: int = 0,
    trt_cache_dir: Path | None = None,
    trt_profile: tuple[str, tuple[int, int, int], int] | None = None,
) -> ProviderPlan:
    """The providers to use, in preference order, each with its options.

    ``trt_profile`` is (input name, (channels, height, width), max batch): TensorRT builds
    one engine for batches 1..max instead of rebuilding whenever a new batch size appears.
    """
    chosen: list[tuple[str, dict[str, str]]] = []
    skipped: dict[str, str] = {}
    for name in requested:
        ort_name = ORT_NAMES[name]
        if any(ort_name == c for c, _ in chosen):
            continue
        if ort_name not in available:
            skipped[name] = "not in this onnxruntime build (install onnxruntime-gpu)"
            log.warning(
                "execution provider not available, skipping",
                extra={"provider": name, "available": ",".join(available)},
            )
            continue
        options: dict[str, str] = {}
        if name == "tensorrt":
            options = {
                "device_id": str(device_id),
                "trt_fp16_enable": "True" if precision == "fp16" else "False",
                "trt_engine_cache_enable": "True",
                "trt_timing_cache_enable": "True",
            }
            if trt_cache_dir is not None:
                options["trt_engine_cache_path"] = str(trt_cache_dir)
                options["trt_timing_cache_path"] = str(trt_cache_dir)
            if trt_profile is not None:
                input_name, (c, h, w), max_batch = trt_profile
                options["trt_profile_min_shapes"] = f"{input_name}:1x{c}x{h}x{w}"
                options["trt_profile_opt_shapes"] = f"{input_name}:{max_batch}x{c}x{h}x{w}"
                options["trt_profile_max_shapes"] = f"{input_name}:{max_batch}x{c}x{h}x{w}"
        elif name == "cuda":
            options = {"device_id": str(device_id), "cudnn_conv_algo_search": "EXHAUSTIVE"}
            if precision == "fp16" and "tensorrt" not in [SHORT_NAMES.get(c) for c, _ in chosen]:
                log.warning(
                    "fp16 is applied by TensorRT; the CUDA provider runs the model's own "
                    "precision (export an fp16 model to run CUDA in fp16)",
                    extra={"provider": name},
                )
        chosen.append((ort_name, options))
    if all(c != ORT_NAMES["cpu"] for c, _ in chosen):
        chosen.append((ORT_NAMES["cpu"], {}))
    return ProviderPlan(chosen, skipped)


def select_providers(requested: Sequence[str], available: Sequence[str]) -> list[str]:
    """ONNX Runtime provider names to use, in preference order, always ending with CPU."""
    return plan_providers(requested, available).names
