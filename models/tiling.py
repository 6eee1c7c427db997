"""Tiled inference: find far, small people by running the detector on overlapping tiles.

A small detector at 416 px sees a person 40 px tall in a 1280 px frame as 13 px — below
what it was trained on. Cutting the frame into overlapping tiles the size of the model's
input shows every person at full resolution (in the manner of SAHI, Akyon et al. 2022). The
whole frame is detected once more at the model's size (``full_frame``) so that people too
large for a tile are still found, and all boxes are merged across tiles:

- boxes are mapped back to frame pixels and merged greedily by score with non-maximum
  suppression (IoU), so a person seen whole in two overlapping tiles is counted once;
- a box cut by a tile's inner edge is a partial view of a person who is seen whole in the
  neighbouring tile or in the full-frame pass: it is merged into any box that contains most
  of it (intersection over its own area), and ranked after uncut boxes.

The cost is one detector run per tile plus one; the tiles of all frames go to the inner
detector in batches of ``max_batch``. ``TiledDetector`` implements the same ``Detector``
protocol, so the pipeline and ``sharpeyes eval`` use it like any other detector.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from models.detections import Detections
from models.detector import Detector
from models.nms import box_iou

EDGE_PX = 2.0  # a box within this many pixels of a tile's inner edge counts as cut by it


class TilingSettings(BaseModel):
    """Tiled inference on large frames (the ``model.tiling`` section)."""

    model_config = ConfigDict(extra="forbid")

    frame_size: tuple[int, int] = Field(
        description="(width, height) frames are analysed at; sources decode to fit inside it. "
        "Larger than the model's input, e.g. [1280, 960]."
    )
    tile_size: tuple[int, int] | None = Field(
        None, description="(width, height) of one tile; default: the model's input size."
    )
    overlap: float = Field(
        0.25,
        ge=0.0,
        lt=0.9,
        description="Least overlap of neighbouring tiles, as a fraction of the tile size; "
        "make it cover the height of a person at the tiles' scale.",
    )
    full_frame: bool = Field(
        True, description="Also detect on the whole frame, for people larger than a tile."
    )
    merge_iou: float = Field(0.5, gt=0.0, le=1.0, description="IoU above which boxes merge.")
    merge_ios: float = Field(
        0.7,
        gt=0.0,
        le=1.0,
        description="A box cut by a tile edge merges into a box covering this share of it.",
    )
    max_batch: int = Field(
        16,
        ge=1,
        le=256,
        description="Most tiles per detector call: one huge batch of every tile of every "
        "frame thrashes the CPU caches.",
    )


def tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Evenly spread tile origins covering ``length`` with at least ``overlap`` × ``tile``
    shared between neighbours."""
    if length <= tile:
        return [0]
    step = max(1.0, tile * (1.0 - overlap))
    count = math.ceil((length - tile) / step) + 1
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


@dataclass(frozen=True)
class Tile:
    x0: int
    y0: int
    x1: int
    y1: int

    def inner_edges(self, width: int, height: int) -> tuple[bool, bool, bool, bool]:
        """Which sides (left, top, right, bottom) lie inside the frame, not on its border."""
        return self.x0 > 0, self.y0 > 0, self.x1 < width, self.y1 < height


def tile_grid(width: int, height: int, tile: tuple[int, int], overlap: float) -> list[Tile]:
    tile_w, tile_h = min(tile[0], width), min(tile[1], height)
    return [
        Tile(x, y, x + tile_w, y + tile_h)
        for y in tile_starts(height, tile_h, overlap)
        for x in tile_starts(width, tile_w, overlap)
    ]


def merge_boxes(
    xyxy: np.ndarray, scores: np.ndarray, cut: np.ndarray, iou: float, ios: float
) -> np.ndarray:
    """Indices of the boxes kept after merging detections from overlapping views."""
    if len(xyxy) == 0:
        return np.zeros((0,), np.int64)
    order = np.lexsort((-scores, cut))  # uncut boxes first, each by descending score
    overlaps = box_iou(xyxy, xyxy)
    x1 = np.maximum(xyxy[:, None, 0], xyxy[None, :, 0])
    y1 = np.maximum(xyxy[:, None, 1], xyxy[None, :, 1])
    x2 = np.minimum(xyxy[:, None, 2], xyxy[None, :, 2])
    y2 = np.minimum(xyxy[:, None, 3], xyxy[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = np.maximum((xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1]), 1e-9)
    covered = inter / area[:, None]  # [i, j]: share of box i inside box j
    kept: list[int] = []
    for i in order:
        if kept and overlaps[i, kept].max() > iou:
            continue
        if cut[i] and kept and covered[i, kept].max() > ios:
            continue
        kept.append(int(i))
    return np.asarray(kept, np.int64)


class TiledDetector:
    """Wraps a detector: each frame → overlapping tiles (+ the whole frame) → merged boxes."""

    def __init__(self, inner: Detector, settings: TilingSettings) -> None:
        self.inner = inner
        self.settings = settings
        self.tile_size = settings.tile_size or inner.input_size
        width, height = settings.frame_size
        grid = tile_grid(width, height, self.tile_size, settings.overlap)
        columns = len({t.x0 for t in grid})
        self.name = f"{inner.name}+tiles{columns}x{len(grid) // columns}"

    @property
    def input_size(self) -> tuple[int, int]:
        return self.settings.frame_size

    def tiles_for(self, image: np.ndarray) -> list[Tile]:
        height, width = image.shape[:2]
        return tile_grid(width, height, self.tile_size, self.settings.overlap)

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        crops: list[np.ndarray] = []
        plan: list[tuple[int, Tile | None]] = []  # (image index, tile or whole frame)
        for index, image in enumerate(images):
            tiles = self.tiles_for(image)
            if len(tiles) == 1:
                tiles = []  # the frame is a single tile: the full-frame pass covers it
            for tile in tiles:
                crops.append(image[tile.y0 : tile.y1, tile.x0 : tile.x1])
                plan.append((index, tile))
            if self.settings.full_frame or not tiles:
                crops.append(image)
                plan.append((index, None))
        found: list[Detections] = []
        step = self.settings.max_batch
        for start in range(0, len(crops), step):
            found += self.inner.detect(crops[start : start + step])
        boxes: list[list[np.ndarray]] = [[] for _ in images]
        scores: list[list[np.ndarray]] = [[] for _ in images]
        cuts: list[list[np.ndarray]] = [[] for _ in images]
        for (index, tile), detections in zip(plan, found, strict=True):
            xyxy = detections.xyxy.astype(np.float32)
            cut = np.zeros(len(xyxy), bool)
            if tile is not None:
                height, width = images[index].shape[:2]
                left, top, right, bottom = tile.inner_edges(width, height)
                tile_w, tile_h = tile.x1 - tile.x0, tile.y1 - tile.y0
                cut = (
                    (left & (xyxy[:, 0] <= EDGE_PX))
                    | (top & (xyxy[:, 1] <= EDGE_PX))
                    | (right & (xyxy[:, 2] >= tile_w - EDGE_PX))
                    | (bottom & (xyxy[:, 3] >= tile_h - EDGE_PX))
                )
                xyxy = xyxy + np.array([tile.x0, tile.y0, tile.x0, tile.y0], np.float32)
            boxes[index].append(xyxy)
            scores[index].append(detections.scores)
            cuts[index].append(cut)
        results = []
        for index in range(len(images)):
            xyxy = np.concatenate(boxes[index]) if boxes[index] else np.zeros((0, 4), np.float32)
            score = np.concatenate(scores[index]) if scores[index] else np.zeros(0, np.float32)
            cut = np.concatenate(cuts[index]) if cuts[index] else np.zeros(0, bool)
            kept = merge_boxes(xyxy, score, cut, self.settings.merge_iou, self.settings.merge_ios)
            results.append(
                Detections(
                    xyxy[kept].astype(np.float32),
                    score[kept].astype(np.float32),
                    np.zeros(len(kept), np.int32),
                )
            )
        return results


def with_tiling(detector: Detector, settings: TilingSettings | None) -> Detector:
    """The detector itself, or wrapped for tiled inference when ``settings`` are given."""
    return detector if settings is None else TiledDetector(detector, settings)
