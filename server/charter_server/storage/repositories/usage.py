"""Accepted usage records and the uses reported against each receipt."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from datetime import UTC
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    bindparam,
    delete,
    func,
    select,
)
from sqlalchemy.orm import Session

from charter_server.domain.models import (
    DailyUsage,
    UsageEntry,
)
from charter_server.storage.dialect import Dialect
from charter_server.storage.tables import (
    ReceiptUseRow,
    UsageDailyRow,
    UsageRecordRow,
)

# Shared names: (normalised name, character ids, rights holder ids), and the name to continue after.


@functools.cache
def _usage_statements(dialect: Dialect) -> tuple[Any, Any]:
    """The two statements of accepting usage, built once per dialect: building a statement costs
    more than executing it, and these run once per record."""
    insert = dialect.insert
    records = cast(Table, UsageRecordRow.__table__)
    add = (
        insert(records)
        .on_conflict_do_nothing(index_elements=["licensee_id", "idempotency_key"])
        .returning(records.c.idempotency_key)
    )
    uses = cast(Table, ReceiptUseRow.__table__)
    upsert = insert(uses).values(receipt_id=bindparam("receipt_id"), character_id=bindparam("character_id"))
    upsert = upsert.values(used=bindparam("uses"))
    consume = upsert.on_conflict_do_update(
        index_elements=["receipt_id", "character_id"],
        set_={"used": uses.c.used + upsert.excluded.used},
        where=(uses.c.used < bindparam("capacity")) & (uses.c.used + upsert.excluded.used <= bindparam("capacity")),
    ).returning(uses.c.used)
    return add, consume


@functools.cache
def _daily_statement(dialect: Dialect) -> Any:
    """The roll-up's upsert, built once per dialect: adds a batch's sums to each day's row."""
    insert = dialect.insert
    daily = cast(Table, UsageDailyRow.__table__)
    upsert = insert(daily)
    return upsert.on_conflict_do_update(
        index_elements=["rights_holder_id", "day", "character_id", "licensee_id"],
        set_={
            "records": daily.c.records + upsert.excluded.records,
            "uses": daily.c.uses + upsert.excluded.uses,
            "duration_ms": daily.c.duration_ms + upsert.excluded.duration_ms,
        },
    )


_USAGE_COLUMNS = tuple(f.name for f in dataclasses.fields(UsageEntry))


class UsageRepository:
    """Accepted usage records and the uses reported against each receipt."""

    def __init__(self, session: Session, dialect: Dialect) -> None:
        self._session = session
        self._add, self._consume = _usage_statements(dialect)
        self._daily = _daily_statement(dialect)

    def accepted(self, licensee_id: str, keys: Sequence[str]) -> dict[str, UsageEntry]:
        """The records already accepted under these idempotency keys of the licensee, by key."""
        if not keys:
            return {}
        rows = self._session.scalars(
            select(UsageRecordRow).where(
                UsageRecordRow.licensee_id == licensee_id, UsageRecordRow.idempotency_key.in_(list(keys))
            )
        )
        return {row.idempotency_key: _usage(row) for row in rows}

    def add_new(self, entries: Sequence[UsageEntry]) -> set[str]:
        """Insert the records whose key is not taken yet; the keys inserted.

        A key that a concurrent transaction inserted is skipped (on PostgreSQL after that
        transaction ends), so the caller reads it back and answers it as a duplicate. Rows go in
        key order, so that concurrent batches take their key locks in one order and never deadlock.
        """
        if not entries:
            return set()
        ordered = sorted(entries, key=lambda e: e.idempotency_key)
        values = [{name: getattr(entry, name) for name in _USAGE_COLUMNS} for entry in ordered]
        return set(self._session.scalars(self._add, values))

    def remove(self, licensee_id: str, keys: Sequence[str]) -> None:
        """Delete records inserted earlier in this transaction (whose receipt turned out consumed)."""
        if keys:
            self._session.execute(
                delete(UsageRecordRow).where(
                    UsageRecordRow.licensee_id == licensee_id, UsageRecordRow.idempotency_key.in_(list(keys))
                )
            )

    def consume_receipt(self, receipt_id: str, character_id: str, uses: int, capacity: int) -> bool:
        """Count ``uses`` against a receipt's character if that stays within ``capacity`` and the
        receipt is not consumed yet; whether it was counted. One conditional upsert: never
        read-modify-write, so concurrent reports on any number of servers cannot pass the capacity."""
        parameters = {"receipt_id": receipt_id, "character_id": character_id, "uses": uses, "capacity": capacity}
        return self._session.execute(self._consume, parameters).first() is not None

    def roll_up(self, entries: Sequence[UsageEntry]) -> None:
        """Add accepted records to the daily roll-up: one row per rights holder, UTC day, character
        and licensee, in key order so that concurrent batches take row locks in one order."""
        if not entries:
            return
        sums: dict[tuple[str, str, str, str], list[int]] = {}
        for entry in entries:
            key = (
                entry.rights_holder_id,
                f"{entry.happen_time.astimezone(UTC):%Y-%m-%d}",
                entry.character_id,
                entry.licensee_id,
            )
            found = sums.setdefault(key, [0, 0, 0])
            found[0] += 1
            found[1] += entry.uses
            found[2] += entry.duration_ms
        values = [
            {
                "rights_holder_id": k[0],
                "day": k[1],
                "character_id": k[2],
                "licensee_id": k[3],
                "records": v[0],
                "uses": v[1],
                "duration_ms": v[2],
            }
            for k, v in sorted(sums.items())
        ]
        self._session.execute(self._daily, values)

    def usage_by_day_and_key(
        self,
        rights_holder_id: str,
        first_day: str,
        last_day: str,
        *,
        by_licensee: bool,
        character_id: str | None = None,
        licensee_id: str | None = None,
    ) -> list[DailyUsage]:
        """The roll-up's sums per day and character (or licensee) between two days (``YYYY-MM-DD``,
        inclusive). One pass over the primary key's range of days: grouped by day first, in the
        key's own order, so the database needs no sort (per character) or only one per day."""
        key = UsageDailyRow.licensee_id if by_licensee else UsageDailyRow.character_id
        where = self._where(rights_holder_id, first_day, last_day, character_id, licensee_id)
        stmt = select(UsageDailyRow.day, key, *self._sums()).where(*where).group_by(UsageDailyRow.day, key)
        return [DailyUsage(str(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in self._session.execute(stmt)]

    @staticmethod
    def _sums() -> tuple[Any, ...]:
        return (
            func.sum(UsageDailyRow.records),
            func.sum(UsageDailyRow.uses),
            func.sum(UsageDailyRow.duration_ms),
        )

    @staticmethod
    def _where(
        rights_holder_id: str, first_day: str, last_day: str, character_id: str | None, licensee_id: str | None
    ) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = [
            UsageDailyRow.rights_holder_id == rights_holder_id,
            UsageDailyRow.day >= first_day,
            UsageDailyRow.day <= last_day,
        ]
        if character_id:
            where.append(UsageDailyRow.character_id == character_id)
        if licensee_id:
            where.append(UsageDailyRow.licensee_id == licensee_id)
        return where

    def receipt_used(self, receipt_id: str, character_id: str) -> int:
        """The uses reported against a receipt's character (0 when none)."""
        value = self._session.scalar(
            select(ReceiptUseRow.used).where(
                ReceiptUseRow.receipt_id == receipt_id, ReceiptUseRow.character_id == character_id
            )
        )
        return int(value or 0)


def _usage(row: UsageRecordRow) -> UsageEntry:
    return UsageEntry(**{f.name: getattr(row, f.name) for f in dataclasses.fields(UsageEntry)})
