"""The operators' console: static files (plain ES modules, no build step) at /console.

Served by the API itself, so it is same-origin (no CORS) and works on a closed control-room
network: the page loads nothing from anywhere else, and its Content-Security-Policy makes
the browser refuse to, should a later change try.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"

# Only this origin; images also from blob: (photo previews); the feed's WebSocket is 'self'.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; media-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


class ConsoleFiles(StaticFiles):
    """Static files that browsers revalidate (ETag) on every load, so an upgraded API never
    runs with a stale module beside a new one, with the console's security headers."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message):  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"cache-control", b"no-cache"),
                    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await super().__call__(scope, receive, send_with_headers)


def mount(app: FastAPI, path: str = "/console") -> None:
    """Serve the console at ``path`` and send visitors of ``/`` there."""
    app.mount(path, ConsoleFiles(directory=CONSOLE_DIR, html=True), name="console")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(f"{path}/")
