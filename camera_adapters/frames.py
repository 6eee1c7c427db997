"""Decoded frames and the one-slot mailbox that keeps only the newest of them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One decoded frame, ready for the detector.

    ``image`` is BGR, already resized by the decoder's own conversion to fit the analysis
    size. The decoded picture at full resolution is kept (as the decoder's frame object, no
    copy) so that a snapshot for an alert can be rendered sharply, and only then.
    """

    camera_id: str
    captured_at: float  # wall-clock seconds (time.time()) when the frame arrived
    image: np.ndarray
    source_size: tuple[int, int]  # (width, height) of the stream
    sequence: int  # increases by one per frame handed on by this source
    keyframe: bool = False
    _decoded: Any = field(default=None, repr=False, compare=False)

    def full_resolution(self, max_width: int | None = None) -> np.ndarray:
        """The frame at stream resolution (BGR), at most ``max_width`` wide.

        Converted on demand by the decoder's scaler; falls back to the analysis image when
        the decoded picture is not available. Area averaging on the calling thread: for a
        640-px thumbnail of 1080p it costs 1.0 ms against 2.2 for PyAV's default (bilinear,
        a scaler thread per core set up per call), and aliases less.
        """
        if self._decoded is None:
            return self.image
        width, height = self.source_size
        if max_width is not None and width > max_width:
            height = max(1, round(height * max_width / width))
            width = max_width
        return self._decoded.reformat(
            width=width, height=height, format="bgr24", interpolation="AREA", threads=1
        ).to_ndarray()


class LatestFrame:
    """Holds the newest frame only: a slow consumer never makes a camera queue old frames."""

    def __init__(self) -> None:
        self._frame: Frame | None = None
        self._cond = threading.Condition()
        # Replaced, never mutated, so that put() reads it without copying (once per frame).
        self._listeners: tuple[Callable[[], None], ...] = ()
        self.dropped = 0  # frames replaced before anyone took them
        # Capture time from which the consumer takes its next frame (-inf: any). Set by the
        # consumer, read by the source: between keyframes a source decodes up to the frame
        # it hands on, so the earliest one the consumer will take is the cheapest to reach.
        self.wanted_from = float("-inf")

    def want_from(self, captured_at: float) -> None:
        """Tell the source the earliest capture time the next frame taken may have."""
        self.wanted_from = captured_at

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (on the putting thread, after the frame is in) for every frame
        put, so that a consumer of many mailboxes sleeps until one has something instead of
        polling them all."""
        with self._cond:
            self._listeners = (*self._listeners, listener)

    def unsubscribe(self, listener: Callable[[], None]) -> None:
        with self._cond:
            self._listeners = tuple(f for f in self._listeners if f != listener)

    def put(self, frame: Frame) -> None:
        with self._cond:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._cond.notify_all()
            listeners = self._listeners
        for listener in listeners:
            listener()

    def take(self) -> Frame | None:
        """The newest frame not yet taken, or None."""
        with self._cond:
            frame, self._frame = self._frame, None
            return frame

    def peek(self) -> Frame | None:
        with self._cond:
            return self._frame

    def wait(self, timeout: float) -> Frame | None:
        """Block until a frame is available (or timeout) and take it."""
        with self._cond:
            if self._frame is None:
                self._cond.wait(timeout)
            frame, self._frame = self._frame, None
            return frame
