"""Look at a stream for a few seconds and say what it is and how SharpEyes would decode it.

For integrators adding a camera: codec, size, frame rate, keyframe interval and bitrate as
measured on the wire (cameras' own settings pages are often wrong about GOP), and whether the
keyframes alone suffice for the analysis rate (cheap) or every frame must be decoded.
"""

from __future__ import annotations

import itertools
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Literal

import av

from camera_adapters.failures import explain_open_failure, explain_read_failure
from camera_adapters.redact import redact_text, redact_url
from camera_adapters.spec import CameraSpec


class StreamProbeError(RuntimeError):
    """The stream could not be read; the message is safe to show (credentials masked)."""

    def __init__(self, message: str, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind  # auth / stalled / error, as in camera health


@dataclass(frozen=True)
class StreamInfo:
    source: str  # redacted
    transport: str | None
    codec: str
    profile: str | None
    width: int
    height: int
    fps: float | None  # measured from packet timestamps
    keyframe_interval_s: float | None
    bitrate_kbps: float | None
    packets: int
    keyframes: int
    seconds: float  # stream time observed
    open_s: float  # time to open the session

    def decode_mode(self, analysis_fps: float) -> Literal["keyframes", "all"]:
        """What ``decode: auto`` would settle on for this stream at ``analysis_fps``."""
        if self.keyframe_interval_s is None:
            return "keyframes"
        return "keyframes" if self.keyframe_interval_s <= 1.0 / analysis_fps * 1.05 else "all"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def probe_stream(
    spec: CameraSpec, *, seconds: float = 5.0, keyframes: int = 4, timeout: float = 10.0
) -> StreamInfo:
    """Read up to ``seconds`` of stream time (or until ``keyframes`` + 1 keyframes)."""
    url = spec.stream_url()
    secrets = spec.secrets()
    options: dict[str, str] = {}
    if url.lower().startswith(("rtsp://", "rtsps://")):
        options = {
            "rtsp_transport": spec.transport,
            "allowed_media_types": "video",
            "analyzeduration": "1000000",
            "timeout": str(int(timeout * 1_000_000)),
        }
    started = time.monotonic()
    try:
        container = av.open(url, options=options, timeout=(timeout, timeout))
    except (av.FFmpegError, OSError, ValueError) as error:
        end = explain_open_failure(
            error, url, elapsed=time.monotonic() - started, timeout=timeout, is_file=spec.is_file
        )
        raise StreamProbeError(redact_text(end.message or "", secrets), end.kind) from None
    open_s = time.monotonic() - started
    try:
        if not container.streams.video:
            raise StreamProbeError(f"{redact_url(url)} carries no video stream")
        stream = container.streams.video[0]
        times: list[float] = []
        key_times: list[float] = []
        size = packets = 0
        deadline = time.monotonic() + seconds + timeout
        try:
            for packet in container.demux(stream):
                if not packet.size or packet.pts is None:
                    continue
                t = float(packet.pts * packet.time_base)
                packets += 1
                size += packet.size
                times.append(t)
                if packet.is_keyframe:
                    key_times.append(t)
                span = max(times) - min(times)
                if span >= seconds or len(key_times) > keyframes or time.monotonic() > deadline:
                    break
        except (av.FFmpegError, OSError) as error:
            end = explain_read_failure(error, url, silence_s=timeout)
            raise StreamProbeError(redact_text(end.message or "", secrets), end.kind) from None
        if not packets:
            raise StreamProbeError(f"{redact_url(url)} opened but sent no video packets")
        ordered = sorted(times)
        span = ordered[-1] - ordered[0]
        gaps = [b - a for a, b in itertools.pairwise(ordered) if b > a]
        key_gaps = [b - a for a, b in itertools.pairwise(key_times) if b > a]
        context = stream.codec_context
        return StreamInfo(
            source=redact_url(url),
            transport=options.get("rtsp_transport"),
            codec=context.name,
            profile=context.profile,
            width=context.width,
            height=context.height,
            fps=round(1.0 / statistics.median(gaps), 2) if gaps else None,
            keyframe_interval_s=round(statistics.median(key_gaps), 3) if key_gaps else None,
            bitrate_kbps=round(size * 8 / span / 1000, 1) if span > 0 else None,
            packets=packets,
            keyframes=len(key_times),
            seconds=round(span, 3),
            open_s=round(open_s, 3),
        )
    finally:
        container.close()
