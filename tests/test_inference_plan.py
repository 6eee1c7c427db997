"""How the pipeline sizes its detector calls: automatic on CPU and GPU, explicit kept."""

from __future__ import annotations

from models.settings import DetectorSettings
from pipeline.inference_plan import plan_inference
from pipeline.settings import PipelineSettings

CPU_ONLY = ["CPUExecutionProvider"]
WITH_CUDA = ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_on_a_cpu_one_single_threaded_call_of_one_frame_per_core() -> None:
    plan = plan_inference(PipelineSettings(), DetectorSettings(), available=CPU_ONLY, cpus=8)
    assert (plan.workers, plan.max_batch, plan.model.intra_op_threads) == (8, 1, 1)
    settings = plan.pipeline(PipelineSettings())
    assert (settings.inference_workers, settings.max_batch) == (8, 1)


def test_threads_given_for_the_model_divide_the_cores_between_calls() -> None:
    model = DetectorSettings(intra_op_threads=4)
    plan = plan_inference(PipelineSettings(), model, available=CPU_ONLY, cpus=8)
    assert (plan.workers, plan.model.intra_op_threads) == (2, 4)
    plan = plan_inference(PipelineSettings(), model, available=CPU_ONLY, cpus=2)
    assert plan.workers == 1, "never fewer than one call"


def test_a_gpu_gets_two_calls_of_large_batches_and_onnx_runtimes_threads() -> None:
    model = DetectorSettings(providers=["cuda", "cpu"])
    plan = plan_inference(PipelineSettings(), model, available=WITH_CUDA, cpus=8)
    assert (plan.workers, plan.max_batch, plan.model.intra_op_threads) == (2, 16, None)
    # The GPU build missing: the CPU plan, as the detector will fall back to the CPU.
    plan = plan_inference(PipelineSettings(), model, available=CPU_ONLY, cpus=8)
    assert (plan.workers, plan.max_batch, plan.model.intra_op_threads) == (8, 1, 1)


def test_explicit_settings_are_kept() -> None:
    pipeline = PipelineSettings(inference_workers=3, max_batch=32)
    plan = plan_inference(pipeline, DetectorSettings(), available=CPU_ONLY, cpus=8)
    assert (plan.workers, plan.max_batch, plan.model.intra_op_threads) == (3, 32, None)
    assert plan.reason == "configured"
