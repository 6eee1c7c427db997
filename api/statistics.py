"""Evaluation (综合考评): handling and closure rates and handling times.

Definitions (per group, over the cases created in the period, within the reader's scope):
- ``handling_rate``: share of cases someone acted on (acknowledged, or dismissed);
- ``closure_rate``: share of real cases (not dismissed) closed after verification;
- ``false_alarm_rate``: share of cases dismissed as false alarms;
- ``escalated``: cases that were escalated — per centre, escalated *away from* it (or its
  subtree) because they were not handled in time;
- ``time_to_acknowledge`` / ``time_to_dispatch`` / ``time_to_close``: seconds from the
  case's creation to that step, median and 90th percentile over the cases that reached it.
Centres are rolled up: a street's row counts the cases handled anywhere in its subtree.
Units count the cases they were dispatched to; their dispatch time is their own.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.organisation import OrgTree
from api.orm import Camera, Case, CaseEvent, Dispatch, Unit

GroupBy = Literal["centre", "unit", "camera", "period"]
Period = Literal["day", "week", "month"]


@dataclass
class Bucket:
    key: str
    name: str
    cases: int = 0
    handled: int = 0
    dispatched: int = 0
    closed: int = 0
    dismissed: int = 0
    open: int = 0
    escalated: int = 0
    ack: list[float] = field(default_factory=list)
    dispatch: list[float] = field(default_factory=list)
    close: list[float] = field(default_factory=list)

    def add(self, case: Case, dispatched_at: datetime | None = None) -> None:
        self.cases += 1
        if case.acknowledged_at is not None or case.dismissed_at is not None:
            self.handled += 1
        if case.state == "closed":
            self.closed += 1
        elif case.state == "dismissed":
            self.dismissed += 1
        else:
            self.open += 1
        dispatched_at = dispatched_at or case.dispatched_at
        if dispatched_at is not None:
            self.dispatched += 1
            self.dispatch.append(_seconds(case.created_at, dispatched_at))
        if case.acknowledged_at is not None:
            self.ack.append(_seconds(case.created_at, case.acknowledged_at))
        if case.closed_at is not None:
            self.close.append(_seconds(case.created_at, case.closed_at))

    def row(self) -> dict[str, Any]:
        real = self.cases - self.dismissed
        return {
            "key": self.key,
            "name": self.name,
            "cases": self.cases,
            "handled": self.handled,
            "dispatched": self.dispatched,
            "closed": self.closed,
            "dismissed": self.dismissed,
            "open": self.open,
            "escalated": self.escalated,
            "handling_rate": _rate(self.handled, self.cases),
            "closure_rate": _rate(self.closed, real),
            "false_alarm_rate": _rate(self.dismissed, self.cases),
            "time_to_acknowledge_median_s": _pct(self.ack, 50),
            "time_to_acknowledge_p90_s": _pct(self.ack, 90),
            "time_to_dispatch_median_s": _pct(self.dispatch, 50),
            "time_to_dispatch_p90_s": _pct(self.dispatch, 90),
            "time_to_close_median_s": _pct(self.close, 50),
            "time_to_close_p90_s": _pct(self.close, 90),
        }


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


COLUMNS = list(Bucket("", "").row())


def period_key(when: datetime, period: Period) -> str:
    if period == "day":
        return when.strftime("%Y-%m-%d")
    if period == "week":
        year, week, _ = when.isocalendar()
        return f"{year}-W{week:02d}"
    return when.strftime("%Y-%m")


def compute(
    session: Session,
    *,
    group_by: GroupBy,
    since: datetime,
    until: datetime,
    scope: set[int] | None,
    period: Period = "day",
) -> list[dict[str, Any]]:
    query = select(Case).where(Case.created_at >= since, Case.created_at < until)
    if scope is not None:
        query = query.where(Case.centre_id.in_(list(scope)))
    cases = session.scalars(query).all()
    buckets: dict[str, Bucket] = {}

    def bucket(key: str, name: str) -> Bucket:
        if key not in buckets:
            buckets[key] = Bucket(key, name)
        return buckets[key]

    if group_by == "centre":
        tree = OrgTree.load(session)
        for case in cases:
            if case.centre_id is None:
                bucket("none", "(no centre)").add(case)
                continue
            for centre_id in tree.ancestors(case.centre_id):
                if scope is None or centre_id in scope:
                    bucket(str(centre_id), tree.path(centre_id)).add(case)
        _count_escalations(session, tree, cases, scope, bucket)
    elif group_by == "camera":
        names = dict(session.execute(select(Camera.id, Camera.name)).all())
        for case in cases:
            key = case.camera_id or "(manual)"
            bucket(key, names.get(key) or case.camera_name or key).add(case)
            buckets[key].escalated += case.escalation_level > 0
    elif group_by == "unit":
        by_case: dict[int, Case] = {c.id: c for c in cases}
        if by_case:
            rows = session.execute(
                select(Dispatch.case_id, Dispatch.dispatched_at, Unit.id, Unit.name)
                .join(Unit, Dispatch.unit_id == Unit.id)
                .where(Dispatch.case_id.in_(list(by_case)))
            ).all()
            for case_id, dispatched_at, unit_id, unit_name in rows:
                bucket(str(unit_id), unit_name).add(by_case[case_id], dispatched_at)
    else:
        for case in cases:
            key = period_key(case.created_at, period)
            bucket(key, key).add(case)
            buckets[key].escalated += case.escalation_level > 0
    ordered = sorted(buckets.values(), key=lambda b: b.key if group_by == "period" else b.name)
    return [b.row() for b in ordered]


def _count_escalations(session, tree, cases, scope, bucket) -> None:  # type: ignore[no-untyped-def]
    """Per centre: cases escalated away from it or from below it (each case once)."""
    ids = [c.id for c in cases if c.escalation_level > 0]
    if not ids:
        return
    rows = session.execute(
        select(CaseEvent.case_id, CaseEvent.data).where(
            CaseEvent.case_id.in_(ids), CaseEvent.action == "escalated"
        )
    ).all()
    counted: set[tuple[int, int]] = set()
    for case_id, data in rows:
        source = (data or {}).get("from_centre_id")
        if source not in tree.nodes:
            continue
        for centre_id in tree.ancestors(source):
            if (scope is None or centre_id in scope) and (case_id, centre_id) not in counted:
                # An escalation between two centres inside one subtree is not that
                # subtree's failure only if the case stayed inside it: count leaving only.
                to_centre = (data or {}).get("to_centre_id")
                if to_centre is not None and centre_id in tree.ancestors(to_centre):
                    continue
                counted.add((case_id, centre_id))
                bucket(str(centre_id), tree.path(centre_id)).escalated += 1


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def default_window(now: datetime) -> tuple[datetime, datetime]:
    return now - timedelta(days=30), now + timedelta(seconds=1)
