"""``sharpeyes models``: the known models, their files and checksums."""

from __future__ import annotations

import sys

import click

from sharpeyes.commands.common import EXIT_RUNTIME


@click.group()
def models() -> None:
    """Model files: list the known models and verify their checksums."""


@models.command("list")
def models_list() -> None:
    """The model cards and whether each file is present and verified."""
    from models.datafiles import DataFileError, DataFiles
    from models.registry import CARDS

    data = DataFiles.from_env()
    for card in CARDS.values():
        try:
            data.path(card.file)
            status = "verified"
        except DataFileError:
            status = "missing or corrupt"
        click.echo(
            f"{card.name:28} {card.layout:6} {card.input_size[0]}x{card.input_size[1]:<5} "
            f"{'dynamic' if card.dynamic_batch else 'batch 1':8} {card.license:11} {status}"
        )


@models.command("verify")
def models_verify() -> None:
    """Check every known model file against SHA256SUMS (exit 1 on any failure)."""
    from models.datafiles import DataFileError, DataFiles
    from models.registry import CARDS

    data = DataFiles.from_env()
    failed = 0
    for card in CARDS.values():
        try:
            path = data.path(card.file)
            click.echo(f"ok      {card.name}  {path}")
        except DataFileError as error:
            failed += 1
            click.echo(f"FAILED  {card.name}: {error}", err=True)
    sys.exit(EXIT_RUNTIME if failed else 0)
