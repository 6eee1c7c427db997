"""The frames to evaluate on: a video file or a folder of numbered images.

Frames are numbered from 1 in playing order. In a folder, the number is the last run of
digits in each file name (``seq_000017.jpg`` → 17, MOT's ``000017.jpg`` → 17); a folder
whose names carry no numbers is numbered by sorted name.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
_DIGITS = re.compile(r"(\d+)(?!.*\d)")


class FootageError(ValueError):
    """The footage cannot be read; the message names the file."""


@dataclass(frozen=True)
class Footage:
    path: Path
    fps: float
    frame_count: int
    kind: str  # "video" | "frames"
    files: dict[int, Path] | None = None  # frame number → image, for folders

    @property
    def label(self) -> str:
        """A short name for reports: a folder of frames is named with its parent
        (``mall/frames``), a video by its file name."""
        if self.kind == "frames":
            return f"{self.path.parent.name}/{self.path.name}"
        return self.path.name

    def frames(self, numbers: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        """(number, BGR image) for the wanted frame numbers, in order."""
        wanted = sorted(set(numbers))
        if self.kind == "frames":
            assert self.files is not None
            for number in wanted:
                image = cv2.imread(str(self.files[number]), cv2.IMREAD_COLOR)
                if image is None:
                    raise FootageError(f"{self.files[number]}: not a readable image")
                yield number, image
            return
        yield from _video_frames(self.path, wanted)


def _video_frames(path: Path, wanted: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    if not wanted:
        return
    targets = iter(wanted)
    target = next(targets)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for number, frame in enumerate(container.decode(stream), start=1):
                if number < target:
                    continue
                yield number, frame.to_ndarray(format="bgr24")
                target = next(targets, None)
                if target is None:
                    return
    except av.FFmpegError as error:
        raise FootageError(f"{path}: cannot decode the video ({error})") from None


def open_footage(path: Path, fps: float | None = None) -> Footage:
    """Open a video file or a frames folder; ``fps`` overrides the rate (needed for folders
    without a MOT ``seqinfo.ini``)."""
    if path.is_dir():
        return _open_folder(path, fps)
    if not path.is_file():
        raise FootageError(f"{path}: no such file or folder")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise FootageError(f"{path}: has no video stream")
            stream = container.streams.video[0]
            rate = float(stream.average_rate or 0) or None
            frames = stream.frames or 0
            if not frames and stream.duration and rate:
                frames = round(float(stream.duration * stream.time_base) * rate)
    except av.FFmpegError as error:
        raise FootageError(f"{path}: not a readable video ({error})") from None
    chosen = fps or rate
    if not chosen:
        raise FootageError(f"{path}: the video has no frame rate; give --fps")
    return Footage(path, chosen, frames, "video")


def _open_folder(path: Path, fps: float | None) -> Footage:
    images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise FootageError(f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in it")
    numbers = [_DIGITS.search(p.stem) for p in images]
    if all(numbers):
        files = {int(m.group(1)): p for m, p in zip(numbers, images, strict=True) if m}
        if len(files) != len(images):
            raise FootageError(f"{path}: two images carry the same frame number")
    else:
        files = {i: p for i, p in enumerate(images, start=1)}
    rate = fps or _seqinfo_rate(path)
    if not rate:
        raise FootageError(
            f"{path}: a folder of frames needs its frame rate: give --fps (the Mall dataset "
            "plays at 2)"
        )
    return Footage(path, rate, len(files), "frames", files)


def _seqinfo_rate(folder: Path) -> float | None:
    """frameRate from a MOT Challenge ``seqinfo.ini`` beside or above the frames."""
    for candidate in (folder / "seqinfo.ini", folder.parent / "seqinfo.ini"):
        if candidate.is_file():
            parser = configparser.ConfigParser()
            parser.read(candidate)
            if parser.has_option("Sequence", "frameRate"):
                return parser.getfloat("Sequence", "frameRate")
    return None
