"""Escalation with an injected clock: overdue cases climb the tree one SLA at a time."""

from __future__ import annotations

from datetime import timedelta

from alerting.events import Severity
from api.escalation import Escalator
from api.orm import Case
from api.settings import EscalationSettings
from tests.api_fixtures import Api
from tests.test_api_workflow import publish, wait_case


def test_unacknowledged_case_escalates_to_parent_then_district(api: Api) -> None:
    publish(api, severity=Severity.NOTICE)  # notice → the community workstation
    case = wait_case(api, "harbour")
    harbour, riverside, district = (
        api.centre("demo.riverside.harbour"),
        api.centre("demo.riverside"),
        api.centre("demo"),
    )
    assert case["centre_id"] == harbour
    sessions = api.app.state.sessions
    settings = EscalationSettings(
        acknowledge_sla_s={"notice": 600, "warning": 300, "critical": 60},
        dispatch_sla_s={"notice": 1200, "warning": 600, "critical": 120},
    )
    escalator = Escalator(sessions, settings)
    with sessions() as session:
        created = session.get(Case, case["id"]).sla_started_at
    assert escalator.run_once(created + timedelta(seconds=599)) == []

    (first,) = escalator.run_once(created + timedelta(seconds=601))
    assert (first.from_centre_id, first.to_centre_id) == (harbour, riverside)
    # Another process checking at the same moment finds nothing left to do.
    assert Escalator(sessions, settings).run_once(created + timedelta(seconds=601)) == []
    # The SLA restarts at the parent.
    assert escalator.run_once(created + timedelta(seconds=1000)) == []
    detail = api.get("operator", f"/cases/{case['id']}").json()
    assert detail["centre_id"] == riverside and detail["escalation_level"] == 1
    entry = detail["history"][-1]
    assert entry["action"] == "escalated" and entry["actor"] == "system"
    assert "not acknowledged within 600 s" in entry["note"]
    assert entry["data"]["from_centre_id"] == harbour
    assert api.get("hillside", f"/cases/{case['id']}").status_code == 404

    (second,) = escalator.run_once(created + timedelta(seconds=1300))
    assert second.to_centre_id == district
    # At the district there is no parent: it stays, however late.
    assert escalator.run_once(created + timedelta(days=1)) == []
    # Statistics count the case against each centre it was escalated away from.
    rows = {
        r["name"]: r
        for r in api.get("admin", "/stats", params={"group_by": "centre"}).json()["rows"]
    }
    escalated = {name.split(" / ")[-1]: row["escalated"] for name, row in rows.items()}
    assert escalated == {"Demo District": 0, "Riverside Street": 1, "Harbour Community": 1}

    # Acknowledged but not dispatched: the dispatch SLA applies from the current centre.
    api.post("admin", f"/cases/{case['id']}/transitions", json={"to": "acknowledged"})
    with sessions() as session:
        stored = session.get(Case, case["id"])
        stored.centre_id, stored.sla_started_at = riverside, created
        session.commit()
    assert escalator.run_once(created + timedelta(seconds=1199)) == []
    (third,) = escalator.run_once(created + timedelta(seconds=1201))
    assert third.state == "acknowledged" and third.to_centre_id == district
    escalations = [m for m in api.get("admin", "/feed").json() if m["type"] == "escalation"]
    assert len(escalations) == 3
    assert "not dispatched within 1200 s" in escalations[-1]["data"]["note"]
