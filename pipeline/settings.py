"""Pipeline settings (the ``pipeline:`` section) and the pipeline's view of the config."""

from __future__ import annotations

import socket
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from alerting.settings import RedisSettings
from camera_adapters.spec import CameraSpec
from models.settings import DetectorSettings


class PipelineSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    analysis_fps: float = Field(
        1.0, gt=0.0, le=30.0, description="Analyses per second per camera (cameras may override)."
    )
    max_batch: int = Field(16, ge=1, le=256, description="Most frames per detector call.")
    decode: Literal["auto", "keyframes", "all"] = Field(
        "auto",
        description="auto: keyframes only while they come at least as often as analyses are "
        "due, else every frame; keyframes / all force one mode.",
    )
    snapshot_max_width: int = Field(1280, ge=160, description="Snapshots are scaled down to this.")
    snapshot_quality: int = Field(85, ge=30, le=100, description="JPEG quality of snapshots.")
    health_interval_s: float = Field(5.0, gt=0.0, description="How often camera health is shared.")
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Serve Prometheus /metrics on this port (off if unset)."
    )
    worker_id: str = Field(
        default_factory=socket.gethostname, min_length=1, description="Names this worker."
    )


class PipelineConfig(BaseModel):
    """Everything one pipeline worker needs."""

    model_config = ConfigDict(extra="forbid")

    cameras: list[CameraSpec]
    redis: RedisSettings
    model: DetectorSettings
    pipeline: PipelineSettings
