"""The API additions the console needs, and how the console is served.

- ``GET /cases/{id}/actions``: what the caller may do now (state × role), and that it
  agrees with what the workflow then accepts;
- ``GET /cameras/{id}/thumbnail.jpg``: the pipeline's latest frame from Redis (real JPEG
  written under ``RedisSettings.thumbnail_key``), the alert-snapshot fallback, scope, 404s;
- ``POST /cameras/onvif-probe``: the real ONVIF client against the test device, behind the
  same SSRF guard as the connection test (and never following the device's XAddrs);
- ``/console``: static files with a strict CSP, ``/`` redirecting there, nothing external.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerting.events import AlertLocation, PersonBox
from alerting.publisher import AlertPublisher
from api.routes.console import CONSOLE_DIR
from api.settings import CameraProbeSettings, HttpSettings
from camera_adapters.spec import CameraSpec, Location
from tests.api_fixtures import Api, make_config, running_api
from tests.console_support import street_jpeg
from tests.factories import make_event
from tests.helpers import wait_for
from tests.onvif_device import DeviceConfig, OnvifTestDevice, Profile

HARBOUR = AlertLocation(
    district="Demo District",
    street="Riverside Street",
    community="Harbour Community",
    grid_cell="grid-07",
)


def plaza_camera() -> CameraSpec:
    return CameraSpec(
        id="plaza-east",
        name="Plaza east",
        source="rtsp://198.51.100.7:554/plaza",
        location=Location(**HARBOUR.model_dump()),
    )


@pytest.fixture
def console_api(sqlite_url: str, redis_server) -> Iterator[Api]:  # type: ignore[no-untyped-def]
    with running_api(make_config(sqlite_url, redis_server.url, cameras=[plaza_camera()])) as api:
        yield api


def raise_alert(api: Api, *, snapshot: bool = True, **changes: object) -> int:
    """Publish a real alert event (with a real JPEG snapshot) and wait for its case."""
    publisher = AlertPublisher.from_settings(api.config.redis)
    people = [PersonBox(box=(0.3, 0.55, 0.36, 0.85), score=0.9)]
    event = make_event(camera_id="plaza-east", location=HARBOUR, people=people, **changes)
    if snapshot:
        jpeg = street_jpeg([p.box for p in people], event.zone_polygon, label="alert")
        ref = publisher.store_snapshot(event.event_id, jpeg, 960, 540)
        event = event.model_copy(update={"snapshot": ref})
    publisher.publish(event)
    publisher.close()

    def case_id() -> int | None:
        items = api.get("admin", "/alerts", params={"camera_id": "plaza-east"}).json()["items"]
        found = [a for a in items if a["event_id"] == event.event_id]
        return found[0]["case_id"] if found else None

    return int(wait_for(case_id, 20))  # type: ignore[arg-type]


def actions(api: Api, user: str, case_id: int) -> list[str]:
    response = api.get(user, f"/cases/{case_id}/actions")
    assert response.status_code == 200, response.text
    return [a["action"] for a in response.json()]


# -- actions ---------------------------------------------------------------------------------
def test_actions_follow_state_and_role(console_api: Api) -> None:
    api = console_api
    case_id = raise_alert(api, snapshot=False)
    assert actions(api, "operator", case_id) == ["acknowledge", "dismiss"]
    assert actions(api, "dispatcher", case_id) == ["acknowledge", "dismiss"]
    answer = api.get("dispatcher", f"/cases/{case_id}/actions").json()
    assert answer[0] == {
        "action": "acknowledge",
        "to": "acknowledged",
        "method": "POST",
        "path": f"/cases/{case_id}/transitions",
        "needs": [],
    }
    assert answer[1]["needs"] == ["reason"]
    # another street and the integrator see nothing of it
    assert api.get("hillside", f"/cases/{case_id}/actions").status_code == 404
    assert api.get("integrator", f"/cases/{case_id}/actions").status_code == 403

    ack = api.post("operator", f"/cases/{case_id}/transitions", json={"to": "acknowledged"})
    assert ack.status_code == 200
    # an operator may not dispatch: the action is not offered, and the API refuses it
    assert actions(api, "operator", case_id) == ["dismiss"]
    assert actions(api, "dispatcher", case_id) == ["dispatch", "dismiss"]
    unit = api.units("dispatcher")["Riverside police station"]
    refused = api.post("operator", f"/cases/{case_id}/dispatches", json={"unit_ids": [unit]})
    assert refused.status_code == 403
    dispatch = next(a for a in api.get("dispatcher", f"/cases/{case_id}/actions").json())
    assert dispatch["path"] == f"/cases/{case_id}/dispatches"
    assert dispatch["needs"] == ["unit_ids"]
    sent = api.post("dispatcher", dispatch["path"], json={"unit_ids": [unit]})
    assert sent.status_code == 200 and sent.json()["state"] == "dispatched"

    assert actions(api, "operator", case_id) == ["start", "feedback", "dismiss"]
    assert actions(api, "dispatcher", case_id) == ["start", "feedback", "add_units", "dismiss"]
    feedback = api.post(
        "operator", f"/cases/{case_id}/feedback", json={"note": "on scene", "unit_id": unit}
    )
    assert feedback.status_code == 201
    assert actions(api, "operator", case_id) == ["feedback", "dismiss"]
    assert actions(api, "dispatcher", case_id) == ["resolve", "feedback", "add_units", "dismiss"]
    resolved = api.post("dispatcher", f"/cases/{case_id}/transitions", json={"to": "resolved"})
    assert resolved.status_code == 200
    # verification is a dispatcher's: the operator may only add feedback
    assert actions(api, "operator", case_id) == ["feedback"]
    assert actions(api, "dispatcher", case_id) == ["close", "reopen", "feedback"]
    closing = api.post("operator", f"/cases/{case_id}/transitions", json={"to": "closed"})
    assert closing.status_code == 403
    closed = api.post("dispatcher", f"/cases/{case_id}/transitions", json={"to": "closed"})
    assert closed.status_code == 200
    assert actions(api, "dispatcher", case_id) == []


# -- thumbnails ------------------------------------------------------------------------------
def test_thumbnail_from_redis_with_alert_fallback_and_scope(console_api: Api) -> None:
    api = console_api
    url = "/cameras/plaza-east/thumbnail.jpg"
    missing = api.get("integrator", url)
    assert missing.status_code == 404
    detail = missing.json()["detail"]
    assert "no current picture" in detail and "/cameras/plaza-east/health" in detail
    assert api.get("integrator", url, params={"fallback": "alert"}).status_code == 404

    case_id = raise_alert(api)  # an alert snapshot of this camera now exists
    fallback = api.get("integrator", url, params={"fallback": "alert"})
    assert fallback.status_code == 200
    assert fallback.headers["content-type"] == "image/jpeg"
    assert fallback.headers["x-thumbnail-source"] == "alert"
    alert = api.get("admin", "/alerts", params={"case_id": case_id}).json()["items"][0]
    assert fallback.content == api.get("admin", alert["snapshot_url"]).content
    assert api.get("integrator", url).status_code == 404  # no fallback unless asked

    # the pipeline worker's frame (the contract: RedisSettings.thumbnail_key, with a TTL)
    jpeg = street_jpeg(label="live")
    redis = api.app.state.redis
    redis.set(api.config.redis.thumbnail_key("plaza-east"), jpeg, ex=60)
    live = api.get("integrator", url, params={"fallback": "alert"})
    assert live.status_code == 200 and live.content == jpeg
    assert live.headers["x-thumbnail-source"] == "live"
    assert live.headers["cache-control"] == "no-store"
    assert api.get("operator", url).content == jpeg  # every role may read cameras
    # another street: the camera does not exist for them
    assert api.get("hillside", url).status_code == 404
    assert api.get("hillside", url).json()["detail"] == "camera 'plaza-east' does not exist"
    assert api.get("integrator", "/cameras/nowhere/thumbnail.jpg").status_code == 404
    bad = api.get("integrator", url, params={"fallback": "video"})
    assert bad.status_code == 422


# -- ONVIF probe -----------------------------------------------------------------------------
USER, SECRET = "admin", "Cam-p@ss:1"


class ElsewhereDevice(OnvifTestDevice):
    """A device that advertises its services (XAddrs) on another address than it answers
    on: a client that followed them would connect to 127.0.0.2, where nothing listens."""

    @property
    def base(self) -> str:
        return f"http://127.0.0.2:{self.port}"


def device_config() -> DeviceConfig:
    return DeviceConfig(
        username=USER,
        password=SECRET,
        profiles=[
            Profile("main", "Main stream", "rtsp://127.0.0.1:8554/main", 1920, 1080, 25, 50),
            Profile("sub", "Sub stream", "rtsp://127.0.0.1:8554/sub", 704, 576, 25, 50),
        ],
    )


def test_onvif_probe_is_guarded_and_stays_on_the_checked_address(
    sqlite_url: str, redis_server
) -> None:  # type: ignore[no-untyped-def]
    body = {"username": USER, "password": SECRET}
    with ElsewhereDevice(device_config()) as device:
        address = f"127.0.0.1:{device.port}"
        with running_api(make_config(sqlite_url, redis_server.url)) as api:
            refused = api.post(
                "integrator", "/cameras/onvif-probe", json={**body, "address": address}
            )
            assert refused.status_code == 403
            assert "the ONVIF probe does not reach internal addresses" in refused.json()["detail"]
            assert device.log.operations == []  # nothing was sent
            assert (
                api.post(
                    "operator", "/cameras/onvif-probe", json={**body, "address": address}
                ).status_code
                == 403
            )
            malformed = api.post(
                "integrator", "/cameras/onvif-probe", json={**body, "address": "rtsp://x/y"}
            )
            assert malformed.status_code == 422 and "http://" in malformed.json()["detail"]
            no_name = api.post(
                "integrator", "/cameras/onvif-probe", json={**body, "address": "J\x1a\x87"}
            )
            assert no_name.status_code == 422
            assert "is not a valid host name" in no_name.json()["detail"]

        allowed = make_config(
            f"{sqlite_url}-2",
            redis_server.url,
            http=HttpSettings(camera_probe=CameraProbeSettings(allowed_networks=["127.0.0.0/8"])),
        )
        with running_api(allowed) as api:
            answer = api.post(
                "integrator", "/cameras/onvif-probe", json={**body, "address": address}
            )
            assert answer.status_code == 200, answer.text
            probe = answer.json()
            assert probe["ok"] and probe["stage"] == "done"
            assert (probe["manufacturer"], probe["model"], probe["serial"]) == (
                "SharpEyes",
                "TestCam-1",
                "SE0001",
            )
            assert probe["address"] == address
            streams = {p["token"]: p["stream_uri"] for p in probe["profiles"]}
            # the RTSP URIs keep their own port (not the ONVIF port the probe talked to)
            assert streams == {
                "main": "rtsp://127.0.0.1:8554/main",
                "sub": "rtsp://127.0.0.1:8554/sub",
            }
            assert probe["recommended_profile"] == "sub"
            assert probe["suggested_id"] == "sharpeyes-testcam-1-se0001"
            assert "media2_service:GetProfiles" in device.log.operations
            assert SECRET not in answer.text

            wrong = api.post(
                "integrator",
                "/cameras/onvif-probe",
                json={"address": address, "username": USER, "password": "wrong"},
            ).json()
            assert (wrong["ok"], wrong["stage"]) == (False, "auth")
            assert "rejected user 'admin'" in wrong["message"]
            device.stop()
            gone = api.post(
                "integrator", "/cameras/onvif-probe", json={**body, "address": address}
            ).json()
            assert (gone["ok"], gone["stage"]) == (False, "connect")


# -- serving the console ---------------------------------------------------------------------
def test_console_is_served_same_origin_with_a_strict_policy(console_api: Api) -> None:
    client = console_api.client
    root = client.get("/", follow_redirects=False)
    assert root.status_code in (302, 307) and root.headers["location"] == "/console/"
    page = client.get("/console/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script type="module" src="js/main.js">' in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert page.headers["cache-control"] == "no-cache"
    module = client.get("/console/js/main.js")
    assert module.status_code == 200
    assert module.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert client.get("/console/js/nothing.js").status_code == 404
    assert "/console" not in client.get("/openapi.json").json()["paths"]


def test_console_files_load_nothing_from_elsewhere_and_stay_small() -> None:
    files = [p for p in CONSOLE_DIR.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} <= {".html", ".js", ".css"}
    external = re.compile(
        r"""(?:src|href)\s*=\s*["'](?:https?:)?//|@import|url\(\s*["']?(?:https?:)?//|"""
        r"""(?:from|import)\s*\(?\s*["'](?:https?:)?//"""
    )
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not external.search(text), f"{path} refers to another origin"
        assert path.stat().st_size < 200_000, f"{path} is unexpectedly large"
    # every module a file imports exists (no bundler resolves them)
    for path in CONSOLE_DIR.rglob("*.js"):
        for target in re.findall(r'from "(\.[^"]+)"', path.read_text()):
            assert (path.parent / target).resolve().is_file(), f"{path}: {target} is missing"
    assert Path(CONSOLE_DIR / "index.html").is_file()


def test_console_strings_are_complete_in_both_languages() -> None:
    """UI strings live in one file; a key given twice would silently hide the first."""
    text = (CONSOLE_DIR / "js" / "i18n.js").read_text(encoding="utf-8")
    english = text[text.index("  en: {") : text.index('  "zh-CN": {')]
    chinese = text[text.index('  "zh-CN": {') : text.index("\n};")]
    keys = {}
    for name, block in (("en", english), ("zh-CN", chinese)):
        found = re.findall(r'^\s*"([\w.]+)":', block, re.M)
        duplicates = sorted({k for k in found if found.count(k) > 1})
        assert duplicates == [], f"{name}: {duplicates} given twice"
        keys[name] = set(found)
    assert keys["en"] == keys["zh-CN"]
    assert len(keys["en"]) > 200
    # every t("key") the views use exists
    used = set()
    for path in CONSOLE_DIR.rglob("*.js"):
        if path.name != "i18n.js":  # its comments show t("key") as an example
            used |= set(re.findall(r'\bt\(\s*"([\w.]+)"', path.read_text(encoding="utf-8")))
    assert used - keys["en"] == set()
