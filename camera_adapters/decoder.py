"""One stream's video decoder, set up for keyframe-only or full decoding.

The source keeps a decoder context of its own rather than the demuxer's, so that a switch
between keyframe-only and full decoding (made at a keyframe, where it is clean) can also change
the threading: frame threads pay when every frame is decoded and only cost when keyframes
alone are (measured in ``benchmarks/decode.py``). Keyframe-only decoding uses the decoder's
own ``skip_frame`` option; dropping non-key packets of FFmpeg's demuxer before the decoder
corrupts pictures. (The native RTSP receiver may leave out whole pictures between keyframes:
it hands on only undamaged pictures, and a keyframe it hands on references nothing earlier.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import av
from av.codec.hwaccel import HWAccel

FULL_DECODE_MAX_THREADS = 4
# A stream whose single-threaded full decoding keeps a core busier than this gets frame
# threads: below it one thread keeps up in real time and threads only add CPU (measured on
# 1080p25 in benchmarks/results/decode.md: frame threads cost ~5 % more CPU, gain no speed
# on a busy machine).
HEAVY_DECODE_BUSY_FRACTION = 0.5

# Where the decoder runs H.264 / H.265's in-loop deblocking filter. "all": every picture, bit
# exact. "keyframes": only keyframes; pictures between them decode cheaper (1080p25: 1.31 →
# 1.02 ms on one core; 8 % on 640×480 with large motion) and drift slightly from the exact
# picture until the next keyframe, which is exact again. The detector's boxes on them matched
# the exact pictures' 98.5–100 % on 1080p footage, 98–99 % on the dense Mall scene (95–96 %
# tiled), flips at its threshold; the count error against Mall's annotations did not grow
# (benchmarks/results/deblock.md). VLC offers the same trade-off ("skip the loop filter").
Deblock = Literal["all", "keyframes"]


def decoder_threads(keyframes_only: bool, requested: int = 0, *, heavy: bool = False) -> int:
    """Threads for one stream's decoder.

    Keyframes only: one (frame threads hold several keyframes in flight and cost more than
    they save). Every frame: one while a single thread keeps up easily, frame threads (up to
    FULL_DECODE_MAX_THREADS) once decoding proves ``heavy``. ``requested`` > 0 overrides.
    """
    if requested > 0:
        return requested
    if keyframes_only or not heavy:
        return 1
    return max(1, min(FULL_DECODE_MAX_THREADS, os.cpu_count() or 1))


class DecodeLoad:
    """How busy one stream keeps its decoder: CPU seconds of decoding over windows of wall
    time."""

    def __init__(self, window_s: float = 5.0, threshold: float = HEAVY_DECODE_BUSY_FRACTION):
        self.window_s = window_s
        self.threshold = threshold
        self._busy = 0.0
        self._start: float | None = None
        self.last_fraction: float | None = None

    def record(self, busy_s: float, now: float) -> bool:
        """Add time spent decoding; True when a finished window was busier than the
        threshold (the stream is heavy)."""
        if self._start is None:
            self._start = now
        self._busy += busy_s
        elapsed = now - self._start
        if elapsed < self.window_s:
            return False
        self.last_fraction = self._busy / elapsed
        self._busy, self._start = 0.0, now
        return self.last_fraction > self.threshold


@dataclass(frozen=True)
class StreamInfo:
    """What a decoder needs to know about a stream, whoever demuxes it (FFmpeg or the native
    RTSP receiver, which learns the codec from the SDP and the size from the first picture)."""

    codec: str  # FFmpeg decoder name: h264, hevc, …
    extradata: bytes | None = None
    width: int = 0  # 0 until known
    height: int = 0
    time_base: Fraction | None = None

    @classmethod
    def of(cls, stream: av.video.stream.VideoStream) -> StreamInfo:
        params = stream.codec_context
        return cls(
            codec=params.name,
            extradata=params.extradata or None,
            width=params.width or 0,
            height=params.height or 0,
            time_base=stream.time_base,
        )


class Decoder:
    """A decoder context of our own rather than the demuxer's, so that a switch between
    keyframe-only and full decoding (made at a keyframe) can also change the threading."""

    def __init__(
        self,
        stream: StreamInfo,
        keyframes_only: bool,
        threads: int,
        hwaccel: str | None,
        *,
        deblock: Deblock = "all",
    ) -> None:
        self.hardware: str | None = None
        self.note: str | None = None
        context = None
        if hwaccel:
            try:
                context = av.CodecContext.create(
                    stream.codec, "r", hwaccel=HWAccel(hwaccel, allow_software_fallback=True)
                )
                self.hardware = hwaccel
            except (av.FFmpegError, OSError, ValueError) as error:
                self.note = f"hardware decoder '{hwaccel}' unavailable ({error}): using the CPU"
        if context is None:
            context = av.CodecContext.create(stream.codec, "r")
        if stream.extradata:
            context.extradata = stream.extradata
        if threads > 1:
            context.thread_type = "FRAME"
            context.thread_count = threads
        else:
            context.thread_count = 1
        if keyframes_only:
            context.skip_frame = "NONKEY"
        if deblock == "keyframes":
            # Read when the decoder opens (at its first packet); codecs without an in-loop
            # filter ignore it.
            context.options = {"skip_loop_filter": "nokey"}
        self.context = context
        self.deblock = deblock
        self.keyframes_only = keyframes_only
        self.threads = threads
        self.skipping_rest_of_gop = False
        self.skipping_keyframes = False

    def skip_pictures(self, skip: bool) -> None:
        """In keyframe mode, skip (``ALL``) or decode (``NONKEY``) the coming keyframes: a
        keyframe that will not be analysed is not decoded either — still the decoder's own
        skip, never a dropped packet."""
        if self.keyframes_only:
            self.context.skip_frame = "ALL" if skip else "NONKEY"
            self.skipping_keyframes = skip

    def skip_rest_of_gop(self, skip: bool) -> None:
        """With every frame decoded: skip (``NONKEY``) the frames up to the next keyframe
        once none of them will be analysed, or decode them all again (``DEFAULT``).

        Frames after the last analysed one in a GOP are needed by nothing: no later picture
        depends on them past the next keyframe. Skipping them is the decoder's own option.
        """
        if not self.keyframes_only:
            self.context.skip_frame = "NONKEY" if skip else "DEFAULT"
            self.skipping_rest_of_gop = skip

    @property
    def wants_only_keyframes(self) -> bool:
        """Whether a picture between keyframes would be skipped unread right now."""
        return self.keyframes_only or self.skipping_rest_of_gop

    def decode(self, packet: av.Packet) -> list[av.VideoFrame]:
        """The pictures this packet completes.

        A stream that may reorder pictures (B-frames, or only the SPS saying so) makes the
        decoder hold each picture until a later one is decoded. Decoding keyframes only,
        that later one is the next keyframe: every analysis would come a GOP late (1-4 s).
        So in keyframe mode a keyframe the decoder holds back is drained out at once; the
        decoder is reset for the next one, which references nothing before it anyway.
        """
        pictures: list[av.VideoFrame] = self.context.decode(packet)  # type: ignore[assignment]
        if (
            not pictures
            and self.keyframes_only
            and packet.is_keyframe
            and not self.skipping_keyframes
            and self.context.has_b_frames
        ):
            pictures = self.flush()
        return pictures

    def flush(self) -> list[av.VideoFrame]:
        """The pictures still inside the decoder (frame threads hold some) at end of stream."""
        try:
            return self.context.decode(None)  # type: ignore[return-value]
        except av.FFmpegError:
            return []
        finally:
            self.context.flush_buffers()

    def describe(self) -> str:
        where = self.hardware or "cpu"
        filtered = ", deblocking keyframes only" if self.deblock == "keyframes" else ""
        return f"{self.context.name} on {where}, {self.threads} thread(s){filtered}"
