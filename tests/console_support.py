"""Running the real API over HTTP for a real browser: uvicorn on a thread, Debian chromium.

The console tests need a real HTTP server (a browser cannot talk to a TestClient), a real
WebSocket and a real Redis behind it; everything binds to 127.0.0.1 on free ports.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import cv2
import numpy as np
import uvicorn

from api.app import create_app
from api.seed import seed_demo
from api.settings import ApiConfig
from sharpeyes.devservers.rtsp import free_port

PASSWORD = "sharpeyes-demo"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class ServedApi:
    """``create_app(config)`` behind uvicorn on a background thread; restartable on the
    same port (a new app, as after a process restart: same database, same token key)."""

    def __init__(self, config: ApiConfig, port: int | None = None) -> None:
        self.config = config
        self.port = port or free_port()
        self.app = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServedApi:
        self.app = create_app(self.config)
        server = uvicorn.Server(
            uvicorn.Config(
                self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
            )
        )
        self._server = server
        self._thread = threading.Thread(target=server.run, name="console-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.started:
                return self
            if not self._thread.is_alive():
                raise RuntimeError("the API server thread exited during start-up")
            time.sleep(0.05)
        raise RuntimeError(f"the API did not start on {self.url} within {timeout} s")

    def stop(self, timeout: float = 20.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = None
        self._thread = None

    def seed(self) -> None:
        assert self.app is not None
        with self.app.state.sessions() as session:
            seed_demo(session, PASSWORD)
            session.commit()

    def __enter__(self) -> ServedApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def http_json(url: str, token: str | None = None, data: bytes | None = None) -> object:
    import json

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def login(base: str, username: str) -> str:
    data = urllib.parse.urlencode({"username": username, "password": PASSWORD}).encode()
    answer = http_json(f"{base}/auth/token", data=data)
    assert isinstance(answer, dict)
    return str(answer["access_token"])


def street_jpeg(
    boxes: list[tuple[float, float, float, float]] = (),  # type: ignore[assignment]
    zone: list[tuple[float, float]] | None = None,
    size: tuple[int, int] = (960, 540),
    label: str = "",
) -> bytes:
    """A real JPEG of a street-like scene with the people and the zone drawn, as the
    pipeline's snapshots are (tests stand in for the pipeline with it)."""
    width, height = size
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = (60, 64, 70)
    image[int(height * 0.45) :, :] = (88, 92, 96)  # the pavement
    for x in range(0, width, 80):
        cv2.line(image, (x, int(height * 0.45)), (x - 120, height), (110, 112, 116), 2)
    if zone:
        pts = np.array([[x * width, y * height] for x, y in zone], np.int32)
        cv2.polylines(image, [pts], True, (0, 196, 255), 3)
    for x1, y1, x2, y2 in boxes:
        p1 = (int(x1 * width), int(y1 * height))
        p2 = (int(x2 * width), int(y2 * height))
        cv2.rectangle(image, p1, p2, (40, 40, 160), -1)
        cv2.rectangle(image, p1, p2, (122, 255, 60), 2)
    if label:
        cv2.putText(image, label, (20, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return jpeg.tobytes()


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """Debian's chromium, headless, never a downloaded browser. Playwright starts it with a
    fresh temporary profile (user-data dir) and removes it afterwards; each test user gets
    its own browser context (own sessionStorage)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")
