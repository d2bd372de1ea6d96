"""Settings every replica of a deployment shares: the authorization lease (with the lease it
replaced and when, in the database's clock) and the key that signs page tokens.

Revision ID: 0007_serving
Revises: 0006_names
Create Date: 2026-12-06
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0007_serving"
down_revision = "0006_names"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "deployment_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("authorization_lease_ms", sa.BigInteger(), nullable=False),
        sa.Column("previous_lease_ms", sa.BigInteger(), nullable=False),
        sa.Column("lease_changed_ms", sa.BigInteger(), nullable=False),
        sa.Column("page_token_key", sa.LargeBinary(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment_settings")),
    )
    # A key of its own for every deployment, made here once, so every replica signs alike.
    op.bulk_insert(
        table,
        [
            {
                "id": 1,
                "authorization_lease_ms": 1000,
                "previous_lease_ms": 0,
                "lease_changed_ms": 0,
                "page_token_key": secrets.token_bytes(32),
            }
        ],
    )


def downgrade() -> None:
    op.drop_table("deployment_settings")
