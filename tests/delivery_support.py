"""Support for the delivery tests: scripted alerts through the real rule path, the API process.

Alerts come from ``pipeline.analysis.CameraAnalyzer`` fed with scripted people counts (no
video needed): each "crowd" sample opens an episode (``started``) and each "empty" sample
closes it (``ended``), so every step raises exactly one real alert event with a snapshot.
"""

from __future__ import annotations

import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from alerting.publisher import AlertPublisher
from alerting.settings import OutboxSettings, RedisSettings
from camera_adapters.frames import Frame
from camera_adapters.spec import CameraSpec
from models.detections import Detections
from pipeline.alert_sink import AlertSink
from pipeline.alerts import PendingAlert
from pipeline.analysis import CameraAnalyzer
from pipeline.metrics import PipelineMetrics
from pipeline.settings import PipelineSettings
from sharpeyes.devservers.rtsp import free_port
from tests.helpers import SHARPEYES

WIDTH, HEIGHT = 320, 180
CROWD = 4


def scripted_camera(camera_id: str = "plaza-east") -> CameraSpec:
    return CameraSpec.model_validate(
        {
            "id": camera_id,
            "name": "Plaza east",
            "source": "rtsp://127.0.0.1:8554/plaza",
            "location": {
                "district": "Haizhu",
                "street": "Binjiang",
                "community": "Riverside",
                "grid_cell": "BJ-07",
            },
            "zones": [
                {
                    "id": "front",
                    "name": "Plaza front",
                    "polygon": [[0.0, 0.4], [1.0, 0.4], [1.0, 1.0], [0.0, 1.0]],
                    "gathering": {"min_people": 3, "min_duration_s": 0, "clear_after_s": 0},
                }
            ],
        }
    )


class ScriptedAlerts:
    """Raises one alert per step by alternating a crowd and an empty zone."""

    def __init__(self, camera_id: str = "plaza-east", producer: str = "fault-test-worker") -> None:
        self.analyzer = CameraAnalyzer(scripted_camera(camera_id), producer)
        self.camera_id = camera_id
        self.image = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
        self.sequence = 0
        self.crowded = False

    def _detections(self, people: int) -> Detections:
        boxes = [(10.0 + 40 * i, 100.0, 40.0 + 40 * i, 170.0) for i in range(people)]
        return Detections(
            np.array(boxes, np.float32).reshape(-1, 4),
            np.full((people,), 0.9, np.float32),
            np.zeros((people,), np.int32),
        )

    def step(self) -> list[PendingAlert]:
        self.crowded = not self.crowded
        self.sequence += 1
        frame = Frame(self.camera_id, time.time(), self.image, (WIDTH, HEIGHT), self.sequence)
        return self.analyzer.analyse(frame, self._detections(CROWD if self.crowded else 0))


def make_sink(
    redis_url: str,
    tmp_path: Path,
    *,
    max_bytes: int = 64 * 1024 * 1024,
    retry_max_s: float = 0.2,
    **outbox: object,
) -> AlertSink:
    """The pipeline's real publishing path: AlertSink → outbox → AlertPublisher → Redis."""
    settings = RedisSettings(
        url=redis_url,
        outbox=OutboxSettings(
            path=str(tmp_path / "outbox" / "{worker_id}.outbox"),
            max_bytes=max_bytes,
            retry_initial_s=0.05,
            retry_max_s=retry_max_s,
            **outbox,  # type: ignore[arg-type]
        ),
    )
    publisher = AlertPublisher.from_settings(settings)
    return AlertSink(publisher, PipelineSettings(worker_id="sink-test"), PipelineMetrics())


@dataclass
class AlertDriver:
    """A stand-in for the analysis loop: raises alerts at a steady rate into a sink."""

    sink: object  # pipeline.alert_sink.AlertSink
    interval_s: float = 0.1
    raised: list[str] = field(default_factory=list)  # idempotency keys, in order
    episodes: set[str] = field(default_factory=set)
    submit_seconds: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.script = ScriptedAlerts()

    def raise_one(self) -> None:
        for alert in self.script.step():
            started = time.perf_counter()
            self.sink.submit(alert)  # type: ignore[attr-defined]
            self.submit_seconds.append(time.perf_counter() - started)
            self.raised.append(alert.event.idempotency_key)
            self.episodes.add(alert.event.episode_id)

    def start(self) -> AlertDriver:
        def loop() -> None:
            while not self._stop.wait(self.interval_s):
                self.raise_one()

        self._thread = threading.Thread(target=loop, name="alert-driver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self.script.crowded:  # close the open episode so every episode has both events
            self.raise_one()


API_CONFIG = """
redis:
  url: "{redis}"
database: {{url: "sqlite:///{db}"}}
api: {{host: 127.0.0.1, port: {port}}}
consumer: {{name: {name}, batch: {batch}, block_ms: 200, claim_idle_s: {claim_idle_s},
            claim_interval_s: {claim_interval_s}, max_deliveries: 3, retry_delay_s: 0.2}}
auth: {{secret_key: "{secret}", bootstrap_admin: {{username: admin, password: "{password}"}}}}
logging: {{level: INFO}}
"""
ADMIN_PASSWORD = "faults-admin-password"


@dataclass
class ApiProcess:
    """A real ``sharpeyes api`` process (uvicorn + consumer) on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    base: str
    log_path: Path
    _token: str | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def health(self) -> dict | None:
        try:
            return httpx.get(f"{self.base}/health", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return None

    def get(self, path: str) -> httpx.Response:
        """GET as the bootstrap admin (logged in on first use)."""
        if self._token is None:
            response = httpx.post(
                f"{self.base}/auth/token",
                data={"username": "admin", "password": ADMIN_PASSWORD},
                timeout=10,
            )
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return httpx.get(
            f"{self.base}{path}", headers={"Authorization": f"Bearer {self._token}"}, timeout=10
        )


@contextmanager
def api_process(
    tmp_path: Path,
    redis_url: str,
    db: Path,
    *,
    name: str,
    batch: int = 50,
    claim_idle_s: float = 60.0,
    claim_interval_s: float = 15.0,
) -> Iterator[ApiProcess]:
    port = free_port()
    config = tmp_path / f"api-{name}.yaml"
    config.write_text(
        API_CONFIG.format(
            redis=redis_url,
            db=db,
            port=port,
            name=name,
            batch=batch,
            claim_idle_s=claim_idle_s,
            claim_interval_s=claim_interval_s,
            secret="k" * 40,
            password=ADMIN_PASSWORD,
        )
    )
    log_path = tmp_path / f"api-{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*SHARPEYES, "api", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        api = ApiProcess(process, f"http://127.0.0.1:{port}", log_path)
        try:
            deadline = time.monotonic() + 60
            while (health := api.health()) is None or not (health.get("consumer") or {}).get(
                "connected"
            ):
                if process.poll() is not None:
                    raise AssertionError(f"sharpeyes api exited early:\n{api.log()[-3000:]}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"sharpeyes api did not come up:\n{api.log()[-3000:]}")
                time.sleep(0.1)
            yield api
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)


@dataclass(frozen=True)
class Tally:
    """Raised alerts against what the database holds."""

    raised: int
    alerts: int  # alert rows (one per event recorded)
    cases: int
    episodes: int  # distinct episodes raised
    lost: int  # raised but not recorded
    duplicated: int  # recorded more than once (by idempotency key), or cases per episode > 1
    unexpected: int  # recorded but never raised

    def line(self) -> str:
        return (
            f"raised={self.raised} recorded={self.alerts} episodes={self.episodes} "
            f"cases={self.cases} lost={self.lost} duplicated={self.duplicated}"
        )


def tally(db: Path, raised: list[str], episodes: set[str]) -> Tally:
    """Count from the database file itself (read-only), not from the API's own statistics."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as connection:
        keys = [row[0] for row in connection.execute("SELECT idempotency_key FROM alerts")]
        case_episodes = [row[0] for row in connection.execute("SELECT episode_id FROM cases")]
    recorded = set(keys)
    wanted = set(raised)
    duplicated = (len(keys) - len(recorded)) + (len(case_episodes) - len(set(case_episodes)))
    return Tally(
        raised=len(raised),
        alerts=len(keys),
        cases=len(case_episodes),
        episodes=len(episodes),
        lost=len(wanted - recorded),
        duplicated=duplicated + (len(raised) - len(wanted)),
        unexpected=len(recorded - wanted),
    )


def recorded_count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as connection:
            return connection.execute("SELECT count(*) FROM alerts").fetchone()[0]
    except sqlite3.OperationalError:
        return 0  # not migrated yet
