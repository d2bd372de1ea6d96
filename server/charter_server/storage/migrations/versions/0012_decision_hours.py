"""Decisions per hour (``decision_hours``): what ``PreviewTerms`` replays proposed terms over.

Revision ID: 0012_decision_hours
Revises: 0011_transparency_log
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_decision_hours"
down_revision = "0011_transparency_log"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decision_hours",
        sa.Column("character_id", sa.String(40), nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("licensee_id", sa.String(40), nullable=False),
        sa.Column("context_digest", sa.LargeBinary(16), nullable=False),
        sa.Column("outcome", sa.String(400), nullable=False),
        sa.Column("context", sa.Text(), nullable=False),
        sa.Column("decisions", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "character_id", "hour", "licensee_id", "context_digest", "outcome", name=op.f("pk_decision_hours")
        ),
        sqlite_with_rowid=False,
    )
    op.create_index(op.f("ix_decision_hours_hour"), "decision_hours", ["hour"])


def downgrade() -> None:
    op.drop_index(op.f("ix_decision_hours_hour"), table_name="decision_hours")
    op.drop_table("decision_hours")
