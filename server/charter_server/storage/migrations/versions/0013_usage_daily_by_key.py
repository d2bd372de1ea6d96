"""The daily roll-ups per character (``usage_daily_characters``) and per licensee
(``usage_daily_licensees``) that usage series over all of a rights holder's characters or licensees
read, filled from ``usage_daily``.

``usage_daily`` has a row per day, character and licensee, so a year of a busy catalogue is
hundreds of thousands of rows; a series per character needs only one row per day and character,
and one per licensee only one per day and licensee.

Revision ID: 0013_usage_daily_by_key
Revises: 0012_decision_hours
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_usage_daily_by_key"
down_revision = "0012_decision_hours"
branch_labels = None
depends_on = None

# (table, the key column kept from usage_daily)
_ROLL_UPS = (("usage_daily_characters", "character_id"), ("usage_daily_licensees", "licensee_id"))


def upgrade() -> None:
    for table, key in _ROLL_UPS:
        op.create_table(
            table,
            sa.Column("rights_holder_id", sa.String(40), nullable=False),
            sa.Column("day", sa.String(10), nullable=False),
            sa.Column(key, sa.String(40), nullable=False),
            sa.Column("records", sa.BigInteger(), nullable=False),
            sa.Column("uses", sa.BigInteger(), nullable=False),
            sa.Column("duration_ms", sa.BigInteger(), nullable=False),
            # Days last: a series' days are one range of the key, and summing per series walks the
            # key in order (on SQLite, whose rows are stored in the key's order, with no sort).
            sa.PrimaryKeyConstraint("rights_holder_id", key, "day", name=op.f(f"pk_{table}")),
            sqlite_with_rowid=False,
        )
        groups = f"rights_holder_id, {key}, day"
        op.execute(
            f"INSERT INTO {table} ({groups}, records, uses, duration_ms) "  # noqa: S608 - fixed SQL
            f"SELECT {groups}, sum(records), sum(uses), sum(duration_ms) FROM usage_daily GROUP BY {groups}"
        )


def downgrade() -> None:
    for table, _key in reversed(_ROLL_UPS):
        op.drop_table(table)
