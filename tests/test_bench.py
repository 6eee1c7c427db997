"""``sharpeyes bench`` runs end to end in a tiny configuration and writes its report.

No performance is asserted here (the machine is shared and the configuration tiny): the
test checks that both sides and the floor really ran against the RTSP server and that the
JSON, Markdown and PNG reports hold what the full run reports.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import pytest

from tests.helpers import SHARPEYES

TINY = [
    "bench", "--ks", "2", "--rates", "1", "--duration", "4", "--warmup", "4",
    "--size", "640x360", "--clip-seconds", "4", "--no-refine", "--no-progress",
    "--floor-passes", "2", "--repeats", "1",
]  # fmt: skip


@pytest.mark.slow
def test_tiny_benchmark_writes_json_markdown_and_plot(tmp_path: Path) -> None:
    run = subprocess.run(
        [*SHARPEYES, *TINY, "--out", str(tmp_path), "--note", "test run"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "SharpEyes max K" in run.stdout

    doc = json.loads((tmp_path / "throughput.json").read_text())
    assert doc["note"] == "test run" and doc["config"]["size"] == [640, 360]
    floor = doc["floor"]
    assert floor["keyframes"] >= 2 and 0 < floor["per_analysis_cpu_s"] < 1
    # A side that passed at K = 2 runs once more there (--repeats 1), then the floor again.
    searched = [step for step in doc["steps"] if step["repeat"] == 0]
    repeated = [step for step in doc["steps"] if step["repeat"] == 1]
    passed = {step["variant"] for step in searched if step["passed"]}
    assert {step["variant"] for step in repeated} == passed
    assert all(step["k"] == 2 for step in repeated)
    # Measured before the rate, after it and after the repeat, two passes each, pooled.
    labels = ["floor (alone)", "floor (alone) after 1/s"]
    labels += ["floor (alone) after 1/s repeat 1"] if passed else []
    assert [m["label"] for m in floor["measurements"]] == labels
    assert len(floor["passes"]) == 2 * len(labels) == len(floor["per_analysis_by_pass"])
    assert min(floor["per_analysis_by_pass"]) <= floor["per_analysis_cpu_s"]
    assert floor["per_analysis_cpu_s"] <= max(floor["per_analysis_by_pass"])
    for step in doc["steps"]:  # each step against the floor measured next after it
        expected = "floor (alone) after 1/s" + (" repeat 1" if step["repeat"] else "")
        assert step["floor_after"] == expected
        assert step["cost_over_floor_after"] > 0
    sides = {step["variant"]: step for step in searched}
    assert set(sides) == {"baseline", "sharpeyes"}
    for step in sides.values():
        assert step["k"] == 2 and step["window_s"] >= 4
        assert step["rate_mean"] > 0, f"{step['variant']} analysed nothing"
        assert step["cpu_s"] > 0 and step["rss_peak_mb"] > 50
        assert step["latency_p99_s"] is not None and step["latency_p99_s"] >= 0
    assert sides["sharpeyes"]["extra"]["decode_modes"], "the real PyAV sources reported"
    roles = sides["sharpeyes"]["extra"]["cpu_by_thread"]  # where the CPU went, by thread
    assert roles["rtsp-receiver"] > 0 and roles["inference"] > 0, roles
    assert sum(roles.values()) <= sides["sharpeyes"]["cpu_s"] * 1.05 + 0.05, roles
    summary = doc["summary"]["1"]
    assert summary["floor_cpu_per_stream"] == pytest.approx(floor["per_analysis_cpu_s"])
    for key in ("baseline", "sharpeyes"):
        assert summary[key]["cpu_per_stream"] is None or summary[key]["cpu_per_stream"] > 0
    receive = doc["receive"]["2"]  # receiving alone, priced at the K SharpEyes is compared at
    assert receive["cameras"] == 2 and receive["packets"] > 0 and not receive["errors"]
    assert receive["cpu_per_stream"] > 0 and receive["reader"] == "native"
    by_ffmpeg = doc["receive_ffmpeg"]["2"]  # the same cameras demuxed by FFmpeg, for comparison
    assert by_ffmpeg["reader"] == "ffmpeg" and by_ffmpeg["packets"] > 0
    assert not by_ffmpeg["errors"] and by_ffmpeg["cpu_per_stream"] > 0
    markdown = (tmp_path / "throughput.md").read_text()
    if passed:
        assert "## Runs at the largest K" in markdown and "| repeat 1 |" in markdown
    if sides["sharpeyes"]["passed"]:  # a 4-s window is short: the step may fail on its rate
        assert "## Where SharpEyes' CPU goes" in markdown and "| 1 | 2 | receivers" in markdown
        assert "| 1 | 2 | threads that ended within the window" in markdown  # the remainder
        assert summary["receive_cpu_per_stream"] == receive["cpu_per_stream"]
        expected = summary["sharpeyes"]["cpu_per_stream"] / (
            summary["floor_cpu_per_stream"] + receive["cpu_per_stream"]
        )
        assert summary["sharpeyes_cost_over_floor_with_receive"] == pytest.approx(expected)

    pooled = f"medians over {2 * len(labels)} passes in {len(labels)} measurements"
    for expected in ("## Summary", "| 1 | baseline | 2 |", "| 1 | sharpeyes | 2 |", "floor",
                     "> test run", "throughput.png", "; FFmpeg ", pooled):  # fmt: skip
        assert expected in markdown
    image = cv2.imread(str(tmp_path / "throughput.png"))
    assert image is not None and image.shape[0] > 300


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ks", "0,4"], "Invalid value for '--ks'"),
        (["--ks", "two"], "not a comma-separated list"),
        (["--size", "1920"], "is not WIDTHxHEIGHT"),
        (["--variants", "baseline,ffmpeg"], "Invalid value for --variants"),
        (["--model", "yolov99"], "unknown model"),
    ],
)
def test_bad_options_exit_2_naming_the_option(args: list[str], message: str) -> None:
    run = subprocess.run([*SHARPEYES, "bench", *args], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    assert message in run.stderr and "Traceback" not in run.stderr


def test_the_floor_takes_medians_over_passes_so_one_slow_pass_does_not_move_it() -> None:
    from benchmarks.throughput_workers import floor_summary

    def one_pass(decode_ms: float, single_ms: float, batched_ms: float) -> dict:
        timing = {"batch1_cpu_s": single_ms / 1e3, "batch1_wall_s": single_ms / 1e3,
                  "batched_cpu_s": batched_ms / 1e3}  # fmt: skip
        return {"keyframes": 30, "keyframe_decode_cpu_s": decode_ms / 1e3,
                "detect_by_threads": {"1": timing}}  # fmt: skip

    passes = [one_pass(9.0, 11.5, 13.0), one_pass(9.2, 11.7, 13.2), one_pass(12.0, 15.0, 16.0)]
    floor = floor_summary(passes)
    assert floor["keyframe_decode_cpu_s"] == pytest.approx(9.2e-3)
    assert floor["detect_cpu_s"] == pytest.approx(11.7e-3), "batch 1, cheaper than batched"
    assert floor["per_analysis_cpu_s"] == pytest.approx(20.9e-3)
    assert floor["per_analysis_by_pass"] == pytest.approx([20.5e-3, 20.9e-3, 27.0e-3])


def test_summary_quotes_the_median_run_at_the_largest_k_and_pairs_each_with_the_next_floor(
    tmp_path: Path,
) -> None:
    from benchmarks.throughput import BenchConfig, Runner, Step

    runner = Runner(BenchConfig(rates=[1.0], variants=["sharpeyes"], out_dir=tmp_path))

    def floor(label: str, ms: float) -> None:
        runner.floor_measurements.append(
            {"label": label, "per_analysis_cpu_s": ms / 1e3, "seq": runner._next_seq()}
        )

    def step(k: int, cpu_per_stream: float, *, passed: bool = True, repeat: int = 0) -> None:
        runner.steps.append(
            Step(rate=1.0, variant="sharpeyes", k=k, window_s=10.0, cpu_s=cpu_per_stream * 10 * k,
                 rss_peak_mb=100.0 * k, rate_mean=1.0, rate_min=1.0, latency_p50_s=0.1,
                 latency_p99_s=0.2 + repeat, max_lag_s=0.0, services_cpu_per_s=0.0,
                 passed=passed, why="ok", repeat=repeat, seq=runner._next_seq())
        )  # fmt: skip

    floor("floor (alone)", 20.0)
    step(8, 0.030)
    step(16, 0.027)
    step(32, 0.020, passed=False)  # rates lowered: cheaper, but not a pass
    floor("floor (alone) after 1/s", 20.0)
    step(16, 0.025, repeat=1)
    floor("floor (alone) after 1/s repeat 1", 25.0)
    step(16, 0.022, passed=False, repeat=2)  # a failed run counts, but not in the median
    step(16, 0.029, repeat=3)
    floor("floor (alone) after 1/s repeat 3", 20.0)
    runner.floor = {"per_analysis_cpu_s": 0.020}

    ours = runner.summary()["1"]["sharpeyes"]
    assert ours["max_k_passed"] == 16
    assert (ours["runs_at_max_k"], ours["passed_at_max_k"]) == (4, 3)
    assert ours["cpu_per_stream"] == pytest.approx(0.027), "median of 0.025, 0.027 and 0.029"
    assert runner.steps[ours["step"]].repeat == 0 and ours["latency_p99_s"] == 0.2
    assert ours["cpu_per_stream_range"] == pytest.approx([0.025, 0.029])
    row = runner.summary()["1"]
    assert row["sharpeyes_cost_over_floor"] == pytest.approx(1.35)
    assert row["sharpeyes_cost_over_floor_range"] == pytest.approx([1.25, 1.45])
    # Each run against the floor measured next after it.
    paired = [runner._paired(s) for s in runner.steps]
    assert [p["floor_after"] for p in paired] == [
        "floor (alone) after 1/s", "floor (alone) after 1/s", "floor (alone) after 1/s",
        "floor (alone) after 1/s repeat 1", "floor (alone) after 1/s repeat 3",
        "floor (alone) after 1/s repeat 3",
    ]  # fmt: skip
    assert paired[3]["cost_over_floor_after"] == pytest.approx(0.025 / 0.025)


def test_lag_behind_the_stream_restarts_with_a_reconnected_camera_clock() -> None:
    from benchmarks.throughput_workers import Recorder

    recorder = Recorder(["steady", "reconnects", "slow"], window_start=0.0)
    for second in range(10):  # a reader keeping up: wall time and media time move together
        recorder.record("steady", 100.0 + second, 0.1, 50.0 + second)
    # A camera that reconnects after 5 s: its stream clock starts again near 0.
    for wall, media in [(100, 600), (102, 602), (104, 604), (106, 0.2), (108, 2.2)]:
        recorder.record("reconnects", float(wall), 0.1, media)
    for wall, media in [(100, 10), (104, 11), (108, 12)]:  # decodes 1 s of stream in 4 s
        recorder.record("slow", float(wall), 0.1, media)
    assert recorder.max_lag["steady"] == pytest.approx(0.0)
    assert recorder.max_lag["reconnects"] == pytest.approx(0.0), "not 606 s behind"
    assert recorder.max_lag["slow"] == pytest.approx(6.0)


def test_rate_comes_from_analysis_intervals_not_window_counts() -> None:
    from benchmarks.throughput import camera_rates

    # 0.2/s from keyframes 2 s apart: analyses 4 s and 6 s apart. A 30 s window holds 5 or 6
    # of them depending on phase; the intervals say 0.2/s either way.
    raw = {
        "window_s": 30.0,
        "analyses": {"steady": 5, "stalled": 2, "alone": 1},
        "spans": {"steady": 20.0, "stalled": 4.0, "alone": 0.0},
    }
    steady, stalled, alone = camera_rates(raw, 0.2)
    assert steady == pytest.approx(0.2)
    assert stalled == pytest.approx(1 / 20), "a camera analysed only early in the window"
    assert alone == pytest.approx(1 / 30)


def test_peak_rss_counts_children_only_when_asked() -> None:
    import sys

    from benchmarks.proc_stats import PeakRss

    # A child holding ~60 MB: the tree's peak includes it, the process's alone does not.
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; b = bytearray(60 << 20); b[::4096] = b'x' * "
            "len(b[::4096]); sys.stdout.write('ready\\n'); sys.stdout.flush(); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        with PeakRss(interval_s=0.05) as tree, PeakRss(interval_s=0.05, children=False) as alone:
            pass
    finally:
        child.kill()
        child.wait()
    assert tree.peak - alone.peak > 50 << 20
    assert alone.peak > 0
