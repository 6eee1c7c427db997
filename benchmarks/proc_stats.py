"""CPU time and memory of a process tree, sampled with psutil."""

from __future__ import annotations

import contextlib
import os
import threading

import psutil


def tree_cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU seconds of a process and all its live descendants (every thread).

    Children that already exited are counted through the parent's ``children_*`` times.
    """
    total = 0.0
    with contextlib.suppress(psutil.Error):
        times = process.cpu_times()
        total += times.user + times.system + times.children_user + times.children_system
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                ct = child.cpu_times()
                total += ct.user + ct.system
    return total


def tree_rss_bytes(process: psutil.Process, *, children: bool = True) -> int:
    total = 0
    with contextlib.suppress(psutil.Error):
        total += process.memory_info().rss
        for child in process.children(recursive=True) if children else ():
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
    return total


class PeakRss:
    """Samples a process tree's resident memory on a thread and keeps the peak.

    ``children=False`` samples the process alone: finding a process's children lists every
    process on the machine (~0.6 ms a time), which a process measuring its own CPU should
    not pay four times a second when it has none.
    """

    def __init__(
        self, pid: int | None = None, interval_s: float = 0.25, *, children: bool = True
    ) -> None:
        self.process = psutil.Process(pid or os.getpid())
        self.interval_s = interval_s
        self.children = children
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, tree_rss_bytes(self.process, children=self.children))

    def __enter__(self) -> PeakRss:
        self.peak = tree_rss_bytes(self.process, children=self.children)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self.peak = max(self.peak, tree_rss_bytes(self.process, children=self.children))
