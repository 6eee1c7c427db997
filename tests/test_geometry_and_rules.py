"""Geometry: zones on the image, the ground plane of a calibrated camera, groups of people.

The episode rules themselves are tested on scripted count sequences in test_gathering.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from camera_adapters.zone_spec import polygon_problems
from models.detections import Detections
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


# -- the ground plane of a calibrated camera -------------------------------------------------

WIDTH, HEIGHT = 1280, 720


def pinhole(ground: np.ndarray) -> np.ndarray:
    """Normalised image points of ground points (metres, z = 0) seen by a real camera: 6 m
    up, tilted 18° down (the horizon is in view), focal length 900 px, looking along +y."""
    tilt = np.radians(18)
    x, y = ground[:, 0], ground[:, 1]
    # Camera frame: X right, Y down, Z forward.
    depth = y * np.cos(tilt) + 6.0 * np.sin(tilt)
    down = -y * np.sin(tilt) + 6.0 * np.cos(tilt)
    u = WIDTH / 2 + 900 * x / depth
    v = HEIGHT / 2 + 900 * down / depth
    return np.stack([u / WIDTH, v / HEIGHT], axis=1)


MARKS = np.array([[-4.0, 9.0], [4.0, 9.0], [5.0, 20.0], [-5.0, 20.0]])


def calibration():
    from camera_adapters.ground_spec import GroundCalibration

    image = pinhole(MARKS)
    return GroundCalibration(
        image_points=[tuple(p) for p in image.round(6)], ground_points=[tuple(p) for p in MARKS]
    )


def test_homography_places_foot_points_on_the_ground() -> None:
    from pipeline.calibration import GroundPlane

    plane = GroundPlane.from_calibration(calibration())
    truth = np.array([[0.0, 8.0], [2.5, 12.0], [-3.0, 17.5], [1.0, 25.0]])
    ground, valid = plane.to_ground(pinhole(truth))
    assert valid.all()
    np.testing.assert_allclose(ground, truth, atol=0.02)
    # Above the horizon nothing is on the ground.
    _, valid = plane.to_ground(np.array([[0.5, 0.05]]))
    assert not valid[0]


def test_zone_area_is_measured_on_the_ground() -> None:
    from pipeline.calibration import GroundPlane
    from pipeline.geometry import polygon_area

    plane = GroundPlane.from_calibration(calibration())
    # A 6 m × 10 m rectangle on the floor looks like a trapezoid in the image.
    rectangle = np.array([[-3.0, 8.0], [3.0, 8.0], [3.0, 18.0], [-3.0, 18.0]])
    zone = [tuple(p) for p in pinhole(rectangle)]
    assert plane.area_m2(zone) == pytest.approx(60.0, rel=0.01)
    assert polygon_area(zone) < 0.5  # the same zone covers well under half of the image


def test_polygon_and_buffered_areas() -> None:
    from pipeline.geometry import buffered_area, convex_hull, polygon_area

    square = np.array([[0, 0], [2, 0], [2, 2], [0, 2], [1, 1]], float)
    assert len(convex_hull(square)) == 4 and polygon_area(convex_hull(square)) == 4.0
    # Steiner: area + perimeter·r + π·r².
    assert buffered_area(square, 0.5) == pytest.approx(4 + 8 * 0.5 + np.pi * 0.25)
    assert buffered_area(np.array([[0.0, 0.0]]), 0.5) == pytest.approx(np.pi * 0.25)
    assert buffered_area(np.array([[0.0, 0.0], [1.0, 0.0]]), 0.5) == pytest.approx(
        1.0 + np.pi * 0.25
    )


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"image_points": [(0.1, 0.5), (0.9, 0.5), (0.9, 0.9)]}, "exactly 4"),
        ({"ground_points": [(0, 0), (1, 0), (2, 0), (0, 5)]}, "on one line"),
        ({"image_points": [(0.1, 0.5), (0.9, 0.9), (0.9, 0.5), (0.1, 0.9)]}, "cross"),
        (
            {"ground_points": [(0, 0), (5, 0), (0, 5), (5, 5)]},
            "cross",
        ),
        ({"image_points": [(0.1, 0.5), (1.3, 0.5), (0.9, 0.9), (0.1, 0.9)]}, "outside"),
    ],
)
def test_bad_calibrations_are_refused(change, problem) -> None:
    from camera_adapters.ground_spec import GroundCalibration

    fields = {
        "image_points": [(0.1, 0.5), (0.9, 0.5), (0.9, 0.9), (0.1, 0.9)],
        "ground_points": [(0, 0), (5, 0), (5, 5), (0, 5)],
    } | change
    with pytest.raises(ValueError, match=problem):
        GroundCalibration(**fields)


def test_a_zone_above_the_horizon_is_refused_with_the_zone_named() -> None:
    from camera_adapters.spec import CameraSpec

    horizon_y = float(pinhole(np.array([[0.0, 1e6]]))[0, 1])
    assert 0 < horizon_y < 0.5
    camera = {
        "id": "plaza",
        "name": "Plaza",
        "source": "rtsp://192.0.2.1/cam",
        "location": {"district": "d", "street": "s", "community": "c", "grid_cell": "g"},
        "calibration": calibration().model_dump(),
        "zones": [
            {
                "id": "sky",
                "name": "Reaches the sky",
                "polygon": [
                    (0.2, horizon_y - 0.05),
                    (0.8, horizon_y - 0.05),
                    (0.8, 0.9),
                    (0.2, 0.9),
                ],
            }
        ],
    }
    with pytest.raises(ValueError, match=r"zone 'sky'.*horizon"):
        CameraSpec.model_validate(camera)
    camera["zones"][0]["polygon"] = [
        (0.2, horizon_y + 0.05),
        (0.8, horizon_y + 0.05),
        (0.8, 0.9),
        (0.2, 0.9),
    ]
    assert CameraSpec.model_validate(camera).calibration is not None


# -- groups of people -------------------------------------------------------------------------


def test_dbscan_groups_dense_people_and_leaves_stragglers() -> None:
    from pipeline.clusters import dbscan

    rng = np.random.default_rng(3)
    blob_a = rng.normal([0, 0], 0.4, (8, 2))
    blob_b = rng.normal([10, 0], 0.4, (5, 2))
    stragglers = np.array([[5.0, 5.0], [-6.0, 3.0]])
    points = np.vstack([blob_a, blob_b, stragglers])
    distances = np.linalg.norm(points[:, None] - points[None], axis=2)
    labels = dbscan(distances, eps=1.5, min_samples=3)
    assert len(set(labels[:8])) == 1 and len(set(labels[8:13])) == 1
    assert labels[0] != labels[8] and labels[0] >= 0 and labels[8] >= 0
    assert labels[13:].tolist() == [-1, -1]
    # People in single file 1.4 m apart have two neighbours each within 1.5 m: they chain
    # into one group when 3 make a core (themself included), not when 4 are needed.
    queue = np.array([[i * 1.4, 0.0] for i in range(10)])
    d = np.linalg.norm(queue[:, None] - queue[None], axis=2)
    assert set(dbscan(d, eps=1.5, min_samples=3)) == {0}
    assert set(dbscan(d, eps=1.5, min_samples=4)) == {-1}


def boxes(feet: list[tuple[float, float]], height: float) -> Detections:
    xyxy = np.array([[x - height / 5, y - height, x + height / 5, y] for x, y in feet], np.float32)
    return Detections(xyxy, np.full(len(feet), 0.9, np.float32), np.zeros(len(feet), np.int32))


def test_uncalibrated_groups_are_judged_in_body_heights() -> None:
    from camera_adapters.zone_spec import ClusterSpec
    from pipeline.clusters import find_groups

    spec = ClusterSpec(radius_heights=1.2, min_neighbours=3)
    # Near the camera: people 200 px tall, 150 px apart → 0.75 heights: a group.
    near = boxes([(300 + 150 * i, 650) for i in range(5)], 200)
    (group,) = find_groups(near, (1280, 720), spec)
    assert group.size == 5 and group.density is None
    assert all(0 <= x <= 1 and 0 <= y <= 1 for x, y in group.outline)
    # Far away: people 40 px tall, the same 150 px apart → 3.75 heights: no group.
    far = boxes([(300 + 150 * i, 250) for i in range(5)], 40)
    assert find_groups(far, (1280, 720), spec) == []
    # …but far people 40 px apart are a group again.
    far_close = boxes([(300 + 40 * i, 250) for i in range(5)], 40)
    assert [g.size for g in find_groups(far_close, (1280, 720), spec)] == [5]


def test_calibrated_groups_are_judged_in_metres() -> None:
    from camera_adapters.zone_spec import ClusterSpec
    from pipeline.calibration import GroundPlane
    from pipeline.clusters import find_groups

    plane = GroundPlane.from_calibration(calibration())
    spec = ClusterSpec(radius_m=1.5, min_neighbours=3)
    tight = np.array([[x, y] for x in (0.0, 1.0, 2.0) for y in (15.0, 16.0)])  # 6 people, 1 m
    loose = np.array([[x, 8.0] for x in (-4.0, -1.0, 2.0)])  # 3 m apart
    feet = pinhole(np.vstack([tight, loose])) * [WIDTH, HEIGHT]
    detections = boxes([tuple(f) for f in feet], 60)
    (group,) = find_groups(detections, (WIDTH, HEIGHT), spec, plane)
    assert sorted(group.members.tolist()) == list(range(6))
    np.testing.assert_allclose(group.centroid, [1.0, 15.5], atol=0.05)
    # Hull 2 m × 1 m grown by 0.5 m: 2 + 6·0.5 + π/4 ≈ 5.79 m².
    assert group.area_m2 == pytest.approx(2 + 3 + np.pi / 4, rel=0.02)
    assert group.density == pytest.approx(6 / group.area_m2)
