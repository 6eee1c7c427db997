"""Keeping camera credentials out of logs, errors and API responses."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, urlsplit, urlunsplit

# Greedy up to the last '@' before the path: a password may itself contain '@'.
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s'\"]*)@")
_SECRET_QUERY = re.compile(r"(?i)((?:password|passwd|pwd|token|auth|key)=)[^&\s'\"]*")


def redact_url(url: str) -> str:
    """``rtsp://admin:secret@host/x`` → ``rtsp://***@host/x``; query secrets masked too."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = _SECRET_QUERY.sub(r"\1***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask URL credentials inside free text (e.g. an FFmpeg error message), and any of
    ``secrets`` (a camera's password, raw and percent-encoded) wherever they appear."""
    text = _USERINFO.sub(lambda m: m.group("scheme") + "***@", text)
    text = _SECRET_QUERY.sub(r"\1***", text)
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def secret_forms(secret: str | None) -> set[str]:
    """The ways a password can appear in text: as typed and percent-encoded in a URL."""
    if not secret:
        return set()
    return {secret, quote(secret, safe=""), quote(secret, safe=":")}
