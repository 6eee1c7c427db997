"""Database tables (SQLAlchemy 2 typed mappings)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from api.timeutil import UTCDateTime, utcnow


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


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

    alerts: Mapped[list[Alert]] = relationship(back_populates="case", order_by="Alert.occurred_at")


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
