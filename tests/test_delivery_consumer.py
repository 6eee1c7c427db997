"""The API's consumer group on a real Redis: takeover, poison entries, trimming, races."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from alerting.events import EventKind
from alerting.publisher import AlertPublisher
from alerting.settings import RedisSettings
from api.consumer import AlertConsumer
from api.db import make_engine, session_factory, upgrade
from api.orm import Alert, Case
from api.settings import ConsumerSettings
from tests.api_fixtures import make_config, running_api
from tests.factories import make_event
from tests.helpers import wait_for

STREAM, GROUP, DEAD = "sharpeyes:alerts", "sharpeyes-api", "sharpeyes:alerts:dead"


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'cases.db'}")
    upgrade(engine)
    return session_factory(engine)


@pytest.fixture
def raw(redis_server) -> redis.Redis:
    return redis.Redis.from_url(redis_server.url, decode_responses=True)


@pytest.fixture
def publisher(redis_server) -> AlertPublisher:
    return AlertPublisher.from_settings(RedisSettings(url=redis_server.url))


@pytest.fixture
def consumers(redis_server, sessions) -> Iterator[list[AlertConsumer]]:
    started: list[AlertConsumer] = []
    yield started
    for consumer in started:
        consumer.stop()


def start_consumer(
    redis_server, sessions, started: list[AlertConsumer], name: str, **settings: object
) -> AlertConsumer:
    options: dict[str, object] = {
        "name": name,
        "block_ms": 100,
        "claim_idle_s": 0.5,
        "claim_interval_s": 0.2,
        "max_deliveries": 3,
        "retry_delay_s": 0.1,
    }
    options.update(settings)
    consumer = AlertConsumer(
        RedisSettings(url=redis_server.url), ConsumerSettings(**options), sessions
    )
    consumer.start()
    started.append(consumer)
    return consumer


def count(sessions: sessionmaker[Session], model: type) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def group_pending(raw: redis.Redis) -> int:
    return raw.xpending(STREAM, GROUP)["pending"]


def crashed_consumer_reads(raw: redis.Redis, name: str, n: int) -> list[str]:
    """A consumer takes entries and dies before acknowledging them."""
    raw.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    ((_stream, entries),) = raw.xreadgroup(GROUP, name, {STREAM: ">"}, count=n)
    return [entry_id for entry_id, _fields in entries]


def test_a_crashed_consumers_entries_are_taken_over(
    redis_server, sessions, raw, publisher, consumers
) -> None:
    events = [make_event() for _ in range(20)]
    for event in events:
        publisher.publish(event)
    assert len(crashed_consumer_reads(raw, "api-crashed", 20)) == 20
    assert group_pending(raw) == 20

    survivor = start_consumer(redis_server, sessions, consumers, "api-survivor")
    wait_for(lambda: count(sessions, Case) == 20, 30)
    wait_for(lambda: group_pending(raw) == 0, 10)
    assert survivor.stats.reclaimed == 20 and survivor.stats.cases_created == 20
    assert survivor.metrics.registry.get_sample_value("sharpeyes_alerts_reclaimed_total") == 20
    assert count(sessions, Alert) == 20


def test_an_entry_its_consumers_keep_dying_on_is_dead_lettered_untried(
    redis_server, sessions, raw, publisher, consumers
) -> None:
    """The delivery count lives in Redis, so it spans processes that crashed on an entry."""
    poison = make_event(camera_id="crashes-consumers")
    publisher.publish(poison)
    (poison_id,) = crashed_consumer_reads(raw, "api-1", 1)
    for name in ("api-2", "api-3"):  # two more processes took it over and died as well
        raw.xclaim(STREAM, GROUP, name, 0, [poison_id])
    others = [make_event() for _ in range(4)]
    for event in others:
        publisher.publish(event)

    consumer = start_consumer(redis_server, sessions, consumers, "api-4", max_deliveries=3)
    wait_for(lambda: raw.xlen(DEAD) == 1 and count(sessions, Case) == 4, 30)
    ((_id, dead),) = raw.xrange(DEAD)
    assert dead["original_id"] == poison_id and dead["deliveries"] == "4"
    assert "delivered 4 times without being acknowledged" in dead["error"]
    assert dead["key"] == poison.idempotency_key and dead["consumer"] == "api-4"
    with sessions() as session:
        cameras = set(session.scalars(select(Case.camera_id)))
    assert "crashes-consumers" not in cameras, "it was not tried a fourth time"
    wait_for(lambda: group_pending(raw) == 0, 10)
    assert consumer.stats.dead_lettered == 1


def test_an_entry_that_keeps_failing_is_dead_lettered_without_blocking_the_rest(
    redis_server, sessions, raw, publisher, consumers
) -> None:
    # Valid by the schema, but no database can store the number: every attempt fails.
    poison = make_event(threshold=2**63)
    before, after = make_event(), [make_event() for _ in range(5)]
    for event in [before, poison, *after]:
        publisher.publish(event)

    consumer = start_consumer(
        redis_server, sessions, consumers, "api-a", max_deliveries=3, retry_delay_s=0.3
    )
    wait_for(lambda: raw.xlen(DEAD) == 1, 30)
    ((_id, dead),) = raw.xrange(DEAD)
    assert dead["key"] == poison.idempotency_key and dead["deliveries"] == "3"
    assert dead["error"].startswith("failed 3 times: ") and "int" in dead["error"].lower()
    assert count(sessions, Case) == 6 and group_pending(raw) == 0
    with sessions() as session:
        received = session.scalars(select(Alert.received_at)).all()
    assert max(received) < datetime.fromisoformat(dead["dead_lettered_at"]), (
        "the entries behind the poison were recorded while it was being retried"
    )
    assert consumer.stats.failures == 3


def test_pending_entries_trimmed_from_the_stream_are_reported_not_fatal(
    redis_server, sessions, raw, publisher, consumers, caplog
) -> None:
    for _ in range(5):
        publisher.publish(make_event())
    crashed_consumer_reads(raw, "api-crashed", 5)
    raw.xtrim(STREAM, maxlen=0, approximate=False)  # retention ran over unconsumed entries
    later = make_event()
    publisher.publish(later)

    consumer = start_consumer(redis_server, sessions, consumers, "api-b")
    wait_for(lambda: consumer.stats.trimmed == 5 and count(sessions, Case) == 1, 30)
    assert group_pending(raw) == 0
    assert (
        consumer.metrics.registry.get_sample_value("sharpeyes_alerts_trimmed_unconsumed_total") == 5
    )
    assert "trimmed from the stream" in caplog.text


def test_a_lost_consumer_group_is_recreated(
    redis_server, sessions, raw, publisher, consumers
) -> None:
    consumer = start_consumer(redis_server, sessions, consumers, "api-c")
    publisher.publish(make_event())
    wait_for(lambda: count(sessions, Case) == 1, 20)
    raw.xgroup_destroy(STREAM, GROUP)  # as after a Redis restart without persistence
    publisher.publish(make_event())
    wait_for(lambda: count(sessions, Case) == 2, 30)
    assert consumer.stats.duplicates >= 1, "the recreated group re-read the first entry"
    assert count(sessions, Alert) == 2


def test_consumers_racing_over_the_same_entries_make_each_case_once(
    redis_server, sessions, raw, publisher
) -> None:
    """A slow owner and the consumer that took its entries over record them at the same time."""
    episodes = 30
    for _ in range(episodes):
        started = make_event()
        publisher.publish(started)
        publisher.publish(
            make_event(episode_id=started.episode_id, kind=EventKind.ENDED, sequence=2)
        )
    crashed_consumer_reads(raw, "api-x", 2 * episodes)
    entries = [(i, {k: v for k, v in f.items()}) for i, f in raw.xrange(STREAM)]
    racers = [
        AlertConsumer(RedisSettings(url=redis_server.url), ConsumerSettings(name=name), sessions)
        for name in ("api-x", "api-y")
    ]
    barrier = threading.Barrier(2)
    unexpected: list[BaseException] = []

    def record_all(consumer: AlertConsumer) -> None:
        barrier.wait()
        for entry_id, fields in entries:
            while True:
                try:
                    consumer.handle(entry_id, fields)
                    break
                except OperationalError:  # SQLite's "database is locked": retried, as the loop does
                    time.sleep(0.01)
                except BaseException as error:
                    unexpected.append(error)
                    return

    threads = [threading.Thread(target=record_all, args=(c,)) for c in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not unexpected
    assert count(sessions, Alert) == 2 * episodes and count(sessions, Case) == episodes
    with sessions() as session:
        per_case = session.execute(select(Alert.case_id, func.count()).group_by(Alert.case_id))
        assert {n for _case, n in per_case} == {2}
    assert sum(c.stats.cases_created for c in racers) == episodes
    assert sum(c.stats.duplicates for c in racers) == 2 * episodes, "one of each pair was a no-op"
    assert group_pending(raw) == 0
    for consumer in racers:
        consumer.client.close()


def test_dead_letters_through_the_api(tmp_path: Path, redis_server, raw, publisher) -> None:
    config = make_config(
        f"sqlite:///{tmp_path / 'api.db'}",
        redis_server.url,
        consumer=ConsumerSettings(name="api-dl", block_ms=100, claim_interval_s=0.2),
    )
    raw.xadd(STREAM, {"v": "1", "event": "{broken"})
    raw.xadd(STREAM, {"v": "9", "event": "{}"})
    recoverable = make_event()
    with running_api(config) as api:
        client = api.client
        client.headers.update(api.headers("admin"))
        # Only an organisation-wide admin may see them (they hold every centre's events).
        assert api.get("integrator", "/dead-letters").status_code == 403
        assert client.get("/dead-letters", headers={"Authorization": ""}).status_code == 401
        wait_for(lambda: client.get("/dead-letters").json()["total"] == 2, 20)
        consumer = client.app.state.consumer
        # An event that was dead-lettered for a cause since fixed (e.g. a database bug).
        fields = recoverable.stream_fields()
        consumer.dead_letter("1-1", fields, "failed 5 times: OperationalError", deliveries=5)

        page = client.get("/dead-letters", params={"limit": 2}).json()
        assert page["total"] == 3 and len(page["items"]) == 2 and page["next_before"]
        newest = page["items"][0]
        assert newest["idempotency_key"] == recoverable.idempotency_key
        assert newest["deliveries"] == 5 and newest["event"]["episode_id"] == recoverable.episode_id
        assert newest["original_id"] == "1-1" and newest["consumer"] == "api-dl"
        rest = client.get("/dead-letters", params={"before": page["next_before"]}).json()
        (oldest,) = rest["items"]
        assert "malformed event" in oldest["error"] and oldest["fields"]["event"] == "{broken"
        assert oldest["event"] is None and rest["next_before"] is None
        assert "newer than this consumer" in page["items"][1]["error"]

        assert client.get(f"/dead-letters/{oldest['id']}").json()["error"] == oldest["error"]
        assert client.get("/dead-letters/1-1").status_code == 404
        assert client.get("/dead-letters/not-an-id").status_code == 422

        requeued = client.post(f"/dead-letters/{newest['id']}/requeue")
        assert requeued.status_code == 200 and requeued.json()["requeued_as"]
        case = wait_for(lambda: client.get("/cases").json()["items"], 20)[0]
        assert case["episode_id"] == recoverable.episode_id
        assert client.delete(f"/dead-letters/{oldest['id']}").status_code == 204
        assert client.delete(f"/dead-letters/{oldest['id']}").status_code == 404
        assert client.get("/dead-letters").json()["total"] == 1

        health = client.get("/health").json()["consumer"]
        assert health["dead_letters"] == 1 and health["pending"] == 0
        assert health["dead_lettered"] == 3
        metrics = client.get("/metrics").text
        assert "sharpeyes_alert_dead_letters 1.0" in metrics
        assert "sharpeyes_alert_stream_lag 0.0" in metrics
        assert "sharpeyes_alert_delivery_seconds_count 1.0" in metrics

        redis_server.stop()
        down = client.get("/dead-letters")
        assert down.status_code == 503 and "Redis unavailable" in down.json()["detail"]
