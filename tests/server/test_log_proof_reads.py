"""How the log's proofs read the database (`Database.read_snapshot`): in one query each where the
sizes are known, outside a transaction on PostgreSQL, with no pre-ping, and through a dropped
connection by trying once more; and still right while the log grows between and during calls."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from charter import transparency
from charter.v1 import transparency_pb2 as tp
from charter_server.app import Services
from charter_server.domain.models import Principal, Role
from charter_server.services.transparency.reader import TransparencyLog
from charter_server.services.transparency.sequencer import LogHealth
from charter_server.storage.database import Database
from sqlalchemy import Engine, event

from ._support import services_on

AUDITOR = Principal("key_auditor", Role.AUDITOR)


@pytest.fixture
def built(migrated_database_url: str) -> Iterator[tuple[Database, Services]]:
    with services_on(migrated_database_url) as (_, db, services):
        yield db, services


def _grow(db: Database, services: Services, count: int) -> int:
    """Append ``count`` entries and integrate them all; the new tree size."""
    with db.uow(write=True) as uow:
        for _ in range(count):
            message = tp.RightsHolderLogged(
                action=tp.RightsHolderLogged.ACTION_CREATED, rights_holder_id=f"rh_{os.urandom(16).hex()}"
            )
            services.appender.append(uow, "rights_holder", message)
        uow.commit()
    while services.sequencer.integrate():
        pass
    with db.uow() as uow:
        latest = uow.log.latest_checkpoint()
    assert latest is not None
    return latest.tree_size


def _verified(db: Database, reader: TransparencyLog, index: int, size: int = 0) -> None:
    """The inclusion proof of ``index`` checked against the latest checkpoint (``size`` 0) or the
    signed checkpoint of ``size``."""
    answer = reader.inclusion(AUDITOR, index=index, tree_size=size)
    ((shown, path),) = answer.entries
    if size:
        with db.uow() as uow:
            stored = uow.log.checkpoint(size)
        assert stored is not None
        root = stored.root_hash
    else:
        root = reader.checkpoint().root_hash
    transparency.verify_inclusion(shown.entry.leaf_hash, index, answer.tree_size, path, root)


def test_proofs_stay_right_while_the_log_grows_between_calls(built: tuple[Database, Services]) -> None:
    db, services = built
    reader = TransparencyLog(db, LogHealth())
    first = _grow(db, services, 300)
    first_root = reader.checkpoint().root_hash
    _verified(db, reader, 7)
    # The reader's guess of the latest size is now stale: the new right edge must be read too.
    second = _grow(db, services, 700)
    assert second > first
    latest = reader.checkpoint()
    assert latest.tree_size == second
    _verified(db, reader, second - 1)
    _verified(db, reader, 0)
    _verified(db, reader, 299, first)
    proof = reader.consistency(first, second)
    transparency.verify_consistency(first, second, proof, first_root, latest.root_hash)
    assert reader.consistency(second, second) == []


def test_on_postgresql_a_proof_is_one_query_and_an_inclusion_two(
    built: tuple[Database, Services],
) -> None:
    db, services = built
    reader = TransparencyLog(db, LogHealth())
    size = _grow(db, services, 600)
    reader.checkpoint()  # learns the latest size
    statements: list[str] = []
    autocommit: list[bool] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("BEGIN"):  # SQLite's read transaction, in process: not a round trip
            return
        statements.append(statement)
        autocommit.append(bool(getattr(conn.connection.dbapi_connection, "autocommit", False)))

    event.listen(Engine, "before_cursor_execute", count)
    try:
        reader.consistency(10, size)
        consistency = len(statements)
        reader.checkpoint()
        checkpoint = len(statements) - consistency
        reader.inclusion(AUDITOR, index=123)
        inclusion = len(statements) - consistency - checkpoint
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    if db.dialect.remote:
        assert (consistency, checkpoint, inclusion) == (1, 1, 2)
    else:  # SQLite: no round trips to save, the tiles in a query of their own as before
        assert (consistency, checkpoint, inclusion) == (2, 2, 3)
    if db.dialect.name == "postgresql":
        # No BEGIN / ROLLBACK round trips either: psycopg sends none in autocommit.
        assert all(autocommit)


def test_proofs_are_served_through_connections_the_server_dropped(
    built: tuple[Database, Services], migrated_database_url: str
) -> None:
    if not migrated_database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite has no server to drop a connection")
    db, services = built
    reader = TransparencyLog(db, LogHealth())
    size = _grow(db, services, 50)
    reader.checkpoint()
    reader.consistency(1, size)
    # Every other connection to this database ends, as at a restart of the database server
    # (the pooled ones are not pinged before use: the first statement finds them dead).
    with psycopg.connect(
        migrated_database_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as admin:
        ended = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert ended is not None and ended[0] >= 1
    _verified(db, reader, 3)
    _verified(db, reader, size - 1)
    assert len(reader.consistency(1, size)) > 0
