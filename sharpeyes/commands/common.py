"""Helpers shared by the subcommands: config loading, exit codes, signals."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import NoReturn

import click

from sharpeyes import logs
from sharpeyes.config import ConfigError, LoadedConfig, load_config

EXIT_RUNTIME = 1
EXIT_BAD_INPUT = 2

CONFIG_OPTION = click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="SHARPEYES_CONFIG",
    default="sharpeyes.yaml",
    show_default=True,
    help="The YAML config file (or set SHARPEYES_CONFIG).",
)


def load(config_path: Path) -> LoadedConfig:
    """Load and validate the config, or exit 2 with every problem and its field path."""
    try:
        loaded = load_config(config_path)
    except ConfigError as error:
        click.echo(error.render(), err=True)
        sys.exit(EXIT_BAD_INPUT)
    logs.configure(loaded.config.logging.level, loaded.config.logging.format)
    return loaded


def fail(message: str, code: int = EXIT_RUNTIME) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, for services that stop cleanly."""
    stop = threading.Event()

    def handler(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop
