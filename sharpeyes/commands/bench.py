"""``sharpeyes bench``: the throughput-per-stream benchmark (see benchmarks/throughput.py)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from sharpeyes.commands.common import EXIT_RUNTIME, fail


def _numbers(kind: type, low: float):  # type: ignore[no-untyped-def]
    def parse(ctx: click.Context, param: click.Parameter, value: str) -> list:
        try:
            items = [kind(v) for v in value.split(",") if v.strip()]
        except ValueError:
            raise click.BadParameter(
                f"'{value}' is not a comma-separated list of numbers, e.g. 2,4,8"
            ) from None
        if not items or any(v < low for v in items):
            raise click.BadParameter(f"give one or more values ≥ {low}, e.g. 2,4,8")
        return items

    return parse


def _size(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"'{value}' is not WIDTHxHEIGHT, e.g. 1920x1080") from None
    if width < 64 or height < 64 or width % 2 or height % 2:
        raise click.BadParameter(f"{value}: width and height must be even and ≥ 64")
    return width, height


@click.command()
@click.option(
    "--ks",
    default="2,4,8,16,32,64,128,256",
    show_default=True,
    callback=_numbers(int, 1),
    help="Camera counts to try, rising.",
)
@click.option(
    "--rates",
    default="1,0.2",
    show_default=True,
    callback=_numbers(float, 0.01),
    help="Analyses per second per camera; the comparison runs for each.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="Measurement window per step, seconds (longer at low rates).",
)
@click.option(
    "--warmup",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds to connect and settle before measuring.",
)
@click.option(
    "--size", default="1920x1080", show_default=True, callback=_size, help="Clip resolution."
)
@click.option("--fps", type=click.IntRange(1, 60), default=25, show_default=True)
@click.option(
    "--gop",
    type=click.IntRange(1, 600),
    default=50,
    show_default=True,
    help="Frames from one keyframe to the next.",
)
@click.option("--clip-seconds", type=click.FloatRange(min=2), default=60.0, show_default=True)
@click.option(
    "--phases",
    type=click.IntRange(1, 100),
    default=10,
    show_default=True,
    help="Feeds of the clip the cameras are spread over, started a GOP apart in all, so "
    "keyframes arrive spread out as real cameras' do; 1 puts every camera in step.",
)
@click.option(
    "--model",
    default="yolox_nano_416_dynbatch",
    show_default=True,
    help="Model card name (sharpeyes models list).",
)
@click.option(
    "--max-batch",
    type=click.IntRange(1, 256),
    default=None,
    help="Most frames per detector call (pipeline.max_batch; default automatic).",
)
@click.option("--max-wait-ms", type=click.FloatRange(0, 1000), default=25.0, show_default=True)
@click.option(
    "--inference-workers",
    type=click.IntRange(1, 16),
    default=None,
    help="SharpEyes' detector calls in flight at once (pipeline.inference_workers; default "
    "automatic, as in `sharpeyes run`).",
)
@click.option(
    "--intra-op-threads",
    type=click.IntRange(1, 64),
    default=None,
    help="ONNX Runtime threads per detector call (model.intra_op_threads; default automatic). "
    "The floor is measured with these and with one thread, and takes the cheaper.",
)
@click.option(
    "--receiver",
    type=click.Choice(["auto", "ffmpeg"]),
    default="auto",
    show_default=True,
    help="How SharpEyes reads the cameras (pipeline.receiver): auto = the shared native "
    "receivers, ffmpeg = FFmpeg on a thread per camera.",
)
@click.option(
    "--variants",
    default="baseline,sharpeyes",
    show_default=True,
    help="Which sides to run (the floor always runs).",
)
@click.option(
    "--floor-passes",
    type=click.IntRange(1, 20),
    default=3,
    show_default=True,
    help="Passes per floor measurement; the floor is measured before the first rate, after "
    "each and after each round of repeats, and the median over all passes is used.",
)
@click.option(
    "--repeats",
    type=click.IntRange(0, 10),
    default=2,
    show_default=True,
    help="More runs of each side at its largest passing K (the floor measured after each "
    "round); the summary quotes the run of median CPU per stream and the range.",
)
@click.option("--no-refine", is_flag=True, help="Skip the extra step between pass and fail.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Report directory (default benchmarks/results).",
)
@click.option("--name", default="throughput", show_default=True, help="Report file stem.")
@click.option("--note", default="", help="A line for the report, e.g. what else ran.")
@click.option("--no-progress", is_flag=True, help="No progress bar (for logs and CI).")
def bench(
    ks: list[int],
    rates: list[float],
    duration: float,
    warmup: float,
    size: tuple[int, int],
    fps: int,
    gop: int,
    clip_seconds: float,
    phases: int,
    model: str,
    max_batch: int | None,
    max_wait_ms: float,
    inference_workers: int,
    intra_op_threads: int | None,
    receiver: str,
    variants: str,
    floor_passes: int,
    repeats: int,
    no_refine: bool,
    out_dir: Path | None,
    name: str,
    note: str,
    no_progress: bool,
) -> None:
    """Throughput per stream: SharpEyes vs the OpenCV baseline vs the floor, rising K.

    Serves K copies of a 1080p25 H.264 clip over the local RTSP server and reports streams
    per core, latency, CPU and memory as JSON, Markdown and a PNG plot.
    """
    from benchmarks.throughput import RESULTS, VARIANTS, BenchConfig, run_benchmark
    from models.registry import CARDS

    chosen = [v.strip() for v in variants.split(",") if v.strip()]
    if not chosen or any(v not in VARIANTS for v in chosen):
        raise click.BadParameter(f"use some of {', '.join(VARIANTS)}", param_hint="--variants")
    if model not in CARDS:
        raise click.BadParameter(f"unknown model; known: {', '.join(CARDS)}", param_hint="--model")
    config = BenchConfig(
        ks=sorted(set(ks)),
        rates=rates,
        duration_s=duration,
        warmup_s=warmup,
        size=size,
        fps=fps,
        gop=gop,
        clip_seconds=clip_seconds,
        phases=phases,
        model=model,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        inference_workers=inference_workers,
        intra_op_threads=intra_op_threads,
        receiver=receiver,
        variants=chosen,
        floor_passes=floor_passes,
        repeats=repeats,
        refine=not no_refine,
        out_dir=out_dir or RESULTS,
        name=name,
        note=note,
    )
    command = (
        "sharpeyes bench " + shlex.join(sys.argv[2:]) if len(sys.argv) > 2 else ("sharpeyes bench")
    )
    try:
        document = run_benchmark(config, command, show_progress=not no_progress)
    except RuntimeError as error:
        fail(str(error), EXIT_RUNTIME)
    out = config.out_dir / config.name
    click.echo(f"report: {out}.md  data: {out}.json  plot: {out}.png")
    for rate, row in document["summary"].items():
        ours, base = row.get("sharpeyes", {}), row.get("baseline", {})
        click.echo(
            f"{rate}/s: SharpEyes max K {ours.get('max_k_passed', '–')}, baseline max K "
            f"{base.get('max_k_passed', '–')}; CPU-cost ratio "
            f"{_fmt(row.get('projected_ratio'))}, SharpEyes cost / floor "
            f"{_fmt(row.get('sharpeyes_cost_over_floor'))}{_range(row)}"
        )


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def _range(row: dict) -> str:
    """The range of SharpEyes' cost over the floor across its runs at its largest K."""
    spread = row.get("sharpeyes_cost_over_floor_range")
    runs = (row.get("sharpeyes") or {}).get("passed_at_max_k", 0)
    if not spread or runs < 2:
        return ""
    return f" (median of {runs} runs; {spread[0]:.2f}–{spread[1]:.2f}×)"
