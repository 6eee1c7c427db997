"""``sharpeyes users`` and ``sharpeyes org``: bootstrap and manage the API's database."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from sharpeyes.commands.common import CONFIG_OPTION, EXIT_BAD_INPUT, fail, load


def _sessions(config_path: Path):  # type: ignore[no-untyped-def]
    loaded = load(config_path)
    from api.db import make_engine, session_factory, upgrade

    config = loaded.config.api_config()
    engine = make_engine(config.database.url)
    upgrade(engine)
    return session_factory(engine)


@click.group()
def users() -> None:
    """API users: create the first admin, add operators, seed the demo users."""


@users.command("create")
@CONFIG_OPTION
@click.argument("username")
@click.option(
    "--role",
    type=click.Choice(["operator", "dispatcher", "integrator", "admin"]),
    required=True,
)
@click.option("--centre", "centre_code", help="Centre code the user is scoped to (admins: none).")
@click.option(
    "--password-env",
    default="SHARPEYES_PASSWORD",
    show_default=True,
    help="Environment variable holding the password (else you are prompted).",
)
@click.option("--name", "full_name", help="Full name shown in the audit trail.")
def users_create(
    config_path: Path,
    username: str,
    role: str,
    centre_code: str | None,
    password_env: str,
    full_name: str | None,
) -> None:
    """Add a user to the API's database (the first admin, typically)."""
    sessions = _sessions(config_path)
    from sqlalchemy import select

    from api.auth import create_user
    from api.orm import Centre

    password = os.environ.get(password_env) or click.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    with sessions() as session:
        centre_id = None
        if centre_code:
            centre_id = session.scalar(select(Centre.id).where(Centre.code == centre_code))
            if centre_id is None:
                codes = ", ".join(session.scalars(select(Centre.code).order_by(Centre.code)))
                fail(
                    f"--centre: no centre has code '{centre_code}' (known: {codes or 'none'})",
                    EXIT_BAD_INPUT,
                )
        elif role != "admin":
            fail(f"--centre: a {role} needs a centre; only admins are global", EXIT_BAD_INPUT)
        try:
            user = create_user(session, username, password, role, centre_id, full_name)
        except ValueError as error:
            fail(str(error), EXIT_BAD_INPUT)
        session.commit()
        click.echo(f"user '{user.username}' ({user.role}) created, id {user.id}")


@users.command("seed-demo")
@CONFIG_OPTION
@click.option("--password", default="sharpeyes-demo", show_default=True)
def users_seed_demo(config_path: Path, password: str) -> None:
    """Import the demo organisation and its users (admin, operator, dispatcher, …)."""
    sessions = _sessions(config_path)
    from api.seed import seed_demo

    with sessions() as session:
        seeded = seed_demo(session, password)
        session.commit()
    for user in seeded:
        state = "created" if user.created else "exists"
        click.echo(f"{user.username:12} {user.role:11} {user.centre or '(all)':26} {state}")


@click.group()
def org() -> None:
    """The linkage-centre organisation: district, streets, communities, grid cells, units."""


@org.command("import")
@CONFIG_OPTION
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def org_import(config_path: Path, path: Path) -> None:
    """Create or update the organisation from a YAML file (``district:`` at the top)."""
    import yaml
    from pydantic import ValidationError

    from api.organisation import import_organisation
    from api.settings import OrganisationSpec
    from sharpeyes.config import validation_problems

    sessions = _sessions(config_path)
    try:
        document = yaml.compose(path.read_text(encoding="utf-8"))
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        spec = OrganisationSpec.model_validate(data)
    except (OSError, yaml.YAMLError) as error:
        fail(f"{path}: {error}", EXIT_BAD_INPUT)
    except ValidationError as error:
        problems = validation_problems(error, OrganisationSpec, document)
        click.echo(f"{path}: {len(problems)} problem(s):", err=True)
        for problem in problems:
            click.echo(f"  - {problem}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    with sessions() as session:
        report = import_organisation(session, spec)
        session.commit()
    click.echo(
        f"{path}: {report.centres_created} centre(s) created, {report.centres_updated} updated, "
        f"{report.grid_cells} grid cell(s), {report.units_created} unit(s) created"
    )
