"""The whole path on real components: an RTSP camera → pipeline → Redis Stream → API → case.

The pipeline and the API run as separate processes (`sharpeyes run`, `sharpeyes api`), as
they do in production, against a real redis-server and a real RTSP server.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import redis

from sharpeyes.devservers.rtsp import free_port
from tests.helpers import SHARPEYES, wait_for

CONFIG = """
redis: {{url: "{redis}", outbox: {{path: "{outbox}"}}}}
database: {{url: "sqlite:///{db}"}}
api: {{host: 127.0.0.1, port: {port}}}
pipeline: {{analysis_fps: 1.0, worker_id: e2e-worker, health_interval_s: 1}}
auth: {{bootstrap_admin: {{username: e2e-admin, password: e2e-password}}}}
cameras:
  - id: plaza-east
    name: Plaza east entrance
    source: {rtsp}
    location: {{district: Demo District, street: Riverside, community: Harbour,
                grid_cell: grid-07}}
    zones:
      - id: entrance
        name: Entrance floor
        polygon: [[0.25, 0.55], [0.9, 0.55], [0.9, 1.0], [0.25, 1.0]]
        gathering: {{min_people: 1, min_duration_s: 3, clear_after_s: 2}}
"""


@pytest.fixture
def running_system(tmp_path: Path, redis_server, rtsp_server) -> Iterator[dict[str, object]]:
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        CONFIG.format(
            redis=redis_server.url,
            outbox=tmp_path / "outbox" / "{worker_id}.outbox",
            db=tmp_path / "e2e.db",
            port=port,
            rtsp=rtsp_server.url("cam1"),
        )
    )
    logs = {name: (tmp_path / f"{name}.log").open("wb") for name in ("api", "pipeline")}
    processes = {
        "api": subprocess.Popen(
            [*SHARPEYES, "api", "--config", str(config)],
            stdout=logs["api"],
            stderr=subprocess.STDOUT,
        ),
        "pipeline": subprocess.Popen(
            [*SHARPEYES, "run", "--config", str(config)],
            stdout=logs["pipeline"],
            stderr=subprocess.STDOUT,
        ),
    }
    try:
        yield {
            "base": f"http://127.0.0.1:{port}",
            "redis": redis_server.url,
            "processes": processes,
            "logs": tmp_path,
        }
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs.values():
            log.close()


@pytest.mark.slow
def test_sample_clip_becomes_a_case(running_system) -> None:
    base = running_system["base"]
    http = httpx.Client(base_url=base, timeout=5)

    def login() -> bool:
        try:
            response = http.post(
                "/auth/token", data={"username": "e2e-admin", "password": "e2e-password"}
            )
        except httpx.HTTPError:
            return False
        if response.status_code != 200:
            return False
        http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        return True

    wait_for(login, timeout=60, interval=0.5)

    def cases() -> list[dict]:
        for name, process in running_system["processes"].items():
            if process.poll() is not None:
                log = (running_system["logs"] / f"{name}.log").read_text()
                pytest.fail(f"{name} exited with {process.returncode}:\n{log[-3000:]}")
        try:
            return http.get("/cases").json()["items"]
        except httpx.HTTPError:
            return []

    (case, *_) = wait_for(cases, timeout=90, interval=1)
    assert case["camera_id"] == "plaza-east" and case["zone_id"] == "entrance"
    assert case["state"] == "reported" and case["people_count"] >= 1
    assert case["grid_cell"] == "grid-07" and case["district"] == "Demo District"
    assert case["centre_id"] is not None, "routed to the centre owning the grid cell"

    detail = http.get(f"/cases/{case['id']}").json()
    started = detail["alerts"][0]
    assert started["kind"] == "started" and started["has_snapshot"]
    jpeg = http.get(started["snapshot_url"]).content
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[1] >= 640, "snapshots are full resolution"

    payload = http.get(f"/alerts/{started['id']}").json()["payload"]
    assert payload["producer"] == "e2e-worker"
    assert any(person["in_zone"] for person in payload["people"])

    # The person walks away: the same episode ends, updating the case instead of a new one.
    # (Within one loop of the 139-s clip, which has several gaps of 3-7 s between people.)
    ended = wait_for(lambda: http.get(f"/cases/{case['id']}").json()["episode_ended_at"], 150, 1)
    assert ended
    kinds = [a["kind"] for a in http.get(f"/cases/{case['id']}").json()["alerts"]]
    assert kinds == ["started", "ended"]

    # Every stream entry was consumed and acknowledged, and the camera reports live.
    client = redis.Redis.from_url(running_system["redis"], decode_responses=True)
    assert client.xpending("sharpeyes:alerts", "sharpeyes-api")["pending"] == 0
    health = http.get("/cameras/health").json()["cameras"]["plaza-east"]
    assert health["state"] == "live" and health["frames_analysed"] > 0
    assert http.get("/health").json()["status"] == "ok"
