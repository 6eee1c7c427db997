"""The ``sharpeyes`` command.

Exit codes: 0 success, 1 a runtime failure (a server unreachable, a data file missing),
2 bad input (an invalid config field or command-line option) — the message names the field.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

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


def _load(config_path: Path) -> LoadedConfig:
    try:
        loaded = load_config(config_path)
    except ConfigError as error:
        click.echo(error.render(), err=True)
        sys.exit(EXIT_BAD_INPUT)
    logs.configure(loaded.config.logging.level, loaded.config.logging.format)
    return loaded


def _fail(message: str, code: int = EXIT_RUNTIME) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """SharpEyes: crowd-gathering detection for city camera networks."""


@main.command()
@CONFIG_OPTION
def run(config_path: Path) -> None:
    """Run a pipeline worker: cameras → detector → gathering rules → Redis alerts."""
    loaded = _load(config_path)
    from alerting.publisher import AlertPublisher
    from models.datafiles import DataFileError
    from models.onnx_detector import load_detector
    from pipeline.service import PipelineService

    config = loaded.config.pipeline_config()
    if not config.cameras:
        _fail(f"{config_path}: no cameras configured (add them under `cameras:`)", EXIT_BAD_INPUT)
    try:
        detector = load_detector(config.model)
    except DataFileError as error:
        _fail(str(error))
    publisher = AlertPublisher.from_settings(config.redis)
    service = PipelineService(config.cameras, detector, publisher, config.pipeline)
    service.run(_stop_on_signals())


@main.command()
@CONFIG_OPTION
@click.option("--host", help="Override api.host.")
@click.option("--port", type=click.IntRange(1, 65535), help="Override api.port.")
def api(config_path: Path, host: str | None, port: int | None) -> None:
    """Run the linkage-centre API (and its alert consumer)."""
    loaded = _load(config_path)
    import uvicorn

    from api.app import create_app

    config = loaded.config.api_config()
    app = create_app(config)
    uvicorn.run(
        app,
        host=host or config.http.host,
        port=port or config.http.port,
        log_config=None,
        access_log=False,
    )


@main.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="API port (0 picks a free one).",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=0,
    help="Stop after this many seconds (0: run until Ctrl-C).",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/demo"),
    show_default=True,
    help="Where the demo keeps its config, database and logs.",
)
def demo(port: int, duration: float, workdir: Path) -> None:
    """Everything on this machine: a sample clip as an RTSP camera, Redis, pipeline, API."""
    logs.configure("INFO")
    from sharpeyes.demo import DemoError, run_demo

    try:
        run_demo(port=port, duration=duration or None, workdir=workdir)
    except DemoError as error:
        _fail(str(error))


@main.group()
def config() -> None:
    """Inspect config files."""


@config.command("check")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def config_check(path: Path) -> None:
    """Validate a config file and summarise it (exit 2 naming each bad field)."""
    loaded = _load(path)
    cfg = loaded.config
    zones = sum(len(c.zones) for c in cfg.cameras)
    click.echo(
        f"{path}: OK — {len(cfg.cameras)} camera(s), {zones} zone(s), model {cfg.model.name}, "
        f"redis {cfg.redis.stream}, database {cfg.database.url.split(':', 1)[0]}"
    )
    for camera in cfg.cameras:
        click.echo(f"  {camera.id}: {camera.display_source()} ({len(camera.zones)} zone(s))")


@main.group()
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


if __name__ == "__main__":
    main()
