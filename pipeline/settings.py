"""Pipeline settings (the ``pipeline:`` section) and the pipeline's view of the config."""

from __future__ import annotations

import socket
import zlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from alerting.settings import RedisSettings
from camera_adapters.decoder import Deblock
from camera_adapters.spec import CameraSpec
from models.settings import DetectorSettings


class PipelineSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    analysis_fps: float = Field(
        1.0, gt=0.0, le=30.0, description="Analyses per second per camera (cameras may override)."
    )
    max_batch: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Most frames per detector call. Unset: 4 on a CPU (small batches stay in "
        "cache: 11 ms of CPU per image at 4 against 13 ms at 16, one thread), 16 on a GPU.",
    )
    max_wait_ms: float = Field(
        25.0,
        ge=0.0,
        le=1000.0,
        description="How long a batch may wait for more due frames after its oldest frame was "
        "captured. Larger fills GPU batches better; every millisecond adds to latency.",
    )
    inference_workers: int | None = Field(
        None,
        ge=1,
        le=16,
        description="Detector calls in flight at once (one shared ONNX Runtime session). "
        "Unset: on a CPU one single-threaded call per core (model.intra_op_threads 1 unless "
        "set; cheapest per image, see pipeline/inference_plan.py), on a GPU two. Set it by "
        "hand so that workers × model.intra_op_threads does not exceed the cores.",
    )
    adaptive_rate: bool = Field(
        True,
        description="Lower every camera's analysis rate evenly when inference cannot keep "
        "up (logged and exported as sharpeyes_analysis_rate_scale), and raise it again when "
        "the load drops. Off: cameras are analysed as often as capacity allows, most "
        "overdue first.",
    )
    target_utilisation: float = Field(
        0.8,
        gt=0.1,
        lt=1.0,
        description="Share of the detector's measured capacity the rates are lowered to.",
    )
    latency_target_s: float = Field(
        2.0, gt=0.0, description="95th-percentile capture-to-result latency that lowers rates."
    )
    min_rate_fraction: float = Field(
        0.1,
        gt=0.0,
        le=1.0,
        description="Rates are never lowered below this fraction of the configured rates.",
    )
    rate_window_s: float = Field(
        5.0, gt=0.0, description="How often load is measured and rates reconsidered."
    )
    decode: Literal["auto", "keyframes", "all"] = Field(
        "auto",
        description="auto: keyframes only while they come at least as often as analyses are "
        "due, else every frame; keyframes / all force one mode.",
    )
    even_spacing: bool = Field(
        False,
        description="Between keyframes, analyse the frames nearest the due times (evenly "
        "spaced) instead of the earliest the scheduler accepts (from half an interval early, "
        "less 20 ms). Each frame costs decoding every frame before it in its GOP: with 2-s "
        "GOPs at 25 fps and 1/s, off decodes 14 frames per GOP and analyses 0.52 s / 1.48 s "
        "apart, on decodes 26 and analyses 1 s apart. The rate is the same either way.",
    )
    deblock: Deblock = Field(
        "keyframes",
        description="Where the decoder runs H.264 / H.265's deblocking filter. keyframes: on "
        "keyframes only, so frames decoded between keyframes cost up to a quarter less CPU and "
        "drift slightly from the exact picture until the next keyframe (the detector's boxes "
        "change at its threshold, its count error does not grow: benchmarks/results/"
        "deblock.md); all: every frame, bit exact.",
    )
    receiver: Literal["auto", "ffmpeg"] = Field(
        "auto",
        description="auto: RTSP-over-TCP cameras sending H.264 or H.265 are read by a few shared "
        "receiver threads (a third of FFmpeg's CPU for receiving), the rest by FFmpeg; ffmpeg: "
        "every camera by FFmpeg, one thread each.",
    )
    receiver_threads: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Shared receiver threads (they also decode their cameras); default: one "
        "per core.",
    )
    hwaccel: str | None = Field(
        None,
        description="Hardware video decoder, an FFmpeg device type such as cuda, vaapi or qsv; "
        "falls back to the CPU decoder (noted in camera health) where the device is missing.",
    )
    api_cameras: bool = Field(
        True,
        description="Also run the cameras managed through the API (applied live from Redis, "
        "no restart); off: only the cameras in this file.",
    )
    shard: str | None = Field(
        None,
        pattern=r"^\d+/\d+$",
        description="'i/n': this worker runs the API cameras whose id hashes to i of n "
        "(workers 0/n … n-1/n together run all of them). Unset: all.",
    )
    thumbnail_interval_s: float = Field(
        30.0,
        gt=0.0,
        description="How often each camera's current view is shared (a 640-px JPEG in Redis) "
        "for drawing zones in the console.",
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

    @field_validator("shard")
    @classmethod
    def _shard_in_range(cls, shard: str | None) -> str | None:
        if shard is not None:
            index, count = (int(part) for part in shard.split("/"))
            if count < 1 or index >= count:
                raise ValueError(f"shard '{shard}' must be i/n with 0 <= i < n, e.g. 0/4")
        return shard

    def runs_api_camera(self, camera_id: str) -> bool:
        """Whether this worker runs an API-managed camera (stable across restarts)."""
        if not self.api_cameras:
            return False
        if self.shard is None:
            return True
        index, count = (int(part) for part in self.shard.split("/"))
        return zlib.crc32(camera_id.encode()) % count == index


class PipelineConfig(BaseModel):
    """Everything one pipeline worker needs."""

    model_config = ConfigDict(extra="forbid")

    cameras: list[CameraSpec]
    redis: RedisSettings
    model: DetectorSettings
    pipeline: PipelineSettings
