"""The pipeline's scheduler and batcher on real components: the RTSP server, PyAV sources,
the real detector and Redis, with inference on worker threads."""

from __future__ import annotations

import json
import threading

import pytest
import redis

from alerting.publisher import AlertPublisher
from alerting.settings import RedisSettings
from camera_adapters.pyav_source import PyAVSource, SourceOptions
from camera_adapters.spec import CameraSpec
from pipeline.batcher import AnalysisResult
from pipeline.service import PipelineService
from pipeline.settings import PipelineSettings
from tests.helpers import wait_for

LOCATION = {"district": "D", "street": "S", "community": "C", "grid_cell": "G"}


@pytest.mark.slow
def test_three_rtsp_cameras_are_analysed_in_batches_with_latency(
    rtsp_server, redis_server, detector
) -> None:
    cameras = [
        CameraSpec(id=f"cam{i}", name=f"Camera {i}", source=rtsp_server.url(mount),
                   location=LOCATION)
        for i, mount in enumerate(["cam1", "cam2", "cam1"])
    ]  # fmt: skip
    results: list[AnalysisResult] = []
    service = PipelineService(
        cameras,
        detector,
        AlertPublisher.from_settings(RedisSettings(url=redis_server.url)),
        PipelineSettings(analysis_fps=2.0, max_wait_ms=50, worker_id="live", health_interval_s=1),
        on_result=results.append,
    )
    stop = threading.Event()
    runner = threading.Thread(target=service.run, args=(stop,))
    runner.start()
    try:
        wait_for(lambda: {r.camera_id for r in results} == {"cam0", "cam1", "cam2"}, 60)
        wait_for(lambda: len(results) >= 12, 60)
    finally:
        stop.set()
        runner.join(30)
    assert not runner.is_alive()
    for result in results:
        assert 0 <= result.latency_s < 5, "capture to result, on a shared machine"
        assert result.captured_at <= result.taken_at <= result.finished_at
        assert result.frame.camera_id == result.camera_id
    per_camera = {c: [r for r in results if r.camera_id == c] for c in ("cam0", "cam1", "cam2")}
    for camera, mine in per_camera.items():
        captured = [r.captured_at for r in mine]
        assert captured == sorted(captured), f"{camera} analysed out of order"
        assert len(set(r.frame.sequence for r in mine)) == len(mine), "no frame twice"
    metrics = service.metrics
    assert metrics.batches._value.get() >= 1
    assert metrics.latency_seconds._sum.get() > 0
    health = redis.Redis.from_url(redis_server.url).hgetall("sharpeyes:camera-health")
    report = json.loads(health[b"cam0"])
    assert report["analysis_fps"] == 2.0 and report["configured_fps"] == 2.0
    assert report["frames_analysed"] >= 1 and report["latency_s"] is not None


def test_pyav_source_accepts_a_new_analysis_rate(sample_clip) -> None:
    spec = CameraSpec(id="c", name="C", source=str(sample_clip), location=LOCATION)
    source = PyAVSource(spec, SourceOptions(analysis_fps=1.0))
    source.set_analysis_rate(0.25)
    assert source.analysis_fps == 0.25
    with pytest.raises(ValueError, match="must be > 0"):
        source.set_analysis_rate(0)
