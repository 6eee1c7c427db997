"""Per-camera analysis: people per zone and per group, gathering rules, alerts to publish."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from camera_adapters.frames import Frame
from camera_adapters.spec import CameraSpec
from camera_adapters.zone_spec import ZoneSpec
from models.detections import Detections
from pipeline.alerts import PendingAlert, Place, build_alert
from pipeline.calibration import GroundPlane
from pipeline.clusters import Group, GroupTracker
from pipeline.gathering import GatheringMonitor, RuleEvent
from pipeline.zones import count_zones

log = logging.getLogger(__name__)


@dataclass
class ZoneRules:
    zone: ZoneSpec
    monitor: GatheringMonitor
    place: Place


def describe_position(outline: list[tuple[float, float]]) -> str:
    """'lower left', 'centre', … of the view, so operators find a group on the image."""
    xs = [x for x, _ in outline] or [0.5]
    ys = [y for _, y in outline] or [0.5]
    cx, cy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
    row = "upper" if cy < 1 / 3 else "lower" if cy > 2 / 3 else "middle"
    column = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "centre"
    return "centre" if (row, column) == ("middle", "centre") else f"{row} {column}"


@dataclass
class CameraAnalyzer:
    """The rule state of one camera: fed every analysed frame, returns the alerts raised."""

    spec: CameraSpec
    producer: str
    new_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)
    zone_counts: dict[str, int] = field(default_factory=dict)
    ground: GroundPlane | None = field(init=False)
    zones: list[ZoneRules] = field(init=False)
    groups: GroupTracker | None = field(init=False)

    def __post_init__(self) -> None:
        calibration = self.spec.calibration
        self.ground = GroundPlane.from_calibration(calibration) if calibration else None
        self.zones = [
            ZoneRules(
                zone,
                GatheringMonitor(zone.gathering, new_id=self.new_id),
                Place(
                    zone.id,
                    zone.name,
                    list(zone.polygon),
                    self.ground.area_m2(zone.polygon) if self.ground else None,
                ),
            )
            for zone in self.spec.zones
        ]
        clusters = self.spec.clusters
        self.groups = GroupTracker(clusters, self.ground, self.new_id) if clusters else None

    def analyse(self, frame: Frame, detections: Detections) -> list[PendingAlert]:
        height, width = frame.image.shape[:2]
        normalised = detections.normalised(width, height)
        alerts = []
        counts = count_zones(
            detections,
            (width, height),
            [rules.zone for rules in self.zones],
            [rules.place.area_m2 for rules in self.zones],
        )
        for rules, zone_count in zip(self.zones, counts, strict=True):
            self.zone_counts[rules.zone.id] = zone_count.count
            for event in rules.monitor.update(
                frame.captured_at, zone_count.count, zone_count.density
            ):
                self._log(event, rules.zone.id)
                alerts.append(
                    build_alert(
                        self.spec,
                        rules.place,
                        event,
                        frame,
                        normalised,
                        zone_count.inside,
                        self.producer,
                    )
                )
        if self.groups is not None:
            for group_event in self.groups.update(frame.captured_at, detections, (width, height)):
                self._log(group_event.event, None)
                members = np.zeros(len(detections), dtype=bool)
                if group_event.present:
                    members[group_event.group.members] = True
                alerts.append(
                    build_alert(
                        self.spec,
                        self._group_place(group_event.group),
                        group_event.event,
                        frame,
                        normalised,
                        members,
                        self.producer,
                    )
                )
        return alerts

    @staticmethod
    def _group_place(group: Group) -> Place:
        where = describe_position(group.outline)
        return Place(None, f"Group of people, {where} of the view", group.outline, group.area_m2)

    def _log(self, event: RuleEvent, zone_id: str | None) -> None:
        log.info(
            "gathering %s",
            event.kind,
            extra={
                "camera": self.spec.id,
                "zone": zone_id,
                "rule": event.rule,
                "severity": event.severity.value,
                "count": event.count,
                "episode": event.episode_id,
            },
        )
