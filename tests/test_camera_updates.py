"""Cameras changed through the API reach a running pipeline worker without a restart.

The API's real publisher writes the changes to a real Redis; a real pipeline (real detector,
real RTSP camera) follows them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
import redis

from alerting.publisher import AlertPublisher
from alerting.settings import RedisSettings
from api.cameras import CameraPublisher
from api.orm import Camera
from camera_adapters.config_messages import CameraChange, current_key, spec_json
from camera_adapters.spec import CameraSpec
from pipeline.camera_updates import CameraConfigFollower
from pipeline.service import PipelineService
from pipeline.settings import PipelineSettings
from tests.helpers import wait_for

LOCATION = {"district": "D", "street": "S", "community": "C", "grid_cell": "G"}
ZONE = {
    "id": "floor",
    "name": "Floor",
    "polygon": [[0.2, 0.5], [0.9, 0.5], [0.9, 1.0], [0.2, 1.0]],
    "gathering": {"min_people": 1, "min_duration_s": 2, "clear_after_s": 2},
}


def spec(camera_id: str, source: str, **changes: object) -> CameraSpec:
    return CameraSpec.model_validate(
        {
            "id": camera_id,
            "name": camera_id.title(),
            "source": source,
            "location": LOCATION,
            "zones": [ZONE],
            **changes,
        }
    )


def publish(publisher: CameraPublisher, camera: CameraSpec, version: int) -> None:
    """What the API does when an integrator saves a camera."""
    publisher.upsert(Camera(id=camera.id, version=version, spec=spec_json(camera)))


@pytest.fixture
def running(redis_server, detector, tmp_path) -> Iterator[tuple[PipelineService, redis.Redis]]:
    settings = RedisSettings(url=redis_server.url)
    settings.outbox.path = str(tmp_path / "outbox" / "{worker_id}.outbox")
    pipeline_settings = PipelineSettings(
        worker_id="updates-test", health_interval_s=0.5, thumbnail_interval_s=0.5
    )
    service = PipelineService(
        [], detector, AlertPublisher.from_settings(settings), pipeline_settings
    )
    follower = CameraConfigFollower(
        service.publisher.client,
        settings.camera_config_stream,
        service.apply,
        wants=pipeline_settings.runs_api_camera,
        block_ms=200,
    )
    stop = threading.Event()
    worker = threading.Thread(target=service.run, args=(stop,), daemon=True)
    worker.start()
    follower.start()
    try:
        yield service, redis.Redis.from_url(redis_server.url)
    finally:
        follower.stop()
        stop.set()
        worker.join(30)


def health(client: redis.Redis, camera_id: str) -> dict | None:
    import json

    raw = client.hget("sharpeyes:camera-health", camera_id)
    return json.loads(raw) if raw else None


def test_cameras_added_changed_and_removed_while_running(running, rtsp_server) -> None:
    service, client = running
    publisher = CameraPublisher(client, "sharpeyes:camera-config")
    pier = spec("ferry-pier", rtsp_server.url("cam1"))

    publish(publisher, pier, 1)
    wait_for(lambda: (health(client, "ferry-pier") or {}).get("frames_analysed", 0) > 0, 30)
    thumbnail = wait_for(lambda: client.get("sharpeyes:camera-health:thumbnail:ferry-pier"), 15)
    image = cv2.imdecode(np.frombuffer(thumbnail, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[1] == 640, "a 640-px view for the zone editor"

    # New zones only: the stream keeps running, the rules use the new zone.
    source = service.camera("ferry-pier").source
    moved = dict(ZONE, id="gate", polygon=[[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [0.0, 0.5]])
    publish(publisher, spec("ferry-pier", rtsp_server.url("cam1"), zones=[moved]), 2)
    wait_for(
        lambda: (
            getattr(service.camera("ferry-pier"), "spec", None)
            and service.camera("ferry-pier").spec.zones[0].id == "gate"
        ),
        15,
    )
    assert service.camera("ferry-pier").source is source, "zones change in place"
    gate_rules = service.camera("ferry-pier").analyzer.zones[0].monitor

    # An older version arriving late changes nothing.
    publish(publisher, pier, 1)
    # A new stream URL restarts the camera's source.
    publish(publisher, spec("ferry-pier", rtsp_server.url("cam2"), zones=[moved]), 3)
    wait_for(lambda: getattr(service.camera("ferry-pier"), "source", source) is not source, 15)
    assert service.camera("ferry-pier").spec.zones[0].id == "gate"
    assert not source.alive, "the old stream is closed"
    # The same camera with the same zone: its gathering state (an open episode) goes on.
    assert service.camera("ferry-pier").analyzer.zones[0].monitor is gate_rules

    publisher.delete("ferry-pier", 4)
    wait_for(lambda: service.camera("ferry-pier") is None, 15)
    wait_for(lambda: health(client, "ferry-pier") is None, 10)
    assert client.get("sharpeyes:camera-health:thumbnail:ferry-pier") is None
    assert service.scheduler.demand_fps == 0


def test_a_worker_that_starts_later_loads_the_current_cameras(redis_server) -> None:
    client = redis.Redis.from_url(redis_server.url)
    publisher = CameraPublisher(client, "sharpeyes:camera-config")
    for index in range(6):
        publish(publisher, spec(f"cam-{index}", f"rtsp://192.0.2.{index + 1}/live"), 1)
    publisher.delete("cam-5", 2)
    client.hset(current_key("sharpeyes:camera-config"), "broken", "{not json")

    applied: list[CameraChange] = []
    shard = PipelineSettings(shard="0/2")
    follower = CameraConfigFollower(
        client,
        "sharpeyes:camera-config",
        applied.append,
        wants=shard.runs_api_camera,
        reserved=frozenset({"cam-0"}),
    )
    last_id = follower.sync()
    mine = sorted(c.camera_id for c in applied)
    expected = sorted(f"cam-{i}" for i in range(1, 5) if shard.runs_api_camera(f"cam-{i}"))
    assert mine == expected, "its shard of the API cameras, never a config camera's id"

    # Changes made while it was away from Redis are caught up by the next sync.
    assert expected, "the shard holds some of the cameras"
    before, kept = set(follower.versions), expected[0]
    applied.clear()
    for camera_id in before - {kept}:
        publisher.delete(camera_id, 5)
    follower.sync()
    assert {c.camera_id for c in applied if c.op == "delete"} == before - {kept}
    assert set(follower.versions) == {kept}
    assert last_id != "0-0"


def test_malformed_changes_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="version"):
        CameraChange.from_stream_fields({"v": "7", "op": "upsert", "camera_id": "x"})
    with pytest.raises(ValueError, match="not JSON"):
        CameraChange.from_stream_fields(
            {"v": "1", "op": "upsert", "camera_id": "x", "version": "1", "spec": "{"}
        )
    other = spec("y", "rtsp://192.0.2.1/x")
    with pytest.raises(ValueError, match="names camera y"):
        CameraChange.from_current_value("x", CameraChange("upsert", "y", 1, other).current_value())
    secret = spec("z", "rtsp://192.0.2.1/x", username="u", password="pw-123")
    fields = CameraChange("upsert", "z", 1, secret).stream_fields()
    parsed = CameraChange.from_stream_fields(fields)
    assert parsed.spec is not None and parsed.spec.password.get_secret_value() == "pw-123"


def test_following_an_idle_stream_is_not_a_redis_failure(redis_server) -> None:
    """With the pipeline's own client (5-s socket timeout), a wait that sees no change
    returns quietly instead of timing out as if Redis were gone."""
    settings = RedisSettings(url=redis_server.url)
    client = AlertPublisher.from_settings(settings).client
    follower = CameraConfigFollower(client, settings.camera_config_stream, lambda _c: None)
    # The wait and the socket timeout were both 5 s: which one ended first was a race that a
    # loaded machine lost every few seconds (the demo logged it). Now there is a margin.
    socket_timeout = client.connection_pool.connection_kwargs["socket_timeout"]
    assert follower.block_ms / 1000 <= socket_timeout / 2
    assert follower.follow("0-0") == "0-0"


def test_removing_a_camera_ends_its_open_gatherings(redis_server, detector, tmp_path) -> None:
    """A camera deleted (or disabled) while a gathering is open: the episode is ended, so the
    operator's case does not stay open forever; a restart with a new stream ends nothing."""
    from alerting.events import AlertEvent
    from camera_adapters.frames import Frame
    from tests.test_gathering_analysis import HEIGHT, IMAGE, WIDTH, crowd, people

    settings = RedisSettings(url=redis_server.url)
    settings.outbox.path = str(tmp_path / "outbox" / "{worker_id}.outbox")
    service = PipelineService(
        [], detector, AlertPublisher.from_settings(settings), PipelineSettings(worker_id="rm")
    )
    rng = np.random.default_rng(5)
    gathered = [people(crowd(4, (640, 600), 40, rng)) for _ in range(4)]

    def open_episode(camera_id: str, url: str) -> str:
        service.put_camera(spec(camera_id, url))
        camera = service.camera(camera_id)
        assert camera is not None
        events = []
        for i, detections in enumerate(gathered):  # what the inference workers would feed
            frame = Frame(camera_id, 1_700_000_000.0 + i, IMAGE, (WIDTH, HEIGHT), i)
            events += [a.event for a in camera.analyzer.analyse(frame, detections)]
            camera.last_frame, camera.last_detections = frame, detections
        (started,) = events
        return started.episode_id

    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    service.sink.start()
    try:
        pier = open_episode("pier", "rtsp://127.0.0.1:9/pier")
        service.put_camera(spec("pier", "rtsp://127.0.0.1:9/pier-hd"))  # a new stream only
        gate = open_episode("gate", "rtsp://127.0.0.1:9/gate")
        service.remove_camera("gate")
        service.remove_camera("pier")
    finally:
        service.sink.close()
    events = [AlertEvent.from_stream_fields(f) for _, f in client.xrange(settings.stream)]
    ended = {e.episode_id: e for e in events if e.kind.value == "ended"}
    assert set(ended) == {pier, gate}, "each open episode ended once, on removal only"
    assert all("removed or disabled" in (e.reason or "") for e in ended.values())
    assert ended[gate].count == 4 and ended[gate].camera_id == "gate"
