"""Admin commands: create the first admin, import the organisation, seed the demo users."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from api.auth import authenticate
from api.db import make_engine, session_factory
from api.orm import Centre, GridCell, Unit
from sharpeyes.cli import main

ORGANISATION = """
district:
  name: Haizhu District
  code: hz
  units: [{name: District patrol, kind: joint_patrol}]
  children:
    - name: Binjiang Street
      code: hz.bj
      units: [{name: Binjiang police station, kind: police}]
      children:
        - name: Riverside Community
          code: hz.bj.rs
          grid_cells: [BJ-07-03, BJ-07-04]
          units: [{name: Riverside grid workers, kind: grid_workers}]
"""


def test_users_and_organisation_commands(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    config = tmp_path / "config.yaml"
    config.write_text(f"database: {{url: 'sqlite:///{db}'}}\n")
    runner = CliRunner()

    org = tmp_path / "org.yaml"
    org.write_text(ORGANISATION)
    imported = runner.invoke(main, ["org", "import", "-c", str(config), str(org)])
    assert imported.exit_code == 0, imported.output
    assert "3 centre(s) created" in imported.output
    again = runner.invoke(main, ["org", "import", "-c", str(config), str(org)])
    assert "0 centre(s) created, 3 updated" in again.output

    bad = tmp_path / "bad.yaml"
    bad.write_text("district:\n  name: X\n  grid_cells: [A]\n  colour: red\n")
    refused = runner.invoke(main, ["org", "import", "-c", str(config), str(bad)])
    assert refused.exit_code == 2
    assert "district.colour (line 4): unknown field 'colour'" in refused.output

    admin = runner.invoke(
        main,
        ["users", "create", "-c", str(config), "chief", "--role", "admin"],
        env={"SHARPEYES_PASSWORD": "chief-password"},
    )
    assert admin.exit_code == 0, admin.output
    op = runner.invoke(
        main,
        ["users", "create", "-c", str(config), "op1", "--role", "operator", "--centre", "nope"],
        env={"SHARPEYES_PASSWORD": "op1-password"},
    )
    assert op.exit_code == 2 and "no centre has code 'nope'" in op.output and "hz.bj" in op.output
    op = runner.invoke(
        main,
        ["users", "create", "-c", str(config), "op1", "--role", "operator", "--centre", "hz.bj"],
        env={"SHARPEYES_PASSWORD": "op1-password"},
    )
    assert op.exit_code == 0, op.output
    seeded = runner.invoke(main, ["users", "seed-demo", "-c", str(config)])
    assert seeded.exit_code == 0 and "operator" in seeded.output

    sessions = session_factory(make_engine(f"sqlite:///{db}"))
    with sessions() as session:
        assert authenticate(session, "chief", "chief-password") is not None
        assert authenticate(session, "chief", "wrong-password") is None
        community = session.scalar(select(Centre).where(Centre.code == "hz.bj.rs"))
        assert community.tier == "community"
        assert session.get(GridCell, "BJ-07-04").centre_id == community.id
        assert (
            session.scalar(select(Unit.kind).where(Unit.name == "Binjiang police station"))
            == "police"
        )
        assert session.scalar(select(Centre.id).where(Centre.code == "demo.riverside")) is not None
