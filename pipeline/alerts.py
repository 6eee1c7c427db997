"""Turning rule events into alert events with snapshots."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from alerting.events import AlertEvent, AlertLocation, EventKind, PersonBox, Severity
from camera_adapters.frames import Frame
from camera_adapters.spec import CameraSpec
from camera_adapters.zone_spec import ZoneSpec
from models.detections import Detections
from pipeline.gathering import RuleEvent


def to_datetime(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


@dataclass(frozen=True)
class PendingAlert:
    """An alert waiting to be published, with what is needed to draw its snapshot."""

    event: AlertEvent
    frame: Frame
    boxes: np.ndarray  # normalised xyxy
    in_zone: np.ndarray  # bool


def build_alert(
    camera: CameraSpec,
    zone: ZoneSpec,
    rule_event: RuleEvent,
    frame: Frame,
    detections: Detections,
    in_zone: np.ndarray,
    producer: str,
) -> PendingAlert:
    height, width = frame.image.shape[:2]
    normalised = detections.normalised(width, height)
    event = AlertEvent(
        idempotency_key=f"{rule_event.episode_id}:{rule_event.kind}:{rule_event.sequence}",
        episode_id=rule_event.episode_id,
        kind=EventKind(rule_event.kind),
        rule=rule_event.rule,
        severity=Severity.WARNING,
        camera_id=camera.id,
        camera_name=camera.name,
        location=AlertLocation(
            district=camera.location.district,
            street=camera.location.street,
            community=camera.location.community,
            grid_cell=camera.location.grid_cell,
            address=camera.location.address,
        ),
        zone_id=zone.id,
        zone_name=zone.name,
        zone_polygon=list(zone.polygon),
        count=rule_event.count,
        peak_count=rule_event.peak_count,
        threshold=rule_event.threshold,
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
