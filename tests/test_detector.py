"""The person detector on real photos, checked against hand-labelled boxes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.datafiles import DataFiles
from models.nms import box_iou

# Hand-labelled people in ../shared/images/bus.jpg (554×740), xyxy pixels, drawn by eye on a
# 50-px grid: the man in the fur coat, the man in black, the walker at the right edge (half
# cut off by the frame), and the person at the left edge of whom only a sleeve and a leg show.
BUS_PEOPLE = np.array(
    [
        [32, 268, 170, 615],  # fur coat
        [150, 275, 238, 592],  # black coat
        [462, 262, 554, 602],  # right edge, walking
        [0, 375, 52, 600],  # left edge, mostly outside the frame
    ],
    dtype=np.float32,
)
FULLY_VISIBLE = [0, 1, 2]


@pytest.fixture(scope="module")
def bus(data: DataFiles) -> np.ndarray:
    return cv2.imread(str(data.path("images/bus.jpg")))


def match(found: np.ndarray, labelled: np.ndarray, iou: float = 0.5) -> dict[int, int]:
    """Greedy one-to-one matching of found boxes to labels by IoU."""
    ious = box_iou(found, labelled)
    pairs: dict[int, int] = {}
    for flat in np.argsort(-ious, axis=None):
        f, lab = np.unravel_index(flat, ious.shape)
        if ious[f, lab] < iou:
            break
        if f not in pairs and lab not in pairs.values():
            pairs[int(f)] = int(lab)
    return pairs


def test_finds_the_labelled_people_on_bus_jpg(detector, bus: np.ndarray) -> None:
    (found,) = detector.detect([bus])
    pairs = match(found.xyxy, BUS_PEOPLE)
    matched_labels = set(pairs.values())
    assert set(FULLY_VISIBLE) <= matched_labels, (
        f"missed people {set(FULLY_VISIBLE) - matched_labels}; found {found.xyxy.round()}"
    )
    unmatched = [i for i in range(len(found)) if i not in pairs]
    assert not unmatched, f"boxes that are no labelled person: {found.xyxy[unmatched].round()}"
    assert (found.class_ids == 0).all()
    assert (found.scores >= 0.3).all()


def test_batch_gives_the_same_boxes_as_single_images(detector, data: DataFiles, bus) -> None:
    street = cv2.imread(str(data.path("images/street.png")))
    person = cv2.imread(str(data.path("images/person.jpg")))
    batched = detector.detect([bus, street, person])
    singles = [detector.detect([image])[0] for image in (bus, street, person)]
    for one, alone in zip(batched, singles, strict=True):
        assert len(one) == len(alone)
        np.testing.assert_allclose(one.xyxy, alone.xyxy, atol=0.5)
    assert len(batched[1]) >= 6, "the busy street photo has more than a dozen pedestrians"
    assert len(batched[2]) == 1, "person.jpg shows one person (and animals, not people)"


def test_boxes_are_in_the_pixels_of_the_given_image(detector, bus: np.ndarray) -> None:
    (full,) = detector.detect([bus])
    half = cv2.resize(bus, (bus.shape[1] // 2, bus.shape[0] // 2), interpolation=cv2.INTER_AREA)
    (small,) = detector.detect([half])
    pairs = match(small.xyxy * 2, full.xyxy, iou=0.6)
    assert len(pairs) >= 3


def test_empty_batch(detector) -> None:
    assert detector.detect([]) == []
