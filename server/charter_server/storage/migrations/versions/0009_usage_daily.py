"""The daily roll-up of usage records that usage series read (``usage_daily``), filled from the
records already accepted.

Revision ID: 0009_usage_daily
Revises: 0008_screening
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_usage_daily"
down_revision = "0008_screening"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_daily",
        sa.Column("rights_holder_id", sa.String(40), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("character_id", sa.String(40), nullable=False),
        sa.Column("licensee_id", sa.String(40), nullable=False),
        sa.Column("records", sa.BigInteger(), nullable=False),
        sa.Column("uses", sa.BigInteger(), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("rights_holder_id", "day", "character_id", "licensee_id", name=op.f("pk_usage_daily")),
        # SQLite: rows stored in key order, so a range of days is one pass (see tables.UsageDailyRow).
        sqlite_with_rowid=False,
    )
    # SQLite keeps times as "YYYY-MM-DD HH:MM:SS[.ffffff]" text in UTC; PostgreSQL as timestamptz.
    if op.get_bind().dialect.name == "postgresql":
        day = "to_char(happen_time AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    else:
        day = "substr(happen_time, 1, 10)"
    columns = "rights_holder_id, day, character_id, licensee_id, records, uses, duration_ms"
    sums = f"rights_holder_id, {day}, character_id, licensee_id, count(*), sum(uses), sum(duration_ms)"
    groups = f"rights_holder_id, {day}, character_id, licensee_id"
    op.execute(f"INSERT INTO usage_daily ({columns}) SELECT {sums} FROM usage_records GROUP BY {groups}")  # noqa: S608 - fixed SQL


def downgrade() -> None:
    op.drop_table("usage_daily")
