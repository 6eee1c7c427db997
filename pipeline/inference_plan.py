"""How many detector calls run at once, how large, and with how many ONNX Runtime threads.

On a CPU, several single-threaded calls on one shared session cost less CPU per image than
one call spread over every core: measured with YOLOX-nano 416² on 2 cores, 9.8 ms of CPU per
image at batch 1 and 11.2 ms at batch 4 on one thread, against 13–16 ms with ONNX Runtime's
default of one thread per core (its threads synchronise per operator, and a busy machine makes
them wait). In the throughput benchmark that took SharpEyes from 0.0079 to 0.0072 CPU-s per
stream-second at 0.2 analyses/s and cut p99 latency from 0.99 to 0.80 s.

A CPU call takes one frame: every image more in a batch costs more than one alone (10.0, 10.5,
11.0 and 11.2 ms per image at batches of 1–4, one thread), and nothing is gained back, as one
thread works through a batch image by image anyway. Measured per thread inside the pipeline
(128 cameras at 0.2/s), the inference threads spent 11.4 ms per analysis with single frames
against 12.6 ms with batches of up to 4 (1.8 on average). On a GPU the device does the work
and batches pay; two calls in flight overlap one batch's pre- and post-processing with the
next one's inference.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from models.providers import ORT_NAMES
from models.settings import DetectorSettings
from pipeline.settings import PipelineSettings

log = logging.getLogger(__name__)

GPU_WORKERS = 2
GPU_MAX_BATCH = 16
CPU_MAX_BATCH = 1
MAX_WORKERS = 16


@dataclass(frozen=True)
class InferencePlan:
    workers: int
    max_batch: int
    model: DetectorSettings
    reason: str

    def pipeline(self, settings: PipelineSettings) -> PipelineSettings:
        """``settings`` with the workers and batch size resolved."""
        return settings.model_copy(
            update={"inference_workers": self.workers, "max_batch": self.max_batch}
        )


def plan_inference(
    pipeline: PipelineSettings,
    model: DetectorSettings,
    *,
    available: Sequence[str] | None = None,
    cpus: int | None = None,
) -> InferencePlan:
    """Resolve ``pipeline.inference_workers`` and ``max_batch`` (None: automatic) and the
    model's threads.

    Explicit settings are kept as they are; ``available`` defaults to this onnxruntime
    build's providers and ``cpus`` to the machine's logical cores.
    """
    plan = _plan(pipeline, model, available, cpus)
    log.info(
        "inference plan",
        extra={
            "workers": plan.workers,
            "max_batch": plan.max_batch,
            "intra_op_threads": plan.model.intra_op_threads or "default",
            "reason": plan.reason,
        },
    )
    return plan


def _plan(
    pipeline: PipelineSettings,
    model: DetectorSettings,
    available: Sequence[str] | None,
    cpus: int | None,
) -> InferencePlan:
    if available is None:
        import onnxruntime as ort

        available = ort.get_available_providers()
    gpu = [p for p in model.providers if p != "cpu" and ORT_NAMES[p] in available]
    max_batch = pipeline.max_batch or (GPU_MAX_BATCH if gpu else CPU_MAX_BATCH)
    if pipeline.inference_workers is not None:
        return InferencePlan(pipeline.inference_workers, max_batch, model, "configured")
    if gpu:
        return InferencePlan(GPU_WORKERS, max_batch, model, f"{gpu[0]} provider: calls overlap")
    cpus = cpus or os.cpu_count() or 1
    threads = model.intra_op_threads or 1
    workers = max(1, min(MAX_WORKERS, cpus // threads))
    if model.intra_op_threads is None:
        model = model.model_copy(update={"intra_op_threads": 1})
    reason = f"CPU: {workers} call(s) of {threads} thread(s) on {cpus} core(s), one frame each"
    return InferencePlan(workers, max_batch, model, reason)
