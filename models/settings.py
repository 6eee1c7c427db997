"""Detector configuration (the ``model:`` section of the SharpEyes config)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from models.layouts import LAYOUTS
from models.registry import CARDS, DEFAULT_MODEL, card_path_for, load_card_beside
from models.tiling import TilingSettings

Provider = Literal["tensorrt", "cuda", "cpu"]


class DetectorSettings(BaseModel):
    """Which model runs, on which execution providers, with which thresholds."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        DEFAULT_MODEL,
        description="A model card name (see `sharpeyes models list`), or a label when `path` "
        "points at your own ONNX export.",
    )
    path: Path | None = Field(
        None, description="Your own ONNX file instead of a bundled card; needs `layout`."
    )
    layout: str | None = Field(
        None,
        description="Input/output layout of a custom model: yolox, yolov5, yolov8, yolo11, "
        "yolo_end2end, nanodet or tf_ssd (read from its model card when exported by SharpEyes).",
    )
    input_size: tuple[int, int] | None = Field(
        None, description="(width, height) the model analyses; defaults to the card's size."
    )
    score_threshold: float = Field(0.3, gt=0.0, lt=1.0, description="Minimum person score.")
    nms_iou: float = Field(0.45, gt=0.0, le=1.0, description="IoU above which boxes merge.")
    providers: list[Provider] = Field(
        default_factory=lambda: ["cpu"],
        description="ONNX Runtime execution providers in order of preference; unavailable "
        "ones are skipped with a warning and CPU is always the last resort.",
    )
    intra_op_threads: int | None = Field(
        None, ge=1, description="Threads per inference call (default: ONNX Runtime's choice)."
    )
    inter_op_threads: int | None = Field(
        None, ge=1, description="Threads across independent graph branches (default: ORT's)."
    )
    allow_spinning: bool = Field(
        False,
        description="Let ONNX Runtime's worker threads busy-wait between calls. Saves a few "
        "ms per call but burns CPU while idle: measured here, 34 ms instead of 15 ms of CPU "
        "per 416² detection when calls are spaced out, as a camera pipeline's are.",
    )
    precision: Literal["fp32", "fp16"] = Field(
        "fp32",
        description="fp16 builds TensorRT engines in half precision (trt_fp16_enable); CPU "
        "and CUDA run the model's own precision.",
    )
    device_id: int = Field(0, ge=0, description="GPU index for the CUDA and TensorRT providers.")
    trt_cache_dir: Path | None = Field(
        None,
        description="Where TensorRT keeps built engines, so a restart does not rebuild them "
        "(minutes on a large model).",
    )
    max_batch: int = Field(
        16,
        ge=1,
        le=256,
        description="Largest batch TensorRT engines are built for; match pipeline.max_batch.",
    )
    tiling: TilingSettings | None = Field(
        None, description="Tiled inference on large frames for far, small people (off if unset)."
    )

    @field_validator("input_size")
    @classmethod
    def _positive(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and (value[0] < 32 or value[1] < 32):
            raise ValueError("input_size must be at least 32×32 pixels, e.g. [416, 416]")
        return value

    @model_validator(mode="after")
    def _known(self) -> DetectorSettings:
        if self.path is None and self.name not in CARDS:
            known = ", ".join(sorted(CARDS))
            raise ValueError(
                f"unknown model '{self.name}': use one of {known}, "
                "or set `path` (and `layout`) for your own ONNX export"
            )
        if self.layout is not None and self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout '{self.layout}': use one of {', '.join(LAYOUTS)}")
        if self.path is not None and self.layout is None:
            if not self.path.is_file():
                raise ValueError(
                    f"model file {self.path} not found: export one with `sharpeyes models "
                    "export`, or fix the path"
                )
            if load_card_beside(self.path) is None:
                raise ValueError(
                    f"no model card beside {self.path} ({card_path_for(self.path).name}): set "
                    f"`layout` (one of {', '.join(LAYOUTS)}) for your own ONNX export"
                )
        return self
