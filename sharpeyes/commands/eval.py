"""``sharpeyes eval``: count accuracy and gathering episodes measured on annotated footage."""

from __future__ import annotations

from pathlib import Path

import click

from sharpeyes.commands.common import EXIT_BAD_INPUT, fail


def _size(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not WIDTHxHEIGHT, e.g. 640x480") from None
    if width < 32 or height < 32:
        raise click.BadParameter(f"{value!r}: both sides must be at least 32 pixels")
    return width, height


def _polygon(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> list[tuple[float, float]] | None:
    if value is None:
        return None
    try:
        points = [tuple(float(v) for v in pair.split(",")) for pair in value.split()]
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: give the zone as 'x,y x,y x,y ...' in 0..1 image fractions"
        ) from None
    if any(len(p) != 2 for p in points):
        raise click.BadParameter(f"{value!r}: every point is 'x,y'")
    from camera_adapters.zone_spec import polygon_problems

    problem = polygon_problems(points)  # type: ignore[arg-type]
    if problem:
        raise click.BadParameter(problem)
    return points  # type: ignore[return-value]


@click.command("eval")
@click.argument("footage", type=click.Path(path_type=Path))
@click.option(
    "--annotations",
    "-a",
    required=True,
    type=click.Path(path_type=Path),
    help="Ground truth: MOT Challenge gt.txt, a CSV of 'frame,count', or the Mall JSON.",
)
@click.option(
    "--format",
    "annotation_format",
    type=click.Choice(["auto", "mot", "csv", "mall-json"]),
    default="auto",
    show_default=True,
    help="Annotation format (auto: by file extension).",
)
@click.option("--fps", type=click.FloatRange(min=0.01), help="Frame rate of a frames folder.")
@click.option(
    "--analysis-fps",
    type=click.FloatRange(min=0.01),
    help="Analyse this many annotated frames per second (default: every annotated frame).",
)
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N frames.")
@click.option("--model", default=None, help="Model card (see `sharpeyes models list`).")
@click.option("--input-size", callback=_size, help="Model input WIDTHxHEIGHT (dynamic models).")
@click.option("--score", type=click.FloatRange(0.01, 0.99), default=0.3, show_default=True)
@click.option(
    "--tile-frame",
    callback=_size,
    help="Tiled inference: analyse frames at WIDTHxHEIGHT, cut into model-sized tiles.",
)
@click.option("--tile-size", callback=_size, help="Tile WIDTHxHEIGHT (default: model input).")
@click.option("--tile-overlap", type=click.FloatRange(0.0, 0.89), default=0.25, show_default=True)
@click.option("--no-full-frame", is_flag=True, help="Tiles only, no whole-frame pass.")
@click.option(
    "--zone", callback=_polygon, help="Count inside this polygon 'x,y x,y ...' (default: all)."
)
@click.option("--min-people", type=int, default=20, show_default=True)
@click.option("--min-duration", type=float, default=30.0, show_default=True, help="Seconds.")
@click.option("--min-fraction", type=float, default=0.8, show_default=True)
@click.option("--exit-people", type=int, help="Ends below this (default: 80 % of min-people).")
@click.option("--clear-after", type=float, default=30.0, show_default=True, help="Seconds.")
@click.option("--sudden-rise", type=int, help="Sudden rule: this many more people …")
@click.option("--sudden-within", type=float, default=20.0, show_default=True, help="… within s.")
@click.option("--sudden-hold", type=float, default=5.0, show_default=True, help="Seconds.")
@click.option("--batch", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/eval"),
    show_default=True,
    help="Folder for the report (.md, .json, .csv, .png).",
)
@click.option("--name", help="Report file name (default: from footage and detector).")
def evaluate(
    footage: Path,
    annotations: Path,
    annotation_format: str,
    fps: float | None,
    analysis_fps: float | None,
    limit: int | None,
    model: str | None,
    input_size: tuple[int, int] | None,
    score: float,
    tile_frame: tuple[int, int] | None,
    tile_size: tuple[int, int] | None,
    tile_overlap: float,
    no_full_frame: bool,
    zone: list[tuple[float, float]] | None,
    min_people: int,
    min_duration: float,
    min_fraction: float,
    exit_people: int | None,
    clear_after: float,
    sudden_rise: int | None,
    sudden_within: float,
    sudden_hold: float,
    batch: int,
    out: Path,
    name: str | None,
) -> None:
    """Run detector + counter + gathering rules over annotated FOOTAGE (a video or a folder
    of frames) and report count MAE/RMSE, episode precision/recall and a count plot.

    \b
    Example (the Mall development set, played at its 2 fps):
      sharpeyes eval ../shared/mall/frames -a ../shared/mall/mall_gt_dev.json --fps 2 \\
        --min-people 30 --min-duration 5 --clear-after 3
    """
    from pydantic import ValidationError

    from camera_adapters.zone_spec import GatheringThresholds, SuddenRise
    from models.datafiles import DataFileError
    from models.onnx_detector import load_detector
    from models.registry import DEFAULT_MODEL
    from models.settings import DetectorSettings
    from models.tiling import TilingSettings, with_tiling
    from sharpeyes.evaluation.annotations import AnnotationError
    from sharpeyes.evaluation.footage import FootageError
    from sharpeyes.evaluation.runner import (
        WHOLE_FRAME,
        EvalInputError,
        EvalOptions,
        run_eval,
        write_report,
    )

    try:
        thresholds = GatheringThresholds(
            min_people=min_people,
            min_duration_s=min_duration,
            min_fraction=min_fraction,
            exit_people=exit_people,
            clear_after_s=clear_after,
            sudden=(
                SuddenRise(rise_people=sudden_rise, within_s=sudden_within, hold_s=sudden_hold)
                if sudden_rise
                else None
            ),
        )
        tiling = (
            TilingSettings(
                frame_size=tile_frame,
                tile_size=tile_size,
                overlap=tile_overlap,
                full_frame=not no_full_frame,
            )
            if tile_frame
            else None
        )
        settings = DetectorSettings(
            name=model or DEFAULT_MODEL,
            input_size=input_size,
            score_threshold=score,
            tiling=tiling,
        )
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}" for e in error.errors()
        )
        fail(f"bad evaluation options: {problems}", EXIT_BAD_INPUT)
    try:
        detector = with_tiling(load_detector(settings), settings.tiling)
    except DataFileError as error:
        fail(str(error))
    options = EvalOptions(
        footage=footage,
        annotations=annotations,
        thresholds=thresholds,
        annotation_format=annotation_format,  # type: ignore[arg-type]
        fps=fps,
        analysis_fps=analysis_fps,
        limit=limit,
        zone=zone or list(WHOLE_FRAME),
        batch=batch,
    )

    def progress(done: int, total: int) -> None:
        if done == total or done % (batch * 10) == 0:
            click.echo(f"  {done}/{total} frames", err=True)

    try:
        result = run_eval(options, detector, progress=progress)
    except (AnnotationError, FootageError, EvalInputError) as error:
        fail(str(error), EXIT_BAD_INPUT)
    size = f"{detector.input_size[0]}x{detector.input_size[1]}"
    report_name = name or f"{footage.stem or footage.name}-{detector.name}-{size}"
    files = write_report(result, out, report_name)
    counts, episodes = result.counts, result.episodes

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    click.echo(
        f"{result.detector} @ {size}: {counts.frames} frames, count MAE {counts.mae:.2f}, "
        f"RMSE {counts.rmse:.2f}, bias {counts.bias:+.2f} (true mean {counts.true_mean:.1f}); "
        f"episodes: {episodes.true} true, {episodes.predicted} predicted, precision "
        f"{fmt(episodes.precision)}, recall {fmt(episodes.recall)}; "
        f"detector {result.ms_per_frame:.1f} ms/frame"
    )
    click.echo(f"report: {files['summary']} (plot {files['plot']})")
