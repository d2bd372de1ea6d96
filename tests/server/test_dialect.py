"""The database dialect is chosen once, at start: SQLite and PostgreSQL each get their own
statements, and any other database stops the server with a message that names it."""

from __future__ import annotations

from pathlib import Path

import charter_server
import pytest
from charter_server.app import StartupError, open_database
from charter_server.config import Settings
from charter_server.storage.database import Database
from charter_server.storage.dialect import PostgreSQLDialect, SQLiteDialect, UnsupportedDatabase, dialect_for


def test_each_backend_gets_its_own_dialect(database_url: str) -> None:
    db = Database(database_url)
    try:
        expected = SQLiteDialect if database_url.startswith("sqlite") else PostgreSQLDialect
        assert type(db.dialect) is expected
        assert db.dialect.name == db.engine.dialect.name
    finally:
        db.dispose()


@pytest.mark.parametrize("url", ["mysql://root@127.0.0.1/charter", "cockroachdb://root@127.0.0.1:26257/charter"])
def test_an_unknown_database_is_refused_before_connecting(url: str) -> None:
    with pytest.raises(UnsupportedDatabase) as refused:
        Database(url)
    assert refused.value.name == url.split(":", 1)[0]


def test_an_unknown_dialect_name_is_refused() -> None:
    with pytest.raises(UnsupportedDatabase) as refused:
        dialect_for("oracle")
    assert refused.value.name == "oracle"
    assert dialect_for("sqlite").name == "sqlite"


def test_the_server_does_not_start_on_an_unknown_database(tmp_path: Path) -> None:
    # Settings.validate() refuses such URLs too; open_database is the last line for callers that
    # build settings without validating them.
    settings = Settings(listen="127.0.0.1:0", database_url="mysql://root@127.0.0.1/charter")
    with pytest.raises(StartupError) as stopped:
        open_database(settings)
    assert isinstance(stopped.value.__cause__, UnsupportedDatabase)


def test_only_the_dialect_tells_databases_apart() -> None:
    """Repositories and services never test a dialect's name: a PostgreSQL-compatible engine with
    another name would silently get SQLite's statements."""
    root = Path(charter_server.__file__).parent
    allowed = {"storage/dialect.py", "storage/tables.py"}  # tables: a column type's per-dialect binding
    offenders = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "migrations" not in path.parts
        and str(path.relative_to(root)) not in allowed
        and any(
            marker in path.read_text(encoding="utf-8")
            for marker in ('== "postgresql"', '!= "postgresql"', "get_bind().dialect")
        )
    )
    assert offenders == []
