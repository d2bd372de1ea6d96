"""Prompt screening: a character's canonical name may be marked ambiguous, and characters have
descriptive keyword sets. (Derived readings are aliases with ``derived`` set in the aliases JSON,
which needs no change of schema.)

Revision ID: 0008_screening
Revises: 0007_serving
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_screening"
down_revision = "0007_serving"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("characters") as table:
        table.add_column(sa.Column("canonical_name_ambiguous", sa.Boolean(), nullable=False, server_default=sa.false()))
        table.add_column(sa.Column("keyword_sets", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
    with op.batch_alter_table("character_names") as table:
        # The look-alike (UTS #39) key of each name, so that staff can list names that would merge.
        table.add_column(sa.Column("skeleton", sa.String(400), nullable=True))
        table.create_index("ix_character_names_skeleton", ["skeleton"])


def downgrade() -> None:
    with op.batch_alter_table("character_names") as table:
        table.drop_index("ix_character_names_skeleton")
        table.drop_column("skeleton")
    with op.batch_alter_table("characters") as table:
        table.drop_column("keyword_sets")
        table.drop_column("canonical_name_ambiguous")
