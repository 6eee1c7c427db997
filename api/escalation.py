"""Escalation: a case not acknowledged (or not dispatched) in time moves to the parent centre.

The SLA clock starts when a case reaches a centre; an escalation restarts it at the parent,
so an ignored case climbs community → street → district one SLA at a time. The check runs
in a background thread of every API process; a conditional UPDATE makes sure two processes
never escalate the same case twice. The clock is injectable so tests need not wait.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from api import workflow
from api.organisation import OrgTree
from api.orm import Case
from api.settings import EscalationSettings
from api.timeutil import utcnow

log = logging.getLogger(__name__)

WAITING_FOR = {"reported": "acknowledged", "acknowledged": "dispatched"}


@dataclass(frozen=True)
class Escalation:
    case_id: int
    from_centre_id: int
    to_centre_id: int
    state: str
    waited_s: float


class Escalator:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: EscalationSettings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.clock = clock
        self.escalated = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sla_s(self, state: str, severity: str) -> float:
        """The SLA for a case in ``state`` (reported or acknowledged) of ``severity``."""
        table, defaults = (
            (self.settings.acknowledge_sla_s, EscalationSettings().acknowledge_sla_s)
            if state == "reported"
            else (self.settings.dispatch_sla_s, EscalationSettings().dispatch_sla_s)
        )
        return table.get(severity, defaults.get(severity, 300.0))

    def run_once(self, now: datetime | None = None) -> list[Escalation]:
        """Escalate every overdue case once; returns what was escalated."""
        now = now or self.clock()
        done: list[Escalation] = []
        shortest = min(
            self.sla_s(state, severity)
            for state in WAITING_FOR
            for severity in ("notice", "warning", "critical")
        )
        with self.sessions() as session:
            candidates = session.scalars(
                select(Case).where(
                    Case.state.in_(tuple(WAITING_FOR)),
                    Case.centre_id.is_not(None),
                    Case.sla_started_at <= now - timedelta(seconds=shortest),
                )
            ).all()
            if not candidates:
                return done
            tree = OrgTree.load(session)
            for case in candidates:
                assert case.sla_started_at is not None and case.centre_id is not None
                waited = (now - case.sla_started_at).total_seconds()
                sla = self.sla_s(case.state, case.severity)
                node = tree.nodes.get(case.centre_id)
                if waited < sla or node is None or node.parent_id is None:
                    continue  # in time, or already at the top of the tree
                escalation = self._escalate(session, case, node.parent_id, sla, waited, now)
                if escalation is not None:
                    done.append(escalation)
        return done

    def _escalate(
        self,
        session: Session,
        case: Case,
        parent_id: int,
        sla: float,
        waited: float,
        now: datetime,
    ) -> Escalation | None:
        from_centre = case.centre_id
        assert from_centre is not None
        level = case.escalation_level
        # Only the process whose UPDATE matches the state it read escalates the case.
        result = session.execute(
            update(Case)
            .where(
                Case.id == case.id,
                Case.centre_id == from_centre,
                Case.escalation_level == level,
                Case.state == case.state,
            )
            .values(
                centre_id=parent_id,
                escalation_level=level + 1,
                sla_started_at=now,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            return None
        session.refresh(case)
        workflow.record(
            session,
            case,
            actor="system",
            action="escalated",
            from_state=case.state,
            to_state=case.state,
            note=f"not {WAITING_FOR[case.state]} within {sla:.0f} s "
            f"(waited {waited:.0f} s): escalated to the parent centre",
            data={
                "from_centre_id": from_centre,
                "to_centre_id": parent_id,
                "level": level + 1,
                "sla_s": sla,
                "waited_s": round(waited, 1),
            },
            at=now,
        )
        session.commit()
        self.escalated += 1
        log.info(
            "case escalated",
            extra={"case_id": case.id, "from_centre": from_centre, "to_centre": parent_id},
        )
        return Escalation(case.id, from_centre, parent_id, case.state, waited)

    # -- background thread ------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="escalator", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.check_interval_s):
            try:
                self.run_once()
                self.last_error = None
            except Exception as error:  # keep checking; the database may come back
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("escalation check failed", extra={"error": self.last_error})
