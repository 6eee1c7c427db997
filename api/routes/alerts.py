"""Alerts as received from the pipeline (read-only), within the reader's scope."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from sqlalchemy import func, select

from api.deps import DbId, DbSession, OptionalId, Principal, requires
from api.orm import Alert, Case, Snapshot
from api.routes.cases import scope_filter
from api.schemas import AlertDetail, AlertOut, Page
from api.serialize import alert_out

router = APIRouter(prefix="/alerts", tags=["alerts"])

Reader = Annotated[Principal, Depends(requires("cases.read"))]


def visible_alert(session, principal: Principal, alert_id: int) -> Alert:  # type: ignore[no-untyped-def]
    alert = session.get(Alert, alert_id)
    if alert is None or not principal.sees(alert.case.centre_id, alert.case.routed_centre_id):
        raise HTTPException(404, f"alert {alert_id} does not exist")
    return alert


@router.get("", response_model=Page[AlertOut])
def list_alerts(
    session: DbSession,
    principal: Reader,
    camera_id: str | None = None,
    kind: Annotated[str | None, Query(pattern="^(started|escalated|ended)$")] = None,
    case_id: OptionalId = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Page[AlertOut]:
    """Newest first."""
    query = select(Alert).join(Case, Alert.case_id == Case.id).where(scope_filter(principal))
    if camera_id:
        query = query.where(Alert.camera_id == camera_id)
    if kind:
        query = query.where(Alert.kind == kind)
    if case_id is not None:
        query = query.where(Alert.case_id == case_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Alert.occurred_at.desc(), Alert.id.desc()).limit(limit).offset(offset)
    )
    return Page(items=[alert_out(a) for a in rows], total=total, limit=limit, offset=offset)


@router.get(
    "/{alert_id}", response_model=AlertDetail, responses={404: {"description": "No such alert"}}
)
def get_alert(alert_id: DbId, session: DbSession, principal: Reader) -> AlertOut:
    return alert_out(visible_alert(session, principal, alert_id), AlertDetail)


@router.get(
    "/{alert_id}/snapshot.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "No snapshot"}},
)
def get_snapshot(alert_id: DbId, session: DbSession, principal: Reader) -> Response:
    visible_alert(session, principal, alert_id)
    snapshot = session.get(Snapshot, alert_id)
    if snapshot is None:
        raise HTTPException(404, f"alert {alert_id} has no snapshot")
    return Response(
        snapshot.data,
        media_type=snapshot.content_type,
        headers={"Cache-Control": "private, max-age=86400"},
    )
