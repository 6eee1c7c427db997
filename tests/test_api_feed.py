"""The live feed: pushed over WebSocket to the operators in scope, resumable after a
reconnect and across API restarts, shared between API processes through Redis."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from alerting.events import Severity
from api.app import create_app
from api.settings import EscalationSettings
from tests.api_fixtures import (
    BACKENDS,
    PASSWORD,
    Api,
    database_url,
    make_config,
    running_api,
    start_api,
)
from tests.helpers import wait_for
from tests.test_api_workflow import publish


def receive_until(ws, predicate, limit: int = 50):  # type: ignore[no-untyped-def]
    """Messages up to and including the first that matches (pings and hellos skipped)."""
    seen = []
    for _ in range(limit):
        message = ws.receive_json()
        if message["type"] in ("ping", "hello"):
            continue
        seen.append(message)
        if predicate(message):
            return seen
    pytest.fail(f"no matching feed message among {seen}")


@pytest.fixture(params=BACKENDS)
def feed_api(request: pytest.FixtureRequest, tmp_path: Path, redis_server):  # type: ignore[no-untyped-def]
    config = make_config(
        database_url(request.param, tmp_path, request),
        redis_server.url,
        escalation=EscalationSettings(
            enabled=True,
            acknowledge_sla_s={"notice": 1.0, "warning": 3600, "critical": 3600},
            check_interval_s=0.2,
        ),
    )
    yield from start_api(config)


def test_feed_pushes_in_scope_and_resumes(feed_api: Api, tmp_path: Path) -> None:
    api = feed_api
    op_token, hill_token = api.token("operator"), api.token("hillside")
    assert api.client.get("/feed").status_code == 401
    with api.client.websocket_connect("/feed/ws?token=bad") as ws:
        with pytest.raises(Exception) as closed:
            ws.receive_json()
        assert "4401" in repr(closed.value) or getattr(closed.value, "code", None) == 4401
    with api.client.websocket_connect(f"/feed/ws?token={api.token('integrator')}") as ws:
        with pytest.raises(Exception) as closed:
            ws.receive_json()
        assert getattr(closed.value, "code", None) == 4403

    with (
        api.client.websocket_connect(f"/feed/ws?token={op_token}") as ops,
        api.client.websocket_connect(f"/feed/ws?token={hill_token}") as hill,
    ):
        assert ops.receive_json()["type"] == "hello"
        assert hill.receive_json()["type"] == "hello"
        publish(api, severity=Severity.WARNING)
        (alert,) = receive_until(ops, lambda m: m["type"] == "alert")
        assert alert["data"]["case_created"] and alert["data"]["case"]["state"] == "reported"
        case_id = alert["case_id"]
        # Hillside's first message is its own case, never Riverside's alert.
        api.post("hillside", "/cases", json={"title": "Orchard crowd", "severity": "warning"})
        (first,) = receive_until(hill, lambda m: True)
        assert first["data"]["case"]["title"] == "Orchard crowd"
        last_seen = alert["id"]

    # While the operator is away the case moves on; on reconnect they resume from the id.
    api.post("operator", f"/cases/{case_id}/transitions", json={"to": "acknowledged"})
    with api.client.websocket_connect(f"/feed/ws?token={op_token}&after={last_seen}") as ops:
        missed = receive_until(ops, lambda m: m["data"].get("to_state") == "acknowledged")
        assert all(m["id"] > last_seen for m in missed)
        assert all(m["data"]["case"]["title"] != "Orchard crowd" for m in missed)
        # An escalation (SLA 1 s for notice) is pushed too: a community case climbs.
        publish(api, severity=Severity.NOTICE)
        escalated = receive_until(ops, lambda m: m["type"] == "escalation", limit=100)[-1]
        assert escalated["data"]["action"] == "escalated"
        assert escalated["data"]["details"]["to_centre_id"] == api.centre("demo.riverside")
        last_seen = escalated["id"]
    # Plain HTTP gives the same events (for a console catching up).
    page = api.get("operator", "/feed", params={"after": 0}).json()
    assert page and [m["id"] for m in page] == sorted(m["id"] for m in page)
    assert all(m["data"]["case"]["title"] != "Orchard crowd" for m in page)

    # A new API process on the same database (after a restart, or behind a load balancer)
    # resumes from the same id.
    second = create_app(
        api.config.model_copy(update={"escalation": EscalationSettings(enabled=False)})
    )
    with TestClient(second) as other:
        token = other.post(
            "/auth/token", data={"username": "operator", "password": PASSWORD}
        ).json()["access_token"]
        api.post(
            "operator", f"/cases/{case_id}/transitions", json={"to": "dismissed", "reason": "test"}
        )
        with other.websocket_connect(f"/feed/ws?token={token}&after={last_seen}") as ws:
            replay = receive_until(
                ws, lambda m: m["data"].get("to_state") == "dismissed", limit=100
            )
            assert replay[0]["id"] > last_seen
    # Old events are pruned after the retention period.
    hub = api.app.state.feed_hub
    assert hub.prune() == 0
    hub.retention_days = 1e-9
    assert hub.prune() > 0 and api.get("admin", "/feed").json() == []


def test_feed_crosses_processes_through_redis(tmp_path: Path, redis_server) -> None:
    """Two API apps on one database: a change made through B reaches A's WebSocket at once
    (A's hub polls only every 120 s here, so the Redis wake-up is what delivers it)."""
    config = make_config(f"sqlite:///{tmp_path / 'two.db'}", redis_server.url)
    with running_api(config) as a:
        check_two_processes(a, config)


def check_two_processes(a: Api, config) -> None:  # type: ignore[no-untyped-def]
    a.app.state.feed_hub.poll_interval_s = 120.0
    b_app = create_app(
        config.model_copy(
            update={"consumer": config.consumer.model_copy(update={"enabled": False})}
        )
    )
    with TestClient(b_app) as b:
        token_b = b.post("/auth/token", data={"username": "operator", "password": PASSWORD}).json()[
            "access_token"
        ]
        with a.client.websocket_connect(f"/feed/ws?token={a.token('operator')}") as ws:
            assert ws.receive_json()["type"] == "hello"
            wait_for(lambda: a.app.state.feed_hub.subscribers, 5)
            sent_at = time.monotonic()
            made = b.post(
                "/cases",
                json={"title": "Made on B"},
                headers={"Authorization": f"Bearer {token_b}"},
            )
            assert made.status_code == 201
            (message,) = receive_until(ws, lambda m: True)
            assert message["data"]["case"]["title"] == "Made on B"
            assert time.monotonic() - sent_at < 60, "delivered by the Redis wake-up, not a poll"
