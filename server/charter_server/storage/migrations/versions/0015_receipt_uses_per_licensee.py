"""The uses reported against a receipt or decision record are counted per licensee
(``receipt_uses`` keyed by licensee, receipt or record id, and character).

A decision record's id (``dr_`` and 32 hex digits) is chosen by the SDK, not by Charter; counted
under the id alone, another licensee with a grant of the same character who learned or guessed
an id could report a record of its own under it first and have the genuine record refused as a
replay. Keyed by the licensee too, one licensee's records never block another's; the same
licensee's replays are refused as before. A receipt (``rcp_...``) is Charter's and verifies for
its own licensee only, so for receipts nothing changes.

Existing counters take the licensee of the usage record they counted (a receipt's character
covers one use, so there is exactly one; '' if none is found).

Revision ID: 0015_receipt_uses_per_licensee
Revises: 0014_log_lookup_prefixes
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_receipt_uses_per_licensee"
down_revision = "0014_log_lookup_prefixes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("receipt_uses") as table:
        table.add_column(sa.Column("licensee_id", sa.String(40), nullable=False, server_default=""))
    op.execute(
        "UPDATE receipt_uses SET licensee_id = COALESCE(("
        "SELECT MIN(u.licensee_id) FROM usage_records u"
        " WHERE u.receipt_id = receipt_uses.receipt_id AND u.character_id = receipt_uses.character_id"
        "), '')"
    )
    with op.batch_alter_table("receipt_uses", recreate="always") as table:
        table.drop_constraint("pk_receipt_uses", type_="primary")
        table.create_primary_key("pk_receipt_uses", ["licensee_id", "receipt_id", "character_id"])
        table.alter_column("licensee_id", existing_type=sa.String(40), server_default=None)


def downgrade() -> None:
    # Counters of one id under several licensees are added up into one again.
    op.create_table(
        "receipt_uses_merged",
        sa.Column("receipt_id", sa.String(40), nullable=False),
        sa.Column("character_id", sa.String(40), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
    )
    op.execute(
        "INSERT INTO receipt_uses_merged (receipt_id, character_id, used)"
        " SELECT receipt_id, character_id, SUM(used) FROM receipt_uses GROUP BY receipt_id, character_id"
    )
    op.drop_table("receipt_uses")
    op.create_table(
        "receipt_uses",
        sa.Column("receipt_id", sa.String(40), nullable=False),
        sa.Column("character_id", sa.String(40), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("receipt_id", "character_id", name=op.f("pk_receipt_uses")),
    )
    op.execute(
        "INSERT INTO receipt_uses (receipt_id, character_id, used)"
        " SELECT receipt_id, character_id, used FROM receipt_uses_merged"
    )
    op.drop_table("receipt_uses_merged")
