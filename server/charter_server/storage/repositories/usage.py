"""Accepted usage records and the uses reported against each receipt."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import (
    Table,
    bindparam,
    delete,
    select,
)
from sqlalchemy.orm import Session

from charter_server.domain.models import (
    UsageEntry,
)
from charter_server.storage.dialect import Dialect
from charter_server.storage.tables import (
    ReceiptUseRow,
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


_USAGE_COLUMNS = tuple(f.name for f in dataclasses.fields(UsageEntry))


class UsageRepository:
    """Accepted usage records and the uses reported against each receipt."""

    def __init__(self, session: Session, dialect: Dialect) -> None:
        self._session = session
        self._add, self._consume = _usage_statements(dialect)

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
