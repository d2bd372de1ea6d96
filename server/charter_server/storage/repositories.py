"""Repositories: they speak domain records and hide the SQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from charter_server.domain.models import ApiKey, Licensee, LifecycleState, RightsHolder, Role
from charter_server.storage.tables import ApiKeyRow, LicenseeRow, RequestRecordRow, RightsHolderRow

# A page of rows: the records and, when more follow, the sequence number to continue after.
Slice = tuple[list[Any], int | None]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _contains(columns: Sequence[Any], text: str) -> ColumnElement[bool]:
    """Case-insensitive substring match over several columns."""
    pattern = f"%{_escape_like(text.lower())}%"
    return or_(*(func.lower(c).like(pattern, escape="\\") for c in columns))


def _page(session: Session, stmt: Select[Any], seq_column: Any, after: int, limit: int) -> tuple[list[Any], int | None]:
    """Run ``stmt`` as one keyset page ordered by the sequence column."""
    rows = list(session.scalars(stmt.where(seq_column > after).order_by(seq_column).limit(limit + 1)))
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, int(rows[-1].seq)
    return rows, None


def _rights_holder(row: RightsHolderRow) -> RightsHolder:
    return RightsHolder(
        id=row.id,
        display_name=row.display_name,
        legal_name=row.legal_name,
        contact_email=row.contact_email,
        revenue_share_account=row.revenue_share_account,
        state=LifecycleState(row.state),
        create_time=row.create_time,
        update_time=row.update_time,
        archive_time=row.archive_time,
    )


def _licensee(row: LicenseeRow) -> Licensee:
    return Licensee(
        id=row.id,
        display_name=row.display_name,
        legal_name=row.legal_name,
        contact_email=row.contact_email,
        platform=row.platform,
        state=LifecycleState(row.state),
        create_time=row.create_time,
        update_time=row.update_time,
        archive_time=row.archive_time,
    )


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


class RightsHolderRepository:
    """Rights holders."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, holder: RightsHolder) -> None:
        """Insert a new rights holder."""
        self._session.add(
            RightsHolderRow(
                id=holder.id,
                display_name=holder.display_name,
                legal_name=holder.legal_name,
                contact_email=holder.contact_email,
                revenue_share_account=holder.revenue_share_account,
                state=holder.state.value,
                create_time=holder.create_time,
                update_time=holder.update_time,
                archive_time=holder.archive_time,
            )
        )
        self._session.flush()

    def get(self, holder_id: str) -> RightsHolder | None:
        """The rights holder with this id, or None."""
        row = self._row(holder_id)
        return None if row is None else _rights_holder(row)

    def save(self, holder: RightsHolder) -> None:
        """Write every mutable field of an existing rights holder."""
        row = self._row(holder.id)
        if row is None:
            raise LookupError(holder.id)
        row.display_name = holder.display_name
        row.legal_name = holder.legal_name
        row.contact_email = holder.contact_email
        row.revenue_share_account = holder.revenue_share_account
        row.state = holder.state.value
        row.update_time = holder.update_time
        row.archive_time = holder.archive_time
        self._session.flush()

    def list(
        self, *, state: LifecycleState, query: str, only_id: str | None, after: int, limit: int
    ) -> tuple[list[RightsHolder], int | None]:
        """One page of rights holders in creation order."""
        stmt = select(RightsHolderRow).where(RightsHolderRow.state == state.value)
        if query:
            stmt = stmt.where(_contains([RightsHolderRow.display_name, RightsHolderRow.legal_name], query))
        if only_id is not None:
            stmt = stmt.where(RightsHolderRow.id == only_id)
        rows, more = _page(self._session, stmt, RightsHolderRow.seq, after, limit)
        return [_rights_holder(r) for r in rows], more

    def _row(self, holder_id: str) -> RightsHolderRow | None:
        return self._session.scalars(select(RightsHolderRow).where(RightsHolderRow.id == holder_id)).first()


class LicenseeRepository:
    """Licensees."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, licensee: Licensee) -> None:
        """Insert a new licensee."""
        self._session.add(
            LicenseeRow(
                id=licensee.id,
                display_name=licensee.display_name,
                legal_name=licensee.legal_name,
                contact_email=licensee.contact_email,
                platform=licensee.platform,
                state=licensee.state.value,
                create_time=licensee.create_time,
                update_time=licensee.update_time,
                archive_time=licensee.archive_time,
            )
        )
        self._session.flush()

    def get(self, licensee_id: str) -> Licensee | None:
        """The licensee with this id, or None."""
        row = self._row(licensee_id)
        return None if row is None else _licensee(row)

    def save(self, licensee: Licensee) -> None:
        """Write every mutable field of an existing licensee."""
        row = self._row(licensee.id)
        if row is None:
            raise LookupError(licensee.id)
        row.display_name = licensee.display_name
        row.legal_name = licensee.legal_name
        row.contact_email = licensee.contact_email
        row.platform = licensee.platform
        row.state = licensee.state.value
        row.update_time = licensee.update_time
        row.archive_time = licensee.archive_time
        self._session.flush()

    def list(
        self, *, state: LifecycleState, query: str, platform: str, after: int, limit: int
    ) -> tuple[list[Licensee], int | None]:
        """One page of licensees in creation order."""
        stmt = select(LicenseeRow).where(LicenseeRow.state == state.value)
        if query:
            stmt = stmt.where(_contains([LicenseeRow.display_name, LicenseeRow.legal_name], query))
        if platform:
            stmt = stmt.where(LicenseeRow.platform == platform)
        rows, more = _page(self._session, stmt, LicenseeRow.seq, after, limit)
        return [_licensee(r) for r in rows], more

    def _row(self, licensee_id: str) -> LicenseeRow | None:
        return self._session.scalars(select(LicenseeRow).where(LicenseeRow.id == licensee_id)).first()


class ApiKeyRepository:
    """API keys and the hashes of their secrets."""

    def __init__(self, session: Session) -> None:
        self._session = session

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

    def get(self, key_id: str) -> ApiKey | None:
        """The key with this id, or None."""
        row = self._row(key_id)
        return None if row is None else _api_key(row)

    def get_with_hash(self, key_id: str) -> tuple[ApiKey, str] | None:
        """The key and its secret's SHA-256, for authentication."""
        row = self._row(key_id)
        return None if row is None else (_api_key(row), row.secret_sha256)

    def revoke(self, key_id: str, when: datetime) -> None:
        """Mark the key revoked at ``when``."""
        row = self._row(key_id)
        if row is None:
            raise LookupError(key_id)
        row.revoke_time = when
        self._session.flush()

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
        rows, more = _page(self._session, stmt, ApiKeyRow.seq, after, limit)
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
