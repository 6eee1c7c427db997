"""Run the ONVIF test camera by hand, or inside a private network namespace for discovery.

    python -m tests.onvif_device --rtsp rtsp://127.0.0.1:8554/cam --password secret
    python -m tests.onvif_device netns-check      # used by tests/test_onvif.py, needs unshare

``netns-check`` must run inside a fresh network namespace (``unshare --net``): it brings up
loopback with a private non-loopback address (wsdiscovery skips loopback addresses), answers
multicast WS-Discovery there, and runs the real ``sharpeyes cameras discover`` and ``sharpeyes
cameras probe`` against it, printing one JSON object with what they reported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from tests.netns import enter_private_loopback
from tests.onvif_device.device import DeviceConfig, OnvifTestDevice, Profile
from tests.onvif_device.discovery import DiscoveryResponder

NETNS_ADDRESS = "10.203.0.1"
SCOPES = [
    "onvif://www.onvif.org/type/video_encoder",
    "onvif://www.onvif.org/Profile/Streaming",
    "onvif://www.onvif.org/name/SharpEyes%20TestCam",
    "onvif://www.onvif.org/hardware/TC1",
    "onvif://www.onvif.org/location/city/Guangzhou",
]


def _device(host: str, rtsp: str, username: str, password: str, port: int = 0) -> OnvifTestDevice:
    config = DeviceConfig(
        username=username,
        password=password,
        host=host,
        port=port,
        profiles=[Profile("main", "Main stream", rtsp, 768, 432, 10, 10)],
        snapshot_jpeg=b"\xff\xd8\xff\xd9",
    )
    return OnvifTestDevice(config)


def netns_check() -> int:
    enter_private_loopback()  # refuses to touch a real network
    for command in (
        ["ip", "link", "set", "lo", "multicast", "on"],
        ["ip", "addr", "add", f"{NETNS_ADDRESS}/32", "dev", "lo"],
        ["ip", "route", "add", "224.0.0.0/4", "dev", "lo"],
    ):
        subprocess.run(command, check=True, capture_output=True)
    password = "netns-pw"
    device = _device(NETNS_ADDRESS, f"rtsp://{NETNS_ADDRESS}:8554/main", "admin", password)
    responder = DiscoveryResponder(
        epr=device.uuid,
        xaddrs=[device.device_service],
        scopes=SCOPES,
        mode="multicast",
        interface=NETNS_ADDRESS,
    )
    cli = [sys.executable, "-m", "sharpeyes", "cameras"]
    with device, responder:
        started = time.monotonic()
        discover = subprocess.run(
            [*cli, "discover", "--json", "--timeout", "2"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        discover_s = time.monotonic() - started
        found = json.loads(discover.stdout) if discover.returncode == 0 else []
        probe = None
        if found and found[0].get("address"):
            probe = subprocess.run(
                [*cli, "probe", found[0]["address"], "-u", "admin", "--no-check-stream", "--json"],
                capture_output=True,
                text=True,
                timeout=60,
                env=dict(os.environ, SHARPEYES_CAMERA_PASSWORD=password),
            )
        print(
            json.dumps(
                {
                    "discover_returncode": discover.returncode,
                    "discover_stderr": discover.stderr[-2000:],
                    "discover_s": round(discover_s, 2),
                    "found": found,
                    "probes_answered": responder.probes,
                    "expected_epr": device.uuid,
                    "expected_xaddr": device.device_service,
                    "probe_returncode": None if probe is None else probe.returncode,
                    "probe": None
                    if probe is None or probe.returncode
                    else json.loads(probe.stdout),
                    "probe_stderr": None if probe is None else probe.stderr[-2000:],
                }
            )
        )
    return 0


def main() -> int:
    if sys.argv[1:2] == ["netns-check"]:
        return netns_check()
    parser = argparse.ArgumentParser(prog="python -m tests.onvif_device", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8899)
    parser.add_argument("--rtsp", required=True, help="the stream URI GetStreamUri returns")
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", required=True)
    args = parser.parse_args()
    device = _device(args.host, args.rtsp, args.username, args.password, args.port)
    with (
        device,
        DiscoveryResponder(
            epr=device.uuid, xaddrs=[device.device_service], scopes=SCOPES, interface=args.host
        ) as responder,
    ):
        print(f"ONVIF device at {device.device_service}")
        print(f"directed WS-Discovery at {args.host}:{responder.port}")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
