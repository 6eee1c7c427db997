"""Cases: list, open manually, follow through the workflow, feedback with photos."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from api import workflow
from api.case_actions import actions_for
from api.deps import DbId, DbSession, OptionalId, Principal, requires
from api.organisation import OrgTree
from api.orm import Camera, Case, Centre, Feedback, FeedbackPhoto, Unit
from api.schemas import (
    CaseActionOut,
    CaseCreate,
    CaseDetail,
    CaseEventOut,
    CaseOut,
    CaseState,
    DispatchOut,
    DispatchRequest,
    FeedbackCreate,
    FeedbackOut,
    Page,
    PhotoOut,
    TransitionConflict,
    TransitionRequest,
)
from api.serialize import alert_out, case_out
from api.timeutil import utcnow

router = APIRouter(prefix="/cases", tags=["cases"])

Reader = Annotated[Principal, Depends(requires("cases.read"))]
Handler = Annotated[Principal, Depends(requires("cases.handle"))]
Dispatcher = Annotated[Principal, Depends(requires("cases.dispatch"))]

NOT_FOUND = {404: {"description": "No such case (or not in your centre)"}}
CONFLICT = {409: {"model": TransitionConflict, "description": "Not allowed in this state"}}
PHOTO_TYPES = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n"}
MAX_PHOTO_BYTES = 8 * 1024 * 1024


def scope_filter(principal: Principal):  # type: ignore[no-untyped-def]
    if principal.scope is None:
        return True
    ids = list(principal.scope)
    return or_(Case.centre_id.in_(ids), Case.routed_centre_id.in_(ids))


def visible_case(session: Session, principal: Principal, case_id: int) -> Case:
    """The case, or a 404 that does not reveal whether it exists outside the scope."""
    case = session.get(Case, case_id)
    if case is None or not principal.sees(case.centre_id, case.routed_centre_id):
        raise HTTPException(404, f"case {case_id} does not exist")
    return case


def units_in_scope(session: Session, principal: Principal, case: Case) -> set[int] | None:
    """Units a case may use: those of the handling centre's line (ancestors and subtree)."""
    if case.centre_id is None:
        return principal.scope
    tree = OrgTree.load(session)
    allowed = tree.subtree(case.centre_id) | set(tree.ancestors(case.centre_id))
    if case.routed_centre_id is not None:
        allowed |= set(tree.ancestors(case.routed_centre_id))
    return allowed


@router.get("", response_model=Page[CaseOut])
def list_cases(
    session: DbSession,
    principal: Reader,
    state: Annotated[list[CaseState] | None, Query()] = None,
    open: Annotated[bool | None, Query(description="Only open (or only finished) cases")] = None,
    camera_id: str | None = None,
    centre_id: OptionalId = None,
    severity: Annotated[str | None, Query(pattern="^(notice|warning|critical)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Page[CaseOut]:
    """Newest first, within your centre and its children."""
    query = select(Case).where(scope_filter(principal))
    if state:
        query = query.where(Case.state.in_(state))
    if open is not None:
        condition = Case.state.in_(workflow.OPEN_STATES)
        query = query.where(condition if open else ~condition)
    if camera_id:
        query = query.where(Case.camera_id == camera_id)
    if centre_id is not None:
        subtree = OrgTree.load(session).subtree(centre_id)
        query = query.where(Case.centre_id.in_(list(subtree)))
    if severity:
        query = query.where(Case.severity == severity)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Case.created_at.desc(), Case.id.desc()).limit(limit).offset(offset)
    )
    return Page(items=[case_out(c) for c in rows], total=total, limit=limit, offset=offset)


@router.post("", response_model=CaseDetail, status_code=201, responses={422: {}})
def create_case(body: CaseCreate, session: DbSession, principal: Handler) -> CaseDetail:
    """Open a case by hand (seen on a video patrol, reported by phone)."""
    camera = None
    if body.camera_id is not None:
        camera = session.get(Camera, body.camera_id)
        if camera is None or not principal.sees(camera.centre_id):
            raise HTTPException(422, f"camera '{body.camera_id}' does not exist")
    centre_id = body.centre_id
    if centre_id is None:
        centre_id = camera.centre_id if camera is not None else principal.user.centre_id
    if centre_id is not None and (
        session.get(Centre, centre_id) is None or not principal.sees(centre_id)
    ):
        raise HTTPException(422, f"centre {centre_id} does not exist (or is not in your scope)")
    now = utcnow()
    location = (camera.spec.get("location") or {}) if camera is not None else {}
    case = Case(
        origin="manual",
        title=body.title,
        description=body.description,
        state="reported",
        severity=body.severity,
        camera_id=camera.id if camera else None,
        camera_name=camera.name if camera else None,
        district=location.get("district"),
        street=location.get("street"),
        community=location.get("community"),
        grid_cell=location.get("grid_cell"),
        people_count=body.people_count,
        peak_count=body.people_count,
        centre_id=centre_id,
        routed_centre_id=camera.centre_id if camera else centre_id,
        sla_started_at=now,
        created_at=now,
        updated_at=now,
        created_by=principal.name,
    )
    session.add(case)
    session.flush()
    workflow.record(
        session, case, actor=principal.name, action="created", to_state="reported", at=now
    )
    session.commit()
    return detail(session, case)


@router.get("/{case_id}", response_model=CaseDetail, responses=NOT_FOUND)
def get_case(case_id: DbId, session: DbSession, principal: Reader) -> CaseDetail:
    return detail(session, visible_case(session, principal, case_id))


@router.get("/{case_id}/actions", response_model=list[CaseActionOut], responses=NOT_FOUND)
def case_actions(case_id: DbId, session: DbSession, principal: Reader) -> list[CaseActionOut]:
    """What you may do with the case now: its next states that your role allows, plus
    feedback and adding units where they apply (a console shows exactly these)."""
    case = visible_case(session, principal, case_id)
    return [
        CaseActionOut(action=a.action, to=a.to, method=a.method, path=a.path, needs=list(a.needs))
        for a in actions_for(case.id, case.state, principal.can)
    ]


@router.get("/{case_id}/history", response_model=list[CaseEventOut], responses=NOT_FOUND)
def case_history(case_id: DbId, session: DbSession, principal: Reader) -> list[CaseEventOut]:
    """The audit trail: who did what, when, from which state to which."""
    case = visible_case(session, principal, case_id)
    return [CaseEventOut.model_validate(e) for e in case.history]


@router.post(
    "/{case_id}/transitions",
    response_model=CaseDetail,
    responses={**NOT_FOUND, **CONFLICT, 422: {}},
)
def transition_case(
    case_id: DbId, body: TransitionRequest, session: DbSession, principal: Reader
) -> CaseDetail:
    """Move a case on: 409 with the allowed next states when the move is not possible."""
    case = visible_case(session, principal, case_id)
    permission = workflow.PERMISSION_FOR.get(body.to, "cases.handle")
    if case.state == "resolved" and body.to == "in_progress":
        permission = "cases.verify"  # reopening after a failed verification
    principal.require(permission)
    workflow.transition(
        session,
        case,
        body.to,
        actor=principal.name,
        note=body.note,
        reason=body.reason,
        unit_ids=body.unit_ids,
        units_in_scope=units_in_scope(session, principal, case),
    )
    session.commit()
    return detail(session, case)


@router.post(
    "/{case_id}/dispatches",
    response_model=CaseDetail,
    responses={**NOT_FOUND, **CONFLICT, 422: {}},
)
def dispatch_units(
    case_id: DbId, body: DispatchRequest, session: DbSession, principal: Dispatcher
) -> CaseDetail:
    """Send units: moves an acknowledged case to dispatched, or adds units later."""
    case = visible_case(session, principal, case_id)
    workflow.dispatch_more(
        session,
        case,
        body.unit_ids,
        actor=principal.name,
        note=body.note,
        units_in_scope=units_in_scope(session, principal, case),
    )
    session.commit()
    return detail(session, case)


@router.post(
    "/{case_id}/feedback",
    response_model=FeedbackOut,
    status_code=201,
    responses={**NOT_FOUND, **CONFLICT, 422: {}},
)
def add_feedback(
    case_id: DbId, body: FeedbackCreate, session: DbSession, principal: Handler
) -> FeedbackOut:
    """A unit's report from the scene (add photos to it with POST …/photos)."""
    case = visible_case(session, principal, case_id)
    item = workflow.add_feedback(
        session, case, body.note, actor=principal.name, unit_id=body.unit_id
    )
    session.commit()
    return feedback_out(item)


@router.post(
    "/{case_id}/feedback/{feedback_id}/photos",
    response_model=PhotoOut,
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
    responses={**NOT_FOUND, 413: {}, 415: {}, 422: {}},
)
async def add_photo(
    case_id: DbId, feedback_id: DbId, request: Request, principal: Handler
) -> PhotoOut:
    """Attach a JPEG or PNG (the raw bytes as the body, e.g. ``fetch(url, {body: file})``)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in PHOTO_TYPES:
        raise HTTPException(415, f"send the photo as image/jpeg or image/png, not '{content_type}'")
    data = await request.body()
    if len(data) > MAX_PHOTO_BYTES:
        raise HTTPException(413, f"the photo has {len(data)} bytes; at most {MAX_PHOTO_BYTES}")
    if not data.startswith(PHOTO_TYPES[content_type]):
        raise HTTPException(422, f"the body is not a {content_type} image")
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(
        _store_photo, request, case_id, feedback_id, principal, content_type, data
    )


def _store_photo(
    request: Request,
    case_id: DbId,
    feedback_id: DbId,
    principal: Principal,
    content_type: str,
    data: bytes,
) -> PhotoOut:
    with request.app.state.sessions() as session:
        case = visible_case(session, principal, case_id)
        item = session.get(Feedback, feedback_id)
        if item is None or item.case_id != case.id:
            raise HTTPException(404, f"case {case_id} has no feedback {feedback_id}")
        photo = FeedbackPhoto(feedback_id=item.id, content_type=content_type, data=data)
        session.add(photo)
        session.flush()
        workflow.record(
            session,
            case,
            actor=principal.name,
            action="photo",
            data={"feedback_id": item.id, "photo_id": photo.id},
        )
        session.commit()
        return PhotoOut(
            id=photo.id, content_type=content_type, url=photo_url(case_id, item.id, photo.id)
        )


@router.get(
    "/{case_id}/feedback/{feedback_id}/photos/{photo_id}",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}, **NOT_FOUND},
)
def get_photo(
    case_id: DbId, feedback_id: DbId, photo_id: DbId, session: DbSession, principal: Reader
) -> Response:
    visible_case(session, principal, case_id)
    photo = session.get(FeedbackPhoto, photo_id)
    item = session.get(Feedback, feedback_id)
    if photo is None or item is None or item.case_id != case_id or photo.feedback_id != item.id:
        raise HTTPException(
            404, f"case {case_id} has no photo {photo_id} in feedback {feedback_id}"
        )
    return Response(photo.data, media_type=photo.content_type)


def photo_url(case_id: DbId, feedback_id: DbId, photo_id: int) -> str:
    return f"/cases/{case_id}/feedback/{feedback_id}/photos/{photo_id}"


def feedback_out(item: Feedback) -> FeedbackOut:
    return FeedbackOut(
        id=item.id,
        unit_id=item.unit_id,
        author=item.author,
        note=item.note,
        at=item.at,
        photos=[
            PhotoOut(
                id=p.id, content_type=p.content_type, url=photo_url(item.case_id, item.id, p.id)
            )
            for p in item.photos
        ],
    )


def detail(session: Session, case: Case) -> CaseDetail:
    session.refresh(case)
    out = CaseDetail(**case_out(case).model_dump())
    out.alerts = [alert_out(a) for a in case.alerts]
    out.history = [CaseEventOut.model_validate(e) for e in case.history]
    units = {
        u.id: u
        for u in session.scalars(
            select(Unit).where(Unit.id.in_([d.unit_id for d in case.dispatches]))
        )
    }
    out.dispatches = [
        DispatchOut(
            id=d.id,
            unit_id=d.unit_id,
            unit_name=units[d.unit_id].name,
            unit_kind=units[d.unit_id].kind,
            dispatched_at=d.dispatched_at,
            dispatched_by=d.dispatched_by,
            first_feedback_at=d.first_feedback_at,
        )
        for d in case.dispatches
    ]
    out.feedback = [feedback_out(f) for f in case.feedback]
    return out
