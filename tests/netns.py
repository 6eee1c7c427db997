"""Running a piece of a test inside a private network namespace of its own.

Some real network behaviour needs more than binding 127.0.0.1: multicast discovery (wsdiscovery
skips loopback) and RTSP over UDP (FFmpeg binds its RTP receive ports on the wildcard address,
with no option to restrict them). Inside ``unshare --net`` the only interface is a loopback
nobody else can reach, so such code runs for real without exposing anything.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def netns_prefix() -> list[str] | None:
    """The command prefix that enters a new network namespace here, or None if none can."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return None
    for prefix in (["unshare", "--net"], ["unshare", "--user", "--map-root-user", "--net"]):
        probe = subprocess.run([*prefix, "true"], capture_output=True, check=False)
        if probe.returncode == 0:
            return prefix
    return None


def run_module_in_netns(module: str, *args: str, timeout: float = 120) -> dict[str, Any]:
    """Run ``python -m module args…`` in a fresh network namespace; its last stdout line
    is a JSON report. Skips the test (saying why) where namespaces cannot be created."""
    prefix = netns_prefix()
    if prefix is None:
        pytest.skip("cannot create a network namespace here (unshare --net refused)")
    result = subprocess.run(
        [*prefix, sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def enter_private_loopback() -> None:
    """Inside the namespace: refuse to run anywhere else, then bring loopback up."""
    interfaces = sorted(name for _, name in socket.if_nameindex())
    if interfaces != ["lo"]:
        raise SystemExit(f"not a private network namespace (interfaces: {interfaces})")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)
