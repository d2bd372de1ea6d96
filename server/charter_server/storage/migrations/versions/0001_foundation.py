"""Foundation: rights holders, licensees, API keys and idempotent request records.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from charter_server.storage.tables import SeqType, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _lifecycle_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("create_time", UTCDateTime(), nullable=False),
        sa.Column("update_time", UTCDateTime(), nullable=False),
        sa.Column("archive_time", UTCDateTime(), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "rights_holders",
        sa.Column("seq", SeqType, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("legal_name", sa.String(300), nullable=False),
        sa.Column("contact_email", sa.String(254), nullable=False),
        sa.Column("revenue_share_account", sa.String(200), nullable=False),
        *_lifecycle_columns(),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_rights_holders")),
        sa.UniqueConstraint("id", name=op.f("uq_rights_holders_id")),
    )
    op.create_index(op.f("ix_rights_holders_state"), "rights_holders", ["state"])
    op.create_table(
        "licensees",
        sa.Column("seq", SeqType, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("legal_name", sa.String(300), nullable=False),
        sa.Column("contact_email", sa.String(254), nullable=False),
        sa.Column("platform", sa.String(63), nullable=False),
        *_lifecycle_columns(),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_licensees")),
        sa.UniqueConstraint("id", name=op.f("uq_licensees_id")),
    )
    op.create_index(op.f("ix_licensees_state"), "licensees", ["state"])
    op.create_index(op.f("ix_licensees_platform"), "licensees", ["platform"])
    op.create_table(
        "api_keys",
        sa.Column("seq", SeqType, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("rights_holder_id", sa.String(40), nullable=True),
        sa.Column("licensee_id", sa.String(40), nullable=True),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("expire_time", UTCDateTime(), nullable=True),
        sa.Column("creator_key_id", sa.String(40), nullable=False),
        sa.Column("create_time", UTCDateTime(), nullable=False),
        sa.Column("revoke_time", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("id", name=op.f("uq_api_keys_id")),
        sa.ForeignKeyConstraint(
            ["rights_holder_id"], ["rights_holders.id"], name=op.f("fk_api_keys_rights_holder_id_rights_holders")
        ),
        sa.ForeignKeyConstraint(["licensee_id"], ["licensees.id"], name=op.f("fk_api_keys_licensee_id_licensees")),
    )
    op.create_index(op.f("ix_api_keys_role"), "api_keys", ["role"])
    op.create_table(
        "request_records",
        sa.Column("caller_key_id", sa.String(40), nullable=False),
        sa.Column("method", sa.String(100), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(40), nullable=False),
        sa.Column("create_time", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("caller_key_id", "method", "request_id", name=op.f("pk_request_records")),
    )


def downgrade() -> None:
    op.drop_table("request_records")
    op.drop_table("api_keys")
    op.drop_table("licensees")
    op.drop_table("rights_holders")
