"""Zone geometry and the sustained-gathering episode rule, on scripted count sequences."""

from __future__ import annotations

import numpy as np
import pytest

from camera_adapters.zone_spec import GatheringThresholds, polygon_problems
from models.detections import Detections
from pipeline.gathering import Phase, SustainedGathering
from pipeline.geometry import points_in_polygon

SQUARE = [(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8)]


def test_points_in_polygon() -> None:
    points = np.array([[0.5, 0.5], [0.1, 0.5], [0.79, 0.79], [0.9, 0.9], [0.5, 0.21]])
    assert points_in_polygon(points, SQUARE).tolist() == [True, False, True, False, True]
    concave = [(0, 0), (1, 0), (1, 1), (0.5, 0.4), (0, 1)]
    assert points_in_polygon(np.array([[0.5, 0.8], [0.5, 0.2]]), concave).tolist() == [False, True]
    # A foot point clipped to the image's bottom border is inside a zone reaching it.
    assert points_in_polygon(np.array([[0.5, 1.0]]), [(0, 0.5), (1, 0.5), (1, 1), (0, 1)])[0]


def test_foot_point_decides_membership() -> None:
    # A tall box whose centre is inside the zone but whose feet are below it.
    detections = Detections(
        np.array([[40, 10, 60, 95]], np.float32),
        np.array([0.9], np.float32),
        np.array([0], np.int32),
    )
    feet = detections.normalised(100, 100).foot_points()
    assert feet.tolist() == [[0.5, 0.949999988079071]]
    assert not points_in_polygon(feet, SQUARE)[0]


@pytest.mark.parametrize(
    ("points", "problem"),
    [
        ([(0, 0), (1, 1)], "at least 3"),
        ([(0, 0), (1, 1), (1, 0), (0, 1)], "cross"),
        ([(0, 0), (0.5, 0.5), (1, 1)], "no area"),
        ([(0, 0), (1.2, 0), (1, 1)], "outside"),
    ],
)
def test_bad_polygons(points, problem) -> None:
    assert problem in (polygon_problems(points) or "")


def run(rule: SustainedGathering, counts: list[int], step: float = 1.0) -> list[tuple]:
    events = []
    for i, count in enumerate(counts):
        for event in rule.update(i * step, count):
            events.append((event.kind, i, event.episode_id))
    return events


def test_one_episode_with_started_and_ended() -> None:
    rule = SustainedGathering(GatheringThresholds(min_people=5, min_duration_s=4, clear_after_s=3))
    events = run(rule, [0, 5, 6, 7, 5, 6, 6, 6, 2, 1, 1, 1, 0])
    assert [(k, i) for k, i, _ in events] == [("started", 5), ("ended", 10)]
    assert events[0][2] == events[1][2]
    assert rule.phase is Phase.IDLE


def test_hovering_at_the_limit_does_not_flap() -> None:
    rule = SustainedGathering(GatheringThresholds(min_people=5, min_duration_s=3, clear_after_s=5))
    counts = [5, 5, 5, 5] + [4, 5] * 20 + [0] * 6
    events = run(rule, counts)
    assert [k for k, _, _ in events] == ["started", "ended"]


def test_missed_detections_do_not_reset_the_dwell() -> None:
    rule = SustainedGathering(
        GatheringThresholds(min_people=5, min_duration_s=10, clear_after_s=5, min_fraction=0.8)
    )
    counts = [6, 6, 2, 6, 6, 6, 6, 3, 6, 6, 6, 6]
    events = run(rule, counts)
    assert [(k, i) for k, i, _ in events] == [("started", 10)]


def test_too_many_misses_is_no_gathering() -> None:
    rule = SustainedGathering(
        GatheringThresholds(min_people=5, min_duration_s=10, clear_after_s=5, min_fraction=0.8)
    )
    assert run(rule, [6, 0, 6, 0, 6, 0, 6, 0, 6, 0, 6, 0, 6]) == []


def test_a_new_episode_after_dispersal_gets_a_new_id() -> None:
    rule = SustainedGathering(GatheringThresholds(min_people=2, min_duration_s=1, clear_after_s=1))
    events = run(rule, [2, 2, 0, 0, 2, 2, 0, 0])
    kinds = [k for k, _, _ in events]
    assert kinds == ["started", "ended", "started", "ended"]
    assert events[0][2] != events[2][2]
