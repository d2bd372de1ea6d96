"""Accepted usage records and the uses reported against each receipt."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from datetime import UTC
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Table,
    bindparam,
    delete,
    func,
    select,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from charter_server.domain.models import (
    DailyUsage,
    UsageEntry,
    UsageSeriesRows,
)
from charter_server.storage.dialect import Dialect
from charter_server.storage.tables import (
    ReceiptUseRow,
    UsageDailyCharacterRow,
    UsageDailyLicenseeRow,
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
    upsert = insert(uses).values(
        licensee_id=bindparam("licensee_id"),
        receipt_id=bindparam("receipt_id"),
        character_id=bindparam("character_id"),
    )
    upsert = upsert.values(used=bindparam("uses"))
    consume = upsert.on_conflict_do_update(
        index_elements=["licensee_id", "receipt_id", "character_id"],
        set_={"used": uses.c.used + upsert.excluded.used},
        where=(uses.c.used < bindparam("capacity")) & (uses.c.used + upsert.excluded.used <= bindparam("capacity")),
    ).returning(uses.c.used)
    return add, consume


_DAILY_TABLES = (
    (cast(Table, UsageDailyRow.__table__), ("rights_holder_id", "day", "character_id", "licensee_id")),
    (cast(Table, UsageDailyCharacterRow.__table__), ("rights_holder_id", "character_id", "day")),
    (cast(Table, UsageDailyLicenseeRow.__table__), ("rights_holder_id", "licensee_id", "day")),
)
"""The daily roll-ups, each with its primary key's columns in order."""


@functools.cache
def _daily_statements(dialect: Dialect) -> tuple[Any, ...]:
    """The roll-ups' upserts (in ``_DAILY_TABLES``' order), built once per dialect: each adds a
    batch's sums to each day's row."""
    statements = []
    for table, keys in _DAILY_TABLES:
        upsert = dialect.insert(table)
        statements.append(
            upsert.on_conflict_do_update(
                index_elements=list(keys),
                set_={
                    "records": table.c.records + upsert.excluded.records,
                    "uses": table.c.uses + upsert.excluded.uses,
                    "duration_ms": table.c.duration_ms + upsert.excluded.duration_ms,
                },
            )
        )
    return tuple(statements)


_USAGE_COLUMNS = tuple(f.name for f in dataclasses.fields(UsageEntry))


class UsageRepository:
    """Accepted usage records and the uses reported against each receipt."""

    def __init__(self, session: Session, dialect: Dialect) -> None:
        self._session = session
        self._add, self._consume = _usage_statements(dialect)
        self._daily = _daily_statements(dialect)

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

    def records_of_receipt(self, licensee_id: str, receipt_id: str, character_id: str) -> int:
        """How many records of a licensee name this receipt (or decision record) and character."""
        stmt = select(func.count()).where(
            UsageRecordRow.receipt_id == receipt_id,
            UsageRecordRow.licensee_id == licensee_id,
            UsageRecordRow.character_id == character_id,
        )
        return int(self._session.execute(stmt).scalar_one())

    def consume_receipt(self, licensee_id: str, receipt_id: str, character_id: str, uses: int, capacity: int) -> bool:
        """Count ``uses`` of a licensee against a receipt's (or decision record's) character if that
        stays within ``capacity`` and it is not consumed yet; whether it was counted. One conditional
        upsert: never read-modify-write, so concurrent reports on any number of servers cannot pass
        the capacity. Counted per licensee: another licensee's record under the same id is its own."""
        parameters = {
            "licensee_id": licensee_id,
            "receipt_id": receipt_id,
            "character_id": character_id,
            "uses": uses,
            "capacity": capacity,
        }
        return self._session.execute(self._consume, parameters).first() is not None

    def roll_up(self, entries: Sequence[UsageEntry]) -> None:
        """Add accepted records to the daily roll-ups: one row per rights holder, UTC day, character
        and licensee, and the same summed per character and per licensee; each in its primary key's
        order, so that concurrent batches take row locks in one order."""
        if not entries:
            return
        both: dict[tuple[str, str, str, str], list[int]] = {}
        for entry in entries:
            key = (
                entry.rights_holder_id,
                f"{entry.happen_time.astimezone(UTC):%Y-%m-%d}",
                entry.character_id,
                entry.licensee_id,
            )
            found = both.setdefault(key, [0, 0, 0])
            found[0] += 1
            found[1] += entry.uses
            found[2] += entry.duration_ms
        characters: dict[tuple[str, str, str], list[int]] = {}
        licensees: dict[tuple[str, str, str], list[int]] = {}
        for (holder, day, character, licensee), sums in both.items():
            for summed, one in ((characters, (holder, character, day)), (licensees, (holder, licensee, day))):
                found = summed.setdefault(one, [0, 0, 0])
                for i in range(3):
                    found[i] += sums[i]
        rolled: tuple[dict[Any, list[int]], ...] = (both, characters, licensees)
        for statement, (_table, keys), rows in zip(self._daily, _DAILY_TABLES, rolled, strict=True):
            values = [
                {**dict(zip(keys, k, strict=True)), "records": v[0], "uses": v[1], "duration_ms": v[2]}
                for k, v in sorted(rows.items())
            ]
            self._session.execute(statement, values)

    def usage_series(
        self,
        rights_holder_id: str,
        first_day: str,
        last_day: str,
        *,
        by_licensee: bool,
        limit: int,
        character_id: str | None = None,
        licensee_id: str | None = None,
    ) -> UsageSeriesRows:
        """Usage between two days (``YYYY-MM-DD``, inclusive) per day, per character (or licensee)
        and per both, for the ``limit`` busiest characters (or licensees).

        Three reads, each summed by the database, so that only what the answer carries leaves it:
        the sums per day, the busiest series with their number, and the days of those series. They
        read the smallest roll-up that has the keys asked for: per character or per licensee,
        or per both when a series per character is narrowed to a licensee, or the reverse.
        """
        table = _series_table(by_licensee, character_id, licensee_id)
        key = table.c.licensee_id if by_licensee else table.c.character_id

        def where(source: Table) -> list[ColumnElement[bool]]:
            found = [source.c.rights_holder_id == rights_holder_id, source.c.day.between(first_day, last_day)]
            if character_id:
                found.append(source.c.character_id == character_id)
            if licensee_id:
                found.append(source.c.licensee_id == licensee_id)
            return found

        # Core statements on the session's connection: no ORM row processing for thousands of rows.
        connection = self._session.connection()
        # The sums per day over every series are the same in every roll-up when nothing narrows
        # them; the one per licensee has the fewest rows (a rights holder has fewer licensees than characters).
        summed = table if character_id or licensee_id else cast(Table, UsageDailyLicenseeRow.__table__)
        days = [
            DailyUsage(row[0], "", row[1], row[2], row[3])
            for row in connection.execute(
                select(summed.c.day, *_sums(summed)).where(*where(summed)).group_by(summed.c.day).order_by(summed.c.day)
            ).all()
        ]
        records, uses, duration = _sums(table)
        ranked_rows = connection.execute(
            select(key, records, uses, duration, func.count().over())
            .where(*where(table))
            .group_by(key)
            .order_by(uses.desc(), records.desc(), key)
            .limit(limit)
        ).all()
        ranked = [DailyUsage("", row[0], row[1], row[2], row[3]) for row in ranked_rows]
        series_days: list[DailyUsage] = []
        if ranked:
            keys = [found.key for found in ranked]
            if table is _DAILY_TABLES[0][0]:
                days_of = select(table.c.day, key, records, uses, duration).group_by(table.c.day, key)
            else:  # one row per day and key already: no sums
                days_of = select(table.c.day, key, table.c.records, table.c.uses, table.c.duration_ms)
            # In no order: sorting thousands of rows costs PostgreSQL more than the caller, which
            # sorts each series' few hundred days.
            rows = connection.execute(days_of.where(*where(table), key.in_(keys)))
            series_days = list(map(DailyUsage._make, rows.all()))
        return UsageSeriesRows(
            days=days,
            ranked=ranked,
            series_count=ranked_rows[0][4] if ranked_rows else 0,
            series_days=series_days,
        )


def _usage(row: UsageRecordRow) -> UsageEntry:
    return UsageEntry(**{f.name: getattr(row, f.name) for f in dataclasses.fields(UsageEntry)})


def _sums(table: Table) -> tuple[Any, Any, Any]:
    """The sums of a roll-up's records, uses and duration, cast back to BIGINT: PostgreSQL's sum of
    a bigint is a numeric (a Decimal here)."""
    records, uses, duration = (table.c[name] for name in ("records", "uses", "duration_ms"))
    return (
        sql_cast(func.sum(records), BigInteger),
        sql_cast(func.sum(uses), BigInteger),
        sql_cast(func.sum(duration), BigInteger),
    )


def _series_table(by_licensee: bool, character_id: str | None, licensee_id: str | None) -> Table:
    """The smallest roll-up with the series' key and the filters' columns."""
    if by_licensee:
        return cast(Table, (UsageDailyRow if character_id else UsageDailyLicenseeRow).__table__)
    return cast(Table, (UsageDailyRow if licensee_id else UsageDailyCharacterRow).__table__)
