"""The log entries found by leaf hash and by receipt digest through indexes of the hashes' first 4
bytes (``substr(column, 1, 4)``) instead of the whole 32 bytes.

Every integrated entry inserts a random key into both indexes: with whole hashes they grow by
about 45 bytes per entry each on SQLite, so past a few ten thousand entries each batch of the
sequencer touches (reads, dirties, writes to the WAL and checkpoints) a page of each for most of
its entries. A 4-byte key makes them about a third as large; a lookup reads the few entries whose
hash starts the same way (one in 4 billion per entry of the log) and keeps those whose whole hash
matches (`storage.transparency`).

Revision ID: 0014_log_lookup_prefixes
Revises: 0013_usage_daily_by_key
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_log_lookup_prefixes"
down_revision = "0013_usage_daily_by_key"
branch_labels = None
depends_on = None

_COLUMNS = ("leaf_hash", "receipt_digest")


def upgrade() -> None:
    for column in _COLUMNS:
        op.drop_index(f"ix_log_entries_{column}", table_name="log_entries")
        # The same expression as the lookups' (`storage.log_tables.LOOKUP_PREFIX_BYTES`): both
        # databases use an expression index only for that very expression with constant arguments.
        op.create_index(f"ix_log_entries_{column}_prefix", "log_entries", [sa.text(f"substr({column}, 1, 4)")])


def downgrade() -> None:
    for column in _COLUMNS:
        op.drop_index(f"ix_log_entries_{column}_prefix", table_name="log_entries")
        op.create_index(f"ix_log_entries_{column}", "log_entries", [column])
