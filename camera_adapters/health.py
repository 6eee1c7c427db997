"""Per-camera health, as integrators and the console see it."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from enum import StrEnum


class SourceState(StrEnum):
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
        self.frames_in = 0
        self.frames_out = 0
        self.frames_analysed = 0
        self.decode_errors = 0
        self.reconnects = 0
        self.last_frame_at: float | None = None
        self.last_error: str | None = None
        self.decode_mode = "keyframes"
        self.stream_size: tuple[int, int] | None = None

    def update(self, **changes: object) -> None:
        with self._lock:
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
            )
