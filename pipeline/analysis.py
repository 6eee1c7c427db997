"""Per-camera analysis: people per zone and per group, gathering rules, alerts to publish."""

from __future__ import annotations

import logging
import threading
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
from pipeline.clusters import Group, GroupEvent, GroupTracker
from pipeline.gathering import GatheringMonitor, Phase, RuleEvent
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
    # Rules of zones edited away with an episode open: ended with the next analysed frame.
    _closing: list[ZoneRules] = field(init=False, default_factory=list)
    # The group tracker replaced by an edit of the group settings, with episodes to end.
    _closing_groups: GroupTracker | None = field(init=False, default=None)
    # Analysis runs on an inference thread, ``close_all`` on whoever removes the camera.
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock, repr=False)

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

    def reconfigured(self, spec: CameraSpec) -> CameraAnalyzer:
        """The analyzer for the camera after an edit of its zones, groups or calibration.

        A zone whose polygon and gathering thresholds did not change keeps its rule state:
        an episode in it goes on through a rename or an edit of another zone, neither ended
        nor raised again. An episode of a zone that was removed, reshaped or given other
        thresholds is ended with the next analysed frame, so that its case is closed rather
        than left open forever (a new episode starts if the people are still there). Group
        episodes go on while the group settings and the calibration stay the same, and are
        ended with the next frame otherwise.
        """
        with self._lock:
            return self._reconfigured(spec)

    def _reconfigured(self, spec: CameraSpec) -> CameraAnalyzer:
        new = CameraAnalyzer(spec, self.producer, self.new_id)
        before = {rules.zone.id: rules for rules in self.zones}
        kept: set[str] = set()
        for rules in new.zones:
            old = before.get(rules.zone.id)
            if (
                old is not None
                and old.zone.polygon == rules.zone.polygon
                and old.zone.gathering == rules.zone.gathering
            ):
                rules.monitor = old.monitor
                kept.add(rules.zone.id)
        new._closing = self._closing + [
            rules
            for zone_id, rules in before.items()
            if zone_id not in kept and rules.monitor.phase is Phase.ACTIVE
        ]
        if self.groups is not None:
            if spec.clusters == self.spec.clusters and spec.calibration == self.spec.calibration:
                new.groups = self.groups
            else:  # its open episodes are ended with the next frame
                new._closing_groups = self.groups
        new.zone_counts = {z: n for z, n in self.zone_counts.items() if z in kept}
        return new

    def close_all(self, frame: Frame, detections: Detections) -> list[PendingAlert]:
        """End every open zone and group episode, counted in ``frame`` (the camera's last
        analysed one): the camera was removed or disabled, so nothing would ever end them
        and their cases would stay open forever."""
        reason = "the camera was removed or disabled: this episode is closed"
        height, width = frame.image.shape[:2]
        normalised = detections.normalised(width, height)
        with self._lock:
            closing, self._closing = [*self._closing, *self.zones], []
            alerts = self._close(closing, frame, detections, normalised, reason)
            for tracker in (self._closing_groups, self.groups):
                if tracker is not None:
                    alerts += self._close_groups(tracker, frame, detections, normalised, reason)
            self._closing_groups = None
            return alerts

    def analyse(self, frame: Frame, detections: Detections) -> list[PendingAlert]:
        with self._lock:
            return self._analyse(frame, detections)

    def _analyse(self, frame: Frame, detections: Detections) -> list[PendingAlert]:
        height, width = frame.image.shape[:2]
        normalised = detections.normalised(width, height)
        alerts: list[PendingAlert] = []
        if self._closing:
            closing, self._closing = self._closing, []
            alerts += self._close(
                closing,
                frame,
                detections,
                normalised,
                "its zone was changed or removed: this episode is closed, and a new one "
                "starts if people are still gathered there",
            )
        if self._closing_groups is not None:
            tracker, self._closing_groups = self._closing_groups, None
            alerts += self._close_groups(
                tracker,
                frame,
                detections,
                normalised,
                "the group settings changed: this episode is closed, and a new one starts if "
                "the group is still there",
            )
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
                alerts.append(self._zone_alert(rules, event, frame, normalised, zone_count.inside))
        if self.groups is not None:
            for group_event in self.groups.update(frame.captured_at, detections, (width, height)):
                alerts.append(self._group_alert(group_event, frame, detections, normalised))
        return alerts

    def _close_groups(
        self,
        tracker: GroupTracker,
        frame: Frame,
        detections: Detections,
        normalised: Detections,
        reason: str,
    ) -> list[PendingAlert]:
        return [
            self._group_alert(group_event, frame, detections, normalised)
            for group_event in tracker.close_all(frame.captured_at, reason)
        ]

    def _group_alert(
        self, group_event: GroupEvent, frame: Frame, detections: Detections, normalised: Detections
    ) -> PendingAlert:
        self._log(group_event.event, None)
        members = np.zeros(len(detections), dtype=bool)
        if group_event.present:
            members[group_event.group.members] = True
        return build_alert(
            self.spec,
            self._group_place(group_event.group),
            group_event.event,
            frame,
            normalised,
            members,
            self.producer,
        )

    def _close(
        self,
        zones: list[ZoneRules],
        frame: Frame,
        detections: Detections,
        normalised: Detections,
        reason: str,
    ) -> list[PendingAlert]:
        """End the open episodes of ``zones``, counted in this frame as the zones were."""
        height, width = frame.image.shape[:2]
        counts = count_zones(
            detections,
            (width, height),
            [rules.zone for rules in zones],
            [rules.place.area_m2 for rules in zones],
        )
        alerts = []
        for rules, zone_count in zip(zones, counts, strict=True):
            event = rules.monitor.close(
                frame.captured_at, zone_count.count, zone_count.density, reason=reason
            )
            if event is not None:  # None: no episode open (or it ended on its own meanwhile)
                alerts.append(self._zone_alert(rules, event, frame, normalised, zone_count.inside))
        return alerts

    def _zone_alert(
        self,
        rules: ZoneRules,
        event: RuleEvent,
        frame: Frame,
        normalised: Detections,
        inside: np.ndarray,
    ) -> PendingAlert:
        self._log(event, rules.zone.id)
        return build_alert(self.spec, rules.place, event, frame, normalised, inside, self.producer)

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
