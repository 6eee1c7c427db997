"""The ``sharpeyes`` command.

Exit codes: 0 success, 1 a runtime failure (a server unreachable, a data file missing),
2 bad input (an invalid config field or command-line option) — the message names the field.
Each topic's subcommands live in ``sharpeyes.commands``.
"""

from __future__ import annotations

import click

from sharpeyes.commands import bench, cameras, config, models, services, users
from sharpeyes.commands.eval import evaluate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """SharpEyes: crowd-gathering detection for city camera networks."""


main.add_command(services.run)
main.add_command(services.api)
main.add_command(services.demo)
main.add_command(config.config)
main.add_command(models.models)
main.add_command(cameras.cameras)
main.add_command(users.users)
main.add_command(users.org)
main.add_command(evaluate)
main.add_command(bench.bench)


if __name__ == "__main__":
    main()
