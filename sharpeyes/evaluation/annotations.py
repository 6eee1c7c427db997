"""Ground-truth people counts per frame, from the annotation formats in common use.

- **MOT Challenge** ``gt.txt``: one box per line, ``frame, id, x, y, w, h[, conf, class,
  visibility]``. A line counts as a person unless its ``conf`` (the "consider" flag) is 0 or
  its ``class`` is not a person (MOT classes 1 pedestrian, 2 person on vehicle, 7 static
  person; -1 means unspecified and counts). Frames without lines have no people: every
  frame of the footage is annotated.
- **CSV of counts**: ``frame,count`` per line (a header and ``#`` comments are allowed).
  Only the listed frames are annotated.
- **Mall dataset JSON** (``mall_gt_dev.json``): ``{"count": [c1, c2, ...]}`` for frames 1…n.

Frame numbers are 1-based positions in the footage. A malformed line is reported with its
file and line number (``AnnotationError``).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Format = Literal["auto", "mot", "csv", "mall-json"]
MOT_PERSON_CLASSES = {1, 2, 7, -1}


class AnnotationError(ValueError):
    """The annotation file is unusable; the message names the file and line."""

    def __init__(self, path: Path, line: int | None, problem: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class GroundTruth:
    counts: dict[int, int]  # frame number (1-based) → people
    dense: bool  # every footage frame is annotated (absent frames have 0 people)
    source: str
    format: str

    def count(self, frame: int) -> int | None:
        if frame in self.counts:
            return self.counts[frame]
        return 0 if self.dense else None


def detect_format(path: Path) -> Format:
    if path.suffix.lower() == ".json":
        return "mall-json"
    if path.suffix.lower() == ".csv":
        return "csv"
    return "mot"


def load_ground_truth(path: Path, fmt: Format = "auto") -> GroundTruth:
    if not path.is_file():
        raise AnnotationError(path, None, "no such file")
    chosen = detect_format(path) if fmt == "auto" else fmt
    loader = {"mot": _load_mot, "csv": _load_csv, "mall-json": _load_mall_json}[chosen]
    return loader(path)


def _number(text: str, path: Path, line: int, name: str, kind: type = int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise AnnotationError(path, line, f"{name} {text.strip()!r} is not a number") from None
    if kind is int and not value.is_integer():
        raise AnnotationError(path, line, f"{name} {text.strip()!r} is not a whole number")
    return value


def _load_mot(path: Path) -> GroundTruth:
    counts: dict[int, int] = {}
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            fields = [f for f in line.replace(",", " ").split()]
            if len(fields) < 6:
                raise AnnotationError(
                    path,
                    number,
                    f"expected at least 6 comma-separated values (frame, id, x, y, w, h, ...) "
                    f"as in MOT Challenge gt.txt, got {len(fields)}: {line!r}",
                )
            frame = int(_number(fields[0], path, number, "frame"))
            if frame < 1:
                raise AnnotationError(path, number, f"frame {frame} must be 1 or more")
            for name, text in zip(("id", "x", "y", "w", "h"), fields[1:6], strict=True):
                _number(text, path, number, name, float)
            considered = len(fields) < 7 or _number(fields[6], path, number, "conf", float) != 0
            person = len(fields) < 8 or (
                int(_number(fields[7], path, number, "class")) in MOT_PERSON_CLASSES
            )
            counts.setdefault(frame, 0)
            if considered and person:
                counts[frame] += 1
    if not counts:
        raise AnnotationError(path, None, "no annotation lines")
    return GroundTruth(counts, dense=True, source=str(path), format="mot")


def _load_csv(path: Path) -> GroundTruth:
    counts: dict[int, int] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        rows = csv.reader(line for line in handle)
        for number, row in enumerate(rows, start=1):
            if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                continue
            if [c.strip().lower() for c in row[:2]] == ["frame", "count"]:
                continue
            if len(row) < 2:
                raise AnnotationError(
                    path, number, f"expected 'frame,count', got {','.join(row)!r}"
                )
            frame = int(_number(row[0], path, number, "frame"))
            count = int(_number(row[1], path, number, "count"))
            if frame < 1 or count < 0:
                raise AnnotationError(
                    path, number, f"frame must be ≥ 1 and count ≥ 0, got {frame}, {count}"
                )
            if frame in counts:
                raise AnnotationError(path, number, f"frame {frame} is listed twice")
            counts[frame] = count
    if not counts:
        raise AnnotationError(path, None, "no 'frame,count' rows")
    return GroundTruth(counts, dense=False, source=str(path), format="csv")


def _load_mall_json(path: Path) -> GroundTruth:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise AnnotationError(path, error.lineno, f"invalid JSON: {error.msg}") from None
    values = data.get("count") if isinstance(data, dict) else None
    if not isinstance(values, list) or not values:
        raise AnnotationError(path, None, 'expected an object with a "count" list (frame 1 first)')
    counts = {}
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise AnnotationError(
                path, None, f"count[{index}] is {value!r}: expected a whole number ≥ 0"
            )
        counts[index + 1] = value
    return GroundTruth(counts, dense=False, source=str(path), format="mall-json")
