"""The case workflow: a closed loop from report to verified closure, with an audit trail.

    reported → acknowledged → dispatched → in_progress → resolved → closed
         ╰──────────┴─────────────┴────────────┴──→ dismissed (false alarm, with a reason)
                                        resolved → in_progress (verification failed)

Every change goes through here, so every change is recorded (who, when, from, to, note) and
pushed to the live feed in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api import feed
from api.orm import Case, CaseEvent, Dispatch, Feedback, Unit
from api.timeutil import utcnow

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "reported": ("acknowledged", "dismissed"),
    "acknowledged": ("dispatched", "dismissed"),
    "dispatched": ("in_progress", "dismissed"),
    "in_progress": ("resolved", "dismissed"),
    "resolved": ("closed", "in_progress"),
    "closed": (),
    "dismissed": (),
}
STATES = tuple(TRANSITIONS)
OPEN_STATES = ("reported", "acknowledged", "dispatched", "in_progress", "resolved")
# Which permission a transition needs (see api.auth.PERMISSIONS).
PERMISSION_FOR = {
    "acknowledged": "cases.handle",
    "dismissed": "cases.handle",
    "in_progress": "cases.handle",
    "dispatched": "cases.dispatch",
    "resolved": "cases.verify",
    "closed": "cases.verify",
}
TIMESTAMP_FOR = {
    "acknowledged": "acknowledged_at",
    "dispatched": "dispatched_at",
    "in_progress": "in_progress_at",
    "resolved": "resolved_at",
    "closed": "closed_at",
    "dismissed": "dismissed_at",
}


class WorkflowError(Exception):
    """A request the workflow cannot honour; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


class InvalidTransition(WorkflowError):
    def __init__(self, case: Case, to: str) -> None:
        allowed = list(TRANSITIONS[case.state])
        hint = f"allowed next states: {', '.join(allowed)}" if allowed else "it is final"
        super().__init__(
            409,
            f"case {case.id} is {case.state}: it cannot become {to} ({hint})",
            state=case.state,
            allowed=allowed,
        )


def allowed_transitions(state: str) -> list[str]:
    return list(TRANSITIONS.get(state, ()))


def record(
    session: Session,
    case: Case,
    *,
    actor: str,
    action: str,
    from_state: str | None = None,
    to_state: str | None = None,
    note: str | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
    announce: bool = True,
) -> CaseEvent:
    """Append to the case's audit trail and (unless ``announce`` is off) the live feed."""
    entry = CaseEvent(
        case_id=case.id,
        at=at or utcnow(),
        actor=actor,
        action=action,
        from_state=from_state,
        to_state=to_state,
        note=note,
        data=data or {},
    )
    session.add(entry)
    session.flush()
    if announce:
        feed.publish_case(session, case, entry)
    return entry


def transition(
    session: Session,
    case: Case,
    to: str,
    *,
    actor: str,
    note: str | None = None,
    reason: str | None = None,
    unit_ids: list[int] | None = None,
    units_in_scope: set[int] | None = None,
    now: datetime | None = None,
) -> Case:
    """Move a case to ``to``; raises WorkflowError (409 invalid, 422 missing data)."""
    if to not in TRANSITIONS[case.state]:
        raise InvalidTransition(case, to)
    now = now or utcnow()
    if to == "dismissed" and not (reason and reason.strip()):
        raise WorkflowError(
            422, "dismissing a case needs a reason: say why it is a false alarm (reason)"
        )
    if to == "dispatched":
        if not unit_ids:
            raise WorkflowError(422, "dispatching needs at least one unit (unit_ids)")
        units = _units(session, unit_ids, units_in_scope)
    elif unit_ids:
        raise WorkflowError(422, f"unit_ids only apply when dispatching, not when going to {to}")
    from_state = case.state
    case.state = to
    setattr(case, TIMESTAMP_FOR[to], now)
    if to == "dismissed":
        case.dismiss_reason = reason
    case.updated_at = now
    data: dict[str, Any] = {}
    if to == "dispatched":
        data["units"] = [_send(session, case, unit, actor, now) for unit in units]
    if to == "dismissed":
        data["reason"] = reason
    record(
        session,
        case,
        actor=actor,
        action="transition",
        from_state=from_state,
        to_state=to,
        note=note,
        data=data,
        at=now,
    )
    return case


def dispatch_more(
    session: Session,
    case: Case,
    unit_ids: list[int],
    *,
    actor: str,
    note: str | None = None,
    units_in_scope: set[int] | None = None,
) -> Case:
    """Send units: the first dispatch moves an acknowledged case on; later ones add units."""
    if case.state == "acknowledged":
        return transition(
            session,
            case,
            "dispatched",
            actor=actor,
            note=note,
            unit_ids=unit_ids,
            units_in_scope=units_in_scope,
        )
    if case.state not in ("dispatched", "in_progress"):
        raise WorkflowError(
            409,
            f"case {case.id} is {case.state}: units can be sent while it is acknowledged, "
            "dispatched or in_progress",
            state=case.state,
            allowed=allowed_transitions(case.state),
        )
    units = _units(session, unit_ids, units_in_scope)
    now = utcnow()
    sent = [_send(session, case, unit, actor, now) for unit in units]
    case.updated_at = now
    record(session, case, actor=actor, action="dispatch", note=note, data={"units": sent})
    return case


def add_feedback(
    session: Session,
    case: Case,
    note: str,
    *,
    actor: str,
    unit_id: int | None = None,
) -> Feedback:
    """A unit reports from the scene; the first report moves a dispatched case in progress."""
    if case.state not in ("dispatched", "in_progress", "resolved"):
        raise WorkflowError(
            409,
            f"case {case.id} is {case.state}: feedback is recorded once units are dispatched "
            "(dispatched, in_progress or resolved)",
            state=case.state,
            allowed=allowed_transitions(case.state),
        )
    now = utcnow()
    dispatch = None
    if unit_id is not None:
        dispatch = session.scalar(
            select(Dispatch).where(Dispatch.case_id == case.id, Dispatch.unit_id == unit_id)
        )
        if dispatch is None:
            raise WorkflowError(
                422, f"unit {unit_id} was not dispatched to case {case.id}: dispatch it first"
            )
        if dispatch.first_feedback_at is None:
            dispatch.first_feedback_at = now
    item = Feedback(case_id=case.id, unit_id=unit_id, author=actor, note=note, at=now)
    session.add(item)
    session.flush()
    if case.state == "dispatched":
        transition(session, case, "in_progress", actor=actor, note=note)
    case.updated_at = now
    record(
        session,
        case,
        actor=actor,
        action="feedback",
        note=note,
        data={"feedback_id": item.id, "unit_id": unit_id},
    )
    return item


def _units(session: Session, unit_ids: list[int], in_scope: set[int] | None) -> list[Unit]:
    units = []
    for unit_id in dict.fromkeys(unit_ids):
        unit = session.get(Unit, unit_id)
        if unit is None or (in_scope is not None and unit.centre_id not in in_scope):
            raise WorkflowError(422, f"unit {unit_id} does not exist (or is not in your centre)")
        if not unit.active:
            raise WorkflowError(422, f"unit {unit_id} ({unit.name}) is inactive")
        units.append(unit)
    return units


def _send(session: Session, case: Case, unit: Unit, actor: str, now: datetime) -> dict[str, Any]:
    existing = session.scalar(
        select(Dispatch).where(Dispatch.case_id == case.id, Dispatch.unit_id == unit.id)
    )
    if existing is None:
        session.add(
            Dispatch(case_id=case.id, unit_id=unit.id, dispatched_by=actor, dispatched_at=now)
        )
    return {"unit_id": unit.id, "name": unit.name, "kind": unit.kind}
