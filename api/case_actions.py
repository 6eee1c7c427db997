"""What a given user may do with a case right now, so a console shows only those buttons.

The workflow says which next states exist (``allowed_transitions``); the role says which of
them this user may take (``PERMISSION_FOR``). Combining both here keeps the rule in one
place: a console that copied the table would drift from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from api.workflow import PERMISSION_FOR, TRANSITIONS

# Transition target → the action's name as operators know it (resolved → in_progress is
# the verifier sending a case back, "reopen"; dispatched → in_progress is "start").
ACTION_FOR = {
    "acknowledged": "acknowledge",
    "dispatched": "dispatch",
    "resolved": "resolve",
    "closed": "close",
    "dismissed": "dismiss",
}
FEEDBACK_STATES = ("dispatched", "in_progress", "resolved")
ADD_UNITS_STATES = ("dispatched", "in_progress")


@dataclass(frozen=True)
class CaseAction:
    action: str  # acknowledge, dispatch, add_units, feedback, start, resolve, close, reopen…
    to: str | None  # the state it leads to; None when the state stays
    method: str
    path: str
    needs: tuple[str, ...]  # body fields that must be given


def actions_for(case_id: int, state: str, can: Callable[[str], bool]) -> list[CaseAction]:
    """The actions ``can`` (a permission check) allows on a case in ``state``, in the
    order a console shows them: the workflow's next step first, dismissal last."""
    found: list[CaseAction] = []
    transitions = f"/cases/{case_id}/transitions"
    for to in TRANSITIONS.get(state, ()):
        permission = PERMISSION_FOR.get(to, "cases.handle")
        if state == "resolved" and to == "in_progress":
            permission = "cases.verify"
        if not can(permission):
            continue
        if to == "dispatched":
            found.append(
                CaseAction("dispatch", to, "POST", f"/cases/{case_id}/dispatches", ("unit_ids",))
            )
        elif to == "in_progress":
            name = "reopen" if state == "resolved" else "start"
            found.append(CaseAction(name, to, "POST", transitions, ()))
        else:
            needs = ("reason",) if to == "dismissed" else ()
            found.append(CaseAction(ACTION_FOR[to], to, "POST", transitions, needs))
    if state in FEEDBACK_STATES and can("cases.handle"):
        to = "in_progress" if state == "dispatched" else None
        found.append(CaseAction("feedback", to, "POST", f"/cases/{case_id}/feedback", ("note",)))
    if state in ADD_UNITS_STATES and can("cases.dispatch"):
        found.append(
            CaseAction("add_units", None, "POST", f"/cases/{case_id}/dispatches", ("unit_ids",))
        )
    found.sort(key=lambda a: a.action == "dismiss")
    return found
