"""API keys and the recorded outcomes of idempotent creates."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    func,
    or_,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from charter_server.domain import events as ev
from charter_server.domain.events import EventSink
from charter_server.domain.models import (
    ApiKey,
    Role,
)
from charter_server.storage.repositories._query import keyset_page
from charter_server.storage.tables import (
    ApiKeyRow,
    RequestRecordRow,
)

# Shared names: (normalised name, character ids, rights holder ids), and the name to continue after.


def _api_key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        display_name=row.display_name,
        role=Role(row.role),
        rights_holder_id=row.rights_holder_id,
        licensee_id=row.licensee_id,
        expire_time=row.expire_time,
        creator_key_id=row.creator_key_id,
        create_time=row.create_time,
        revoke_time=row.revoke_time,
    )


class ApiKeyRepository:
    """API keys and the hashes of their secrets."""

    def __init__(self, session: Session, events: EventSink) -> None:
        self._session = session
        self._events = events

    def add(self, key: ApiKey, secret_sha256: str) -> None:
        """Insert a new key with the SHA-256 of its secret."""
        self._session.add(
            ApiKeyRow(
                id=key.id,
                display_name=key.display_name,
                role=key.role.value,
                rights_holder_id=key.rights_holder_id,
                licensee_id=key.licensee_id,
                secret_sha256=secret_sha256,
                expire_time=key.expire_time,
                creator_key_id=key.creator_key_id,
                create_time=key.create_time,
                revoke_time=key.revoke_time,
            )
        )
        self._session.flush()
        self._events.raise_event(ev.ApiKeyCreated(key.id, key.role.value, key.rights_holder_id, key.licensee_id))

    def get(self, key_id: str) -> ApiKey | None:
        """The key with this id, or None."""
        row = self._row(key_id)
        return None if row is None else _api_key(row)

    def get_with_hash(self, key_id: str) -> tuple[ApiKey, str] | None:
        """The key and its secret's SHA-256, for authentication."""
        row = self._row(key_id)
        return None if row is None else (_api_key(row), row.secret_sha256)

    def revoke(self, key_id: str, when: datetime) -> None:
        """Mark the key revoked at ``when`` (an event that affects authorization: servers cache keys)."""
        row = self._row(key_id)
        if row is None:
            raise LookupError(key_id)
        row.revoke_time = when
        self._session.flush()
        self._events.raise_event(ev.ApiKeyRevoked(key_id, row.rights_holder_id, row.licensee_id))

    def list(
        self, *, role: Role | None, active_at: datetime | None, after: int, limit: int
    ) -> tuple[list[ApiKey], int | None]:
        """One page of keys in creation order; ``active_at`` keeps only keys active then."""
        stmt = select(ApiKeyRow)
        if role is not None:
            stmt = stmt.where(ApiKeyRow.role == role.value)
        if active_at is not None:
            stmt = stmt.where(ApiKeyRow.revoke_time.is_(None)).where(
                or_(ApiKeyRow.expire_time.is_(None), ApiKeyRow.expire_time > active_at)
            )
        rows, more = keyset_page(self._session, stmt, ApiKeyRow.seq, after, limit)
        return [_api_key(r) for r in rows], more

    def count_admins(self) -> int:
        """How many admin keys exist (revoked or not)."""
        return int(self._session.scalar(select(func.count()).where(ApiKeyRow.role == Role.ADMIN.value)) or 0)

    def _row(self, key_id: str) -> ApiKeyRow | None:
        return self._session.scalars(select(ApiKeyRow).where(ApiKeyRow.id == key_id)).first()


class RequestRecordRepository:
    """Outcomes of idempotent creates."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, caller_key_id: str, method: str, request_id: str) -> tuple[str, str] | None:
        """The (fingerprint, resource id) recorded for this request, or None."""
        row = self._session.get(RequestRecordRow, (caller_key_id, method, request_id))
        return None if row is None else (row.fingerprint, row.resource_id)

    def add(
        self, caller_key_id: str, method: str, request_id: str, fingerprint: str, resource_id: str, when: datetime
    ) -> bool:
        """Record the outcome; False when a concurrent call recorded this request first."""
        try:
            with self._session.begin_nested():
                self._session.add(
                    RequestRecordRow(
                        caller_key_id=caller_key_id,
                        method=method,
                        request_id=request_id,
                        fingerprint=fingerprint,
                        resource_id=resource_id,
                        create_time=when,
                    )
                )
        except IntegrityError:
            return False
        return True
