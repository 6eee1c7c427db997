"""CameraAnalyzer: detections per frame in, alert events out — zones, density, groups.

Detections are scripted (people standing at known places), so the tests check what an
operator receives: one case per gathering, with severity, tier, density and the reason.
"""

from __future__ import annotations

import numpy as np
import pytest

from alerting.events import AlertEvent, Severity, Tier
from camera_adapters.frames import Frame
from camera_adapters.spec import CameraSpec
from models.detections import Detections
from pipeline.analysis import CameraAnalyzer, describe_position
from tests.test_geometry_and_rules import HEIGHT, MARKS, WIDTH, calibration, pinhole

IMAGE = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
LOCATION = {"district": "Haizhu", "street": "Binjiang", "community": "Riverside", "grid_cell": "g7"}


def people(feet_px: np.ndarray, height: float = 120.0) -> Detections:
    feet_px = np.asarray(feet_px, np.float32).reshape(-1, 2)
    half = height / 5
    xyxy = np.stack(
        [feet_px[:, 0] - half, feet_px[:, 1] - height, feet_px[:, 0] + half, feet_px[:, 1]],
        axis=1,
    )
    n = len(feet_px)
    return Detections(xyxy.astype(np.float32), np.full(n, 0.8, np.float32), np.zeros(n, np.int32))


def run(analyzer: CameraAnalyzer, frames: list[Detections], step: float = 1.0) -> list[AlertEvent]:
    events = []
    for i, detections in enumerate(frames):
        frame = Frame("cam", 1_700_000_000.0 + i * step, IMAGE, (WIDTH, HEIGHT), i)
        events += [alert.event for alert in analyzer.analyse(frame, detections)]
    return events


def crowd(
    n: int, centre: tuple[float, float], spread: float, rng: np.random.Generator
) -> np.ndarray:
    return rng.normal(centre, spread, (n, 2))


def camera(**fields: object) -> CameraSpec:
    return CameraSpec.model_validate(
        {"id": "plaza", "name": "Plaza", "source": "rtsp://192.0.2.1/c", "location": LOCATION}
        | fields
    )


def test_zone_episode_events_carry_severity_tier_and_reason() -> None:
    spec = camera(
        zones=[
            {
                "id": "front",
                "name": "Plaza front",
                "polygon": [(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)],
                "gathering": {
                    "min_people": 10,
                    "min_duration_s": 5,
                    "clear_after_s": 4,
                    "escalate_after_s": 2,
                },
            }
        ]
    )
    analyzer = CameraAnalyzer(spec, producer="w1")
    rng = np.random.default_rng(1)
    inside = lambda n: crowd(n, (640, 600), 60, rng)  # noqa: E731
    outside = crowd(30, (640, 200), 40, rng)  # above the zone: never counted
    frames = (
        [people(np.vstack([inside(12), outside])) for _ in range(8)]
        + [people(np.vstack([inside(22), outside])) for _ in range(5)]
        + [people(outside) for _ in range(6)]
    )
    events = run(analyzer, frames)
    assert [(e.kind.value, e.severity, e.tier) for e in events] == [
        ("started", Severity.NOTICE, Tier.COMMUNITY),
        ("escalated", Severity.WARNING, Tier.STREET),
        ("ended", Severity.WARNING, Tier.STREET),
    ]
    started = events[0]
    assert started.zone_id == "front" and started.rule == "sustained" and started.count == 12
    assert started.reason and "at least 10 people" in started.reason
    assert started.density_per_m2 is None and started.zone_area_m2 is None  # not calibrated
    assert sum(p.in_zone for p in started.people) == 12 and len(started.people) == 42
    assert len({e.idempotency_key for e in events}) == 3
    assert len({e.episode_id for e in events}) == 1
    assert analyzer.zone_counts == {"front": 0}


def test_a_calibrated_zone_reports_people_per_square_metre() -> None:
    # A 6 m × 10 m rectangle of floor (60 m²), drawn on the image of a calibrated camera.
    rectangle = np.array([[-3.0, 8.0], [3.0, 8.0], [3.0, 18.0], [-3.0, 18.0]])
    spec = camera(
        calibration=calibration().model_dump(),
        zones=[
            {
                "id": "square",
                "name": "Square",
                "polygon": [tuple(p) for p in pinhole(rectangle).round(5)],
                "gathering": {"min_people": 40, "min_duration_s": 3, "escalate_after_s": 2},
            }
        ],
    )
    analyzer = CameraAnalyzer(spec, producer="w1")
    assert analyzer.zones[0].place.area_m2 == pytest.approx(60.0, rel=0.01)
    grid = np.array([[x, y] for x in np.linspace(-2.5, 2.5, 8) for y in np.linspace(9, 17, 11)])
    feet = pinhole(grid) * [WIDTH, HEIGHT]  # 88 people on 60 m²: 1.47/m² ≥ 1.43 (LOS D)
    events = run(analyzer, [people(feet, 60)] * 6)
    assert [(e.kind.value, e.severity) for e in events] == [("started", Severity.WARNING)]
    assert events[0].count == 88
    assert events[0].density_per_m2 == pytest.approx(88 / 60, rel=0.02)
    assert events[0].zone_area_m2 == pytest.approx(60, rel=0.01)


def test_sudden_and_sustained_in_one_zone_reach_the_operator_as_one_case() -> None:
    spec = camera(
        zones=[
            {
                "id": "front",
                "name": "Plaza front",
                "polygon": [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)],
                "gathering": {
                    "min_people": 15,
                    "min_duration_s": 20,
                    "clear_after_s": 5,
                    "sudden": {"rise_people": 12, "within_s": 10, "hold_s": 2},
                },
            }
        ]
    )
    analyzer = CameraAnalyzer(spec, producer="w1")
    rng = np.random.default_rng(2)
    frames = [people(crowd(3, (640, 500), 100, rng)) for _ in range(10)]
    frames += [people(crowd(20, (640, 500), 100, rng)) for _ in range(40)]
    frames += [people(crowd(2, (640, 500), 100, rng)) for _ in range(8)]
    events = run(analyzer, frames)
    assert [(e.kind.value, e.rule) for e in events] == [("started", "sudden"), ("ended", "sudden")]
    assert events[0].severity is Severity.WARNING and events[0].count_rise == 17
    assert events[1].rules == ["sudden", "sustained"]
    assert events[0].episode_id == events[1].episode_id


def test_a_group_anywhere_in_view_is_one_episode_while_it_shuffles_and_drifts() -> None:
    spec = camera(
        clusters={
            "radius_heights": 1.2,
            "gathering": {"min_people": 10, "min_duration_s": 8, "clear_after_s": 5},
        }
    )
    analyzer = CameraAnalyzer(spec, producer="w1")
    rng = np.random.default_rng(4)
    frames = []
    for i in range(30):  # 14 people drifting right by 8 px/s, each frame in a new order
        group = crowd(14, (300 + 8 * i, 600), 45, rng)
        passers = np.array([[1100.0, 300.0 + 5 * i], [100.0, 250.0]])  # alone, never a group
        frames.append(people(rng.permutation(np.vstack([group, passers]))))
    frames += [people(np.array([[1100.0, 300.0]])) for _ in range(8)]  # dispersed
    events = run(analyzer, frames)
    assert [(e.kind.value, e.rule) for e in events] == [
        ("started", "cluster"),
        ("ended", "cluster"),
    ]
    started = events[0]
    assert started.zone_id is None and started.zone_name.startswith("Group of people, lower left")
    assert started.count == 14 and sum(p.in_zone for p in started.people) == 14
    xs = [x for x, _ in started.zone_polygon]
    assert min(xs) > 0.1 and max(xs) < 0.5  # the outline surrounds the group, not the view


def test_two_groups_are_two_episodes_and_merging_ends_neither() -> None:
    spec = camera(
        clusters={
            "radius_heights": 1.0,
            "gathering": {"min_people": 8, "min_duration_s": 5, "clear_after_s": 4},
        }
    )
    analyzer = CameraAnalyzer(spec, producer="w1")
    rng = np.random.default_rng(5)
    frames = []
    for i in range(30):  # apart for 10 s, then walking towards each other and merging
        shift = 0 if i < 10 else min(20 * (i - 10), 300)
        left = crowd(10, (300 + shift, 600), 35, rng)
        right = crowd(10, (980 - shift, 600), 35, rng)
        frames.append(people(np.vstack([left, right])))
    events = run(analyzer, frames)
    # Each group opens its episode; merged they are 20 people, twice the warning level of 8:
    # both episodes escalate (once each) and neither ends while the people are still there.
    assert [e.kind.value for e in events] == ["started", "started", "escalated", "escalated"]
    assert len({e.episode_id for e in events}) == 2
    assert {e.episode_id for e in events[2:]} == {e.episode_id for e in events[:2]}
    # The last frames hold one merged group of 20; both open episodes follow it.
    last = analyzer.groups.tracks
    assert len(last) == 2 and all(t.group.size == 20 for t in last)


def test_calibrated_groups_report_their_density() -> None:
    spec = camera(
        calibration=calibration().model_dump(),
        clusters={"radius_m": 1.5, "gathering": {"min_people": 10, "min_duration_s": 3}},
    )
    analyzer = CameraAnalyzer(spec, producer="w1")
    grid = np.array([[x, y] for x in np.arange(0, 4, 0.8) for y in np.arange(12, 14.5, 0.8)])
    events = run(analyzer, [people(pinhole(grid) * [WIDTH, HEIGHT], 50)] * 5)
    assert [e.kind.value for e in events] == ["started"]
    assert events[0].count == len(grid) == 20
    assert 1.0 < events[0].density_per_m2 < 2.5 and events[0].zone_area_m2 > 8


def test_describe_position() -> None:
    assert describe_position([(0.0, 0.8), (0.2, 1.0)]) == "lower left"
    assert describe_position([(0.4, 0.4), (0.6, 0.6)]) == "centre"
    assert describe_position([(0.8, 0.0), (1.0, 0.2)]) == "upper right"


def test_marks_are_in_view() -> None:
    image = pinhole(MARKS)
    assert ((image > 0) & (image < 1)).all()


def zone(
    zone_id: str, name: str, top: float, bottom: float = 1.0, min_people: int = 10
) -> dict[str, object]:
    return {
        "id": zone_id,
        "name": name,
        "polygon": [(0.0, top), (1.0, top), (1.0, bottom), (0.0, bottom)],
        "gathering": {"min_people": min_people, "min_duration_s": 5, "clear_after_s": 4},
    }


def test_zone_edits_keep_unchanged_episodes_and_close_those_of_changed_zones() -> None:
    """An operator edits zones while a gathering is open: renaming it or editing another
    zone must neither end nor raise it again; reshaping or removing its zone closes its case
    (a new episode starts if the people stay)."""
    rng = np.random.default_rng(3)
    gathered = lambda: people(crowd(12, (640, 620), 40, rng))  # noqa: E731  in the lower part
    analyzer = CameraAnalyzer(
        camera(zones=[zone("front", "Plaza front", 0.5), zone("steps", "Steps", 0.0, 0.2, 3)]),
        producer="w1",
    )
    clock = iter(range(1000))

    def feed(detections: list[Detections]) -> list[AlertEvent]:
        events = []
        for d in detections:
            frame = Frame("cam", 1_700_000_000.0 + next(clock), IMAGE, (WIDTH, HEIGHT), 0)
            events += [alert.event for alert in analyzer.analyse(frame, d)]
        return events

    started = feed([gathered() for _ in range(8)])
    assert [(e.kind.value, e.zone_id) for e in started] == [("started", "front")]
    episode = started[0].episode_id

    # Renamed, and the other zone reshaped: the episode goes on.
    analyzer = analyzer.reconfigured(
        camera(
            zones=[zone("front", "Plaza front (east)", 0.5), zone("steps", "Steps", 0.0, 0.3, 3)]
        )
    )
    assert feed([gathered() for _ in range(8)]) == []
    assert analyzer.zone_counts["front"] == 12

    # Reshaped while open: ended with the next frame, then a new episode once it dwells.
    analyzer = analyzer.reconfigured(
        camera(
            zones=[zone("front", "Plaza front (east)", 0.45), zone("steps", "Steps", 0.0, 0.3, 3)]
        )
    )
    events = feed([gathered() for _ in range(8)])
    assert [(e.kind.value, e.zone_id) for e in events] == [("ended", "front"), ("started", "front")]
    ended, again = events
    assert ended.episode_id == episode and "was changed or removed" in (ended.reason or "")
    assert ended.count == 12 and again.episode_id != episode

    # Removed while open: its case is closed too; nothing more comes from it.
    analyzer = analyzer.reconfigured(camera(zones=[zone("steps", "Steps", 0.0, 0.3, 3)]))
    events = feed([gathered() for _ in range(3)])
    assert [(e.kind.value, e.episode_id) for e in events] == [("ended", again.episode_id)]
    assert "front" not in analyzer.zone_counts


def test_group_episodes_follow_edits_and_end_when_the_camera_goes() -> None:
    """Groups: an edit of the zones leaves an open group episode alone; new group settings
    end it with the next frame (a new one starts if the group stays); removing the camera
    ends what is open."""
    clusters = {
        "radius_heights": 1.2,
        "gathering": {"min_people": 10, "min_duration_s": 4, "clear_after_s": 5},
    }
    rng = np.random.default_rng(6)
    group = lambda: people(crowd(14, (300, 600), 45, rng))  # noqa: E731
    analyzer = CameraAnalyzer(camera(clusters=clusters), producer="w1")
    at = iter(range(1000))

    def feed(n: int) -> list[AlertEvent]:
        events = []
        for _ in range(n):
            frame = Frame("cam", 1_700_000_000.0 + next(at), IMAGE, (WIDTH, HEIGHT), 0)
            events += [alert.event for alert in analyzer.analyse(frame, group())]
        return events

    (started,) = feed(6)
    assert started.kind.value == "started" and started.rule == "cluster"
    analyzer = analyzer.reconfigured(camera(clusters=clusters, zones=[zone("z", "Z", 0.0, 0.2)]))
    assert feed(6) == []  # zones edited, groups untouched: the episode goes on

    bigger = {**clusters, "radius_heights": 1.5}
    analyzer = analyzer.reconfigured(camera(clusters=bigger))
    events = feed(6)
    assert [e.kind.value for e in events] == ["ended", "started"]
    assert events[0].episode_id == started.episode_id
    assert "group settings changed" in (events[0].reason or "")

    last = Frame("cam", 1_700_000_000.0 + next(at), IMAGE, (WIDTH, HEIGHT), 0)
    (gone,) = [alert.event for alert in analyzer.close_all(last, group())]
    assert gone.kind.value == "ended" and gone.episode_id == events[1].episode_id
    assert "removed or disabled" in (gone.reason or "")
    assert analyzer.close_all(last, group()) == []  # nothing left open
