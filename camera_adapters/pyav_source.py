"""A camera (RTSP stream or video file) decoded with PyAV.

An RTSP-over-TCP camera sending H.264 / H.265 is read by the shared native receivers
(``rtsp_receiver.py``): the source's thread sets the session up and waits for it to end, while
a receiver thread reads it with many others and runs this module's per-picture logic
(``_Reader``) on each whole picture. Any other camera, and every file, is read by FFmpeg on
the source's own thread. Everything below holds for both.

Each source keeps only its newest frame, reconnects on its own with capped exponential
backoff and jitter, and decodes as little as the analysis needs: keyframes only (the decoder's
own ``skip_frame``, never dropping packets by hand, which corrupts frames) when the analysis
rate is at or below the keyframe rate, otherwise every frame but converting only those that
will be analysed. Pictures decoded only as references for a later analysed one wait as
packets and are decoded in one burst with it, while their references are still in the CPU's
caches. Resizing to the analysis size happens inside the decoder's colour conversion, so no
full-resolution RGB copy is ever made.

Network failures are told apart because integrators act on them differently: a camera that
goes silent (``stalled``: no video packet for ``stall_timeout_s``, or packets that never decode)
or refuses or drops the connection is retried with capped exponential backoff (reset after a
session that delivered frames, so a stall after hours of video reconnects within a second); one
that rejects the credentials (``failed_auth``) is retried only every ``auth_retry_s`` so that
it does not lock the account or flood the camera's log.

Stopping is bounded, not instant: a blocking read on a silent camera ends at FFmpeg's socket
timeout, so the source notices a stop request within ``stall_timeout_s`` (within
``open_timeout_s`` twice while connecting, where PyAV's timeout callback also guards the
handshake). A live stream stops within one packet.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal, get_args

import av
from av.video.reformatter import Interpolation, VideoReformatter

from camera_adapters.decoder import Deblock, DecodeLoad, Decoder, StreamInfo, decoder_threads
from camera_adapters.failures import (
    EndKind,
    SessionEnd,
    explain_handshake_failure,
    explain_open_failure,
    explain_read_failure,
)
from camera_adapters.frames import Frame, LatestFrame
from camera_adapters.health import HealthCounters, HealthSnapshot, SourceState
from camera_adapters.redact import redact_text, redact_url
from camera_adapters.rtp_depacketizer import AccessUnit, UnsupportedStream, depacketizer_for
from camera_adapters.rtsp_handshake import RtspHandshakeError, open_rtsp
from camera_adapters.rtsp_receiver import ReceiverPool
from camera_adapters.spec import CameraSpec

log = logging.getLogger(__name__)

DecodeMode = Literal["auto", "keyframes", "all"]
ReceiverMode = Literal["auto", "ffmpeg"]
# SDP encoding names the native receiver reads, and the FFmpeg decoder for each.
NATIVE_CODECS = {"H264": "h264", "H265": "hevc", "HEVC": "hevc"}

# Until a stream's keyframe interval is measured, assume this (cameras use 1–4 s, some
# "smart codec" modes up to 10 s) when judging whether packets that never decode mean a stall.
ASSUMED_KEYFRAME_INTERVAL_S = 5.0
# Pictures between keyframes that are decoded only as references for a later analysed one
# wait, as packets, and are decoded in one burst with it (see ``_Reader._waits``). Past this
# many the burst starts anyway (10 s at 25 fps): a bound on memory, not a tuning knob.
MAX_WAITING_PACKETS = 250
# Capture times from the stream's timestamps (``_Reader._captured``): how fast the offset
# between arrival and media time may rise on its own (a camera clock running slow by up to
# 1,000 ppm; a reader falling behind raises it far faster), how far timestamps may step back
# (pictures out of order) and jump ahead of the time that passed before the mapping restarts.
CLOCK_CREEP = 0.001
CLOCK_STEP_BACK_S = 0.5
CLOCK_JUMP_S = 5.0


@dataclass(frozen=True)
class SourceOptions:
    """How a source connects, decodes and recovers (defaults suit street cameras)."""

    analysis_size: tuple[int, int] = (416, 416)  # frames are resized to fit inside (w, h)
    analysis_fps: float = 1.0
    decode: DecodeMode = "auto"
    open_timeout_s: float = 10.0  # per step of opening (session set-up, then stream probe)
    stall_timeout_s: float = 5.0  # no video packet for this long: stalled, reconnect
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 5.0  # a camera that returns is back within ~7 s
    auth_retry_s: float = 60.0  # wrong credentials: retry this rarely (±20 % jitter)
    # Decoder threads: 0 decides per stream (one thread; frame threads for full decoding of a
    # stream that keeps one thread more than half busy, where they pay). See decoder.py.
    decode_threads: int = 0
    # Hardware decoder (an FFmpeg device type such as "cuda", "vaapi", "qsv"); falls back to
    # the CPU decoder, with a note in health, when the device is missing.
    hwaccel: str | None = None
    realtime: bool = True  # play file sources at their own frame rate, like a camera
    # Decoding between keyframes, hand on the earliest picture the scheduler accepts for a
    # due time (from half an interval before it) rather than the one nearest it: each
    # picture costs the decoding of every one before it in its GOP. At 1/s with a 2-s GOP
    # at 25 fps that decodes 14 frames per GOP instead of 26, and analyses fall 0.52 s and
    # 1.48 s apart (still exactly 1/s). True: pictures as evenly spaced as the frame rate
    # allows.
    even_spacing: bool = False
    # Deblocking (H.264 / H.265's in-loop filter) on every picture ("all", bit exact) or on
    # keyframes only ("keyframes": pictures between keyframes up to a quarter cheaper to
    # decode, a drift that does not make counting worse; see decoder.py).
    deblock: Deblock = "keyframes"
    # RTSP over TCP: "auto" reads H.264 / H.265 cameras with the shared native receiver
    # (rtsp_receiver.py: a few threads for all cameras, a third of FFmpeg's CPU), anything
    # else (UDP, RTSPS, other codecs, files) with FFmpeg; "ffmpeg": FFmpeg for every camera.
    receiver: ReceiverMode = "auto"
    # The receivers a pipeline's cameras share; None: the source starts a private one.
    receivers: ReceiverPool | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        width, height = self.analysis_size
        problems = []
        if width < 1 or height < 1:
            problems.append(f"analysis_size must be positive, got {self.analysis_size}")
        for name in (
            "analysis_fps",
            "open_timeout_s",
            "stall_timeout_s",
            "backoff_initial_s",
            "backoff_max_s",
            "auth_retry_s",
        ):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)}")
        if self.decode not in ("auto", "keyframes", "all"):
            problems.append(f"decode must be auto, keyframes or all, got {self.decode!r}")
        if self.deblock not in get_args(Deblock):
            problems.append(f"deblock must be all or keyframes, got {self.deblock!r}")
        if self.receiver not in ("auto", "ffmpeg"):
            problems.append(f"receiver must be auto or ffmpeg, got {self.receiver!r}")
        if self.decode_threads < 0:
            problems.append(f"decode_threads must be >= 0, got {self.decode_threads}")
        if problems:
            raise ValueError("; ".join(problems))


def fit_inside(width: int, height: int, box: tuple[int, int]) -> tuple[int, int]:
    """The largest size with the stream's aspect ratio that fits in ``box``; even numbers
    are not required because the conversion writes packed BGR."""
    scale = min(box[0] / width, box[1] / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


class PyAVSource:
    """One camera's decode loop on a daemon thread, feeding a one-frame mailbox."""

    def __init__(
        self,
        spec: CameraSpec,
        options: SourceOptions | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec
        self.options = options or SourceOptions(
            analysis_fps=spec.analysis_fps or SourceOptions.analysis_fps
        )
        self.frames = LatestFrame()
        self.health = HealthCounters(spec.id)
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sequence = 0
        # One scaler per camera, kept between frames and run on the calling thread:
        # to_ndarray(width=…) sets up a new scaler per call with a thread per core (PyAV's
        # default), started and stopped for every frame. On one thread, kept, 1080p → 416 px
        # costs 0.75 ms of process CPU against ~0.85. Only the thread reading this camera uses
        # it.
        self._scaler = VideoReformatter()
        self._secrets = spec.secrets()
        self._rate_lock = threading.Lock()
        self._analysis_fps = self.options.analysis_fps
        self._last_logged: tuple[str, str | None] | None = None
        self._hardware_note_logged = False
        self._own_receivers: ReceiverPool | None = None
        self._native_refused: str | None = None  # why this camera is read with FFmpeg
        self.health.update(
            analysis_fps=self._analysis_fps,
            transport=None if spec.is_file else spec.transport,
            decode_mode="all" if self.options.decode == "all" else "keyframes",
        )

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name=f"source-{self.spec.id}", daemon=True
        )
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the decode thread to finish without waiting (stop many sources at once)."""
        self._stop.set()

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop and wait up to ``timeout`` s; True when the decode thread has finished."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.health.update(state=SourceState.STOPPED, next_attempt_at=None)
        return not self.alive

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def snapshot(self) -> HealthSnapshot:
        return self.health.snapshot()

    def mark_analysed(self) -> None:
        self.health.add("frames_analysed")

    @property
    def analysis_fps(self) -> float:
        with self._rate_lock:
            return self._analysis_fps

    def set_analysis_rate(self, fps: float) -> None:
        """Change how often frames are handed on, while running (e.g. to shed load).

        Thread-safe. In ``auto`` decode mode the choice between keyframes only and full
        decoding follows at the next keyframe, the only point where it can switch cleanly.
        """
        if not fps > 0:
            raise ValueError(f"analysis rate must be > 0 frames per second, got {fps}")
        with self._rate_lock:
            self._analysis_fps = float(fps)
        self.health.update(analysis_fps=float(fps))

    # -- connection loop ---------------------------------------------------------------
    def _run(self) -> None:
        backoff = self.options.backoff_initial_s
        attempt = 0
        try:
            while not self._stop.is_set():
                if attempt:
                    self.health.add("reconnects")
                attempt += 1
                self._set_state(SourceState.CONNECTING, next_attempt_at=None)
                try:
                    end = self._session()
                except Exception as error:  # never let one camera's thread die silently
                    end = self._crashed(error)
                if self._stop.is_set() or end.kind == "stopped":
                    break
                if end.kind == "ended":
                    self._set_state(SourceState.ENDED)
                    return
                if end.delivered:
                    backoff = self.options.backoff_initial_s
                if end.kind == "auth":
                    delay = self.options.auth_retry_s * random.uniform(0.8, 1.2)
                    state = SourceState.FAILED_AUTH
                else:
                    delay = backoff * random.uniform(0.5, 1.0)
                    backoff = min(backoff * 2.0, self.options.backoff_max_s)
                    state = SourceState.STALLED if end.kind == "stalled" else SourceState.BACKOFF
                    if end.kind == "stalled":
                        self.health.add("stalls")
                self._record_failure(state, end.message, delay)
                self._stop.wait(delay)
        finally:
            if self._own_receivers is not None:
                self._own_receivers.close()
            if self._stop.is_set():
                self.health.update(state=SourceState.STOPPED, next_attempt_at=None)

    def _crashed(self, error: Exception) -> SessionEnd:
        trace = "".join(traceback.format_exception(error))
        log.error(
            "camera session crashed",
            extra={"camera": self.spec.id, "traceback": redact_text(trace, self._secrets)},
        )
        return SessionEnd("error", f"internal error: {type(error).__name__}")

    def _set_state(self, state: SourceState, **extra: object) -> None:
        if self._stop.is_set() and state is not SourceState.STOPPED:
            return
        self.health.update(state=state, **extra)

    def _record_failure(self, state: SourceState, message: str | None, delay: float) -> None:
        message = redact_text(message or state.value, self._secrets)
        self._set_state(state, last_error=message, next_attempt_at=time.time() + delay)
        # Log a failure when it changes, not on every retry: thousands of cameras, hours down.
        key = (state.value, message)
        level = logging.WARNING if key != self._last_logged else logging.DEBUG
        self._last_logged = key
        log.log(
            level,
            "camera not streaming",
            extra={
                "camera": self.spec.id,
                "source": redact_url(self.spec.stream_url()),
                "state": state.value,
                "error": message,
                "retry_in_s": round(delay, 2),
            },
        )

    # -- one connection ----------------------------------------------------------------
    def _open_options(self) -> dict[str, str]:
        url = self.spec.stream_url().lower()
        options: dict[str, str] = {}
        if url.startswith(("rtsp://", "rtsps://")):
            options["rtsp_transport"] = self.spec.transport
            options["allowed_media_types"] = "video"  # audio is never analysed
            # Stream probing stops after 1 s of video instead of FFmpeg's 5: the decoder
            # learns the rest from the first keyframe. Opening drops from ~3.5 s to ~1.2 s.
            options["analyzeduration"] = "1000000"
            # Socket I/O timeout (µs): a silent socket fails even where PyAV's callback
            # is not polled.
            options["timeout"] = str(int(self.options.stall_timeout_s * 1_000_000))
            if self.spec.transport == "udp":
                options["rtsp_flags"] = "filter_src"  # ignore RTP from anyone but the camera
        return options

    def _session(self) -> SessionEnd:
        if self._reads_natively():
            end = self._native_session()
            if end is not None:
                return end
        url = self.spec.stream_url()
        started = time.monotonic()
        try:
            # PyAV's timeout works through FFmpeg's interrupt callback, which takes the GIL
            # on every call: FFmpeg calls it on each socket read, several times per RTP
            # packet. As a read timeout that quadrupled the CPU of receiving a stream
            # (measured: 270 vs 60 µs per packet with 64 cameras), so it guards only the
            # opening; reads are bounded by FFmpeg's own socket timeout (``timeout`` above),
            # which needs no GIL.
            container = av.open(
                url,
                options=self._open_options(),
                timeout=(self.options.open_timeout_s, None),
            )
        except (av.FFmpegError, OSError, ValueError) as error:
            if self._stop.is_set():
                return SessionEnd("stopped")
            return explain_open_failure(
                error,
                url,
                elapsed=time.monotonic() - started,
                timeout=self.options.open_timeout_s,
                is_file=self.spec.is_file,
            )
        try:
            if not container.streams.video:
                return SessionEnd("error", f"{redact_url(url)} has no video stream")
            return self._read(container, container.streams.video[0])
        finally:
            container.close()

    def _reads_natively(self) -> bool:
        return (
            self.options.receiver == "auto"
            and self._native_refused is None
            and self.spec.transport == "tcp"
            and self.spec.stream_url().lower().startswith("rtsp://")
        )

    def _native_session(self) -> SessionEnd | None:
        """One session through the shared receiver; None when this camera needs FFmpeg
        (a codec or feature the native client does not have), which is then used from now on.
        """
        url = self.spec.stream_url()
        started = time.monotonic()
        self.health.update(receiver="native")
        try:
            playing = open_rtsp(url, timeout_s=self.options.open_timeout_s)
        except RtspHandshakeError as error:
            if self._stop.is_set():
                return SessionEnd("stopped")
            if error.kind == "unsupported":
                return self._fall_back_to_ffmpeg(str(error))
            return explain_handshake_failure(
                error, url, elapsed=time.monotonic() - started, timeout=self.options.open_timeout_s
            )
        track = playing.track
        try:
            depacketizer = depacketizer_for(track.encoding, track.fmtp)
            codec = NATIVE_CODECS[track.encoding]
        except (UnsupportedStream, KeyError) as error:
            playing.sock.close()
            return self._fall_back_to_ffmpeg(str(error) or f"{track.encoding} video")
        reader = _Reader(self, StreamInfo(codec, time_base=Fraction(1, track.clock_rate)))
        log.info(
            "camera connected",
            extra={
                "camera": self.spec.id,
                "source": redact_url(url),
                "codec": codec,
                "decoder": reader.decoder.describe(),
                "receiver": "native",
            },
        )
        if self.options.receivers is None and self._own_receivers is None:
            self._own_receivers = ReceiverPool(1)
        pool = self.options.receivers or self._own_receivers
        assert pool is not None
        sink = _NativeSink(reader, self._stop, track.clock_rate)
        try:
            attachment = pool.attach(
                playing, depacketizer, sink, stall_timeout_s=self.options.stall_timeout_s
            )
        except RuntimeError:  # the pipeline is shutting its receivers down
            playing.sock.close()
            return SessionEnd("stopped")
        end = attachment.wait()
        assert end is not None  # wait() without a timeout returns only at the end
        if attachment.lost_packets:
            self.health.add("packets_lost", attachment.lost_packets)
        if attachment.starved:  # a stream FFmpeg may read (no IDR pictures, say)
            self._fall_back_to_ffmpeg(end.message or "no whole picture")
        return end

    def _fall_back_to_ffmpeg(self, reason: str) -> None:
        self._native_refused = reason
        self.health.update(receiver="ffmpeg")
        log.info(
            "reading this camera with FFmpeg",
            extra={"camera": self.spec.id, "reason": redact_text(reason, self._secrets)},
        )
        return None

    def _wants_keyframes(self, keyframe_interval: float | None) -> bool:
        if self.options.decode != "auto":
            return self.options.decode == "keyframes"
        if keyframe_interval is None:
            return True  # start cheap; switch once keyframes prove too sparse
        return keyframe_interval <= 1.0 / self.analysis_fps * 1.05

    def _new_decoder(self, stream: StreamInfo, keyframes: bool, *, heavy: bool = False) -> Decoder:
        decoder = Decoder(
            stream,
            keyframes,
            decoder_threads(keyframes, self.options.decode_threads, heavy=heavy),
            self.options.hwaccel,
            deblock=self.options.deblock,
        )
        if decoder.note and not self._hardware_note_logged:
            self._hardware_note_logged = True  # once per source, not per reconnect
            log.warning(decoder.note, extra={"camera": self.spec.id})
        self.health.update(
            decode_mode="keyframes" if keyframes else "all", decoder=decoder.describe()
        )
        return decoder

    def _read(
        self, container: av.container.InputContainer, stream: av.video.stream.VideoStream
    ) -> SessionEnd:
        url = self.spec.stream_url()
        reader = _Reader(self, StreamInfo.of(stream))
        self.health.update(receiver="ffmpeg")
        log.info(
            "camera connected",
            extra={
                "camera": self.spec.id,
                "source": redact_url(url),
                "codec": stream.codec_context.name,
                "decoder": reader.decoder.describe(),
            },
        )
        while True:
            try:
                for packet in container.demux(stream):
                    end = reader.packet(packet)
                    if end is not None:
                        return end
            except (av.FFmpegError, OSError) as error:
                if self._stop.is_set():
                    return reader.end("stopped")
                silence = time.monotonic() - reader.last_packet
                end = explain_read_failure(error, url, silence_s=silence)
                return reader.end(end.kind, end.message)
            if self._stop.is_set():
                return reader.end("stopped")
            if not self.spec.is_file:
                return reader.end("closed", "the camera closed the stream (end of stream)")
            if not self.spec.loop:
                return reader.end("ended")
            container.seek(0)  # loop a file in place: a demo camera that never ends
            reader.restart()

    def _log_mode_switch(self, keyframes: bool, keyframe_interval: float | None) -> None:
        log.info(
            "decoding keyframes only"
            if keyframes
            else "keyframes too sparse for the analysis rate; decoding every frame",
            extra={
                "camera": self.spec.id,
                "keyframe_interval_s": None
                if keyframe_interval is None
                else round(keyframe_interval, 2),
                "analysis_fps": self.analysis_fps,
            },
        )

    def _pace(self, media_time: float, origin: tuple[float, float] | None) -> tuple[float, float]:
        """Play files at their own rate, like a camera would deliver them."""
        wall = time.monotonic()
        if origin is None or media_time < origin[1]:
            return (wall, media_time)
        delay = (origin[0] + (media_time - origin[1])) - wall
        if delay > 0:
            self._stop.wait(delay)
        return origin

    def _deliver(self, picture: av.VideoFrame, captured_at: float) -> None:
        width, height = fit_inside(picture.width, picture.height, self.options.analysis_size)
        image = self._scaler.reformat(
            picture,
            width=width,
            height=height,
            format="bgr24",
            interpolation=Interpolation.AREA,
            threads=1,
        ).to_ndarray()
        self._sequence += 1
        self.frames.put(
            Frame(
                camera_id=self.spec.id,
                captured_at=captured_at,
                image=image,
                source_size=(picture.width, picture.height),
                sequence=self._sequence,
                keyframe=bool(picture.key_frame),
                _decoded=picture,
            )
        )
        self.health.update(stream_size=(picture.width, picture.height))
        self.health.add("frames_out")


class Cadence:
    """When the next picture is due for analysis: a grid of due times one interval apart.

    A picture is due from ``tolerance`` before the next due time; taking it advances the due
    time by exactly one interval, so the long-run rate is the configured one whatever the
    spacing of the pictures on offer (keyframes every 2 s at 0.2 analyses/s: pictures 4 s and
    6 s apart, 5 s on average). A picture an interval or more late (a gap in the stream)
    restarts the grid from itself. The pipeline's scheduler keeps the same grid with the same
    half-interval tolerance, so a keyframe decoded here is one it takes; a rule relative to the
    last picture ("at least half an interval later") took every second keyframe, 0.25/s.
    """

    def __init__(self) -> None:
        self.target = float("-inf")

    def due(self, stamp: float, tolerance: float) -> bool:
        return stamp >= self.target - tolerance

    def take(self, stamp: float, interval: float) -> None:
        if math.isinf(self.target) or stamp >= self.target + interval:
            self.target = stamp + interval
        else:
            self.target += interval

    def reset(self) -> None:
        self.target = float("-inf")


class _Reader:
    """The state of one connection: decoder, keyframe timing, pacing, stall watchdog."""

    def __init__(self, source: PyAVSource, stream: StreamInfo) -> None:
        self.source = source
        self.stream = stream
        self.is_file = source.spec.is_file
        self.offline = self.is_file and not source.options.realtime
        self.stall_after = source.options.stall_timeout_s
        self.keyframe_times: deque[float] = deque(maxlen=9)
        self.keyframe_interval: float | None = None
        self.arrivals: dict[int, float] = {}  # pts → wall-clock arrival (capture time)
        self.delivered = False
        self.live = False
        self.cadence = Cadence()
        self.gop_start: float | None = None  # stamp of the current GOP's keyframe picture
        self.gop_next = 0.0  # stamp from which the next picture of this GOP is handed on
        self.pace_origin: tuple[float, float] | None = None
        self.last_packet = time.monotonic()
        self.last_picture = self.last_packet
        self.load = DecodeLoad()
        self.heavy = False  # full decoding proved too much for one thread
        # Packets whose pictures are only references for the next analysed one, in decode
        # order; decoded in one burst with it. Off for good once the stream reorders pictures.
        self.waiting: list[av.Packet] = []
        self.bursts = True
        self.last_pts: int | None = None
        # Media time → wall clock for live streams (``_captured``).
        self.seconds_per_tick = float(stream.time_base) if stream.time_base else None
        self.clock_offset: float | None = None  # monotonic − media time, quickest arrival
        self.clock_seen = 0.0  # monotonic time of the last packet mapped
        self.last_media: float | None = None  # the latest media time seen
        self.behind_s = 0.0  # how long the newest packet waited beyond the quickest one
        self.decoder = source._new_decoder(stream, source._wants_keyframes(None))
        if stream.width:
            source.health.update(stream_size=(stream.width, stream.height))

    def end(self, kind: EndKind, message: str | None = None) -> SessionEnd:
        return SessionEnd(kind, message, delivered=self.delivered)

    def restart(self) -> None:
        """After a file loops: fresh decoder, fresh timing."""
        self.decoder = self.source._new_decoder(
            self.stream, self.decoder.keyframes_only, heavy=self.heavy
        )
        self.keyframe_times.clear()
        self.pace_origin = None
        self.cadence.reset()
        self.gop_start = None
        self._drop_waiting()
        self.last_pts = None

    def passed_over(self) -> SessionEnd | None:
        """A picture between keyframes that the native receiver kept from a decoder that
        would discard it unread (keyframes only, or the rest of a GOP after its last
        analysed picture): counted, never decoded.

        Only the native receiver does this: it hands on whole pictures and drops damaged
        ones until the next keyframe itself, so the keyframe the decoder gets next is whole
        and decodes alone (an IDR / IRAP picture references nothing before it).
        """
        if self.source._stop.is_set():
            return self.end("stopped")
        self.last_packet = time.monotonic()
        self.source.health.add("packets_in")
        return None

    def packet(self, packet: av.Packet) -> SessionEnd | None:
        """Handle one demuxed packet; a SessionEnd when the session must end."""
        source = self.source
        if source._stop.is_set():
            return self.end("stopped")
        arrived = time.monotonic()
        silence, self.last_packet = arrived - self.last_packet, arrived
        if not self.is_file and silence >= self.stall_after:
            # The socket timeout fired, but FFmpeg handed back the picture its parser still
            # held: the camera was silent for the stall limit all the same.
            return self.end("stalled", f"no video data for {silence:.1f} s")
        if packet.size == 0:  # end of stream: drain what frame threads still hold
            self._drop_waiting()  # none of them would have been analysed
            for picture in self.decoder.flush():
                if not self._picture(picture):
                    return self.end("stopped")
            return None
        if not self.live:
            self.live = True
            source._set_state(SourceState.LIVE, last_error=None)
        source.health.add("packets_in")
        now = self._captured(packet, source._clock(), arrived)
        if packet.pts is not None:
            self.arrivals[packet.pts] = now
            if len(self.arrivals) > 256:
                for old in list(self.arrivals)[:128]:
                    del self.arrivals[old]
            if self.bursts and self.last_pts is not None and packet.pts <= self.last_pts:
                self._stop_bursts("packets arrive out of presentation order (B-frames)")
            self.last_pts = packet.pts
        if packet.is_keyframe:
            self._drop_waiting()  # the tail of the last GOP: references for nothing now
            self._keyframe(packet, now)
            burst = [packet]
        elif self._waits(packet, now):
            self.waiting.append(packet)
            burst = []
        else:
            burst, self.waiting = [*self.waiting, packet], []
        decoded = self._decode(burst, arrived)
        if decoded is None:
            return self.end("stopped")
        if decoded:
            self.last_picture = arrived
        elif not self.is_file:
            expected = self.keyframe_interval or ASSUMED_KEYFRAME_INTERVAL_S
            starved = arrived - self.last_picture
            if starved > max(self.stall_after, 3.0 * expected):
                errors = source.health.snapshot().decode_errors
                return self.end(
                    "stalled",
                    f"video packets arrive but no picture decoded for {starved:.1f} s "
                    f"({errors} decode errors so far)",
                )
        return None

    def _captured(self, packet: av.Packet, wall: float, now: float) -> float:
        """When the camera captured this packet's picture, on the wall clock: ``wall`` (when
        it was read) less how long it waited beyond the quickest arrival the session has
        seen, by the stream's own timestamps (``now``: the monotonic clock at reading).

        The arrival time alone hides a reader that falls behind: a picture that waited in
        the socket since the camera sent it would count as captured when it is finally read,
        and latency — which the rate controller watches, lowering analysis rates when it
        grows — would never show the backlog (at 128 cameras at 1/s on two cores the
        benchmark's readers once fell 34 s behind the streams with a p99 latency of 0.14 s).
        The offset between arrival and media time is kept on the monotonic clock, so a
        wall-clock step (NTP) is not taken for a backlog; it may creep up by
        ``CLOCK_CREEP`` a second, to follow a camera clock running slow; timestamps that
        step back or jump ahead (a camera restarting its encoder) start the mapping again.
        Files keep the wall clock.
        """
        if self.is_file or packet.pts is None or self.seconds_per_tick is None:
            return wall
        media = packet.pts * self.seconds_per_tick
        offset = now - media
        base, last = self.clock_offset, self.last_media
        if (
            base is None
            or last is None
            or media < last - CLOCK_STEP_BACK_S
            or media - last > now - self.clock_seen + CLOCK_JUMP_S
        ):
            base, last = offset, media
        else:
            base = min(offset, base + CLOCK_CREEP * (now - self.clock_seen))
            last = max(last, media)
        self.clock_offset, self.clock_seen, self.last_media = base, now, last
        self.behind_s = offset - base
        return wall - self.behind_s

    def _decode(self, packets: list[av.Packet], arrived: float) -> int | None:
        """Decode packets in order, each picture handed on (or dropped) as it comes out; the
        number of pictures, None when the source stops. A packet that fails is counted and
        the rest go on.

        A burst's pictures are never held together: each pins a buffer of the decoder's
        pool (3 MB at 1080p). Holding a burst's 16 at once tripled the CPU per picture with
        64 cameras (1.2 → 3.5-4.1 ms), presumably fresh, cold buffers for every burst.
        """
        busy = 0.0
        count = 0
        for packet in packets:
            # CPU time of this thread, not wall time: with many cameras on few cores a
            # decode call also waits for the CPU and the GIL, which does not make a stream
            # heavy (wall time mistook a 1080p stream decoded in bursts for one that needs
            # frame threads, whose CPU cost then overloaded the machine).
            started = time.thread_time()
            try:
                pictures = self.decoder.decode(packet)
            except av.FFmpegError:
                self.source.health.add("decode_errors")
                pictures = []
            busy += time.thread_time() - started
            for picture in pictures:
                count += 1
                if not self._picture(picture):
                    return None
        heavy = not self.offline and self.load.record(busy, arrived)
        if heavy and not self.decoder.keyframes_only:
            self.heavy = True  # frame threads from the next keyframe on
        if self.bursts and self.decoder.context.has_b_frames:
            self._stop_bursts("the decoder reorders pictures")
        return count

    def _waits(self, packet: av.Packet, arrived_at: float) -> bool:
        """Whether this packet's picture waits to be decoded with the next analysed one.

        Decoding between keyframes, most pictures are decoded only because the analysed
        picture after them references them. Decoded as they arrive, interleaved with every
        other camera's, each one's reference picture (3 MB at 1080p) has left the CPU's
        caches by the time it is decoded; decoded in one burst the chain stays in cache.
        64 cameras of 1080p25 at 1/s: 1.21 → 0.90 ms of CPU per picture between keyframes,
        the process 14 % lighter. The pictures and what is analysed are the same either
        way; the analysed picture is handed on a burst's decoding time (~15 ms) later.

        Never with pictures out of decode order (B-frames): the decoder would hold the
        analysed picture back until later packets arrive. Never with frame threads (they
        hold pictures back too), nor for files paced by their decoded pictures.
        """
        if not self.bursts or self.decoder.wants_only_keyframes or self.decoder.threads > 1:
            return False
        if packet.pts is None or (self.is_file and not self.offline):
            return False
        if len(self.waiting) >= MAX_WAITING_PACKETS:
            return False
        interval = self._grid_interval()
        if interval is None or self.gop_start is None:
            return False
        stamp = arrived_at
        if self.offline and self.seconds_per_tick is not None:
            stamp = packet.pts * self.seconds_per_tick  # float: no Fraction per packet
        return stamp + self._early(interval) < self.gop_next or not self._wanted(stamp)

    def _stop_bursts(self, why: str) -> None:
        self.bursts = False
        log.debug(
            "decoding pictures as they arrive: %s", why, extra={"camera": self.source.spec.id}
        )

    def _drop_waiting(self) -> None:
        for packet in self.waiting:
            self.arrivals.pop(packet.pts, None)
        self.waiting = []

    def _keyframe(self, packet: av.Packet, arrived_at: float) -> None:
        source = self.source
        source.health.add("keyframes_in")
        if not self.is_file:
            source.health.update(behind_s=round(self.behind_s, 3))
        if packet.pts is not None and packet.time_base is not None:
            self.keyframe_times.append(float(packet.pts * packet.time_base))
            self.keyframe_interval = _median_gap(self.keyframe_times)
            source.health.update(keyframe_interval_s=self.keyframe_interval)
        wanted = source._wants_keyframes(self.keyframe_interval)
        threads = decoder_threads(wanted, source.options.decode_threads, heavy=self.heavy)
        if wanted != self.decoder.keyframes_only or threads != self.decoder.threads:
            if wanted != self.decoder.keyframes_only:
                source._log_mode_switch(wanted, self.keyframe_interval)
            else:
                log.info(
                    "full decoding keeps one core busy; using frame threads",
                    extra={"camera": source.spec.id, "busy": self.load.last_fraction},
                )
            self.decoder = source._new_decoder(self.stream, wanted, heavy=self.heavy)
        self.decoder.skip_rest_of_gop(False)  # a new GOP: decode until its analyses are done
        paced_file = self.is_file and not self.offline  # paced by decoded pictures: decode all
        if self.decoder.keyframes_only and not paced_file:
            media_time = None
            if packet.pts is not None and packet.time_base is not None:
                media_time = float(packet.pts * packet.time_base)
            # The stamp the picture will carry, so that decoding it means handing it on.
            stamp = media_time if self.offline and media_time is not None else arrived_at
            skip = not (self.cadence.due(stamp, self._tolerance()) and self._wanted(stamp))
            self.decoder.skip_pictures(skip)
            if skip:
                # No picture is wanted from this keyframe: the stall watchdog must not count
                # the time until the next one handed on (up to an analysis interval) as a
                # stream that stopped decoding. A keyframe that is decoded and fails keeps
                # the clock running, so a corrupt stream is still caught.
                self.last_picture = time.monotonic()

    def _tolerance(self) -> float:
        """How long before its due time a picture is taken.

        Keyframes are sparse: half an interval, as the scheduler allows, so that the nearest
        keyframe to each due time is taken. With every frame decoded the picture nearest the
        due time is always at hand; a tenth of an interval absorbs arrival jitter.
        """
        return (0.5 if self.decoder.keyframes_only else 0.1) / self.source.analysis_fps

    def _media_time(self, picture: av.VideoFrame) -> float | None:
        """Seconds on the stream's clock (pictures drained at the end carry no time base)."""
        if picture.pts is None:
            return None
        time_base = picture.time_base or self.stream.time_base
        return None if time_base is None else float(picture.pts * time_base)

    def _picture(self, picture: av.VideoFrame) -> bool:
        """Count a decoded picture and hand it on if an analysis is due; False on stop."""
        source = self.source
        captured = self.arrivals.pop(picture.pts, None) if picture.pts is not None else None
        media_time = self._media_time(picture)
        if self.is_file and not self.offline and media_time is not None:
            self.pace_origin = source._pace(media_time, self.pace_origin)
            if source._stop.is_set():
                return False
            captured = source._clock()
        if captured is None:
            captured = source._clock()
        source.health.update(last_frame_at=captured)
        source.health.add("frames_in")
        # Offline files are sampled in video time, cameras and paced files in wall time.
        stamp = media_time if self.offline and media_time is not None else captured
        if not self._due(picture, stamp):
            return True  # decoded for continuity, not analysed: no conversion
        self.cadence.take(stamp, 1.0 / source.analysis_fps)
        source._deliver(picture, captured)
        self.delivered = True
        return True

    def _grid_interval(self) -> float | None:
        """The analysis interval when due times lie on a grid from each keyframe (``auto``
        decoding between keyframes that are too sparse), else None."""
        interval = 1.0 / self.source.analysis_fps
        gop = self.keyframe_interval
        partial = self.source.options.decode == "auto"  # "all" means every frame decoded
        if self.decoder.keyframes_only or not partial or gop is None or gop <= interval:
            return None
        return interval

    def _early(self, interval: float) -> float:
        """How long before its due time on the grid a picture is taken (half an interval,
        as the scheduler allows; ``_wanted`` keeps to the scheduler's own grid)."""
        return (0.1 if self.source.options.even_spacing else 0.5) * interval

    def _wanted(self, stamp: float) -> bool:
        """Whether the consumer takes a picture with this stamp (``LatestFrame.want_from``).

        The scheduler's grid advances by one interval per analysis and the source's restarts
        at each keyframe; they drift apart as capture times settle (the offset between
        arrival and media time falling as quicker packets arrive) or a stream's timestamps
        jump. A picture handed on earlier than the scheduler takes it cost the decoding of
        its GOP and an analysis: 8 cameras at 1/s lost one in 60 each way. Offline files
        are stamped in media time, not on the consumer's clock; a picture more than two
        intervals before what the consumer wants means the clock stepped back, and the
        scheduler restarts its grid on it.
        """
        if self.offline:
            return True
        wanted = self.source.frames.wanted_from
        return stamp >= wanted or stamp < wanted - 2.0 / self.source.analysis_fps

    def _due(self, picture: av.VideoFrame, stamp: float) -> bool:
        """Whether this picture is handed on for analysis.

        When keyframes alone are too sparse (``auto`` mode decoding between keyframes), the
        due times lie on a grid from each keyframe (0, I, 2I, … before the next keyframe),
        each served by the first picture the scheduler accepts for it (from half an interval
        before it, and on the scheduler's own grid, ``_wanted``; ``even_spacing``: from a
        tenth of an interval before it); once the last is out, the
        rest of the GOP is skipped inside the decoder. With a keyframe every 2 s at 25 fps
        and an analysis every second that decodes 14 of every 50 frames (26 with even
        spacing).
        """
        interval = self._grid_interval()
        if interval is None:
            return self.cadence.due(stamp, self._tolerance()) and self._wanted(stamp)
        gop = self.keyframe_interval or interval  # set whenever there is a grid
        slack = 0.1 * interval  # arrival jitter of a live stream
        early = self._early(interval)
        if picture.key_frame:
            self.gop_start, self.gop_next = stamp, stamp
        if self.gop_start is None or stamp + early < self.gop_next or not self._wanted(stamp):
            return False
        self.gop_next += interval
        if self.gop_next + slack >= self.gop_start + gop:
            self.decoder.skip_rest_of_gop(True)  # nothing else in this GOP is analysed
        return True


class _NativeSink:
    """A camera's reader as the native receiver's sink: access units become PyAV packets.

    RTP timestamps are 32-bit (13 h at 90 kHz) and start anywhere; they are extended to a
    monotonic count so that the reader's pts bookkeeping never sees a wrap.
    """

    def __init__(self, reader: _Reader, stop: threading.Event, clock_rate: int) -> None:
        self.reader = reader
        self._stop = stop
        self._time_base = Fraction(1, clock_rate)
        self._last: int | None = None
        self._pts = 0

    def access_unit(self, unit: AccessUnit) -> SessionEnd | None:
        if self._last is not None:
            step = (unit.timestamp - self._last) & 0xFFFFFFFF
            self._pts += step - (1 << 32) if step >= 1 << 31 else step
        self._last = unit.timestamp
        if not unit.keyframe and self.reader.decoder.wants_only_keyframes:
            # Keyframe-only decoding, or the rest of a GOP after its last analysed picture:
            # ~25 µs of packet and decoder calls saved per picture (34 of 50 at 1/s, GOP 50).
            return self.reader.passed_over()
        packet = av.Packet(unit.data)
        packet.pts = packet.dts = self._pts
        packet.time_base = self._time_base
        packet.is_keyframe = unit.keyframe
        try:
            return self.reader.packet(packet)
        except Exception as error:  # never let one camera stop the receiver's others
            return self.reader.end("error", self.reader.source._crashed(error).message)

    def end(self, kind: EndKind, message: str | None = None) -> SessionEnd:
        return self.reader.end(kind, message)

    def stop_requested(self) -> bool:
        return self._stop.is_set()


def _median_gap(times: deque[float]) -> float | None:
    ordered = sorted(times)
    gaps = [b - a for a, b in itertools.pairwise(ordered) if b > a]
    if len(gaps) < 2:
        return None
    return sorted(gaps)[len(gaps) // 2]
