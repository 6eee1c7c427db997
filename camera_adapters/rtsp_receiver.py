"""Many cameras' RTSP-over-TCP streams read by a few threads, not one thread each.

FFmpeg reads interleaved RTP one packet at a time, with a poll and a recv for the ``$``, the
header and the payload of every packet, on one blocked thread per camera. For a 1080p camera
that is ~170 packets and ~1,000 system calls a second, and the woken threads fight over the
GIL: receiving alone cost 0.0016 CPU-s per stream-second with 96 cameras, as much as half the
keyframe decoding and detection the analysis needs at 0.2/s. A receiver here waits on all its
sockets at once, sleeps a tick (40 ms: one frame at 25 fps) so that each wake-up finds a
picture or more of data per socket, reads it with one ``recv`` and splits it in Python
(``rtp_depacketizer``): the same measurement gives 0.0002–0.0003.

What each access unit means (decoding, picking frames for analysis, stall and error rules)
stays with the camera's source, through :class:`StreamSink`, called on the receiver's thread.
The camera's own thread only sets the session up (``rtsp_handshake``) and then waits for it
to end, so reconnecting, backoff and failure reports work as for FFmpeg-read cameras.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from camera_adapters.failures import EndKind, SessionEnd
from camera_adapters.rtp_depacketizer import (
    AccessUnit,
    H264Depacketizer,
    H265Depacketizer,
    InterleavedReader,
    RtpProtocolError,
)
from camera_adapters.rtsp_handshake import PlayingSession

log = logging.getLogger(__name__)

# Sleep between wake-ups: batches each socket's data, adds at most this latency. Each wake-up
# costs a select, a recv per socket and the kernel's work around them whatever the data:
# receiving 64 cameras of 1080p25 alone took 0.0012-0.0013 CPU-s per stream-second at 40 ms,
# 0.0008-0.0010 at 100 ms. In the whole pipeline that saving did not show: alternating runs
# (3 each, 2026-12-02) gave 0.0298 vs 0.0303 CPU-s per stream-second at 48 cameras and 1/s,
# 0.0062 vs 0.0062 at 128 and 0.2/s, while p99 latency at 1/s rose from 0.3 to 0.6 s. So
# 40 ms (20 → 40 ms did pay in the pipeline: see docs/benchmarks-history.md).
TICK_S = 0.04
HOUSEKEEPING_S = 0.25  # stop requests, stalls and keepalives are checked this often
RECV_BYTES = 256 * 1024
# A socket that filled a whole read is read again at once, up to this many reads a tick: one
# read a tick caps a camera at 6.5 MB/s (2.6 MB/s at a 100-ms tick), and a camera over the cap
# would fall ever further behind.
MAX_READS_PER_TICK = 8
# Data arriving without one whole picture for this long: the stream is one the depacketizer
# cannot use (e.g. H.264 that never sends an IDR picture, only recovery points), or every
# picture is damaged. The session ends as ``starved`` so the camera can go to FFmpeg.
PICTURE_TIMEOUT_S = 15.0


class StreamSink(Protocol):
    """The camera side of one attached session (runs on the receiver's thread)."""

    def access_unit(self, unit: AccessUnit) -> SessionEnd | None:
        """Handle one picture's data; a SessionEnd when the session must end."""

    def end(self, kind: EndKind, message: str | None = None) -> SessionEnd:
        """The SessionEnd for an end the receiver found (it knows whether frames went out)."""

    def stop_requested(self) -> bool: ...


@dataclass(eq=False)  # identity: attachments live in sets
class Attachment:
    """One session on a receiver; the camera's thread waits on it for the session's end."""

    session: PlayingSession
    depacketizer: H264Depacketizer | H265Depacketizer
    sink: StreamSink
    stall_timeout_s: float
    reader: InterleavedReader = field(default_factory=InterleavedReader)
    last_data: float = field(default_factory=time.monotonic)
    last_unit: float = field(default_factory=time.monotonic)  # last whole picture handed on
    starved: bool = False  # ended because data came but no picture could be assembled
    picture_timeout_s: float = PICTURE_TIMEOUT_S
    next_keepalive: float = 0.0
    keepalives: int = 0  # requests sent to keep the session alive
    replies: int = 0  # RTSP replies read between the RTP (answers to the keepalives)
    _done: threading.Event = field(default_factory=threading.Event)
    _end: SessionEnd | None = None

    def wait(self, timeout: float | None = None) -> SessionEnd | None:
        """The session's end, or None if it is still running after ``timeout``."""
        self._done.wait(timeout)
        return self._end

    @property
    def lost_packets(self) -> int:
        return self.depacketizer.lost_packets

    def _finish(self, end: SessionEnd) -> None:
        if self._end is None:
            self._end = end
            self._done.set()


class RtspReceiver:
    """One thread reading the interleaved RTP of the sessions attached to it."""

    def __init__(self, name: str = "rtsp-receiver", *, tick_s: float = TICK_S) -> None:
        self.name = name
        self.tick_s = tick_s
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._incoming: list[Attachment] = []
        self._attached: set[Attachment] = set()
        self._count = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def sessions(self) -> int:
        with self._lock:
            return self._count

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def attach(
        self,
        session: PlayingSession,
        depacketizer: H264Depacketizer | H265Depacketizer,
        sink: StreamSink,
        *,
        stall_timeout_s: float,
    ) -> Attachment:
        """Hand a playing session over; the receiver owns (and closes) its socket from now."""
        session.sock.setblocking(False)
        attachment = Attachment(session, depacketizer, sink, stall_timeout_s)
        attachment.next_keepalive = time.monotonic() + session.timeout_s / 2
        with self._lock:
            if self._closed:
                attachment._finish(sink.end("stopped"))
                _close(session)
                return attachment
            self._incoming.append(attachment)
            self._count += 1
        self._wake()
        return attachment

    def close(self, timeout: float = 5.0) -> None:
        """End every session (as stopped) and the thread."""
        with self._lock:
            self._closed = True
        self._wake()
        self._thread.join(timeout)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # a wake-up is already pending, or we are closing
            self._wake_w.send(b"x")

    # -- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        next_housekeeping = time.monotonic() + HOUSEKEEPING_S
        try:
            while True:
                with self._lock:
                    if self._closed:
                        break  # what is still incoming is ended below
                    incoming, self._incoming = self._incoming, []
                for attachment in incoming:
                    self._register(attachment)
                for key, _ in self._selector.select(HOUSEKEEPING_S):
                    if key.data is None:
                        self._drain_wake()
                    else:
                        self._read(key.data)
                now = time.monotonic()
                if now >= next_housekeeping:
                    next_housekeeping = now + HOUSEKEEPING_S
                    for attachment in list(self._attached):
                        self._housekeeping(attachment, now)
                time.sleep(self.tick_s)
        except Exception:  # never leave cameras waiting on a dead thread
            log.exception("RTSP receiver failed", extra={"receiver": self.name})
            for attachment in list(self._attached):
                self._end(attachment, attachment.sink.end("error", "internal receiver error"))
            raise
        finally:
            with self._lock:
                self._closed = True
                leftover, self._incoming = self._incoming, []
            for attachment in list(self._attached) + leftover:
                self._end(attachment, attachment.sink.end("stopped"))
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def _register(self, attachment: Attachment) -> None:
        self._attached.add(attachment)
        try:
            self._selector.register(attachment.session.sock, selectors.EVENT_READ, attachment)
        except (OSError, ValueError) as error:  # a socket closed under us
            self._end(attachment, attachment.sink.end("error", f"cannot read the socket: {error}"))
            return
        if attachment.session.leftover:
            self._feed(attachment, attachment.session.leftover)

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _read(self, attachment: Attachment) -> None:
        for _ in range(MAX_READS_PER_TICK):
            try:
                data = attachment.session.sock.recv(RECV_BYTES)
            except BlockingIOError:
                return
            except OSError as error:
                message = f"the connection failed: {error.strerror or error}"
                self._end(attachment, attachment.sink.end("error", message))
                return
            if not data:
                message = "the camera closed the connection"
                self._end(attachment, attachment.sink.end("closed", message))
                return
            attachment.last_data = time.monotonic()
            self._feed(attachment, data)
            if len(data) < RECV_BYTES or attachment.wait(0) is not None:
                return  # drained, or the session ended on what was read

    def _feed(self, attachment: Attachment, data: bytes) -> None:
        try:
            frames = attachment.reader.feed(data)
        except RtpProtocolError as error:
            self._end(attachment, attachment.sink.end("error", str(error)))
            return
        channel = attachment.session.rtp_channel
        push = attachment.depacketizer.push
        sink = attachment.sink
        for frame_channel, payload in frames:
            if frame_channel != channel:
                continue  # RTCP
            unit = push(payload)
            if unit is None:
                continue
            attachment.last_unit = attachment.last_data
            try:
                end = sink.access_unit(unit)
            except Exception as error:  # one camera's failure must not stop the others
                log.error("receiver sink failed", extra={"error": type(error).__name__})
                end = sink.end("error", f"internal error: {type(error).__name__}")
            if end is not None:
                self._end(attachment, end)
                return
        if attachment.reader.messages:
            attachment.replies += len(attachment.reader.messages)
            for message in attachment.reader.messages:
                ended = _session_gone(message.start_line)
                if ended:
                    self._end(attachment, attachment.sink.end("error", ended))
                    return
            attachment.reader.messages.clear()

    def _housekeeping(self, attachment: Attachment, now: float) -> None:
        sink = attachment.sink
        if sink.stop_requested():
            self._end(attachment, sink.end("stopped"))
            return
        silence = now - attachment.last_data
        if silence >= attachment.stall_timeout_s:
            self._end(attachment, sink.end("stalled", f"no video data for {silence:.1f} s"))
            return
        if now - attachment.last_unit >= attachment.picture_timeout_s:
            attachment.starved = True
            depacketizer = attachment.depacketizer
            message = (
                f"video data arrives but no whole picture for {now - attachment.last_unit:.0f} s "
                f"({depacketizer.lost_packets} RTP packets lost, {depacketizer.dropped_units} "
                f"pictures dropped, {depacketizer.unsupported} unsupported packets)"
            )
            self._end(attachment, sink.end("stalled", message))
            return
        if now >= attachment.next_keepalive:
            attachment.next_keepalive = now + attachment.session.timeout_s / 2
            try:
                attachment.session.sock.send(attachment.session.keepalive_request())
                attachment.keepalives += 1
            except (BlockingIOError, OSError):
                pass  # a full send buffer or a broken socket shows up as a stall or read error

    def _end(self, attachment: Attachment, end: SessionEnd) -> None:
        if attachment.wait(0) is not None:
            return  # already ended
        if attachment in self._attached:
            self._attached.discard(attachment)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(attachment.session.sock)
        with self._lock:
            self._count -= 1
        _close(attachment.session)
        attachment._finish(end)


def _session_gone(start_line: str) -> str | None:
    """A reply that means the server dropped our session (e.g. 454 to a keepalive)."""
    parts = start_line.split(" ", 2)
    if len(parts) >= 2 and parts[0].startswith("RTSP/") and parts[1].isdigit():
        status = int(parts[1])
        if status in (454, 455) or status >= 500:
            return f"the camera ended the session ({start_line.strip()})"
    return None


def _close(session: PlayingSession) -> None:
    try:
        session.sock.setblocking(False)
        session.sock.send(session.teardown_request())
    except OSError:
        pass  # best effort: the server drops the session on close anyway
    with contextlib.suppress(OSError):
        session.sock.close()


class ReceiverPool:
    """A few receivers shared by all of a pipeline's cameras, started as cameras attach.

    The receiver's thread also runs the cameras' decoding (FFmpeg releases the GIL while it
    decodes), so there is one receiver per core by default: decoding spreads over the cores
    while the number of threads waking stays small.
    """

    def __init__(
        self,
        threads: int | None = None,
        *,
        tick_s: float = TICK_S,
        factory: Callable[[str, float], RtspReceiver] | None = None,
    ) -> None:
        self.threads = max(1, threads or os.cpu_count() or 1)
        self.tick_s = tick_s
        self._factory = factory or (lambda name, tick: RtspReceiver(name, tick_s=tick))
        self._receivers: list[RtspReceiver] = []
        self._lock = threading.Lock()
        self._closed = False

    def attach(
        self,
        session: PlayingSession,
        depacketizer: H264Depacketizer | H265Depacketizer,
        sink: StreamSink,
        *,
        stall_timeout_s: float,
    ) -> Attachment:
        with self._lock:
            if self._closed:
                raise RuntimeError("the receiver pool is closed")
            self._receivers = [r for r in self._receivers if r.alive]
            if len(self._receivers) < self.threads:
                name = f"rtsp-receiver-{len(self._receivers)}"
                self._receivers.append(self._factory(name, self.tick_s))
            receiver = min(self._receivers, key=lambda r: r.sessions)
        return receiver.attach(session, depacketizer, sink, stall_timeout_s=stall_timeout_s)

    @property
    def sessions(self) -> int:
        with self._lock:
            return sum(r.sessions for r in self._receivers)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            receivers, self._receivers = self._receivers, []
        for receiver in receivers:
            receiver.close()
