"""Quota and grant-use counters, and the kept responses of counted authorizations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    select,
    update,
)
from sqlalchemy.orm import Session

from charter_server.storage.dialect import Dialect
from charter_server.storage.tables import (
    AuthorizationRow,
    GrantUseRow,
    QuotaCounterRow,
)

# Shared names: (normalised name, character ids, rights holder ids), and the name to continue after.


class QuotaRepository:
    """Quota counters, raised only by a conditional single-statement update (never read-modify-write)."""

    def __init__(self, session: Session, dialect: Dialect) -> None:
        self._session = session
        self._dialect = dialect

    def consume(self, licensee_id: str, character_id: str, period: str, limit: int) -> bool:
        """Count one use in ``period`` if fewer than ``limit`` are counted; whether it was counted.

        The row is created first if missing (a conflicting insert by a concurrent transaction is
        ignored); the update then re-checks ``used < limit`` under the row lock, so concurrent
        uses on any number of servers never exceed the limit.
        """
        if limit <= 0:
            return False
        values = {"licensee_id": licensee_id, "character_id": character_id, "period": period, "used": 0}
        self._session.execute(self._dialect.insert(QuotaCounterRow).values(**values).on_conflict_do_nothing())
        result = self._session.execute(
            update(QuotaCounterRow)
            .where(
                QuotaCounterRow.licensee_id == licensee_id,
                QuotaCounterRow.character_id == character_id,
                QuotaCounterRow.period == period,
                QuotaCounterRow.used < limit,
            )
            .values(used=QuotaCounterRow.used + 1)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def consume_grant(self, grant_id: str, limit: int) -> bool:
        """Count one use of a grant if fewer than ``limit`` are counted over its life; whether it was.
        The same conditional single-statement update as `consume`."""
        if limit <= 0:
            return False
        self._session.execute(
            self._dialect.insert(GrantUseRow).values(grant_id=grant_id, used=0).on_conflict_do_nothing()
        )
        result = self._session.execute(
            update(GrantUseRow)
            .where(GrantUseRow.grant_id == grant_id, GrantUseRow.used < limit)
            .values(used=GrantUseRow.used + 1)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def grant_used(self, grant_id: str) -> int:
        """The uses counted against a grant's cap (0 when none)."""
        return int(self._session.scalar(select(GrantUseRow.used).where(GrantUseRow.grant_id == grant_id)) or 0)

    def used(self, licensee_id: str, character_id: str, period: str) -> int:
        """The uses counted in ``period`` (0 when none)."""
        value = self._session.scalar(
            select(QuotaCounterRow.used).where(
                QuotaCounterRow.licensee_id == licensee_id,
                QuotaCounterRow.character_id == character_id,
                QuotaCounterRow.period == period,
            )
        )
        return int(value or 0)


class AuthorizationRepository:
    """Authorize responses that counted a quota, for replaying a retried request."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, receipt_id: str, licensee_id: str, decide_time: datetime, response: bytes) -> None:
        """Keep a response."""
        self._session.add(
            AuthorizationRow(receipt_id=receipt_id, licensee_id=licensee_id, decide_time=decide_time, response=response)
        )
        self._session.flush()

    def get(self, receipt_id: str) -> bytes | None:
        """The kept response with this receipt id, or None."""
        row = self._session.get(AuthorizationRow, receipt_id)
        return None if row is None else bytes(row.response)
