"""The operators' console in a real browser (Debian chromium, headless, via Playwright).

One real API (uvicorn on 127.0.0.1, SQLite, a real redis-server, the real alert consumer and
live feed) serves the console for the whole module. Alerts come in as the pipeline sends
them: real AlertEvents with real JPEG snapshots, published to the Redis Stream with
AlertPublisher. Screenshots go to tests/artifacts/ (and, with SHARPEYES_SCREENSHOTS=1, to
docs/screenshots/ for the README).

The tests run in order and build on each other's cases, like a shift in a control room.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import cv2
import pytest

from alerting.events import AlertLocation, EventKind, PersonBox, Severity
from alerting.publisher import AlertPublisher
from api import workflow
from api.orm import Case
from api.settings import CameraProbeSettings, HttpSettings
from api.timeutil import utcnow
from camera_adapters.spec import CameraSpec, Location
from camera_adapters.zone_spec import ZoneSpec
from models.datafiles import DataFiles
from sharpeyes.devservers.redis_server import RedisServer, find_redis_binary
from tests.api_fixtures import make_config
from tests.conftest import ARTIFACTS, ROOT
from tests.console_support import PASSWORD, ServedApi, chromium, http_json, login, street_jpeg
from tests.factories import make_event
from tests.onvif_device import DeviceConfig, OnvifTestDevice, Profile

pytestmark = pytest.mark.slow

HARBOUR = AlertLocation(
    district="Demo District",
    street="Riverside Street",
    community="Harbour Community",
    grid_cell="grid-07",
)
ORCHARD = AlertLocation(
    district="Demo District",
    street="Hillside Street",
    community="Orchard Community",
    grid_cell="grid-21",
)
PLAZA_ZONE = [(0.25, 0.55), (0.9, 0.55), (0.9, 1.0), (0.25, 1.0)]
PEOPLE = [
    PersonBox(box=(0.30, 0.50, 0.36, 0.82), score=0.91),
    PersonBox(box=(0.45, 0.56, 0.51, 0.90), score=0.88),
    PersonBox(box=(0.62, 0.58, 0.68, 0.93), score=0.85),
    PersonBox(box=(0.05, 0.40, 0.09, 0.60), score=0.70, in_zone=False),
]
WAIT_MS = 20_000


def camera(camera_id: str, name: str, where: AlertLocation, zones=()) -> CameraSpec:  # type: ignore[no-untyped-def]
    return CameraSpec(
        id=camera_id,
        name=name,
        source=f"rtsp://198.51.100.7:554/{camera_id}",
        location=Location(**where.model_dump()),
        zones=list(zones),
    )


@dataclass
class Env:
    api: ServedApi
    redis: RedisServer
    browser: Any
    shots: list[str] = field(default_factory=list)
    cases: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.api.url

    def publish(
        self,
        *,
        severity: Severity = Severity.WARNING,
        count: int = 23,
        where: AlertLocation = HARBOUR,
        camera_id: str = "plaza-east",
        camera_name: str = "Plaza east entrance",
    ) -> str:
        """What a pipeline worker does: store the snapshot, XADD the event."""
        publisher = AlertPublisher.from_settings(self.api.config.redis)
        event = make_event(
            episode_id=uuid.uuid4().hex,
            kind=EventKind.STARTED,
            camera_id=camera_id,
            camera_name=camera_name,
            location=where,
            severity=severity,
            count=count,
            zone_polygon=PLAZA_ZONE,
            zone_name="Entrance floor",
            people=PEOPLE,
            density_per_m2=1.8,
            reason=f"{count} people in Entrance floor for 30 s",
        )
        jpeg = street_jpeg([p.box for p in PEOPLE], PLAZA_ZONE, label=camera_name)
        ref = publisher.store_snapshot(event.event_id, jpeg, 960, 540)
        publisher.publish(event.model_copy(update={"snapshot": ref}))
        publisher.close()
        return event.event_id

    def case_of(self, event_id: str, timeout: float = 20) -> int:
        token = login(self.url, "admin")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            page = http_json(f"{self.url}/alerts?limit=100", token)
            for alert in page["items"]:  # type: ignore[index]
                if alert["event_id"] == event_id:
                    return int(alert["case_id"])
            time.sleep(0.2)
        raise AssertionError(f"no case for event {event_id} within {timeout} s")

    def open(self, username: str, *, language: str = "en"):  # type: ignore[no-untyped-def]
        """A new browser context (own sessionStorage) logged in as ``username``."""
        context = self.browser.new_context(viewport={"width": 1920, "height": 1080})
        context.add_init_script(  # the first visit's language; a switch is remembered
            f"localStorage.getItem('sharpeyes.lang') || "
            f"localStorage.setItem('sharpeyes.lang', '{language}')"
        )
        page = context.new_page()
        page.errors = []  # type: ignore[attr-defined]
        page.on("pageerror", lambda error: page.errors.append(str(error)))  # type: ignore[attr-defined]
        page.on(
            "console",
            lambda m: page.errors.append(m.text) if m.type == "error" else None,  # type: ignore[attr-defined]
        )
        page.goto(f"{self.url}/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("[data-testid=user]", timeout=WAIT_MS)
        return page

    def shot(self, page, name: str, *, publish: bool = True) -> None:  # type: ignore[no-untyped-def]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"console-{name}.png"
        page.screenshot(path=str(path))
        if publish:
            self.shots.append(path.name)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("console")
    plaza_zone = ZoneSpec(id="entrance", name="Entrance floor", polygon=PLAZA_ZONE)
    config = make_config(
        f"sqlite:///{tmp / 'api.db'}",
        "redis://127.0.0.1:1/0",  # replaced below, once Redis has its port
        cameras=[
            camera("plaza-east", "Plaza east entrance", HARBOUR, [plaza_zone]),
            camera("orchard-gate", "Orchard gate", ORCHARD),
        ],
        # the ONVIF test camera answers on 127.0.0.1: allow the probe to reach it
        http=HttpSettings(camera_probe=CameraProbeSettings(allowed_networks=["127.0.0.0/8"])),
    )
    with RedisServer(binary=find_redis_binary(), data_dir=tmp / "redis") as redis:
        config = config.model_copy(
            update={"redis": config.redis.model_copy(update={"url": redis.url})}
        )
        api = ServedApi(config).start()
        api.seed()
        try:
            with chromium() as browser:
                yield Env(api, redis, browser)
        finally:
            api.stop()


def wait_js(page, expression: str, timeout: float = WAIT_MS / 1000) -> Any:  # type: ignore[no-untyped-def]
    """Poll a JavaScript expression until it is truthy. (Playwright's wait_for_function
    evaluates its predicate with eval, which the console's CSP rightly forbids.)"""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{expression} stayed falsy for {timeout} s")
        time.sleep(0.1)


def assert_clean(page) -> None:  # type: ignore[no-untyped-def]
    """No JavaScript errors (uncaught exceptions or console errors) on the page. The
    browser logs every 4xx answer; those the tests provoke (a refused zone, a case of
    another street, a camera without a thumbnail) are shown to the user, not errors."""
    expected = "Failed to load resource: the server responded with a status of 4"
    errors = [e for e in page.errors if not e.startswith(expected)]
    assert errors == [], errors


# -- 1: an alert arrives live; acknowledge, dispatch; critical cue; escalation; resume ------
def test_alert_arrives_live_and_is_acknowledged_and_dispatched(env: Env) -> None:
    page = env.open("dispatcher")
    page.wait_for_selector("[data-testid=feed-state][data-state=live]", timeout=WAIT_MS)
    page.wait_for_selector("[data-testid=case-list] .empty", timeout=WAIT_MS)
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    event_id = env.publish()
    row = page.wait_for_selector(".case-row[data-state=reported]", timeout=WAIT_MS)
    case_id = env.case_of(event_id)
    env.cases["first"] = case_id
    assert row.get_attribute("data-case-id") == str(case_id)
    assert "New" in row.inner_text() and "23 people" in row.inner_text()
    assert page.evaluate("window.__sameDocument") is True

    row.click()
    page.wait_for_selector(f"[data-testid=case-detail][data-case-id='{case_id}']")
    # the snapshot (a real JPEG fetched with the token) with the boxes and zone over it
    wait_js(page, "document.querySelector('[data-testid=snapshot] img')?.naturalWidth === 960")
    overlay = page.locator("[data-testid=overlay]")
    overlay.locator("polygon.zone").wait_for(timeout=WAIT_MS)
    assert overlay.locator("rect.person").count() == 4
    assert overlay.locator("rect.person.outside").count() == 1
    assert page.inner_text("[data-testid=count]") == "23"
    assert "1.8 people/m²" in page.inner_text(".facts")
    assert page.locator("[data-testid=timeline] li").count() == 1
    buttons = page.locator("[data-testid=actions] button.action")
    assert buttons.all_inner_texts() == ["Acknowledge", "Dismiss as false alarm"]

    page.click("[data-action=acknowledge]")
    page.wait_for_selector("[data-testid=case-state][data-state=acknowledged]", timeout=WAIT_MS)
    page.wait_for_selector(f".case-row[data-case-id='{case_id}'][data-state=acknowledged]")

    page.click("[data-action=dispatch]")
    form = page.locator("[data-testid=form-dispatch]")
    form.locator("label.unit-choice", has_text="Riverside police station").locator("input").check()
    form.locator("textarea[name=note]").fill("Crowd at the east entrance: send a car")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("[data-testid=case-state][data-state=dispatched]", timeout=WAIT_MS)
    page.wait_for_selector(f".case-row[data-case-id='{case_id}'][data-state=dispatched]")
    assert "Riverside police station" in page.inner_text("[data-testid=dispatches]")
    trail = page.inner_text("[data-testid=timeline]")
    assert "Reported → Acknowledged" in trail and "Acknowledged → Dispatched" in trail
    assert "Units: Riverside police station" in trail
    assert "send a car" in trail
    case = http_json(f"{env.url}/cases/{case_id}", login(env.url, "admin"))
    assert case["state"] == "dispatched"  # type: ignore[index]
    assert [d["unit_name"] for d in case["dispatches"]] == ["Riverside police station"]  # type: ignore[index]
    assert page.locator("[data-action=add_units]").count() == 1
    env.shot(page, "case", publish=False)  # the README's case view comes from the demo

    # a critical gathering: a beep and a banner until someone looks at it
    critical = env.case_of(env.publish(severity=Severity.CRITICAL, count=120))
    banner = page.wait_for_selector("[data-testid=critical-banner]", timeout=WAIT_MS)
    assert "CRITICAL" in banner.inner_text()
    assert page.evaluate("document.body.dataset.beeps") == "1"
    page.wait_for_selector(f".case-row.severity-critical[data-case-id='{critical}']")
    banner.query_selector("button.primary").click()
    page.wait_for_selector(f"[data-testid=case-detail][data-case-id='{critical}']")
    assert page.locator("[data-testid=critical-banner]").count() == 0

    # an unhandled notice (community tier) escalates to the street: a badge appears
    notice = env.case_of(env.publish(severity=Severity.NOTICE, count=8))
    page.wait_for_selector(f".case-row[data-case-id='{notice}']", timeout=WAIT_MS)
    escalated = env.api.app.state.escalator.run_once(now=utcnow() + timedelta(hours=1))
    assert notice in [e.case_id for e in escalated]
    badge = page.wait_for_selector("[data-testid=escalations]", timeout=WAIT_MS)
    assert badge.query_selector(".count").inner_text() == str(len(escalated))
    page.wait_for_selector(f".case-row[data-case-id='{notice}'] [data-testid=row-escalated]")
    badge.click()
    page.wait_for_selector(f"[data-testid=case-detail][data-case-id='{escalated[-1].case_id}']")
    assert page.locator("[data-testid=escalations]").count() == 0
    env.cases["notice"] = notice

    # the API restarts; a change made meanwhile reaches the console by resuming the feed
    # (?after=<last id>): no page reload and no re-read of the case list
    lists: list[str] = []
    page.on("request", lambda r: lists.append(r.url) if "/cases?" in r.url else None)
    env.api.stop()
    page.wait_for_selector("[data-testid=feed-state][data-state=reconnecting]", timeout=WAIT_MS)
    with env.api.app.state.sessions() as session:
        workflow.transition(session, session.get(Case, notice), "acknowledged", actor="li.wei")
        session.commit()
    env.api.start()
    page.wait_for_selector("[data-testid=feed-state][data-state=live]", timeout=WAIT_MS)
    page.wait_for_selector(f".case-row[data-case-id='{notice}'][data-state=acknowledged]")
    assert lists == []
    assert page.evaluate("window.__sameDocument") is True
    assert_clean(page)
    page.context.close()


# -- 2: each role sees only what it may do; another street sees nothing ----------------------
def test_roles_see_only_what_they_may_do(env: Env) -> None:
    case_id = env.case_of(env.publish(count=31))
    page = env.open("operator")
    assert page.locator("nav a").all_inner_texts() == ["Cases", "Cameras", "Statistics"]
    page.goto(f"{env.url}/console/#/cases/{case_id}")
    page.wait_for_selector(f"[data-testid=case-detail][data-case-id='{case_id}']")
    page.wait_for_selector("[data-testid=actions] button.action")
    actions = page.locator("[data-testid=actions] button.action").all_inner_texts()
    assert actions == ["Acknowledge", "Dismiss as false alarm"]
    page.click("[data-action=acknowledge]")
    page.wait_for_selector("[data-testid=case-state][data-state=acknowledged]", timeout=WAIT_MS)
    # an operator does not dispatch: the button is not there
    assert page.locator("[data-testid=actions] button.action").all_inner_texts() == [
        "Dismiss as false alarm"
    ]
    # dismissing needs a reason: the API's 422 is shown as it is
    page.click("[data-action=dismiss]")
    page.evaluate("document.querySelector('[data-testid=form-dismiss] textarea').required = false")
    page.click("[data-testid=form-dismiss] button[type=submit]")
    notice = page.wait_for_selector("[data-testid=action-notice].error")
    assert "dismissing a case needs a reason" in notice.inner_text()
    page.goto(f"{env.url}/console/#/cameras")
    page.wait_for_selector("[data-testid=camera-table]")
    assert page.locator("[data-testid=add-camera]").count() == 0
    assert_clean(page)
    page.context.close()

    page = env.open("hillside")  # Hillside Street: nothing of Riverside's cases
    page.wait_for_selector("[data-testid=case-list] .empty", timeout=WAIT_MS)
    page.goto(f"{env.url}/console/#/cases/{case_id}")
    error = page.wait_for_selector("[data-testid=case-error]", timeout=WAIT_MS)
    assert f"Case {case_id} does not exist or is not in your centre" in error.inner_text()
    page.goto(f"{env.url}/console/#/cameras")
    page.wait_for_selector("[data-testid=camera-table]")
    assert page.locator("tr[data-camera-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.cameraId)"
    ) == ["orchard-gate"]
    page.context.close()

    page = env.open("integrator")  # cameras only
    page.wait_for_selector("[data-testid=camera-table]")
    assert page.locator("nav a").all_inner_texts() == ["Cameras"]
    assert page.url.endswith("#/cameras")
    page.goto(f"{env.url}/console/#/cases/{case_id}")
    wait_js(page, "location.hash === '#/cameras'")
    assert page.locator("[data-testid=feed-state]").count() == 0
    assert page.locator("[data-testid=add-camera]").count() == 1
    assert_clean(page)
    page.context.close()


# -- 3: cameras with health; add by ONVIF probe; draw zones on the live thumbnail -------------
def test_integrator_adds_a_camera_and_draws_zones(env: Env, data: DataFiles) -> None:
    redis = env.api.app.state.redis
    settings = env.api.config.redis
    now = time.time()
    redis.hset(
        settings.health_key,
        mapping={
            "plaza-east": json.dumps(
                {
                    "state": "live",
                    "last_frame_at": now - 2,
                    "stream_size": [960, 540],
                    "reconnects": 0,
                    "decode_errors": 0,
                    "decode_mode": "keyframes",
                }
            ),
            "orchard-gate": json.dumps(
                {
                    "state": "failed_auth",
                    "last_frame_at": now - 600,
                    "reconnects": 3,
                    "last_error": "401 Unauthorized: check the camera's username and password",
                }
            ),
        },
    )
    onvif = DeviceConfig(
        username="admin",
        password="Cam-p@ss:1",
        profiles=[
            Profile("main", "Main stream", "rtsp://127.0.0.1:8554/main", 1920, 1080, 25, 50),
            Profile("sub", "Sub stream", "rtsp://127.0.0.1:8554/sub", 704, 576, 25, 50),
        ],
    )
    page = env.open("integrator")
    page.wait_for_selector("tr[data-camera-id='plaza-east'][data-health=live]", timeout=WAIT_MS)
    failed = page.locator("tr[data-camera-id='orchard-gate']")
    assert failed.get_attribute("data-health") == "failed_auth"
    assert failed.locator("[data-testid=health]").inner_text() == "auth failed"
    assert "10 min ago" in failed.locator("[data-testid=frame-age]").inner_text()
    assert "s ago" in page.inner_text("tr[data-camera-id='plaza-east'] [data-testid=frame-age]")

    with OnvifTestDevice(onvif) as device:
        page.click("[data-testid=add-camera]")
        page.click("[data-tab=onvif]")
        page.fill("input[name=onvifAddress]", f"127.0.0.1:{device.port}")
        page.fill("input[name=onvifUsername]", "admin")
        page.fill("input[name=onvifPassword]", "Cam-p@ss:1")
        page.click("[data-testid=add-panel] button[type=submit]")
        result = page.wait_for_selector("[data-testid=onvif-result]", timeout=WAIT_MS)
        assert "SharpEyes TestCam-1" in result.inner_text()
        assert page.is_checked("input[name=profile][value=sub]")  # the recommended stream
        page.click("[data-testid=use-stream]")
    assert page.input_value("input[name=source]") == "rtsp://127.0.0.1:8554/sub"
    assert page.input_value("input[name=username]") == "admin"
    page.fill("input[name=id]", "gate-north")
    page.fill("input[name=name]", "North gate")
    page.select_option("select[name=grid_cell]", "grid-08")
    env.shot(page, "add-camera")
    page.click("[data-testid=add-panel] button[type=submit]")
    saved = page.wait_for_selector("[data-testid=add-result].ok", timeout=WAIT_MS)
    assert "gate-north saved" in saved.inner_text()
    page.wait_for_selector("tr[data-camera-id='gate-north']", timeout=WAIT_MS)
    token = login(env.url, "admin")
    spec = http_json(f"{env.url}/cameras/gate-north", token)
    assert spec["location"]["community"] == "Harbour Community"  # type: ignore[index]
    assert spec["has_password"] is True  # type: ignore[index]
    page.click("[data-testid=add-camera]")  # close the form
    env.shot(page, "cameras")

    # the pipeline worker's latest frame of the new camera (the thumbnail contract): a real
    # camera picture, a frame of the Mall dataset (640×480)
    frame = data.path("mall/frames/seq_000001.jpg").read_bytes()
    redis.set(settings.thumbnail_key("gate-north"), frame, ex=120)
    page.click("tr[data-camera-id='gate-north'] a:has-text('Zones')")
    page.wait_for_selector("[data-testid=picture-source][data-source=live]", timeout=WAIT_MS)
    wait_js(page, "document.querySelector('[data-testid=zone-stage] img')?.naturalWidth === 640")
    svg = page.locator("[data-testid=zone-svg]")

    def click(x: float, y: float) -> None:
        box = svg.bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + x * box["width"], box["y"] + y * box["height"])

    page.click("[data-testid=new-zone]")
    for x, y in [(0.2, 0.5), (0.8, 0.5), (0.9, 0.95), (0.1, 0.95)]:
        click(x, y)
    page.click("[data-testid=finish-zone]")
    page.fill("input[name=zone-name]", "Gate apron")
    page.press("input[name=zone-name]", "Tab")
    page.fill("input[name=min_people]", "15")
    page.press("input[name=min_people]", "Tab")
    page.click("[data-testid=save-zones]")
    message = page.wait_for_selector("[data-testid=zone-message].ok", timeout=WAIT_MS)
    assert "Zones saved" in message.inner_text()
    zones = http_json(f"{env.url}/cameras/gate-north", token)["zones"]  # type: ignore[index]
    assert [(z["name"], z["gathering"]["min_people"]) for z in zones] == [("Gate apron", 15)]
    for (x, y), (ex, ey) in zip(
        zones[0]["polygon"], [(0.2, 0.5), (0.8, 0.5), (0.9, 0.95), (0.1, 0.95)], strict=True
    ):
        assert abs(x - ex) < 0.01 and abs(y - ey) < 0.01
    env.shot(page, "zones")

    # a bow-tie: the API refuses it and the console shows its precise reason
    page.click("[data-testid=new-zone]")
    for x, y in [(0.1, 0.1), (0.4, 0.4), (0.4, 0.1), (0.1, 0.4)]:
        click(x, y)
    page.keyboard.press("Enter")
    page.click("[data-testid=save-zones]")
    error = page.wait_for_selector("[data-testid=zone-message].error", timeout=WAIT_MS)
    assert (
        "Zone Zone 2: polygon: the polygon's edges 0-1 and 2-3 cross each other: list the "
        "points in order around the zone's outline" in error.inner_text()
    )
    assert len(http_json(f"{env.url}/cameras/gate-north", token)["zones"]) == 1  # type: ignore[index]

    # a camera without a live view falls back to its newest alert snapshot, and one with
    # neither to a blank canvas; config-file cameras are read-only here
    page.goto(f"{env.url}/console/#/cameras/plaza-east/zones")
    page.wait_for_selector("[data-testid=picture-source][data-source=alert]", timeout=WAIT_MS)
    assert page.locator("[data-testid=new-zone]").count() == 0
    assert "declared in the config file" in page.inner_text("[data-testid=zone-panel]")
    page.goto(f"{env.url}/console/#/cameras/orchard-gate/zones")
    page.wait_for_selector("[data-testid=picture-source][data-source=blank]", timeout=WAIT_MS)
    assert_clean(page)
    page.context.close()


# -- 4: statistics as charts; the console in Chinese, remembered -----------------------------
def test_feedback_to_closure_filters_statistics_and_language(env: Env) -> None:
    page = env.open("admin")
    # filters: severity, camera and centre narrow the live list like GET /cases does
    page.wait_for_selector(".case-row", timeout=WAIT_MS)
    page.select_option("select[name=severity]", "critical")
    wait_js(
        page,
        "[...document.querySelectorAll('.case-row')].every(r => "
        "r.dataset.severity === 'critical') && document.querySelector('.case-row')",
    )
    page.click("button:has-text('Reset')")
    hillside = str(
        next(
            c
            for c in http_json(f"{env.url}/centres", login(env.url, "admin"))
            if c["code"] == "demo.hillside"
        )["id"]
    )  # type: ignore[index]
    page.select_option("select[name=centre]", hillside)
    page.wait_for_selector("[data-testid=case-list] .empty", timeout=WAIT_MS)
    page.click("button:has-text('Reset')")
    page.select_option("select[name=camera]", "plaza-east")
    page.wait_for_selector(".case-row", timeout=WAIT_MS)
    page.click("button:has-text('Reset')")

    # the dispatched case: feedback with a photo from the scene, resolve, verify and close
    first = env.cases["first"]
    page.goto(f"{env.url}/console/#/cases/{first}")
    page.wait_for_selector(f"[data-testid=case-detail][data-case-id='{first}']")
    page.click("[data-action=feedback]")
    form = page.locator("[data-testid=form-feedback]")
    form.locator("textarea[name=note]").fill("About 20 people, dispersing after talking to them")
    form.locator("select[name=unit_id]").select_option(label="Riverside police station")
    form.locator("input[name=photo]").set_input_files(
        files=[
            {"name": "scene.jpg", "mimeType": "image/jpeg", "buffer": street_jpeg(label="scene")}
        ]
    )
    form.locator("button[type=submit]").click()
    page.wait_for_selector("[data-testid=case-state][data-state=in_progress]", timeout=WAIT_MS)
    photo = page.wait_for_selector("[data-testid=feedback] img.photo", timeout=WAIT_MS)
    wait_js(page, "document.querySelector('[data-testid=feedback] img.photo').naturalWidth > 0")
    assert photo.get_attribute("src").startswith("blob:")
    page.click("[data-action=resolve]")
    page.click("[data-testid=form-resolve] button[type=submit]")
    page.wait_for_selector("[data-testid=case-state][data-state=resolved]", timeout=WAIT_MS)
    page.click("[data-action=close]")
    page.fill("[data-testid=form-close] textarea[name=note]", "Verified on camera: dispersed")
    page.click("[data-testid=form-close] button[type=submit]")
    page.wait_for_selector("[data-testid=case-state][data-state=closed]", timeout=WAIT_MS)
    assert "Nothing for you to do" in page.inner_text("[data-testid=actions]")
    trail = page.inner_text("[data-testid=timeline]")
    assert "Resolved → Closed" in trail and "Photo added" in trail

    page.click("[data-nav=stats]")
    rates = page.wait_for_selector("[data-testid=chart-rates]", timeout=WAIT_MS)
    assert rates.query_selector_all("rect.bar")
    assert page.locator("[data-testid=chart-times] rect.bar").count() >= 1
    assert page.locator("[data-testid=chart-daily] rect.bar").count() >= 1
    table = page.inner_text("[data-testid=stats-table]")
    assert "Riverside Street" in table and "Demo District" in table
    closure = page.locator("[data-testid=chart-rates] rect.bar.series-1").evaluate_all(
        "bars => bars.map(b => Number(b.dataset.value))"
    )
    assert max(closure) > 0  # the closed case counts
    env.shot(page, "stats")

    page.select_option("[data-testid=language]", "zh-CN")
    page.wait_for_selector("nav a:has-text('统计考评')")
    assert page.locator("nav a").all_inner_texts() == ["案件", "摄像机", "统计考评"]
    assert "处置率" in page.inner_text("[data-testid=chart-rates]")
    page.reload()  # remembered, and still logged in (the token is in sessionStorage)
    page.wait_for_selector("nav a:has-text('案件')", timeout=WAIT_MS)
    assert page.evaluate("localStorage.getItem('sharpeyes.lang')") == "zh-CN"
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    token_in_url = page.evaluate("location.href.includes('token')")
    assert not token_in_url
    missing = page.evaluate("import('/console/js/i18n.js').then(m => m.missingKeys())")
    assert missing == []
    page.click("[data-nav=cases]")
    page.locator(f".case-row[data-case-id='{env.cases['notice']}']").click()
    page.wait_for_selector("[data-testid=case-detail]")
    wait_js(page, "document.querySelector('[data-testid=snapshot] img')?.naturalWidth > 0")
    assert "处置记录" in page.inner_text("[data-testid=timeline]")
    # Alert cases are titled in English by the centre; the console shows them in Chinese.
    notice = http_json(f"{env.url}/cases/{env.cases['notice']}", login(env.url, "admin"))
    where = notice["zone_name"] or notice["camera_name"]  # type: ignore[index]
    assert notice["title"] == f"Crowd gathering at {where} ({notice['camera_name']})"  # type: ignore[index]
    heading = page.inner_text("[data-testid=case-detail] h2")
    assert heading == f"{where}人员聚集（{notice['camera_name']}）"  # type: ignore[index]
    assert "持续聚集" in page.inner_text("[data-testid=case-detail]")  # the rule, translated
    titles = page.locator(".case-row .case-title").all_inner_texts()
    assert titles and not any("Crowd gathering" in title for title in titles)
    env.shot(page, "case-zh")
    assert_clean(page)
    page.context.close()
    publish_screenshots(env.shots)


def publish_screenshots(names: list[str]) -> None:
    """With SHARPEYES_SCREENSHOTS=1, refresh the README's screenshots (halved, < 1 MiB)."""
    if os.environ.get("SHARPEYES_SCREENSHOTS") != "1":
        return
    target = ROOT / "docs" / "screenshots"
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        image = cv2.imread(str(ARTIFACTS / name))
        small = cv2.resize(image, (1280, 720), interpolation=cv2.INTER_AREA)
        path = target / name
        cv2.imwrite(str(path), small, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        assert path.stat().st_size < 1024 * 1024, f"{path} is over 1 MiB"
