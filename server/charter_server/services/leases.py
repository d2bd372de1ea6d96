"""Quota leases: blocks of uses a generation backend spends offline, never oversold in total.

**Leasing** counts the whole block at once against every counter the grant's uses count against
(the daily and monthly quota of the licensee and character, the grant's cap of uses), in one
transaction of conditional single-statement updates (``used + n <= limit``), all or nothing: the
same exactness as ``Authorize`` counting one use, which shares the counters. So across every
lease, every online decision and every server, the uses handed out never exceed a quota.

**Spending** happens in the SDK; each spent use is a decision record that ``ReportUsage`` counts
against the lease (``reported + 1 <= uses``, `charter_server.storage.offline.LeaseRepository.report`).

**Giving back.** A lease can be renewed (more uses, a later expiry) while it is open and
unexpired, and returned (the holder says how many it spent; the rest go back at once, and the
lease takes no more spending). Expiry is clipped to the end of the UTC day or month whose
counter holds the uses, so a use is never spent in another period than it was counted in. Every
lease has a report deadline, its expiry plus the report grace: records are counted against the
lease until then, and then the uses leased but not reported go back to the counters (reclaimed).
A record that arrives later is still accepted and paid (`report_use`): its use is counted again
in those counters, above their limits if the pool was spent meanwhile. Reclaiming is
lazy: each lease or renewal call first reclaims a few leases past their deadline, and so does an
``Authorize`` that finds a quota used up (`charter_server.services.authorization.quotas`), so the
pool recovers without a background worker on any replica, also where nothing leases any more.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from charter.v1 import terms_pb2

from charter_server.domain import ids
from charter_server.domain.clock import Clock
from charter_server.domain.errors import (
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
from charter_server.domain.models import CharacterState, GrantRecord, GrantState, Principal, Role
from charter_server.domain.offline import LeaseState, QuotaLeaseRecord
from charter_server.services.validation import Checker
from charter_server.storage.database import Database
from charter_server.storage.uow import UnitOfWork

log = structlog.get_logger(__name__)

MAX_LEASE_USES = 10_000
"""The most uses one lease call may take."""
MAX_TTL = timedelta(hours=24)
"""The longest a lease's uses may be spent for."""
RECLAIM_BATCH = 20
"""How many overdue leases one lease call reclaims first."""


@dataclass(frozen=True, slots=True)
class ReturnedLease:
    """A returned lease and how many uses went back."""

    lease: QuotaLeaseRecord
    released: int


def _quotas(grant: GrantRecord) -> tuple[int | None, int | None]:
    terms = terms_pb2.Terms.FromString(grant.terms)
    daily = terms.daily_quota if terms.HasField("daily_quota") else None
    monthly = terms.monthly_quota if terms.HasField("monthly_quota") else None
    return daily, monthly


def has_quota(grant: GrantRecord) -> bool:
    """Whether a grant's uses are counted (a daily or monthly quota, or a cap of uses)."""
    daily, monthly = _quotas(grant)
    return grant.max_uses is not None or daily is not None or monthly is not None


def _end_of_day(now: datetime) -> datetime:
    return datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)


def _end_of_month(now: datetime) -> datetime:
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def _ttl(checker: Checker, field: str, seconds: float | None) -> timedelta:
    if seconds is None:
        checker.add(field, "is required")
        return timedelta(0)
    if not 1 <= seconds <= MAX_TTL.total_seconds():
        checker.add(field, "must be between 1 second and 24 hours")
        return timedelta(0)  # never built from the value: past about 10**14 s a timedelta overflows
    return timedelta(seconds=seconds)


class LeaseService:
    """Leases, renews and returns blocks of quota; reclaims overdue leases."""

    def __init__(self, db: Database, clock: Clock, *, report_grace: timedelta) -> None:
        self._db = db
        self._clock = clock
        self._grace = report_grace

    @property
    def report_grace(self) -> timedelta:
        """How long after a lease's expiry its records are still accepted."""
        return self._grace

    def lease(
        self, principal: Principal, character_id: str, grant_id: str, uses: int, ttl_seconds: float | None
    ) -> QuotaLeaseRecord:
        """Lease ``uses`` uses of a grant for ``ttl_seconds`` (clipped to the counters' period).

        Raises:
            InvalidArgument: A field is missing or out of range, the grant is not for the
                character, or it has no quota or cap (nothing to lease).
            NotFound: No such grant of the caller's licensee (``GRANT_NOT_FOUND``).
            FailedPrecondition: The grant is revoked or suspended, or outside its validity
                (``LEASE_REFUSED``, with the cause in the metadata).
            ResourceExhausted: Fewer uses are left than asked for (``LEASE_REFUSED``, cause ``QUOTA``).
        """
        licensee_id = _licensee(principal)
        checker = Checker()
        checker.resource_id("character_id", character_id, "character")
        checker.resource_id("grant_id", grant_id, "grant")
        if not 1 <= uses <= MAX_LEASE_USES:
            checker.add("uses", f"must be between 1 and {MAX_LEASE_USES}")
        ttl = _ttl(checker, "ttl", ttl_seconds)
        checker.done()
        now = self._clock.now()
        with self._db.uow(write=True) as uow:
            self._reclaim_due(uow, now)
            grant = self._live_grant(uow, licensee_id, grant_id, now)
            if grant.character_id != character_id:
                raise InvalidArgument.one("character_id", "is not the grant's character")
            daily, monthly = _quotas(grant)
            if grant.max_uses is None and daily is None and monthly is None:
                raise InvalidArgument.one("grant_id", "has no quota and no cap of uses: decide offline without a lease")
            expire = min(now + ttl, grant.expire_time)
            day = month = ""
            if daily is not None:
                day = f"D{now:%Y-%m-%d}"
                expire = min(expire, _end_of_day(now))
            if monthly is not None:
                month = f"M{now:%Y-%m}"
                expire = min(expire, _end_of_month(now))
            taken = (
                (daily is None or uow.leases.take(licensee_id, character_id, day, uses, daily))
                and (monthly is None or uow.leases.take(licensee_id, character_id, month, uses, monthly))
                and (grant.max_uses is None or uow.leases.take_grant(grant.id, uses, grant.max_uses))
            )
            if not taken:
                uow.session.rollback()  # nothing counted
                raise _unavailable(uses)
            lease = QuotaLeaseRecord(
                lease_id=ids.new_id("quota_lease"),
                licensee_id=licensee_id,
                character_id=character_id,
                grant_id=grant.id,
                uses=uses,
                reported=0,
                state=LeaseState.OPEN,
                day_period=day,
                month_period=month,
                capped=grant.max_uses is not None,
                create_time=now,
                expire_time=expire,
                report_deadline=expire + self._grace,
            )
            uow.leases.add(lease)
            uow.commit()
        log.info("lease.created", lease_id=lease.lease_id, grant_id=grant_id, uses=uses, licensee_id=licensee_id)
        return lease

    def renew(self, principal: Principal, lease_id: str, add_uses: int, ttl_seconds: float | None) -> QuotaLeaseRecord:
        """Add uses to an open, unexpired lease and move its expiry to now + ttl (clipped).

        Raises:
            InvalidArgument: A field is missing or out of range.
            NotFound: No such lease of the caller's licensee (``LEASE_NOT_FOUND``).
            FailedPrecondition: The lease expired or was returned (``LEASE_CLOSED``), or its grant
                is no longer live (``LEASE_REFUSED``).
            ResourceExhausted: Fewer uses are left than asked for (``LEASE_REFUSED``, cause ``QUOTA``).
        """
        licensee_id = _licensee(principal)
        checker = Checker()
        checker.resource_id("lease_id", lease_id, "quota_lease")
        if not 0 <= add_uses <= MAX_LEASE_USES:
            checker.add("add_uses", f"must be between 0 and {MAX_LEASE_USES}")
        ttl = _ttl(checker, "ttl", ttl_seconds)
        checker.done()
        now = self._clock.now()
        with self._db.uow(write=True) as uow:
            self._reclaim_due(uow, now)  # as a new lease does: renewing may need the uses back
            # Locked, as a return locks it: a return between this read and the growth below would
            # otherwise be overwritten, leaving a returned lease with uses taken after its return.
            lease = self._own_lease(uow, licensee_id, lease_id, for_update=True)
            if lease.state is not LeaseState.OPEN or lease.expire_time <= now:
                raise FailedPrecondition("the lease is expired or returned; lease anew", reason="LEASE_CLOSED")
            grant = self._live_grant(uow, licensee_id, lease.grant_id, now)
            daily, monthly = _quotas(grant)
            expire = min(now + ttl, grant.expire_time)
            # The uses stay in the periods they were counted in.
            if lease.day_period:
                expire = min(expire, _end_of_day(lease.create_time))
            if lease.month_period:
                expire = min(expire, _end_of_month(lease.create_time))
            taken = (
                (daily is None or uow.leases.take(licensee_id, lease.character_id, lease.day_period, add_uses, daily))
                and (
                    monthly is None
                    or uow.leases.take(licensee_id, lease.character_id, lease.month_period, add_uses, monthly)
                )
                and (grant.max_uses is None or uow.leases.take_grant(grant.id, add_uses, grant.max_uses))
            )
            if not taken:
                uow.session.rollback()
                raise _unavailable(add_uses)
            uow.leases.grow(lease_id, add_uses, expire, expire + self._grace)
            renewed = uow.leases.get(lease_id)
            uow.commit()
        assert renewed is not None
        log.info("lease.renewed", lease_id=lease_id, add_uses=add_uses, uses=renewed.uses)
        return renewed

    def give_back(self, principal: Principal, lease_id: str, spent_uses: int) -> ReturnedLease:
        """Return the uses of a lease that were not spent; the lease takes no more spending.

        Raises:
            InvalidArgument: A field is missing or out of range.
            NotFound: No such lease of the caller's licensee (``LEASE_NOT_FOUND``).
            FailedPrecondition: The lease was returned or reclaimed already (``LEASE_CLOSED``).
        """
        licensee_id = _licensee(principal)
        checker = Checker()
        checker.resource_id("lease_id", lease_id, "quota_lease")
        if spent_uses < 0:
            checker.add("spent_uses", "must not be negative")
        checker.done()
        with self._db.uow(write=True) as uow:
            lease = self._own_lease(uow, licensee_id, lease_id, for_update=True)
            if lease.state is not LeaseState.OPEN:
                raise FailedPrecondition("the lease was returned or reclaimed already", reason="LEASE_CLOSED")
            keep = min(lease.uses, max(spent_uses, lease.reported))
            if not uow.leases.shrink(lease_id, keep):
                raise FailedPrecondition("the lease was returned or reclaimed already", reason="LEASE_CLOSED")
            # Read again: a report may have counted between the read above and the shrink.
            shrunk = uow.leases.get(lease_id)
            assert shrunk is not None
            if shrunk.reported > keep:
                raise FailedPrecondition("the lease changed; retry", reason="LEASE_CLOSED")
            released = lease.uses - keep
            uow.leases.release(lease, released)
            uow.commit()
        log.info("lease.returned", lease_id=lease_id, kept=keep, released=released)
        return ReturnedLease(shrunk, released)

    def reclaim_due(self, *, limit: int = RECLAIM_BATCH) -> int:
        """Reclaim leases past their report deadline; how many were reclaimed."""
        with self._db.uow(write=True) as uow:
            count = self._reclaim_due(uow, self._clock.now(), limit=limit)
            uow.commit()
        return count

    def _reclaim_due(self, uow: UnitOfWork, now: datetime, *, limit: int = RECLAIM_BATCH) -> int:
        return reclaim_due(uow, now, limit=limit)

    @staticmethod
    def _own_lease(uow: UnitOfWork, licensee_id: str, lease_id: str, *, for_update: bool = False) -> QuotaLeaseRecord:
        lease = uow.leases.get(lease_id, for_update=for_update)
        if lease is None or lease.licensee_id != licensee_id:
            raise NotFound("no such lease", reason="LEASE_NOT_FOUND")
        return lease

    @staticmethod
    def _live_grant(uow: UnitOfWork, licensee_id: str, grant_id: str, now: datetime) -> GrantRecord:
        grant = uow.grants.get(grant_id)
        if grant is None or grant.licensee_id != licensee_id:
            raise NotFound("no such grant", reason="GRANT_NOT_FOUND")
        # A suspension, opt-out or archiving leaves grants active; Authorize denies, and so do leases.
        character = uow.characters.get(grant.character_id)
        if character is None or character.state is not CharacterState.OPTED_IN:
            if character is not None and character.state is CharacterState.SUSPENDED:
                raise _refused("the character is suspended", "CHARACTER_SUSPENDED")
            raise _refused("the character is not opted in", "CHARACTER_NOT_OPTED_IN")
        if grant.state is GrantState.REVOKED:
            raise _refused("the grant is revoked", "GRANT_REVOKED")
        if grant.state is GrantState.SUSPENDED:
            raise _refused("the grant is suspended", "GRANT_SUSPENDED")
        if now >= grant.expire_time:
            raise _refused("the grant has expired", "GRANT_EXPIRED")
        if now < grant.not_before:
            raise _refused("the grant is not valid yet", "GRANT_NOT_YET_VALID")
        return grant


def reclaim_due(
    uow: UnitOfWork, now: datetime, *, limit: int = RECLAIM_BATCH, licensee_id: str = "", character_id: str = ""
) -> int:
    """Reclaim up to ``limit`` leases past their report deadline in ``uow`` (not committed; only
    those of one licensee's character when both are given): their uses leased but not reported go
    back to the counters; how many were reclaimed."""
    due = uow.leases.due(now, limit, licensee_id=licensee_id, character_id=character_id)
    return sum(1 for lease_id in due if _reclaim(uow, lease_id, now))


def _reclaim(uow: UnitOfWork, lease_id: str, now: datetime) -> bool:
    """Reclaim one lease past its report deadline; whether this transaction did (not another)."""
    lease = uow.leases.reclaim(lease_id, now)
    if lease is None:  # another transaction reclaimed it, or it is not due
        return False
    uow.leases.release(lease, lease.uses - lease.reported)
    log.info("lease.reclaimed", lease_id=lease_id, released=lease.uses - lease.reported)
    return True


class LeaseReport(enum.Enum):
    """How a reported use counted against its lease (`report_use`)."""

    IN_TIME = "in_time"
    """By the report deadline: the use was counted in the quotas when the block was leased."""
    LATE = "late"
    """After it: the lease was reclaimed, its unreported uses given back, and this use counted
    again in those counters, beyond their limits if need be (it happened; it is paid)."""
    EXCEEDED = "exceeded"
    """Refused: one use more than the lease holds."""


def report_use(uow: UnitOfWork, lease_id: str, n: int, now: datetime) -> LeaseReport:
    """Count ``n`` reported uses of a decision record against its lease (in ``uow``, not committed).

    A record that arrives after the lease's report deadline is still a use that was decided within
    the lease (`charter_server.services.decision_records` checked its time against the lease's
    lifetime), so it is counted, once, and paid; a lease past its deadline that no one reclaimed
    yet is reclaimed here first, so the counters get back exactly what was not reported and then
    count the late use again.
    """
    if uow.leases.report(lease_id, n, now):
        return LeaseReport.IN_TIME
    lease = uow.leases.get(lease_id)
    if lease is None:  # never deleted; the batch read it
        return LeaseReport.EXCEEDED
    if lease.state is not LeaseState.RECLAIMED:
        if lease.report_deadline >= now:
            return LeaseReport.EXCEEDED
        _reclaim(uow, lease_id, now)
    if not uow.leases.report_reclaimed(lease_id, n):
        return LeaseReport.EXCEEDED
    uow.leases.count_again(lease, n)
    log.info("lease.reported_late", lease_id=lease_id, uses=n)
    return LeaseReport.LATE


def unreport_use(uow: UnitOfWork, lease_id: str, n: int, report: LeaseReport) -> None:
    """Undo `report_use` earlier in this transaction (the record turned out to be a replay)."""
    uow.leases.unreport(lease_id, n)
    if report is LeaseReport.LATE:
        lease = uow.leases.get(lease_id)
        assert lease is not None
        uow.leases.release(lease, n)


def _licensee(principal: Principal) -> str:
    if principal.role is not Role.GENERATOR or not principal.licensee_id:
        raise PermissionDenied("only generator keys bound to a licensee may lease quota", reason="ROLE_NOT_PERMITTED")
    return principal.licensee_id


def _unavailable(uses: int) -> DomainError:
    return ResourceExhausted(
        f"fewer than {uses} uses are left under the grant's quotas", reason="LEASE_REFUSED", metadata={"cause": "QUOTA"}
    )


def _refused(message: str, cause: str) -> DomainError:
    return FailedPrecondition(message, reason="LEASE_REFUSED", metadata={"cause": cause})
