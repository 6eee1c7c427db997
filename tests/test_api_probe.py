"""The RTSP connection test against a camera that demands Digest authentication.

GStreamer's test server has no authentication, so this camera is a small real RTSP
responder on a loopback socket that checks the Digest response like a camera does.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator

import pytest

from api.probe import ProbeRefused, probe
from api.settings import CameraProbeSettings

SDP = "v=0\r\ns=cam\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\n"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


@pytest.fixture
def digest_camera() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                buffer = b""
                while True:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    buffer += chunk
                    if b"\r\n\r\n" not in buffer:
                        continue
                    request, buffer = buffer.split(b"\r\n\r\n", 1)
                    lines = request.decode().split("\r\n")
                    uri = lines[0].split(" ")[1]
                    cseq = next(
                        line.split(":")[1].strip() for line in lines if line.startswith("CSeq")
                    )
                    auth = next((line for line in lines if line.startswith("Authorization")), "")
                    expected = md5(f"{md5('admin:cam:pa ss')}:n0nce:{md5('DESCRIBE:' + uri)}")
                    if f'response="{expected}"' in auth:
                        body = SDP.encode()
                        conn.sendall(
                            f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nServer: TestCam\r\n"
                            "Content-Type: application/sdp\r\n"
                            f"Content-Length: {len(body)}\r\n\r\n".encode()
                            + body
                        )
                    else:
                        conn.sendall(
                            f"RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\n"
                            'WWW-Authenticate: Digest realm="cam", nonce="n0nce"\r\n\r\n'.encode()
                        )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    stop.set()
    thread.join(5)
    server.close()


def test_digest_credentials(digest_camera: int) -> None:
    settings = CameraProbeSettings(allowed_networks=["127.0.0.1/32"], timeout_s=5)
    url = f"rtsp://127.0.0.1:{digest_camera}/Streaming/Channels/101"
    asked = probe(url, settings)
    assert not asked.ok and asked.stage == "auth" and "give username" in asked.message
    wrong = probe(url, settings, "admin", "nope")
    assert not wrong.ok and wrong.stage == "auth" and wrong.status == 401
    good = probe(url, settings, "admin", "pa ss")
    assert good.ok and good.media == ["video H265/90000"] and good.server == "TestCam"
    # Credentials in the URL work too, and never appear in the result.
    inline = probe(
        f"rtsp://admin:pa%20ss@127.0.0.1:{digest_camera}/Streaming/Channels/101", settings
    )
    assert inline.ok and "pa%20ss" not in inline.url and "***@" in inline.url
    with pytest.raises(ProbeRefused, match="loopback"):
        probe(url, CameraProbeSettings())
