"""Start, control and stop the GStreamer RTSP camera server from Python."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

SERVER_SCRIPT = Path(__file__).with_name("gst_rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"
SETUP_HINT = (
    "install GStreamer's RTSP server: apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 "
    "gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad "
    "(make setup does this)"
)


class RtspServerError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def gstreamer_available() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = subprocess.run(
        [
            SYSTEM_PYTHON,
            "-c",
            "import gi; gi.require_version('GstRtspServer','1.0'); "
            "from gi.repository import GstRtspServer",
        ],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


@dataclass
class RtspServer:
    """An RTSP server process on 127.0.0.1 serving files at named mounts.

    ``stop()`` / ``start()`` again on the same port simulate a camera that goes away and
    comes back; ``pause(mount)`` simulates one that keeps the session open but stops sending.
    """

    mounts: Mapping[str, Path]
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    user: str | None = None
    password: str | None = None
    auth: str = "digest"
    # Mounts of one file are fed by ``phases`` copies started ``phase_span_s / phases``
    # apart (a GOP's length spreads their keyframes evenly); 1 keeps every mount in step.
    phases: int = 1
    phase_span_s: float = 0.0
    process: subprocess.Popen[str] | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _stderr: IO[str] | None = field(default=None, init=False, repr=False)

    def url(self, mount: str, *, with_credentials: bool = False) -> str:
        userinfo = ""
        if with_credentials and self.user:
            userinfo = f"{self.user}:{self.password}@"
        return f"rtsp://{userinfo}{self.host}:{self.port}/{mount}"

    def start(self, timeout: float = 20.0) -> RtspServer:
        if not Path(SYSTEM_PYTHON).exists():
            raise RtspServerError(f"{SYSTEM_PYTHON} not found: {SETUP_HINT}")
        command = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--host", self.host, "--port", str(self.port)]
        for name, path in self.mounts.items():
            command += ["--mount", f"{name}={Path(path).resolve()}"]
        if self.phases > 1:
            command += ["--phases", str(self.phases), "--phase-span", str(self.phase_span_s)]
        if self.user:
            command += ["--user", self.user, "--password", self.password or "", "--auth", self.auth]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        # The server's diagnostics go to a file, not a pipe nobody drains (which would
        # block a chatty server once the pipe buffer fills).
        if self._stderr is not None:
            self._stderr.close()
        self._stderr = tempfile.TemporaryFile(mode="w+", prefix="sharpeyes-rtsp-")  # noqa: SIM115 (lives as long as the server)
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line.startswith("READY"):
                return self
            if not line and self.process.poll() is not None:
                break
        error = self.server_errors()
        self.stop()
        raise RtspServerError(
            f"the RTSP server did not start on {self.host}:{self.port}: {error.strip()[-800:]}"
            f" — if GStreamer is missing, {SETUP_HINT}"
        )

    def server_errors(self) -> str:
        """What the server process wrote to its error output so far."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()

    def _command(self, line: str) -> str:
        if self.process is None or self.process.stdin is None:
            raise RtspServerError("the RTSP server is not running")
        with self._lock:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
            assert self.process.stdout is not None
            reply = self.process.stdout.readline().strip()
        if not reply.startswith("OK"):
            raise RtspServerError(f"RTSP server refused {line!r}: {reply}")
        return reply

    def connections(self) -> int:
        """RTSP connections the server has accepted since it (re)started."""
        reply = self._command("stats")
        return int(reply.rsplit("connections=", 1)[1])

    def pause(self, mount: str) -> None:
        self._command(f"pause {mount}")

    def resume(self, mount: str) -> None:
        self._command(f"resume {mount}")

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self.process = None

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def serve(mounts: Mapping[str, Path], **kwargs: object) -> Iterator[RtspServer]:
    server = RtspServer(mounts, **kwargs)  # type: ignore[arg-type]
    with server:
        yield server


def system_python_missing() -> str | None:
    """None when the server can run, else the reason (used to fail with a setup hint)."""
    if shutil.which(SYSTEM_PYTHON) is None and not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    return None if gstreamer_available() else f"GStreamer RTSP bindings missing: {SETUP_HINT}"
