"""Repositories of offline-first generation: licensee keys and quota leases.

Lease counters follow the rule of `charter_server.storage.repositories.QuotaRepository`: every
change is one conditional single-statement update, never read-modify-write, so concurrent
transactions on any number of servers never pass a quota, a cap or a lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from charter_server.domain import events as ev
from charter_server.domain.events import EventSink
from charter_server.domain.models import GrantRecord, GrantState
from charter_server.domain.offline import LeaseState, LicenseeKeyRecord, LicenseeKeyState, QuotaLeaseRecord
from charter_server.storage.dialect import Dialect
from charter_server.storage.repositories.grants import grant_record
from charter_server.storage.tables import (
    GrantRow,
    GrantUseRow,
    LicenseeKeyRow,
    QuotaCounterRow,
    QuotaLeaseRow,
    UTCDateTime,
)

_LIVE = (LeaseState.OPEN.value, LeaseState.RETURNED.value)
_LEASES = cast(Table, QuotaLeaseRow.__table__)
# Core statements built once: they run once per reported record, and an ORM-enabled update pays
# for building, compiling and synchronizing the session every time.
_REPORT = (
    update(_LEASES)
    .where(
        _LEASES.c.lease_id == bindparam("b_lease_id"),
        _LEASES.c.state.in_(_LIVE),
        _LEASES.c.report_deadline >= bindparam("now", type_=UTCDateTime()),
        _LEASES.c.reported + bindparam("n") <= _LEASES.c.uses,
    )
    .values(reported=_LEASES.c.reported + bindparam("n"))
)
# A record reported after its lease was reclaimed (it arrived past the report deadline): still
# never more uses than leased, and only once the reclaim has given the unreported uses back.
_REPORT_RECLAIMED = (
    update(_LEASES)
    .where(
        _LEASES.c.lease_id == bindparam("b_lease_id"),
        _LEASES.c.state == LeaseState.RECLAIMED.value,
        _LEASES.c.reported + bindparam("n") <= _LEASES.c.uses,
    )
    .values(reported=_LEASES.c.reported + bindparam("n"))
)
_REPORT_BACK = (
    update(_LEASES)
    .where(_LEASES.c.lease_id == bindparam("b_lease_id"))
    .values(reported=_LEASES.c.reported - bindparam("n"))
)


def _key(row: LicenseeKeyRow) -> LicenseeKeyRecord:
    return LicenseeKeyRecord(
        key_id=row.key_id,
        licensee_id=row.licensee_id,
        public_key=bytes(row.public_key),
        display_name=row.display_name,
        state=LicenseeKeyState(row.state),
        activate_time=row.activate_time,
        retire_time=row.retire_time,
        revoke_time=row.revoke_time,
    )


class LicenseeKeyRepository:
    """Licensee keys; each change raises `LicenseeKeyChanged` (the transparency log records it)."""

    def __init__(self, session: Session, dialect: Dialect, events: EventSink) -> None:
        self._session = session
        self._dialect = dialect
        self._events = events

    def add(self, key: LicenseeKeyRecord) -> bool:
        """Insert a key unless its public key is registered already; whether it was inserted."""
        insert = self._dialect.insert
        result = self._session.execute(
            insert(LicenseeKeyRow)
            .values(
                key_id=key.key_id,
                licensee_id=key.licensee_id,
                public_key=key.public_key,
                display_name=key.display_name,
                state=key.state.value,
                activate_time=key.activate_time,
                retire_time=key.retire_time,
                revoke_time=key.revoke_time,
                revoke_reason="",
            )
            .on_conflict_do_nothing(index_elements=["public_key"])
            # RETURNING, not rowcount: psycopg reports a row for an insert that did nothing.
            .returning(LicenseeKeyRow.key_id)
        )
        inserted = result.first() is not None
        if inserted:
            self._events.raise_event(ev.LicenseeKeyChanged(key.key_id, key.licensee_id, key.state.value))
        return inserted

    def get(self, key_id: str, *, for_update: bool = False) -> LicenseeKeyRecord | None:
        """One key, or None."""
        stmt = select(LicenseeKeyRow).where(LicenseeKeyRow.key_id == key_id).execution_options(populate_existing=True)
        if for_update:
            stmt = stmt.with_for_update()
        row = self._session.scalars(stmt).first()
        return None if row is None else _key(row)

    def of_licensee(self, licensee_id: str) -> list[LicenseeKeyRecord]:
        """Every key of a licensee, newest first."""
        rows = self._session.scalars(
            select(LicenseeKeyRow)
            .where(LicenseeKeyRow.licensee_id == licensee_id)
            .order_by(LicenseeKeyRow.seq.desc())
            .execution_options(populate_existing=True)
        )
        return [_key(row) for row in rows]

    def set_state(self, key_id: str, state: LicenseeKeyState, when: datetime, reason: str = "") -> None:
        """Retire or revoke a key (a revoked key counts as retired from then on, too)."""
        values: dict[str, object] = {"state": state.value}
        if state is LicenseeKeyState.RETIRED:
            values["retire_time"] = when
        else:
            values["revoke_time"] = when
            values["revoke_reason"] = reason
        result = self._session.execute(
            update(LicenseeKeyRow)
            .where(LicenseeKeyRow.key_id == key_id)
            .values(**values)
            .returning(LicenseeKeyRow.licensee_id)
        )
        for (licensee_id,) in result:
            self._events.raise_event(ev.LicenseeKeyChanged(key_id, licensee_id, state.value, reason))
        if state is LicenseeKeyState.REVOKED:
            self._session.execute(
                update(LicenseeKeyRow)
                .where(LicenseeKeyRow.key_id == key_id, LicenseeKeyRow.retire_time.is_(None))
                .values(retire_time=when)
            )


def _lease(row: QuotaLeaseRow) -> QuotaLeaseRecord:
    return QuotaLeaseRecord(
        lease_id=row.lease_id,
        licensee_id=row.licensee_id,
        character_id=row.character_id,
        grant_id=row.grant_id,
        uses=row.uses,
        reported=row.reported,
        state=LeaseState(row.state),
        day_period=row.day_period,
        month_period=row.month_period,
        capped=row.capped,
        create_time=row.create_time,
        expire_time=row.expire_time,
        report_deadline=row.report_deadline,
    )


class LeaseRepository:
    """Quota leases and the counters they hold uses of."""

    def __init__(self, session: Session, dialect: Dialect, events: EventSink) -> None:
        self._session = session
        self._insert = dialect.insert
        self._events = events

    # Counters ---------------------------------------------------------------------------------

    def take(self, licensee_id: str, character_id: str, period: str, n: int, limit: int) -> bool:
        """Count ``n`` uses in a quota period if that stays within ``limit``; whether it did."""
        if n <= 0:
            return n == 0
        self._session.execute(
            self._insert(QuotaCounterRow)
            .values(licensee_id=licensee_id, character_id=character_id, period=period, used=0)
            .on_conflict_do_nothing()
        )
        result = self._session.execute(
            update(QuotaCounterRow)
            .where(
                QuotaCounterRow.licensee_id == licensee_id,
                QuotaCounterRow.character_id == character_id,
                QuotaCounterRow.period == period,
                QuotaCounterRow.used + n <= limit,
            )
            .values(used=QuotaCounterRow.used + n)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def take_grant(self, grant_id: str, n: int, limit: int) -> bool:
        """Count ``n`` uses against a grant's cap if that stays within ``limit``; whether it did."""
        if n <= 0:
            return n == 0
        self._session.execute(self._insert(GrantUseRow).values(grant_id=grant_id, used=0).on_conflict_do_nothing())
        result = self._session.execute(
            update(GrantUseRow)
            .where(GrantUseRow.grant_id == grant_id, GrantUseRow.used + n <= limit)
            .values(used=GrantUseRow.used + n)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def release(self, lease: QuotaLeaseRecord, n: int) -> None:
        """Give ``n`` uses of a lease back to every counter that holds them."""
        if n > 0:
            self._move(lease, -n)

    def count_again(self, lease: QuotaLeaseRecord, n: int) -> None:
        """Count ``n`` uses of a reclaimed lease again in every counter it gave them back to,
        whatever the limits: the uses happened (their records arrived after the report deadline)."""
        if n > 0:
            self._move(lease, n)

    def _move(self, lease: QuotaLeaseRecord, n: int) -> None:
        for period in (lease.day_period, lease.month_period):
            if period:
                self._session.execute(
                    update(QuotaCounterRow)
                    .where(
                        QuotaCounterRow.licensee_id == lease.licensee_id,
                        QuotaCounterRow.character_id == lease.character_id,
                        QuotaCounterRow.period == period,
                    )
                    .values(used=QuotaCounterRow.used + n)
                )
        if lease.capped:
            self._session.execute(
                update(GrantUseRow).where(GrantUseRow.grant_id == lease.grant_id).values(used=GrantUseRow.used + n)
            )

    # Leases -----------------------------------------------------------------------------------

    def add(self, lease: QuotaLeaseRecord) -> None:
        """Insert a new lease."""
        self._session.add(
            QuotaLeaseRow(
                lease_id=lease.lease_id,
                licensee_id=lease.licensee_id,
                character_id=lease.character_id,
                grant_id=lease.grant_id,
                uses=lease.uses,
                reported=lease.reported,
                state=lease.state.value,
                day_period=lease.day_period,
                month_period=lease.month_period,
                capped=lease.capped,
                create_time=lease.create_time,
                expire_time=lease.expire_time,
                report_deadline=lease.report_deadline,
            )
        )
        self._session.flush()
        self._events.raise_event(ev.QuotaLeaseChanged(lease.lease_id, "leased"))

    def get(self, lease_id: str, *, for_update: bool = False) -> QuotaLeaseRecord | None:
        """One lease, or None."""
        # Always fresh: the conditional updates here change rows behind the session's back.
        stmt = select(QuotaLeaseRow).where(QuotaLeaseRow.lease_id == lease_id).execution_options(populate_existing=True)
        if for_update:
            stmt = stmt.with_for_update()
        row = self._session.scalars(stmt).first()
        return None if row is None else _lease(row)

    def grow(self, lease_id: str, n: int, expire_time: datetime, report_deadline: datetime) -> None:
        """Add uses to an open lease and move its expiry and report deadline."""
        self._session.execute(
            update(QuotaLeaseRow)
            .where(QuotaLeaseRow.lease_id == lease_id)
            .values(uses=QuotaLeaseRow.uses + n, expire_time=expire_time, report_deadline=report_deadline)
        )
        self._events.raise_event(ev.QuotaLeaseChanged(lease_id, "renewed"))

    def shrink(self, lease_id: str, keep: int) -> bool:
        """Close an open lease for spending, keeping ``keep`` uses (never fewer than reported);
        whether it was open."""
        result = self._session.execute(
            update(QuotaLeaseRow)
            .where(QuotaLeaseRow.lease_id == lease_id, QuotaLeaseRow.state == LeaseState.OPEN.value)
            .values(uses=keep, state=LeaseState.RETURNED.value)
        )
        returned = bool(result.rowcount)  # type: ignore[attr-defined]
        if returned:
            self._events.raise_event(ev.QuotaLeaseChanged(lease_id, "returned"))
        return returned

    def report(self, lease_id: str, n: int, now: datetime) -> bool:
        """Count ``n`` reported uses against a live lease if that stays within its uses and its
        report deadline has not passed; whether it did."""
        result = self._session.execute(_REPORT, {"b_lease_id": lease_id, "n": n, "now": now})
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def report_reclaimed(self, lease_id: str, n: int) -> bool:
        """Count ``n`` uses reported late against a reclaimed lease if that stays within its uses;
        whether it did (the caller counts them again with `count_again`)."""
        result = self._session.execute(_REPORT_RECLAIMED, {"b_lease_id": lease_id, "n": n})
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def unreport(self, lease_id: str, n: int) -> None:
        """Take back ``n`` uses counted by `report` earlier in this transaction."""
        self._session.execute(_REPORT_BACK, {"b_lease_id": lease_id, "n": n})

    def due(self, now: datetime, limit: int, *, licensee_id: str = "", character_id: str = "") -> list[str]:
        """Ids of live leases past their report deadline, oldest deadline first (of one licensee's
        character when both are given)."""
        query = select(QuotaLeaseRow.lease_id).where(
            QuotaLeaseRow.state.in_(_LIVE), QuotaLeaseRow.report_deadline < now
        )
        if licensee_id and character_id:
            query = query.where(QuotaLeaseRow.licensee_id == licensee_id, QuotaLeaseRow.character_id == character_id)
        return list(self._session.scalars(query.order_by(QuotaLeaseRow.report_deadline).limit(limit)))

    def reclaim(self, lease_id: str, now: datetime) -> QuotaLeaseRecord | None:
        """Mark a live lease past its deadline reclaimed; the lease as it was, or None when another
        transaction reclaimed it first (or it is not due). The conditional update takes the row
        lock, so a concurrent report either counted before (and is in ``reported``) or is refused."""
        result = self._session.execute(
            update(QuotaLeaseRow)
            .where(
                QuotaLeaseRow.lease_id == lease_id,
                QuotaLeaseRow.state.in_(_LIVE),
                QuotaLeaseRow.report_deadline < now,
            )
            .values(state=LeaseState.RECLAIMED.value)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            return None
        row = self._session.scalars(
            select(QuotaLeaseRow).where(QuotaLeaseRow.lease_id == lease_id).execution_options(populate_existing=True)
        ).one()
        self._events.raise_event(ev.QuotaLeaseChanged(lease_id, "reclaimed"))
        return _lease(row)

    def get_many(self, lease_ids: Sequence[str]) -> dict[str, QuotaLeaseRecord]:
        """The leases that exist among ``lease_ids``, by id (one query)."""
        if not lease_ids:
            return {}
        rows = self._session.scalars(
            select(QuotaLeaseRow)
            .where(QuotaLeaseRow.lease_id.in_(list(lease_ids)))
            .execution_options(populate_existing=True)
        )
        return {row.lease_id: _lease(row) for row in rows}

    def of_licensee(self, licensee_id: str, states: Sequence[LeaseState]) -> list[QuotaLeaseRecord]:
        """A licensee's leases in the given states."""
        rows = self._session.scalars(
            select(QuotaLeaseRow).where(
                QuotaLeaseRow.licensee_id == licensee_id, QuotaLeaseRow.state.in_([s.value for s in states])
            )
        )
        return [_lease(row) for row in rows]


class BundleRepository:
    """What a generator's grant bundle holds."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def grants(self, grant_ids: Sequence[str]) -> dict[str, GrantRecord]:
        """The grants that exist among ``grant_ids``, by id (one query)."""
        if not grant_ids:
            return {}
        rows = self._session.scalars(select(GrantRow).where(GrantRow.id.in_(list(grant_ids))))
        return {row.id: grant_record(row) for row in rows}

    def live_grants(self, licensee_id: str, now: datetime, limit: int) -> list[GrantRecord]:
        """The licensee's grants that are not revoked and not expired, oldest first, at most ``limit``."""
        rows = self._session.scalars(
            select(GrantRow)
            .where(
                GrantRow.licensee_id == licensee_id,
                GrantRow.state != GrantState.REVOKED.value,
                GrantRow.expire_time > now,
            )
            .order_by(GrantRow.seq)
            .limit(limit)
        )
        return [grant_record(row) for row in rows]
