"""Building realistic alert events for tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from alerting.events import AlertEvent, AlertLocation, EventKind, Severity


def make_event(
    *,
    episode_id: str | None = None,
    kind: EventKind = EventKind.STARTED,
    sequence: int = 1,
    camera_id: str = "plaza-east",
    count: int = 23,
    severity: Severity = Severity.WARNING,
    **changes: object,
) -> AlertEvent:
    episode = episode_id or uuid.uuid4().hex
    started = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    fields: dict[str, object] = {
        "idempotency_key": f"{episode}:{kind.value}:{sequence}",
        "episode_id": episode,
        "kind": kind,
        "severity": severity,
        "camera_id": camera_id,
        "camera_name": "Plaza east",
        "location": AlertLocation(
            district="Haizhu", street="Binjiang", community="Riverside", grid_cell="BJ-07"
        ),
        "zone_id": "front",
        "zone_name": "Plaza front",
        "zone_polygon": [(0.1, 0.5), (0.9, 0.5), (0.9, 1.0), (0.1, 1.0)],
        "count": count,
        "peak_count": count,
        "threshold": 20,
        "episode_started_at": started,
        "occurred_at": started + timedelta(seconds=30 * sequence),
    }
    fields.update(changes)
    return AlertEvent(**fields)  # type: ignore[arg-type]
