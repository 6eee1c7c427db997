"""A throwaway PostgreSQL 15 cluster on 127.0.0.1 (Debian's binaries), for tests and benchmarks.

``initdb`` refuses to run as root, so when the tests run as root (CI containers) the cluster
is created and run as the ``postgres`` system user, in a temp directory handed to it. The
server listens on 127.0.0.1 only, with its unix socket inside the temp directory, and runs
without fsync (nothing here needs durability).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sharpeyes.devservers.rtsp import free_port

BIN_DIRS = (
    "/usr/lib/postgresql/15/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/17/bin",
)


class PostgresServerError(RuntimeError):
    pass


def find_bin_dir() -> Path:
    for directory in BIN_DIRS:
        if Path(directory, "initdb").exists() and Path(directory, "pg_ctl").exists():
            return Path(directory)
    raise PostgresServerError(
        "PostgreSQL server binaries not found (looked in "
        + ", ".join(BIN_DIRS)
        + "): install Debian's postgresql-15 (scripts/install-system-packages.sh test)"
    )


@dataclass
class PostgresServer:
    port: int = field(default_factory=free_port)
    bin_dir: Path = field(default_factory=find_bin_dir)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sharpeyes-pg-")))
    user: str = "sharpeyes"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = list(args)
        kwargs: dict[str, object] = {}
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=self.root, **kwargs
        )  # type: ignore[call-overload]
        if result.returncode != 0:
            raise PostgresServerError(
                f"{Path(args[0]).name} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )
        return result

    def start(self) -> PostgresServer:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresServerError(
                    "running as root needs the 'postgres' system user (from Debian's "
                    "postgresql package) to own the test cluster"
                ) from None
            os.chown(self.root, account.pw_uid, account.pw_gid)
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            self.user,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        )
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    def create_database(self, name: str) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.data_dir.exists():
            with contextlib.suppress(PostgresServerError, subprocess.TimeoutExpired):
                self._run(
                    str(self.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                )
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
