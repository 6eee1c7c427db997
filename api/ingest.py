"""Applying alert events to the database: idempotent, one case per gathering episode."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.events import AlertEvent, EventKind
from api.orm import Alert, Case, Snapshot

SEVERITY_RANK = {"notice": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class IngestResult:
    alert_id: int
    case_id: int
    duplicate: bool
    case_created: bool


def case_title(event: AlertEvent) -> str:
    where = event.zone_name or event.camera_name
    return f"Crowd gathering at {where} ({event.camera_name})"


def ingest_event(
    session: Session,
    event: AlertEvent,
    *,
    stream_entry_id: str | None = None,
    snapshot: bytes | None = None,
) -> IngestResult:
    """Record one event; a redelivered event (same idempotency key) changes nothing.

    The caller commits. Concurrent consumers racing on the same event or episode are
    resolved by the unique constraints: the loser's commit fails and it calls again.
    """
    existing = session.scalar(select(Alert).where(Alert.idempotency_key == event.idempotency_key))
    if existing is not None:
        return IngestResult(existing.id, existing.case_id, duplicate=True, case_created=False)

    case = session.scalar(select(Case).where(Case.episode_id == event.episode_id))
    created = case is None
    if case is None:
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
            district=event.location.district,
            street=event.location.street,
            community=event.location.community,
            grid_cell=event.location.grid_cell,
            people_count=event.count,
            peak_count=event.peak_count,
            episode_started_at=event.episode_started_at,
        )
        session.add(case)
    else:
        # Events of one episode can arrive out of order after a reclaim: keep maxima.
        case.people_count = event.count
        case.peak_count = max(case.peak_count, event.peak_count)
        if SEVERITY_RANK.get(event.severity.value, 0) > SEVERITY_RANK.get(case.severity, 0):
            case.severity = event.severity.value
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
    return IngestResult(alert.id, case.id, duplicate=False, case_created=created)
