"""Usage metering and statements: usage records, uses reported per receipt, closed statement periods;
and a grant's lifetime cap on uses, with its counter.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from charter_server.storage.tables import SeqType, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_records",
        sa.Column("seq", SeqType, nullable=False, autoincrement=True),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("licensee_id", sa.String(40), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("receipt_id", sa.String(40), nullable=False),
        sa.Column("character_id", sa.String(40), nullable=False),
        sa.Column("rights_holder_id", sa.String(40), nullable=False),
        sa.Column("grant_id", sa.String(40), nullable=False),
        sa.Column("uses", sa.BigInteger(), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("revenue_minor", sa.BigInteger(), nullable=False),
        sa.Column("revenue_share_bps", sa.Integer(), nullable=False),
        sa.Column("fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("happen_time", UTCDateTime(), nullable=False),
        sa.Column("happen_period", sa.String(7), nullable=False),
        sa.Column("statement_period", sa.String(7), nullable=False),
        sa.Column("accept_time", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_usage_records")),
        sa.UniqueConstraint("id", name=op.f("uq_usage_records_id")),
        sa.UniqueConstraint("licensee_id", "idempotency_key", name=op.f("uq_usage_records_licensee_id")),
    )
    op.create_index(op.f("ix_usage_records_receipt_id"), "usage_records", ["receipt_id"])
    # Statements read by rights holder and period (a month) or by rights holder and time (a range).
    op.create_index("ix_usage_records_statement", "usage_records", ["rights_holder_id", "statement_period"])
    op.create_index("ix_usage_records_happened", "usage_records", ["rights_holder_id", "happen_time"])
    op.create_table(
        "receipt_uses",
        sa.Column("receipt_id", sa.String(40), nullable=False),
        sa.Column("character_id", sa.String(40), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("receipt_id", "character_id", name=op.f("pk_receipt_uses")),
    )
    op.create_table(
        "statement_closures",
        sa.Column("rights_holder_id", sa.String(40), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("close_time", UTCDateTime(), nullable=False),
        sa.Column("closed_by_key_id", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("rights_holder_id", "period", name=op.f("pk_statement_closures")),
    )
    with op.batch_alter_table("grants") as table:
        table.add_column(sa.Column("max_uses", sa.BigInteger(), nullable=True))
    op.create_table(
        "grant_uses",
        sa.Column("grant_id", sa.String(40), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("grant_id", name=op.f("pk_grant_uses")),
    )


def downgrade() -> None:
    op.drop_table("grant_uses")
    with op.batch_alter_table("grants") as table:
        table.drop_column("max_uses")
    op.drop_table("statement_closures")
    op.drop_table("receipt_uses")
    op.drop_index("ix_usage_records_happened", table_name="usage_records")
    op.drop_index("ix_usage_records_statement", table_name="usage_records")
    op.drop_index(op.f("ix_usage_records_receipt_id"), table_name="usage_records")
    op.drop_table("usage_records")
