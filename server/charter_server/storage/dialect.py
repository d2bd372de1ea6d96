"""What differs between the databases Charter runs on, in one place, chosen once at start.

`Database` picks the `Dialect` for its engine when it is built (`dialect_for`); repositories get it
from the unit of work and never test a dialect's name themselves. A database that is neither
SQLite nor PostgreSQL stops the server at start (`UnsupportedDatabase`): a PostgreSQL-compatible
engine that names itself otherwise would otherwise get statements written for another database.
Supporting one more means one more class here, checked by the storage tests on that database.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, TypeVar

from sqlalchemy import ColumnElement, Engine, Float, Select, Table, cast, event, extract, func, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

S = TypeVar("S", bound=Select[Any])

# SQLite's julianday() of the Unix epoch, and milliseconds per day.
_UNIX_EPOCH_JULIAN_DAY = 2440587.5
_MS_PER_DAY = 86_400_000.0


class UnsupportedDatabase(ValueError):
    """The database URL names a database Charter has no dialect for."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        """The database's SQLAlchemy name."""


SEQUENCER_CACHE_KIB = 65536
"""The page cache of the SQLite connection kept for the log's sequencer (KiB, an upper bound)."""
SEQUENCER_WAL_AUTOCHECKPOINT_PAGES = 10_000
"""After how many WAL pages the sequencer's SQLite connection checkpoints (SQLite's default: 1,000)."""


class Dialect(abc.ABC):
    """The database-specific statements; one instance per kind of database."""

    name: ClassVar[str]
    locks_rows: ClassVar[bool]
    """Whether row locks do anything: false where write transactions are serialised already."""
    one_writer: ClassVar[bool]
    """Whether the database has one writer at a time (then a process queues its own writers)."""
    remote: ClassVar[bool]
    """Whether every statement is a round trip to a database server, so that reads are worth
    merging into fewer statements even at some CPU cost (SQLite runs in the process)."""
    placeholder: ClassVar[str]
    """The driver's positional parameter marker, for the few statements run on the driver itself."""

    @abc.abstractmethod
    def engine_options(self, busy_timeout_ms: int, pool_size: int) -> dict[str, Any]:
        """Keyword arguments of ``create_engine``."""

    def snapshot_engine_options(self, pool_size: int) -> dict[str, Any] | None:
        """Keyword arguments of ``create_engine`` for the engine of `Database.read_snapshot`, or
        None to run those reads as ordinary read transactions on the main engine."""
        return None

    def sequencer_engine_options(self, busy_timeout_ms: int) -> dict[str, Any] | None:
        """Keyword arguments of ``create_engine`` for the engine of `Database.sequencer_uow` (a
        connection kept for the log's sequencer), or None to use the main engine's pool."""
        return None

    def configure_sequencer(self, engine: Engine, busy_timeout_ms: int) -> None:
        """Set the sequencer's engine up (as `configure`, plus its own connection settings)."""
        self.configure(engine, busy_timeout_ms)

    @abc.abstractmethod
    def configure(self, engine: Engine, busy_timeout_ms: int) -> None:
        """Set a new engine up (connection settings, how transactions begin)."""

    @abc.abstractmethod
    def insert(self, table: Table | Any) -> Any:
        """An INSERT that supports ``on_conflict_do_nothing`` / ``on_conflict_do_update`` (upserts)."""

    @abc.abstractmethod
    def for_update(self, stmt: S, *, shared: bool = False, key_share: bool = False) -> S:
        """Lock the selected rows until the transaction ends (``shared``: readers may share the
        lock; ``key_share``: only against deletes and key changes)."""

    @abc.abstractmethod
    def lock_key(self, session: Session, key: int, *, shared: bool = False) -> None:
        """Take a transaction-scoped lock named by a 64-bit number."""

    @abc.abstractmethod
    def seconds(self, column: Any) -> ColumnElement[Any]:
        """A timestamp column as a number (seconds or days, by dialect), for sums that must move
        whenever any of the timestamps does."""

    @abc.abstractmethod
    def now_ms(self) -> ColumnElement[Any]:
        """Milliseconds since the Unix epoch by the database's wall clock (not the transaction's
        start), as a float expression."""

    def __repr__(self) -> str:
        return f"<Dialect {self.name}>"


class SQLiteDialect(Dialect):
    """SQLite: write transactions take the one write lock at BEGIN (``BEGIN IMMEDIATE``, see
    ``storage.database``), so every row and key lock is already held by then."""

    name = "sqlite"
    placeholder = "?"
    remote = False
    locks_rows = False
    one_writer = True

    def engine_options(self, busy_timeout_ms: int, pool_size: int) -> dict[str, Any]:
        return {"connect_args": {"check_same_thread": False, "timeout": busy_timeout_ms / 1000}}

    def sequencer_engine_options(self, busy_timeout_ms: int) -> dict[str, Any] | None:
        # One connection, used batch after batch (a second only if one is ever asked for while
        # the first is out): its page cache stays valid from one batch to the next as long as no
        # other connection writes in between, where the pool's connections take turns and each
        # batch found a cache that another connection's commit had invalidated.
        return {**self.engine_options(busy_timeout_ms, 1), "pool_size": 1, "max_overflow": 2}

    def configure_sequencer(self, engine: Engine, busy_timeout_ms: int) -> None:
        self.configure(engine, busy_timeout_ms)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            # Every entry inserts a random key into each lookup index (`storage.log_tables`):
            # a page cache that holds them (64 MiB at most, against the default 2 MB) spares
            # reading their pages again every batch.
            cursor.execute(f"PRAGMA cache_size=-{SEQUENCER_CACHE_KIB}")
            # A checkpoint every 10,000 WAL pages (40 MB) of this connection's commits instead of
            # 1,000: the index pages every batch dirties again are copied into the database once
            # per checkpoint, not once per batch or two. Durability is unchanged (a commit is
            # durable once in the WAL, `synchronous=FULL`); other connections keep the default.
            cursor.execute(f"PRAGMA wal_autocheckpoint={SEQUENCER_WAL_AUTOCHECKPOINT_PAGES}")
            cursor.close()

    def configure(self, engine: Engine, busy_timeout_ms: int) -> None:
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" hook below issue BEGIN itself, so write transactions take
            # the write lock up front (BEGIN IMMEDIATE) instead of failing on a lock upgrade.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            # FULL: a committed (acknowledged) transaction survives power loss, not only a crash.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            # Write sessions ask for IMMEDIATE (``storage.database``); reads begin DEFERRED.
            mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
            connection.exec_driver_sql(f"BEGIN {mode}")

    def insert(self, table: Table | Any) -> Any:
        return sqlite.insert(table)

    def for_update(self, stmt: S, *, shared: bool = False, key_share: bool = False) -> S:
        return stmt

    def lock_key(self, session: Session, key: int, *, shared: bool = False) -> None:
        return None

    def seconds(self, column: Any) -> ColumnElement[Any]:
        return func.julianday(column)  # days: the scale does not matter, only that it moves

    def now_ms(self) -> ColumnElement[Any]:
        return cast((func.julianday("now") - _UNIX_EPOCH_JULIAN_DAY) * _MS_PER_DAY, Float)


class PostgreSQLDialect(Dialect):
    """PostgreSQL at READ COMMITTED: row locks with ``FOR UPDATE`` (``FOR KEY SHARE`` for readers
    that only need a row to stay), advisory locks for things that are not rows."""

    name = "postgresql"
    placeholder = "%s"
    remote = True
    locks_rows = True
    one_writer = False

    def engine_options(self, busy_timeout_ms: int, pool_size: int) -> dict[str, Any]:
        return {"pool_size": pool_size, "max_overflow": pool_size, "pool_pre_ping": True}

    def snapshot_engine_options(self, pool_size: int) -> dict[str, Any] | None:
        # Each read of `Database.read_snapshot` is one statement with no transaction around it
        # (no BEGIN, no ROLLBACK: psycopg sends neither in autocommit) and no pre-ping (a round
        # trip per checkout); a connection found dead is retried once by `read_snapshot` instead.
        return {
            "pool_size": pool_size,
            "max_overflow": pool_size,
            "pool_pre_ping": False,
            "isolation_level": "AUTOCOMMIT",
        }

    def configure(self, engine: Engine, busy_timeout_ms: int) -> None:
        return None  # READ COMMITTED, the driver's defaults

    def insert(self, table: Table | Any) -> Any:
        return postgresql.insert(table)

    def for_update(self, stmt: S, *, shared: bool = False, key_share: bool = False) -> S:
        return stmt.with_for_update(read=shared or key_share, key_share=key_share)

    def lock_key(self, session: Session, key: int, *, shared: bool = False) -> None:
        function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        session.execute(text(f"SELECT {function}(:key)"), {"key": key})

    def seconds(self, column: Any) -> ColumnElement[Any]:
        return extract("epoch", column)

    def now_ms(self) -> ColumnElement[Any]:
        return cast(func.floor(extract("epoch", func.clock_timestamp()) * 1000), Float)


DIALECTS: dict[str, Dialect] = {d.name: d for d in (SQLiteDialect(), PostgreSQLDialect())}


def dialect_for(name: str) -> Dialect:
    """The dialect of a database by its SQLAlchemy backend name.

    Raises:
        UnsupportedDatabase: Charter has no dialect for it.
    """
    found = DIALECTS.get(name)
    if found is None:
        supported = ", ".join(sorted(DIALECTS))
        raise UnsupportedDatabase(
            name,
            f"the database {name!r} is not supported: Charter runs on {supported} "
            "(a compatible engine must be reached through one of those SQLAlchemy dialects)",
        )
    return found
