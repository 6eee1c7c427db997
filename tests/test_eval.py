"""``sharpeyes eval`` on small slices of real footage, and its handling of bad input."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from camera_adapters.zone_spec import GatheringThresholds
from models.datafiles import DataFiles
from models.tiling import TiledDetector, TilingSettings
from sharpeyes.cli import main
from sharpeyes.evaluation.annotations import AnnotationError, load_ground_truth
from sharpeyes.evaluation.footage import open_footage
from sharpeyes.evaluation.metrics import Episode, count_scores, match_episodes
from sharpeyes.evaluation.runner import EvalOptions, run_eval, select_frames, true_episodes
from tests.helpers import SHARPEYES

ROOT = Path(__file__).resolve().parent.parent
VIDEO_LABELS = ROOT / "benchmarks" / "annotations" / "one-by-one-person-detection.csv"


@pytest.fixture(scope="module")
def mall(data: DataFiles) -> dict[str, Path | list]:
    truth = data.path("mall/mall_gt_dev.json")
    gt = json.loads(truth.read_text())
    return {"frames": data.root() / "mall" / "frames", "truth": truth, "gt": gt}


def test_eval_command_writes_its_report(tmp_path: Path, mall) -> None:
    result = subprocess.run(
        [
            *SHARPEYES,
            "eval",
            str(mall["frames"]),
            "--annotations",
            str(mall["truth"]),
            "--fps",
            "2",
            "--limit",
            "6",
            "--min-people",
            "28",
            "--min-duration",
            "1",
            "--clear-after",
            "1",
            "--out",
            str(tmp_path),
            "--name",
            "mall-slice",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "count MAE" in result.stdout and "mall-slice.md" in result.stdout
    report = json.loads((tmp_path / "mall-slice.json").read_text())
    with (tmp_path / "mall-slice.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["true"]) for r in rows] == mall["gt"]["count"][:6]
    assert [float(r["time_s"]) for r in rows] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    errors = [abs(int(r["predicted"]) - int(r["true"])) for r in rows]
    assert report["frames"] == 6
    assert report["counts"]["mae"] == pytest.approx(sum(errors) / 6, abs=1e-3)
    assert report["detector"] == {"name": "yolox_nano_416_dynbatch", "input_size": [416, 416]}
    assert report["episodes"]["true"] >= 1  # counts 29–35 hold ≥ 28 from the start
    png = (tmp_path / "mall-slice.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert "| count MAE |" in (tmp_path / "mall-slice.md").read_text()


def test_tiling_counts_the_mall_crowd_much_closer(detector, mall) -> None:
    # The same six frames and model, at 416 px on the whole frame and on 416 px tiles of the
    # frame upscaled to 1280×960: far, small shoppers are found on the tiles.
    options = EvalOptions(
        footage=mall["frames"],
        annotations=mall["truth"],
        thresholds=GatheringThresholds(min_people=28, min_duration_s=1, clear_after_s=1),
        fps=2.0,
        limit=6,
    )
    plain = run_eval(options, detector)
    tiled = run_eval(options, TiledDetector(detector, TilingSettings(frame_size=(1280, 960))))
    assert plain.counts.bias < -8  # YOLOX-nano at 416 px misses a third or more of them
    assert tiled.counts.mae < plain.counts.mae - 5
    assert tiled.input_size == (1280, 960) and "tiles4x3" in tiled.detector


def test_video_with_a_csv_of_counts(tmp_path: Path, detector, data: DataFiles) -> None:
    video = data.path("videos/one-by-one-person-detection.mp4")
    footage = open_footage(video)
    assert footage.fps == 10 and footage.frame_count == 1394
    options = EvalOptions(
        footage=video,
        annotations=VIDEO_LABELS,
        thresholds=GatheringThresholds(min_people=1, min_duration_s=3, clear_after_s=3),
        limit=14,  # frames 1, 11, … 131: nobody, then the first visitor from frame 71
    )
    result = run_eval(options, detector)
    assert [r.frame for r in result.frames] == list(range(1, 132, 10))
    assert [r.true for r in result.frames] == [0] * 7 + [1] * 7
    assert result.counts.mae <= 2 / 14  # one person, large and clear
    assert len(result.true_episodes) == 1 and result.true_episodes[0].start == 7.0
    assert result.episodes.recall == 1.0


def test_mot_ground_truth_counts_people_only(tmp_path: Path, mall) -> None:
    # MOT Challenge layout: frame, id, x, y, w, h, conf, class, visibility. conf 0 lines
    # (ignored regions) and non-person classes (3 = car) do not count.
    lines = []
    for frame in (1, 2, 3):
        for i, (x, y) in enumerate(mall["gt"]["heads"][frame - 1]):
            lines.append(f"{frame},{i + 1},{x - 10:.1f},{y - 10:.1f},20,60,1,1,1.0")
        lines.append(f"{frame},900,10,10,50,50,0,1,1.0")
        lines.append(f"{frame},901,100,100,80,40,1,3,1.0")
    gt = tmp_path / "gt.txt"
    gt.write_text("\n".join(lines) + "\n")
    truth = load_ground_truth(gt)
    assert truth.format == "mot" and truth.dense
    assert [truth.count(f) for f in (1, 2, 3)] == mall["gt"]["count"][:3]
    assert truth.count(4) == 0  # a frame without lines has nobody


def test_frames_are_thinned_to_the_analysis_rate(tmp_path: Path, data: DataFiles) -> None:
    video = data.path("videos/one-by-one-person-detection.mp4")
    footage = open_footage(video)
    gt = tmp_path / "gt.txt"
    gt.write_text("".join(f"{f},1,10,10,20,40\n" for f in range(1, 40)))
    truth = load_ground_truth(gt)  # dense: every frame of the video is annotated
    assert select_frames(footage, truth, 2.0, 5) == [1, 6, 11, 16, 21]
    sparse = load_ground_truth(VIDEO_LABELS)
    assert select_frames(footage, sparse, 1.0, 3) == [1, 11, 21]


def test_episode_matching() -> None:
    true = [Episode(0, 5, 20, "sustained", 30), Episode(50, 55, 60, "sustained", 30)]
    predicted = [
        Episode(3, 8, 25, "sustained", 28),
        Episode(30, 35, 40, "sustained", 28),  # nothing true there
    ]
    scores = match_episodes(true, predicted)
    assert (scores.matched, scores.precision, scores.recall) == (1, 0.5, 0.5)
    assert scores.mean_alert_delay_s == 3.0
    assert count_scores([10, 20], [7, 21]).as_dict() == {
        "frames": 2,
        "mae": 2.0,
        "rmse": pytest.approx(2.236, abs=1e-3),
        "bias": -1.0,
        "true_mean": 15.0,
        "predicted_mean": 14.0,
    }
    # The true intervals follow the same rule as the pipeline, run on the true counts.
    times = [float(t) for t in range(20)]
    counts = [0] * 3 + [5] * 10 + [0] * 7
    (episode,) = true_episodes(
        times, counts, GatheringThresholds(min_people=5, min_duration_s=2, clear_after_s=2)
    )
    assert (episode.start, episode.alerted, episode.end) == (3.0, 5.0, 15.0)


def eval_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["eval", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("content", "line", "problem"),
    [
        ("1,1,10,10,20,40\n2,1,10,10,20\n", 2, "at least 6"),
        ("1,1,10,10,20,40\n\n3,1,abc,10,20,40,1,1\n", 3, "x 'abc' is not a number"),
        ("0,1,10,10,20,40\n", 1, "frame 0 must be 1 or more"),
    ],
)
def test_malformed_mot_lines_exit_2_naming_file_and_line(
    tmp_path: Path, mall, content: str, line: int, problem: str
) -> None:
    gt = tmp_path / "gt.txt"
    gt.write_text(content)
    code, output = eval_cli(
        str(mall["frames"]), "-a", str(gt), "--fps", "2", "--out", str(tmp_path)
    )
    assert code == 2
    assert f"{gt}:{line}: " in output and problem in output
    assert "Traceback" not in output


def test_bad_input_exits_2_with_a_clear_message(tmp_path: Path, mall) -> None:
    counts = tmp_path / "counts.csv"
    counts.write_text("frame,count\n1,30\n2,thirty\n")
    code, output = eval_cli(str(mall["frames"]), "-a", str(counts), "--fps", "2")
    assert code == 2 and f"{counts}:3: count 'thirty' is not a number" in output

    bad_json = tmp_path / "gt.json"
    bad_json.write_text('{"count": [3, 4, -1]}')
    code, output = eval_cli(str(mall["frames"]), "-a", str(bad_json), "--fps", "2")
    assert code == 2 and "count[2] is -1" in output

    missing = tmp_path / "nothing.txt"
    code, output = eval_cli(str(mall["frames"]), "-a", str(missing), "--fps", "2")
    assert code == 2 and f"{missing}: no such file" in output

    code, output = eval_cli(str(tmp_path / "no-video.mp4"), "-a", str(mall["truth"]))
    assert code == 2 and "no-video.mp4: no such file or folder" in output

    code, output = eval_cli(str(mall["frames"]), "-a", str(mall["truth"]))
    assert code == 2 and "give --fps" in output

    code, output = eval_cli(str(mall["frames"]), "-a", str(mall["truth"]), "--input-size", "64")
    assert code == 2 and "WIDTHxHEIGHT" in output

    code, output = eval_cli(
        str(mall["frames"]), "-a", str(mall["truth"]), "--zone", "0,0 1,1 1,0 0,1"
    )
    assert code == 2 and "cross" in output

    code, output = eval_cli(
        str(mall["frames"]), "-a", str(mall["truth"]), "--fps", "2", "--exit-people", "30"
    )
    assert code == 2 and "exit_people" in output and "Traceback" not in output


def test_accuracy_benchmark_runs_and_writes_its_report(tmp_path: Path) -> None:
    from benchmarks import accuracy

    accuracy.main(["--quick", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "accuracy.json").read_text())
    assert report["quick"] and report["published_best_mall_mae"] == 1.28
    (baseline, tiled) = report["mall"]["results"]
    assert baseline["time_ratio"] == 1.0 and tiled["time_ratio"] > 1.0
    assert tiled["mae"] < baseline["mae"]
    assert (tmp_path / baseline["plot"]).is_file()
    markdown = (tmp_path / "accuracy.md").read_text()
    assert "| yolox416 |" in markdown and "Sample video" in markdown


def test_annotation_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="no such file"):
        load_ground_truth(tmp_path / "gt.txt")
    empty = tmp_path / "empty.csv"
    empty.write_text("frame,count\n# nothing labelled yet\n")
    with pytest.raises(AnnotationError, match=f"{empty}: no 'frame,count' rows"):
        load_ground_truth(empty)
    twice = tmp_path / "twice.csv"
    twice.write_text("1,3\n1,4\n")
    with pytest.raises(AnnotationError, match=f"{twice}:2: frame 1 is listed twice"):
        load_ground_truth(twice)
