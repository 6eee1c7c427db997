"""The case workflow end to end through the real consumer, on SQLite and PostgreSQL:
alert → routed case → acknowledge → dispatch → feedback with photo → resolve → close."""

from __future__ import annotations

from alerting.events import AlertLocation, EventKind, Severity
from alerting.publisher import AlertPublisher
from tests.api_fixtures import Api
from tests.factories import make_event
from tests.helpers import wait_for

HARBOUR = AlertLocation(
    district="Demo District",
    street="Riverside Street",
    community="Harbour Community",
    grid_cell="grid-07",
)
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


def publish(api: Api, **changes):  # type: ignore[no-untyped-def]
    event = make_event(location=changes.pop("location", HARBOUR), **changes)
    AlertPublisher.from_settings(api.config.redis).publish(event)
    return event


def wait_case(api: Api, user: str = "admin", **params):  # type: ignore[no-untyped-def]
    return wait_for(lambda: api.get(user, "/cases", params=params).json()["items"], 20)[0]


def test_case_lifecycle_with_audit_trail(api: Api) -> None:
    started = publish(api, severity=Severity.WARNING)
    case = wait_case(api, "operator")
    # warning → street tier: the Riverside sub-centre handles it; Harbour is where it came from
    assert case["centre_id"] == api.centre("demo.riverside")
    assert case["routed_centre_id"] == api.centre("demo.riverside.harbour")
    assert case["state"] == "reported"
    assert case["allowed_transitions"] == ["acknowledged", "dismissed"]
    cid = case["id"]

    # A later event of the same episode updates the case instead of opening another one.
    publish(
        api,
        episode_id=started.episode_id,
        kind=EventKind.ENDED,
        sequence=2,
        count=4,
        peak_count=41,
    )
    wait_for(lambda: api.get("operator", f"/cases/{cid}").json()["episode_ended_at"], 20)
    assert api.get("operator", "/cases").json()["total"] == 1
    assert api.get("operator", f"/cases/{cid}").json()["peak_count"] == 41

    # Skipping a step is a 409 that names the allowed next states.
    skip = api.post("dispatcher", f"/cases/{cid}/transitions", json={"to": "closed"})
    assert skip.status_code == 409
    assert skip.json()["allowed"] == ["acknowledged", "dismissed"]
    assert "cannot become closed" in skip.json()["detail"]

    ack = api.post(
        "operator", f"/cases/{cid}/transitions", json={"to": "acknowledged", "note": "on screen"}
    )
    assert ack.status_code == 200 and ack.json()["state"] == "acknowledged"

    units = api.units("dispatcher")
    police, grid = units["Riverside police station"], units["Harbour grid workers"]
    assert (
        api.post("operator", f"/cases/{cid}/dispatches", json={"unit_ids": [police]}).status_code
        == 403
    )
    foreign = units.get("Hillside police station")
    assert foreign is None, "units of another street are not offered"
    sent = api.post("dispatcher", f"/cases/{cid}/dispatches", json={"unit_ids": [police, grid]})
    assert sent.status_code == 200, sent.text
    assert sent.json()["state"] == "dispatched"
    assert {d["unit_name"] for d in sent.json()["dispatches"]} == {
        "Riverside police station",
        "Harbour grid workers",
    }

    feedback = api.post(
        "operator",
        f"/cases/{cid}/feedback",
        json={"note": "about 40 people, calm", "unit_id": police},
    )
    assert feedback.status_code == 201, feedback.text
    fid = feedback.json()["id"]
    photo = api.post(
        "operator",
        f"/cases/{cid}/feedback/{fid}/photos",
        content=JPEG,
        headers={"Content-Type": "image/jpeg"},
    )
    assert photo.status_code == 201, photo.text
    assert api.get("operator", photo.json()["url"]).content == JPEG
    not_image = api.post(
        "operator",
        f"/cases/{cid}/feedback/{fid}/photos",
        content=b"hello",
        headers={"Content-Type": "image/png"},
    )
    assert not_image.status_code == 422 and "not a image/png" in not_image.json()["detail"]
    assert api.get("operator", f"/cases/{cid}").json()["state"] == "in_progress"

    assert (
        api.post("operator", f"/cases/{cid}/transitions", json={"to": "resolved"}).status_code
        == 403
    )
    assert (
        api.post("dispatcher", f"/cases/{cid}/transitions", json={"to": "resolved"}).json()["state"]
        == "resolved"
    )
    # Verification fails once: back to in progress, then resolved and closed.
    assert (
        api.post(
            "dispatcher",
            f"/cases/{cid}/transitions",
            json={"to": "in_progress", "note": "crowd back"},
        ).status_code
        == 200
    )
    api.post("dispatcher", f"/cases/{cid}/transitions", json={"to": "resolved"})
    closed = api.post(
        "dispatcher",
        f"/cases/{cid}/transitions",
        json={"to": "closed", "note": "verified on video"},
    )
    assert closed.status_code == 200
    detail = closed.json()
    assert detail["state"] == "closed" and detail["allowed_transitions"] == []
    assert (
        detail["closed_at"]
        >= detail["resolved_at"]
        >= detail["dispatched_at"]
        >= detail["acknowledged_at"]
    )
    trail = [(h["actor"], h["action"], h["from_state"], h["to_state"]) for h in detail["history"]]
    assert trail == [
        ("pipeline", "created", None, "reported"),
        ("operator", "transition", "reported", "acknowledged"),
        ("dispatcher", "transition", "acknowledged", "dispatched"),
        ("operator", "transition", "dispatched", "in_progress"),
        ("operator", "feedback", None, None),
        ("operator", "photo", None, None),
        ("dispatcher", "transition", "in_progress", "resolved"),
        ("dispatcher", "transition", "resolved", "in_progress"),
        ("dispatcher", "transition", "in_progress", "resolved"),
        ("dispatcher", "transition", "resolved", "closed"),
    ]
    assert detail["history"][1]["note"] == "on screen"
    assert api.get("operator", f"/cases/{cid}/history").json() == detail["history"]
    final = api.post(
        "dispatcher", f"/cases/{cid}/transitions", json={"to": "dismissed", "reason": "x"}
    )
    assert final.status_code == 409 and final.json()["allowed"] == []
    assert [a["kind"] for a in detail["alerts"]] == ["started", "ended"]
    # Another street sees nothing of it: not the alerts, not the feed, not the statistics.
    alert_id = detail["alerts"][0]["id"]
    assert api.get("hillside", f"/alerts/{alert_id}").status_code == 404
    assert api.get("hillside", f"/alerts/{alert_id}/snapshot.jpg").status_code == 404
    assert api.get("hillside", "/alerts").json()["total"] == 0
    assert api.get("hillside", "/feed").json() == []
    assert api.get("hillside", "/stats", params={"group_by": "camera"}).json()["rows"] == []
    assert api.get("operator", "/alerts").json()["total"] == 2


def test_dismiss_manual_cases_and_scope(api: Api) -> None:
    # Another street's operator sees nothing of Riverside: 404, not 403.
    manual = api.post(
        "operator",
        "/cases",
        json={"title": "Crowd reported by phone at the ferry pier", "severity": "notice"},
    )
    assert manual.status_code == 201, manual.text
    case = manual.json()
    assert case["origin"] == "manual" and case["created_by"] == "operator"
    assert case["centre_id"] == api.centre("demo.riverside")
    cid = case["id"]
    assert api.get("hillside", f"/cases/{cid}").status_code == 404
    assert api.get("hillside", f"/cases/{cid}").json()["detail"] == api.get(
        "hillside", "/cases/99999"
    ).json()["detail"].replace("99999", str(cid))
    assert (
        api.post("hillside", f"/cases/{cid}/transitions", json={"to": "acknowledged"}).status_code
        == 404
    )
    assert api.get("hillside", "/cases").json()["total"] == 0
    # The community workstation below sees only its own cases, not the street's.
    assert api.get("harbour", f"/cases/{cid}").status_code == 404
    assert api.get("admin", f"/cases/{cid}").status_code == 200

    no_reason = api.post("operator", f"/cases/{cid}/transitions", json={"to": "dismissed"})
    assert no_reason.status_code == 422 and "reason" in no_reason.json()["detail"]
    dismissed = api.post(
        "operator",
        f"/cases/{cid}/transitions",
        json={"to": "dismissed", "reason": "a queue for the ferry, not a gathering"},
    )
    assert dismissed.status_code == 200
    assert dismissed.json()["dismiss_reason"] == "a queue for the ferry, not a gathering"
    assert dismissed.json()["history"][-1]["data"]["reason"].startswith("a queue")

    bad_centre = api.post(
        "operator", "/cases", json={"title": "x", "centre_id": api.centre("demo.hillside")}
    )
    assert bad_centre.status_code == 422
    assert api.post("integrator", "/cases", json={"title": "x"}).status_code == 403
    listing = api.get("operator", "/cases", params={"state": ["dismissed"], "open": "false"}).json()
    assert listing["total"] == 1
