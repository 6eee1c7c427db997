"""The native RTSP handshake against real servers on 127.0.0.1.

The GStreamer RTSP server (with and without credentials) is the well-behaved camera; small
socket servers started here play the cameras GStreamer will not imitate: one that answers
HTTP, one whose only video is MPEG-4, one that refuses TCP interleaving, one that sends its
replies in pieces and streams before it answers PLAY.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from camera_adapters.rtsp_handshake import (
    PlayingSession,
    RtspHandshakeError,
    VideoTrack,
    _choose_auth,
    _parse_challenges,
    digest_response,
    open_rtsp,
    parse_sdp,
)
from sharpeyes.devservers.faulty import SilentServer
from sharpeyes.devservers.rtsp import RtspServer, free_port

PASSWORD = "Op3n/Se:s@me"  # characters that must be percent-encoded in a URL
WRONG = "n0t-the-pa55word"


def with_userinfo(url: str, userinfo: str) -> str:
    return url.replace("rtsp://", f"rtsp://{userinfo}@", 1)


@pytest.fixture(scope="module")
def auth_servers(sample_clip: Path) -> Iterator[dict[str, RtspServer]]:
    """GStreamer servers wanting admin/PASSWORD, one per scheme."""
    servers = {
        scheme: RtspServer({"cam": sample_clip}, user="admin", password=PASSWORD, auth=scheme)
        for scheme in ("digest", "basic")
    }
    try:
        for server in servers.values():
            server.start()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def read_rtsp_reply(session: PlayingSession, data: bytes, timeout: float = 5.0) -> tuple[str, int]:
    """Skip interleaved frames until an RTSP reply arrives; its status line and CSeq."""
    buffer = bytearray(data)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if buffer[:1] == b"$" and len(buffer) >= 4:
            end = 4 + int.from_bytes(buffer[2:4], "big")
            if len(buffer) >= end:
                del buffer[:end]
                continue
        elif buffer.startswith(b"RTSP/") and b"\r\n\r\n" in buffer:
            head = bytes(buffer).split(b"\r\n\r\n", 1)[0].decode()
            cseq = re.search(r"(?im)^cseq:\s*(\d+)", head)
            return head.splitlines()[0], int(cseq.group(1)) if cseq else -1
        chunk = session.sock.recv(65536)
        assert chunk, "the server closed the connection"
        buffer += chunk
    pytest.fail("no RTSP reply among the interleaved data")


# --- the real GStreamer server ---------------------------------------------------------------


def test_open_without_auth_plays_h264_over_tcp(rtsp_server: RtspServer) -> None:
    session = open_rtsp(rtsp_server.url("cam1"), timeout_s=10)
    try:
        assert session.track.encoding == "H264"
        assert session.track.clock_rate == 90000
        assert session.track.payload_type == 96
        assert session.track.fmtp["sprop-parameter-sets"]
        assert session.track.fmtp["packetization-mode"] == "1"
        assert session.track.control_url.startswith(rtsp_server.url("cam1"))
        assert session.rtp_channel == 0
        assert session.session_id and ";" not in session.session_id
        assert session.timeout_s > 0
        assert session.url == rtsp_server.url("cam1")
        assert session.sock.gettimeout() == 10
        data = session.leftover or session.sock.recv(65536)
        assert data[:1] == b"$"  # an interleaved frame, nothing lost ahead of it
        assert data[1] in (session.rtp_channel, session.rtp_channel + 1)
        # The camera keeps talking RTSP on the same connection: a keepalive gets its reply.
        keepalive = session.keepalive_request()
        session.sock.sendall(keepalive)
        status, cseq = read_rtsp_reply(session, data)
        assert status.endswith("200 OK")
        assert f"CSeq: {cseq}\r\n".encode() in keepalive
    finally:
        session.sock.close()


@pytest.mark.parametrize("scheme", ["digest", "basic"])
def test_credentials_from_the_url_open_the_stream(
    auth_servers: dict[str, RtspServer], scheme: str
) -> None:
    server = auth_servers[scheme]
    url = with_userinfo(server.url("cam"), "admin:Op3n%2FSe%3As%40me")  # percent-decoded
    session = open_rtsp(url, timeout_s=10)
    try:
        assert session.track.encoding == "H264"
        assert session.url == server.url("cam")  # no credentials
        assert PASSWORD not in repr(session)
        data = session.leftover or session.sock.recv(65536)
        assert data[:1] == b"$"
        # GStreamer authenticates GET_PARAMETER and TEARDOWN too: the recomputed
        # Authorization must be accepted, not just present.
        first, second = session.keepalive_request(), session.keepalive_request()
        for request in (first, second):
            assert request.startswith(b"GET_PARAMETER ")
            assert f"Session: {session.session_id}\r\n".encode() in request
            expected = b"Authorization: Digest " if scheme == "digest" else b"Authorization: Basic "
            assert expected in request
        assert _cseq(second) == _cseq(first) + 1
        session.sock.sendall(second)
        status, cseq = read_rtsp_reply(session, data)
        assert status.endswith("200 OK") and cseq == _cseq(second)
        teardown = session.teardown_request()
        assert teardown.startswith(b"TEARDOWN ") and _cseq(teardown) == _cseq(second) + 1
        session.sock.sendall(teardown)
        status, cseq = read_rtsp_reply(session, b"")
        assert status.endswith("200 OK") and cseq == _cseq(teardown)
    finally:
        session.sock.close()


@pytest.mark.parametrize("scheme", ["digest", "basic"])
def test_wrong_password_is_an_auth_failure_that_does_not_show_it(
    auth_servers: dict[str, RtspServer], scheme: str
) -> None:
    url = with_userinfo(auth_servers[scheme].url("cam"), f"admin:{WRONG}")
    with pytest.raises(RtspHandshakeError) as caught:
        open_rtsp(url, timeout_s=10)
    error = caught.value
    assert (error.kind, error.status) == ("auth", 401)
    assert "401" in str(error) and "DESCRIBE" in str(error)
    assert WRONG not in str(error) and WRONG not in repr(error)
    assert "admin" not in str(error)


def test_no_credentials_for_a_camera_that_wants_them_is_an_auth_failure(
    auth_servers: dict[str, RtspServer],
) -> None:
    with pytest.raises(RtspHandshakeError) as caught:
        open_rtsp(auth_servers["digest"].url("cam"), timeout_s=10)
    assert (caught.value.kind, caught.value.status) == ("auth", 401)
    assert "has none" in str(caught.value)


def test_unknown_mount_is_not_found(rtsp_server: RtspServer) -> None:
    with pytest.raises(RtspHandshakeError) as caught:
        open_rtsp(rtsp_server.url("no-such-mount"), timeout_s=10)
    assert (caught.value.kind, caught.value.status) == ("not_found", 404)
    assert "/no-such-mount" in str(caught.value)


# --- connections that go wrong ---------------------------------------------------------------


def test_nothing_listening_is_refused() -> None:
    with pytest.raises(RtspHandshakeError) as caught:
        open_rtsp(f"rtsp://admin:{WRONG}@127.0.0.1:{free_port()}/cam", timeout_s=2)
    assert caught.value.kind == "refused" and caught.value.status is None
    assert WRONG not in str(caught.value)


def test_a_silent_server_times_out_within_the_timeout() -> None:
    with SilentServer() as server:
        started = time.monotonic()
        with pytest.raises(RtspHandshakeError) as caught:
            open_rtsp(server.url("cam"), timeout_s=0.5)
        elapsed = time.monotonic() - started
    assert caught.value.kind == "timeout"
    assert "OPTIONS" in str(caught.value)
    assert 0.45 <= elapsed < 1.5, elapsed


def test_rtsps_is_unsupported_without_connecting() -> None:
    with SilentServer() as server:
        with pytest.raises(RtspHandshakeError) as caught:
            open_rtsp(f"rtsps://admin:{WRONG}@127.0.0.1:{server.port}/cam", timeout_s=2)
        assert server.connections == 0
    assert caught.value.kind == "unsupported"
    assert WRONG not in str(caught.value)


# --- scripted cameras ------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    uri: str
    headers: dict[str, str]  # names lower-cased

    @property
    def cseq(self) -> str:
        return self.headers.get("cseq", "")


Respond = Callable[[Request], bytes | list[bytes]]


class ScriptedServer:
    """A real TCP server on 127.0.0.1: reads RTSP requests and answers what ``respond`` says.

    ``respond`` returns the bytes to send, or a list of pieces sent with a short pause
    between them (a reply that arrives in several TCP segments).
    """

    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        self.requests: list[Request] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)  # accept() polls: closing a socket does not wake it
        self.port = int(self.listener.getsockname()[1])
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    def url(self, path: str = "cam") -> str:
        return f"rtsp://127.0.0.1:{self.port}/{path}"

    def __enter__(self) -> ScriptedServer:
        self._accepting.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._closing.set()
        self._accepting.join(5)
        self.listener.close()
        for thread in self._threads:
            thread.join(5)

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(5)
        buffer = b""
        with sock:
            try:
                while True:
                    while b"\r\n\r\n" not in buffer:
                        chunk = sock.recv(4096)
                        if not chunk:
                            return
                        buffer += chunk
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    line, *lines = head.decode().split("\r\n")
                    method, uri, _ = line.split(" ")
                    headers = {}
                    for header in lines:
                        name, _, value = header.partition(":")
                        headers[name.strip().lower()] = value.strip()
                    request = Request(method, uri, headers)
                    self.requests.append(request)
                    answer = self.respond(request)
                    for piece in answer if isinstance(answer, list) else [answer]:
                        sock.sendall(piece)
                        if isinstance(answer, list):
                            time.sleep(0.01)
            except OSError:
                return


def rtsp_reply(
    request: Request, status: str = "200 OK", headers: dict[str, str] | None = None, body: str = ""
) -> bytes:
    lines = [f"RTSP/1.0 {status}", f"CSeq: {request.cseq}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


H264_SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=cam\r\nt=0 0\r\n"
    "m=audio 0 RTP/AVP 0\r\na=control:trackID=2\r\n"
    "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    "a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z0LAHtkDxWhAAAADAEAAAAwDxYuS,aMuMsg==\r\n"
    "a=control:trackID=1\r\n"
)
MP4V_SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=cam\r\nt=0 0\r\n"
    "m=video 0 RTP/AVP 96\r\na=rtpmap:96 MP4V-ES/90000\r\na=fmtp:96 profile-level-id=1\r\n"
    "a=control:trackID=1\r\n"
    "m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/16000/1\r\na=control:trackID=2\r\n"
)
PUBLIC = {"Public": "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER"}


def camera(
    sdp: str = H264_SDP,
    *,
    setup: Callable[[Request], bytes] | None = None,
    public: dict[str, str] = PUBLIC,
    play_extra: bytes = b"",
) -> Respond:
    """A simple scripted camera: the usual four answers unless told otherwise."""

    def respond(request: Request) -> bytes | list[bytes]:
        if request.method == "OPTIONS":
            return rtsp_reply(request, headers=public)
        if request.method == "DESCRIBE":
            base = {"Content-Base": request.uri + "/", "Content-Type": "application/sdp"}
            return rtsp_reply(request, headers=base, body=sdp)
        if request.method == "SETUP":
            if setup is not None:
                return setup(request)
            transport = "RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=1234"
            return rtsp_reply(
                request, headers={"Session": "ABC123;timeout=30", "Transport": transport}
            )
        if request.method == "PLAY":
            return rtsp_reply(request, headers={"Session": "ABC123"}) + play_extra
        return rtsp_reply(request, "501 Not Implemented")

    return respond


def test_an_http_answer_is_a_protocol_error() -> None:
    def respond(_request: Request) -> bytes:
        return b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"

    with ScriptedServer(respond) as server, pytest.raises(RtspHandshakeError) as caught:
        open_rtsp(server.url(), timeout_s=2)
    assert caught.value.kind == "protocol"
    assert "HTTP/1.1 400" in str(caught.value)


def test_only_mpeg4_video_is_unsupported() -> None:
    with ScriptedServer(camera(MP4V_SDP)) as server:
        with pytest.raises(RtspHandshakeError) as caught:
            open_rtsp(server.url(), timeout_s=2)
        methods = [r.method for r in server.requests]
    assert caught.value.kind == "unsupported"
    assert "MP4V-ES" in str(caught.value)
    assert methods == ["OPTIONS", "DESCRIBE"]


def test_a_camera_that_refuses_tcp_interleaving_is_unsupported() -> None:
    def setup(request: Request) -> bytes:
        return rtsp_reply(request, "461 Unsupported Transport")

    with ScriptedServer(camera(setup=setup)) as server:
        with pytest.raises(RtspHandshakeError) as caught:
            open_rtsp(server.url(), timeout_s=2)
        setup_request = server.requests[-1]
    assert (caught.value.kind, caught.value.status) == ("unsupported", 461)
    assert setup_request.headers["transport"] == "RTP/AVP/TCP;unicast;interleaved=0-1"
    assert setup_request.uri == server.url() + "/trackID=1"  # the video, not the audio


def test_replies_in_pieces_and_streaming_before_the_play_reply() -> None:
    """Every reply arrives in small TCP pieces; RTP arrives before and with the PLAY reply."""
    early = b"$\x02\x00\x03abc"
    late = b"$\x02\x00\x05hello$\x03"
    simple = camera(
        setup=lambda request: rtsp_reply(
            request,
            headers={"Session": "ABC123;timeout=30", "Transport": "RTP/AVP/TCP;interleaved=2-3"},
        )
    )

    def respond(request: Request) -> list[bytes]:
        answer = simple(request)
        assert isinstance(answer, bytes)
        if request.method == "PLAY":
            answer = early + answer + late
        return [answer[i : i + 7] for i in range(0, len(answer), 7)]

    with ScriptedServer(respond) as server:
        session = open_rtsp(server.url(), timeout_s=5)
        # What was read with the PLAY reply is in leftover; the rest is still in the socket.
        stream = session.leftover
        while len(stream) < len(early + late):
            chunk = session.sock.recv(4096)
            assert chunk
            stream += chunk
        session.sock.close()
    assert session.leftover.startswith(early)
    assert stream == early + late
    assert session.rtp_channel == 2
    assert session.session_id == "ABC123" and session.timeout_s == 30
    assert session.track.control_url == server.url() + "/trackID=1"


def test_keepalive_is_options_when_get_parameter_is_not_public() -> None:
    with ScriptedServer(camera(public={"Public": "OPTIONS, DESCRIBE, SETUP, PLAY"})) as server:
        session = open_rtsp(server.url(), timeout_s=2)
        session.sock.close()
        requests = [r.method for r in server.requests]
    assert requests == ["OPTIONS", "DESCRIBE", "SETUP", "PLAY"]
    first, second = session.keepalive_request(), session.keepalive_request()
    assert first.startswith(f"OPTIONS {server.url()}/ RTSP/1.0\r\n".encode())
    assert (_cseq(first), _cseq(second)) == (5, 6)
    assert b"Session: ABC123\r\n" in first and b"Authorization" not in first
    assert first.endswith(b"\r\n\r\n")


def test_digest_with_qop_and_opaque_and_basic_offered_too() -> None:
    """Digest is preferred over Basic; nc counts up; opaque is echoed; every request signed."""
    realm, nonce, opaque = "cam realm", "n0nce", "0paque"
    seen: list[dict[str, str]] = []
    inner = camera()

    def respond(request: Request) -> bytes | list[bytes]:
        authorization = request.headers.get("authorization", "")
        if request.method != "OPTIONS":
            if not authorization.startswith("Digest "):
                return rtsp_reply(
                    request,
                    "401 Unauthorized",
                    {
                        "WWW-Authenticate": f'Basic realm="{realm}", Digest realm="{realm}", '
                        f'nonce="{nonce}", qop="auth,auth-int", opaque="{opaque}"'
                    },
                )
            params = dict(re.findall(r'(\w+)="?([^",]*)"?', authorization[len("Digest ") :]))
            seen.append(params)
            expected = digest_response(
                "admin",
                PASSWORD,
                realm,
                nonce,
                request.method,
                request.uri,
                qop="auth",
                nc=params["nc"],
                cnonce=params["cnonce"],
            )
            if params["response"] != expected or params["uri"] != request.uri:
                return rtsp_reply(request, "401 Unauthorized")
        return inner(request)

    with ScriptedServer(respond) as server:
        url = with_userinfo(server.url(), "admin:Op3n%2FSe%3As%40me")
        session = open_rtsp(url, timeout_s=2)
        session.sock.close()
    assert [p["nc"] for p in seen] == ["00000001", "00000002", "00000003"]
    assert all(p["opaque"] == opaque and p["qop"] == "auth" for p in seen)
    keepalive = session.keepalive_request().decode()
    assert keepalive.startswith("GET_PARAMETER ")
    assert "nc=00000004" in keepalive and f'opaque="{opaque}"' in keepalive


def test_an_unknown_auth_scheme_is_unsupported() -> None:
    def respond(request: Request) -> bytes:
        if request.method == "OPTIONS":
            return rtsp_reply(request, headers=PUBLIC)
        challenge = 'Digest realm="x", nonce="y", algorithm=SHA-256, NTLM'
        return rtsp_reply(request, "401 Unauthorized", {"WWW-Authenticate": challenge})

    with ScriptedServer(respond) as server, pytest.raises(RtspHandshakeError) as caught:
        open_rtsp(with_userinfo(server.url(), f"admin:{WRONG}"), timeout_s=2)
    assert (caught.value.kind, caught.value.status) == ("unsupported", 401)
    assert WRONG not in str(caught.value)


def test_forbidden_is_an_auth_failure() -> None:
    def respond(request: Request) -> bytes:
        return rtsp_reply(request, "403 Forbidden")

    with ScriptedServer(respond) as server, pytest.raises(RtspHandshakeError) as caught:
        open_rtsp(server.url(), timeout_s=2)
    assert (caught.value.kind, caught.value.status) == ("auth", 403)


def test_one_redirect_on_describe_is_followed_a_second_is_not() -> None:
    inner = camera()

    def respond(request: Request) -> bytes | list[bytes]:
        path = request.uri.rsplit("/", 1)[1]
        if request.method == "DESCRIBE" and path in ("old", "older"):
            target = request.uri.rsplit("/", 1)[0] + ("/new" if path == "old" else "/old")
            return rtsp_reply(request, "302 Moved Temporarily", {"Location": target})
        return inner(request)

    with ScriptedServer(respond) as server:
        session = open_rtsp(with_userinfo(server.url("old"), "admin:pw"), timeout_s=2)
        session.sock.close()
        assert session.url == server.url("new")
        assert session.track.control_url == server.url("new") + "/trackID=1"
        with pytest.raises(RtspHandshakeError) as caught:
            open_rtsp(server.url("older"), timeout_s=2)
    assert (caught.value.kind, caught.value.status) == ("protocol", 302)


def test_a_reply_with_the_wrong_cseq_is_a_protocol_error() -> None:
    def respond(request: Request) -> bytes:
        return rtsp_reply(Request(request.method, request.uri, {"cseq": "99"}), headers=PUBLIC)

    with ScriptedServer(respond) as server, pytest.raises(RtspHandshakeError) as caught:
        open_rtsp(server.url(), timeout_s=2)
    assert caught.value.kind == "protocol" and "CSeq" in str(caught.value)


def test_endless_headers_are_a_protocol_error() -> None:
    def respond(request: Request) -> bytes:
        return f"RTSP/1.0 200 OK\r\nCSeq: {request.cseq}\r\n".encode() + b"X-Pad: y\r\n" * 8000

    with ScriptedServer(respond) as server, pytest.raises(RtspHandshakeError) as caught:
        open_rtsp(server.url(), timeout_s=2)
    assert caught.value.kind == "protocol" and "headers" in str(caught.value)


# --- SDP and digest, no network --------------------------------------------------------------


def test_parse_sdp_resolves_controls_and_skips_audio() -> None:
    sdp = (
        "v=0\r\ns=x\r\nt=0 0\r\n"
        "m=audio 0 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=control:track0\r\n"
        "m=video 0 RTP/AVP 96\r\na=rtpmap:96 h264/90000\r\n"
        "a=fmtp:96 Packetization-Mode=1; sprop-parameter-sets=Z0IAKeKQ,aM48gA==\r\n"
        "a=control:trackID=1\r\n"
        "m=video 0 RTP/AVP 97 98\r\na=rtpmap:97 JPEG/90000\r\na=rtpmap:98 H265/90000\r\n"
        "a=fmtp:98 sprop-vps=QAEMAf//\r\na=control:rtsp://other:554/abs/track2\r\n"
        "m=video 0 RTP/AVP 26\r\na=control:*\r\n"
    )
    tracks = parse_sdp(sdp, "rtsp://cam:554/live/ch1")
    assert tracks == [
        VideoTrack(
            "H264",
            96,
            90000,
            "rtsp://cam:554/live/ch1/trackID=1",
            {"packetization-mode": "1", "sprop-parameter-sets": "Z0IAKeKQ,aM48gA=="},
        ),
        VideoTrack("H265", 98, 90000, "rtsp://other:554/abs/track2", {"sprop-vps": "QAEMAf//"}),
        VideoTrack("JPEG", 26, 90000, "rtsp://cam:554/live/ch1", {}),
    ]


def test_parse_sdp_with_a_content_base_a_query_and_a_rooted_path() -> None:
    video = "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    assert parse_sdp(video + "a=control:stream=0\r\n", "rtsp://h/cam/")[0].control_url == (
        "rtsp://h/cam/stream=0"
    )
    # Dahua-style: the control is appended after the query, which is what the camera expects.
    base = "rtsp://h/cam/realmonitor?channel=1&subtype=0/"
    assert parse_sdp(video + "a=control:trackID=0\r\n", base)[0].control_url == (base + "trackID=0")
    assert parse_sdp(video + "a=control:/x/y\r\n", "rtsp://h:8554/cam/")[0].control_url == (
        "rtsp://h:8554/x/y"
    )
    # A camera echoing the credentials in its control URL does not get them back on the wire.
    assert parse_sdp(video + "a=control:rtsp://u:p@h/cam/t1\r\n", "rtsp://h/cam/")[
        0
    ].control_url == ("rtsp://h/cam/t1")


def test_parse_sdp_session_level_control_applies_to_media_without_one() -> None:
    sdp = (
        "v=0\ns=x\na=control:rtsp://h/agg/\n"  # bare LF line ends, as some cameras send
        "m=video 0 RTP/AVP 96\na=rtpmap:96 H264/90000\n"
        "m=video 0 RTP/AVP 97\na=rtpmap:97 H265/90000\na=control:own\n"
    )
    first, second = parse_sdp(sdp, "rtsp://h/agg")
    assert first.control_url == "rtsp://h/agg/"
    assert second.control_url == "rtsp://h/agg/own"
    assert parse_sdp("v=0\r\nm=audio 0 RTP/AVP 0\r\n", "rtsp://h/x") == []


def test_digest_response_matches_rfc_2617_worked_example() -> None:
    assert (
        digest_response(
            "Mufasa",
            "Circle Of Life",
            "testrealm@host.com",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "GET",
            "/dir/index.html",
            qop="auth",
            nc="00000001",
            cnonce="0a4f113b",
        )
        == "6629fae49393a05397450978507c4ef1"
    )
    # The same through the challenge parser and the header the client sends.
    challenge = (
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    auth = _choose_auth(_parse_challenges([challenge]), "Mufasa", "Circle Of Life")
    assert auth is not None and auth.scheme == "digest"
    auth.cnonce = "0a4f113b"
    header = auth.header("GET", "/dir/index.html")
    assert 'response="6629fae49393a05397450978507c4ef1"' in header
    assert 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in header
    assert "qop=auth, nc=00000001, " in header
    assert "Circle Of Life" not in repr(auth)


def _cseq(request: bytes) -> int:
    found = re.search(rb"\r\nCSeq: (\d+)\r\n", request)
    assert found is not None
    return int(found.group(1))
