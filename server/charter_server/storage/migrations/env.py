"""Alembic environment: runs on the connection handed over by ``charter_server.storage.migrate``."""

from __future__ import annotations

from alembic import context
from charter_server.storage.tables import Base
from sqlalchemy import Connection

target_metadata = Base.metadata


def run(connection: Connection) -> None:
    """Run the migrations on ``connection``."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode recreates tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through charter_server.storage.migrate (charter-server migrate)")
run(connection)
