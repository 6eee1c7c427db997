"""ORM rows → response models, shared by the routes and the live feed."""

from __future__ import annotations

from api.orm import Alert, Case
from api.schemas import AlertOut, CaseOut
from api.workflow import allowed_transitions


def alert_out(alert: Alert, model: type[AlertOut] = AlertOut) -> AlertOut:
    out = model.model_validate(alert)
    if alert.has_snapshot:
        out.snapshot_url = f"/alerts/{alert.id}/snapshot.jpg"
    return out


def case_out(case: Case, model: type[CaseOut] = CaseOut) -> CaseOut:
    out = model.model_validate(case, from_attributes=True)
    out.allowed_transitions = allowed_transitions(case.state)
    return out
