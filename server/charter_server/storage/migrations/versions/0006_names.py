"""Names where people read: an index on the grants by rights holder and licensee, for the licensee
profiles a rights holder may read (those holding or having held a grant on its characters).

Revision ID: 0006_names
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0006_names"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_grants_rights_holder_licensee", "grants", ["rights_holder_id", "licensee_id"])


def downgrade() -> None:
    op.drop_index("ix_grants_rights_holder_licensee", table_name="grants")
