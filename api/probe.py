"""The camera connection test: an RTSP DESCRIBE, guarded against server-side request forgery.

The URL comes from a user, so before any packet is sent the scheme must be allowed, the
host is resolved once, and every address it resolves to must be public or inside a
network the operator listed (``api.camera_probe.allowed_networks``); the socket then
connects to that checked address, so a DNS answer that changes between check and use
(rebinding) cannot redirect it. Only RTSP(S) is spoken, with Basic or Digest credentials.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import socket
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

from api.settings import CameraProbeSettings
from camera_adapters.redact import redact_text, redact_url


class ProbeRefused(Exception):
    """The probe will not contact this URL; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ProbeResult:
    ok: bool
    stage: str  # resolve | connect | rtsp | auth | describe | done
    message: str
    url: str  # redacted
    address: str | None = None
    status: int | None = None
    server: str | None = None
    latency_ms: float | None = None
    media: list[str] = field(default_factory=list)


def _blocked(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    return None


def check_target(
    url: str, settings: CameraProbeSettings
) -> tuple[str, int, str, ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """(scheme, port, host, address to connect to) or ProbeRefused with the reason."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ProbeRefused(422, f"the source URL is malformed: {error}") from None
    scheme = parts.scheme.lower()
    if scheme not in settings.schemes:
        allowed = ", ".join(f"{s}://" for s in settings.schemes)
        raise ProbeRefused(
            422, f"the connection test only opens {allowed} URLs, not '{scheme or url}'"
        )
    host = parts.hostname
    if not host:
        raise ProbeRefused(422, f"the source URL {redact_url(url)} has no host")
    port = port or (322 if scheme == "rtsps" else 554)
    return scheme, port, host, check_host(host, port, settings)


def check_host(
    host: str, port: int, settings: CameraProbeSettings, purpose: str = "the connection test"
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Resolve ``host`` once; the address to connect to, or ProbeRefused when any address
    it resolves to is internal and not in ``allowed_networks`` (also used by the ONVIF probe).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise ProbeRefused(422, f"the host '{host}' does not resolve: {error.strerror}") from None
    except (UnicodeError, ValueError):  # e.g. characters no DNS name may hold
        raise ProbeRefused(
            422, f"{host!r} is not a valid host name: use a DNS name or an IP address"
        ) from None
    networks = [ipaddress.ip_network(n, strict=False) for n in settings.allowed_networks]
    addresses = []
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        reason = _blocked(ip)
        if reason and not any(ip in net for net in networks if net.version == ip.version):
            raise ProbeRefused(
                403,
                f"the host '{host}' resolves to {ip}, {reason}: {purpose} does not "
                "reach internal addresses unless their network is listed in "
                "api.camera_probe.allowed_networks",
            )
        addresses.append(ip)
    return addresses[0]


def probe(
    url: str,
    settings: CameraProbeSettings,
    username: str | None = None,
    password: str | None = None,
) -> ProbeResult:
    """Open the stream far enough to know it plays: connect, DESCRIBE, authenticate, SDP."""
    parts = urlsplit(url)
    if parts.username and username is None:
        username, password = unquote(parts.username), unquote(parts.password or "")
    clean = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))
    shown = redact_url(url)
    scheme, port, host, address = check_target(url, settings)
    started = time.monotonic()
    try:
        raw = socket.create_connection((str(address), port), timeout=settings.timeout_s)
    except OSError as error:
        return ProbeResult(
            False,
            "connect",
            f"cannot connect to {host}:{port} ({address}): {error}",
            shown,
            str(address),
        )
    try:
        sock: socket.socket = raw
        if scheme == "rtsps":
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # cameras use self-signed certificates
            sock = context.wrap_socket(raw, server_hostname=host)
        sock.settimeout(settings.timeout_s)
        status, headers, body = _request(sock, clean, 1, None)
        if status == 401:
            challenge = headers.get("www-authenticate", "")
            if username is None:
                return ProbeResult(
                    False,
                    "auth",
                    "the camera asks for credentials: give username and password",
                    shown,
                    str(address),
                    status,
                    headers.get("server"),
                    _ms(started),
                )
            authorization = _authorization(challenge, clean, username, password or "")
            status, headers, body = _request(sock, clean, 2, authorization)
            if status == 401:
                return ProbeResult(
                    False,
                    "auth",
                    "the camera refused the username or password",
                    shown,
                    str(address),
                    status,
                    headers.get("server"),
                    _ms(started),
                )
        if status != 200:
            return ProbeResult(
                False,
                "describe",
                f"the camera answered RTSP {status} to DESCRIBE",
                shown,
                str(address),
                status,
                headers.get("server"),
                _ms(started),
            )
        media = _media(body.decode("utf-8", "replace"))
        return ProbeResult(
            bool(media),
            "done",
            f"the stream answers: {', '.join(media)}" if media else "no media in the SDP",
            shown,
            str(address),
            status,
            headers.get("server"),
            _ms(started),
            media,
        )
    except (OSError, ValueError, ssl.SSLError) as error:
        return ProbeResult(
            False,
            "rtsp",
            f"no valid RTSP answer: {redact_text(str(error)) or type(error).__name__}",
            shown,
            str(address),
            latency_ms=_ms(started),
        )
    finally:
        raw.close()


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def _request(
    sock: socket.socket, url: str, cseq: int, authorization: str | None
) -> tuple[int, dict[str, str], bytes]:
    lines = [
        f"DESCRIBE {url} RTSP/1.0",
        f"CSeq: {cseq}",
        "Accept: application/sdp",
        "User-Agent: SharpEyes-probe/1",
    ]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ValueError("the server closed the connection")
        data += chunk
        if len(data) > 65536:
            raise ValueError("the answer headers are too long")
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    match = re.match(r"RTSP/\d\.\d (\d{3})", status_line)
    if not match:
        raise ValueError(f"not an RTSP answer: {status_line[:60]!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = min(int(headers.get("content-length", "0") or 0), 1 << 20)
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return int(match.group(1)), headers, body[:length]


def _authorization(challenge: str, url: str, username: str, password: str) -> str:
    if challenge.lower().startswith("digest"):
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
        realm, nonce = params.get("realm", ""), params.get("nonce", "")

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1 = md5(f"{username}:{realm}:{password}")
        ha2 = md5(f"DESCRIBE:{url}")
        response = md5(f"{ha1}:{nonce}:{ha2}")
        return (
            f'Digest username="{username}", realm="{realm}", nonce="{nonce}", '
            f'uri="{url}", response="{response}"'
        )
    import base64

    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return f"Basic {token}"


def _media(sdp: str) -> list[str]:
    """'video H264/90000'-style summaries of the SDP's media sections."""
    media: list[str] = []
    current = None
    for line in sdp.splitlines():
        if line.startswith("m="):
            current = line[2:].split(" ")[0]
            media.append(current)
        elif line.startswith("a=rtpmap:") and current and media and media[-1] == current:
            media[-1] = f"{current} {line.split(' ', 1)[1].strip()}"
    return media
