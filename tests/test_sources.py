"""Camera sources on PyAV: files and a real RTSP server, newest frame only, recovery."""

from __future__ import annotations

import time
from pathlib import Path

import av

from camera_adapters.health import SourceState
from camera_adapters.pyav_source import PyAVSource, SourceOptions
from camera_adapters.spec import CameraSpec
from sharpeyes.devservers.rtsp import RtspServer
from tests.helpers import wait_for

LOCATION = {"district": "D", "street": "S", "community": "C", "grid_cell": "G"}


def camera(source: str, **extra) -> CameraSpec:
    return CameraSpec(id="cam", name="Camera", source=source, location=LOCATION, **extra)


def test_file_source_yields_model_sized_keyframes(sample_clip: Path) -> None:
    source = PyAVSource(camera(str(sample_clip)), SourceOptions(analysis_size=(416, 416)))
    source.start()
    try:
        frames = [wait_for(lambda: source.frames.take(), 5) for _ in range(3)]
    finally:
        source.stop()
    with av.open(str(sample_clip)) as container:
        stream = container.streams.video[0]
        width, height = stream.width, stream.height
    expected = (416, round(height * 416 / width)) if width >= height else None
    for frame in frames:
        assert frame.image.shape[1::-1] == expected
        assert frame.image.dtype.name == "uint8" and frame.image.shape[2] == 3
        assert frame.keyframe and frame.camera_id == "cam"
        assert frame.source_size == (width, height)
    assert [f.sequence for f in frames] == sorted(f.sequence for f in frames)
    assert frames[0].full_resolution().shape[:2] == (height, width)
    health = source.snapshot()
    assert health.decode_mode == "keyframes" and health.frames_in == health.frames_out


def test_slow_consumer_gets_the_newest_frame_only(rtsp_server: RtspServer) -> None:
    source = PyAVSource(
        camera(rtsp_server.url("cam1")), SourceOptions(analysis_fps=5.0, decode="all")
    )
    source.start()
    try:
        wait_for(lambda: source.frames.peek(), 15)
        time.sleep(2.5)  # consume nothing while frames keep arriving
        frame = source.frames.take()
        assert frame is not None
        assert time.time() - frame.captured_at < 1.0, "the frame handed on must be fresh"
        assert source.frames.take() is None, "no backlog: one frame at most is kept"
        assert source.frames.dropped >= 5
    finally:
        source.stop()


def test_rtsp_source_recovers_when_the_server_returns(sample_clip: Path) -> None:
    server = RtspServer({"live": sample_clip}).start()
    source = PyAVSource(
        camera(server.url("live")),
        SourceOptions(stall_timeout_s=3, open_timeout_s=3, backoff_initial_s=0.5, backoff_max_s=2),
    )
    source.start()
    try:
        wait_for(lambda: source.frames.take(), 15)
        server.stop(kill=True)
        wait_for(
            lambda: source.snapshot().state in (SourceState.BACKOFF, SourceState.CONNECTING), 10
        )
        server.start()
        returned = time.monotonic()
        source.frames.take()
        wait_for(lambda: source.frames.take(), 15)
        assert time.monotonic() - returned < 10
        assert source.snapshot().reconnects >= 1
    finally:
        source.stop()
        server.stop()


def test_wrong_credentials_are_reported_and_redacted(sample_clip: Path) -> None:
    with RtspServer({"secure": sample_clip}, user="admin", password="right") as server:
        url = server.url("secure").replace("rtsp://", "rtsp://admin:s3cret-pw@")
        source = PyAVSource(camera(url), SourceOptions(open_timeout_s=5))
        source.start()
        try:
            wait_for(lambda: source.snapshot().state is SourceState.FAILED_AUTH, 15)
            health = source.snapshot()
            assert "s3cret-pw" not in (health.last_error or "")
        finally:
            source.stop()
