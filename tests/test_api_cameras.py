"""Cameras for integrators: registry (config + API), zones validated, changes published to
Redis for the pipeline, a connection test that refuses internal addresses by default."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from api.settings import CameraProbeSettings, HttpSettings
from camera_adapters.spec import CameraSpec
from tests.api_fixtures import PASSWORD, Api, make_config, running_api

CONFIG_CAMERA = CameraSpec(
    id="plaza-east",
    name="Plaza east",
    source="rtsp://192.0.2.10/live",
    location={
        "district": "Demo District",
        "street": "Riverside Street",
        "community": "Harbour Community",
        "grid_cell": "grid-07",
    },
)


def camera_body(**changes):  # type: ignore[no-untyped-def]
    body = {
        "id": "ferry-pier",
        "name": "Ferry pier",
        "source": "rtsp://192.0.2.20:554/stream1",
        "username": "viewer",
        "password": "s3cret-pw",
        "location": {
            "district": "Demo District",
            "street": "Riverside Street",
            "community": "Harbour Community",
            "grid_cell": "grid-08",
        },
        "zones": [
            {
                "id": "pier",
                "name": "Pier head",
                "polygon": [[0.1, 0.5], [0.9, 0.5], [0.9, 1.0], [0.1, 1.0]],
                "gathering": {"min_people": 25, "min_duration_s": 45},
            }
        ],
    }
    body.update(changes)
    return body


def test_camera_registry_and_pipeline_messages(tmp_path: Path, redis_server) -> None:
    config = make_config(
        f"sqlite:///{tmp_path / 'cams.db'}", redis_server.url, cameras=[CONFIG_CAMERA]
    )
    with running_api(config) as api:
        check_registry(api, redis_server.url)


def check_registry(api: Api, redis_url: str) -> None:
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    listed = {c["id"]: c for c in api.get("integrator", "/cameras").json()}
    assert listed["plaza-east"]["origin"] == "config"
    assert listed["plaza-east"]["centre_id"] == api.centre("demo.riverside.harbour")
    refused = api.put("integrator", "/cameras/plaza-east", json=camera_body(id="plaza-east"))
    assert refused.status_code == 409 and "config file" in refused.json()["detail"]

    crossing = camera_body(
        zones=[{"id": "bow", "name": "Bow tie", "polygon": [[0, 0], [1, 1], [1, 0], [0, 1]]}]
    )
    bad = api.post("integrator", "/cameras", json=crossing)
    assert bad.status_code == 422
    problem = bad.json()["detail"][0]
    assert problem["loc"] == ["body", "zones", 0, "polygon"]
    assert problem["msg"].startswith("the polygon's edges 0-1 and 2-3 cross each other")
    assert (
        api.post("integrator", "/cameras", json=camera_body(source="ftp://x/y")).status_code == 422
    )
    assert api.post("operator", "/cameras", json=camera_body()).status_code == 403

    created = api.post("integrator", "/cameras", json=camera_body())
    assert created.status_code == 201, created.text
    camera = created.json()
    assert camera["published"] is True and camera["version"] == 1
    assert camera["has_password"] and "s3cret" not in json.dumps(camera)
    assert api.post("integrator", "/cameras", json=camera_body()).status_code == 409
    ((_, first),) = raw.xrange("sharpeyes:camera-config")
    assert (
        first["op"] == "upsert" and first["camera_id"] == "ferry-pier" and first["version"] == "1"
    )
    assert json.loads(first["spec"])["password"] == "s3cret-pw", "workers need the credentials"
    current = json.loads(raw.hget("sharpeyes:camera-config:current", "ferry-pier"))
    assert current["version"] == 1 and CameraSpec.model_validate(current["spec"]).id == "ferry-pier"

    # A form never sees the password, so a PUT without one keeps it.
    updated = api.put(
        "integrator",
        "/cameras/ferry-pier",
        json=camera_body(password=None, name="Ferry pier (north)"),
    )
    assert updated.status_code == 200 and updated.json()["version"] == 2
    assert updated.json()["has_password"]
    zones = api.put(
        "integrator",
        "/cameras/ferry-pier/zones",
        json=[
            {
                "id": "apron",
                "name": "Apron",
                "polygon": [[0, 0.5], [1, 0.5], [1, 1]],
                "gathering": {"min_people": 40},
            }
        ],
    )
    assert zones.status_code == 200 and zones.json()["zones"][0]["gathering"]["min_people"] == 40
    bad_zone = api.put(
        "integrator",
        "/cameras/ferry-pier/zones",
        json=[{"id": "a", "name": "A", "polygon": [[0, 0], [2, 0], [0, 1]]}],
    )
    assert bad_zone.status_code == 422 and "outside the image" in bad_zone.json()["message"]
    entries = raw.xrange("sharpeyes:camera-config")
    assert [e[1]["version"] for e in entries] == ["1", "2", "3"]
    assert json.loads(entries[-1][1]["spec"])["password"] == "s3cret-pw"

    # Scope: a street integrator cannot place cameras in another street's grid cells.
    api.post(
        "admin",
        "/users",
        json={
            "username": "hill-int",
            "password": PASSWORD,
            "role": "integrator",
            "centre_id": api.centre("demo.hillside"),
        },
    )
    hill = api.post("hill-int", "/cameras", json=camera_body(id="x-cam"))
    assert hill.status_code == 422 and "not in your centre" in hill.json()["detail"]
    assert api.get("hill-int", "/cameras/ferry-pier").status_code == 404
    assert api.get("hill-int", "/cameras").json() == []

    # Health comes from what the pipeline writes; filtered by scope.
    raw.hset(
        "sharpeyes:camera-health", "ferry-pier", json.dumps({"state": "live", "frames_analysed": 3})
    )
    assert api.get("operator", "/cameras/ferry-pier/health").json()["state"] == "live"
    assert api.get("hill-int", "/cameras/health").json()["cameras"] == {}
    assert "ferry-pier" in api.get("operator", "/cameras/health").json()["cameras"]

    assert api.delete("integrator", "/cameras/ferry-pier").status_code == 204
    assert raw.xrange("sharpeyes:camera-config")[-1][1]["op"] == "delete"
    assert raw.hget("sharpeyes:camera-config:current", "ferry-pier") is None
    assert api.get("integrator", "/cameras/ferry-pier").status_code == 404


def test_connection_test_refuses_internal_addresses(
    tmp_path: Path, redis_server, rtsp_server
) -> None:
    with running_api(make_config(f"sqlite:///{tmp_path / 'a.db'}", redis_server.url)) as guarded:
        check_guarded(guarded, rtsp_server)
    http = HttpSettings(
        camera_probe=CameraProbeSettings(allowed_networks=["127.0.0.0/8"], timeout_s=10)
    )
    config = make_config(f"sqlite:///{tmp_path / 'b.db'}", redis_server.url, http=http)
    with running_api(config) as open_api:
        check_probe(open_api, rtsp_server)


def check_guarded(guarded: Api, rtsp_server) -> None:  # type: ignore[no-untyped-def]
    loopback = guarded.post("integrator", "/cameras/test", json={"source": rtsp_server.url("cam1")})
    assert loopback.status_code == 403
    assert "127.0.0.1, a loopback address" in loopback.json()["detail"]
    assert "allowed_networks" in loopback.json()["detail"]
    for source, status in [
        ("file:///etc/passwd", 422),
        ("http://169.254.169.254/latest", 422),
        ("rtsp://10.1.2.3/x", 403),
    ]:
        refused = guarded.post("integrator", "/cameras/test", json={"source": source})
        assert refused.status_code == status, (source, refused.text)
    assert (
        guarded.post("operator", "/cameras/test", json={"source": "rtsp://192.0.2.1/"}).status_code
        == 403
    )


def check_probe(open_api: Api, rtsp_server) -> None:  # type: ignore[no-untyped-def]
    result = open_api.post(
        "integrator", "/cameras/test", json={"source": rtsp_server.url("cam1")}
    ).json()
    assert result["ok"] is True, result
    assert (
        any(m.startswith("video H264") for m in result["media"])
        and result["address"] == "127.0.0.1"
    )
    missing = open_api.post(
        "integrator", "/cameras/test", json={"source": rtsp_server.url("nothing-here")}
    ).json()
    assert missing["ok"] is False and missing["stage"] == "describe" and missing["status"] == 404
    closed_port = rtsp_server.url("cam1").replace(str(rtsp_server.port), "1")
    refused = open_api.post("integrator", "/cameras/test", json={"source": closed_port}).json()
    assert refused["ok"] is False and refused["stage"] == "connect"
