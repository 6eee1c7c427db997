"""The set-up half of a native RTSP-over-TCP client: OPTIONS, DESCRIBE, SETUP, PLAY.

Why a client of our own: FFmpeg gives every camera its own demuxer thread and buffers, and its
errors during an open mostly read "Invalid data found when processing input". This module does
the handshake itself so that a shared selector thread (another module) can read the
interleaved RTP of many cameras, and so a failed open says *why* it failed in a word the caller
can act on (:class:`RtspHandshakeError.kind`). It deliberately does only the common case —
plain ``rtsp://``, H.264/H.265 video, TCP interleaved transport, Basic or Digest-MD5 auth — and
raises ``kind="unsupported"`` for anything else, so the caller falls back to FFmpeg rather
than half-supporting an exotic camera.

Everything is blocking with a per-exchange deadline: the handshake runs once per connection on
a worker, not in the selector thread, and a hung camera must not hold it longer than
``timeout_s`` per step. Credentials never appear in messages (URLs go through
:func:`~camera_adapters.redact.redact_url`, and the user name is not shown either).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from camera_adapters.failures import host_port, printable
from camera_adapters.redact import redact_url

HandshakeFailure = Literal[
    "auth", "refused", "unreachable", "timeout", "not_found", "unsupported", "protocol"
]

MAX_HEADER_BYTES = 64 * 1024  # a reply head larger than this is not a camera talking RTSP
MAX_BODY_BYTES = 1024 * 1024  # an SDP is a few hundred bytes; a megabyte is already absurd
DEFAULT_SESSION_TIMEOUT_S = 60.0  # RFC 2326 §12.37: the default when Session has no timeout
SUPPORTED_ENCODINGS = ("H264", "H265")
# Static RTP payload types (RFC 3551) that a video m= line may use without an rtpmap.
_STATIC_VIDEO = {26: "JPEG", 31: "H261", 32: "MPV", 33: "MP2T", 34: "H263"}
_STATUS_LINE = re.compile(r"RTSP/(\d+)\.(\d+) +(\d{3})(?: +(.*))?$")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_AUTH_PARAM = re.compile(
    r"""\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^,\s]*))?\s*,?"""
)


class RtspHandshakeError(Exception):
    """Why an RTSP open failed; ``kind`` picks the caller's reaction, ``message`` is for people.

    ``auth``: the camera rejected the credentials, or wants some and the URL has none (401),
    or forbids access (403). ``refused``: nothing listens on the port. ``unreachable``: any
    other failure to connect (no route, DNS). ``timeout``: no complete reply within
    ``timeout_s``. ``not_found``: 404, a wrong path. ``unsupported``: something this client
    does not do (rtsps://, no H.264/H.265 track, no TCP interleaving, an auth scheme other
    than Basic/Digest-MD5) — the caller falls back to FFmpeg. ``protocol``: a reply that is not
    RTSP or is malformed, or any other 4xx/5xx.
    """

    def __init__(self, kind: HandshakeFailure, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind: HandshakeFailure = kind
        self.message = message
        self.status = status


@dataclass(frozen=True)
class VideoTrack:
    encoding: str  # rtpmap encoding name upper-cased, e.g. "H264", "H265"
    payload_type: int
    clock_rate: int
    control_url: str  # absolute URL for SETUP
    fmtp: dict[str, str]  # a=fmtp parameters for this payload type, keys lower-cased


# --- SDP -------------------------------------------------------------------------------------


def parse_sdp(text: str, base_url: str) -> list[VideoTrack]:
    """The video media sections (m=video) of an SDP, in order. Session-level a=control applies
    when media has none."""
    return _parse_sdp(text, base_url)[1]


@dataclass
class _Media:
    kind: str
    formats: list[int]
    rtpmap: dict[int, tuple[str, int]] = field(default_factory=dict)
    fmtp: dict[int, dict[str, str]] = field(default_factory=dict)
    control: str | None = None


def _parse_sdp(text: str, base_url: str) -> tuple[str, list[VideoTrack]]:
    """The aggregate (session) control URL and the video tracks.

    The aggregate URL is where PLAY, keepalives and TEARDOWN go: the session-level a=control
    resolved against the base, or the base itself when there is none.
    """
    session_control: str | None = None
    media: list[_Media] = []
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "m":
            fields = value.split()
            formats = [int(f) for f in fields[3:] if f.isdigit()]
            media.append(_Media(fields[0].lower() if fields else "", formats))
        elif kind == "a":
            name, _, rest = value.partition(":")
            name = name.strip().lower()
            if name == "control":
                if media:
                    media[-1].control = rest.strip()
                else:
                    session_control = rest.strip()
            elif media and name in ("rtpmap", "fmtp"):
                pt_text, _, params = rest.strip().partition(" ")
                if not pt_text.isdigit():
                    continue
                if name == "rtpmap":
                    encoding, _, clock = params.strip().partition("/")
                    clock_text = clock.partition("/")[0].strip()
                    rate = int(clock_text) if clock_text.isdigit() else 0
                    media[-1].rtpmap[int(pt_text)] = (encoding.strip().upper(), rate)
                else:
                    media[-1].fmtp[int(pt_text)] = _parse_fmtp(params)
    session_url = _resolve_control(base_url, session_control)
    tracks = []
    for section in media:
        if section.kind != "video" or not section.formats:
            continue
        encodings = {pt: _encoding(section, pt) for pt in section.formats}
        # A section may offer several payload types; the first H.264/H.265 one is what we
        # would SETUP, else the first (the sender's preference) describes the section.
        chosen = next(
            (pt for pt in section.formats if encodings[pt][0] in SUPPORTED_ENCODINGS),
            section.formats[0],
        )
        encoding, clock_rate = encodings[chosen]
        control = section.control if section.control is not None else session_control
        tracks.append(
            VideoTrack(
                encoding=encoding,
                payload_type=chosen,
                clock_rate=clock_rate,
                control_url=_resolve_control(base_url, control),
                fmtp=dict(section.fmtp.get(chosen, {})),
            )
        )
    return session_url, tracks


def _encoding(section: _Media, payload_type: int) -> tuple[str, int]:
    if payload_type in section.rtpmap:
        return section.rtpmap[payload_type]
    if payload_type in _STATIC_VIDEO:
        return _STATIC_VIDEO[payload_type], 90000
    return "", 0


def _parse_fmtp(params: str) -> dict[str, str]:
    result = {}
    for item in params.split(";"):
        key, _, value = item.strip().partition("=")  # sprop values end in base64 '=' padding
        if key.strip():
            result[key.strip().lower()] = value.strip()
    return result


def _resolve_control(base_url: str, control: str | None) -> str:
    """An a=control value as an absolute URL (RFC 2326 C.1.1), without any userinfo.

    A relative control is appended to the base with one '/' between, as FFmpeg and live555 do,
    rather than by RFC 3986 merging: cameras send ``Content-Base: rtsp://h/cam`` (no slash) or
    a base with a query (``...?channel=1``) and expect ``.../cam/trackID=1`` resp.
    ``...?channel=1/trackID=1``; merging would drop the last path segment. A control that is
    an absolute URL or an absolute path is taken as such.
    """
    if control is None or control in ("", "*"):
        return _strip_userinfo(base_url)
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", control):
        return _strip_userinfo(control)
    if control.startswith("/"):
        return _strip_userinfo(urljoin(base_url, control))
    joiner = "" if base_url.endswith("/") else "/"
    return _strip_userinfo(base_url + joiner + control)


def _strip_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# --- authentication --------------------------------------------------------------------------


def digest_response(
    username: str,
    password: str,
    realm: str,
    nonce: str,
    method: str,
    uri: str,
    *,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
) -> str:
    """The RFC 2617 §3.2.2 request-digest for algorithm MD5 (qop ``auth`` or none)."""
    ha1 = _md5(f"{username}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    if qop:
        return _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _md5(f"{ha1}:{nonce}:{ha2}")


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def _parse_challenges(values: list[str]) -> list[tuple[str, dict[str, str]]]:
    """WWW-Authenticate values as (scheme lower-cased, params with lower-cased names).

    One header may carry several challenges (``Digest realm=.., nonce=.., Basic realm=..``)
    and the header may be repeated; a bare token starts a new challenge.
    """
    challenges: list[tuple[str, dict[str, str]]] = []
    for value in values:
        position = 0
        while position < len(value):
            match = _AUTH_PARAM.match(value, position)
            if match is None or match.end() == position:
                break
            position = match.end()
            name, raw = match.group(1), match.group(2)
            if raw is None:
                challenges.append((name.lower(), {}))
            elif challenges:
                if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
                    raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
                challenges[-1][1][name.lower()] = raw
    return challenges


@dataclass
class _Auth:
    """Credentials and the scheme the camera asked for, reused for every later request."""

    scheme: Literal["basic", "digest"]
    username: str = field(repr=False)
    password: str = field(repr=False)
    realm: str = ""
    nonce: str = ""
    opaque: str | None = None
    algorithm: str | None = None  # echoed as the server spelled it
    qop: str | None = None  # "auth" or None
    nonce_count: int = 0
    cnonce: str = field(default_factory=lambda: secrets.token_hex(8))

    def header(self, method: str, uri: str) -> str:
        if self.scheme == "basic":
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return f"Basic {token}"
        nc = None
        if self.qop:
            self.nonce_count += 1
            nc = f"{self.nonce_count:08x}"
        response = digest_response(
            self.username,
            self.password,
            self.realm,
            self.nonce,
            method,
            uri,
            qop=self.qop,
            nc=nc,
            cnonce=self.cnonce if self.qop else None,
        )
        parts = [
            f'username="{_quote(self.username)}"',
            f'realm="{_quote(self.realm)}"',
            f'nonce="{_quote(self.nonce)}"',
            f'uri="{_quote(uri)}"',
            f'response="{response}"',
        ]
        if self.algorithm:
            parts.append(f"algorithm={self.algorithm}")
        if self.opaque is not None:
            parts.append(f'opaque="{_quote(self.opaque)}"')
        if self.qop:
            parts += [f"qop={self.qop}", f"nc={nc}", f'cnonce="{self.cnonce}"']
        return "Digest " + ", ".join(parts)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _choose_auth(
    challenges: list[tuple[str, dict[str, str]]], username: str, password: str
) -> _Auth | None:
    """Digest-MD5 when offered (it does not send the password), else Basic, else None."""
    for scheme, params in challenges:
        if scheme != "digest" or "nonce" not in params:
            continue
        algorithm = params.get("algorithm")
        if algorithm is not None and algorithm.upper() != "MD5":
            continue
        qop = None
        if "qop" in params:
            offered = {q.strip().lower() for q in params["qop"].split(",")}
            if "auth" not in offered:
                continue  # auth-int only
            qop = "auth"
        return _Auth(
            "digest",
            username,
            password,
            realm=params.get("realm", ""),
            nonce=params["nonce"],
            opaque=params.get("opaque"),
            algorithm=algorithm,
            qop=qop,
        )
    if any(scheme == "basic" for scheme, _ in challenges):
        return _Auth("basic", username, password)
    return None


# --- the session handed to the reader --------------------------------------------------------


@dataclass
class PlayingSession:
    """A camera that has answered PLAY: the socket now carries interleaved RTP.

    The caller owns ``sock`` and must send :meth:`keepalive_request` every ``timeout_s / 2``
    (the camera drops silent sessions) and :meth:`teardown_request` before closing. Their
    replies arrive among the interleaved frames; reading them is the caller's job.
    """

    sock: socket.socket  # connected, blocking, with the handshake timeout set
    leftover: bytes  # bytes read after the PLAY reply: the start of the interleaved stream
    track: VideoTrack
    session_id: str
    timeout_s: float  # from the Session header ";timeout=N" (default 60)
    rtp_channel: int  # interleaved channel of RTP (from the SETUP reply, normally 0)
    url: str  # request URL with credentials removed
    # Where PLAY went (the aggregate control URL): keepalives and TEARDOWN go there too.
    control_url: str = field(default="", kw_only=True)
    keepalive_method: str = field(default="OPTIONS", kw_only=True)
    user_agent: str = field(default="SharpEyes", kw_only=True)
    _next_cseq: int = field(default=1, kw_only=True, repr=False)
    _auth: _Auth | None = field(default=None, kw_only=True, repr=False)

    def keepalive_request(self) -> bytes:
        """Next keepalive: GET_PARAMETER if the OPTIONS reply's Public header listed it, else
        OPTIONS; with Session, increasing CSeq, and the Authorization header recomputed for this
        method/URI when auth is in use."""
        return self._request(self.keepalive_method)

    def teardown_request(self) -> bytes:
        """TEARDOWN of the session (ends it on the camera at once instead of at its timeout)."""
        return self._request("TEARDOWN")

    def _request(self, method: str) -> bytes:
        uri = self.control_url or self.url
        cseq = self._next_cseq
        self._next_cseq += 1
        headers = {"Session": self.session_id}
        return _format_request(method, uri, cseq, self.user_agent, headers, self._auth)


def _format_request(
    method: str,
    uri: str,
    cseq: int,
    user_agent: str,
    headers: dict[str, str],
    auth: _Auth | None,
) -> bytes:
    lines = [f"{method} {uri} RTSP/1.0", f"CSeq: {cseq}", f"User-Agent: {user_agent}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if auth is not None:
        lines.append(f"Authorization: {auth.header(method, uri)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


# --- the wire --------------------------------------------------------------------------------


@dataclass
class _Reply:
    status: int
    reason: str
    headers: list[tuple[str, str]]  # names lower-cased, in order, repeats kept
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    @property
    def status_line(self) -> str:
        return f"{self.status} {self.reason}".strip()


@dataclass(frozen=True)
class _Target:
    """A URL split into what goes on the wire and what must not (the credentials)."""

    url: str  # without userinfo: the request URI
    host: str
    port: int
    username: str | None = field(default=None, repr=False)
    password: str = field(default="", repr=False)

    @property
    def shown(self) -> str:
        return redact_url(self.url)


def _parse_target(url: str, inherited: _Target | None = None) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise RtspHandshakeError(
            "protocol", f"{redact_url(url)} is not a valid URL ({error})"
        ) from None
    scheme = parts.scheme.lower()
    if scheme == "rtsps":
        raise RtspHandshakeError(
            "unsupported", f"{redact_url(url)}: RTSP over TLS (rtsps://) is not handled natively"
        )
    if scheme != "rtsp":
        raise RtspHandshakeError(
            "unsupported", f"{redact_url(url)}: only rtsp:// URLs are handled natively"
        )
    if not parts.hostname:
        raise RtspHandshakeError("unreachable", f"{redact_url(url)} has no host")
    bare = _strip_userinfo(url)
    if parts.username is not None or parts.password is not None:
        return _Target(
            bare,
            parts.hostname,
            port or 554,
            unquote(parts.username or ""),
            unquote(parts.password or ""),
        )
    if inherited is not None:  # a redirect keeps the credentials, as FFmpeg does
        return _Target(bare, parts.hostname, port or 554, inherited.username, inherited.password)
    return _Target(bare, parts.hostname, port or 554)


class _Connection:
    """One TCP connection: numbered requests, replies read with a deadline, auth retries."""

    def __init__(self, target: _Target, timeout_s: float, user_agent: str) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self.user_agent = user_agent
        self.where = host_port(target.url)
        self.cseq = 0
        self.auth: _Auth | None = None
        self.buffer = bytearray()
        self.interleaved = bytearray()  # '$' frames that arrived before a reply (after PLAY)
        try:
            self.sock = socket.create_connection((target.host, target.port), timeout=timeout_s)
        except ConnectionRefusedError:
            raise RtspHandshakeError(
                "refused",
                f"connection refused by {self.where}: the camera or its RTSP service is down, "
                "or the port is wrong",
            ) from None
        except TimeoutError:
            raise RtspHandshakeError(
                "timeout",
                f"no answer to the connection attempt to {self.where} within {timeout_s:g} s "
                "(the camera is off, or a firewall drops the traffic)",
            ) from None
        except OSError as error:
            raise RtspHandshakeError(
                "unreachable", f"cannot reach {self.where}: {error.strerror or error}"
            ) from None

    def close(self) -> None:
        self.sock.close()

    def request(self, method: str, uri: str, headers: dict[str, str] | None = None) -> _Reply:
        """Send ``method`` and return its reply; answer one 401 by retrying with credentials.

        Raises for 401 (after the retry) and 403; other statuses are the caller's to judge.
        """
        headers = headers or {}
        reply = self._exchange(method, uri, headers)
        if reply.status != 401:
            if reply.status == 403:
                raise self.failure("auth", method, uri, reply, "access forbidden for this user")
            return reply
        if self.target.username is None:
            raise self.failure(
                "auth",
                method,
                uri,
                reply,
                "the camera wants credentials and the URL has none: add user:password@",
            )
        challenges = _parse_challenges(reply.all("www-authenticate"))
        auth = _choose_auth(challenges, self.target.username, self.target.password)
        if auth is None:
            offered = ", ".join(sorted({scheme for scheme, _ in challenges})) or "none"
            raise self.failure(
                "unsupported",
                method,
                uri,
                reply,
                f"authentication scheme(s) offered: {offered}; only Basic and Digest (MD5) "
                "are handled natively",
            )
        self.auth = auth
        reply = self._exchange(method, uri, headers)
        if reply.status in (401, 403):
            raise self.failure(
                "auth",
                method,
                uri,
                reply,
                "the camera rejected the credentials: check its username and password",
            )
        return reply

    def _exchange(self, method: str, uri: str, headers: dict[str, str]) -> _Reply:
        self.cseq += 1
        data = _format_request(method, uri, self.cseq, self.user_agent, headers, self.auth)
        deadline = time.monotonic() + self.timeout_s
        try:
            self.sock.settimeout(self.timeout_s)
            self.sock.sendall(data)
        except TimeoutError:
            raise self._timeout(method, uri) from None
        except OSError as error:
            raise self._broken(method, uri, error) from None
        reply = self._read_reply(method, uri, deadline)
        cseq = (reply.header("cseq") or "").strip()
        if cseq != str(self.cseq):
            raise self.failure(
                "protocol",
                method,
                uri,
                reply,
                f"the reply's CSeq is {cseq or 'missing'}, expected {self.cseq}",
            )
        return reply

    def _read_reply(self, method: str, uri: str, deadline: float) -> _Reply:
        while True:
            buffer = self.buffer
            if buffer[:1] == b"$":
                # Interleaved data ahead of the reply (a camera that starts streaming before
                # it answers PLAY): keep it, in order, for the reader.
                if len(buffer) >= 4:
                    end = 4 + int.from_bytes(buffer[2:4], "big")
                    if len(buffer) >= end:
                        self.interleaved += buffer[:end]
                        del buffer[:end]
                        continue
            elif buffer and not b"RTSP/".startswith(bytes(buffer[:5])):
                raise RtspHandshakeError(
                    "protocol",
                    f"{method} {redact_url(uri)}: the answer is not RTSP "
                    f"(first bytes: '{printable(bytes(buffer[:32]))}'): check that "
                    "this is the camera's RTSP port",
                )
            else:
                found = _HEAD_END.search(buffer)
                if found is None and len(buffer) > MAX_HEADER_BYTES:
                    raise RtspHandshakeError(
                        "protocol",
                        f"{method} {redact_url(uri)}: the reply has no end of "
                        f"headers within {MAX_HEADER_BYTES} bytes",
                    )
                if found is not None:
                    if found.start() > MAX_HEADER_BYTES:
                        raise RtspHandshakeError(
                            "protocol",
                            f"{method} {redact_url(uri)}: the reply headers "
                            f"exceed {MAX_HEADER_BYTES} bytes",
                        )
                    reply = self._parse_head(method, uri, bytes(buffer[: found.start()]))
                    length = self._content_length(method, uri, reply)
                    end = found.end() + length
                    if len(buffer) >= end:
                        reply.body = bytes(buffer[found.end() : end])
                        del buffer[:end]
                        return reply
            self._receive(method, uri, deadline)

    def _receive(self, method: str, uri: str, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._timeout(method, uri)
        try:
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise self._timeout(method, uri) from None
        except OSError as error:
            raise self._broken(method, uri, error) from None
        if not chunk:
            raise RtspHandshakeError(
                "protocol",
                f"{method} {redact_url(uri)}: the camera closed the connection without a "
                "complete reply",
            )
        self.buffer += chunk

    def _parse_head(self, method: str, uri: str, head: bytes) -> _Reply:
        lines = head.decode("utf-8", errors="replace").splitlines()
        matched = _STATUS_LINE.match(lines[0].strip()) if lines else None
        if matched is None:
            raise RtspHandshakeError(
                "protocol",
                f"{method} {redact_url(uri)}: malformed status line "
                f"'{printable(head.splitlines()[0][:80] if head else b'')}'",
            )
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and headers:  # an obsolete folded continuation
                name, value = headers[-1]
                headers[-1] = (name, f"{value} {line.strip()}")
                continue
            name, colon, value = line.partition(":")
            if not colon or not name.strip():
                raise RtspHandshakeError(
                    "protocol",
                    f"{method} {redact_url(uri)}: malformed header line "
                    f"'{printable(line.encode()[:80])}'",
                )
            headers.append((name.strip().lower(), value.strip()))
        reason = printable((matched.group(4) or "").strip().encode()[:80])
        return _Reply(int(matched.group(3)), reason, headers, b"")

    def _content_length(self, method: str, uri: str, reply: _Reply) -> int:
        text = reply.header("content-length")
        if text is None:
            return 0
        if not text.strip().isdigit() or int(text) > MAX_BODY_BYTES:
            raise self.failure(
                "protocol",
                method,
                uri,
                reply,
                f"unusable Content-Length '{printable(text.encode()[:20])}'",
            )
        return int(text)

    def _timeout(self, method: str, uri: str) -> RtspHandshakeError:
        return RtspHandshakeError(
            "timeout",
            f"{method} {redact_url(uri)}: no complete reply within "
            f"{self.timeout_s:g} s (a hung camera, or a firewall that swallows the traffic)",
        )

    def _broken(self, method: str, uri: str, error: OSError) -> RtspHandshakeError:
        return RtspHandshakeError(
            "protocol",
            f"{method} {redact_url(uri)}: the connection failed: {error.strerror or error}",
        )

    def failure(
        self, kind: HandshakeFailure, method: str, uri: str, reply: _Reply, advice: str
    ) -> RtspHandshakeError:
        return RtspHandshakeError(
            kind,
            f"{method} {redact_url(uri)}: the camera answered '{reply.status_line}': {advice}",
            reply.status,
        )


# --- the handshake ---------------------------------------------------------------------------


def open_rtsp(
    url: str, *, timeout_s: float = 10.0, user_agent: str = "SharpEyes"
) -> PlayingSession:
    """OPTIONS, DESCRIBE (Accept: application/sdp), SETUP first H264/H265 video track with
    Transport: RTP/AVP/TCP;unicast;interleaved=0-1, PLAY (Range: npt=0.000-). Credentials come
    from the URL userinfo (percent-decoded); on 401 use the WWW-Authenticate challenge: Digest
    (MD5, qop=auth with nc/cnonce or no qop, opaque echoed; prefer Digest if both offered) or
    Basic; retry that request once with credentials, and reuse the scheme for every later
    request. Follow one 301/302 redirect (Location) on DESCRIBE.
    timeout_s bounds each request/reply exchange and the connect. rtsps:// -> unsupported. Any
    failure closes the socket."""
    target = _parse_target(url)
    for redirects_left in (1, 0):
        connection = _Connection(target, timeout_s, user_agent)
        try:
            outcome = _handshake(connection, redirects_left > 0)
        except BaseException:
            connection.close()
            raise
        if isinstance(outcome, PlayingSession):
            return outcome
        connection.close()
        target = outcome
    raise AssertionError("unreachable: the second pass never redirects")


def _handshake(connection: _Connection, may_redirect: bool) -> PlayingSession | _Target:
    """The four requests on one connection; a redirect target when DESCRIBE redirects."""
    target = connection.target
    options = connection.request("OPTIONS", target.url)
    _expect_ok(connection, "OPTIONS", target.url, options)
    public = {m.strip().upper() for m in (options.header("public") or "").split(",")}

    describe = connection.request("DESCRIBE", target.url, {"Accept": "application/sdp"})
    if describe.status in (301, 302):
        location = describe.header("location")
        if not may_redirect or not location:
            why = "a second redirect" if location else "a redirect without Location"
            raise connection.failure(
                "protocol", "DESCRIBE", target.url, describe, f"{why}; giving up"
            )
        return _parse_target(urljoin(target.url, location), target)
    _expect_ok(connection, "DESCRIBE", target.url, describe)
    if not describe.body.strip():
        raise connection.failure(
            "protocol", "DESCRIBE", target.url, describe, "no SDP in the reply"
        )
    base = _content_base(target.url, describe)
    play_url, tracks = _parse_sdp(describe.body.decode("utf-8", errors="replace"), base)
    track = next((t for t in tracks if t.encoding in SUPPORTED_ENCODINGS), None)
    if track is None:
        found = ", ".join(t.encoding or f"payload type {t.payload_type}" for t in tracks)
        raise RtspHandshakeError(
            "unsupported",
            f"DESCRIBE {target.shown}: the camera offers no H.264/H.265 video "
            f"(video tracks: {found or 'none'})",
            describe.status,
        )

    setup = connection.request(
        "SETUP", track.control_url, {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}
    )
    if setup.status == 461:
        raise connection.failure(
            "unsupported",
            "SETUP",
            track.control_url,
            setup,
            "the camera refuses RTP over the RTSP connection (TCP interleaved)",
        )
    _expect_ok(connection, "SETUP", track.control_url, setup)
    session_id, session_timeout = _parse_session(connection, track.control_url, setup)
    rtp_channel = _parse_transport(connection, track.control_url, setup)

    play = connection.request("PLAY", play_url, {"Session": session_id, "Range": "npt=0.000-"})
    _expect_ok(connection, "PLAY", play_url, play)

    connection.sock.settimeout(connection.timeout_s)
    leftover = bytes(connection.interleaved) + bytes(connection.buffer)
    return PlayingSession(
        sock=connection.sock,
        leftover=leftover,
        track=track,
        session_id=session_id,
        timeout_s=session_timeout,
        rtp_channel=rtp_channel,
        url=target.url,
        control_url=play_url,
        keepalive_method="GET_PARAMETER" if "GET_PARAMETER" in public else "OPTIONS",
        user_agent=connection.user_agent,
        _next_cseq=connection.cseq + 1,
        _auth=connection.auth,
    )


def _expect_ok(connection: _Connection, method: str, uri: str, reply: _Reply) -> None:
    if 200 <= reply.status < 300:
        return
    if reply.status == 404:
        raise connection.failure(
            "not_found",
            method,
            uri,
            reply,
            "no stream at this path: check the URL's path (the camera's documentation or "
            "`sharpeyes cameras probe` lists it)",
        )
    raise connection.failure("protocol", method, uri, reply, "the camera refused the request")


def _content_base(request_url: str, describe: _Reply) -> str:
    """RFC 2326 C.1.1: Content-Base, else Content-Location, else the request URL."""
    for name in ("content-base", "content-location"):
        value = (describe.header(name) or "").strip()
        if value:
            return urljoin(request_url, value)
    return request_url


def _parse_session(connection: _Connection, uri: str, setup: _Reply) -> tuple[str, float]:
    value = setup.header("session")
    session_id, *params = (value or "").split(";")
    if not session_id.strip():
        raise connection.failure("protocol", "SETUP", uri, setup, "the reply has no Session header")
    timeout = DEFAULT_SESSION_TIMEOUT_S
    for param in params:
        name, _, number = param.partition("=")
        if name.strip().lower() == "timeout":
            try:
                timeout = float(number)
            except ValueError:
                continue
            if timeout <= 0:
                timeout = DEFAULT_SESSION_TIMEOUT_S
    return session_id.strip(), timeout


def _parse_transport(connection: _Connection, uri: str, setup: _Reply) -> int:
    """The RTP channel the camera chose (it may renumber what we asked for)."""
    value = (setup.header("transport") or "").split(",")[0]
    spec, *params = [part.strip() for part in value.split(";")]
    if value and "/TCP" not in spec.upper():
        raise connection.failure(
            "unsupported", "SETUP", uri, setup, f"the camera chose transport '{spec}', not TCP"
        )
    for param in params:
        name, _, channels = param.partition("=")
        if name.strip().lower() == "interleaved":
            first = channels.split("-")[0].strip()
            if not first.isdigit():
                raise connection.failure(
                    "protocol", "SETUP", uri, setup, f"malformed Transport '{value}'"
                )
            return int(first)
    return 0
