"""What skipping the deblocking filter between keyframes costs in accuracy and saves in CPU.

SharpEyes decodes H.264 / H.265 with the in-loop deblocking filter on keyframes only
(``pipeline.deblock: keyframes``, FFmpeg's ``skip_loop_filter=nokey``). Pictures between
keyframes then drift slightly from the exact ones until the next keyframe. This benchmark
decodes the same clips both ways with SharpEyes' own ``Decoder`` and compares, per picture:

- decoder CPU time (thread time, median of interleaved repeats), keyframes and the rest apart;
- the picture at the analysis size, as the source converts it: PSNR against the exact one;
- what the default detector finds on it: boxes matched to the exact picture's (IoU ≥ 0.5),
  the people count's absolute difference, and its sum (a bias would show there).

Clips (1080p25, a keyframe every 50 frames, H.264 CRF 23 like the throughput benchmark):
``video`` is the real sample video (a few people at a time), ``photos`` the street photos
with a slow pan (up to 40 small people per picture, where a detector is least sure).

    python -m benchmarks.deblock                         # the full run (~2 min on 2 cores)
    python -m benchmarks.deblock --seconds 2 --size 320x180 --gop 10 --out /tmp/x   # tiny

Writes ``deblock.json`` and ``deblock.md`` to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np

from benchmarks.decode import (
    add_clip_arguments,
    clip_config,
    machine,
    parse_size,
    write_report,
)
from camera_adapters.decoder import Deblock, Decoder, StreamInfo
from camera_adapters.pyav_source import fit_inside
from models.datafiles import DataFiles
from models.detections import Detections
from models.detector import Detector
from models.onnx_detector import load_detector
from models.settings import DetectorSettings
from models.tiling import TilingSettings, with_tiling
from sharpeyes import sample_clips

RESULTS = Path(__file__).resolve().parent / "results"
MATCH_IOU = 0.5
EXACT_PSNR = 99.0  # stands for "identical" (infinite PSNR) in the report


@dataclass
class Decoded:
    """One clip decoded one way: per picture, whether it is a keyframe, its decoder CPU time
    and its pixels at the analysis size."""

    keyframe: list[bool]
    cpu_s: list[float]
    images: list[np.ndarray]


@dataclass(frozen=True)
class Clip:
    """One clip to decode both ways, the detector to look at it with, and its annotated
    people counts per picture (if any)."""

    name: str
    path: Path
    detector: Detector
    truth: list[int] | None = None


@dataclass(frozen=True)
class Comparison:
    clip: str
    pictures: str  # "keyframes" or "between keyframes"
    count: int
    exact_ms: float  # decoder CPU per picture, deblocking every picture
    fast_ms: float  # deblocking keyframes only
    saving: float  # 1 - fast / exact
    psnr_min_db: float
    psnr_mean_db: float
    boxes_exact: int
    boxes_fast: int
    matched: int
    precision: float  # of the fast picture's boxes against the exact picture's
    recall: float
    count_abs_diff_mean: float
    count_diff_sum: int  # fast − exact over all pictures: the bias
    mae_exact: float | None = None  # people-count error against annotated counts, if any
    mae_fast: float | None = None


def decode(path: Path, deblock: Deblock, analysis_size: tuple[int, int]) -> Decoded:
    result = Decoded([], [], [])
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoder = Decoder(StreamInfo.of(stream), False, 1, None, deblock=deblock)
        for packet in container.demux(stream):
            if not packet.size:
                continue
            started = time.thread_time()
            pictures = decoder.decode(packet)
            spent = time.thread_time() - started
            for picture in pictures:
                result.keyframe.append(bool(picture.key_frame))
                result.cpu_s.append(spent / len(pictures))
                width, height = fit_inside(picture.width, picture.height, analysis_size)
                result.images.append(
                    picture.to_ndarray(
                        width=width, height=height, format="bgr24", interpolation="AREA"
                    )
                )
        for picture in decoder.flush():  # none with one thread, kept for completeness
            result.keyframe.append(bool(picture.key_frame))
            result.cpu_s.append(0.0)
            width, height = fit_inside(picture.width, picture.height, analysis_size)
            result.images.append(
                picture.to_ndarray(width=width, height=height, format="bgr24", interpolation="AREA")
            )
    return result


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return EXACT_PSNR if mse == 0 else min(EXACT_PSNR, 10 * np.log10(255**2 / mse))


def matched_boxes(a: Detections, b: Detections) -> int:
    """Boxes of ``a`` that some box of ``b`` overlaps by IoU ≥ MATCH_IOU, one to one (greedy
    by overlap)."""
    if not len(a) or not len(b):
        return 0
    x1 = np.maximum(a.xyxy[:, None, 0], b.xyxy[None, :, 0])
    y1 = np.maximum(a.xyxy[:, None, 1], b.xyxy[None, :, 1])
    x2 = np.minimum(a.xyxy[:, None, 2], b.xyxy[None, :, 2])
    y2 = np.minimum(a.xyxy[:, None, 3], b.xyxy[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a.xyxy[:, 2] - a.xyxy[:, 0]) * (a.xyxy[:, 3] - a.xyxy[:, 1])
    area_b = (b.xyxy[:, 2] - b.xyxy[:, 0]) * (b.xyxy[:, 3] - b.xyxy[:, 1])
    iou = inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)
    matched = 0
    while iou.size and iou.max() >= MATCH_IOU:
        i, j = np.unravel_index(int(iou.argmax()), iou.shape)
        matched += 1
        iou[i, :] = -1
        iou[:, j] = -1
    return matched


def compare(
    name: str,
    exact: Decoded,
    fast: Decoded,
    exact_cpu: list[list[float]],
    fast_cpu: list[list[float]],
    detector: Detector,
    truth: list[int] | None = None,
) -> list[Comparison]:
    if exact.keyframe != fast.keyframe:
        raise RuntimeError(f"{name}: the two decodes returned different pictures")
    rows = []
    for label, want_key in (("keyframes", True), ("between keyframes", False)):
        chosen = [i for i, key in enumerate(exact.keyframe) if key == want_key]
        if not chosen:
            continue
        exact_ms = statistics.median(
            1e3 * statistics.fmean(run[i] for i in chosen) for run in exact_cpu
        )
        fast_ms = statistics.median(
            1e3 * statistics.fmean(run[i] for i in chosen) for run in fast_cpu
        )
        psnrs = [psnr(exact.images[i], fast.images[i]) for i in chosen]
        boxes_exact = boxes_fast = matched = diff_sum = 0
        abs_diffs = []
        errors_exact: list[int] = []
        errors_fast: list[int] = []
        for i in chosen:
            a, b = detector.detect([exact.images[i]])[0], detector.detect([fast.images[i]])[0]
            boxes_exact += len(a)
            boxes_fast += len(b)
            matched += matched_boxes(b, a)
            diff_sum += len(b) - len(a)
            abs_diffs.append(abs(len(b) - len(a)))
            if truth is not None:
                errors_exact.append(abs(len(a) - truth[i]))
                errors_fast.append(abs(len(b) - truth[i]))
        rows.append(
            Comparison(
                clip=name,
                pictures=label,
                count=len(chosen),
                exact_ms=round(exact_ms, 3),
                fast_ms=round(fast_ms, 3),
                saving=round(1 - fast_ms / exact_ms, 3) if exact_ms > 0 else 0.0,
                psnr_min_db=round(min(psnrs), 1),
                psnr_mean_db=round(statistics.fmean(psnrs), 1),
                boxes_exact=boxes_exact,
                boxes_fast=boxes_fast,
                matched=matched,
                precision=round(matched / boxes_fast, 4) if boxes_fast else 1.0,
                recall=round(matched / boxes_exact, 4) if boxes_exact else 1.0,
                count_abs_diff_mean=round(statistics.fmean(abs_diffs), 3),
                count_diff_sum=diff_sum,
                mae_exact=round(statistics.fmean(errors_exact), 3) if errors_exact else None,
                mae_fast=round(statistics.fmean(errors_fast), 3) if errors_fast else None,
            )
        )
    return rows


def run_clip(
    name: str,
    path: Path,
    analysis_size: tuple[int, int],
    repeat: int,
    detector: Detector,
    truth: list[int] | None = None,
) -> list[Comparison]:
    exact_cpu: list[list[float]] = []
    fast_cpu: list[list[float]] = []
    exact = fast = None
    for _ in range(repeat):  # interleaved, so that load on a shared machine hits both alike
        exact = decode(path, "all", analysis_size)
        exact_cpu.append(exact.cpu_s)
        fast = decode(path, "keyframes", analysis_size)
        fast_cpu.append(fast.cpu_s)
    assert exact is not None and fast is not None
    if truth is not None and len(truth) < len(exact.images):
        raise RuntimeError(f"{name}: {len(exact.images)} pictures but {len(truth)} counts")
    return compare(name, exact, fast, exact_cpu, fast_cpu, detector, truth)


def _mae(row: dict[str, object]) -> str:
    if row.get("mae_exact") is None:
        return "–"
    return f"{row['mae_exact']:.2f} / {row['mae_fast']:.2f}"


def render_markdown(report: dict[str, object]) -> str:
    config = report["config"]
    assert isinstance(config, dict)
    width, height = config["size"]
    lines = [
        "# Deblocking between keyframes: accuracy and decoder CPU",
        "",
        f"video and photos: {width}×{height} at {config['fps']} fps, a keyframe every "
        f"{config['gop']} frames, {config['seconds']:g} s per clip; mall: the Mall dataset's "
        "annotated 640×480 frames at their 2 fps, a keyframe every 2 s or 10 s; analysis size "
        f"{config['analysis_size'][0]}×"
        f"{config['analysis_size'][1]}; detector {config['detector']}; CPU is the median of "
        f'{config["repeat"]} interleaved decodes. "exact" runs the deblocking filter on every '
        'picture, "fast" on keyframes only (`pipeline.deblock: keyframes`, the default).',
        "",
        "| clip | pictures | n | decoder ms exact | fast | saving | PSNR min / mean (dB) "
        "| boxes exact / fast | matched | precision | recall | mean abs count diff "
        "| count diff sum | count MAE vs annotations, exact / fast |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["results"]:  # type: ignore[attr-defined]
        lines.append(
            f"| {row['clip']} | {row['pictures']} | {row['count']} | {row['exact_ms']:.2f} "
            f"| {row['fast_ms']:.2f} | {row['saving']:.0%} | {row['psnr_min_db']:g} / "
            f"{row['psnr_mean_db']:g} | {row['boxes_exact']} / {row['boxes_fast']} "
            f"| {row['matched']} | {row['precision']:.3f} | {row['recall']:.3f} "
            f"| {row['count_abs_diff_mean']:.3f} | {row['count_diff_sum']:+d} "
            f"| {_mae(row)} |"
        )
    lines += [
        "",
        f"PSNR {EXACT_PSNR:g} dB stands for identical pixels. Boxes match at IoU ≥ {MATCH_IOU}. "
        "A count difference summing near zero means flips both ways (noise at the detector's "
        "threshold), not a bias.",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in report["machine"].items()),  # type: ignore[attr-defined]
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.deblock", description=__doc__.split("\n\n")[0]
    )
    add_clip_arguments(parser, seconds=20.0, repeat_help="decodes per mode (median CPU)")
    parser.add_argument(
        "--mall-frames", type=int, default=None, help="use only the first N Mall frames"
    )
    parser.add_argument("--no-mall", action="store_true", help="leave the Mall clips out")
    parser.add_argument(
        "--tiled",
        type=parse_size,
        default=(1280, 960),
        help="frame size of the tiled detector on the Mall clip (WxH)",
    )
    parser.add_argument(
        "--no-tiled", dest="tiled", action="store_const", const=None, help="no tiled run"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="report directory")
    args = parser.parse_args(argv)

    data = DataFiles.from_env()
    settings = DetectorSettings()
    detector = load_detector(settings, data)
    photos = len(sample_clips.SAMPLE_IMAGES)
    clips = [
        Clip(
            "video",
            sample_clips.transcode(
                sample_clips.demo_camera_clip(data),
                size=args.size,
                fps=args.fps,
                gop=args.gop,
                seconds=args.seconds,
            ),
            detector,
        ),
        Clip(
            "photos",
            sample_clips.clip_from_images(
                data,
                size=args.size,
                fps=args.fps,
                gop=args.gop,
                seconds_per_image=args.seconds / photos,
            ),
            detector,
        ),
    ]
    if not args.no_mall and data.find(sample_clips.MALL_GROUND_TRUTH) is not None:
        # The dense scene, as a camera would send it: the annotated frames at their own 2 fps
        # with a keyframe every 2 s, and every 10 s ("smart codec" cameras), where drift has
        # the longest to grow; and with the tiled detector that counts this scene best
        # (benchmarks/results/accuracy.md), which looks at the pixels closest. Counts are
        # checked against the annotations.
        counts = json.loads(data.path(sample_clips.MALL_GROUND_TRUTH).read_text())["count"]
        mall = {
            gop: sample_clips.clip_from_frames(
                data, "mall/frames", fps=2, gop=gop, limit=args.mall_frames
            )
            for gop in (4, 20)
        }
        clips += [Clip(f"mall, GOP {gop / 2:g} s", mall[gop], detector, counts) for gop in mall]
        if args.tiled:
            tiled = with_tiling(detector, TilingSettings(frame_size=args.tiled))
            name = f"mall, GOP 2 s, tiled {args.tiled[0]}×{args.tiled[1]}"
            clips.append(Clip(name, mall[4], tiled, counts))
    results: list[Comparison] = []
    for clip in clips:
        print(f"{clip.name}: decoding {clip.path.name} both ways …", flush=True)
        size = clip.detector.input_size if clip.detector is not detector else args.analysis_size
        results += run_clip(
            clip.name, clip.path, size, max(1, args.repeat), clip.detector, clip.truth
        )
    report: dict[str, object] = {
        "benchmark": "deblock",
        "config": {
            **clip_config(args),
            "detector": settings.name,
            "tiled": list(args.tiled) if args.tiled else None,
        },
        "machine": machine(),
        "results": [asdict(r) for r in results],
    }
    write_report(args.out, "deblock", report, render_markdown(report))
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
