"""Exercise programmes: programmes, their exercises, and every change with its reason

Revision ID: 0017_programmes
Revises: 0016_workspace
Create Date: 2026-12-05 20:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_programmes"
down_revision: str | None = "0016_workspace"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "programmes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("starter", sa.String(length=32), nullable=True),
        sa.Column("set_by", sa.String(length=128), nullable=True),
        sa.Column("auto_progress", sa.Boolean(), nullable=False),
        sa.Column("next_review_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_programmes_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_programmes")),
        sa.UniqueConstraint("user_id", name=op.f("uq_programmes_user_id")),
    )
    op.create_index(
        op.f("ix_programmes_next_review_at"), "programmes", ["next_review_at"], unique=False
    )
    op.create_table(
        "programme_exercises",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("programme_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("exercise", sa.String(length=40), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("sets", sa.SmallInteger(), nullable=False),
        sa.Column("amount", sa.SmallInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["programme_id"],
            ["programmes.id"],
            name=op.f("fk_programme_exercises_programme_id_programmes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_programme_exercises_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_programme_exercises")),
        sa.UniqueConstraint("programme_id", "exercise", name="uq_programme_exercise"),
    )
    op.create_index(
        op.f("ix_programme_exercises_programme_id"),
        "programme_exercises",
        ["programme_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_programme_exercises_user_id"), "programme_exercises", ["user_id"], unique=False
    )
    op.create_table(
        "programme_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("by", sa.String(length=12), nullable=False),
        sa.Column("by_name", sa.String(length=128), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("reason", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_programme_changes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_programme_changes")),
    )
    op.create_index(
        "ix_programme_changes_user_created",
        "programme_changes",
        ["user_id", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_programme_changes_user_created", table_name="programme_changes")
    op.drop_table("programme_changes")
    op.drop_index(op.f("ix_programme_exercises_user_id"), table_name="programme_exercises")
    op.drop_index(op.f("ix_programme_exercises_programme_id"), table_name="programme_exercises")
    op.drop_table("programme_exercises")
    op.drop_index(op.f("ix_programmes_next_review_at"), table_name="programmes")
    op.drop_table("programmes")
