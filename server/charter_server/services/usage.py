"""``ReportUsage``: what generation backends rendered, recorded once per idempotency key, forever.

**A record is checked** field by field, then against its receipt: the receipt must verify against
Charter's key set (``charter.receipts.verify_receipt``, the shared core), be the caller's
licensee's, and allow the record's character. Its time must lie within the usage window (older:
``USAGE_TOO_OLD``), not in the future and not before the decision (each beyond the clock skew of
`FUTURE_SKEW`: ``USAGE_TIME_INVALID``). Its revenue, when the terms set a per-use fee, must be in
the fee's currency. What a statement needs (rights holder, grant, revenue share, fee) is copied
from the signed receipt, never from terms or grants that may change later.

**A batch is one transaction**, acknowledged only after it commits:

1. a record accepted before exactly as sent now (same key and fingerprint) is answered as the
   first time (``duplicate``) before any other check, since its receipt's key may be revoked or
   its time out of the window by now; every other record is validated and its receipt verified
   before the transaction starts (bad ones are answered alone; one bad record never sinks the
   others);
2. keys already accepted are read: the same record is answered as the first time
   (``duplicate``), a different one is refused with ``IDEMPOTENCY_KEY_REUSED``;
3. the new records are inserted in one statement that skips keys a concurrent transaction took
   (read back and answered as in 2), in key order so concurrent batches never deadlock;
3a. a record that would take its statement month past `MAX_STATEMENT_MINOR_UNITS` of revenue or
   fees in its currency, or its licensee's part of the month past
   `MAX_LICENSEE_STATEMENT_MINOR_UNITS`, is refused with ``STATEMENT_AMOUNT_LIMIT`` before it is
   inserted;
4. each new record's uses are counted against its receipt's character in one conditional
   upsert, which never passes `USES_PER_RECEIPT`; a record over it is deleted again and refused
   with ``RECEIPT_CONSUMED``;
5. commit, then answer. A crash before the commit loses the whole batch and acknowledges none of
   it, so the client's retry (same keys) records it; a crash after the commit and before the
   reply makes that retry a duplicate.

**The statement period** of a record is fixed when it is accepted: the month it happened, or,
when that month is already closed for the rights holder, the next month that is not. Closing a
month (``StatementService.close``) and accepting records for the same rights holder exclude each
other (`StatementRepository.lock_rights_holders`), so a record can never slip into a closed month.

**Quotas are not counted here.** They are counted when ``Authorize`` allows a use (the only time
a use can still be refused), and each receipt covers one use per allowed character, so no more
uses can be reported than were counted. The one exception is a decision record reported after its
lease gave its unreported uses back (below): its use is counted again then.

**Offline uses** come with a decision record in place of the receipt
(`charter_server.services.decision_records`): checked against the licensee's keys, the grant and
the lease before the transaction; in step 4 a record counts its use against its lease first (in
lease order, so concurrent batches never deadlock) and then against its record id, counted per
licensee (as every receipt's use is: an id another licensee chose too is never this one's). A record that
arrives after its lease's report deadline is accepted too (`late`): its use had gone back to the
quotas with the lease's unreported uses and is counted in them again
(`charter_server.services.leases.report_use`), so it is paid and the counters hold what happened.
Such a batch also writes the counters' rows after its leases' rows, as a lease call that reclaims
does in its own order; on PostgreSQL the two can deadlock, and the loser is answered
``UNAVAILABLE`` with nothing written (a retry, same keys, is safe).

**The service takes** `UsageRecordInput` values (``charter_server.api.convert_usage`` builds them
from the wire) and answers with `UsageOutcome` values. The receipt is read by
``charter_server.services.usage_receipts``, the one usage module that reads protobuf.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import structlog
from charter.envelope import DECISION_RECORD_PAYLOAD_TYPE, RECEIPT_PAYLOAD_TYPE

from charter_server.domain import ids
from charter_server.domain.clock import Clock
from charter_server.domain.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
)
from charter_server.domain.models import Principal, Role, UsageEntry
from charter_server.services.decision_records import OfflineBatch
from charter_server.services.keys import KeyService
from charter_server.services.leases import LeaseReport, report_use, unreport_use
from charter_server.services.terms_rules import is_currency
from charter_server.services.transparency.appender import LogAppender
from charter_server.services.usage_receipts import ReceiptReader, ReceiptUse
from charter_server.services.validation import MAX_CONTENT_SECONDS, Checker, Unreadable
from charter_server.storage.database import Database
from charter_server.storage.uow import UnitOfWork

log = structlog.get_logger(__name__)

MAX_RECORDS = 1000
"""The most records one ReportUsage call may carry."""
USES_PER_RECEIPT = 1
"""How many uses of each allowed character a decision receipt covers (Authorize counted one)."""
FUTURE_SKEW = timedelta(minutes=5)
"""How far a record's time may be ahead of the server's clock, or behind its decision."""
MAX_REVENUE_MINOR_UNITS = 10**14
"""The most revenue one record may attribute, in minor units: so that revenue times 10,000 basis
points stays far inside 64 bits."""
MAX_RECORDS_PER_RECEIPT = 100
"""The most records of one receipt's (or decision record's) character: its use and the parts of
it reported before it with no use of their own."""
MAX_STATEMENT_MINOR_UNITS = 10**17
"""The most revenue, and the most fees, a rights holder's statement month may hold in one currency
(minor units). A date range of up to 366 days holds records of at most 16 statement months (13 in
which they happened, and late records go at most 3 months further), so every amount of every
statement stays below 16 x 2 x 10**17, inside the 64 bits of its fields."""
MAX_LICENSEE_STATEMENT_MINOR_UNITS = MAX_STATEMENT_MINOR_UNITS // 10
"""The most revenue, and the most fees, one licensee's records may add to a rights holder's
statement month in one currency: so that no single licensee can fill a month and leave the others
no room for money records (it takes ten licensees at their bound)."""
_KEY = re.compile(r"[A-Za-z0-9._:~-]{1,128}")
_MAX_DURATION_NS = MAX_CONTENT_SECONDS * 1_000_000_000


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in integer minor units of an ISO 4217 currency, as the caller gave it."""

    currency_code: str
    minor_units: int


@dataclass(frozen=True, slots=True)
class UsageRecordInput:
    """One record of a usage report, as the caller sent it (checked by the service)."""

    idempotency_key: str
    fingerprint: str
    """Identifies the record as sent (a hash of its wire form): a retry sends the same one."""
    receipt: bytes
    """The serialized decision receipt envelope as received; empty when it has no payload."""
    receipt_payload_type: str
    character_id: str
    uses: int
    duration_ns: int | Unreadable | None
    """The length of the content in nanoseconds; None when not given."""
    attributed_revenue: Money | None
    happen_time: datetime | Unreadable | None
    decision_record: bytes = b""
    """Instead of a receipt: the serialized decision record envelope as received; empty when none."""
    decision_record_payload_type: str = ""


@dataclass(frozen=True, slots=True)
class UsageOutcome:
    """The answer for one record: the stored entry (accepted) or the error (rejected)."""

    index: int
    idempotency_key: str
    entry: UsageEntry | None = None
    duplicate: bool = False
    error: DomainError | None = None
    late: bool = False
    """Accepted now although its quota lease was past its report deadline: its use had gone back
    to the quotas and was counted in them again (`charter_server.services.leases.report_use`)."""


@dataclass(slots=True)
class _Candidate:
    index: int
    entry: UsageEntry
    lease_id: str = ""
    offline: bool = False
    receipt_digest: bytes = b""  # the receipt's (or decision record's) payload digest, its name in the log
    late: bool = False  # counted against a lease past its report deadline (`LeaseReport.LATE`)
    report_deadline: datetime | None = None  # its lease's, as read before the transaction


class UsageService:
    """Records usage; see the module docstring."""

    def __init__(
        self, db: Database, clock: Clock, keys: KeyService, *, window: timedelta, log: LogAppender | None = None
    ) -> None:
        self._db = db
        self._log = log
        self._clock = clock
        self._keys = keys
        self._window = window

    def report(self, principal: Principal, records: Sequence[UsageRecordInput]) -> list[UsageOutcome]:
        """Record a batch; one outcome per record, in request order.

        Raises:
            PermissionDenied: The key is not a generator key bound to a licensee.
            InvalidArgument: ``records`` is empty or too long (a bad record is answered alone).
            StorageBusy, StorageUnavailable: Nothing was recorded; retry (the keys make it safe).
        """
        if principal.role is not Role.GENERATOR or not principal.licensee_id:
            raise PermissionDenied("only generator keys bound to a licensee may report usage")
        if not records:
            raise InvalidArgument.one("records", "at least one record is required")
        if len(records) > MAX_RECORDS:
            raise InvalidArgument.one("records", f"must hold at most {MAX_RECORDS} records")
        licensee_id = principal.licensee_id
        now = self._clock.now()
        receipts = ReceiptReader(self._keys.key_ring(), licensee_id)
        # A retry of an accepted record is answered as the first time before any other check: its
        # receipt's signing key may be revoked since, or the record out of the usage window now.
        known = self._accepted_before(licensee_id, records)
        offline = OfflineBatch(self._db, licensee_id)
        offline.prepare(
            [(i, r.decision_record) for i, r in enumerate(records) if r.decision_record],
            accepted={i for i, r in enumerate(records) if _resent(r, known)},
        )
        outcomes: dict[int, UsageOutcome] = {}
        first_of_key: dict[str, _Candidate] = {}
        repeats: list[_Candidate] = []  # the same key again within this batch
        for index, record in enumerate(records):
            earlier = _resent(record, known)
            if earlier is not None:
                late = offline.accepted_late(index, earlier.accept_time)
                outcomes[index] = UsageOutcome(index, earlier.idempotency_key, entry=earlier, duplicate=True, late=late)
                continue
            try:
                candidate = self._candidate(index, record, licensee_id, receipts, offline, now)
            except DomainError as error:
                outcomes[index] = UsageOutcome(index, record.idempotency_key, error=error)
                continue
            entry = candidate.entry
            if entry.idempotency_key in first_of_key:
                repeats.append(candidate)
            else:
                first_of_key[entry.idempotency_key] = candidate
        if first_of_key:
            outcomes.update(self._record(licensee_id, list(first_of_key.values()), now))
        for repeat in repeats:
            first = outcomes[first_of_key[repeat.entry.idempotency_key].index]
            outcomes[repeat.index] = _answer_repeat(repeat, first.entry if first.error is None else None, first)
        return [outcomes[i] for i in range(len(records))]

    def _accepted_before(self, licensee_id: str, records: Sequence[UsageRecordInput]) -> dict[str, UsageEntry]:
        """The records accepted before under these records' keys, by key."""
        keys = sorted({r.idempotency_key for r in records if _KEY.fullmatch(r.idempotency_key)})
        if not keys:
            return {}
        with self._db.uow() as uow:
            accepted = uow.usage.accepted(licensee_id, keys)
        return accepted

    def _record(self, licensee_id: str, candidates: list[_Candidate], now: datetime) -> dict[int, UsageOutcome]:
        keys = [c.entry.idempotency_key for c in candidates]
        outcomes: dict[int, UsageOutcome] = {}
        with self._db.uow(write=True) as uow:
            rights_holders = sorted({c.entry.rights_holder_id for c in candidates})
            # A batch that adds money reads the months' amounts and adds to them: exclusively (on
            # PostgreSQL), so that concurrent batches cannot pass `MAX_STATEMENT_MINOR_UNITS` together.
            uow.statements.lock_rights_holders(rights_holders, exclusive=any(_money(c.entry) for c in candidates))
            closed = uow.statements.closed_periods(rights_holders)
            accepted = uow.usage.accepted(licensee_id, keys)
            fresh: list[_Candidate] = []
            for candidate in candidates:
                earlier = accepted.get(candidate.entry.idempotency_key)
                if earlier is not None:
                    outcomes[candidate.index] = _answer_repeat(candidate, earlier)
                    continue
                entry = candidate.entry
                period = _statement_period(entry.happen_period, closed[entry.rights_holder_id])
                if period != entry.statement_period:
                    candidate.entry = replace(entry, statement_period=period)
                fresh.append(candidate)
            fresh = _within_statement_bounds(uow, fresh, outcomes)
            inserted = uow.usage.add_new([c.entry for c in fresh])
            raced = [c for c in fresh if c.entry.idempotency_key not in inserted]
            if raced:  # taken by a concurrent report since the read above: answer as a repeat
                now_accepted = uow.usage.accepted(licensee_id, [c.entry.idempotency_key for c in raced])
                for candidate in raced:
                    outcomes[candidate.index] = _answer_repeat(candidate, now_accepted[candidate.entry.idempotency_key])
            consumed: list[str] = []
            # Lease and receipt counters in one order across transactions (each lease before the
            # receipts of its records), so concurrent batches never deadlock.
            mine = sorted(
                (c for c in fresh if c.entry.idempotency_key in inserted),
                key=lambda c: (c.lease_id, c.entry.receipt_id, c.entry.character_id, c.index),
            )
            for candidate in mine:
                entry = candidate.entry
                error = _count(uow, candidate, now)
                if error is None:
                    outcomes[candidate.index] = UsageOutcome(
                        candidate.index, entry.idempotency_key, entry=entry, late=candidate.late
                    )
                    if self._log is not None:  # an accepted record is logged with it (a retry is not)
                        self._log.usage(uow, entry, candidate.receipt_digest)
                else:
                    consumed.append(entry.idempotency_key)
                    outcomes[candidate.index] = UsageOutcome(candidate.index, entry.idempotency_key, error=error)
            uow.usage.remove(licensee_id, consumed)
            # The roll-ups in the same transaction, so series and the months' amounts always agree
            # with the records.
            new = [o.entry for o in outcomes.values() if o.entry is not None and not o.duplicate]
            uow.usage.roll_up(new)
            uow.statements.add_to_months(new)
            uow.commit()
        added = sum(1 for o in outcomes.values() if o.entry is not None and not o.duplicate)
        late = sum(1 for o in outcomes.values() if o.late)
        log.info("usage.reported", licensee_id=licensee_id, records=len(candidates), added=added, late=late)
        return outcomes

    def _candidate(
        self,
        index: int,
        record: UsageRecordInput,
        licensee_id: str,
        receipts: ReceiptReader,
        offline: OfflineBatch,
        now: datetime,
    ) -> _Candidate:
        """Validate one record and check its receipt or decision record; the entry to store
        (period not yet final)."""
        _validate(record)
        lease_id = ""
        use: ReceiptUse
        if record.decision_record:
            use, lease_id = offline.use_of(index, record.character_id)
        else:
            use = receipts.use_of(record.receipt, record.character_id)
        happened = record.happen_time
        assert isinstance(happened, datetime)  # _validate made sure
        if happened < now - self._window:
            raise InvalidArgument.one(
                "happen_time", f"is older than the usage window of {self._window.days} days", reason="USAGE_TOO_OLD"
            )
        if happened > now + FUTURE_SKEW:
            raise InvalidArgument.one("happen_time", "is in the future", reason="USAGE_TIME_INVALID")
        if happened < use.decide_time - FUTURE_SKEW:
            raise InvalidArgument.one("happen_time", "is before the decision it follows", reason="USAGE_TIME_INVALID")
        currency, revenue = use.fee_currency, 0
        if record.attributed_revenue is not None:
            currency = record.attributed_revenue.currency_code.upper()
            revenue = record.attributed_revenue.minor_units
            if use.fee_currency and currency != use.fee_currency:
                raise InvalidArgument.one(
                    "attributed_revenue.currency_code",
                    f"must be {use.fee_currency}, the currency of the terms' per-use fee",
                    reason="CURRENCY_MISMATCH",
                )
        duration_ns = record.duration_ns if isinstance(record.duration_ns, int) else 0
        period = f"{happened:%Y-%m}"
        entry = UsageEntry(
            id=ids.new_id("usage"),
            licensee_id=licensee_id,
            idempotency_key=record.idempotency_key,
            fingerprint=record.fingerprint,
            receipt_id=use.receipt_id,
            character_id=record.character_id,
            rights_holder_id=use.rights_holder_id,
            grant_id=use.grant_id,
            uses=record.uses,
            duration_ms=duration_ns // 1_000_000,
            currency=currency,
            revenue_minor=revenue,
            revenue_share_bps=use.revenue_share_bps,
            fee_minor=use.fee_minor,
            happen_time=happened,
            happen_period=period,
            statement_period=period,
            accept_time=now,
        )
        candidate = _Candidate(index, entry, lease_id, bool(record.decision_record), use.receipt_digest)
        candidate.report_deadline = offline.report_deadline(lease_id)
        return candidate


def _resent(record: UsageRecordInput, accepted: dict[str, UsageEntry]) -> UsageEntry | None:
    """The accepted record this one repeats exactly (same key and fingerprint), or None."""
    earlier = accepted.get(record.idempotency_key)
    return earlier if earlier is not None and earlier.fingerprint == record.fingerprint else None


def _money(entry: UsageEntry) -> bool:
    return entry.revenue_minor > 0 or entry.fee_minor * entry.uses > 0


def _within_statement_bounds(
    uow: UnitOfWork, fresh: list[_Candidate], outcomes: dict[int, UsageOutcome]
) -> list[_Candidate]:
    """The records that keep their statement month's revenue and fees (per currency) within
    `MAX_STATEMENT_MINOR_UNITS`, and their licensee's part of it within
    `MAX_LICENSEE_STATEMENT_MINOR_UNITS`; the others are answered ``STATEMENT_AMOUNT_LIMIT``."""
    adding = [c for c in fresh if _money(c.entry)]
    if not adding:
        return fresh
    kept_rows = uow.statements.month_amounts([(c.entry.rights_holder_id, c.entry.statement_period) for c in adding])
    months: dict[tuple[str, str, str], tuple[int, int]] = {}
    for (holder, period, currency, _licensee), (revenue, fees) in kept_rows.items():
        month = months.get((holder, period, currency), (0, 0))
        months[(holder, period, currency)] = (month[0] + revenue, month[1] + fees)
    parts = dict(kept_rows)
    kept: list[_Candidate] = []
    for candidate in fresh:
        entry = candidate.entry
        if _money(entry):
            month_key = (entry.rights_holder_id, entry.statement_period, entry.currency)
            part_key = (entry.rights_holder_id, entry.statement_period, entry.currency, entry.licensee_id)
            month, part = months.get(month_key, (0, 0)), parts.get(part_key, (0, 0))
            revenue, fees = entry.revenue_minor, entry.fee_minor * entry.uses
            month, part = (month[0] + revenue, month[1] + fees), (part[0] + revenue, part[1] + fees)
            if max(month) > MAX_STATEMENT_MINOR_UNITS or max(part) > MAX_LICENSEE_STATEMENT_MINOR_UNITS:
                error = FailedPrecondition(
                    f"the statement month would hold more than {MAX_STATEMENT_MINOR_UNITS} minor units of revenue "
                    f"or fees in this currency, or more than {MAX_LICENSEE_STATEMENT_MINOR_UNITS} from this licensee",
                    reason="STATEMENT_AMOUNT_LIMIT",
                )
                outcomes[candidate.index] = UsageOutcome(candidate.index, entry.idempotency_key, error=error)
                continue
            months[month_key], parts[part_key] = month, part
        kept.append(candidate)
    return kept


def _count(uow: UnitOfWork, candidate: _Candidate, now: datetime) -> DomainError | None:
    """Count a new record's use against its lease and its receipt (or decision record); the error
    that refuses it, or None."""
    entry = candidate.entry
    counted = None
    if candidate.lease_id:
        counted = report_use(uow, candidate.lease_id, entry.uses, now)
        if counted is LeaseReport.EXCEEDED:
            return FailedPrecondition("the lease's uses are all reported already", reason="LEASE_EXCEEDED")
        candidate.late = counted is LeaseReport.LATE
    if uow.usage.consume_receipt(entry.licensee_id, entry.receipt_id, entry.character_id, entry.uses, USES_PER_RECEIPT):
        if entry.uses == 0 and (
            uow.usage.records_of_receipt(entry.licensee_id, entry.receipt_id, entry.character_id)
            > MAX_RECORDS_PER_RECEIPT
        ):  # counted nothing: a record with no use adds nothing to its lease or receipt
            candidate.late = False
            return FailedPrecondition(
                f"the receipt's character has {MAX_RECORDS_PER_RECEIPT} records already", reason="RECEIPT_RECORD_LIMIT"
            )
        return None
    if counted is not None:
        unreport_use(uow, candidate.lease_id, entry.uses, counted)
        candidate.late = False
    if candidate.offline:
        return FailedPrecondition(
            "the decision record's use was already reported under another idempotency key",
            reason="DECISION_RECORD_REPLAYED",
        )
    return FailedPrecondition(
        "the receipt's use of this character was already reported under other idempotency keys",
        reason="RECEIPT_CONSUMED",
    )


def _answer_repeat(
    candidate: _Candidate, earlier: UsageEntry | None, first: UsageOutcome | None = None
) -> UsageOutcome:
    """A key seen before (in the store, or earlier in the batch): the first answer, or a reuse error."""
    key = candidate.entry.idempotency_key
    if earlier is None:  # the batch's first record of this key was refused: so is this one
        assert first is not None
        return UsageOutcome(candidate.index, key, error=first.error)
    if earlier.fingerprint != candidate.entry.fingerprint:
        return UsageOutcome(
            candidate.index,
            key,
            error=AlreadyExists(
                "this idempotency key was already used for a different record", reason="IDEMPOTENCY_KEY_REUSED"
            ),
        )
    if first is not None:
        late = first.late
    else:  # accepted by an earlier call: late if after its lease's report deadline (frozen since)
        late = candidate.report_deadline is not None and earlier.accept_time > candidate.report_deadline
    return UsageOutcome(candidate.index, key, entry=earlier, duplicate=True, late=late)


def _statement_period(month: str, closed: set[str]) -> str:
    """The month itself, or the first month after it that is not closed."""
    while month in closed:
        year, number = int(month[:4]), int(month[5:])
        month = f"{year + number // 12:04d}-{number % 12 + 1:02d}"
    return month


def _validate(record: UsageRecordInput) -> None:
    """Every field of one record; paths are within the record."""
    checker = Checker()
    if not record.idempotency_key:
        checker.add("idempotency_key", "is required")
    elif not _KEY.fullmatch(record.idempotency_key):
        checker.add("idempotency_key", "must be 1-128 characters of A-Z a-z 0-9 . _ : ~ -")
    if record.decision_record:
        if record.receipt:
            checker.add("receipt", "must be empty when decision_record is set")
        if record.decision_record_payload_type != DECISION_RECORD_PAYLOAD_TYPE:
            checker.add("decision_record.payload_type", f"must be {DECISION_RECORD_PAYLOAD_TYPE}")
    elif not record.receipt:
        checker.add("receipt", "is required (or decision_record)")
    elif record.receipt_payload_type != RECEIPT_PAYLOAD_TYPE:
        checker.add("receipt.payload_type", f"must be {RECEIPT_PAYLOAD_TYPE} (a grant is not a receipt)")
    checker.resource_id("character_id", record.character_id, "character")
    if record.uses < 0:
        checker.add("uses", "must not be negative")
    elif record.uses > USES_PER_RECEIPT:
        checker.add("uses", f"must be at most {USES_PER_RECEIPT}: a receipt covers one use of each character")
    if record.duration_ns is not None and (
        isinstance(record.duration_ns, Unreadable) or not 0 <= record.duration_ns <= _MAX_DURATION_NS
    ):
        checker.add("duration", "must be between 0 and 24 hours")
    if record.attributed_revenue is not None:
        money = record.attributed_revenue
        # ASCII first: the long s (U+017F) upper-cases to "S", and a look-alike must not pass as a code.
        if not money.currency_code.isascii() or not is_currency(money.currency_code.upper()):
            checker.add("attributed_revenue.currency_code", f"{money.currency_code!r} is not an ISO 4217 currency code")
        if not 0 <= money.minor_units <= MAX_REVENUE_MINOR_UNITS:
            checker.add("attributed_revenue.minor_units", f"must be between 0 and {MAX_REVENUE_MINOR_UNITS}")
    if record.happen_time is None:
        checker.add("happen_time", "is required")
    elif isinstance(record.happen_time, Unreadable):
        checker.add("happen_time", record.happen_time.description)
    checker.done()
