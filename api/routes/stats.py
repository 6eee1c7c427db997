"""Statistics per centre, unit, camera and period, as JSON or CSV."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import AwareDatetime

from api.deps import DbSession, Principal, requires
from api.statistics import GroupBy, Period, compute, default_window, to_csv
from api.timeutil import utcnow

router = APIRouter(tags=["statistics"])

Reader = Annotated[Principal, Depends(requires("stats.read"))]


def _window(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    default_since, default_until = default_window(utcnow())
    since, until = since or default_since, until or default_until
    if since >= until:
        raise HTTPException(
            422, f"since ({since.isoformat()}) must be before until ({until.isoformat()})"
        )
    return since, until


Since = Annotated[
    AwareDatetime | None,
    Query(description="Cases created from (ISO 8601 with time zone); default 30 days ago."),
]
Until = Annotated[AwareDatetime | None, Query(description="… up to (exclusive); default now.")]


@router.get("/stats")
def statistics(
    session: DbSession,
    principal: Reader,
    group_by: GroupBy = "centre",
    since: Since = None,
    until: Until = None,
    period: Period = "day",
) -> dict[str, Any]:
    """Handling rate, closure rate, false-alarm rate and times to each step (median, p90)."""
    start, end = _window(since, until)
    rows = compute(
        session, group_by=group_by, since=start, until=end, scope=principal.scope, period=period
    )
    return {"group_by": group_by, "since": start, "until": end, "rows": rows}


@router.get("/stats.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
def statistics_csv(
    session: DbSession,
    principal: Reader,
    group_by: GroupBy = "centre",
    since: Since = None,
    until: Until = None,
    period: Period = "day",
) -> Response:
    """The same as /stats, as a CSV file for spreadsheets."""
    start, end = _window(since, until)
    rows = compute(
        session, group_by=group_by, since=start, until=end, scope=principal.scope, period=period
    )
    filename = f"sharpeyes-stats-{group_by}-{start:%Y%m%d}-{end:%Y%m%d}.csv"
    return Response(
        to_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
