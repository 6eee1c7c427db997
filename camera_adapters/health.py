"""Per-camera health, as integrators and the console see it."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from enum import StrEnum


class SourceState(StrEnum):
    """Where a camera's connection stands.

    ``stalled`` means the camera stopped sending (or never started) while its connection was
    up; the source shows it until the next connection attempt. ``backoff`` is the wait before
    the next attempt after any other failure; ``failed_auth`` the (much longer) wait after the
    camera refused the credentials.
    """

    CONNECTING = "connecting"
    LIVE = "live"
    STALLED = "stalled"
    BACKOFF = "backoff"
    FAILED_AUTH = "failed_auth"
    ENDED = "ended"  # a file source that reached its end without looping
    STOPPED = "stopped"


@dataclass(frozen=True)
class HealthSnapshot:
    camera_id: str
    state: SourceState
    frames_in: int  # frames decoded
    frames_out: int  # frames converted and handed to the pipeline
    frames_analysed: int
    decode_errors: int
    reconnects: int
    last_frame_at: float | None
    last_error: str | None
    decode_mode: str
    stream_size: tuple[int, int] | None
    packets_in: int = 0  # compressed video packets read (every frame, decoded or skipped)
    keyframes_in: int = 0  # of which keyframes
    stalls: int = 0  # times the stream went silent and was reconnected
    state_since: float | None = None  # wall-clock time the current state began
    next_attempt_at: float | None = None  # when the next connection attempt is due
    keyframe_interval_s: float | None = None  # measured from the stream's timestamps
    # How far reading lags the live stream: the last keyframe's wait beyond the quickest
    # arrival (a reader that cannot keep up; 0 for files).
    behind_s: float = 0.0
    analysis_fps: float | None = None  # the rate frames are handed on at (may be changed live)
    transport: str | None = None  # tcp / udp for RTSP, None for files
    decoder: str | None = None  # codec, device and threads of the current decoder
    receiver: str | None = None  # RTSP read by the native receiver or by FFmpeg
    packets_lost: int = 0  # RTP packets missing from the native receiver's streams

    @property
    def last_frame_age_s(self) -> float | None:
        return None if self.last_frame_at is None else max(0.0, time.time() - self.last_frame_at)

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["state"] = self.state.value
        data["last_frame_age_s"] = self.last_frame_age_s
        return data


class HealthCounters:
    """Mutable counters owned by one source thread; read as consistent snapshots."""

    def __init__(self, camera_id: str) -> None:
        self._lock = threading.Lock()
        self.camera_id = camera_id
        self.state = SourceState.CONNECTING
        self.state_since: float | None = time.time()
        self.frames_in = 0
        self.frames_out = 0
        self.frames_analysed = 0
        self.decode_errors = 0
        self.reconnects = 0
        self.packets_in = 0
        self.keyframes_in = 0
        self.stalls = 0
        self.last_frame_at: float | None = None
        self.last_error: str | None = None
        self.decode_mode = "keyframes"
        self.stream_size: tuple[int, int] | None = None
        self.next_attempt_at: float | None = None
        self.keyframe_interval_s: float | None = None
        self.behind_s = 0.0
        self.analysis_fps: float | None = None
        self.transport: str | None = None
        self.decoder: str | None = None
        self.receiver: str | None = None
        self.packets_lost = 0

    def update(self, **changes: object) -> None:
        with self._lock:
            if "state" in changes and changes["state"] != self.state:
                self.state_since = time.time()
            for key, value in changes.items():
                setattr(self, key, value)

    def add(self, counter: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + amount)

    def snapshot(self) -> HealthSnapshot:
        with self._lock:
            return HealthSnapshot(
                camera_id=self.camera_id,
                state=self.state,
                frames_in=self.frames_in,
                frames_out=self.frames_out,
                frames_analysed=self.frames_analysed,
                decode_errors=self.decode_errors,
                reconnects=self.reconnects,
                last_frame_at=self.last_frame_at,
                last_error=self.last_error,
                decode_mode=self.decode_mode,
                stream_size=self.stream_size,
                packets_in=self.packets_in,
                keyframes_in=self.keyframes_in,
                stalls=self.stalls,
                state_since=self.state_since,
                next_attempt_at=self.next_attempt_at,
                keyframe_interval_s=self.keyframe_interval_s,
                behind_s=self.behind_s,
                analysis_fps=self.analysis_fps,
                transport=self.transport,
                decoder=self.decoder,
                receiver=self.receiver,
                packets_lost=self.packets_lost,
            )
