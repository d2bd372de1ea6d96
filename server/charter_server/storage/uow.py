"""The unit of work: one transaction, rolled back unless committed.

It also turns database failures into domain errors, so a locked SQLite file or a
PostgreSQL serialization conflict reaches callers as a retryable ``StorageBusy``
rather than an internal error.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from charter_server.domain.errors import StorageBusy, StorageUnavailable
from charter_server.storage.display_names import DisplayNameRepository
from charter_server.storage.repositories import (
    ApiKeyRepository,
    AuthorizationRepository,
    CharacterRepository,
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
)
from charter_server.storage.serving import DeploymentSettingsRepository, RevocationAudienceRepository
from charter_server.storage.transparency import TransparencyRepository

# SQLSTATEs that mean "try again": serialization failure, deadlock, lock not available.
_PG_RETRYABLE = {"40001", "40P01", "55P03"}


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
        if error.connection_invalidated or isinstance(error, sa_exc.OperationalError):
            return StorageUnavailable("the database is unavailable; retry")
    if isinstance(error, sa_exc.TimeoutError):
        return StorageBusy("no database connection was free in time; retry")
    return None


class UnitOfWork:
    """A transaction with the repositories bound to it."""

    session: Session
    rights_holders: RightsHolderRepository
    licensees: LicenseeRepository
    api_keys: ApiKeyRepository
    request_records: RequestRecordRepository
    characters: CharacterRepository
    terms: TermsRepository
    signing_keys: SigningKeyRepository
    grants: GrantRepository
    revocations: RevocationLogRepository
    authz: GrantViewRepository
    quotas: QuotaRepository
    authorizations: AuthorizationRepository
    usage: UsageRepository
    statements: StatementRepository
    display_names: DisplayNameRepository
    deployment: DeploymentSettingsRepository
    audience: RevocationAudienceRepository
    log: TransparencyRepository

    def __init__(
        self, session_factory: sessionmaker[Session], writer_lock: AbstractContextManager[Any] | None = None
    ) -> None:
        self._session_factory = session_factory
        self._writer_lock = writer_lock

    def __enter__(self) -> UnitOfWork:
        if self._writer_lock is not None:
            self._writer_lock.__enter__()
        self.session = self._session_factory()
        self.rights_holders = RightsHolderRepository(self.session)
        self.licensees = LicenseeRepository(self.session)
        self.api_keys = ApiKeyRepository(self.session)
        self.request_records = RequestRecordRepository(self.session)
        self.characters = CharacterRepository(self.session)
        self.terms = TermsRepository(self.session)
        self.signing_keys = SigningKeyRepository(self.session)
        self.grants = GrantRepository(self.session)
        self.revocations = RevocationLogRepository(self.session)
        self.authz = GrantViewRepository(self.session)
        self.quotas = QuotaRepository(self.session)
        self.authorizations = AuthorizationRepository(self.session)
        self.usage = UsageRepository(self.session)
        self.statements = StatementRepository(self.session)
        self.display_names = DisplayNameRepository(self.session)
        self.deployment = DeploymentSettingsRepository(self.session)
        self.audience = RevocationAudienceRepository(self.session)
        self.log = TransparencyRepository(self.session)
        return self

    def commit(self) -> None:
        """Commit everything done in this unit of work."""
        self.session.commit()

    def savepoint(self) -> SessionTransaction:
        """A nested transaction: one import row that fails rolls back alone."""
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
            if self._writer_lock is not None:
                self._writer_lock.__exit__(None, None, None)
        if isinstance(exc, sa_exc.SQLAlchemyError):
            translated = translate_db_error(exc)
            if translated is not None:
                raise translated from exc
