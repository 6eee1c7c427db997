"""A camera (RTSP stream or video file) decoded with PyAV on its own thread.

Each source keeps only its newest frame, reconnects on its own with capped exponential
backoff, and decodes as little as the analysis needs: keyframes only (the decoder's own
``skip_frame``, never dropping packets by hand, which corrupts frames) when the analysis rate
is at or below the keyframe rate, otherwise every frame but converting only those that will
be analysed. Resizing to the analysis size happens inside the decoder's colour conversion, so
no full-resolution RGB copy is ever made.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import av

from camera_adapters.frames import Frame, LatestFrame
from camera_adapters.health import HealthCounters, HealthSnapshot, SourceState
from camera_adapters.redact import redact_text, redact_url
from camera_adapters.spec import CameraSpec

log = logging.getLogger(__name__)

DecodeMode = Literal["auto", "keyframes", "all"]


@dataclass(frozen=True)
class SourceOptions:
    """How a source connects, decodes and recovers (defaults suit street cameras)."""

    analysis_size: tuple[int, int] = (416, 416)  # frames are resized to fit inside (w, h)
    analysis_fps: float = 1.0
    decode: DecodeMode = "auto"
    open_timeout_s: float = 10.0
    read_timeout_s: float = 10.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    auth_retry_s: float = 60.0


def fit_inside(width: int, height: int, box: tuple[int, int]) -> tuple[int, int]:
    """The largest size with the stream's aspect ratio that fits in ``box``; even numbers
    are not required because the conversion writes packed BGR."""
    scale = min(box[0] / width, box[1] / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


class AuthenticationFailed(RuntimeError):
    pass


def _is_auth_error(error: BaseException) -> bool:
    return isinstance(
        error, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError | PermissionError
    )


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
        self._analysis_fps = self.options.analysis_fps

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name=f"source-{self.spec.id}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.health.update(state=SourceState.STOPPED)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def snapshot(self) -> HealthSnapshot:
        return self.health.snapshot()

    def mark_analysed(self) -> None:
        self.health.add("frames_analysed")

    def set_analysis_rate(self, fps: float) -> None:
        """Hand on frames at another rate (the scheduler lowers it under overload); the decode
        thread reads it per frame, a float assignment needs no lock."""
        if fps <= 0:
            raise ValueError(f"analysis_fps must be positive, got {fps}")
        self._analysis_fps = fps

    # -- decode loop -------------------------------------------------------------------
    def _run(self) -> None:
        backoff = self.options.backoff_initial_s
        first = True
        while not self._stop.is_set():
            if not first:
                self.health.add("reconnects")
            first = False
            self.health.update(state=SourceState.CONNECTING)
            try:
                delivered = self._stream_once()
            except AuthenticationFailed as error:
                self._fail(SourceState.FAILED_AUTH, error)
                self._stop.wait(self.options.auth_retry_s)
                continue
            except (av.FFmpegError, OSError, ValueError, RuntimeError) as error:
                self._fail(SourceState.BACKOFF, error)
                delivered = False
            if self._stop.is_set():
                break
            if delivered is None:  # a file that ended and does not loop
                self.health.update(state=SourceState.ENDED)
                return
            if delivered:
                backoff = self.options.backoff_initial_s
            self.health.update(state=SourceState.BACKOFF)
            delay = backoff * random.uniform(0.5, 1.0)
            log.info(
                "camera reconnect scheduled",
                extra={"camera": self.spec.id, "delay_s": round(delay, 2)},
            )
            self._stop.wait(delay)
            backoff = min(backoff * 2.0, self.options.backoff_max_s)

    def _fail(self, state: SourceState, error: BaseException) -> None:
        message = redact_text(f"{type(error).__name__}: {error}")
        self.health.update(state=state, last_error=message)
        log.warning(
            "camera stream failed",
            extra={
                "camera": self.spec.id,
                "source": redact_url(self.spec.stream_url()),
                "state": state.value,
                "error": message,
            },
        )

    def _open(self) -> av.container.InputContainer:
        url = self.spec.stream_url()
        options: dict[str, str] = {}
        if url.startswith(("rtsp://", "rtsps://")):
            options["rtsp_transport"] = self.spec.transport
            options["timeout"] = str(int(self.options.read_timeout_s * 1_000_000))
        try:
            return av.open(
                url,
                options=options,
                timeout=(self.options.open_timeout_s, self.options.read_timeout_s),
            )
        except av.FFmpegError as error:
            if _is_auth_error(error):
                raise AuthenticationFailed(
                    f"the camera rejected the credentials for {redact_url(url)}"
                ) from error
            raise

    def _stream_once(self) -> bool | None:
        """Decode until the stream ends or fails. True if any frame was delivered,
        None when a non-looping file reached its end."""
        delivered = False
        container = self._open()
        try:
            stream = container.streams.video[0]
            stream.thread_type = "SLICE"
            keyframes_only = self.options.decode != "all"
            if keyframes_only:
                stream.codec_context.skip_frame = "NONKEY"
            self.health.update(
                state=SourceState.LIVE,
                decode_mode="keyframes" if keyframes_only else "all",
                stream_size=(stream.codec_context.width, stream.codec_context.height),
            )
            log.info(
                "camera connected",
                extra={
                    "camera": self.spec.id,
                    "source": redact_url(self.spec.stream_url()),
                    "codec": stream.codec_context.name,
                },
            )
            keyframe_times: deque[float] = deque(maxlen=8)
            last_out = 0.0
            last_out_media = float("-inf")
            pace_origin: tuple[float, float] | None = None
            for packet in container.demux(stream):
                if self._stop.is_set():
                    break
                if packet.size == 0:
                    continue
                if packet.is_keyframe and packet.pts is not None:
                    keyframe_times.append(float(packet.pts * packet.time_base))
                    if keyframes_only and self.options.decode == "auto":
                        keyframes_only = self._keep_keyframe_mode(stream, keyframe_times)
                    if keyframes_only:
                        # A keyframe that would not be handed on is not decoded either: the
                        # decoder's own skip (ALL), judged on stream time so files work too.
                        wanted = keyframe_times[-1] - last_out_media >= 0.5 / self._analysis_fps
                        stream.codec_context.skip_frame = "NONKEY" if wanted else "ALL"
                try:
                    decoded = packet.decode()
                except av.FFmpegError:
                    self.health.add("decode_errors")
                    continue
                for picture in decoded:
                    now = self._clock()
                    if self.spec.is_file and picture.time is not None:
                        pace_origin = self._pace(picture.time, pace_origin)
                        if self._stop.is_set():
                            break
                        now = self._clock()
                    self.health.update(last_frame_at=now)
                    self.health.add("frames_in")
                    # Keyframes are sparse: hand on any that comes at least half an interval
                    # after the last, so the consumer can keep its average rate from them.
                    pacing = 0.5 if keyframes_only else 0.9
                    if now - last_out < pacing / self._analysis_fps:
                        continue  # decoded for continuity, not analysed: no conversion
                    last_out = now
                    if picture.time is not None:
                        last_out_media = picture.time
                    self._deliver(picture, now)
                    delivered = True
            if self.spec.is_file and not self._stop.is_set():
                return delivered if self.spec.loop else None
            return delivered
        finally:
            container.close()

    def _keep_keyframe_mode(self, stream: av.video.stream.VideoStream, times: deque[float]) -> bool:
        """Switch to full decoding when keyframes come less often than analyses are due."""
        if len(times) < 3:
            return True
        gaps = [b - a for a, b in zip(times, list(times)[1:], strict=False) if b > a]
        if not gaps:
            return True
        keyframe_interval = sorted(gaps)[len(gaps) // 2]
        if keyframe_interval <= 1.0 / self._analysis_fps * 1.05:
            return True
        stream.codec_context.skip_frame = "DEFAULT"
        self.health.update(decode_mode="all")
        log.info(
            "keyframes too sparse for the analysis rate; decoding every frame",
            extra={"camera": self.spec.id, "keyframe_interval_s": round(keyframe_interval, 2)},
        )
        return False

    def _pace(self, media_time: float, origin: tuple[float, float] | None) -> tuple[float, float]:
        """Play files at their own rate, like a camera would deliver them."""
        wall = time.monotonic()
        if origin is None or media_time < origin[1]:
            return (wall, media_time)
        delay = (origin[0] + (media_time - origin[1])) - wall
        if delay > 0:
            self._stop.wait(delay)
        return origin

    def _deliver(self, picture: av.VideoFrame, now: float) -> None:
        width, height = fit_inside(picture.width, picture.height, self.options.analysis_size)
        image = picture.to_ndarray(width=width, height=height, format="bgr24", interpolation="AREA")
        self._sequence += 1
        self.frames.put(
            Frame(
                camera_id=self.spec.id,
                captured_at=now,
                image=image,
                source_size=(picture.width, picture.height),
                sequence=self._sequence,
                keyframe=bool(picture.key_frame),
                _decoded=picture,
            )
        )
        self.health.add("frames_out")
