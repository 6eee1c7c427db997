"""organisation, users, cameras, case workflow, live feed

Centres, grid cells and units; users; the camera registry; the case audit trail,
dispatches, unit feedback and photos; persisted live-feed events.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 06:20:16.250592
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import api.timeutil

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "centres",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("tier", sa.String(length=16), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("created_at", api.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["centres.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
        sa.UniqueConstraint("parent_id", "name", name="uq_centres_parent_name"),
    )
    with op.batch_alter_table("centres", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_centres_parent_id"), ["parent_id"], unique=False)

    op.create_table(
        "feed_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", api.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("centre_id", sa.Integer(), nullable=True),
        sa.Column("routed_centre_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("feed_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feed_events_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_feed_events_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_feed_events_centre_id"), ["centre_id"], unique=False)

    op.create_table(
        "service_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "cameras",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("grid_cell", sa.String(length=100), nullable=False),
        sa.Column("centre_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", api.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", api.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["centre_id"],
            ["centres.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("cameras", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cameras_centre_id"), ["centre_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_cameras_grid_cell"), ["grid_cell"], unique=False)

    op.create_table(
        "grid_cells",
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("centre_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["centre_id"],
            ["centres.id"],
        ),
        sa.PrimaryKeyConstraint("code"),
    )
    with op.batch_alter_table("grid_cells", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_grid_cells_centre_id"), ["centre_id"], unique=False)

    op.create_table(
        "units",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("phone", sa.String(length=64), nullable=True),
        sa.Column("centre_id", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["centre_id"],
            ["centres.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("centre_id", "name", name="uq_units_centre_name"),
    )
    with op.batch_alter_table("units", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_units_centre_id"), ["centre_id"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("centre_id", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("created_at", api.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["centre_id"],
            ["centres.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_centre_id"), ["centre_id"], unique=False)

    op.create_table(
        "case_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("at", api.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_state", sa.String(length=32), nullable=True),
        sa.Column("to_state", sa.String(length=32), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_events_case_id"), ["case_id"], unique=False)

    op.create_table(
        "dispatches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("dispatched_at", api.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.Column("dispatched_by", sa.String(length=64), nullable=False),
        sa.Column("first_feedback_at", api.timeutil.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["units.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "unit_id", name="uq_dispatches_case_unit"),
    )
    with op.batch_alter_table("dispatches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dispatches_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_dispatches_unit_id"), ["unit_id"], unique=False)

    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("at", api.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["units.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_feedback_case_id"), ["case_id"], unique=False)

    op.create_table(
        "feedback_photos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feedback_id", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("at", api.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["feedback_id"], ["feedback.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("feedback_photos", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_feedback_photos_feedback_id"), ["feedback_id"], unique=False
        )

    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("description", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("created_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("centre_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("routed_centre_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("escalation_level", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("sla_started_at", api.timeutil.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("acknowledged_at", api.timeutil.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("dispatched_at", api.timeutil.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("in_progress_at", api.timeutil.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("resolved_at", api.timeutil.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("closed_at", api.timeutil.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("dismissed_at", api.timeutil.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("dismiss_reason", sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f("ix_cases_centre_id"), ["centre_id"], unique=False)
        batch_op.create_index("ix_cases_created_at", ["created_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_cases_routed_centre_id"), ["routed_centre_id"], unique=False
        )
        batch_op.create_index("ix_cases_state_sla", ["state", "sla_started_at"], unique=False)
        batch_op.create_foreign_key(
            "fk_cases_routed_centre_id", "centres", ["routed_centre_id"], ["id"]
        )
        batch_op.create_foreign_key("fk_cases_centre_id", "centres", ["centre_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_constraint("fk_cases_routed_centre_id", type_="foreignkey")
        batch_op.drop_constraint("fk_cases_centre_id", type_="foreignkey")
        batch_op.drop_index("ix_cases_state_sla")
        batch_op.drop_index(batch_op.f("ix_cases_routed_centre_id"))
        batch_op.drop_index("ix_cases_created_at")
        batch_op.drop_index(batch_op.f("ix_cases_centre_id"))
        batch_op.drop_column("dismiss_reason")
        batch_op.drop_column("dismissed_at")
        batch_op.drop_column("closed_at")
        batch_op.drop_column("resolved_at")
        batch_op.drop_column("in_progress_at")
        batch_op.drop_column("dispatched_at")
        batch_op.drop_column("acknowledged_at")
        batch_op.drop_column("sla_started_at")
        batch_op.drop_column("escalation_level")
        batch_op.drop_column("routed_centre_id")
        batch_op.drop_column("centre_id")
        batch_op.drop_column("created_by")
        batch_op.drop_column("description")

    with op.batch_alter_table("feedback_photos", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_photos_feedback_id"))

    op.drop_table("feedback_photos")
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_case_id"))

    op.drop_table("feedback")
    with op.batch_alter_table("dispatches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dispatches_unit_id"))
        batch_op.drop_index(batch_op.f("ix_dispatches_case_id"))

    op.drop_table("dispatches")
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_events_case_id"))

    op.drop_table("case_events")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_centre_id"))

    op.drop_table("users")
    with op.batch_alter_table("units", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_units_centre_id"))

    op.drop_table("units")
    with op.batch_alter_table("grid_cells", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_grid_cells_centre_id"))

    op.drop_table("grid_cells")
    with op.batch_alter_table("cameras", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cameras_grid_cell"))
        batch_op.drop_index(batch_op.f("ix_cameras_centre_id"))

    op.drop_table("cameras")
    op.drop_table("service_secrets")
    with op.batch_alter_table("feed_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feed_events_centre_id"))
        batch_op.drop_index(batch_op.f("ix_feed_events_case_id"))
        batch_op.drop_index(batch_op.f("ix_feed_events_at"))

    op.drop_table("feed_events")
    with op.batch_alter_table("centres", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_centres_parent_id"))

    op.drop_table("centres")
