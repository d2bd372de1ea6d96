"""Generation-time authorization: quota counters, replayable authorizations, the authorization epoch,
and character events in the revocation log.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from charter_server.storage.tables import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quota_counters",
        sa.Column("licensee_id", sa.String(40), nullable=False),
        sa.Column("character_id", sa.String(40), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("licensee_id", "character_id", "period", name=op.f("pk_quota_counters")),
    )
    op.create_table(
        "authorizations",
        sa.Column("receipt_id", sa.String(40), nullable=False),
        sa.Column("licensee_id", sa.String(40), nullable=False),
        sa.Column("decide_time", UTCDateTime(), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("receipt_id", name=op.f("pk_authorizations")),
    )
    op.create_index(op.f("ix_authorizations_licensee_id"), "authorizations", ["licensee_id"])
    op.bulk_insert(
        sa.table("counters", sa.column("name", sa.String), sa.column("value", sa.BigInteger)),
        [{"name": "authz_epoch", "value": 0}],
    )
    # A character's suspension and reinstatement go into the revocation log too, so that offline
    # authorizers learn of them; such an event names the character instead of a grant.
    with op.batch_alter_table("revocation_events") as table:
        table.add_column(sa.Column("character_id", sa.String(40), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("revocation_events") as table:
        table.drop_column("character_id")
    op.execute(sa.text("DELETE FROM counters WHERE name = 'authz_epoch'"))
    op.drop_index(op.f("ix_authorizations_licensee_id"), table_name="authorizations")
    op.drop_table("authorizations")
    op.drop_table("quota_counters")
