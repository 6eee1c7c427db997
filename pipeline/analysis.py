"""Per-camera analysis: people per zone, gathering rules, alerts to publish."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from camera_adapters.frames import Frame
from camera_adapters.spec import CameraSpec
from models.detections import Detections
from pipeline.alerts import PendingAlert, build_alert
from pipeline.gathering import SustainedGathering
from pipeline.zones import count_zones

log = logging.getLogger(__name__)


@dataclass
class CameraAnalyzer:
    """The rule state of one camera: fed every analysed frame, returns the alerts raised."""

    spec: CameraSpec
    producer: str
    monitors: dict[str, SustainedGathering] = field(init=False)
    zone_counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.monitors = {zone.id: SustainedGathering(zone.gathering) for zone in self.spec.zones}

    def analyse(self, frame: Frame, detections: Detections) -> list[PendingAlert]:
        height, width = frame.image.shape[:2]
        alerts = []
        for zone_count in count_zones(detections, (width, height), self.spec.zones):
            zone = zone_count.zone
            self.zone_counts[zone.id] = zone_count.count
            for rule_event in self.monitors[zone.id].update(frame.captured_at, zone_count.count):
                log.info(
                    "gathering %s",
                    rule_event.kind,
                    extra={
                        "camera": self.spec.id,
                        "zone": zone.id,
                        "count": rule_event.count,
                        "episode": rule_event.episode_id,
                    },
                )
                alerts.append(
                    build_alert(
                        self.spec,
                        zone,
                        rule_event,
                        frame,
                        detections,
                        zone_count.inside,
                        self.producer,
                    )
                )
        return alerts
