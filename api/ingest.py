"""Applying alert events to the database: idempotent, one case per gathering episode.

A new episode opens a case routed to the centre that owns the camera's grid cell at the tier
its severity asks for; later events of the episode update that case (and move it up a tier
when the severity rises). The alert, the case change, the audit trail entry and the live
feed event are written in the caller's transaction, so they appear together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.events import AlertEvent, EventKind
from api import feed, workflow
from api.organisation import OrgTree, route
from api.orm import Alert, Case, Snapshot
from api.settings import TIERS, RoutingSettings
from api.timeutil import utcnow

SEVERITY_RANK = {"notice": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class IngestResult:
    alert_id: int
    case_id: int
    duplicate: bool
    case_created: bool


def case_title(event: AlertEvent) -> str:
    """Stored in English; the console recognises this exact form and shows it in the
    operator's language (``case.alert_title`` and ``caseTitle`` in console/js/i18n.js), so
    change both together."""
    where = event.zone_name or event.camera_name
    return f"Crowd gathering at {where} ({event.camera_name})"


def requested_tier(event: AlertEvent, routing: RoutingSettings) -> str:
    """The tier that handles the event: the linkage centre's routing policy for its severity.

    The pipeline also states a tier on the event (``event.tier``, derived from the same
    severity); the centre's policy is authoritative, the event's tier is only the fallback
    for a severity the policy does not name.
    """
    severity = event.severity.value
    if severity in routing.tier_by_severity:
        return routing.tier_by_severity[severity]
    return event.tier.value if event.tier is not None else "street"


def ingest_event(
    session: Session,
    event: AlertEvent,
    *,
    stream_entry_id: str | None = None,
    snapshot: bytes | None = None,
    routing: RoutingSettings | None = None,
) -> IngestResult:
    """Record one event; a redelivered event (same idempotency key) changes nothing.

    The caller commits. Concurrent consumers racing on the same event or episode are
    resolved by the unique constraints: the loser's commit fails and it calls again.
    Routing comes from ``routing``, else from the session factory's ``info["routing"]``.
    """
    existing = session.scalar(select(Alert).where(Alert.idempotency_key == event.idempotency_key))
    if existing is not None:
        return IngestResult(existing.id, existing.case_id, duplicate=True, case_created=False)
    routing = routing or session.info.get("routing") or RoutingSettings()
    tier = requested_tier(event, routing)
    location = event.location
    names = (location.district, location.street, location.community)

    case = session.scalar(select(Case).where(Case.episode_id == event.episode_id))
    created = case is None
    now = utcnow()
    rerouted: tuple[int | None, int | None] | None = None
    if case is None:
        centre_id, origin_id = route(session, grid_cell=location.grid_cell, names=names, tier=tier)
        case = Case(
            episode_id=event.episode_id,
            origin="alert",
            title=case_title(event),
            state="reported",
            severity=event.severity.value,
            camera_id=event.camera_id,
            camera_name=event.camera_name,
            zone_id=event.zone_id,
            zone_name=event.zone_name,
            district=location.district,
            street=location.street,
            community=location.community,
            grid_cell=location.grid_cell,
            people_count=event.count,
            peak_count=event.peak_count,
            episode_started_at=event.episode_started_at,
            centre_id=centre_id,
            routed_centre_id=origin_id,
            escalation_level=0,
            sla_started_at=now,
            created_at=now,
            updated_at=now,
            created_by="pipeline",
        )
        session.add(case)
    else:
        # Events of one episode can arrive out of order after a reclaim: keep maxima.
        case.people_count = event.count
        case.peak_count = max(case.peak_count, event.peak_count)
        if SEVERITY_RANK.get(event.severity.value, 0) > SEVERITY_RANK.get(case.severity, 0):
            case.severity = event.severity.value
            rerouted = _raise_tier(session, case, tier)
        case.updated_at = now
    if event.kind is EventKind.ENDED:
        case.episode_ended_at = event.ended_at or event.occurred_at

    alert = Alert(
        event_id=event.event_id,
        idempotency_key=event.idempotency_key,
        episode_id=event.episode_id,
        kind=event.kind.value,
        rule=event.rule,
        severity=event.severity.value,
        camera_id=event.camera_id,
        zone_id=event.zone_id,
        count=event.count,
        peak_count=event.peak_count,
        threshold=event.threshold,
        occurred_at=event.occurred_at,
        received_at=now,
        stream_entry_id=stream_entry_id,
        payload=event.model_dump(mode="json"),
        has_snapshot=snapshot is not None,
        case=case,
    )
    session.add(alert)
    session.flush()
    if snapshot is not None:
        content_type = event.snapshot.content_type if event.snapshot else "image/jpeg"
        session.add(Snapshot(alert_id=alert.id, content_type=content_type, data=snapshot))
    if created:
        workflow.record(
            session,
            case,
            actor="pipeline",
            action="created",
            to_state="reported",
            note=f"{event.count} people in {event.zone_name or event.camera_name}",
            data={"event_id": event.event_id, "tier": tier, "severity": event.severity.value},
            at=now,
            announce=False,  # the alert's feed event (case_created) announces the new case
        )
    elif rerouted is not None:
        workflow.record(
            session,
            case,
            actor="pipeline",
            action="rerouted",
            note=f"severity rose to {case.severity}: handled at the {tier} tier",
            data={"from_centre_id": rerouted[0], "to_centre_id": rerouted[1]},
            at=now,
        )
    feed.publish_alert(session, alert, case, created)
    return IngestResult(alert.id, case.id, duplicate=False, case_created=created)


def _raise_tier(session: Session, case: Case, tier: str) -> tuple[int | None, int | None] | None:
    """Move an open case up to ``tier`` when its current centre is below it."""
    if case.state not in workflow.OPEN_STATES or case.centre_id is None:
        return None
    tree = OrgTree.load(session)
    node = tree.nodes.get(case.centre_id)
    if node is None or TIERS.index(node.tier) <= TIERS.index(tier):
        return None
    target = tree.at_tier(case.centre_id, tier)
    if target == case.centre_id:
        return None
    previous = case.centre_id
    case.centre_id = target
    case.sla_started_at = utcnow()
    return previous, target
