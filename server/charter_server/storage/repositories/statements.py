"""Closed statement periods and the sums statements are made of."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    tuple_,
    union,
)
from sqlalchemy.orm import Session

from charter_server.domain import events as ev
from charter_server.domain.events import EventSink
from charter_server.domain.models import (
    LineSums,
    UsageEntry,
)
from charter_server.storage.dialect import Dialect
from charter_server.storage.tables import (
    RightsHolderRow,
    StatementAmountRow,
    StatementClosureRow,
    UsageRecordRow,
)

_HALF = 2**32
"""Amounts are summed in two halves (quotient and remainder by this), each far inside 64 bits for
any number of records, so that no sum overflows in the database (SQLite's sum() of integers raises
on overflow); Python puts the halves together."""


def _wide_sum(amount: Any) -> tuple[Any, Any]:
    return func.sum(amount // _HALF), func.sum(amount % _HALF)


def _joined(high: Any, low: Any) -> int:
    return int(high or 0) * _HALF + int(low or 0)


class StatementRepository:
    """Closed periods, and the sums that statements are made of."""

    def __init__(self, session: Session, dialect: Dialect, events: EventSink) -> None:
        self._session = session
        self._dialect = dialect
        self._events = events

    def lock_rights_holders(self, rights_holder_ids: Sequence[str], *, exclusive: bool = False) -> None:
        """Serialise closing a rights holder's period with accepting records for it.

        Accepting takes a key-share lock on the rights holders (accepters never wait for each
        other, nor for edits of a rights holder), or an exclusive one when its records add money, as
        it then reads and adds to the months' amounts (``charter_server.services.usage``); closing
        takes an exclusive one (a no-op where write transactions are serialised anyway: see
        ``storage.dialect``).
        """
        if not rights_holder_ids or not self._dialect.locks_rows:
            return
        stmt = select(RightsHolderRow.id).where(RightsHolderRow.id.in_(sorted(set(rights_holder_ids))))
        stmt = self._dialect.for_update(stmt, key_share=not exclusive)
        self._session.execute(stmt.order_by(RightsHolderRow.id)).all()

    def closed_periods(self, rights_holder_ids: Sequence[str]) -> dict[str, set[str]]:
        """The closed periods of each rights holder (an empty set when none)."""
        closed: dict[str, set[str]] = {rh: set() for rh in rights_holder_ids}
        if rights_holder_ids:
            rows = self._session.execute(
                select(StatementClosureRow.rights_holder_id, StatementClosureRow.period).where(
                    StatementClosureRow.rights_holder_id.in_(list(set(rights_holder_ids)))
                )
            )
            for rights_holder_id, period in rows:
                closed[rights_holder_id].add(period)
        return closed

    def closure(self, rights_holder_id: str, period: str) -> datetime | None:
        """When the period was closed, or None when it is open."""
        return self._session.scalar(
            select(StatementClosureRow.close_time).where(
                StatementClosureRow.rights_holder_id == rights_holder_id, StatementClosureRow.period == period
            )
        )

    def close(self, rights_holder_id: str, period: str, when: datetime, key_id: str) -> None:
        """Record the period as closed."""
        self._session.add(
            StatementClosureRow(
                rights_holder_id=rights_holder_id, period=period, close_time=when, closed_by_key_id=key_id
            )
        )
        self._session.flush()
        self._events.raise_event(ev.StatementPeriodClosed(rights_holder_id, period))

    def period_sums(self, pairs: Sequence[tuple[str, str]], licensee_id: str | None = None) -> list[LineSums]:
        """The line sums of these (rights holder, statement period) pairs."""
        if not pairs:
            return []
        adjustment = case(
            (UsageRecordRow.happen_period == UsageRecordRow.statement_period, ""),
            else_=UsageRecordRow.happen_period,
        )
        where: list[ColumnElement[bool]] = [
            tuple_(UsageRecordRow.rights_holder_id, UsageRecordRow.statement_period).in_(list(pairs))
        ]
        if licensee_id:
            where.append(UsageRecordRow.licensee_id == licensee_id)
        return self._sums(UsageRecordRow.statement_period, adjustment, where)

    def month_amounts(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str, str, str], tuple[int, int]]:
        """The revenue and the fees so far of each (rights holder, statement period) by currency
        and licensee: ``(rights holder, period, currency, licensee) -> (revenue, fees)`` in minor
        units (kept by `add_to_months`, one row each: no sum over the month's records)."""
        if not pairs:
            return {}
        amounts = StatementAmountRow
        stmt = select(
            amounts.rights_holder_id,
            amounts.statement_period,
            amounts.currency,
            amounts.licensee_id,
            amounts.revenue,
            amounts.fees,
        ).where(tuple_(amounts.rights_holder_id, amounts.statement_period).in_(sorted(set(pairs))))
        return {(row[0], row[1], row[2], row[3]): (int(row[4]), int(row[5])) for row in self._session.execute(stmt)}

    def add_to_months(self, entries: Sequence[UsageEntry]) -> None:
        """Add accepted records' revenue and fees to their statement months' amounts (per
        licensee), in the transaction that inserts them; rows in key order, so concurrent batches
        lock them in one order."""
        added: dict[tuple[str, str, str, str], list[int]] = {}
        for entry in entries:
            fees = entry.fee_minor * entry.uses
            if entry.revenue_minor > 0 or fees > 0:
                key = (entry.rights_holder_id, entry.statement_period, entry.currency, entry.licensee_id)
                sums = added.setdefault(key, [0, 0])
                sums[0] += entry.revenue_minor
                sums[1] += fees
        if not added:
            return
        table = cast(Table, StatementAmountRow.__table__)
        upsert = self._dialect.insert(table)
        statement = upsert.on_conflict_do_update(
            index_elements=["rights_holder_id", "statement_period", "currency", "licensee_id"],
            set_={"revenue": table.c.revenue + upsert.excluded.revenue, "fees": table.c.fees + upsert.excluded.fees},
        )
        names = ("rights_holder_id", "statement_period", "currency", "licensee_id")
        values = [{**dict(zip(names, k, strict=True)), "revenue": v[0], "fees": v[1]} for k, v in sorted(added.items())]
        self._session.execute(statement, values)

    def range_sums(
        self, rights_holder_id: str, start: datetime, end: datetime, licensee_id: str | None = None
    ) -> list[LineSums]:
        """The line sums of the records that happened in [start, end), without adjustments."""
        where: list[ColumnElement[bool]] = [
            UsageRecordRow.rights_holder_id == rights_holder_id,
            UsageRecordRow.happen_time >= start,
            UsageRecordRow.happen_time < end,
        ]
        if licensee_id:
            where.append(UsageRecordRow.licensee_id == licensee_id)
        return self._sums(literal(""), literal(""), where)

    def _sums(self, period: Any, adjustment: Any, where: list[ColumnElement[bool]]) -> list[LineSums]:
        """Sum in the database per line and per (basis points, fee); multiply and add up in Python,
        whose integers never overflow (SQLite's 64-bit sum of revenue x basis points could)."""
        keys = (
            UsageRecordRow.rights_holder_id,
            period,
            UsageRecordRow.character_id,
            UsageRecordRow.licensee_id,
            UsageRecordRow.currency,
            adjustment,
        )
        stmt = (
            select(
                *keys,
                UsageRecordRow.revenue_share_bps,
                UsageRecordRow.fee_minor,
                func.count(),
                func.sum(UsageRecordRow.uses),
                func.sum(UsageRecordRow.duration_ms),
                *_wide_sum(UsageRecordRow.revenue_minor),
            )
            .where(*where)
            .group_by(*keys, UsageRecordRow.revenue_share_bps, UsageRecordRow.fee_minor)
        )
        lines: dict[tuple[str, ...], LineSums] = {}
        for row in self._session.execute(stmt):
            key = tuple(row[:6])
            bps, fee, records, uses, duration = (int(v) for v in row[6:11])
            revenue = _joined(row[11], row[12])
            found = lines.get(key)
            lines[key] = LineSums(
                rights_holder_id=row[0],
                statement_period=row[1],
                character_id=row[2],
                licensee_id=row[3],
                currency=row[4],
                adjustment_for_period=row[5],
                records=records + (found.records if found else 0),
                uses=uses + (found.uses if found else 0),
                duration_ms=duration + (found.duration_ms if found else 0),
                revenue_minor=revenue + (found.revenue_minor if found else 0),
                revenue_times_bps=revenue * bps + (found.revenue_times_bps if found else 0),
                fees_minor=fee * uses + (found.fees_minor if found else 0),
            )
        return list(lines.values())

    def periods(
        self,
        *,
        rights_holder_id: str | None,
        licensee_id: str | None,
        after: tuple[str, str] | None,
        limit: int,
    ) -> tuple[list[tuple[str, str]], bool]:
        """(rights holder, period) pairs with usage (or, without a licensee filter, closed), newest
        period first, then by rights holder; after the cursor ``after``; and whether more follow."""
        used = select(UsageRecordRow.rights_holder_id.label("rh"), UsageRecordRow.statement_period.label("period"))
        if rights_holder_id:
            used = used.where(UsageRecordRow.rights_holder_id == rights_holder_id)
        if licensee_id:
            used = used.where(UsageRecordRow.licensee_id == licensee_id)
        selects = [used]
        if not licensee_id:
            closed = select(
                StatementClosureRow.rights_holder_id.label("rh"), StatementClosureRow.period.label("period")
            )
            if rights_holder_id:
                closed = closed.where(StatementClosureRow.rights_holder_id == rights_holder_id)
            selects.append(closed)
        both = union(*selects).subquery() if len(selects) > 1 else used.distinct().subquery()
        stmt = select(both.c.rh, both.c.period)
        if after is not None:
            period, rh = after
            stmt = stmt.where(or_(both.c.period < period, and_(both.c.period == period, both.c.rh > rh)))
        rows = self._session.execute(stmt.order_by(both.c.period.desc(), both.c.rh).limit(limit + 1)).all()
        return [(r[0], r[1]) for r in rows[:limit]], len(rows) > limit
