"""A live RTSP camera server on GStreamer's gst-rtsp-server, serving H.264 files in a loop.

Run with the system Python that has GStreamer's introspection bindings (Debian packages
python3-gi and gir1.2-gst-rtsp-server-1.0), not the project's virtualenv:

    /usr/bin/python3 gst_rtsp_server.py --port 8554 --mount cam1=/path/clip.mp4

Each file is read once by a "feeder" pipeline that paces it in real time and loops it
seamlessly (segment seeks); every mount pushes those access units into a live ``appsrc``,
re-timestamped by the live clock, so clients see one endless camera stream, join mid-stream
at the next keyframe, and share it like viewers of a real camera. Both TCP-interleaved and
UDP transports are offered. ``--phases N`` gives the mounts of one file N feeders started
apart in time, so that many cameras of one clip do not send their keyframes in step.

Control commands on stdin (one per line), for tests that need a misbehaving camera:
``pause MOUNT`` (keep the session open but send nothing: a stalled camera), ``resume MOUNT``,
``stats`` (``OK stats connections=N``: RTSP connections accepted so far, so a test can tell
how hard a client retries), ``quit``. The server prints ``READY <port>`` once it accepts
connections. RTP over UDP is sent from ports bound to the server's own address (an address
pool), never the wildcard address.
This file imports nothing of SharpEyes on purpose: it runs outside the project's environment.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

H264_CAPS = "video/x-h264,stream-format=byte-stream,alignment=au"


class Feeder:
    """Reads one H.264 MP4 at real-time pace, forever, and fans access units out to mounts."""

    def __init__(self, path: str, start_delay_s: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._targets: dict[object, dict[str, bool]] = {}
        self.pipeline = Gst.parse_launch(
            f'filesrc location="{path}" ! qtdemux ! h264parse config-interval=-1 ! '
            f"{H264_CAPS} ! appsink name=sink sync=true emit-signals=true max-buffers=4"
        )
        self.pipeline.get_by_name("sink").connect("new-sample", self._on_sample)
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self._on_message)
        self.pipeline.set_state(Gst.State.PAUSED)
        self.pipeline.get_state(Gst.CLOCK_TIME_NONE)
        self.pipeline.seek(
            1.0,
            Gst.Format.TIME,
            Gst.SeekFlags.FLUSH | Gst.SeekFlags.SEGMENT,
            Gst.SeekType.SET,
            0,
            Gst.SeekType.NONE,
            -1,
        )
        if start_delay_s > 0:
            GLib.timeout_add(round(start_delay_s * 1000), self._play)
        else:
            self._play()

    def _play(self) -> bool:
        self.pipeline.set_state(Gst.State.PLAYING)
        return False  # a one-off GLib timeout

    def attach(self, appsrc: object, mount: Mount) -> None:
        with self._lock:
            self._targets[appsrc] = {"synced": False, "mount": mount}

    def detach(self, appsrc: object) -> None:
        with self._lock:
            self._targets.pop(appsrc, None)

    def _on_message(self, _bus: object, message: Gst.Message) -> None:
        if message.type == Gst.MessageType.SEGMENT_DONE:
            self.pipeline.seek(
                1.0,
                Gst.Format.TIME,
                Gst.SeekFlags.SEGMENT,
                Gst.SeekType.SET,
                0,
                Gst.SeekType.NONE,
                -1,
            )
        elif message.type == Gst.MessageType.ERROR:
            error, debug = message.parse_error()
            print(f"feeder error: {error.message} ({debug})", file=sys.stderr, flush=True)

    def _on_sample(self, sink: object) -> Gst.FlowReturn:
        sample = sink.emit("pull-sample")
        buffer = sample.get_buffer().copy()
        keyframe = not buffer.has_flags(Gst.BufferFlags.DELTA_UNIT)
        buffer.pts = buffer.dts = buffer.duration = Gst.CLOCK_TIME_NONE
        with self._lock:
            targets = list(self._targets.items())
        for appsrc, state in targets:
            if state["mount"].paused:
                continue
            if not state["synced"]:
                if not keyframe:
                    continue  # a new viewer starts at a keyframe, as a camera's would
                state["synced"] = True
            appsrc.emit("push-buffer", buffer)
        return Gst.FlowReturn.OK


class Mount:
    def __init__(self, name: str, feeder: Feeder, pool: GstRtspServer.RTSPAddressPool) -> None:
        self.name = name
        self.feeder = feeder
        self.paused = False
        self.factory = GstRtspServer.RTSPMediaFactory()
        self.factory.set_launch(
            "( appsrc name=src is-live=true do-timestamp=true format=time "
            f'caps="{H264_CAPS}" ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )'
        )
        self.factory.set_shared(True)
        self.factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP)
        self.factory.set_address_pool(pool)
        self.factory.connect("media-configure", self._on_media)

    def _on_media(self, _factory: object, media: GstRtspServer.RTSPMedia) -> None:
        appsrc = media.get_element().get_by_name("src")
        self.feeder.attach(appsrc, self)
        media.connect("unprepared", lambda _m: self.feeder.detach(appsrc))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--mount",
        action="append",
        required=True,
        metavar="NAME=FILE",
        help="serve FILE (H.264 MP4) at rtsp://HOST:PORT/NAME; repeatable",
    )
    parser.add_argument(
        "--phases",
        type=int,
        default=1,
        help="mounts of one file are spread over this many feeders, started --phase-span/N "
        "apart, so their keyframes do not all arrive at once (real cameras are not in step)",
    )
    parser.add_argument("--phase-span", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--user", help="require this user (with --password)")
    parser.add_argument("--password")
    parser.add_argument("--auth", choices=("basic", "digest"), default="digest")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    # One thread per client connection (the default is a single thread): preparing a live
    # mount waits for its first keyframe, and clients of other mounts must not queue behind it.
    server.get_thread_pool().set_max_threads(-1)
    server.set_address(args.host)
    server.set_service(str(args.port))
    feeders: dict[tuple[str, int], Feeder] = {}
    per_file: dict[str, int] = {}
    phases = max(1, args.phases)
    mounts: dict[str, Mount] = {}
    points = server.get_mount_points()
    pool = GstRtspServer.RTSPAddressPool()
    pool.add_range(args.host, args.host, 20000, 60000, 0)
    for item in args.mount:
        name, _, path = item.partition("=")
        if not name or not path:
            parser.error(f"--mount expects NAME=FILE, got {item!r}")
        phase = per_file.get(path, 0) % phases
        per_file[path] = per_file.get(path, 0) + 1
        if (path, phase) not in feeders:
            feeders[(path, phase)] = Feeder(path, phase * args.phase_span / phases)
        feeder = feeders[(path, phase)]
        mount = Mount(name.strip("/"), feeder, pool)
        mounts[mount.name] = mount
        points.add_factory("/" + mount.name, mount.factory)

    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        if args.auth == "basic":
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        else:
            auth.add_digest(args.user, args.password or "", token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        server.set_auth(auth)
        for mount in mounts.values():
            permissions = GstRtspServer.RTSPPermissions()
            for permission in (
                GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS,
                GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT,
            ):
                permissions.add_permission_for_role("user", permission, True)
            mount.factory.set_permissions(permissions)

    connections = 0

    def on_client(_server: object, _client: object) -> None:
        nonlocal connections
        connections += 1  # every accepted RTSP (TCP) connection, including refused logins

    server.connect("client-connected", on_client)
    if server.attach(None) == 0:
        print(f"cannot listen on {args.host}:{args.port}", file=sys.stderr, flush=True)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)

    def on_stdin(channel: GLib.IOChannel, condition: GLib.IOCondition) -> bool:
        if condition & (GLib.IOCondition.HUP | GLib.IOCondition.ERR):
            return False
        line = channel.readline().strip()
        command, _, target = line.partition(" ")
        if command == "quit":
            loop.quit()
        elif command == "stats":
            print(f"OK stats connections={connections}", flush=True)
        elif command in ("pause", "resume") and target.strip("/") in mounts:
            mounts[target.strip("/")].paused = command == "pause"
            print(f"OK {command} {target}", flush=True)
        elif line:
            print(f"ERR unknown command {line!r}", flush=True)
        return True

    channel = GLib.IOChannel.unix_new(sys.stdin.fileno())
    GLib.io_add_watch(
        channel, GLib.PRIORITY_DEFAULT, GLib.IOCondition.IN | GLib.IOCondition.HUP, on_stdin
    )
    print(f"READY {args.port}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
