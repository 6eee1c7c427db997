"""``sharpeyes models``: the known models, their cards and checksums, and export to ONNX."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sharpeyes.commands.common import EXIT_BAD_INPUT, EXIT_RUNTIME, fail


@click.group()
def models() -> None:
    """Model files: list them, show their cards, verify checksums, export ultralytics weights."""


@models.command("list")
def models_list() -> None:
    """The model cards and whether each file is present and verified."""
    from models.datafiles import DataFileError, DataFiles
    from models.registry import CARDS, DEFAULT_MODEL

    data = DataFiles.from_env()
    click.echo(f"{'name':30} {'layout':9} {'input':9} {'batch':8} {'license':11} file")
    for card in CARDS.values():
        try:
            data.path(card.file)
            status = "verified"
        except DataFileError:
            status = "missing or corrupt (sharpeyes models verify)"
        size = f"{card.input_size[0]}x{card.input_size[1]}"
        default = " (default)" if card.name == DEFAULT_MODEL else ""
        click.echo(
            f"{card.name:30} {card.layout:9} {size:9} "
            f"{'dynamic' if card.dynamic_batch else 'fixed 1':8} {card.license:11} "
            f"{status}{default}"
        )


@models.command("show")
@click.argument("name")
def models_show(name: str) -> None:
    """Print a model's card: source, licence, input size and format, classes."""
    from models.registry import CARDS, load_card_beside

    card = CARDS.get(name)
    if card is None and name.endswith(".onnx"):
        path = Path(name)
        if not path.is_file():
            fail(f"NAME: {path} does not exist", EXIT_BAD_INPUT)
        try:
            card = load_card_beside(path)
        except ValueError as error:
            fail(str(error), EXIT_BAD_INPUT)
        if card is None:
            fail(f"NAME: {path} has no model card beside it", EXIT_BAD_INPUT)
    if card is None:
        fail(f"NAME: unknown model '{name}'; known: {', '.join(CARDS)}", EXIT_BAD_INPUT)
    click.echo(card.render())


@models.command("verify")
@click.argument("targets", nargs=-1)
def models_verify(targets: tuple[str, ...]) -> None:
    """Check model files against their SHA-256: every bundled model (against SHA256SUMS in
    the data directory), or the given names and exported .onnx files (against their card).
    Exit 1 if any file fails, 2 for an unknown name."""
    from models.datafiles import DataFileError, DataFiles, sha256_of
    from models.registry import CARDS, load_card_beside

    data = DataFiles.from_env()
    failed = 0
    for target in targets or tuple(CARDS):
        if target in CARDS:
            try:
                path = data.path(CARDS[target].file)
                click.echo(f"ok      {target}  {path}")
            except DataFileError as error:
                failed += 1
                click.echo(f"FAILED  {target}: {error}", err=True)
            continue
        path = Path(target)
        if not path.is_file():
            fail(
                f"TARGETS: '{target}' is neither a known model ({', '.join(CARDS)}) nor an "
                "existing .onnx file",
                EXIT_BAD_INPUT,
            )
        try:
            card = load_card_beside(path)
        except ValueError as error:
            fail(str(error), EXIT_BAD_INPUT)
        if card is None or not card.sha256:
            fail(f"TARGETS: {path} has no model card with a SHA-256 beside it", EXIT_BAD_INPUT)
        actual = sha256_of(path)
        if actual == card.sha256:
            click.echo(f"ok      {card.name}  {path}")
        else:
            failed += 1
            click.echo(
                f"FAILED  {card.name}: {path} has SHA-256 {actual[:16]}…, its card says "
                f"{card.sha256[:16]}…: the file changed since export; export it again",
                err=True,
            )
    sys.exit(EXIT_RUNTIME if failed else 0)


@models.command("export")
@click.argument("weights", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/models"),
    show_default=True,
    help="Directory for NAME.onnx and NAME.card.json.",
)
@click.option("--name", help="Model name (default: the weights' file name).")
@click.option("--imgsz", type=int, default=640, show_default=True, help="Square input size.")
@click.option("--opset", type=int, default=None, help="ONNX opset (default: the pinned one, 17).")
@click.option(
    "--person-class",
    type=int,
    default=None,
    help="Index of the person class when the model's names do not say 'person'.",
)
def models_export(
    weights: Path,
    out_dir: Path,
    name: str | None,
    imgsz: int,
    opset: int | None,
    person_class: int | None,
) -> None:
    """Export ultralytics WEIGHTS (.pt) to ONNX with a dynamic batch axis, plus its card.

    Use the result with `model: {name: NAME, path: OUT/NAME.onnx}`; the card beside it
    supplies layout, input size and checksum. Needs the `export` extra (ultralytics, torch).
    """
    from models.export import DEFAULT_OPSET, ExportError, ExportInputError, export_ultralytics

    try:
        result = export_ultralytics(
            weights,
            out_dir,
            imgsz=imgsz,
            opset=opset or DEFAULT_OPSET,
            name=name,
            person_class=person_class,
        )
    except ExportInputError as error:
        fail(str(error), EXIT_BAD_INPUT)
    except ExportError as error:
        fail(str(error))
    card = result.card
    click.echo(f"exported {result.onnx} ({card.layout}, {imgsz}x{imgsz}, opset {card.opset})")
    click.echo(f"card     {result.card_path}")
    click.echo(f"use it:  model: {{name: {card.name}, path: {result.onnx}}}")
