"""Characters with aliases and their normalised names, and versioned terms.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from charter_server.storage.tables import SeqType, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "characters",
        sa.Column("seq", SeqType, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("rights_holder_id", sa.String(40), nullable=False),
        sa.Column("external_id", sa.String(100), nullable=True),
        sa.Column("canonical_name", sa.String(200), nullable=False),
        sa.Column("franchise", sa.String(200), nullable=False),
        sa.Column("franchise_key", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("reference_urls", sa.JSON(), nullable=False),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_before_suspension", sa.String(16), nullable=True),
        sa.Column("terms_version", sa.Integer(), nullable=False),
        sa.Column("create_time", UTCDateTime(), nullable=False),
        sa.Column("update_time", UTCDateTime(), nullable=False),
        sa.Column("archive_time", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_characters")),
        sa.UniqueConstraint("id", name=op.f("uq_characters_id")),
        sa.UniqueConstraint("rights_holder_id", "external_id", name="uq_characters_external_id"),
        sa.ForeignKeyConstraint(
            ["rights_holder_id"], ["rights_holders.id"], name=op.f("fk_characters_rights_holder_id_rights_holders")
        ),
    )
    op.create_index(op.f("ix_characters_rights_holder_id"), "characters", ["rights_holder_id"])
    op.create_index(op.f("ix_characters_franchise_key"), "characters", ["franchise_key"])
    op.create_index(op.f("ix_characters_state"), "characters", ["state"])
    op.create_table(
        "character_names",
        sa.Column("character_id", sa.String(40), nullable=False),
        sa.Column("normalized", sa.String(400), nullable=False),
        sa.Column("rights_holder_id", sa.String(40), nullable=False),
        sa.Column("ambiguous", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("character_id", "normalized", name=op.f("pk_character_names")),
        sa.ForeignKeyConstraint(
            ["character_id"],
            ["characters.id"],
            name=op.f("fk_character_names_character_id_characters"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(op.f("ix_character_names_normalized"), "character_names", ["normalized"])
    op.create_table(
        "terms_versions",
        sa.Column("character_id", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("terms", sa.LargeBinary(), nullable=False),
        sa.Column("create_time", UTCDateTime(), nullable=False),
        sa.Column("author_key_id", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("character_id", "version", name=op.f("pk_terms_versions")),
        sa.ForeignKeyConstraint(
            ["character_id"], ["characters.id"], name=op.f("fk_terms_versions_character_id_characters")
        ),
    )


def downgrade() -> None:
    op.drop_table("terms_versions")
    op.drop_table("character_names")
    op.drop_table("characters")
