"""Engines and sessions for SQLite (the embedded default) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from charter_server.storage.uow import EventBus, UnitOfWork


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs (SQLAlchemy would pick psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
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
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


class WouldBlock(BaseException):
    """A unit of work was asked for on a thread that must not wait for the database (an event
    loop's, see `forbid_blocking`).

    A ``BaseException``, so that the services' handlers of ``Exception`` (which turn database
    failures into retryable errors) let it through to the transport, which then runs the call
    again on a worker thread.
    """


_nonblocking_threads: set[int] = set()


def forbid_blocking() -> None:
    """Mark the calling thread (an event loop's) as one that never waits for the database: every
    unit of work asked for on it raises `WouldBlock` from now on."""
    _nonblocking_threads.add(threading.get_ident())


def allow_blocking() -> None:
    """Undo `forbid_blocking` for the calling thread (its event loop has stopped)."""
    _nonblocking_threads.discard(threading.get_ident())


def may_block() -> None:
    """Raise `WouldBlock` on a thread that must not block; for code about to wait on something
    other than a unit of work (a lock held across I/O, a sleep)."""
    if threading.get_ident() in _nonblocking_threads:
        raise WouldBlock


class Database:
    """One database: its engine and the units of work that use it."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 5000, pool_size: int = 10) -> None:
        self.url = normalise_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": busy_timeout_ms / 1000}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        self.engine = create_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine, busy_timeout_ms)
        writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        self._read_sessions = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(bind=writer, expire_on_commit=False)
        # SQLite has one writer at a time, and a writer that finds the lock taken polls for it with
        # growing sleeps, so under load an unlucky one waits out the whole busy timeout. Writers of
        # this process queue on a lock instead; the busy timeout is left for other processes.
        self._writer_lock = threading.RLock() if self.dialect == "sqlite" else None
        self._page_token_key: bytes | None = None
        # Who hears about committed changes (see ``storage.uow``): the services subscribe at build.
        self.events = EventBus()

    def uow(self, *, write: bool = False) -> UnitOfWork:
        """A unit of work; ``write=True`` takes the write lock at the start on SQLite.

        Raises:
            WouldBlock: Called on an event loop's thread (see `forbid_blocking`).
        """
        if threading.get_ident() in _nonblocking_threads:
            raise WouldBlock
        if write:
            return UnitOfWork(self._write_sessions, self._writer_lock, self.events)
        return UnitOfWork(self._read_sessions, None, self.events)

    def page_token_key(self) -> bytes:
        """The deployment's page-token key (``storage.serving``), read once and kept."""
        key = self._page_token_key
        if key is None:
            with self.uow() as uow:
                key = self._page_token_key = uow.deployment.page_token_key()
        return key

    def session(self) -> Session:
        """A bare session, for tools that manage transactions themselves."""
        return self._read_sessions()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
