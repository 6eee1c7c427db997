"""Run the detector and the gathering rules over annotated footage and write the report.

The predicted side goes through the pipeline's own ``CameraAnalyzer`` (one zone, the whole
frame unless another is given), so the rules measured are the rules that run. The true
side feeds the annotated counts through the same ``GatheringMonitor`` with the same
thresholds: a labelled gathering interval is "the true count met the rule" — at least
``min_people`` for ``min_duration_s`` (in ``min_fraction`` of the samples), until it stayed
below ``exit_people`` for ``clear_after_s``, or a sudden rise when one is configured.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from camera_adapters.frames import Frame
from camera_adapters.spec import CameraSpec, Location
from camera_adapters.zone_spec import GatheringThresholds, Point, ZoneSpec
from models.detector import Detector
from models.preprocess import fit_size
from pipeline.analysis import CameraAnalyzer
from pipeline.gathering import GatheringMonitor
from sharpeyes.evaluation.annotations import Format, GroundTruth, load_ground_truth
from sharpeyes.evaluation.footage import Footage, open_footage
from sharpeyes.evaluation.metrics import (
    CountScores,
    Episode,
    EpisodeScores,
    count_scores,
    match_episodes,
)
from sharpeyes.evaluation.plot import plot_counts

WHOLE_FRAME: list[Point] = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]


class EvalInputError(ValueError):
    """The footage and the annotations do not fit together."""


@dataclass(frozen=True)
class EvalOptions:
    footage: Path
    annotations: Path
    thresholds: GatheringThresholds
    annotation_format: Format = "auto"
    fps: float | None = None  # the footage's rate (videos know theirs)
    analysis_fps: float | None = None  # thin the annotated frames to this rate
    limit: int | None = None  # evaluate only the first N frames
    zone: list[Point] = field(default_factory=lambda: list(WHOLE_FRAME))
    batch: int = 8


@dataclass(frozen=True)
class FrameResult:
    frame: int
    time_s: float
    true: int
    predicted: int


@dataclass(frozen=True)
class EvalResult:
    options: EvalOptions
    footage: Footage
    truth: GroundTruth
    detector: str
    input_size: tuple[int, int]
    frames: list[FrameResult]
    counts: CountScores
    true_episodes: list[Episode]
    predicted_episodes: list[Episode]
    episodes: EpisodeScores
    detector_seconds: float
    wall_seconds: float

    @property
    def ms_per_frame(self) -> float:
        return 1000.0 * self.detector_seconds / max(len(self.frames), 1)


def select_frames(
    footage: Footage, truth: GroundTruth, analysis_fps: float | None, limit: int | None
) -> list[int]:
    """The annotated frames of the footage, thinned to ``analysis_fps``."""
    if footage.files is not None:
        available: Iterable[int] = sorted(footage.files)
    elif footage.frame_count:
        available = range(1, footage.frame_count + 1)
    else:  # a container that does not say how many frames it holds: trust the annotations
        available = sorted(truth.counts)
    numbers = [n for n in available if truth.count(n) is not None]
    if analysis_fps and analysis_fps < footage.fps:
        # Keep the first annotated frame of every 1/analysis_fps period.
        picked, last_slot = [], None
        for number in numbers:
            slot = int((number - 1) / footage.fps * analysis_fps + 1e-9)
            if slot != last_slot:
                picked.append(number)
                last_slot = slot
        numbers = picked
    return list(numbers[:limit] if limit else numbers)


def episodes_from(
    events: Iterable[tuple[str, str, float, float, str, int]], last: float
) -> list[Episode]:
    """Episodes from (kind, episode id, started at, at, rule, peak) event tuples."""
    open_: dict[str, Episode] = {}
    done: list[Episode] = []
    for kind, episode_id, started_at, at, rule, peak in events:
        if kind == "started":
            open_[episode_id] = Episode(started_at, at, at, rule, peak)
        elif kind == "ended" and episode_id in open_:
            begun = open_.pop(episode_id)
            done.append(Episode(begun.start, begun.alerted, at, begun.rule, peak))
    done += [Episode(e.start, e.alerted, last, e.rule, e.peak, True) for e in open_.values()]
    return sorted(done, key=lambda e: e.start)


def true_episodes(
    times: Sequence[float], counts: Sequence[int], thresholds: GatheringThresholds
) -> list[Episode]:
    monitor = GatheringMonitor(thresholds)
    events = [
        (e.kind, e.episode_id, e.episode_started_at, e.at, e.rule, e.peak_count)
        for t, c in zip(times, counts, strict=True)
        for e in monitor.update(t, c)
    ]
    return episodes_from(events, times[-1] if times else 0.0)


def fit_to(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize as the camera sources do: to fit inside the detector's analysis size."""
    height, width = image.shape[:2]
    target = fit_size(width, height, size)
    if target == (width, height):
        return image
    interpolation = cv2.INTER_AREA if target[0] < width else cv2.INTER_LINEAR
    return cv2.resize(image, target, interpolation=interpolation)


def run_eval(
    options: EvalOptions,
    detector: Detector,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    started = time.perf_counter()
    truth = load_ground_truth(options.annotations, options.annotation_format)
    footage = open_footage(options.footage, options.fps)
    numbers = select_frames(footage, truth, options.analysis_fps, options.limit)
    if not numbers:
        raise EvalInputError(
            f"{options.annotations}: none of its frames is in {options.footage} "
            f"({footage.frame_count} frames)"
        )
    camera = CameraSpec(
        id="eval",
        name="evaluation",
        source=str(options.footage),
        location=Location(district="-", street="-", community="-", grid_cell="-"),
        zones=[
            ZoneSpec(
                id="evaluated",
                name="evaluated area",
                polygon=options.zone,
                gathering=options.thresholds,
            )
        ],
    )
    analyzer = CameraAnalyzer(camera, producer="sharpeyes-eval")
    results: list[FrameResult] = []
    events = []
    detector_seconds = 0.0
    batch: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        nonlocal detector_seconds
        images = [image for _, image in batch]
        began = time.perf_counter()
        found = detector.detect(images)
        detector_seconds += time.perf_counter() - began
        for (number, image), detections in zip(batch, found, strict=True):
            t = (number - 1) / footage.fps
            frame = Frame("eval", t, image, (image.shape[1], image.shape[0]), number)
            for alert in analyzer.analyse(frame, detections):
                e = alert.event
                events.append(
                    (
                        e.kind.value,
                        e.episode_id,
                        e.episode_started_at.timestamp(),
                        e.occurred_at.timestamp(),
                        e.rule,
                        e.peak_count,
                    )
                )
            true_count = truth.count(number)
            assert true_count is not None
            results.append(FrameResult(number, t, true_count, analyzer.zone_counts["evaluated"]))
        batch.clear()
        if progress:
            progress(len(results), len(numbers))

    for number, image in footage.frames(numbers):
        batch.append((number, fit_to(image, detector.input_size)))
        if len(batch) >= options.batch:
            flush()
    if batch:
        flush()
    times = [r.time_s for r in results]
    truth_counts = [r.true for r in results]
    predicted = episodes_from(events, times[-1])
    expected = true_episodes(times, truth_counts, options.thresholds)
    return EvalResult(
        options=options,
        footage=footage,
        truth=truth,
        detector=detector.name,
        input_size=detector.input_size,
        frames=results,
        counts=count_scores(truth_counts, [r.predicted for r in results]),
        true_episodes=expected,
        predicted_episodes=predicted,
        episodes=match_episodes(expected, predicted),
        detector_seconds=detector_seconds,
        wall_seconds=time.perf_counter() - started,
    )


def rule_summary(thresholds: GatheringThresholds) -> str:
    t = thresholds
    text = (
        f"≥ {t.min_people} people for {t.min_duration_s:g} s in {t.min_fraction:.0%} of samples, "
        f"ends below {t.exit_bound} for {t.clear_after_s:g} s"
    )
    if t.sudden:
        text += (
            f"; sudden: +{t.sudden.rise_people} within {t.sudden.within_s:g} s, "
            f"held {t.sudden.hold_s:g} s"
        )
    return text


def report_dict(result: EvalResult) -> dict[str, object]:
    def episodes(items: list[Episode]) -> list[dict[str, object]]:
        return [
            {
                "start_s": round(e.start, 2),
                "alert_s": round(e.alerted, 2),
                "end_s": round(e.end, 2),
                "rule": e.rule,
                "peak": e.peak,
                "open_at_end": e.open_at_end,
            }
            for e in items
        ]

    options = result.options
    return {
        "footage": {
            "path": str(result.footage.path),
            "kind": result.footage.kind,
            "fps": result.footage.fps,
        },
        "annotations": {"path": result.truth.source, "format": result.truth.format},
        "detector": {"name": result.detector, "input_size": list(result.input_size)},
        "zone": [list(p) for p in options.zone],
        "frames": len(result.frames),
        "counts": result.counts.as_dict(),
        "episodes": {
            "rule": options.thresholds.model_dump(mode="json", exclude_none=True),
            "rule_text": rule_summary(options.thresholds),
            **result.episodes.as_dict(),
            "true_intervals": episodes(result.true_episodes),
            "predicted_intervals": episodes(result.predicted_episodes),
        },
        "timing": {
            "detector_ms_per_frame": round(result.ms_per_frame, 2),
            "wall_seconds": round(result.wall_seconds, 2),
            "batch": options.batch,
        },
    }


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def report_markdown(result: EvalResult, files: dict[str, Path]) -> str:
    c, e = result.counts, result.episodes
    lines = [
        f"# Evaluation: {result.detector} on {result.footage.label}",
        "",
        f"- footage: `{result.footage.path}` ({result.footage.kind}, {result.footage.fps:g} fps), "
        f"{len(result.frames)} annotated frames evaluated",
        f"- annotations: `{result.truth.source}` ({result.truth.format})",
        f"- detector: {result.detector}, analysis size "
        f"{result.input_size[0]}×{result.input_size[1]}",
        f"- gathering rule (true and predicted): {rule_summary(result.options.thresholds)}",
        "",
        "| count MAE | count RMSE | bias | true mean | predicted mean | detector ms/frame |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {c.mae:.2f} | {c.rmse:.2f} | {c.bias:+.2f} | {c.true_mean:.2f} | "
        f"{c.predicted_mean:.2f} | {result.ms_per_frame:.1f} |",
        "",
        "| true episodes | predicted | matched | precision | recall | mean alert delay (s) |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {e.true} | {e.predicted} | {e.matched} | {_fmt(e.precision)} | {_fmt(e.recall)} | "
        f"{_fmt(e.mean_alert_delay_s, 1)} |",
        "",
    ]
    lines += [f"- {label}: `{path.name}`" for label, path in files.items()]
    return "\n".join(lines) + "\n"


def write_report(result: EvalResult, out_dir: Path, name: str) -> dict[str, Path]:
    """Write ``<name>.json``, ``.md``, ``.csv`` (per frame) and ``.png`` (the plot)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "plot": out_dir / f"{name}.png",
        "per-frame counts": out_dir / f"{name}.csv",
        "report": out_dir / f"{name}.json",
    }
    plot_counts(
        files["plot"],
        [r.time_s for r in result.frames],
        [r.true for r in result.frames],
        [r.predicted for r in result.frames],
        result.true_episodes,
        result.predicted_episodes,
        title=(
            f"{result.detector} @ {result.input_size[0]}×{result.input_size[1]} on "
            f"{result.footage.label}: MAE {result.counts.mae:.2f}, "
            f"RMSE {result.counts.rmse:.2f}"
        ),
        threshold=result.options.thresholds.min_people,
    )
    with files["per-frame counts"].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["frame", "time_s", "true", "predicted"])
        for r in result.frames:
            writer.writerow([r.frame, f"{r.time_s:.3f}", r.true, r.predicted])
    files["report"].write_text(json.dumps(report_dict(result), indent=2) + "\n")
    markdown = out_dir / f"{name}.md"
    markdown.write_text(report_markdown(result, files))
    files["summary"] = markdown
    return files
