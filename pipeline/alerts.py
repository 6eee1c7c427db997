"""Turning rule events into alert events (and what their snapshots show)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from alerting.events import (
    TIER_FOR_SEVERITY,
    AlertEvent,
    AlertLocation,
    EventKind,
    PersonBox,
)
from camera_adapters.frames import Frame
from camera_adapters.spec import CameraSpec
from models.detections import Detections
from pipeline.gathering import RuleEvent


def to_datetime(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


@dataclass(frozen=True)
class Place:
    """Where an episode happens: a configured zone, or the outline of a group of people."""

    zone_id: str | None
    name: str
    polygon: list[tuple[float, float]]  # normalised image coordinates
    area_m2: float | None = None


@dataclass(frozen=True)
class PendingAlert:
    """An alert waiting to be published, with what is needed to draw its snapshot."""

    event: AlertEvent
    frame: Frame
    boxes: np.ndarray  # normalised xyxy
    in_zone: np.ndarray  # bool: counted in this place


def build_alert(
    camera: CameraSpec,
    place: Place,
    rule_event: RuleEvent,
    frame: Frame,
    normalised: Detections,
    in_zone: np.ndarray,
    producer: str,
) -> PendingAlert:
    """``normalised`` holds the frame's detections as fractions of the image size."""
    event = AlertEvent(
        idempotency_key=f"{rule_event.episode_id}:{rule_event.kind}:{rule_event.sequence}",
        episode_id=rule_event.episode_id,
        kind=EventKind(rule_event.kind),
        rule=rule_event.rule,
        severity=rule_event.severity,
        tier=TIER_FOR_SEVERITY[rule_event.severity],
        camera_id=camera.id,
        camera_name=camera.name,
        location=AlertLocation(
            district=camera.location.district,
            street=camera.location.street,
            community=camera.location.community,
            grid_cell=camera.location.grid_cell,
            address=camera.location.address,
        ),
        zone_id=place.zone_id,
        zone_name=place.name,
        zone_polygon=list(place.polygon),
        zone_area_m2=None if place.area_m2 is None else round(place.area_m2, 2),
        count=rule_event.count,
        peak_count=rule_event.peak_count,
        threshold=rule_event.threshold,
        density_per_m2=rule_event.density,
        count_rise=rule_event.count_rise,
        rules=list(rule_event.rules),
        reason=rule_event.reason,
        episode_started_at=to_datetime(rule_event.episode_started_at),
        occurred_at=to_datetime(rule_event.at),
        ended_at=to_datetime(rule_event.ended_at) if rule_event.ended_at else None,
        people=[
            PersonBox(
                box=tuple(round(float(v), 4) for v in box),  # type: ignore[arg-type]
                score=round(float(score), 3),
                in_zone=bool(inside),
            )
            for box, score, inside in zip(normalised.xyxy, normalised.scores, in_zone, strict=True)
        ],
        producer=producer,
    )
    return PendingAlert(event, frame, normalised.xyxy, in_zone)
