"""The shared RTSP receiver's own rules, on real sockets: one end of a socket pair is the
"camera" the test writes interleaved RTP into, the other the session the receiver reads.

The receiver's normal work (many real cameras, keepalives answered by a real server) is
tested against the GStreamer RTSP server in test_sources_network.py; these are the ends a real
server does not produce on demand: a stream with no usable picture, a peer that hangs up,
bytes that are not RTSP, a server dropping the session, a sink that raises.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from camera_adapters.failures import SessionEnd
from camera_adapters.rtp_depacketizer import AccessUnit, H264Depacketizer
from camera_adapters.rtsp_handshake import PlayingSession, VideoTrack
from camera_adapters.rtsp_receiver import Attachment, ReceiverPool
from tests.helpers import wait_for

TRACK = VideoTrack("H264", 96, 90000, "rtsp://127.0.0.1/cam/track1", {})


class Sink:
    def __init__(self, fail_after: int | None = None) -> None:
        self.units: list[AccessUnit] = []
        self.stop = threading.Event()
        self.fail_after = fail_after

    def access_unit(self, unit: AccessUnit) -> SessionEnd | None:
        self.units.append(unit)
        if self.fail_after is not None and len(self.units) > self.fail_after:
            raise RuntimeError("a bug in one camera's handling")
        return None

    def end(self, kind: str, message: str | None = None) -> SessionEnd:
        return SessionEnd(kind, message)  # type: ignore[arg-type]

    def stop_requested(self) -> bool:
        return self.stop.is_set()


def rtp(seq: int, timestamp: int, nal: bytes, *, marker: bool = True) -> bytes:
    header = struct.pack(">BBHII", 0x80, (0x80 if marker else 0) | 96, seq, timestamp, 1234)
    packet = header + nal
    return b"$" + struct.pack(">BH", 0, len(packet)) + packet


def pictures(start: int, count: int, *, idr_every: int | None) -> bytes:
    """``count`` one-packet pictures; IDR (type 5) every ``idr_every``, else type 1 slices."""
    out = b""
    for i in range(start, start + count):
        keyframe = idr_every is not None and i % idr_every == 0
        nal = bytes([0x65 if keyframe else 0x41]) + bytes(20)
        out += rtp(i & 0xFFFF, i * 3600, nal)
    return out


@pytest.fixture
def pool() -> Iterator[ReceiverPool]:
    receivers = ReceiverPool(1)
    yield receivers
    receivers.close()


def attach(pool: ReceiverPool, sink: Sink) -> tuple[socket.socket, Attachment]:
    camera, ours = socket.socketpair()
    session = PlayingSession(ours, b"", TRACK, "s1", 60.0, 0, "rtsp://127.0.0.1/cam")
    attachment = pool.attach(session, H264Depacketizer(), sink, stall_timeout_s=5.0)  # type: ignore[arg-type]
    return camera, attachment


def test_whole_pictures_reach_the_sink_from_the_first_keyframe(pool: ReceiverPool) -> None:
    sink = Sink()
    camera, attachment = attach(pool, sink)
    with camera:
        camera.sendall(pictures(0, 3, idr_every=None) + pictures(3, 12, idr_every=3))
        wait_for(lambda: len(sink.units) >= 11, 5)
        assert [u.keyframe for u in sink.units[:4]] == [True, False, False, True]
        assert sink.units[0].data.startswith(b"\x00\x00\x00\x01\x65")
        # Pictures before the first keyframe are never handed on: they predict from nothing.
        assert sink.units[0].timestamp == 3 * 3600
    assert attachment.wait(5) == SessionEnd("closed", "the camera closed the connection")


def test_data_without_a_whole_picture_ends_the_session_as_starved(pool: ReceiverPool) -> None:
    sink = Sink()
    camera, attachment = attach(pool, sink)
    attachment.picture_timeout_s = 0.6
    with camera:
        for start in range(0, 200, 10):  # data keeps coming: not a stall, but no IDR ever
            camera.sendall(pictures(start, 10, idr_every=None))
            if attachment.wait(0.1) is not None:
                break
        end = attachment.wait(5)
    assert end is not None and end.kind == "stalled" and attachment.starved
    assert "no whole picture" in (end.message or "") and not sink.units


def test_bytes_that_are_not_rtsp_end_the_session_with_what_was_seen(pool: ReceiverPool) -> None:
    camera, attachment = attach(pool, Sink())
    with camera:
        camera.sendall(pictures(0, 2, idr_every=1) + b"\x17\x03\x03garbage")
        end = attachment.wait(5)
    assert end is not None and end.kind == "error"
    assert end.message and "\\x17" in end.message


def test_a_server_dropping_the_session_ends_it(pool: ReceiverPool) -> None:
    camera, attachment = attach(pool, Sink())
    with camera:
        camera.sendall(pictures(0, 2, idr_every=1))
        camera.sendall(b"RTSP/1.0 454 Session Not Found\r\nCSeq: 3\r\n\r\n")
        end = attachment.wait(5)
    assert end is not None and end.kind == "error" and "454" in (end.message or "")


def test_one_failing_camera_does_not_stop_the_others(pool: ReceiverPool) -> None:
    bad, good = Sink(fail_after=2), Sink()
    bad_camera, bad_attachment = attach(pool, bad)
    good_camera, good_attachment = attach(pool, good)
    with bad_camera, good_camera:
        bad_camera.sendall(pictures(0, 10, idr_every=2))
        end = bad_attachment.wait(5)
        assert end == SessionEnd("error", "internal error: RuntimeError")
        good_camera.sendall(pictures(0, 10, idr_every=2))
        wait_for(lambda: len(good.units) >= 9, 5)  # same receiver thread, still serving
        assert good_attachment.wait(0) is None
        good.stop.set()
        assert good_attachment.wait(2) == SessionEnd("stopped")
    assert pool.sessions == 0


def test_closing_the_pool_ends_every_session_and_refuses_new_ones(pool: ReceiverPool) -> None:
    camera, attachment = attach(pool, Sink())
    with camera:
        pool.close()
        assert attachment.wait(5) == SessionEnd("stopped")
        with pytest.raises(RuntimeError, match="closed"):
            attach(pool, Sink())
