"""``sharpeyes config``: inspect config files."""

from __future__ import annotations

from pathlib import Path

import click

from sharpeyes.commands.common import load


@click.group()
def config() -> None:
    """Inspect config files."""


@config.command("check")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def config_check(path: Path) -> None:
    """Validate a config file and summarise it (exit 2 naming each bad field)."""
    loaded = load(path)
    cfg = loaded.config
    zones = sum(len(c.zones) for c in cfg.cameras)
    click.echo(
        f"{path}: OK — {len(cfg.cameras)} camera(s), {zones} zone(s), model {cfg.model.name}, "
        f"redis {cfg.redis.stream}, database {cfg.database.url.split(':', 1)[0]}"
    )
    for camera in cfg.cameras:
        click.echo(f"  {camera.id}: {camera.display_source()} ({len(camera.zones)} zone(s))")
