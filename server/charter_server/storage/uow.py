"""The unit of work: one transaction, rolled back unless committed, and the events it announces.

It turns database failures into domain errors, so a locked SQLite file or a PostgreSQL
serialization conflict reaches callers as a retryable ``StorageBusy`` rather than an internal error.

Events
------
Repositories raise domain events (``charter_server.domain.events``) on the writes that matter, and
services may raise their own with `UnitOfWork.raise_event`. The unit of work keeps them in order;
an event raised inside a savepoint that rolls back (or before a rollback of the whole transaction)
is dropped with the writes it described. On `UnitOfWork.commit`:

1. when any pending event ``affects_authorization``, the authorization epoch is bumped **once**,
   in the same transaction (every server polls it to learn that its view is stale);
2. the bus's in-transaction subscribers run, in the same transaction, and may write (the
   transparency log appends its entries there, so a change and its entry commit together);
3. the transaction commits;
4. when the unit of work ends (its session closed and, on SQLite, the writer lock released), the
   bus's after-commit subscribers get the committed events, in the order raised.

Subscribing (``db.events`` is the deployment's `EventBus`, one per `Database`)::

    def appended(uow: UnitOfWork, events: Sequence[DomainEvent]) -> None:
        ...  # write with uow.session (its own rows, raising no events); raise to abort the commit

    def committed(events: Sequence[DomainEvent]) -> None:
        ...  # after commit, on the committing thread; must not raise (it is logged and skipped)

    unsubscribe = db.events.subscribe_in_transaction(appended)
    db.events.subscribe(committed)

In-transaction subscribers must not raise further events (they would never be published). An
after-commit subscriber runs on the thread that committed, before the service returns to its
caller: the authorization view relies on that to make a revocation hold once the RPC returns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from functools import cached_property
from types import TracebackType
from typing import Any

import structlog
from sqlalchemy import event as sa_event
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from charter_server.domain.errors import StorageBusy, StorageUnavailable
from charter_server.domain.events import DomainEvent
from charter_server.storage.dialect import Dialect
from charter_server.storage.display_names import DisplayNameRepository
from charter_server.storage.offline import BundleRepository, LeaseRepository, LicenseeKeyRepository
from charter_server.storage.repositories import (
    ApiKeyRepository,
    AuthorizationRepository,
    CharacterRepository,
    DecisionHistoryRepository,
    GrantRepository,
    GrantViewRepository,
    LicenseeRepository,
    QuotaRepository,
    RequestRecordRepository,
    RevocationLogRepository,
    RightsHolderRepository,
    SigningKeyRepository,
    StatementRepository,
    TermsRepository,
    UsageRepository,
    bump_authz_epoch,
)
from charter_server.storage.serving import DeploymentSettingsRepository, RevocationAudienceRepository
from charter_server.storage.transparency import TransparencyRepository

log = structlog.get_logger(__name__)

# SQLSTATEs that mean "try again": serialization failure, deadlock, lock not available.
_PG_RETRYABLE = {"40001", "40P01", "55P03"}

_UOW = "charter_uow"  # the key of a session's unit of work in ``Session.info``

CommittedHandler = Callable[[Sequence[DomainEvent]], None]
TransactionHandler = Callable[["UnitOfWork", Sequence[DomainEvent]], None]


def translate_db_error(error: sa_exc.SQLAlchemyError) -> Exception | None:
    """Map a database failure to a retryable domain error, or None if it is a real bug."""
    if isinstance(error, sa_exc.DBAPIError):
        orig = error.orig
        text = str(orig).lower()
        if "database is locked" in text or "database table is locked" in text or "database is busy" in text:
            return StorageBusy("the database is busy; retry")
        sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        if sqlstate in _PG_RETRYABLE:
            return StorageBusy("the database reported a conflict; retry")
        if "integer overflow" in text:  # SQLite's arithmetic beyond 64 bits: a bug, no retry helps
            return None
        if error.connection_invalidated or isinstance(error, sa_exc.OperationalError):
            return StorageUnavailable("the database is unavailable; retry")
    if isinstance(error, sa_exc.TimeoutError):
        return StorageBusy("no database connection was free in time; retry")
    return None


class EventBus:
    """Who hears about committed changes; see the module docstring. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._committed: tuple[CommittedHandler, ...] = ()
        self._in_transaction: tuple[TransactionHandler, ...] = ()

    def subscribe(self, handler: CommittedHandler) -> Callable[[], None]:
        """Call ``handler(events)`` after every commit that raised events; returns an unsubscribe."""
        with self._lock:
            self._committed += (handler,)

        def unsubscribe() -> None:
            with self._lock:
                self._committed = tuple(h for h in self._committed if h is not handler)

        return unsubscribe

    def subscribe_in_transaction(self, handler: TransactionHandler) -> Callable[[], None]:
        """Call ``handler(uow, events)`` just before every commit that raised events, inside its
        transaction (an exception aborts the commit); returns an unsubscribe."""
        with self._lock:
            self._in_transaction += (handler,)

        def unsubscribe() -> None:
            with self._lock:
                self._in_transaction = tuple(h for h in self._in_transaction if h is not handler)

        return unsubscribe

    def before_commit(self, uow: UnitOfWork, events: Sequence[DomainEvent]) -> None:
        """Run the in-transaction subscribers."""
        for handler in self._in_transaction:
            handler(uow, events)

    def publish(self, events: Sequence[DomainEvent]) -> None:
        """Run the after-commit subscribers. The change is committed whatever they do, so a failing
        subscriber is logged and the others still run."""
        for handler in self._committed:
            try:
                handler(events)
            except Exception as error:
                log.error("events.subscriber_failed", handler=repr(handler), error_type=type(error).__name__)


def track_rollbacks(factory: sessionmaker[Session]) -> None:
    """Tell the unit of work of every session ``factory`` makes about rolled-back transactions and
    savepoints, so that it drops the events raised in them (one listener per factory, not per
    session: listening on a session costs more than the rest of opening it)."""
    sa_event.listen(factory, "after_soft_rollback", _dispatch_rollback)


def _dispatch_rollback(session: Session, transaction: SessionTransaction) -> None:
    uow = session.info.get(_UOW)
    if uow is not None:
        uow._rolled_back(transaction)


class UnitOfWork:
    """A transaction with the repositories bound to it (each built on first use) and the events
    its writes raised."""

    session: Session

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        writer_lock: AbstractContextManager[Any] | None = None,
        bus: EventBus | None = None,
        *,
        dialect: Dialect,
    ) -> None:
        self._session_factory = session_factory
        self._dialect = dialect
        self._writer_lock = writer_lock
        self._bus = bus if bus is not None else EventBus()
        # Pending events with the transaction (root or savepoint) each was raised in.
        self._pending: list[tuple[DomainEvent, SessionTransaction | None]] = []
        self._committed: list[DomainEvent] = []

    def __enter__(self) -> UnitOfWork:
        if self._writer_lock is not None:
            self._writer_lock.__enter__()
        self.session = self._session_factory()
        self.session.info[_UOW] = self  # for `_dispatch_rollback`
        return self

    # Repositories, built on first use: most transactions touch two or three of them.

    @cached_property
    def rights_holders(self) -> RightsHolderRepository:
        return RightsHolderRepository(self.session, self)

    @cached_property
    def licensees(self) -> LicenseeRepository:
        return LicenseeRepository(self.session, self)

    @cached_property
    def api_keys(self) -> ApiKeyRepository:
        return ApiKeyRepository(self.session, self)

    @cached_property
    def request_records(self) -> RequestRecordRepository:
        return RequestRecordRepository(self.session)

    @cached_property
    def characters(self) -> CharacterRepository:
        return CharacterRepository(self.session, self._dialect, self)

    @cached_property
    def terms(self) -> TermsRepository:
        return TermsRepository(self.session, self)

    @cached_property
    def signing_keys(self) -> SigningKeyRepository:
        return SigningKeyRepository(self.session, self._dialect, self)

    @cached_property
    def grants(self) -> GrantRepository:
        return GrantRepository(self.session, self._dialect, self)

    @cached_property
    def revocations(self) -> RevocationLogRepository:
        return RevocationLogRepository(self.session, self)

    @cached_property
    def authz(self) -> GrantViewRepository:
        return GrantViewRepository(self.session)

    @cached_property
    def quotas(self) -> QuotaRepository:
        return QuotaRepository(self.session, self._dialect)

    @cached_property
    def authorizations(self) -> AuthorizationRepository:
        return AuthorizationRepository(self.session)

    @cached_property
    def usage(self) -> UsageRepository:
        return UsageRepository(self.session, self._dialect)

    @cached_property
    def statements(self) -> StatementRepository:
        return StatementRepository(self.session, self._dialect, self)

    @cached_property
    def display_names(self) -> DisplayNameRepository:
        return DisplayNameRepository(self.session)

    @cached_property
    def deployment(self) -> DeploymentSettingsRepository:
        return DeploymentSettingsRepository(self.session, self._dialect)

    @cached_property
    def licensee_keys(self) -> LicenseeKeyRepository:
        return LicenseeKeyRepository(self.session, self._dialect, self)

    @cached_property
    def leases(self) -> LeaseRepository:
        return LeaseRepository(self.session, self._dialect, self)

    @cached_property
    def bundles(self) -> BundleRepository:
        return BundleRepository(self.session)

    @cached_property
    def audience(self) -> RevocationAudienceRepository:
        return RevocationAudienceRepository(self.session)

    @cached_property
    def log(self) -> TransparencyRepository:
        return TransparencyRepository(self.session, self._dialect)

    @cached_property
    def decisions(self) -> DecisionHistoryRepository:
        return DecisionHistoryRepository(self.session, self._dialect)

    # Events.

    def raise_event(self, event: DomainEvent) -> None:
        """Announce ``event`` if this transaction commits (dropped if its savepoint rolls back)."""
        self._pending.append((event, self.session.get_nested_transaction() or self.session.get_transaction()))

    @property
    def pending_events(self) -> tuple[DomainEvent, ...]:
        """The events raised and not yet committed, in order."""
        return tuple(event for event, _ in self._pending)

    def _rolled_back(self, transaction: SessionTransaction) -> None:
        """Drop the events raised inside ``transaction`` (or inside a savepoint within it)."""

        def inside(raised_in: SessionTransaction | None) -> bool:
            while raised_in is not None:
                if raised_in is transaction:
                    return True
                raised_in = raised_in.parent
            return transaction.parent is None  # the whole transaction rolled back

        self._pending = [(e, t) for e, t in self._pending if not inside(t)]

    def commit(self) -> None:
        """Commit everything done in this unit of work; see the module docstring for the events."""
        events = self.pending_events
        if events:
            if any(e.affects_authorization for e in events):
                bump_authz_epoch(self.session)
            self._bus.before_commit(self, events)
            if len(self._pending) != len(events):
                raise RuntimeError("an in-transaction event subscriber raised an event")
        self.session.commit()
        self._pending.clear()
        self._committed.extend(events)

    def savepoint(self) -> SessionTransaction:
        """A nested transaction: one import row that fails rolls back alone (with its events)."""
        return self.session.begin_nested()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.session.rollback()
        except sa_exc.SQLAlchemyError:
            # The connection may already be gone; the original error matters more.
            pass
        finally:
            self.session.close()
            self.session.info.pop(_UOW, None)
            if self._writer_lock is not None:
                self._writer_lock.__exit__(None, None, None)
        if self._committed:
            # After the writer lock is released: a subscriber may wait (the view's settle does).
            committed, self._committed = tuple(self._committed), []
            self._bus.publish(committed)
        if isinstance(exc, sa_exc.SQLAlchemyError):
            translated = translate_db_error(exc)
            if translated is not None:
                raise translated from exc
