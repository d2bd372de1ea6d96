"""Signing keys, grants, the revocation log and its counter.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from charter_server.storage.tables import SeqType, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("seq", SeqType, primary_key=True, autoincrement=True),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("encrypted_private_key", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("activate_time", UTCDateTime(), nullable=False),
        sa.Column("retire_time", UTCDateTime(), nullable=True),
        sa.Column("revoke_time", UTCDateTime(), nullable=True),
        sa.Column("revoke_reason", sa.String(500), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_signing_keys")),
        sa.UniqueConstraint("key_id", name=op.f("uq_signing_keys_key_id")),
    )
    op.create_table(
        "grants",
        sa.Column("seq", SeqType, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("character_id", sa.String(40), nullable=False),
        sa.Column("rights_holder_id", sa.String(40), nullable=False),
        sa.Column("licensee_id", sa.String(40), nullable=False),
        sa.Column("terms_version", sa.Integer(), nullable=False),
        sa.Column("terms", sa.LargeBinary(), nullable=False),
        sa.Column("not_before", UTCDateTime(), nullable=False),
        sa.Column("expire_time", UTCDateTime(), nullable=False),
        sa.Column("issue_time", UTCDateTime(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_reason", sa.String(500), nullable=False),
        sa.Column("state_time", UTCDateTime(), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("signing_key_id", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_grants")),
        sa.UniqueConstraint("id", name=op.f("uq_grants_id")),
        sa.ForeignKeyConstraint(["character_id"], ["characters.id"], name=op.f("fk_grants_character_id_characters")),
        sa.ForeignKeyConstraint(["licensee_id"], ["licensees.id"], name=op.f("fk_grants_licensee_id_licensees")),
    )
    for column in ("character_id", "rights_holder_id", "licensee_id", "state", "signing_key_id"):
        op.create_index(op.f(f"ix_grants_{column}"), "grants", [column])
    op.create_table(
        "revocation_events",
        sa.Column("sequence", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("grant_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("event_time", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.PrimaryKeyConstraint("sequence", name=op.f("pk_revocation_events")),
    )
    op.create_index(op.f("ix_revocation_events_grant_id"), "revocation_events", ["grant_id"])
    op.create_table(
        "counters",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_counters")),
    )
    op.bulk_insert(
        sa.table("counters", sa.column("name", sa.String), sa.column("value", sa.BigInteger)),
        [{"name": "revocation_log", "value": 0}],
    )


def downgrade() -> None:
    op.drop_table("counters")
    op.drop_table("revocation_events")
    op.drop_table("grants")
    op.drop_table("signing_keys")
