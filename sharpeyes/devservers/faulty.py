"""Misbehaving "cameras" on 127.0.0.1, for tests of how sources cope with broken networks.

Real TCP servers, not mocks: :class:`GarbageServer` answers every connection with random bytes
(a wrong port, a broken device), :class:`SilentServer` accepts connections and never says a
word (a hung camera, a firewall that swallows traffic), :class:`Mpeg4CameraServer` speaks
RTSP but offers a codec the native receiver does not read. All count the connections they
accept, so a test can check how hard a client retries.
"""

from __future__ import annotations

import os
import socket
import socketserver
import threading
from typing import ClassVar


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.server.count_connection()
        self.server.serve_connection(self.request)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: FaultyServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def count_connection(self) -> None:
        with self.owner._lock:
            self.owner.connections += 1

    def serve_connection(self, sock: socket.socket) -> None:
        self.owner.serve_connection(sock)


class FaultyServer:
    """A TCP server on a free 127.0.0.1 port, run on a background thread."""

    kind: ClassVar[str] = "faulty"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self.connections = 0
        self._server = _Server(self)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"{self.kind}-server",
            daemon=True,
        )

    def url(self, path: str = "cam", scheme: str = "rtsp") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/{path}"

    def serve_connection(self, sock: socket.socket) -> None:
        raise NotImplementedError

    def start(self) -> FaultyServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> FaultyServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class GarbageServer(FaultyServer):
    """Sends random bytes to every client until it hangs up (or the server stops)."""

    kind = "garbage"

    def serve_connection(self, sock: socket.socket) -> None:
        sock.settimeout(1.0)
        try:
            while not self._closing.is_set():
                sock.sendall(os.urandom(1024))
                self._closing.wait(0.01)
        except OSError:
            pass  # the client gave up: what a good client does


class SilentServer(FaultyServer):
    """Accepts every connection and never sends a byte."""

    kind = "silent"

    def serve_connection(self, sock: socket.socket) -> None:
        sock.settimeout(0.2)
        while not self._closing.is_set():
            try:
                if not sock.recv(4096):
                    return  # the client closed the connection
            except TimeoutError:
                continue
            except OSError:
                return


class Mpeg4CameraServer(FaultyServer):
    """An RTSP camera that offers only MPEG-4 Part 2 video (an old encoder): it answers
    ``OPTIONS`` and ``DESCRIBE`` properly and every later request with 454, so a client gets
    as far as reading the SDP and choosing what to do with a codec it may not handle."""

    kind = "mpeg4"
    SDP = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=old camera\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
        "m=video 0 RTP/AVP 96\r\na=rtpmap:96 MP4V-ES/90000\r\n"
        "a=fmtp:96 profile-level-id=1\r\na=control:track1\r\n"
    )

    def serve_connection(self, sock: socket.socket) -> None:
        sock.settimeout(0.5)
        data = b""
        while not self._closing.is_set():
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            data += chunk
            while b"\r\n\r\n" in data:
                request, data = data.split(b"\r\n\r\n", 1)
                lines = request.decode("latin-1").split("\r\n")
                method = lines[0].split(" ", 1)[0]
                cseq = next(
                    (ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("cseq:")),
                    "0",
                )
                if method == "OPTIONS":
                    reply = f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS, DESCRIBE\r\n\r\n"
                elif method == "DESCRIBE":
                    reply = (
                        f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\n"
                        f"Content-Length: {len(self.SDP)}\r\n\r\n{self.SDP}"
                    )
                else:
                    reply = f"RTSP/1.0 454 Session Not Found\r\nCSeq: {cseq}\r\n\r\n"
                try:
                    sock.sendall(reply.encode("latin-1"))
                except OSError:
                    return
