"""Routing of alert cases: grid cell → workstation → the tier the severity (or the event)
asks for; unknown places go to the district; a rising severity moves an open case up."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.events import AlertLocation, EventKind, Severity, Tier
from api.db import make_engine, session_factory, upgrade
from api.ingest import ingest_event, requested_tier
from api.orm import Case, Centre
from api.seed import seed_demo
from api.settings import RoutingSettings
from tests.factories import make_event

HARBOUR = AlertLocation(
    district="Demo District",
    street="Riverside Street",
    community="Harbour Community",
    grid_cell="grid-07",
)


@pytest.fixture
def sessions(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'routing.db'}")
    upgrade(engine)
    factory = session_factory(engine, routing=RoutingSettings())
    with factory() as session:
        seed_demo(session, "password-1")
        session.commit()
    yield factory
    engine.dispose()


def centre_code(sessions, case_id: int) -> str:  # type: ignore[no-untyped-def]
    with sessions() as session:
        case = session.get(Case, case_id)
        return session.get(Centre, case.centre_id).code


def ingest(sessions, event):  # type: ignore[no-untyped-def]
    with sessions() as session:
        result = ingest_event(session, event)
        session.commit()
    return result


def test_severity_picks_the_tier(sessions) -> None:  # type: ignore[no-untyped-def]
    expected = {
        Severity.NOTICE: "demo.riverside.harbour",
        Severity.WARNING: "demo.riverside",
        Severity.CRITICAL: "demo",
    }
    for severity, code in expected.items():
        result = ingest(sessions, make_event(severity=severity, location=HARBOUR))
        assert centre_code(sessions, result.case_id) == code, severity


def test_the_centres_policy_decides_the_tier() -> None:
    policy = RoutingSettings()
    suggested = make_event(severity=Severity.NOTICE, tier=Tier.DISTRICT)
    assert requested_tier(suggested, policy) == "community", "the policy is authoritative"
    assert requested_tier(make_event(severity=Severity.CRITICAL), policy) == "district"
    partial = RoutingSettings(tier_by_severity={"warning": "district"})
    assert requested_tier(suggested, partial) == "district", "else the event's suggestion"
    assert requested_tier(make_event(severity=Severity.NOTICE), partial) == "street"


def test_unknown_places_and_rising_severity(sessions) -> None:  # type: ignore[no-untyped-def]
    # A grid cell nobody registered, in a known community: matched by names.
    by_name = AlertLocation(
        district="Demo District",
        street="Riverside Street",
        community="Market Community",
        grid_cell="unregistered-cell",
    )
    result = ingest(sessions, make_event(severity=Severity.NOTICE, location=by_name))
    assert centre_code(sessions, result.case_id) == "demo.riverside.market"
    # A place the organisation does not know at all: the district sees it.
    nowhere = AlertLocation(district="Elsewhere", street="x", community="y", grid_cell="z")
    result = ingest(sessions, make_event(severity=Severity.NOTICE, location=nowhere))
    assert centre_code(sessions, result.case_id) == "demo"

    # Notice → community; the same episode escalates to critical → the district handles it.
    started = make_event(severity=Severity.NOTICE, location=HARBOUR)
    first = ingest(sessions, started)
    assert centre_code(sessions, first.case_id) == "demo.riverside.harbour"
    rising = make_event(
        episode_id=started.episode_id,
        kind=EventKind.ESCALATED,
        sequence=2,
        severity=Severity.CRITICAL,
        location=HARBOUR,
    )
    assert ingest(sessions, rising).case_id == first.case_id
    assert centre_code(sessions, first.case_id) == "demo"
    with sessions() as session:
        trail = [e.action for e in session.get(Case, first.case_id).history]
    assert trail == ["created", "rerouted"]
