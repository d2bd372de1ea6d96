"""The transparency log: pending entries, integrated entries, the Merkle tree as C2SP tiles, signed
checkpoints, the head of the tree with the sequencer's lease; and a purpose for every signing key
(grants and receipts, or the log's checkpoints).

Revision ID: 0011_transparency_log
Revises: 0010_offline
Create Date: 2026-12-06
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0011_transparency_log"
down_revision = "0010_offline"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("signing_keys") as table:
        # Every key before this migration signs grants and receipts.
        table.add_column(sa.Column("purpose", sa.String(24), nullable=False, server_default="grants"))
    op.create_table(
        # Entries appended in the transaction of the change they record, waiting for the sequencer.
        "log_pending",
        sa.Column("seq", _SEQ, autoincrement=True, nullable=False),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("receipt_digest", sa.LargeBinary(32), nullable=True),
        sa.Column("rights_holder_id", sa.String(40), nullable=False),
        sa.Column("licensee_id", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_log_pending")),
    )
    op.create_index("ix_log_pending_leaf_hash", "log_pending", ["leaf_hash"])
    op.create_index("ix_log_pending_receipt_digest", "log_pending", ["receipt_digest"])
    op.create_table(
        # Integrated entries: the bytes exactly as logged, never re-serialized.
        "log_entries",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("receipt_digest", sa.LargeBinary(32), nullable=True),
        sa.Column("rights_holder_id", sa.String(40), nullable=False),
        sa.Column("licensee_id", sa.String(40), nullable=False),
        sa.Column("integrate_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("idx", name=op.f("pk_log_entries")),
    )
    op.create_index("ix_log_entries_leaf_hash", "log_entries", ["leaf_hash"])
    op.create_index("ix_log_entries_receipt_digest", "log_entries", ["receipt_digest"])
    op.create_table(
        # The tree as C2SP tlog-tiles (charter.transparency.tiles): 256 hashes per full tile.
        "log_tiles",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hashes", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_log_tiles")),
    )
    op.create_table(
        "log_checkpoints",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("sign_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name=op.f("pk_log_checkpoints")),
    )
    head = op.create_table(
        # One row: the integrated tree's size and root, and which replica sequences until when (by
        # the database's clock).
        "log_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("lease_holder", sa.String(64), nullable=False),
        sa.Column("lease_until_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_head")),
    )
    op.bulk_insert(
        head,
        [{"id": 1, "tree_size": 0, "root_hash": hashlib.sha256().digest(), "lease_holder": "", "lease_until_ms": 0}],
    )


def downgrade() -> None:
    op.drop_table("log_head")
    op.drop_table("log_checkpoints")
    op.drop_table("log_tiles")
    op.drop_index("ix_log_entries_receipt_digest", table_name="log_entries")
    op.drop_index("ix_log_entries_leaf_hash", table_name="log_entries")
    op.drop_table("log_entries")
    op.drop_index("ix_log_pending_receipt_digest", table_name="log_pending")
    op.drop_index("ix_log_pending_leaf_hash", table_name="log_pending")
    op.drop_table("log_pending")
    with op.batch_alter_table("signing_keys") as table:
        table.drop_column("purpose")
