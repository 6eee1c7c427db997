"""Camera sources on PyAV: decode modes, model-sized frames, newest frame only, options.

Network failures (stalls, garbage, restarts, credentials) are in test_sources_network.py.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from camera_adapters import pyav_source
from camera_adapters.decoder import DecodeLoad, Decoder, StreamInfo, decoder_threads
from camera_adapters.frames import Frame
from camera_adapters.health import SourceState
from camera_adapters.pyav_source import PyAVSource, SourceOptions
from camera_adapters.redact import redact_text
from camera_adapters.spec import CameraSpec
from sharpeyes import sample_clips
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
    thumbnail = frames[0].full_resolution(max_width=200)  # e.g. the console's thumbnails
    assert thumbnail.shape == (round(height * 200 / width), 200, 3)
    analysis = frames[0].image  # the same picture, scaled by the source for the detector
    again = cv2.resize(thumbnail, analysis.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(again.astype(int) - analysis).mean() < 6
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


@pytest.fixture(scope="module")
def gop_clip(sample_clip: Path) -> Path:
    """4 s of the sample video at 640×360, 25 fps, a keyframe every 25 frames (1 s)."""
    return sample_clips.transcode(sample_clip, size=(640, 360), fps=25, gop=25, seconds=4)


@pytest.fixture(scope="module")
def bframe_clip(gop_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The GOP clip again with two B-frames between references: packets in decode order,
    pictures out of it."""
    path = tmp_path_factory.mktemp("bframes") / "bframes.mp4"
    with av.open(str(gop_clip)) as src, av.open(str(path), "w") as dst:
        out = dst.add_stream("libx264", rate=25)
        out.width, out.height, out.pix_fmt = 640, 360, "yuv420p"
        out.options = {"x264-params": "keyint=25:min-keyint=25:scenecut=0:b-adapt=0", "bf": "2"}
        for picture in src.decode(video=0):
            picture = picture.reformat(format="yuv420p")
            picture.pict_type = av.video.frame.PictureType.NONE  # let x264 choose B-frames
            for packet in out.encode(picture):
                dst.mux(packet)
        for packet in out.encode():
            dst.mux(packet)
    return path


def count_packets(path: Path) -> tuple[int, int]:
    """(video packets, of which keyframes) as the file's own index says."""
    total = keys = 0
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            if packet.size:
                total += 1
                keys += bool(packet.is_keyframe)
    return total, keys


def run_offline(path: Path, **options: object) -> tuple[PyAVSource, list[Frame]]:
    """Decode a file to its end as fast as possible, collecting every frame handed on."""
    source = PyAVSource(camera(str(path)), SourceOptions(realtime=False, **options))
    frames: list[Frame] = []
    source.frames.put = frames.append  # type: ignore[method-assign]  # keep all, not latest
    source.start()
    wait_for(lambda: source.snapshot().state is SourceState.ENDED, 60)
    assert source.stop(5)
    return source, frames


def test_keyframe_mode_decodes_only_keyframes_at_the_model_size(gop_clip: Path) -> None:
    total, keyframes = count_packets(gop_clip)
    assert total >= 100 and keyframes == -(-total // 25)  # GOP 25: a keyframe every second
    source, frames = run_offline(
        gop_clip, decode="keyframes", analysis_fps=1.0, analysis_size=(416, 416)
    )
    health = source.snapshot()
    assert health.packets_in == total and health.keyframes_in == keyframes
    assert health.frames_in == keyframes, "the decoder must skip every non-key frame"
    assert len(frames) == keyframes and all(f.keyframe for f in frames)
    assert {f.image.shape for f in frames} == {(234, 416, 3)}  # 640×360 fitted into 416²
    assert (
        health.decode_mode == "keyframes"
        and health.decoder == "h264 on cpu, 1 thread(s), deblocking keyframes only"
    )


def test_sparse_keyframes_are_taken_at_the_analysis_rate_not_above_it(sample_clip: Path) -> None:
    """Keyframes every second, an analysis every 5 s: the keyframe nearest each due time is
    decoded (0, 3, 8, 13, 18 s), no other. Taking any keyframe half an interval after the
    last one decoded and handed on 0, 3, 6, … 18 s: 7 pictures, 0.35/s instead of 0.2/s."""
    clip = sample_clips.transcode(sample_clip, size=(320, 180), fps=10, gop=10, seconds=20)
    source, frames = run_offline(clip, decode="keyframes", analysis_fps=0.2)
    stamps = [round(f._decoded.time) for f in frames]
    assert stamps == [0, 3, 8, 13, 18]
    assert source.snapshot().frames_in == len(frames), "a keyframe decoded is one handed on"


def test_full_decode_decodes_every_frame_and_converts_only_due_ones(gop_clip: Path) -> None:
    total, _ = count_packets(gop_clip)
    source, frames = run_offline(gop_clip, decode="all", analysis_fps=2.0)
    health = source.snapshot()
    assert health.frames_in == total and health.decode_mode == "all"
    assert 8 <= len(frames) == health.frames_out <= 9  # 4 s of video sampled twice a second
    assert [f.sequence for f in frames] == list(range(1, len(frames) + 1))
    assert frames[0].keyframe and not all(f.keyframe for f in frames)


def test_auto_mode_follows_the_analysis_rate(gop_clip: Path) -> None:
    # Keyframes every second satisfy one analysis a second: keyframes only.
    _, keyframes = count_packets(gop_clip)
    source, _ = run_offline(gop_clip, decode="auto", analysis_fps=1.0)
    assert source.snapshot().decode_mode == "keyframes"
    assert source.snapshot().frames_in == keyframes
    # Five analyses a second need more than keyframes: full decoding once that is measured.
    source, frames = run_offline(gop_clip, decode="auto", analysis_fps=5.0)
    health = source.snapshot()
    assert health.decode_mode == "all" and health.keyframe_interval_s == pytest.approx(1.0)
    # It takes three keyframes (2 s) to measure their interval; then each GOP decodes up to
    # its last analysed frame (0, 0.2, … 0.8 s: frames 0-20 of 25).
    assert 40 <= health.frames_in <= 46 and len(frames) >= 12  # vs 5 and 5 keyframes only


def test_auto_mode_decodes_a_gop_only_up_to_its_last_analysed_frame(gop_clip: Path) -> None:
    total, _ = count_packets(gop_clip)
    source, frames = run_offline(gop_clip, decode="auto", analysis_fps=2.0)
    health = source.snapshot()
    assert health.decode_mode == "all"
    # Two analyses per 1-s GOP: frames 0 and 7 are handed on, frames 8-24 are skipped in
    # the decoder once the keyframe interval is known (after the first two seconds).
    assert health.frames_in <= 0.8 * total, (health.frames_in, total)
    # Keyframes only for the first 2 s (one a second), then two a second: the keyframe and
    # the first frame the scheduler accepts for the due time half a second into its GOP.
    assert [f.keyframe for f in frames] == [True, True, True, False, True, False]


def test_between_keyframes_the_earliest_acceptable_frame_is_analysed(gop_clip: Path) -> None:
    """2/s on 1-s GOPs at 25 fps: the frame for the due time at 0.5 s is the first from
    0.25 s that the scheduler accepts with a margin (0.27 s: half an interval early less
    20 ms), so the GOP is decoded to frame 7, not 12; ``even_spacing`` takes the frame
    nearest the due time. Same number of analyses."""
    early, early_frames = run_offline(gop_clip, decode="auto", analysis_fps=2.0)
    even, even_frames = run_offline(gop_clip, decode="auto", analysis_fps=2.0, even_spacing=True)

    def offsets(frames: list[Frame]) -> set[float]:
        return {round(f._decoded.time % 1.0, 2) for f in frames if not f.keyframe}

    assert offsets(early_frames) == {0.28} and offsets(even_frames) == {0.48}
    assert len(early_frames) == len(even_frames)
    assert early.snapshot().frames_in < even.snapshot().frames_in - 5


def test_between_keyframes_a_source_keeps_to_the_consumers_grid(gop_clip: Path) -> None:
    """The scheduler's grid advances by one interval per analysis, the source's restarts at
    each keyframe, and the two drift apart (capture times settling, timestamps jumping). A
    picture handed on before the scheduler takes it costs its GOP's decoding and an
    analysis. Here a consumer whose grid runs 0.1 s behind the keyframes (it takes frames
    from 0.35 s after the last one at 2/s): the source hands on the first picture it takes,
    not the one its own grid would pick at 0.28 s."""
    source = PyAVSource(camera(str(gop_clip)), SourceOptions(analysis_fps=2.0))  # real time
    frames: list[Frame] = []
    wanted: list[float] = []

    def take(frame: Frame) -> None:  # as the scheduler does on dispatch
        frames.append(frame)
        wanted.append(source.frames.wanted_from)
        source.frames.want_from(frame.captured_at + 0.35)

    source.frames.put = take  # type: ignore[method-assign]
    source.start()
    wait_for(lambda: source.snapshot().state is SourceState.ENDED, 30)
    assert source.stop(5)
    assert all(f.captured_at >= w for f, w in zip(frames, wanted, strict=True)), "none too soon"
    after_keyframes = [
        b.captured_at - a.captured_at
        for a, b in itertools.pairwise(frames)
        if a.keyframe and not b.keyframe
    ]
    # The keyframe interval is known from the third keyframe (2 s): from then on each GOP
    # hands on a picture between keyframes, 0.36 s into it rather than 0.28.
    assert len(after_keyframes) >= 1 and all(gap >= 0.35 for gap in after_keyframes)
    assert len(frames) >= 5


def burst_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record how many packets each decoding step of every reader took."""
    sizes: list[int] = []
    decode = pyav_source._Reader._decode

    def spy(reader, packets, arrived):  # type: ignore[no-untyped-def]
        if packets:
            sizes.append(len(packets))
        return decode(reader, packets, arrived)

    monkeypatch.setattr(pyav_source._Reader, "_decode", spy)
    return sizes


def handed_on(frames: list[Frame]) -> list[tuple[int | None, bool]]:
    return [(f._decoded.pts, f.keyframe) for f in frames]


def test_pictures_before_an_analysed_one_are_decoded_in_one_burst(
    gop_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2/s on 1-s GOPs: frames 1-7 wait, as packets, for frame 7 (the one analysed) and are
    decoded with it in one go; what is handed on is the same as decoding each on arrival."""
    sizes = burst_sizes(monkeypatch)
    source, frames = run_offline(gop_clip, decode="auto", analysis_fps=2.0)
    assert sizes.count(7) >= 2, sizes  # the two GOPs after the keyframe interval is known
    bursts = sizes.copy()
    sizes.clear()
    monkeypatch.setattr(pyav_source, "MAX_WAITING_PACKETS", 0)  # every packet on arrival
    one_by_one, one_frames = run_offline(gop_clip, decode="auto", analysis_fps=2.0)
    assert set(sizes) == {1}
    assert handed_on(frames) == handed_on(one_frames)
    assert [f for f in handed_on(frames) if not f[1]], "pictures between keyframes analysed"
    for a, b in zip(frames, one_frames, strict=True):
        assert np.array_equal(a.image, b.image)
    assert source.snapshot().frames_in == one_by_one.snapshot().frames_in
    assert len(bursts) < len(sizes) - 10


def test_streams_with_b_frames_decode_each_picture_on_arrival(
    bframe_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pictures out of decode order (B-frames): the decoder holds a picture back until later
    packets arrive, so a burst would delay the analysed one. Bursts stop at the first sign of
    reordering and the same pictures are handed on as without them."""
    path = bframe_clip
    sizes = burst_sizes(monkeypatch)
    source, frames = run_offline(path, decode="auto", analysis_fps=2.0)
    assert source.snapshot().decode_mode == "all"
    assert set(sizes) == {1}, sizes
    monkeypatch.setattr(pyav_source, "MAX_WAITING_PACKETS", 0)
    _, one_frames = run_offline(path, decode="auto", analysis_fps=2.0)
    assert handed_on(frames) == handed_on(one_frames)
    assert len(frames) >= 6 and not all(f.keyframe for f in frames)


def test_a_live_camera_decodes_in_bursts(
    rtsp_server: RtspServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The native RTSP receiver's path: the picture analysed between keyframes arrives with
    the pictures it references, decoded in one go, and reaches the mailbox as usual."""
    sizes = burst_sizes(monkeypatch)
    source = PyAVSource(camera(rtsp_server.url("cam1")), SourceOptions(analysis_fps=2.0))
    frames: list[Frame] = []
    source.frames.put = frames.append  # type: ignore[method-assign]
    source.start()
    try:
        wait_for(lambda: sum(not f.keyframe for f in frames) >= 3, 20)
    finally:
        source.stop()
    health = source.snapshot()
    assert health.receiver == "native" and health.decode_mode == "all"
    assert max(sizes) >= 3, sizes  # 0.3 s of pictures (10 fps), the analysed one last
    assert health.frames_in < health.packets_in


def test_analysis_rate_can_change_while_running(rtsp_server: RtspServer) -> None:
    source = PyAVSource(camera(rtsp_server.url("cam2")), SourceOptions(analysis_fps=1.0))
    source.start()
    try:
        wait_for(lambda: source.snapshot().keyframe_interval_s is not None, 20)
        assert source.snapshot().decode_mode == "keyframes"
        source.set_analysis_rate(5.0)  # the sample camera sends a keyframe every second
        wait_for(lambda: source.snapshot().decode_mode == "all", 10)
        before = source.snapshot()
        wait_for(lambda: source.snapshot().frames_in >= before.frames_in + 20, 10)
        source.set_analysis_rate(0.5)
        wait_for(lambda: source.snapshot().decode_mode == "keyframes", 10)
        assert source.snapshot().analysis_fps == 0.5
        with pytest.raises(ValueError, match="must be > 0"):
            source.set_analysis_rate(0)
    finally:
        assert source.stop(10)


def test_hardware_decoder_falls_back_to_the_cpu(
    sample_clip: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="camera_adapters")
    source = PyAVSource(camera(str(sample_clip)), SourceOptions(hwaccel="cuda", realtime=False))
    source.start()
    try:
        wait_for(source.frames.take, 10)
    finally:
        assert source.stop(5)
    decoder = source.snapshot().decoder or ""
    if "on cuda" not in decoder:  # this machine has no GPU: the CPU decoder took over
        assert "on cpu" in decoder
        assert any("hardware decoder 'cuda' unavailable" in r.getMessage() for r in caplog.records)


def test_decoder_threads_only_where_they_pay() -> None:
    assert decoder_threads(keyframes_only=True) == 1
    assert decoder_threads(keyframes_only=True, heavy=True) == 1
    assert decoder_threads(keyframes_only=False) == 1
    assert decoder_threads(keyframes_only=False, heavy=True) == max(1, min(4, os.cpu_count() or 1))
    assert decoder_threads(keyframes_only=True, requested=3) == 3
    load = DecodeLoad(window_s=5.0, threshold=0.5)
    assert not load.record(0.01, now=100.0)
    assert not any(load.record(0.01, now=100.0 + i / 25) for i in range(1, 125))
    assert not load.record(0.01, now=105.0) and load.last_fraction == pytest.approx(0.25, 0.05)
    assert not any(load.record(0.03, now=105.0 + i / 25) for i in range(1, 125))
    assert load.record(0.03, now=110.0) and load.last_fraction == pytest.approx(0.75, 0.05)


def test_keyframe_mode_hands_on_each_keyframe_with_its_own_packet(bframe_clip: Path) -> None:
    """A stream that reorders pictures makes the decoder hold a picture until a later one is
    decoded; in keyframe mode that would be the next keyframe, a GOP late."""
    with av.open(str(bframe_clip)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
        info = StreamInfo.of(stream)
    pts = [p.pts for p in packets]
    assert pts != sorted(pts), "the clip must have pictures out of decode order"
    decoder = Decoder(info, True, 1, None)
    keyframes = [p for p in packets if p.is_keyframe]
    for packet in packets:
        pictures = decoder.decode(packet)
        assert [p.pts for p in pictures] == ([packet.pts] if packet.is_keyframe else [])
    assert decoder.context.has_b_frames
    decoder.skip_pictures(True)  # a keyframe not analysed is neither decoded nor drained
    assert decoder.decode(keyframes[0]) == []
    decoder.skip_pictures(False)
    assert [p.pts for p in decoder.decode(keyframes[1])] == [keyframes[1].pts]
    # Through the source: one keyframe a second, each handed on, none lost.
    _, frames = run_offline(bframe_clip, decode="keyframes", analysis_fps=1.0)
    assert [f._decoded.pts for f in frames] == [p.pts for p in keyframes]


def decode_all(path: Path, deblock: str) -> list[tuple[bool, np.ndarray]]:
    """Every picture of ``path`` through our Decoder: (keyframe, planar YUV pixels)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoder = Decoder(StreamInfo.of(stream), False, 1, None, deblock=deblock)  # type: ignore[arg-type]
        pictures = []
        for packet in container.demux(stream):
            if packet.size:
                pictures += decoder.decode(packet)
        pictures += decoder.flush()
    return [(bool(p.key_frame), p.to_ndarray(format="yuv420p")) for p in pictures]


def test_deblocking_keyframes_only_keeps_keyframes_exact_and_others_close(gop_clip: Path) -> None:
    """Skipping the in-loop filter between keyframes changes those pictures (it is on), only a
    little (drift stays far below what a detector sees), and never a keyframe (it is exact)."""
    exact = decode_all(gop_clip, "all")
    fast = decode_all(gop_clip, "keyframes")
    assert len(exact) == len(fast) >= 100
    with av.open(str(gop_clip)) as container:  # "all" is FFmpeg's own, unchanged decoding
        plain = [p.to_ndarray(format="yuv420p") for p in container.decode(video=0)]
    assert all(np.array_equal(a, b) for (_, a), b in zip(exact, plain, strict=True))
    changed = 0
    for (key, a), (_, b) in zip(exact, fast, strict=True):
        if key:
            assert np.array_equal(a, b), "keyframes must stay bit exact"
            continue
        mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
        changed += mse > 0
        assert mse == 0 or 10 * np.log10(255**2 / mse) > 35, "drift too large"
    assert changed > len(exact) // 2, "the filter was not skipped between keyframes"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"stall_timeout_s": 0}, "stall_timeout_s"),
        ({"analysis_size": (0, 10)}, "analysis_size"),
        ({"deblock": "some"}, "deblock"),
    ],
)
def test_bad_source_options_name_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SourceOptions(**change)  # type: ignore[arg-type]


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    source = PyAVSource(camera(str(tmp_path / "nope.mp4")), SourceOptions(backoff_initial_s=0.1))
    source.start()
    try:
        health = wait_for(lambda: (h := source.snapshot()).last_error and h, 10)
    finally:
        assert source.stop(5)
    assert "video file not found" in health.last_error and "nope.mp4" in health.last_error


def test_passwords_are_masked_in_every_form() -> None:
    spec = camera("rtsp://192.0.2.1/live", username="admin", password="p@ss/w:rd")
    url = spec.stream_url()
    assert url == "rtsp://admin:p%40ss%2Fw%3Ard@192.0.2.1/live"
    message = f"Server returned 401 Unauthorized: '{url}' (password p@ss/w:rd)"
    masked = redact_text(message, spec.secrets())
    assert "p@ss" not in masked and "p%40ss" not in masked and "***@192.0.2.1" in masked
    assert "p@ss" not in repr(spec) and "p@ss" not in str(spec.model_dump(mode="json"))
    embedded = camera("rtsp://admin:p@ss@192.0.2.1/live")  # an unencoded '@' in the password
    assert embedded.display_source() == "rtsp://***@192.0.2.1/live"
    assert redact_text(f"cannot open {embedded.source}") == "cannot open rtsp://***@192.0.2.1/live"


class _Clock:
    """The state ``_Reader._captured`` keeps, for driving it with chosen arrivals."""

    def __init__(self, is_file: bool = False) -> None:
        self.is_file = is_file
        self.seconds_per_tick = 1 / 90000
        self.clock_offset: float | None = None
        self.clock_seen = 0.0
        self.last_media: float | None = None
        self.behind_s = 0.0

    def captured(self, media_s: float, wall: float, monotonic: float | None = None) -> float:
        packet = av.Packet(b"\x00")
        packet.pts = round(media_s * 90000)
        now = wall if monotonic is None else monotonic  # by default with the wall clock
        return pyav_source._Reader._captured(self, packet, wall, now)  # type: ignore[arg-type]


def test_capture_times_come_from_the_stream_clock_so_a_backlog_shows() -> None:
    clock = _Clock()
    start = 1_000_000.0  # wall clock when media time 0 arrived
    # On time, with up to a tick of jitter: capture times are the quickest arrival's mapping.
    for i, jitter in enumerate([0.0, 0.03, 0.01, 0.04, 0.0]):
        captured = clock.captured(i * 0.04, start + i * 0.04 + jitter)
        assert captured == pytest.approx(start + i * 0.04)
    # The reader stalls: pictures sent at 0.2-0.6 s are read at 3.0 s. They are 2.4-2.8 s old.
    for media in (0.2, 0.4, 0.6):
        assert clock.captured(media, start + 3.0) == pytest.approx(start + media, abs=0.01)
    assert clock.behind_s == pytest.approx(2.4, abs=0.01)  # less what it may creep
    # Reading the wall clock instead would have called them captured at 3.0 s.


def test_capture_clock_follows_a_slow_camera_clock_and_restarts_on_jumps() -> None:
    clock = _Clock()
    start = 1_000_000.0
    # The camera's clock runs 500 ppm slow: an hour later its pictures are not "1.8 s late".
    for second in range(0, 3600, 10):
        captured = clock.captured(second * (1 - 0.0005), start + second)
    assert start + 3590 - captured < 0.05
    assert clock.behind_s < 0.05
    # The camera restarts its encoder: timestamps go back to 0. The mapping starts again
    # rather than calling every picture an hour old.
    assert clock.captured(0.0, start + 3600) == pytest.approx(start + 3600)
    assert clock.captured(0.04, start + 3600.04) == pytest.approx(start + 3600.04)
    # ... and jumps far ahead of the time that passed: the same.
    assert clock.captured(500.0, start + 3601) == pytest.approx(start + 3601)
    # Pictures slightly out of order (B-frames) do not restart it.
    assert clock.captured(499.9, start + 3601.01) == pytest.approx(start + 3600.9)
    # Files keep the wall clock.
    assert _Clock(is_file=True).captured(5.0, start) == start


def test_a_wall_clock_step_is_not_taken_for_a_backlog() -> None:
    clock = _Clock()
    for i in range(5):
        clock.captured(i * 0.04, 2000.0 + i * 0.04, 50.0 + i * 0.04)
    # NTP steps the wall clock 5 s ahead; the monotonic clock runs on.
    assert clock.captured(0.2, 2005.2, 50.2) == pytest.approx(2005.2)
    assert clock.behind_s == pytest.approx(0.0)
