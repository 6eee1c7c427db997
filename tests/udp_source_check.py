"""RTSP over UDP from the GStreamer server into a PyAVSource, inside a private network
namespace (see tests/netns.py): ``python -m tests.udp_source_check CLIP`` prints a JSON report.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from camera_adapters.pyav_source import PyAVSource, SourceOptions
from camera_adapters.spec import CameraSpec
from sharpeyes.devservers.rtsp import RtspServer
from tests.netns import enter_private_loopback

LOCATION = {"district": "D", "street": "S", "community": "C", "grid_cell": "G"}


def main(clip: Path) -> int:
    enter_private_loopback()
    with RtspServer({"cam": clip}) as server:
        spec = CameraSpec(
            id="udp-cam", name="UDP", source=server.url("cam"), transport="udp", location=LOCATION
        )
        source = PyAVSource(
            spec, SourceOptions(analysis_size=(320, 320), analysis_fps=1.0, decode="keyframes")
        )
        source.start()
        frames = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            len(frames) < 2 or source.snapshot().packets_in < 30
        ):
            frame = source.frames.wait(0.2)
            if frame is not None:
                frames.append(frame)
        stopped = source.stop(10)
        health = source.snapshot().as_dict()
    report = {
        "health": health,
        "stopped": stopped,
        "frames": [
            {
                "shape": list(f.image.shape),
                "keyframe": f.keyframe,
                "age_s": time.time() - f.captured_at,
            }
            for f in frames
        ],
    }
    print(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
