"""The alert sink with its outbox against a real Redis that goes away and comes back."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from alerting.events import AlertEvent
from alerting.outbox import Outbox
from pipeline.alert_sink import AlertSink
from sharpeyes.devservers.redis_server import RedisServer
from tests.delivery_support import ScriptedAlerts, make_sink
from tests.helpers import wait_for


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis that keeps its data across a restart (appendonly), as in production."""
    with RedisServer(data_dir=tmp_path / "redis-aof", appendonly=True) as server:
        yield server


def stream_events(redis_url: str) -> list[AlertEvent]:
    client = redis.Redis.from_url(redis_url)
    return [
        AlertEvent.from_stream_fields({k.decode(): v.decode() for k, v in fields.items()})
        for _id, fields in client.xrange("sharpeyes:alerts")
    ]


def raise_alerts(script: ScriptedAlerts, sink: AlertSink, n: int) -> list[str]:
    keys = []
    while len(keys) < n:
        for alert in script.step():
            sink.submit(alert)
            keys.append(alert.event.idempotency_key)
    return keys


def metric(sink: AlertSink, name: str) -> float:
    return sink.metrics.registry.get_sample_value(name) or 0.0


def test_alerts_wait_in_the_outbox_while_redis_is_down_and_replay_in_order(
    aof_redis: RedisServer, tmp_path: Path
) -> None:
    redis_server = aof_redis
    sink = make_sink(redis_server.url, tmp_path)
    script = ScriptedAlerts()
    sink.start()
    try:
        before = raise_alerts(script, sink, 4)
        assert sink.wait_idle(20)
        redis_server.stop()
        during = raise_alerts(script, sink, 10)
        wait_for(lambda: sink.outbox.pending == 10, 20)
        assert sink.spooled == 10 and sink.published == 4
        assert metric(sink, "sharpeyes_outbox_pending") == 10
        assert metric(sink, "sharpeyes_outbox_lag_seconds") > 0
        redis_server.start()
        assert sink.wait_idle(30), "replayed once Redis is back"
        after = raise_alerts(script, sink, 4)
        assert sink.wait_idle(30)
    finally:
        sink.close()
    keys = [e.idempotency_key for e in stream_events(redis_server.url)]
    assert keys == before + during + after
    assert sink.replayed == 10 and sink.published == 18 and sink.failed == 0
    assert metric(sink, "sharpeyes_alerts_spooled_total") == 10
    assert metric(sink, "sharpeyes_alerts_replayed_total") == 10
    assert metric(sink, "sharpeyes_alerts_published_total") == 18
    assert metric(sink, "sharpeyes_outbox_pending") == 0
    assert metric(sink, "sharpeyes_outbox_lag_seconds") == 0
    # Snapshots taken during the outage travelled in the outbox and are in Redis now.
    client = redis.Redis.from_url(redis_server.url)
    events = stream_events(redis_server.url)
    assert all(e.snapshot is not None and client.exists(e.snapshot.key) for e in events)


def test_a_restart_replays_what_the_last_run_left_before_new_alerts(
    redis_server, tmp_path: Path
) -> None:
    redis_server.stop()
    first = make_sink(redis_server.url, tmp_path)
    script = ScriptedAlerts()
    first.start()
    left = raise_alerts(script, first, 6)
    wait_for(lambda: first.outbox.pending == 6, 20)
    first.close()  # Redis still down: the alerts stay on disk
    with Outbox(tmp_path / "outbox" / "sink-test.outbox") as outbox:
        assert outbox.pending == 6

    redis_server.start()
    second = make_sink(redis_server.url, tmp_path)
    second.start()
    try:
        new = raise_alerts(script, second, 3)
        assert second.wait_idle(30)
    finally:
        second.close()
    assert [e.idempotency_key for e in stream_events(redis_server.url)] == left + new
    assert second.replayed == 6
    assert metric(second, "sharpeyes_alerts_replayed_total") == 6


def test_an_event_redis_already_has_is_not_added_twice(redis_server, tmp_path: Path) -> None:
    """A crash after XADD but before the outbox marked it delivered: the replay is a no-op."""
    sink = make_sink(redis_server.url, tmp_path)
    (alert,) = ScriptedAlerts().step()
    sink.publisher.deliver(alert.event)
    with Outbox(tmp_path / "outbox" / "sink-test.outbox") as outbox:
        outbox.append(alert.event.model_dump_json().encode())
    sink.start()
    try:
        assert sink.wait_idle(20)
    finally:
        sink.close()
    assert len(stream_events(redis_server.url)) == 1
    assert sink.deduplicated == 1 and sink.published == 0
    assert metric(sink, "sharpeyes_alerts_deduplicated_total") == 1


def test_a_full_outbox_drops_loudly(redis_server, tmp_path: Path, caplog) -> None:
    redis_server.stop()
    sink = make_sink(
        redis_server.url, tmp_path, max_bytes=1024 * 1024, snapshot_max_bytes=0, fsync=False
    )
    script = ScriptedAlerts()
    sink.start()
    caplog.set_level(logging.ERROR, logger="pipeline.alert_sink")
    try:
        while sink.failed == 0:
            raise_alerts(script, sink, 200)
            wait_for(lambda: sink._queue.unfinished_tasks == 0, 20)
            assert sink.outbox.size_bytes <= 1024 * 1024
    finally:
        sink.close()
    assert metric(sink, "sharpeyes_alerts_failed_total") == sink.failed
    assert metric(sink, "sharpeyes_outbox_snapshots_dropped_total") > 0
    reasons = [
        getattr(r, "reason", "") for r in caplog.records if r.getMessage() == "alert dropped"
    ]
    assert len(reasons) == sink.failed and all("is full" in reason for reason in reasons)


def test_a_second_worker_with_the_same_id_is_refused(redis_server, tmp_path: Path) -> None:
    first = make_sink(redis_server.url, tmp_path)
    first.start()
    try:
        with pytest.raises(Exception, match="in use by pid"):
            make_sink(redis_server.url, tmp_path).start()
    finally:
        first.close()


CRASHING_WORKER = """
import sys, time
from tests.delivery_support import ScriptedAlerts, make_sink
from pathlib import Path
sink = make_sink(sys.argv[1], Path(sys.argv[2]))
sink.start()
script = ScriptedAlerts()
while True:
    for alert in script.step():
        sink.submit(alert)
        target = sink.outbox.pending + 1
        while sink.outbox.pending < target:  # durable (fsync'd) before it is reported
            time.sleep(0.001)
        print(alert.event.idempotency_key, flush=True)
"""


def test_a_worker_killed_with_alerts_in_its_outbox_delivers_them_when_restarted(
    redis_server, tmp_path: Path
) -> None:
    """SIGKILL a worker process while Redis is down; the next start replays its outbox."""
    redis_server.stop()
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_WORKER, redis_server.url, str(tmp_path)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert child.stdout is not None
    spooled = []
    for line in child.stdout:
        spooled.append(line.decode().strip())
        if len(spooled) == 25:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    spooled += child.stdout.read().decode().split()

    redis_server.start()
    sink = make_sink(redis_server.url, tmp_path)
    sink.start()
    try:
        assert sink.wait_idle(30)
    finally:
        sink.close()
    delivered = [e.idempotency_key for e in stream_events(redis_server.url)]
    assert delivered[: len(spooled)] == spooled, "every durable alert, in order"
    assert len(delivered) <= len(spooled) + 1  # at most the one spooled as the kill came
    assert sink.replayed == len(delivered)
