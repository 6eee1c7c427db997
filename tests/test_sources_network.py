"""Camera sources against real, misbehaving networks on 127.0.0.1.

A GStreamer RTSP server that stalls (``pause``), dies and comes back, or wants credentials;
raw TCP servers that answer with random bytes or with silence. Every server is started by the
test; timings printed here (stall detection, stop latency, recovery) are observations, the
assertions only bound them generously.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from pathlib import Path

import pytest

from camera_adapters.health import SourceState
from camera_adapters.pyav_source import PyAVSource, SourceOptions
from camera_adapters.rtsp_receiver import ReceiverPool
from camera_adapters.spec import CameraSpec
from sharpeyes.devservers.faulty import GarbageServer, Mpeg4CameraServer, SilentServer
from sharpeyes.devservers.rtsp import RtspServer, free_port
from tests.helpers import wait_for
from tests.netns import run_module_in_netns

LOCATION = {"district": "D", "street": "S", "community": "C", "grid_cell": "G"}


def camera(source: str, cam_id: str = "cam", **extra: object) -> CameraSpec:
    return CameraSpec(id=cam_id, name="Camera", source=source, location=LOCATION, **extra)


def os_threads() -> int:
    """Threads of this process as the kernel sees them (FFmpeg's decoder threads included)."""
    return len(os.listdir("/proc/self/task"))


def source_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("source-")]


def test_rtsp_over_tcp_decodes_keyframes_only(rtsp_server: RtspServer) -> None:
    source = PyAVSource(
        camera(rtsp_server.url("cam1"), transport="tcp"),
        SourceOptions(analysis_size=(320, 320), analysis_fps=1.0, decode="keyframes"),
    )
    source.start()
    try:
        frames = [wait_for(source.frames.take, 20) for _ in range(2)]
        wait_for(lambda: source.snapshot().packets_in >= 30, 20)
    finally:
        assert source.stop(10)
    health = source.snapshot()
    assert health.transport == "tcp"
    assert health.decode_mode == "keyframes" and "1 thread" in (health.decoder or "")
    # Only keyframes reach the decoder's output: every other packet is skipped inside it.
    assert 1 <= health.frames_in <= health.keyframes_in + 1
    assert health.packets_in >= 3 * health.frames_in
    for frame in frames:
        assert frame.keyframe and max(frame.image.shape[:2]) == 320
        assert abs(time.time() - frame.captured_at) < 30


def receiver_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("rtsp-receiver")]


def test_many_cameras_share_one_native_receiver_thread(rtsp_server: RtspServer) -> None:
    pool = ReceiverPool(1)
    sources = [
        PyAVSource(
            camera(rtsp_server.url(f"cam{1 + i % 2}"), cam_id=f"cam{i}"),
            SourceOptions(analysis_size=(160, 160), analysis_fps=1.0, receivers=pool),
        )
        for i in range(6)
    ]
    for source in sources:
        source.start()
    try:
        frames = [wait_for(source.frames.take, 20) for source in sources]
        assert len(receiver_threads()) == 1  # six cameras, one thread reading them
        assert pool.sessions == 6
        for source, frame in zip(sources, frames, strict=True):
            # The first frame may come before the next picture does (a receiver reads every
            # 40 ms): wait for a few more pictures, which are skipped, not decoded.
            health = wait_for(lambda s=source: (h := s.snapshot()).packets_in >= 5 and h, 10)
            assert health.receiver == "native" and health.state == SourceState.LIVE
            assert health.packets_in > health.frames_in >= 1  # pictures, not RTP packets
            assert health.decode_errors == 0 and health.packets_lost == 0
            assert frame.camera_id == source.spec.id and max(frame.image.shape[:2]) == 160
            assert abs(time.time() - frame.captured_at) < 5
    finally:
        for source in sources:
            source.request_stop()
        for source in sources:
            assert source.stop(10)
        pool.close()
    assert pool.sessions == 0
    wait_for(lambda: not receiver_threads(), 10)


def test_native_and_ffmpeg_readers_hand_on_the_same_pictures(rtsp_server: RtspServer) -> None:
    """The same camera read both ways: same size, keyframes at the same pace."""
    seen = {}
    for receiver in ("auto", "ffmpeg"):
        source = PyAVSource(
            camera(rtsp_server.url("cam1")),
            SourceOptions(analysis_size=(320, 320), analysis_fps=4.0, receiver=receiver),
        )
        source.start()
        try:
            frames = [wait_for(source.frames.take, 20) for _ in range(3)]
            wait_for(lambda s=source: s.snapshot().keyframe_interval_s, 20)
        finally:
            assert source.stop(10)
        health = source.snapshot()
        seen[health.receiver] = (frames[-1].image.shape, frames[-1].source_size, health)
    (n_shape, n_size, native), (f_shape, f_size, ffmpeg) = seen["native"], seen["ffmpeg"]
    assert n_shape == f_shape and n_size == f_size
    assert native.keyframe_interval_s == pytest.approx(ffmpeg.keyframe_interval_s, rel=0.05)
    assert native.decode_errors == ffmpeg.decode_errors == 0


def test_native_reader_decodes_each_gop_only_up_to_its_last_analysed_picture(
    rtsp_server: RtspServer,
) -> None:
    """2 analyses/s on a clip with a keyframe every second: each GOP is decoded from its
    keyframe to the picture analysed between keyframes, and the pictures after it are never
    handed to the decoder. The next GOP still decodes cleanly and the rate holds."""
    source = PyAVSource(
        camera(rtsp_server.url("cam1")),
        SourceOptions(analysis_size=(320, 320), analysis_fps=2.0),
    )
    source.start()
    try:
        wait_for(lambda: source.snapshot().keyframe_interval_s, 20)
        source.frames.take()
        frames, started = [], time.monotonic()
        while time.monotonic() - started < 5.0:
            frame = source.frames.wait(1.0)
            if frame is not None:
                frames.append(frame)
        health = source.snapshot()
    finally:
        assert source.stop(10)
    assert health.receiver == "native" and health.decode_mode == "all"
    assert any(not f.keyframe for f in frames) and any(f.keyframe for f in frames)
    assert 8 <= len(frames) <= 12, len(frames)  # 2/s over 5 s
    assert health.decode_errors == 0
    # 10 pictures per GOP, 4 decoded (keyframe to the one due 0.3 s later): well under all.
    assert health.frames_in < 0.6 * health.packets_in, health
    # Each picture between keyframes is the earliest the scheduler accepts for the due time
    # half an interval into its GOP: captured (by the stream's clock) at least a quarter of
    # a second after the keyframe, as the scheduler requires, and as a rule the next frame
    # after that (0.3 s; the clip's B-frames now and then bring 0.4 s out of the decoder
    # first).
    gaps = [
        b.captured_at - a.captured_at
        for a, b in itertools.pairwise(frames)
        if a.keyframe and not b.keyframe
    ]
    assert gaps and min(gaps) >= 0.25 and sorted(gaps)[len(gaps) // 2] < 0.35, gaps


def test_a_codec_the_native_receiver_lacks_falls_back_to_ffmpeg(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="camera_adapters")
    with Mpeg4CameraServer() as server:
        source = PyAVSource(
            camera(server.url()),
            SourceOptions(open_timeout_s=2.0, backoff_initial_s=0.05, backoff_max_s=0.1),
        )
        source.start()
        try:
            wait_for(lambda: source.snapshot().reconnects >= 3, 30)
        finally:
            assert source.stop(10)
    health = source.snapshot()
    assert health.receiver == "ffmpeg"  # FFmpeg took over (and fails on the 454s itself)
    fallbacks = [r for r in caplog.records if r.getMessage() == "reading this camera with FFmpeg"]
    assert len(fallbacks) == 1  # decided once, not at every reconnect
    assert "MP4V-ES" in fallbacks[0].reason


def test_keyframes_skipped_at_a_low_rate_are_not_a_stall(rtsp_server: RtspServer) -> None:
    """At 0.05 analyses/s a keyframe every second is decoded only every 10 s: the keyframes
    skipped on purpose in between must not look like a stream that stopped decoding (the
    watchdog's limit here is 5 s). Found by the throughput benchmark at 0.2/s and 128 cameras,
    where skipped keyframes and a busy machine made healthy cameras reconnect."""
    source = PyAVSource(
        camera(rtsp_server.url("cam2"), transport="tcp"),
        SourceOptions(analysis_size=(320, 320), analysis_fps=0.05, decode="keyframes"),
    )
    source.start()
    try:
        wait_for(source.frames.take, 20)  # the first keyframe is handed on at once
        started, seen = time.monotonic(), source.snapshot().keyframes_in
        wait_for(lambda: source.snapshot().keyframes_in >= seen + 12, 30)
        health = source.snapshot()
        assert time.monotonic() - started > 10  # longer than the watchdog's 5 s
    finally:
        assert source.stop(10)
    assert health.state == SourceState.LIVE and health.reconnects == 0, health.last_error
    assert health.frames_in <= 3  # the keyframes in between were skipped, not decoded


def test_rtsp_over_udp_in_a_private_network_namespace(sample_clip: Path) -> None:
    """FFmpeg binds its RTP receive ports on the wildcard address (it has no option to bind
    them to 127.0.0.1), so the UDP session runs where the only network is a private loopback."""
    report = run_module_in_netns("tests.udp_source_check", str(sample_clip))
    health = report["health"]
    assert report["stopped"] and health["transport"] == "udp"
    assert health["decode_mode"] == "keyframes" and health["reconnects"] == 0
    assert 2 <= health["frames_in"] <= health["keyframes_in"] + 1
    assert health["packets_in"] >= 3 * health["frames_in"]
    assert len(report["frames"]) >= 2
    for frame in report["frames"]:
        assert frame["keyframe"] and max(frame["shape"][:2]) == 320 and frame["age_s"] < 30


def test_stalled_stream_is_detected_and_recovers(sample_clip: Path) -> None:
    with RtspServer({"stall": sample_clip}) as server:
        source = PyAVSource(
            camera(server.url("stall")),
            SourceOptions(stall_timeout_s=1.5, backoff_initial_s=0.3, backoff_max_s=1.0),
        )
        source.start()
        try:
            wait_for(source.frames.take, 20)
            server.pause("stall")  # the session stays open, nothing is sent
            paused = time.monotonic()
            wait_for(lambda: source.snapshot().state is SourceState.STALLED, 15, 0.02)
            detected = time.monotonic() - paused
            health = source.snapshot()
            print(f"stall detected {detected:.2f} s after the camera went silent (limit 1.5 s)")
            assert health.stalls >= 1
            assert "no video data" in (health.last_error or "")
            assert detected >= 1.0  # not before the limit: a pause shorter than it is fine

            server.resume("stall")
            resumed = time.monotonic()
            source.frames.take()
            wait_for(source.frames.take, 20)
            print(f"frames again {time.monotonic() - resumed:.2f} s after the camera resumed")
            assert source.snapshot().state is SourceState.LIVE
            assert source.snapshot().reconnects >= 1
        finally:
            assert source.stop(10)


def test_stop_is_bounded_while_blocked_on_a_silent_stream(sample_clip: Path) -> None:
    with RtspServer({"quiet": sample_clip}) as server:
        source = PyAVSource(camera(server.url("quiet")), SourceOptions(stall_timeout_s=2.0))
        source.start()
        wait_for(source.frames.take, 20)
        started = time.monotonic()
        assert source.stop(10)
        print(f"stop() while live returned in {time.monotonic() - started:.3f} s")

        source = PyAVSource(camera(server.url("quiet")), SourceOptions(stall_timeout_s=2.0))
        source.start()
        wait_for(source.frames.take, 20)
        server.pause("quiet")
        time.sleep(0.3)  # the decode thread is now blocked inside FFmpeg's read
        started = time.monotonic()
        finished = source.stop(10)
        took = time.monotonic() - started
        print(f"stop() while blocked on a silent camera returned in {took:.2f} s (limit 2 s)")
        assert finished and took < 2.0 + 3.0
        assert source.snapshot().state is SourceState.STOPPED


def test_a_server_that_accepts_and_says_nothing_is_a_stall() -> None:
    with SilentServer() as server:
        source = PyAVSource(
            camera(server.url()),
            SourceOptions(open_timeout_s=1.0, stall_timeout_s=1.0, backoff_initial_s=0.2),
        )
        source.start()
        try:
            health = wait_for(
                lambda: (h := source.snapshot()).stalls >= 1 and h.last_error and h, 20
            )
            assert "accepted the connection but sent nothing" in health.last_error
            assert str(server.port) in health.last_error
            assert source.alive
        finally:
            assert source.stop(10)


def test_random_bytes_give_a_clear_error_and_leak_no_threads() -> None:
    with GarbageServer() as server:
        baseline_os, baseline_py = os_threads(), threading.active_count()
        source = PyAVSource(
            camera(server.url()),
            SourceOptions(
                open_timeout_s=0.8, stall_timeout_s=0.8, backoff_initial_s=0.05, backoff_max_s=0.1
            ),
        )
        source.start()
        try:
            wait_for(lambda: source.snapshot().reconnects >= 4, 30)
            health = source.snapshot()
            assert health.state in (SourceState.BACKOFF, SourceState.CONNECTING)
            assert "not RTSP" in (health.last_error or "")
            assert f"127.0.0.1:{server.port}" in (health.last_error or "")
            # Attempt after attempt, the source holds on to nothing: its own thread and at
            # most the server's handler threads for connections being torn down.
            assert os_threads() <= baseline_os + 4
        finally:
            assert source.stop(10)
        assert not source_threads()
        wait_for(lambda: threading.active_count() <= baseline_py, 10)
        wait_for(lambda: os_threads() <= baseline_os, 10)
        assert server.connections >= 4


def test_many_stops_leave_no_threads_behind(rtsp_server: RtspServer) -> None:
    baseline = os_threads()
    for decode in ("keyframes", "all", "keyframes"):
        source = PyAVSource(
            camera(rtsp_server.url("cam2")), SourceOptions(decode=decode, analysis_fps=2.0)
        )
        source.start()
        wait_for(source.frames.take, 20)
        if decode == "all":
            assert "thread" in (source.snapshot().decoder or "")
        assert source.stop(10)
    assert not source_threads()
    wait_for(lambda: os_threads() <= baseline, 10)


def test_refused_connections_back_off_exponentially_with_a_cap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="camera_adapters")
    url = f"rtsp://127.0.0.1:{free_port()}/nobody-home"
    source = PyAVSource(
        camera(url), SourceOptions(backoff_initial_s=0.1, backoff_max_s=0.4, open_timeout_s=2)
    )
    source.start()
    try:
        wait_for(lambda: source.snapshot().reconnects >= 6, 20)
        health = source.snapshot()
    finally:
        assert source.stop(10)
    assert "connection refused" in (health.last_error or "")
    delays = [r.retry_in_s for r in caplog.records if hasattr(r, "retry_in_s")]
    assert len(delays) >= 6
    for attempt, delay in enumerate(delays[:6]):
        planned = min(0.1 * 2**attempt, 0.4)
        assert 0.5 * planned - 0.01 <= delay <= planned + 0.01, (attempt, delays)
    # The repeated identical failure is logged once as a warning, then quietly.
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1


@pytest.mark.slow
def test_server_killed_and_restarted_recovers_and_spares_other_cameras(
    sample_clip: Path,
) -> None:
    flaky = RtspServer({"a": sample_clip}).start()
    steady = RtspServer({"b": sample_clip}).start()
    # Default backoff (1 s doubling to 5 s, jittered) and stall settings: production behaviour.
    source_a = PyAVSource(camera(flaky.url("a"), "cam-a"), SourceOptions(analysis_fps=2.0))
    source_b = PyAVSource(camera(steady.url("b"), "cam-b"), SourceOptions(analysis_fps=2.0))
    source_a.start()
    source_b.start()
    try:
        wait_for(source_a.frames.take, 20)
        wait_for(source_b.frames.take, 20)
        flaky.stop(kill=True)
        killed = time.monotonic()
        b_before = source_b.snapshot().frames_in
        wait_for(lambda: source_a.snapshot().state is not SourceState.LIVE, 10, 0.05)
        b_states = set()
        while time.monotonic() - killed < 5.0:  # a camera down for a while
            b_states.add(source_b.snapshot().state)
            time.sleep(0.1)
        assert source_a.snapshot().reconnects >= 1
        flaky.start()
        returned = time.monotonic()
        source_a.frames.take()
        wait_for(source_a.frames.take, 15, 0.05)
        recovery = time.monotonic() - returned
        print(f"camera A delivered frames again {recovery:.2f} s after its server returned")
        assert recovery < 10.0
        b_after = source_b.snapshot()
        assert b_states == {SourceState.LIVE}
        assert b_after.frames_in > b_before and b_after.reconnects == 0
    finally:
        source_a.stop(10)
        source_b.stop(10)
        flaky.stop()
        steady.stop()


def test_wrong_credentials_are_reported_retried_slowly_and_never_shown(
    sample_clip: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password = "p@ss/w:rd%7Bx"
    with RtspServer({"secure": sample_clip}, user="admin", password="right-one") as server:
        spec = camera(server.url("secure"), username="admin", password=password)
        # A fast backoff for other failures proves the auth path does not use it.
        options = SourceOptions(
            auth_retry_s=3.0, backoff_initial_s=0.05, backoff_max_s=0.1, open_timeout_s=5
        )
        source = PyAVSource(spec, options)
        source.start()
        try:
            wait_for(lambda: source.snapshot().state is SourceState.FAILED_AUTH, 20)
            first = server.connections()
            time.sleep(6.0)
            attempts = server.connections() - first
            health = source.snapshot()
        finally:
            assert source.stop(10)
        print(f"{attempts} login attempt(s) in 6 s with auth_retry_s=3 (±20 %)")
        assert 1 <= attempts <= 3
        assert health.state in (SourceState.FAILED_AUTH, SourceState.CONNECTING)
        assert health.reconnects >= 1
        assert "rejected the credentials" in (health.last_error or "")

        # The right password through the same fields gets frames.
        good = camera(server.url("secure"), username="admin", password="right-one")
        source = PyAVSource(good, SourceOptions())
        source.start()
        try:
            wait_for(source.frames.take, 20)
        finally:
            assert source.stop(10)

    shown = [repr(spec), str(health.as_dict()), health.last_error or ""]
    for record in caplog.records:
        shown.append(record.getMessage())
        shown.append(repr(vars(record)))
    text = "\n".join(shown)
    for form in spec.secrets() | {password, "p%40ss"}:
        assert form not in text, f"password form {form!r} leaked"


def test_native_sessions_are_kept_alive_and_end_cleanly(rtsp_server: RtspServer) -> None:
    """Keepalives go out every half session timeout and the camera answers them; a stop
    ends the session at the receiver's next check."""
    from camera_adapters.rtp_depacketizer import depacketizer_for
    from camera_adapters.rtsp_handshake import open_rtsp

    class Counting:
        def __init__(self) -> None:
            self.units = 0
            self.stop = threading.Event()

        def access_unit(self, unit: object) -> None:
            self.units += 1

        def end(self, kind: str, message: str | None = None) -> object:
            return (kind, message)

        def stop_requested(self) -> bool:
            return self.stop.is_set()

    pool = ReceiverPool(1)
    playing = open_rtsp(rtsp_server.url("cam2"), timeout_s=5.0)
    playing.timeout_s = 1.0  # as if the camera had said "Session: …;timeout=1"
    sink = Counting()
    attachment = pool.attach(
        playing,
        depacketizer_for(playing.track.encoding, playing.track.fmtp),
        sink,  # type: ignore[arg-type]
        stall_timeout_s=5.0,
    )
    try:
        wait_for(lambda: attachment.replies >= 3, 10)
        assert attachment.wait(0) is None  # still running: the camera accepted them
        assert attachment.keepalives >= attachment.replies
        assert sink.units > 10
        sink.stop.set()
        assert attachment.wait(2) == ("stopped", None)
    finally:
        pool.close()


def test_a_reader_that_falls_behind_shows_how_old_its_pictures_are(
    rtsp_server: RtspServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoding slows down (as on a machine short of CPU) while the camera keeps sending 10
    pictures a second: the reader falls further behind the live stream every second. The
    pictures it hands on carry their real capture time, from the stream's timestamps, not
    the time they were read, so their latency shows the backlog the rate controller lowers
    analysis rates on; the health report says how far behind the reader is."""
    from camera_adapters.decoder import Decoder

    slow = threading.Event()
    decode = Decoder.decode

    def slower(self: Decoder, packet: object) -> object:
        if slow.is_set():
            time.sleep(0.15)  # ~7 pictures a second of a 10 fps stream
        return decode(self, packet)  # type: ignore[arg-type]

    monkeypatch.setattr(Decoder, "decode", slower)
    source = PyAVSource(
        camera(rtsp_server.url("cam1")),
        SourceOptions(analysis_size=(320, 320), analysis_fps=5.0, decode="all"),
    )
    source.start()
    try:
        on_time = [wait_for(source.frames.take, 20) for _ in range(3)]
        ages_before = [time.time() - f.captured_at for f in on_time[1:]]
        slow.set()
        ages_slow, started = [], time.monotonic()
        while time.monotonic() - started < 6.0:
            frame = source.frames.wait(1.0)
            if frame is not None:
                ages_slow.append(time.time() - frame.captured_at)
        health = source.snapshot()
    finally:
        slow.clear()
        assert source.stop(10)
    print(f"ages before {ages_before}, while slow {[round(a, 2) for a in ages_slow]}")
    print(f"health: behind {health.behind_s} s")
    assert health.receiver == "native"
    assert max(ages_before) < 1.0
    assert ages_slow[-1] > 1.5  # ~0.5 s more behind each second, for 6 s
    assert health.behind_s > 1.0
