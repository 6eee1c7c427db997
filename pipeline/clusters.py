"""Zone-free gathering: tight groups of people anywhere in the view, followed over time.

Each analysed frame, people are grouped by DBSCAN on where they stand — on the ground in
metres when the camera is calibrated, otherwise by image distance in body heights (the box
height of a person is the local scale of the image: far people are small and close
together in pixels, near people large and far apart). A group is followed from frame to
frame by its centre, and each followed group runs its own ``GatheringMonitor`` — so a group
raises one episode (``rule = "cluster"``) however its members shuffle.

Groups that merge keep their open episodes (each continues on the merged group until it
disperses, so no false ``ended`` is sent while the people are still there); a group that
splits continues on the nearer part and the other part starts its own track.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from camera_adapters.zone_spec import ClusterSpec
from models.detections import Detections
from pipeline.calibration import GroundPlane
from pipeline.gathering import GatheringMonitor, Phase, RuleEvent
from pipeline.geometry import buffered_area, convex_hull

# Each person is given a disc of this radius (half of a 1 m spacing) when a group's ground
# area is measured; see pipeline.geometry.buffered_area.
PERSON_RADIUS_M = 0.5
GATE_RADII = 2.0  # a group may move this many clustering radii between two analyses


def dbscan(distances: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    """DBSCAN (Ester et al., 1996) on a precomputed distance matrix: labels, -1 for noise.

    A person with at least ``min_samples`` people (themself included) within ``eps`` is a
    core point; groups are the core points reachable from one another plus the people
    within ``eps`` of them. Quadratic in the number of people, which is fine for the
    hundreds a camera sees.
    """
    n = len(distances)
    labels = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return labels
    neighbours = distances <= eps
    core = neighbours.sum(axis=1) >= min_samples
    group = 0
    for start in np.flatnonzero(core):
        if labels[start] != -1:
            continue
        labels[start] = group
        stack = [int(start)]
        while stack:
            person = stack.pop()
            for other in np.flatnonzero(neighbours[person]):
                if labels[other] == -1:
                    labels[other] = group
                    if core[other]:
                        stack.append(int(other))
        group += 1
    return labels


@dataclass(frozen=True)
class Group:
    """One group of people in one frame."""

    members: np.ndarray  # indices into the frame's detections
    centroid: np.ndarray  # in the clustering space (metres, or pixels when uncalibrated)
    gate: float  # how far (same units) it may move between two analyses and still match
    outline: list[tuple[float, float]]  # convex hull of the members' boxes, normalised image
    area_m2: float | None = None
    density: float | None = None

    @property
    def size(self) -> int:
        return len(self.members)


def find_groups(
    detections: Detections,
    image_size: tuple[int, int],
    spec: ClusterSpec,
    ground: GroundPlane | None = None,
) -> list[Group]:
    """Group the people of one frame (``detections`` in the analysed image's pixels)."""
    width, height = image_size
    if len(detections) == 0:
        return []
    normalised = detections.normalised(width, height)
    feet = normalised.foot_points().astype(np.float64)
    if ground is not None:
        positions, valid = ground.to_ground(feet)
        index = np.flatnonzero(valid)
        positions = positions[index]
        diff = positions[:, None, :] - positions[None, :, :]
        distances = np.linalg.norm(diff, axis=2) / spec.radius_m
        units = np.full(len(index), spec.radius_m)
    else:
        index = np.arange(len(detections))
        positions = feet * np.array([width, height], np.float64)
        heights = np.maximum(detections.heights().astype(np.float64), 1.0)
        diff = positions[:, None, :] - positions[None, :, :]
        scale = spec.radius_heights * (heights[:, None] + heights[None, :]) / 2.0
        distances = np.linalg.norm(diff, axis=2) / scale
        units = spec.radius_heights * heights
    labels = dbscan(distances, 1.0, spec.min_neighbours)
    groups = []
    for label in range(labels.max() + 1 if len(labels) else 0):
        rows = np.flatnonzero(labels == label)
        members = index[rows]
        corners = normalised.xyxy[members][:, [0, 1, 2, 3, 0, 3, 2, 1]].reshape(-1, 2)
        outline = [(round(float(x), 4), round(float(y), 4)) for x, y in convex_hull(corners)]
        area = density = None
        if ground is not None:
            area = buffered_area(positions[rows], PERSON_RADIUS_M)
            density = len(rows) / area
        groups.append(
            Group(
                members=members,
                centroid=positions[rows].mean(axis=0),
                gate=GATE_RADII * float(np.median(units[rows])),
                outline=outline,
                area_m2=area,
                density=density,
            )
        )
    return groups


@dataclass
class _Track:
    monitor: GatheringMonitor
    group: Group

    @property
    def active(self) -> bool:
        return self.monitor.phase is Phase.ACTIVE


@dataclass(frozen=True)
class GroupEvent:
    event: RuleEvent
    group: Group  # the group as last seen (for the snapshot outline)
    present: bool  # whether the group is in this frame (its members are in ``group``)


@dataclass
class GroupTracker:
    """Follows groups across frames and runs one episode monitor per followed group."""

    spec: ClusterSpec
    ground: GroundPlane | None = None
    new_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)
    tracks: list[_Track] = field(default_factory=list)

    def update(
        self, at: float, detections: Detections, image_size: tuple[int, int]
    ) -> list[GroupEvent]:
        groups = find_groups(detections, image_size, self.spec, self.ground)
        matched: dict[int, int] = {}  # track index → group index
        pairs = sorted(
            (float(np.linalg.norm(track.group.centroid - group.centroid)), t, g)
            for t, track in enumerate(self.tracks)
            for g, group in enumerate(groups)
        )
        taken: set[int] = set()
        for distance, t, g in pairs:
            if t in matched or g in taken:
                continue
            if distance <= max(self.tracks[t].group.gate, groups[g].gate):
                matched[t] = g
                taken.add(g)
        events: list[GroupEvent] = []
        survivors: list[_Track] = []
        for t, track in enumerate(self.tracks):
            group = groups[matched[t]] if t in matched else None
            if group is None and track.active:
                # Merged into a neighbour: keep the open episode on the merged group.
                group = self._nearest(track, groups)
            if group is not None:
                track.group = group
                raised = track.monitor.update(at, group.size, group.density)
            else:
                raised = track.monitor.update(at, 0, None)
            events += [GroupEvent(e, track.group, group is not None) for e in raised]
            if group is not None or track.monitor.phase is not Phase.IDLE:
                survivors.append(track)
        for g, group in enumerate(groups):
            if g in taken:
                continue
            track = _Track(
                GatheringMonitor(self.spec.gathering, rule="cluster", new_id=self.new_id), group
            )
            events += [
                GroupEvent(e, group, True)
                for e in track.monitor.update(at, group.size, group.density)
            ]
            survivors.append(track)
        self.tracks = self._without_duplicates(survivors)
        return events

    def close_all(self, at: float, reason: str) -> list[GroupEvent]:
        """End every open group episode (the camera was removed, or its group settings
        changed), so their cases are closed; the tracker starts empty afterwards."""
        events = []
        for track in self.tracks:
            event = track.monitor.close(at, track.group.size, track.group.density, reason)
            if event is not None:
                events.append(GroupEvent(event, track.group, False))
        self.tracks = []
        return events

    @staticmethod
    def _nearest(track: _Track, groups: list[Group]) -> Group | None:
        best = None
        for group in groups:
            distance = float(np.linalg.norm(track.group.centroid - group.centroid))
            if distance <= max(track.group.gate, group.gate) and (
                best is None or distance < best[0]
            ):
                best = (distance, group)
        return best[1] if best else None

    @staticmethod
    def _without_duplicates(tracks: list[_Track]) -> list[_Track]:
        """Tracks following the same group: keep those with an open episode, else the
        oldest one, so a merge never leaves two idle tracks counting the same people."""
        by_group: dict[int, list[_Track]] = {}
        for track in tracks:
            by_group.setdefault(id(track.group), []).append(track)
        kept = []
        for same in by_group.values():
            active = [t for t in same if t.active]
            kept += active or same[:1]
        return kept
