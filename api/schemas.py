"""Response and request bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


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


class CaseOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    episode_id: str | None
    origin: str
    title: str
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
    episode_started_at: datetime | None
    episode_ended_at: datetime | None
    created_at: datetime
    updated_at: datetime


class CaseDetail(CaseOut):
    alerts: list[AlertOut] = Field(default_factory=list)


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


class ErrorBody(BaseModel):
    detail: str
