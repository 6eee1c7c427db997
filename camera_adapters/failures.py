"""Why a camera session ended, in words an integrator can act on.

FFmpeg reports most network trouble during an RTSP open as "Invalid data found when processing
input": a camera that accepts the connection and then says nothing, a port that answers with
something that is not RTSP, and a session whose video never arrives all look the same. When an
open fails that way, :func:`diagnose_rtsp` asks the server one plain ``OPTIONS`` question on a
fresh connection, so the health page can say which of those it was. The extra connection is
made only after a failure, never on the normal path.
"""

from __future__ import annotations

import errno
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import av

from camera_adapters.redact import redact_url

if TYPE_CHECKING:
    from camera_adapters.rtsp_handshake import RtspHandshakeError

EndKind = Literal["stopped", "ended", "closed", "stalled", "auth", "error"]


@dataclass(frozen=True)
class SessionEnd:
    """How one connection to a camera ended.

    ``stalled``: the camera stopped sending (or never started) while the connection stayed up;
    ``auth``: it refused the credentials; ``closed``: it ended the stream; ``error``: anything
    else (refused, unreachable, not a video stream); ``ended``: a file source reached its end;
    ``stopped``: we were asked to stop.
    """

    kind: EndKind
    message: str | None = None
    delivered: bool = False  # whether this session handed on at least one frame


ServerReply = Literal["refused", "unreachable", "silent", "rtsp", "not_rtsp"]


@dataclass(frozen=True)
class RtspDiagnosis:
    reply: ServerReply
    detail: str  # e.g. the first bytes of a non-RTSP answer, or the socket error


def diagnose_rtsp(url: str, timeout: float = 2.0) -> RtspDiagnosis:
    """Ask the server behind ``url`` one unauthenticated ``OPTIONS`` and judge the answer."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 554
    target = f"rtsp://{host}:{port}{parts.path or '/'}"
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        return RtspDiagnosis("refused", "connection refused")
    except OSError as error:
        return RtspDiagnosis("unreachable", error.strerror or str(error))
    with sock:
        try:
            sock.sendall(f"OPTIONS {target} RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode())
            deadline = time.monotonic() + timeout
            data = b""
            while len(data) < 9 and time.monotonic() < deadline:
                sock.settimeout(max(0.05, deadline - time.monotonic()))
                chunk = sock.recv(64)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            pass
        except OSError as error:
            return RtspDiagnosis("unreachable", error.strerror or str(error))
    if not data:
        return RtspDiagnosis("silent", f"nothing within {timeout:g} s")
    if data.startswith(b"RTSP/"):
        return RtspDiagnosis("rtsp", data.split(b"\r\n", 1)[0].decode("latin-1"))
    return RtspDiagnosis("not_rtsp", printable(data[:16]))


def printable(data: bytes) -> str:
    return "".join(chr(b) if 32 <= b < 127 else f"\\x{b:02x}" for b in data)


def is_auth_error(error: BaseException) -> bool:
    """The camera refused the credentials (RTSP 401 / 403).

    Not ``PermissionError``: EPERM / EACCES on a network socket come from this machine (a
    firewall rule, a limit on connections), not from the camera, and must be retried with the
    usual backoff rather than the slow retry meant to spare a camera's account lockout.
    """
    return isinstance(error, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError)


def _is_timeout(error: BaseException) -> bool:
    return isinstance(error, av.error.ExitError | TimeoutError) or (
        isinstance(error, OSError) and error.errno == errno.ETIMEDOUT
    )


def explain_open_failure(
    error: BaseException, url: str, *, elapsed: float, timeout: float, is_file: bool
) -> SessionEnd:
    """Turn an exception from opening a stream into a SessionEnd with a clear message."""
    shown = redact_url(url)
    if is_file:
        if isinstance(error, FileNotFoundError | av.error.FileNotFoundError):
            return SessionEnd("error", f"video file not found: {shown}")
        return SessionEnd("error", f"cannot read {shown} as a video: {_reason(error)}")
    where = host_port(url)
    if is_auth_error(error):
        return _rejected_credentials(where, _reason(error))
    if isinstance(error, av.error.HTTPNotFoundError):
        return _no_stream_at(where, url)
    if isinstance(error, ConnectionRefusedError) or (
        isinstance(error, OSError) and error.errno == errno.ECONNREFUSED
    ):
        return _refused(where)
    if isinstance(error, OSError) and error.errno in (errno.EPERM, errno.EACCES):
        return SessionEnd(
            "error",
            f"this machine refused the connection to {where} ({_reason(error)}): a local "
            "firewall rule or a limit on open connections",
        )
    if isinstance(error, OSError) and error.errno in (
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENOENT,
    ):
        return SessionEnd("error", f"cannot reach {where}: {_reason(error)}")
    timed_out = _is_timeout(error) or elapsed >= timeout * 0.9
    if timed_out or isinstance(error, av.error.InvalidDataError):
        diagnosed = _diagnosed(url, where, elapsed=elapsed, timeout=timeout, timed_out=timed_out)
        if diagnosed is not None:
            return diagnosed
    return SessionEnd("error", f"cannot open the stream at {shown}: {_reason(error)}")


def explain_handshake_failure(
    error: RtspHandshakeError, url: str, *, elapsed: float, timeout: float
) -> SessionEnd:
    """The native RTSP client's failures in the same words as FFmpeg's (above)."""
    where = host_port(url)
    status = f"{error.status} from the camera" if error.status else str(error)
    if error.kind == "auth":
        return _rejected_credentials(where, status)
    if error.kind == "not_found":
        return _no_stream_at(where, url)
    if error.kind == "refused":
        return _refused(where)
    if error.kind == "unreachable":
        return SessionEnd("error", f"cannot reach {where}: {error}")
    timed_out = error.kind == "timeout"
    if error.status is None:  # no RTSP reply at all: ask the server what it is
        diagnosed = _diagnosed(url, where, elapsed=elapsed, timeout=timeout, timed_out=timed_out)
        if diagnosed is not None:
            return diagnosed
    return SessionEnd("stalled" if timed_out else "error", f"{where}: {error}")


def _rejected_credentials(where: str, reason: str) -> SessionEnd:
    return SessionEnd(
        "auth",
        f"{where} rejected the credentials ({reason}): check the camera's username and password",
    )


def _no_stream_at(where: str, url: str) -> SessionEnd:
    return SessionEnd(
        "error",
        f"{where} has no stream at {urlsplit(url).path or '/'} (404 Not Found): check the "
        "URL's path (the camera's documentation or `sharpeyes cameras probe` lists it)",
    )


def _refused(where: str) -> SessionEnd:
    return SessionEnd(
        "error",
        f"connection refused by {where}: the camera or its RTSP service is down, or the port "
        "is wrong",
    )


def _diagnosed(
    url: str, where: str, *, elapsed: float, timeout: float, timed_out: bool
) -> SessionEnd | None:
    """An open that timed out or got nonsense, told apart by one plain OPTIONS question
    (RTSP only); None when it did not time out and the answer says nothing more."""
    if url.lower().startswith("rtsp://"):
        diagnosis = diagnose_rtsp(url, timeout=min(2.0, max(0.5, timeout / 2)))
        if diagnosis.reply == "silent":
            return SessionEnd(
                "stalled",
                f"{where} accepted the connection but sent nothing for {elapsed:.1f} s "
                "(a hung camera or a firewall that swallows the stream)",
            )
        if diagnosis.reply == "not_rtsp":
            return SessionEnd(
                "error",
                f"{where} answered with data that is not RTSP (first bytes: "
                f"'{diagnosis.detail}'): check that this is the camera's RTSP port",
            )
        if diagnosis.reply == "refused":
            return SessionEnd("error", f"connection refused by {where} (it went away)")
        if diagnosis.reply == "rtsp" and timed_out:
            return SessionEnd(
                "stalled",
                f"{where} answers RTSP but no video arrived within {elapsed:.1f} s of opening "
                "the session",
            )
    if timed_out:
        return SessionEnd("stalled", f"no answer from {where} within {elapsed:.1f} s")
    return None


def explain_read_failure(error: BaseException, url: str, *, silence_s: float) -> SessionEnd:
    where = host_port(url)
    if _is_timeout(error):
        return SessionEnd("stalled", f"no video data from {where} for {silence_s:.1f} s")
    if is_auth_error(error):
        return SessionEnd("auth", f"{where} revoked the session's credentials")
    return SessionEnd("error", f"the stream from {where} failed: {_reason(error)}")


def host_port(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return redact_url(url)
    if not host:
        return redact_url(url)
    scheme = parts.scheme.lower()
    default = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443, "rtmp": 1935}.get(scheme)
    return f"{scheme}://{host}:{port or default}"


def _reason(error: BaseException) -> str:
    """The error's own words without the URL FFmpeg appends (it may carry credentials)."""
    if isinstance(error, av.FFmpegError):
        return error.strerror or type(error).__name__
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error)
    return text if text else type(error).__name__
