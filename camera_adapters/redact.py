"""Keeping camera credentials out of logs, errors and API responses."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^@/]*)@")
_SECRET_QUERY = re.compile(r"(?i)((?:password|passwd|pwd|token|auth|key)=)[^&\s]*")


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


def redact_text(text: str) -> str:
    """Mask any URL credentials inside free text (e.g. an FFmpeg error message)."""
    text = _USERINFO.sub(lambda m: m.group("scheme") + "***@", text)
    return _SECRET_QUERY.sub(r"\1***", text)
