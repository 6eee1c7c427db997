"""Sample camera clips for the demo, the tests and the benchmarks, built from ../shared data.

Clips are H.264 MP4 files encoded with PyAV (its wheels carry libx264) and cached by the
checksum of their inputs and parameters, so a second demo start costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import platformdirs

from models.datafiles import DataFileError, DataFiles

SAMPLE_VIDEO = "videos/one-by-one-person-detection.mp4"
SAMPLE_IMAGES = ("images/street.png", "images/bus.jpg", "images/person.jpg")
MALL_GROUND_TRUTH = "mall/mall_gt_dev.json"


def cache_dir() -> Path:
    path = Path(os.environ.get("SHARPEYES_CACHE", platformdirs.user_cache_dir("sharpeyes")))
    (path / "clips").mkdir(parents=True, exist_ok=True)
    return path / "clips"


def _cached(key: dict[str, object], build: Callable[[Path], None]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    target = cache_dir() / f"{key['kind']}-{digest}.mp4"
    if target.exists() and target.stat().st_size > 0:
        return target
    partial = target.with_suffix(f".{os.getpid()}.partial.mp4")
    build(partial)
    partial.replace(target)
    return target


class _Encoder:
    def __init__(self, path: Path, size: tuple[int, int], fps: int, gop: int) -> None:
        self.container = av.open(str(path), "w")
        self.stream = self.container.add_stream("libx264", rate=fps)
        self.stream.width, self.stream.height = size
        self.stream.pix_fmt = "yuv420p"
        self.stream.codec_context.gop_size = gop
        self.stream.codec_context.time_base = Fraction(1, fps)
        self.stream.options = {
            "preset": "veryfast",
            "crf": "23",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0",
        }

    def write(self, bgr: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(bgr, format="bgr24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def _cover(image: np.ndarray, size: tuple[int, int], zoom: float, shift: float) -> np.ndarray:
    """Crop-and-scale ``image`` to ``size`` with a slow pan (a camera's view, no borders)."""
    width, height = size
    h, w = image.shape[:2]
    scale = max(width / w, height / h) * zoom
    cw, ch = width / scale, height / scale
    x0 = (w - cw) * shift
    y0 = (h - ch) / 2
    matrix = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]], np.float32)
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_AREA)


def clip_from_images(
    data: DataFiles,
    names: Sequence[str] = SAMPLE_IMAGES,
    *,
    size: tuple[int, int] = (768, 432),
    fps: int = 10,
    gop: int = 10,
    seconds_per_image: float = 8.0,
) -> Path:
    """A slideshow of real photos with a slow pan: the stand-in camera when no video exists."""
    paths = [data.path(name) for name in names]
    key = {
        "kind": "images",
        "inputs": [data.verify(p, n) for p, n in zip(paths, names, strict=True)],
        "size": size,
        "fps": fps,
        "gop": gop,
        "seconds": seconds_per_image,
    }

    def build(out: Path) -> None:
        encoder = _Encoder(out, size, fps, gop)
        frames = round(seconds_per_image * fps)
        for path in paths:
            image = cv2.imread(str(path))
            for i in range(frames):
                encoder.write(_cover(image, size, 1.05, 0.5 + 0.4 * (i / frames - 0.5)))
        encoder.close()

    return _cached(key, build)


def clip_from_frames(
    data: DataFiles, folder: str, *, fps: int = 2, gop: int = 2, limit: int | None = None
) -> Path:
    """Encode a folder of numbered frames (e.g. the Mall dataset at its 2 fps) as a clip."""
    root = data.root() / folder
    names = sorted(p.name for p in root.glob("*.jpg"))[:limit]
    if not names:
        raise DataFileError(f"no .jpg frames in {root} (SHARPEYES_DATA points at {data.root()})")
    first = data.path(f"{folder}/{names[0]}")
    height, width = cv2.imread(str(first)).shape[:2]
    key = {
        "kind": "frames",
        "folder": folder,
        "count": len(names),
        "first": data.verify(first, f"{folder}/{names[0]}"),
        "fps": fps,
        "gop": gop,
    }

    def build(out: Path) -> None:
        encoder = _Encoder(out, (width, height), fps, gop)
        for name in names:
            encoder.write(cv2.imread(str(data.path(f"{folder}/{name}"))))
        encoder.close()

    return _cached(key, build)


def transcode(
    source: Path, *, size: tuple[int, int], fps: int, gop: int, seconds: float | None = None
) -> Path:
    """Re-encode a clip at another resolution, rate and GOP (e.g. 1080p25, GOP 50)."""
    key = {
        "kind": "transcode",
        "version": 2,
        "source": str(source.resolve()),
        "mtime": source.stat().st_mtime,
        "size": size,
        "fps": fps,
        "gop": gop,
        "seconds": seconds,
    }

    def build(out: Path) -> None:
        encoder = _Encoder(out, size, fps, gop)
        with av.open(str(source)) as container:
            stream = container.streams.video[0]
            src_rate = float(stream.average_rate or fps)
            written, step = 0, src_rate / fps
            limit = None if seconds is None else round(seconds * fps)
            for index, frame in enumerate(container.decode(stream)):
                # Resample the frame rate by repeating or skipping decoded frames.
                while written * step <= index and (limit is None or written < limit):
                    encoder.write(frame.to_ndarray(width=size[0], height=size[1], format="bgr24"))
                    written += 1
                if limit is not None and written >= limit:
                    break
        encoder.close()

    return _cached(key, build)


def demo_camera_clip(data: DataFiles) -> Path:
    """The real sample video when present, else a clip encoded from the real photos."""
    found = data.find(SAMPLE_VIDEO)
    if found is not None:
        return data.path(SAMPLE_VIDEO)
    return clip_from_images(data)
