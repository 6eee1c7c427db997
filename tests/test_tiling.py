"""Tiled inference: tiles cover the frame, people cut by tile edges are counted once."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import cv2
import numpy as np
import pytest

from models.datafiles import DataFiles
from models.detections import Detections
from models.detector import Detector
from models.nms import box_iou
from models.tiling import TiledDetector, TilingSettings, merge_boxes, tile_grid, tile_starts
from tests.test_detector import BUS_PEOPLE, FULLY_VISIBLE, match


@pytest.mark.parametrize(
    ("length", "tile", "overlap"),
    [(416, 416, 0.25), (640, 416, 0.25), (1280, 416, 0.25), (1441, 416, 0.1), (2000, 640, 0.5)],
)
def test_tiles_cover_the_frame_with_the_overlap(length: int, tile: int, overlap: float) -> None:
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] + tile == length
    shared = [a + tile - b for a, b in pairwise(starts)]
    assert all(s >= overlap * tile - 1 for s in shared)


def test_a_grid_for_a_frame_smaller_than_a_tile_is_the_frame() -> None:
    (tile,) = tile_grid(300, 200, (416, 416), 0.25)
    assert (tile.x0, tile.y0, tile.x1, tile.y1) == (0, 0, 300, 200)


def test_merge_keeps_one_box_per_person() -> None:
    xyxy = np.array(
        [
            [100, 100, 140, 200],  # a person seen whole in tile A
            [101, 99, 141, 201],  # the same person seen whole in tile B
            [100, 150, 140, 200],  # the same person cut by tile C's top edge
            [150, 100, 190, 200],  # the neighbour, touching but another person
        ],
        np.float32,
    )
    scores = np.array([0.8, 0.9, 0.95, 0.7], np.float32)
    cut = np.array([False, False, True, False])
    kept = merge_boxes(xyxy, scores, cut, iou=0.5, ios=0.7)
    # The cut box has the highest score but ranks after the whole views.
    assert sorted(kept.tolist()) == [1, 3]


class BlobDetector:
    """Finds painted rectangles in whatever image it is given, like a detector finds people
    in a tile: a rectangle cut by the image edge is found as the visible part."""

    name = "blobs"
    input_size = (416, 416)

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        results = []
        for image in images:
            mask = (image[:, :, 0] > 0).astype(np.uint8)
            count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
            boxes = [[x, y, x + w, y + h] for x, y, w, h, _ in stats[1:count]]
            xyxy = np.array(boxes, np.float32).reshape(-1, 4)
            n = len(xyxy)
            results.append(Detections(xyxy, np.full(n, 0.9, np.float32), np.zeros(n, np.int32)))
        return results


def painted_people(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    frame = np.zeros((960, 1280, 3), np.uint8)
    boxes: list[list[int]] = []
    while len(boxes) < n:
        w, h = int(rng.integers(12, 30)), int(rng.integers(30, 90))
        x, y = int(rng.integers(0, 1280 - w)), int(rng.integers(0, 960 - h))
        candidate = np.array([[x - 3, y - 3, x + w + 3, y + h + 3]], np.float32)
        if boxes and box_iou(candidate, np.array(boxes, np.float32)).max() > 0:
            continue  # keep people apart, so each blob is one person
        boxes.append([x, y, x + w, y + h])
        frame[y : y + h, x : x + w] = 255
    return frame, np.array(boxes, np.float32)


@pytest.mark.parametrize("full_frame", [False, True])
def test_people_across_tile_edges_are_found_once(full_frame: bool) -> None:
    rng = np.random.default_rng(11)
    frame, truth = painted_people(rng, 60)
    tiled = TiledDetector(
        BlobDetector(), TilingSettings(frame_size=(1280, 960), overlap=0.25, full_frame=full_frame)
    )
    assert isinstance(tiled, Detector)
    tiles = tiled.tiles_for(frame)
    assert len(tiles) == 4 * 3
    crossing = sum(
        any(t.x0 < b[0] < t.x1 < b[2] or t.y0 < b[1] < t.y1 < b[3] for t in tiles) for b in truth
    )
    assert crossing >= 5, "the scene must put people across tile edges"
    (found,) = tiled.detect([frame])
    assert len(found) == len(truth)
    ious = box_iou(found.xyxy, truth)
    assert (ious.max(axis=1) > 0.99).all()


def test_tiles_of_all_frames_go_to_the_detector_in_batches() -> None:
    calls: list[int] = []

    class Counting(BlobDetector):
        def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
            calls.append(len(images))
            return super().detect(images)

    frame, _ = painted_people(np.random.default_rng(1), 5)
    tiled = TiledDetector(Counting(), TilingSettings(frame_size=(1280, 960), max_batch=16))
    assert len(tiled.detect([frame, frame, frame])) == 3
    assert calls == [16, 16, 7]  # 3 frames × (12 tiles + the whole frame)
    assert tiled.name == "blobs+tiles4x3" and tiled.input_size == (1280, 960)


@pytest.fixture(scope="module")
def images(data: DataFiles) -> dict[str, np.ndarray]:
    return {n: cv2.imread(str(data.path(f"images/{n}"))) for n in ("bus.jpg", "street.png")}


def test_tiling_finds_the_small_people_of_a_busy_street(detector, images) -> None:
    street = images["street.png"]
    (plain,) = detector.detect([street])
    tiled = TiledDetector(detector, TilingSettings(frame_size=street.shape[1::-1]))
    (found,) = tiled.detect([street])
    # The street photo shows more than a dozen pedestrians, most of them small.
    assert len(plain) < 12 <= len(found)
    overlaps = box_iou(found.xyxy, found.xyxy)
    np.fill_diagonal(overlaps, 0)
    assert overlaps.max() <= 0.5  # no person counted twice


def test_tiling_keeps_each_person_of_the_bus_photo_once(detector, images) -> None:
    bus = images["bus.jpg"]
    tiled = TiledDetector(detector, TilingSettings(frame_size=bus.shape[1::-1]))
    assert len(tiled.tiles_for(bus)) == 6  # the people stand across tile edges
    (found,) = tiled.detect([bus])
    pairs = match(found.xyxy, BUS_PEOPLE)
    assert set(FULLY_VISIBLE) <= set(pairs.values())
    for label in FULLY_VISIBLE:  # nobody matched twice at IoU ≥ 0.3
        assert (box_iou(found.xyxy, BUS_PEOPLE[[label]])[:, 0] >= 0.3).sum() == 1


def test_tiling_is_configured_under_model() -> None:
    from models.tiling import with_tiling
    from sharpeyes.config import ConfigError, parse_config

    config = parse_config("model: {tiling: {frame_size: [1280, 960], overlap: 0.3}}\n")
    assert config.model.tiling is not None and config.model.tiling.frame_size == (1280, 960)
    wrapped = with_tiling(BlobDetector(), config.model.tiling)
    assert isinstance(wrapped, TiledDetector) and wrapped.input_size == (1280, 960)
    assert with_tiling(BlobDetector(), None).name == "blobs"
    with pytest.raises(ConfigError, match=r"model\.tiling\.overlap"):
        parse_config("model: {tiling: {frame_size: [1280, 960], overlap: 0.95}}\n")
