"""Offline-first generation: licensee keys for decision records, and quota leases.

Revision ID: 0010_offline
Revises: 0009_usage_daily
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from charter_server.storage.tables import SeqType, UTCDateTime

revision = "0010_offline"
down_revision = "0009_usage_daily"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "licensee_keys",
        sa.Column("seq", SeqType, primary_key=True, autoincrement=True),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("licensee_id", sa.String(40), nullable=False),
        sa.Column("public_key", sa.LargeBinary(32), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("activate_time", UTCDateTime(), nullable=False),
        sa.Column("retire_time", UTCDateTime(), nullable=True),
        sa.Column("revoke_time", UTCDateTime(), nullable=True),
        sa.Column("revoke_reason", sa.String(500), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_licensee_keys")),
        sa.UniqueConstraint("key_id", name=op.f("uq_licensee_keys_key_id")),
        sa.UniqueConstraint("public_key", name=op.f("uq_licensee_keys_public_key")),
    )
    op.create_index(op.f("ix_licensee_keys_licensee_id"), "licensee_keys", ["licensee_id"])
    op.create_table(
        "quota_leases",
        sa.Column("lease_id", sa.String(40), nullable=False),
        sa.Column("licensee_id", sa.String(40), nullable=False),
        sa.Column("character_id", sa.String(40), nullable=False),
        sa.Column("grant_id", sa.String(40), nullable=False),
        sa.Column("uses", sa.BigInteger(), nullable=False),
        sa.Column("reported", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("day_period", sa.String(16), nullable=False),
        sa.Column("month_period", sa.String(16), nullable=False),
        sa.Column("capped", sa.Boolean(), nullable=False),
        sa.Column("create_time", UTCDateTime(), nullable=False),
        sa.Column("expire_time", UTCDateTime(), nullable=False),
        sa.Column("report_deadline", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("lease_id", name=op.f("pk_quota_leases")),
    )
    op.create_index(op.f("ix_quota_leases_licensee_id"), "quota_leases", ["licensee_id"])
    op.create_index("ix_quota_leases_reclaim", "quota_leases", ["state", "report_deadline"])


def downgrade() -> None:
    op.drop_index("ix_quota_leases_reclaim", table_name="quota_leases")
    op.drop_index(op.f("ix_quota_leases_licensee_id"), table_name="quota_leases")
    op.drop_table("quota_leases")
    op.drop_index(op.f("ix_licensee_keys_licensee_id"), table_name="licensee_keys")
    op.drop_table("licensee_keys")
