"""the therapist's workspace: own settings, chat menu, notes between therapist and patient

Revision ID: 0016_workspace
Revises: 0002
Create Date: 2026-12-05 20:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_workspace"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("therapists", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("settings_done_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("menu_language", sa.String(length=8), nullable=True))
    op.create_table(
        "therapist_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("therapist_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=10), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["therapist_id"],
            ["therapists.id"],
            name=op.f("fk_therapist_notes_therapist_id_therapists"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["users.id"],
            name=op.f("fk_therapist_notes_patient_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_therapist_notes")),
    )
    with op.batch_alter_table("therapist_notes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_therapist_notes_pair", ["therapist_id", "patient_id", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_therapist_notes_patient_id"), ["patient_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("therapist_notes")
    with op.batch_alter_table("therapists", schema=None) as batch_op:
        batch_op.drop_column("menu_language")
        batch_op.drop_column("settings_done_at")
