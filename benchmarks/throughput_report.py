"""The throughput benchmark's Markdown report and plot, from its JSON document."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def _f(value: float | None, digits: int = 3, unit: str = "") -> str:
    return "–" if value is None else f"{value:.{digits}f}{unit}"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def write_markdown(doc: dict[str, Any], path: Path, plot_name: str) -> None:
    config, floor, machine = doc["config"], doc["floor"], doc["machine"]
    size = "×".join(str(v) for v in config["size"])
    lines = [
        "# Throughput per stream",
        "",
        f"Finished {doc['finished_at']} on {machine['cpu']} ({machine['logical_cores']} logical "
        f"cores, {machine['memory_gb']} GB), Python {machine['python']}; load average at the end "
        f"{machine['load_average_at_end']}.",
        "",
    ]
    if doc.get("note"):
        lines += [f"> {doc['note']}", ""]
    lines += [
        f"Command: `{doc['command']}`",
        "",
        f"Each camera is an RTSP stream of the same {size} H.264 clip at {config['fps']} fps, "
        f"GOP {config['gop']} (a keyframe every {config['gop'] / config['fps']:g} s), served by "
        f"the local GStreamer RTSP server{_phases(config)}. Each step runs in its own process: "
        f"{config['warmup_s']:g} s warm-up (plus 0.05 s per camera), then a measurement "
        "window of at least "
        f"{config['duration_s']:g} s (eight analyses per camera at low rates). A step passes when "
        f"cameras are analysed at ≥ {config['rate_tolerance']:.0%} of the target rate on "
        f"average (none below 70 %), the p99 capture-to-result latency is ≤ "
        f"{config['latency_target_s']:g} s and no reader falls more than that behind the live "
        "stream. CPU is user + system time of the worker's whole process tree; the RTSP server "
        "and Redis are measured separately and charged to neither side. Model: "
        f"`{config['model']}`; SharpEyes runs {_inference(doc)}, a batch waiting at most "
        f"{config['max_wait_ms']:g} ms for more due frames.",
        "",
        "## Summary",
        "",
        "| analyses/s per camera | side | max K passed | streams/core measured | CPU-s per "
        "stream-s | streams/core from CPU cost | p50 / p99 latency | RSS per stream |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rate, row in doc["summary"].items():
        for variant in ("baseline", "sharpeyes"):
            if variant not in row:
                continue
            v = row[variant]
            tried = [
                st for st in doc["steps"] if f"{st['rate']:g}" == rate and st["variant"] == variant
            ]
            unbounded = bool(tried) and all(st["passed"] for st in tried)
            max_k = f"≥ {v['max_k_passed']} (largest tried)" if unbounded else v["max_k_passed"]
            if v.get("runs_at_max_k", 1) > 1:
                max_k = f"{max_k}, passed {v['passed_at_max_k']} of {v['runs_at_max_k']} runs"
            lines.append(
                f"| {rate} | {variant} | {max_k} | "
                f"{_f(v['measured_streams_per_core'], 1)} | {_f(v['cpu_per_stream'], 4)} | "
                f"{_f(v['projected_streams_per_core'], 1)} | {_f(v['latency_p50_s'], 2)} / "
                f"{_f(v['latency_p99_s'], 2)} s | {_f(v['rss_mb_per_stream'], 1)} MB |"
            )
        lines.append(
            f"| {rate} | floor | – | – | {_f(row['floor_cpu_per_stream'], 4)} | "
            f"{_f(row['floor_streams_per_core'], 1)} | – | – |"
        )
    lines += [
        "",
        "| analyses/s per camera | SharpEyes / baseline (max K) | SharpEyes / baseline (CPU "
        "cost) | SharpEyes cost / floor | SharpEyes cost / (floor + receiving) |",
        "|---|---|---|---|---|",
    ]
    for rate, row in doc["summary"].items():
        over_floor = _ratio(row.get("sharpeyes_cost_over_floor"))
        spread = row.get("sharpeyes_cost_over_floor_range")
        if spread and (row.get("sharpeyes") or {}).get("passed_at_max_k", 1) > 1:
            over_floor += f" ({spread[0]:.2f}–{spread[1]:.2f}×)"
        with_receive = _ratio(row.get("sharpeyes_cost_over_floor_with_receive"))
        lines.append(
            f"| {rate} | {_ratio(row.get('measured_ratio'))} | "
            f"{_ratio(row.get('projected_ratio'))} | {over_floor} | {with_receive} |"
        )
    lines += [
        "",
        "Streams per core *measured* = the largest K that passed ÷ logical cores, on this machine "
        "as it was during the run; *from CPU cost* = 1 ÷ CPU-seconds per stream-second at that "
        "K, i.e. how many streams one fully available core sustains. The floor is the cost of "
        "decoding one keyframe (with the in-decoder resize) plus one detection, measured alone, "
        "times the analysis rate. Where a side ran more than once at its largest K, its figures "
        "are those of the run with the median CPU per stream, and the ratio to the floor gives "
        "the range of its passing runs in brackets.",
        "",
        f"![throughput plot]({plot_name})",
        "",
        "## The floor (measured alone)",
        "",
        f"- keyframe decode + resize: {_f(floor['keyframe_decode_cpu_s'] * 1000, 2)} ms CPU "
        f"per keyframe ({floor['keyframes']} keyframes)",
    ]
    for threads, t in floor["detect_by_threads"].items():
        label = "ONNX Runtime's default threads" if threads == "default" else f"{threads} thread(s)"
        lines.append(
            f"- detection with {label}: batch 1 {_f(t['batch1_cpu_s'] * 1000, 2)} ms CPU "
            f"({_f(t['batch1_wall_s'] * 1000, 2)} ms wall); batch of {floor['batch']} "
            f"{_f(t['batched_cpu_s'] * 1000, 2)} ms CPU per image"
        )
    lines += [
        f"- per analysis (keyframe + the cheapest detection): "
        f"{_f(floor['per_analysis_cpu_s'] * 1000, 2)} ms CPU",
    ]
    measurements = floor.get("measurements") or []
    if measurements:
        each = ", ".join(
            f"{m['label'].removeprefix('floor (alone)').strip() or 'first'} "
            f"{_f(m['per_analysis_cpu_s'] * 1000, 2)}"
            for m in measurements
        )
        by_pass = floor.get("per_analysis_by_pass") or []
        lines.append(
            f"- medians over {len(by_pass)} passes in {len(measurements)} measurements spread "
            f"over the run (ms per analysis: {each}; single passes "
            f"{_f(min(by_pass) * 1000, 2)}–{_f(max(by_pass) * 1000, 2)})"
        )
    lines.append("")
    receive = doc.get("receive") or {}
    if receive:
        by_ffmpeg = doc.get("receive_ffmpeg") or {}
        lines += [
            "Receiving alone (not in the floor, paid by every live reader): the RTSP/TCP "
            "streams read and split into pictures in one process, nothing decoded, at the "
            "camera counts the summary compares at; by SharpEyes' shared native receivers "
            "(used for *floor + receiving*) and, for comparison, by FFmpeg (PyAV demuxing "
            "each camera on its own thread):",
            "",
        ]
        for k, r in sorted(receive.items(), key=lambda item: int(item[0])):
            line = (
                f"- K = {k}: {_f(r['cpu_per_stream'], 4)} CPU-s per stream-second "
                f"({r['packets']} pictures in {_f(r['window_s'], 1)} s)"
            )
            ffmpeg = by_ffmpeg.get(k)
            if ffmpeg:
                line += f"; FFmpeg {_f(ffmpeg['cpu_per_stream'], 4)}"
            lines.append(line)
        lines.append("")
    lines += _runs_at_max_k(doc)
    lines += _where_the_cpu_goes(doc)
    lines += [
        "## Every step",
        "",
        "| rate | side | K | analyses/s (mean / min) | p50 | p99 | behind stream | CPU-s per "
        "stream-s | CPU of machine | RSS | RTSP+Redis CPU/s | result |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    cores = machine["logical_cores"] or 1
    for s in doc["steps"]:
        share = s["cpu_s"] / s["window_s"] / cores
        extra = s.get("extra", {})
        detail = ""
        if s["variant"] == "sharpeyes":
            detail = (
                f" (decode {','.join(extra.get('decode_modes', []))}, mean batch "
                f"{extra.get('mean_batch', 0):.1f}, rate scale {extra.get('rate_scale', 1):.2f})"
            )
        problems = extra.get("errors") or []
        errors = f"; {len(problems)} stream errors, e.g. {problems[0]}" if problems else ""
        repeat = f" (repeat {s['repeat']})" if s.get("repeat") else ""
        lines.append(
            f"| {s['rate']:g} | {s['variant']} | {s['k']} | {s['rate_mean']:.3f} / "
            f"{s['rate_min']:.3f} | {_f(s['latency_p50_s'], 2)} | {_f(s['latency_p99_s'], 2)} | "
            f"{s['max_lag_s']:.2f} s | {s['cpu_per_stream']:.4f} | {share:.0%} | "
            f"{s['rss_peak_mb']:.0f} MB | {s['services_cpu_per_s']:.2f} | "
            f"{'pass' if s['passed'] else 'FAIL: ' + s['why']}{detail}{errors}{repeat} |"
        )
    lines += ["", f"Raw data: `{path.with_suffix('.json').name}`.", ""]
    path.write_text("\n".join(lines))


def write_plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = list(doc["summary"])
    fig, axes = plt.subplots(2, len(rates), figsize=(6 * len(rates), 8), squeeze=False)
    colours = {"baseline": "tab:red", "sharpeyes": "tab:blue"}
    target = doc["config"]["latency_target_s"]
    for col, rate in enumerate(rates):
        cost_ax, lat_ax = axes[0][col], axes[1][col]
        for variant, colour in colours.items():
            every = [
                s for s in doc["steps"] if f"{s['rate']:g}" == rate and s["variant"] == variant
            ]
            if not every:
                continue
            steps = _median_per_k(every)
            ks = [s["k"] for s in steps]
            cost_ax.plot(ks, [s["cpu_per_stream"] for s in steps], "o-", color=colour,
                         label=variant)  # fmt: skip
            lat_ax.plot(ks, [s["latency_p99_s"] or 0 for s in steps], "o-", color=colour,
                        label=f"{variant} p99")  # fmt: skip
            repeats = [s for s in every if s not in steps]
            cost_ax.scatter([s["k"] for s in repeats], [s["cpu_per_stream"] for s in repeats],
                            marker=".", s=40, color=colour, alpha=0.6)  # fmt: skip
            failed = [s for s in every if not s["passed"]]
            cost_ax.scatter([s["k"] for s in failed], [s["cpu_per_stream"] for s in failed],
                            marker="x", s=120, color="black", zorder=3)  # fmt: skip
        floor = doc["summary"][rate]["floor_cpu_per_stream"]
        cost_ax.axhline(floor, color="tab:green", linestyle="--", label="floor")
        cost_ax.axhline(1.3 * floor, color="tab:green", linestyle=":", label="1.3 × floor")
        receive = doc["summary"][rate].get("receive_cpu_per_stream")
        if receive:
            cost_ax.axhline(floor + receive, color="tab:gray", linestyle="--",
                            label="floor + receiving")  # fmt: skip
        cost_ax.set_title(f"{rate} analyses/s per camera")
        cost_ax.set_xlabel("cameras (K)")
        cost_ax.set_ylabel("CPU-s per stream-second (× = step failed)")
        cost_ax.set_yscale("log")
        cost_ax.set_xscale("log", base=2)
        cost_ax.legend()
        lat_ax.axhline(target, color="black", linestyle="--", label=f"target {target:g} s")
        lat_ax.set_xlabel("cameras (K)")
        lat_ax.set_ylabel("p99 capture-to-result latency (s)")
        lat_ax.set_xscale("log", base=2)
        lat_ax.legend()
    fig.suptitle("SharpEyes vs the OpenCV baseline: CPU per stream and latency")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


ROLES = {
    "rtsp-receiver": "receivers: receiving, splitting into pictures, decoding, resizing",
    "inference": "inference workers: batching, pre-processing, detection, rules",
    "pipeline": "pipeline housekeeping: rates, health reports, thumbnails",
    "source": "the cameras' own threads (connecting; FFmpeg-read cameras read and decode here)",
    "native": "threads Python did not start (ONNX Runtime, FFmpeg)",
    "ended": "threads that ended within the window (e.g. started per frame), and the rest",
}


def median_by_cost(runs: Sequence[T], cost: Callable[[T], float]) -> T | None:
    """The run of median cost (the lower middle of an even count), so that every figure
    quoted for it comes from one real run; the summary and the plot pick the same one."""
    ordered = sorted(runs, key=cost)
    return ordered[(len(ordered) - 1) // 2] if ordered else None


def _median_per_k(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One step per K, rising: the one of median CPU per stream among those that passed
    (among all, where none did), as the summary picks."""
    out = []
    for k in sorted({s["k"] for s in steps}):
        at_k = [s for s in steps if s["k"] == k]
        chosen = median_by_cost([s for s in at_k if s["passed"]] or at_k, _cost)
        assert chosen is not None  # at_k is never empty
        out.append(chosen)
    return out


def _cost(step: dict[str, Any]) -> float:
    return step["cpu_per_stream"]


def _runs_at_max_k(doc: dict[str, Any]) -> list[str]:
    """Every run of each side at its largest passing K, each against the pooled floor and
    against the floor measured right after it: how much a single run moves."""
    rows = []
    for key, summary in doc["summary"].items():
        for variant in ("sharpeyes", "baseline"):
            side = summary.get(variant) or {}
            if side.get("runs_at_max_k", 0) < 2:
                continue
            floor = summary["floor_cpu_per_stream"]
            for s in doc["steps"]:
                if (f"{s['rate']:g}", s["variant"], s["k"]) != (key, variant, side["max_k_passed"]):
                    continue
                after = s.get("cost_over_floor_after")
                rows.append(
                    f"| {key} | {variant} | {s['k']} | {s.get('at') or '–'} | "
                    f"{'repeat ' + str(s['repeat']) if s.get('repeat') else 'search'} | "
                    f"{s['cpu_per_stream']:.4f} | {_ratio(s['cpu_per_stream'] / floor)} | "
                    f"{_ratio(after)} | {_f(s['latency_p99_s'], 2)} s | "
                    f"{'pass' if s['passed'] else 'FAIL: ' + s['why']} |"
                )
    if not rows:
        return []
    return [
        "## Runs at the largest K",
        "",
        "Each side measured again at its largest passing K (`--repeats`), the floor measured "
        "after each round. The summary takes the run of median CPU per stream. *Next floor*: "
        "the cost against the floor measured right after the run, alone, on the machine as it "
        "then was.",
        "",
        "| rate | side | K | finished | run | CPU-s per stream-s | / pooled floor | "
        "/ next floor | p99 | result |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def _where_the_cpu_goes(doc: dict[str, Any]) -> list[str]:
    """SharpEyes' CPU at its largest passing K (the run the summary quotes), by thread role,
    against the floor's parts."""
    floor = doc["floor"]
    lines: list[str] = []
    for summary in doc["summary"].values():
        index = (summary.get("sharpeyes") or {}).get("step")
        step = doc["steps"][index] if index is not None else None
        roles = (step or {}).get("extra", {}).get("cpu_by_thread")
        if step is None or not roles:
            continue
        rate = step["rate"]
        if not lines:
            lines += [
                "## Where SharpEyes' CPU goes",
                "",
                "CPU of each kind of thread over the measurement window at SharpEyes' largest "
                "passing K (the run the summary quotes), per analysis (the floor per analysis: "
                f"{_f(floor['keyframe_decode_cpu_s'] * 1000, 2)} ms keyframe decode, "
                f"{_f(floor['detect_cpu_s'] * 1000, 2)} ms detection):",
                "",
                "| rate | K | threads | CPU-s per stream-s | ms per analysis |",
                "|---|---|---|---|---|",
            ]
        per_stream_s = step["window_s"] * step["k"]
        # The process's CPU that no thread alive at the end accounts for: threads that came
        # and went (a scaler setting up threads for every frame once cost 3-6 % this way).
        roles = {**roles, "ended": max(0.0, step["cpu_s"] - sum(roles.values()))}
        for role, cpu in sorted(roles.items(), key=lambda item: -item[1]):
            share = cpu / per_stream_s
            lines.append(
                f"| {rate:g} | {step['k']} | {ROLES.get(role, role)} | {share:.5f} | "
                f"{_f(share / rate * 1000, 2)} |"
            )
    return [*lines, ""] if lines else []


def _inference(doc: dict[str, Any]) -> str:
    """How SharpEyes ran its detector, as its steps report it (automatic unless set)."""
    plans = {
        (i["workers"], i["threads"], i["max_batch"])
        for step in doc["steps"]
        if (i := step.get("extra", {}).get("inference"))
    }
    if not plans:
        return "its detector as configured"
    return "; ".join(
        f"{w} detector call(s) at once, each of up to {b} frames on {t or 'default'} ONNX "
        "Runtime thread(s)"
        for w, t, b in sorted(plans, key=str)
    )


def _phases(config: dict[str, Any]) -> str:
    phases = config.get("phases", 1)
    if phases <= 1:
        return ", every camera in step (all keyframes at once: the worst case for latency)"
    span = config["gop"] / config["fps"]
    return (
        f" from {phases} feeds started {span / phases:g} s apart, so that keyframes arrive "
        "spread over the GOP as independent cameras' do"
    )
