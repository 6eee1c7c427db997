"""Choosing ONNX Runtime execution providers from configuration and what is installed."""

from __future__ import annotations

import logging
from collections.abc import Sequence

log = logging.getLogger(__name__)

ORT_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


def select_providers(requested: Sequence[str], available: Sequence[str]) -> list[str]:
    """ONNX Runtime provider names to use, in preference order, always ending with CPU.

    A requested provider that this onnxruntime build lacks is skipped with a warning rather
    than failing: a GPU config must still run (slowly) on a machine without the GPU build.
    """
    chosen: list[str] = []
    for name in requested:
        ort_name = ORT_NAMES[name]
        if ort_name in available:
            if ort_name not in chosen:
                chosen.append(ort_name)
        else:
            log.warning(
                "execution provider not available, skipping",
                extra={"provider": name, "available": ",".join(available)},
            )
    if ORT_NAMES["cpu"] not in chosen:
        chosen.append(ORT_NAMES["cpu"])
    return chosen
