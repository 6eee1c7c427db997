"""Database tables (SQLAlchemy 2 typed mappings)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from api.timeutil import UTCDateTime, utcnow


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


# -- organisation ------------------------------------------------------------------------
class Centre(Base):
    """A linkage centre: the district centre, a street sub-centre or a community workstation."""

    __tablename__ = "centres"
    __table_args__ = (UniqueConstraint("parent_id", "name", name="uq_centres_parent_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    tier: Mapped[str] = mapped_column(String(16))  # district | street | community
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("centres.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class GridCell(Base):
    """A grid cell (网格) owned by a community workstation; cameras stand in one."""

    __tablename__ = "grid_cells"

    code: Mapped[str] = mapped_column(String(100), primary_key=True)
    centre_id: Mapped[int] = mapped_column(ForeignKey("centres.id"), index=True)


class Unit(Base):
    """A unit that can be dispatched: police station, city management, patrol, grid workers."""

    __tablename__ = "units"
    __table_args__ = (UniqueConstraint("centre_id", "name", name="uq_units_centre_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    phone: Mapped[str | None] = mapped_column(String(64))
    centre_id: Mapped[int] = mapped_column(ForeignKey("centres.id"), index=True)
    active: Mapped[bool] = mapped_column(default=True)


# -- access ------------------------------------------------------------------------------
class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))  # operator | dispatcher | integrator | admin
    centre_id: Mapped[int | None] = mapped_column(ForeignKey("centres.id"), index=True)
    active: Mapped[bool] = mapped_column(default=True)
    token_version: Mapped[int] = mapped_column(default=0)  # bump to revoke issued tokens
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ServiceSecret(Base):
    """Secrets every API process must share (the token signing key when none is configured)."""

    __tablename__ = "service_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


# -- cameras -----------------------------------------------------------------------------
class Camera(Base):
    """The camera registry: cameras declared in the config file and cameras added by the API."""

    __tablename__ = "cameras"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    origin: Mapped[str] = mapped_column(String(16))  # config | api
    spec: Mapped[dict[str, Any]]  # camera_adapters.spec.CameraSpec, credentials included
    grid_cell: Mapped[str] = mapped_column(String(100), index=True)
    centre_id: Mapped[int | None] = mapped_column(ForeignKey("centres.id"), index=True)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# -- cases -------------------------------------------------------------------------------
class Case(Base):
    """A linkage-centre case: one per gathering episode, or opened by an operator."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    episode_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    origin: Mapped[str] = mapped_column(String(16), default="alert")  # alert | manual
    title: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(32), default="reported", index=True)
    severity: Mapped[str] = mapped_column(String(16), index=True)
    camera_id: Mapped[str | None] = mapped_column(String(64), index=True)
    camera_name: Mapped[str | None] = mapped_column(String(200))
    zone_id: Mapped[str | None] = mapped_column(String(64))
    zone_name: Mapped[str | None] = mapped_column(String(200))
    district: Mapped[str | None] = mapped_column(String(100))
    street: Mapped[str | None] = mapped_column(String(100))
    community: Mapped[str | None] = mapped_column(String(100))
    grid_cell: Mapped[str | None] = mapped_column(String(100))
    people_count: Mapped[int] = mapped_column(default=0)
    peak_count: Mapped[int] = mapped_column(default=0)
    episode_started_at: Mapped[datetime | None]
    episode_ended_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Workflow (revision 0002).
    description: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(64))
    centre_id: Mapped[int | None] = mapped_column(ForeignKey("centres.id"), index=True)
    routed_centre_id: Mapped[int | None] = mapped_column(ForeignKey("centres.id"), index=True)
    escalation_level: Mapped[int] = mapped_column(default=0)
    sla_started_at: Mapped[datetime | None]  # when the case reached its current centre
    acknowledged_at: Mapped[datetime | None]
    dispatched_at: Mapped[datetime | None]
    in_progress_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    dismissed_at: Mapped[datetime | None]
    dismiss_reason: Mapped[str | None] = mapped_column(Text)

    alerts: Mapped[list[Alert]] = relationship(back_populates="case", order_by="Alert.occurred_at")
    history: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", order_by="CaseEvent.id", cascade="all, delete-orphan"
    )
    dispatches: Mapped[list[Dispatch]] = relationship(
        back_populates="case", order_by="Dispatch.id", cascade="all, delete-orphan"
    )
    feedback: Mapped[list[Feedback]] = relationship(
        back_populates="case", order_by="Feedback.id", cascade="all, delete-orphan"
    )


Index("ix_cases_state_sla", Case.state, Case.sla_started_at)
Index("ix_cases_created_at", Case.created_at)


class CaseEvent(Base):
    """The audit trail: every transition, dispatch, feedback and escalation of a case."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))  # a username, or "system"
    action: Mapped[str] = mapped_column(String(32))  # created | transition | escalated | …
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    case: Mapped[Case] = relationship(back_populates="history")


class Dispatch(Base):
    """A unit sent to a case."""

    __tablename__ = "dispatches"
    __table_args__ = (UniqueConstraint("case_id", "unit_id", name="uq_dispatches_case_unit"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    dispatched_at: Mapped[datetime] = mapped_column(default=utcnow)
    dispatched_by: Mapped[str] = mapped_column(String(64))
    first_feedback_at: Mapped[datetime | None]

    case: Mapped[Case] = relationship(back_populates="dispatches")
    unit: Mapped[Unit] = relationship()


class Feedback(Base):
    """A unit's report from the scene: notes and photos."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    author: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)

    case: Mapped[Case] = relationship(back_populates="feedback")
    photos: Mapped[list[FeedbackPhoto]] = relationship(
        order_by="FeedbackPhoto.id", cascade="all, delete-orphan"
    )


class FeedbackPhoto(Base):
    __tablename__ = "feedback_photos"

    id: Mapped[int] = mapped_column(primary_key=True)
    feedback_id: Mapped[int] = mapped_column(
        ForeignKey("feedback.id", ondelete="CASCADE"), index=True
    )
    content_type: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    at: Mapped[datetime] = mapped_column(default=utcnow)


# -- live feed ---------------------------------------------------------------------------
class FeedEvent(Base):
    """What the live feed pushed, kept so a reconnecting console resumes from its last id."""

    __tablename__ = "feed_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    type: Mapped[str] = mapped_column(String(32))  # alert | case | escalation
    case_id: Mapped[int | None] = mapped_column(index=True)
    # The centres whose subtrees may see it: the handling centre and where it was routed.
    centre_id: Mapped[int | None] = mapped_column(index=True)
    routed_centre_id: Mapped[int | None]
    payload: Mapped[dict[str, Any]]


# -- alerts ------------------------------------------------------------------------------
class Alert(Base):
    """One alert event as received from the stream (started / escalated / ended)."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_occurred_at", "occurred_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    episode_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    rule: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    camera_id: Mapped[str] = mapped_column(String(64), index=True)
    zone_id: Mapped[str | None] = mapped_column(String(64))
    count: Mapped[int]
    peak_count: Mapped[int]
    threshold: Mapped[int]
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    stream_entry_id: Mapped[str | None] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]]
    has_snapshot: Mapped[bool] = mapped_column(default=False)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)

    case: Mapped[Case] = relationship(back_populates="alerts")


class Snapshot(Base):
    """The JPEG of an alert, copied out of Redis (where it expires) when the alert arrives."""

    __tablename__ = "snapshots"

    alert_id: Mapped[int] = mapped_column(
        ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True
    )
    content_type: Mapped[str] = mapped_column(String(64), default="image/jpeg")
    data: Mapped[bytes] = mapped_column(LargeBinary)
