"""The habit over weeks: silence and absence on users, nudge and "did you do it?" on
check-ins, and habit_events (away / weekly / returned)

Revision ID: 0014_habit
Revises: 0017_programmes
Create Date: 2026-12-05 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_habit"
down_revision: str | None = "0017_programmes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("silent_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("silent_prompts", sa.SmallInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("absence", sa.String(length=8), nullable=True))
        batch_op.add_column(
            sa.Column("absence_prompted_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("lighter_next", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("checkins", schema=None) as batch_op:
        batch_op.add_column(sa.Column("nudge_due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("done_asked_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_checkins_nudge_due_at", ["nudge_due_at"], unique=False)
    op.create_table(
        "habit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=16), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_habit_events_user_id_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_habit_events"),
    )
    op.create_index("ix_habit_events_user_at", "habit_events", ["user_id", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_habit_events_user_at", table_name="habit_events")
    op.drop_table("habit_events")
    with op.batch_alter_table("checkins", schema=None) as batch_op:
        batch_op.drop_index("ix_checkins_nudge_due_at")
        batch_op.drop_column("done_asked_at")
        batch_op.drop_column("nudge_due_at")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("lighter_next")
        batch_op.drop_column("absence_prompted_at")
        batch_op.drop_column("absence")
        batch_op.drop_column("silent_prompts")
        batch_op.drop_column("silent_since")
