"""Response and request bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from api.settings import UnitSpec

MAX_ID = 2**31 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]

T = TypeVar("T")

CaseState = Literal[
    "reported", "acknowledged", "dispatched", "in_progress", "resolved", "closed", "dismissed"
]
SeverityName = Literal["notice", "warning", "critical"]
RoleName = Literal["operator", "dispatcher", "integrator", "admin"]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class ErrorBody(BaseModel):
    detail: str


class TransitionConflict(BaseModel):
    detail: str
    state: str
    allowed: list[str]


# -- alerts ------------------------------------------------------------------------------
class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    event_id: str
    episode_id: str
    kind: str
    rule: str
    severity: str
    camera_id: str
    zone_id: str | None
    count: int
    peak_count: int
    threshold: int
    occurred_at: datetime
    received_at: datetime
    case_id: int
    has_snapshot: bool
    snapshot_url: str | None = None


class AlertDetail(AlertOut):
    payload: dict[str, Any]


# -- cases -------------------------------------------------------------------------------
class CaseOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    episode_id: str | None
    origin: str
    title: str
    description: str | None = None
    state: str
    severity: str
    camera_id: str | None
    camera_name: str | None
    zone_id: str | None
    zone_name: str | None
    district: str | None
    street: str | None
    community: str | None
    grid_cell: str | None
    people_count: int
    peak_count: int
    centre_id: int | None = None
    routed_centre_id: int | None = None
    escalation_level: int = 0
    episode_started_at: datetime | None
    episode_ended_at: datetime | None
    created_at: datetime
    created_by: str | None = None
    updated_at: datetime
    acknowledged_at: datetime | None = None
    dispatched_at: datetime | None = None
    in_progress_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    dismissed_at: datetime | None = None
    dismiss_reason: str | None = None
    allowed_transitions: list[str] = Field(default_factory=list)


class CaseEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    action: str
    from_state: str | None
    to_state: str | None
    note: str | None
    data: dict[str, Any]


class DispatchOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    unit_id: int
    unit_name: str
    unit_kind: str
    dispatched_at: datetime
    dispatched_by: str
    first_feedback_at: datetime | None


class PhotoOut(BaseModel):
    id: int
    content_type: str
    url: str


class FeedbackOut(BaseModel):
    id: int
    unit_id: int | None
    author: str
    note: str
    at: datetime
    photos: list[PhotoOut] = Field(default_factory=list)


class CaseDetail(CaseOut):
    alerts: list[AlertOut] = Field(default_factory=list)
    history: list[CaseEventOut] = Field(default_factory=list)
    dispatches: list[DispatchOut] = Field(default_factory=list)
    feedback: list[FeedbackOut] = Field(default_factory=list)


class CaseActionOut(BaseModel):
    """One thing the caller may do with a case now."""

    action: Literal[
        "acknowledge",
        "dispatch",
        "add_units",
        "feedback",
        "start",
        "resolve",
        "close",
        "reopen",
        "dismiss",
    ]
    to: CaseState | None = Field(description="The state it leads to (null: it stays).")
    method: str
    path: str = Field(description="Where to send it.")
    needs: list[str] = Field(
        default_factory=list, description="Body fields that must be given (e.g. reason)."
    )


class CaseCreate(BaseModel):
    """A case opened by an operator (e.g. seen on a video patrol or reported by phone)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=10_000)
    severity: SeverityName = "warning"
    camera_id: str | None = Field(
        None, max_length=64, description="The camera it was seen on; routes the case."
    )
    centre_id: Id | None = Field(
        None, description="The centre that handles it; default the camera's, else your own."
    )
    people_count: int = Field(0, ge=0, le=1_000_000)


class TransitionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: CaseState = Field(description="The next state; see allowed_transitions on the case.")
    note: str | None = Field(None, max_length=10_000)
    reason: str | None = Field(
        None, max_length=2_000, description="Required when dismissing: why it is a false alarm."
    )
    unit_ids: list[Id] = Field(
        default_factory=list, max_length=50, description="Units to send (to: dispatched)."
    )


class DispatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unit_ids: list[Id] = Field(min_length=1, max_length=50)
    note: str | None = Field(None, max_length=10_000)


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(min_length=1, max_length=10_000)
    unit_id: Id | None = Field(None, description="The dispatched unit reporting.")


# -- organisation and users ----------------------------------------------------------------
class CentreOut(BaseModel):
    id: int
    code: str
    name: str
    tier: str
    parent_id: int | None
    path: str
    grid_cells: list[str] = Field(default_factory=list)


class CentreCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    code: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    parent_id: Id | None = Field(None, description="None only for a district centre.")
    grid_cells: list[str] = Field(default_factory=list, max_length=1000)


class UnitOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: str
    phone: str | None
    centre_id: int
    active: bool


class UnitCreate(UnitSpec):
    centre_id: Id


class UnitUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    phone: str | None = Field(None, max_length=64)
    active: bool | None = Field(None, description="Inactive units cannot be dispatched.")


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    full_name: str | None
    role: str
    centre_id: int | None
    active: bool


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=8, max_length=256)
    role: RoleName
    centre_id: Id | None = Field(None, description="Scope; None (whole tree) for admins only.")
    full_name: str | None = Field(None, max_length=200)


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str | None = Field(None, min_length=8, max_length=256)
    role: RoleName | None = None
    centre_id: Id | None = None
    full_name: str | None = Field(None, max_length=200)
    active: bool | None = None


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime
    user: UserOut


class ImportResult(BaseModel):
    centres_created: int
    centres_updated: int
    grid_cells: int
    units_created: int


# -- service -----------------------------------------------------------------------------
class ConsumerHealth(BaseModel):
    name: str
    connected: bool
    consumed: int
    cases_created: int
    duplicates: int
    dead_lettered: int
    errors: int
    last_error: str | None
    lag: int | None
    reclaimed: int = 0  # entries taken over from consumers that held them too long
    pending: int | None = None  # delivered to some consumer, not yet acknowledged
    dead_letters: int | None = None  # entries in the dead-letter stream (GET /dead-letters)


class Health(BaseModel):
    status: str  # ok | degraded
    database: str
    redis: str
    consumer: ConsumerHealth | None
    version: str


class FeedEventOut(BaseModel):
    id: int
    type: str
    at: datetime
    case_id: int | None
    data: dict[str, Any]
