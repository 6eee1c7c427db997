"""The dispatch API: consumer group → cases, idempotency, dead letters, HTTP endpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from alerting.events import EventKind, Severity
from alerting.publisher import AlertPublisher
from alerting.settings import RedisSettings
from api.app import create_app
from api.db import make_engine, session_factory, upgrade
from api.ingest import ingest_event
from api.settings import ApiConfig, AuthSettings, BootstrapAdmin, DatabaseSettings
from tests.factories import make_event
from tests.helpers import wait_for


@pytest.fixture
def api_config(tmp_path: Path, redis_server) -> ApiConfig:
    return ApiConfig(
        database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'api.db'}"),
        redis=RedisSettings(url=redis_server.url),
        auth=AuthSettings(
            bootstrap_admin=BootstrapAdmin(username="root", password="root-password")
        ),
    )


def login(client: TestClient) -> None:
    """The bootstrap admin from the config logs in; the client sends its token from then on."""
    response = client.post("/auth/token", data={"username": "root", "password": "root-password"})
    assert response.status_code == 200, response.text
    client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"


def test_ingest_is_idempotent_and_groups_an_episode(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    upgrade(engine)
    sessions = session_factory(engine)
    started = make_event(count=21)
    with sessions() as session:
        first = ingest_event(session, started)
        session.commit()
    with sessions() as session:
        again = ingest_event(session, started)
        session.commit()
    assert first.case_created and not first.duplicate
    assert again.duplicate and again.case_id == first.case_id
    ended = make_event(
        episode_id=started.episode_id,
        kind=EventKind.ENDED,
        sequence=2,
        count=3,
        peak_count=34,
        severity=Severity.CRITICAL,
    )
    with sessions() as session:
        result = ingest_event(session, ended)
        session.commit()
        assert result.case_id == first.case_id and not result.case_created
    with sessions() as session:
        from api.orm import Alert, Case

        case = session.get(Case, first.case_id)
        assert case.peak_count == 34 and case.severity == "critical"
        assert case.episode_ended_at is not None
        assert session.query(Alert).count() == 2 and session.query(Case).count() == 1


def test_consumer_turns_stream_entries_into_cases(api_config: ApiConfig) -> None:
    publisher = AlertPublisher.from_settings(api_config.redis)
    event = make_event()
    ref = publisher.store_snapshot(event.event_id, b"\xff\xd8jpeg-bytes", 2, 2)
    publisher.publish(event.model_copy(update={"snapshot": ref}))
    # The same event again, past the publisher's own dedup (as after its key expired).
    duplicate = event.model_copy(update={"snapshot": ref}).stream_fields()
    publisher.client.xadd(api_config.redis.stream, duplicate)  # type: ignore[arg-type]
    publisher.client.xadd(api_config.redis.stream, {"v": "1", "event": "{broken"})

    with TestClient(create_app(api_config)) as client:
        assert client.get("/cases").status_code == 401, "cases need a login"
        login(client)
        cases = wait_for(lambda: client.get("/cases").json()["items"], 15)
        wait_for(lambda: client.get("/health").json()["consumer"]["consumed"] >= 2, 10)
        health = client.get("/health").json()
        assert health["status"] == "ok", health
        assert health["consumer"]["duplicates"] == 1
        assert health["consumer"]["dead_lettered"] == 1
        assert len(cases) == 1
        case = client.get(f"/cases/{cases[0]['id']}").json()
        assert case["state"] == "reported" and case["people_count"] == event.count
        assert case["grid_cell"] == "BJ-07" and len(case["alerts"]) == 1
        alert = case["alerts"][0]
        assert alert["event_id"] == event.event_id
        snapshot = client.get(alert["snapshot_url"])
        assert snapshot.status_code == 200 and snapshot.content == b"\xff\xd8jpeg-bytes"
        assert client.get("/alerts").json()["total"] == 1
        assert client.get(f"/alerts/{alert['id']}").json()["payload"]["zone_id"] == "front"

    raw = redis.Redis.from_url(api_config.redis.url, decode_responses=True)
    pending = raw.xpending(api_config.redis.stream, api_config.redis.consumer_group)
    assert pending["pending"] == 0, "every entry is acknowledged once handled"
    ((_dead_id, dead),) = raw.xrange(api_config.redis.dead_letter_stream)
    assert "malformed event" in dead["error"] and dead["event"] == "{broken"


def test_http_errors_are_precise(api_config: ApiConfig) -> None:
    with TestClient(create_app(api_config)) as client:
        login(client)
        missing = client.get("/cases/999")
        assert missing.status_code == 404 and missing.json()["detail"] == "case 999 does not exist"
        assert client.get("/alerts/5/snapshot.jpg").status_code == 404
        bad = client.get("/cases", params={"limit": 0})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "limit"]
        assert bad.json()["message"].startswith("query.limit: ")
        assert client.get("/alerts", params={"kind": "exploded"}).status_code == 422


def test_health_reports_redis_down(api_config: ApiConfig, redis_server) -> None:
    with TestClient(create_app(api_config)) as client:
        redis_server.stop()
        response = client.get("/health")
        assert response.status_code == 503
        assert response.json()["redis"].startswith("error")
