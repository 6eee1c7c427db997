"""Alembic migrations: an empty database upgrades to a schema that matches the ORM, on
SQLite and PostgreSQL; data from revision 0001 survives the upgrade; downgrade works."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from api.db import make_engine, upgrade
from api.orm import Base


def schema_differences(engine) -> list:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def test_migrations_match_the_orm(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0001")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO cases (origin, title, state, severity, people_count, peak_count,"
                    " created_at, updated_at) VALUES ('alert', 'old case', 'reported', 'warning',"
                    " 3, 3, '2026-01-01 00:00:00+00:00', '2026-01-01 00:00:00+00:00')"
                )
            )
        upgrade(engine)
        assert schema_differences(engine) == []
        tables = set(inspect(engine).get_table_names())
        assert {"centres", "grid_cells", "units", "users", "cameras", "case_events"} <= tables
        with engine.connect() as connection:
            level = connection.execute(text("SELECT escalation_level FROM cases")).scalar_one()
        assert level == 0, "existing cases get the default escalation level"

        from alembic import command

        from api.db import alembic_config

        config = alembic_config(engine)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0001")
        assert "centres" not in set(inspect(engine).get_table_names())
        upgrade(engine)
        assert schema_differences(engine) == []
    finally:
        engine.dispose()
