"""Cases: one per gathering episode (or opened by an operator)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import func, select

from api.deps import DbSession
from api.orm import Case
from api.routes.alerts import alert_out
from api.schemas import CaseDetail, CaseOut, Page

router = APIRouter(prefix="/cases", tags=["cases"])


@router.get("", response_model=Page[CaseOut])
def list_cases(
    session: DbSession,
    state: str | None = None,
    camera_id: str | None = None,
    severity: Annotated[str | None, Query(pattern="^(notice|warning|critical)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[CaseOut]:
    """Newest first."""
    query = select(Case)
    if state:
        query = query.where(Case.state == state)
    if camera_id:
        query = query.where(Case.camera_id == camera_id)
    if severity:
        query = query.where(Case.severity == severity)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Case.created_at.desc(), Case.id.desc()).limit(limit).offset(offset)
    )
    return Page(
        items=[CaseOut.model_validate(c) for c in rows], total=total, limit=limit, offset=offset
    )


@router.get(
    "/{case_id}", response_model=CaseDetail, responses={404: {"description": "No such case"}}
)
def get_case(case_id: int, session: DbSession) -> CaseDetail:
    case = session.get(Case, case_id)
    if case is None:
        raise HTTPException(404, f"case {case_id} does not exist")
    detail = CaseDetail.model_validate(case, from_attributes=True)
    detail.alerts = [alert_out(a) for a in case.alerts]
    return detail
