"""Publishing alert events and snapshots to a real Redis server."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import redis

from alerting.events import AlertEvent, EventKind
from alerting.publisher import AlertPublisher, PublishError
from alerting.settings import RedisSettings
from alerting.snapshots import render_snapshot
from tests.factories import make_event


def test_event_round_trip_and_future_fields() -> None:
    event = make_event()
    fields = event.stream_fields()
    assert fields["v"] == "1" and fields["key"] == event.idempotency_key
    assert AlertEvent.from_stream_fields(fields) == event
    newer = json.loads(fields["event"]) | {"crowd_motion": "converging"}
    parsed = AlertEvent.from_stream_fields({**fields, "event": json.dumps(newer)})
    assert parsed.event_id == event.event_id, "unknown future fields are tolerated"
    with pytest.raises(ValueError, match="newer"):
        AlertEvent.from_stream_fields({**fields, "v": "2"})
    with pytest.raises(ValueError):
        AlertEvent.from_stream_fields({"v": "1", "event": "{not json"})


def test_publish_xadds_with_trimming_and_snapshot_ttl(redis_server) -> None:
    settings = RedisSettings(url=redis_server.url, maxlen=100, snapshot_ttl_s=120)
    publisher = AlertPublisher.from_settings(settings)
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    image = np.full((120, 160, 3), 80, np.uint8)
    jpeg = render_snapshot(image, [(0.1, 0.1, 0.3, 0.9)], [True], [(0, 0), (1, 0), (1, 1)], "x")
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)

    event = make_event()
    ref = publisher.store_snapshot(event.event_id, jpeg, 160, 120)
    assert ref is not None and 0 < client.ttl(ref.key) <= 120
    entry = publisher.publish(event.model_copy(update={"snapshot": ref}))
    ((stored_id, fields),) = client.xrange(settings.stream)
    assert stored_id == entry
    assert AlertEvent.from_stream_fields(fields).snapshot == ref

    for i in range(400):
        publisher.publish(make_event(kind=EventKind.ENDED, sequence=i))
    assert client.xlen(settings.stream) < 400, "MAXLEN ~ trims the stream"


def test_publish_fails_clearly_when_redis_is_down(redis_server) -> None:
    settings = RedisSettings(url=redis_server.url)
    publisher = AlertPublisher.from_settings(settings)
    publisher.retry_delay_s = 0.01
    redis_server.stop()
    assert publisher.store_snapshot("e", b"jpeg", 1, 1) is None, "snapshots are best effort"
    with pytest.raises(PublishError, match="could not publish"):
        publisher.publish(make_event())
