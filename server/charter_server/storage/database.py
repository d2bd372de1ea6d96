"""Engines and sessions for SQLite (the embedded default) and PostgreSQL (psycopg 3); what differs
between them is in ``storage.dialect``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import create_engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from charter_server.domain.errors import StorageUnavailable
from charter_server.storage.dialect import Dialect, UnsupportedDatabase, dialect_for
from charter_server.storage.uow import EventBus, UnitOfWork, track_rollbacks

T = TypeVar("T")


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs (SQLAlchemy would pick psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _in_memory(url: str) -> bool:
    """Whether ``url`` is an in-memory SQLite database (a second engine would open another one)."""
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


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
        # Chosen once, before anything connects: an unknown database stops here, with a message
        # that names it, rather than getting statements written for another database.
        self.dialect: Dialect = dialect_for(make_url(self.url).get_backend_name())
        self.engine = create_engine(self.url, **self.dialect.engine_options(busy_timeout_ms, pool_size))
        if self.engine.dialect.name != self.dialect.name:  # a driver that reports another database
            raise UnsupportedDatabase(
                self.engine.dialect.name,
                f"the database URL names {self.dialect.name!r} but its driver speaks {self.engine.dialect.name!r}",
            )
        self.dialect.configure(self.engine, busy_timeout_ms)
        writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        self._read_sessions = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(bind=writer, expire_on_commit=False)
        track_rollbacks(self._read_sessions)
        track_rollbacks(self._write_sessions)
        # `read_snapshot`'s own engine where the dialect has one (PostgreSQL: autocommit, no
        # pre-ping); its pool fills only as snapshot reads run concurrently.
        snapshot_options = self.dialect.snapshot_engine_options(pool_size)
        self._snapshot_engine = None if snapshot_options is None else create_engine(self.url, **snapshot_options)
        self._snapshot_sessions = (
            self._read_sessions
            if self._snapshot_engine is None
            else sessionmaker(bind=self._snapshot_engine, expire_on_commit=False)
        )
        # The log's sequencer writes on an engine of its own where the dialect keeps one (SQLite:
        # one connection whose page cache stays warm from batch to batch).
        sequencer_options = None if _in_memory(self.url) else self.dialect.sequencer_engine_options(busy_timeout_ms)
        self._sequencer_engine = None if sequencer_options is None else create_engine(self.url, **sequencer_options)
        if self._sequencer_engine is None:
            self._sequencer_sessions = self._write_sessions
        else:
            self.dialect.configure_sequencer(self._sequencer_engine, busy_timeout_ms)
            self._sequencer_sessions = sessionmaker(
                bind=self._sequencer_engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False
            )
            track_rollbacks(self._sequencer_sessions)
        # SQLite has one writer at a time, and a writer that finds the lock taken polls for it with
        # growing sleeps, so under load an unlucky one waits out the whole busy timeout. Writers of
        # this process queue on a lock instead; the busy timeout is left for other processes.
        self._writer_lock = threading.RLock() if self.dialect.one_writer else None
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
            return UnitOfWork(self._write_sessions, self._writer_lock, self.events, dialect=self.dialect)
        return UnitOfWork(self._read_sessions, None, self.events, dialect=self.dialect)

    def sequencer_uow(self) -> UnitOfWork:
        """A write unit of work for the log's sequencer, on its own connection where the dialect
        keeps one (`Dialect.sequencer_engine_options`), else as ``uow(write=True)``.

        Raises:
            WouldBlock: Called on an event loop's thread (see `forbid_blocking`).
        """
        if threading.get_ident() in _nonblocking_threads:
            raise WouldBlock
        return UnitOfWork(self._sequencer_sessions, self._writer_lock, self.events, dialect=self.dialect)

    def read_snapshot(self, read: Callable[[UnitOfWork], T]) -> T:
        """``read(uow)`` for readers whose every statement may see its own committed state (on
        PostgreSQL each runs in autocommit, outside a transaction; on SQLite it is an ordinary read
        transaction): the log's proofs, whose tiles and entries are only ever appended to.

        A pooled connection is used without a pre-ping; if it turns out to be dead (the database
        restarted, the connection was dropped), the pool is invalidated by SQLAlchemy and ``read``
        runs once more on a new connection. ``read`` only reads, so running it twice is harmless.

        Raises:
            WouldBlock: Called on an event loop's thread (see `forbid_blocking`).
            StorageUnavailable: The database is unreachable on the second try too.
        """
        if threading.get_ident() in _nonblocking_threads:
            raise WouldBlock
        for attempt in (1, 2):
            try:
                with UnitOfWork(self._snapshot_sessions, None, self.events, dialect=self.dialect) as uow:
                    return read(uow)
            except StorageUnavailable as error:
                cause = error.__cause__
                dropped = isinstance(cause, sa_exc.DBAPIError) and cause.connection_invalidated
                if attempt == 2 or not dropped or self._snapshot_engine is None:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

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
        if self._snapshot_engine is not None:
            self._snapshot_engine.dispose()
        if self._sequencer_engine is not None:
            self._sequencer_engine.dispose()
