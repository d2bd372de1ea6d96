"""Revenue-share statements: what a rights holder's characters earned, per month or date range.

**A line** adds up the records of one character, licensee and currency (and, in a month, of one
adjusted earlier month). Every amount is an integer number of minor units, and exactly one
rounding happens, once per line:

    revenue share = round_half_up( sum over the records of revenue x basis points / 10,000 )
    fees          = sum over the records of per-use fee x uses
    owed          = revenue share + fees

The basis points and the fee are those of the terms each record's use was allowed under (copied
from its signed receipt), so records of one line may differ in them. **A total** per currency is
the plain sum of the lines of that currency, so lines always add up to the total exactly.

**A month** holds the records whose statement period is that month: the month they happened in,
or, for records that arrived after their own month was closed, the next month that was open then
(shown as adjustments, naming the month they are for). A closed month never changes, because no
record can be given a closed month (see ``charter_server.services.usage``). **A date range**
holds the records that happened within it, by their time alone: it is never closed and has no
adjustments.

The service takes plain values and returns `Statement` records; ``charter_server.api.convert``
turns them into and out of protobuf.
"""

from __future__ import annotations

import enum
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

import structlog

from charter_server.domain.clock import Clock
from charter_server.domain.errors import FailedPrecondition, NotFound, PermissionDenied
from charter_server.domain.models import LineSums, Principal, RightsHolder, Role
from charter_server.services import pagination
from charter_server.services.ownership import not_owned
from charter_server.services.validation import Checker
from charter_server.storage.database import Database
from charter_server.storage.uow import UnitOfWork

log = structlog.get_logger(__name__)

MAX_RANGE_DAYS = 366
"""The longest date range a statement may cover."""
FIRST_YEAR, LAST_YEAR = 1970, 9998
"""The years a statement's month or dates may fall in: the day after the last one must still be a
date (Python's dates end with 9999-12-31), so the month and range arithmetic never overflows."""
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def share_of(revenue_times_bps: int) -> int:
    """The one rounding: sum of revenue x basis points, over 10,000, rounded half up."""
    return (revenue_times_bps + 5_000) // 10_000


def month_bounds(period: str) -> tuple[date, date]:
    """The first and the last day of a ``YYYY-MM`` month."""
    year, month = int(period[:4]), int(period[5:])
    first = date(year, month, 1)
    following = date(year + month // 12, month % 12 + 1, 1)
    return first, following - timedelta(days=1)


class StatementState(enum.Enum):
    """Whether a statement's records may still change (mirrors ``charter.v1.StatementState``)."""

    OPEN = "open"
    CLOSED = "closed"
    RANGE = "range"


@dataclass(frozen=True, slots=True)
class StatementLine:
    """The records of one character, licensee and currency (and adjusted month), rounded once."""

    character_id: str
    licensee_id: str
    currency: str
    adjustment_for_period: str
    records: int
    uses: int
    duration_ms: int
    revenue_minor: int
    revenue_share_minor: int
    fee_minor: int
    owed_minor: int
    character_name: str = ""
    licensee_display_name: str = ""


@dataclass(frozen=True, slots=True)
class StatementTotal:
    """The plain sums of the lines of one currency."""

    currency: str
    records: int = 0
    uses: int = 0
    duration_ms: int = 0
    revenue_minor: int = 0
    revenue_share_minor: int = 0
    fee_minor: int = 0
    owed_minor: int = 0


@dataclass(frozen=True, slots=True)
class Statement:
    """A rights holder's statement for a month (``period`` set) or a date range."""

    rights_holder_id: str
    start_date: date
    end_date: date
    state: StatementState
    period: str = ""
    close_time: datetime | None = None
    licensee_id: str = ""
    lines: tuple[StatementLine, ...] = ()
    totals: tuple[StatementTotal, ...] = field(default=())
    rights_holder_display_name: str = ""
    licensee_display_name: str = ""


class StatementService:
    """Builds, lists and closes statements; see the module docstring."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def get(
        self,
        principal: Principal,
        rights_holder_id: str,
        *,
        period: str = "",
        start_date: str = "",
        end_date: str = "",
        licensee_id: str = "",
    ) -> Statement:
        """A rights holder's statement for a month (``period``, ``YYYY-MM``) or a date range
        (``start_date`` to ``end_date``, ``YYYY-MM-DD``, both inclusive).

        Raises:
            InvalidArgument: A field is invalid (each named).
            PermissionDenied: A rights-holder key asked for another's; a generator key for another licensee.
            PermissionDenied: (``RESOURCE_NOT_OWNED``) also for a generator key whose licensee never
                held a grant from the rights holder, whether it exists or not.
            NotFound: The rights holder does not exist.
        """
        checker = Checker()
        checker.resource_id("rights_holder_id", rights_holder_id, "rights_holder")
        if licensee_id:
            checker.resource_id("licensee_id", licensee_id, "licensee")
        span = _span(checker, period, start_date, end_date)
        checker.done()
        scope = scope_of(principal, rights_holder_id, licensee_id)
        with self._db.uow() as uow:
            require_rights_holder(uow, rights_holder_id, principal)
            if period:
                return _month_statement(uow, rights_holder_id, period, scope)
            assert span is not None
            start, end = span
            sums = uow.statements.range_sums(
                rights_holder_id, _midnight(start), _midnight(end + timedelta(days=1)), scope
            )
            lines, totals = statement_sums(sums, with_lines=True)
            statement = Statement(
                rights_holder_id=rights_holder_id,
                start_date=start,
                end_date=end,
                state=StatementState.RANGE,
                licensee_id=scope or "",
                lines=lines,
                totals=totals,
            )
            (statement,) = name_statements(uow, [statement])
        return statement

    def list(
        self,
        principal: Principal,
        *,
        rights_holder_id: str = "",
        licensee_id: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[Statement], str]:
        """Monthly statements without lines, newest month first, and the next page token.

        Raises:
            InvalidArgument: A field is invalid.
            PermissionDenied: A rights-holder key named another rights holder; a generator key another licensee.
        """
        checker = Checker()
        if rights_holder_id:
            checker.resource_id("rights_holder_id", rights_holder_id, "rights_holder")
        if licensee_id:
            checker.resource_id("licensee_id", licensee_id, "licensee")
        checker.done()
        size = pagination.page_size(page_size)
        if principal.role is Role.RIGHTS_HOLDER:
            if rights_holder_id and rights_holder_id != principal.rights_holder_id:
                raise not_owned()
            rights_holder_id = principal.rights_holder_id or ""
        scope = _licensee_scope(principal, licensee_id)
        filters = f"statements|{rights_holder_id}|{scope or ''}"
        cursor = pagination.decode_text(self._db.page_token_key(), page_token, filters)
        after: tuple[str, str] | None = None
        if cursor:
            period, _, holder = cursor.partition("|")
            after = (period, holder)
        with self._db.uow() as uow:
            pairs, more = uow.statements.periods(
                rights_holder_id=rights_holder_id or None,
                licensee_id=scope,
                after=after,
                limit=size,
            )
            sums = uow.statements.period_sums(pairs, scope)
            closures = {pair: uow.statements.closure(*pair) for pair in pairs}
            by_pair: dict[tuple[str, str], list[LineSums]] = defaultdict(list)
            for line in sums:
                by_pair[(line.rights_holder_id, line.statement_period)].append(line)
            statements = []
            for pair in pairs:
                _, totals = statement_sums(by_pair[pair], with_lines=False)
                statements.append(_month_header(pair[0], pair[1], closures[pair], scope, (), totals))
            statements = name_statements(uow, statements)
        token = pagination.encode_text(
            self._db.page_token_key(), f"{pairs[-1][1]}|{pairs[-1][0]}" if more else None, filters
        )
        return statements, token

    def close(self, principal: Principal, rights_holder_id: str, period: str) -> Statement:
        """Close a rights holder's month, which must have ended; the closed statement.

        Raises:
            InvalidArgument: A field is invalid.
            NotFound: The rights holder does not exist.
            FailedPrecondition: The month is already closed (``STATEMENT_PERIOD_CLOSED``) or has not
                ended (``STATEMENT_PERIOD_NOT_ENDED``).
        """
        checker = Checker()
        checker.resource_id("rights_holder_id", rights_holder_id, "rights_holder")
        if not period:
            checker.add("period", "is required")
        else:
            _month(checker, "period", period)
        checker.done()
        now = self._clock.now()
        _, last = month_bounds(period)
        if _midnight(last + timedelta(days=1)) > now:
            raise FailedPrecondition("the month has not ended yet", reason="STATEMENT_PERIOD_NOT_ENDED")
        with self._db.uow(write=True) as uow:
            require_rights_holder(uow, rights_holder_id)
            uow.statements.lock_rights_holders([rights_holder_id], exclusive=True)
            if uow.statements.closure(rights_holder_id, period) is not None:
                raise FailedPrecondition("the month is already closed", reason="STATEMENT_PERIOD_CLOSED")
            uow.statements.close(rights_holder_id, period, now, principal.key_id)
            statement = _month_statement(uow, rights_holder_id, period, None)
            uow.commit()
        log.info("statements.closed", rights_holder_id=rights_holder_id, period=period)
        return statement


def scope_of(principal: Principal, rights_holder_id: str, licensee_id: str) -> str | None:
    """Check ownership before any lookup; the licensee filter in force."""
    if principal.role is Role.RIGHTS_HOLDER and principal.rights_holder_id != rights_holder_id:
        raise not_owned()
    return _licensee_scope(principal, licensee_id)


def _licensee_scope(principal: Principal, licensee_id: str) -> str | None:
    if principal.role is Role.GENERATOR:
        if licensee_id and licensee_id != principal.licensee_id:
            raise PermissionDenied("this key may act only for its own licensee", reason="RESOURCE_NOT_OWNED")
        return principal.licensee_id
    return licensee_id or None


def require_rights_holder(uow: UnitOfWork, rights_holder_id: str, principal: Principal | None = None) -> RightsHolder:
    """The rights holder; for a generator key only one its licensee holds or held a grant from.

    A generator key is answered ``RESOURCE_NOT_OWNED`` alike for a rights holder that does not
    exist and for one it never had a grant from (its usage there is none), so that statements and
    series tell it neither who exists nor their names (``GetRightsHolder`` is closed to it).
    """
    if (
        principal is not None
        and principal.role is Role.GENERATOR
        and not uow.grants.ever_granted(rights_holder_id, principal.licensee_id or "")
    ):
        raise PermissionDenied(
            "this key's licensee never held a grant from this rights holder", reason="RESOURCE_NOT_OWNED"
        )
    holder = uow.rights_holders.get(rights_holder_id)
    if holder is None:
        raise NotFound("no such rights holder", reason="RIGHTS_HOLDER_NOT_FOUND")
    return holder


def _month(checker: Checker, field: str, value: str) -> bool:
    match = _MONTH.fullmatch(value)
    if match is None or not 1 <= int(match[2]) <= 12 or not FIRST_YEAR <= int(match[1]) <= LAST_YEAR:
        checker.add(field, f"must be a calendar month, YYYY-MM, of the years {FIRST_YEAR} to {LAST_YEAR}")
        return False
    return True


def _date(checker: Checker, field: str, value: str) -> date | None:
    if not value:
        checker.add(field, "is required with a date range")
        return None
    try:
        if not _DATE.fullmatch(value):
            raise ValueError(value)
        day = date.fromisoformat(value)
        if day.year > LAST_YEAR:
            raise ValueError(value)
        return day
    except ValueError:
        checker.add(field, f"must be a date, YYYY-MM-DD, not after {LAST_YEAR}-12-31")
        return None


def _span(checker: Checker, period: str, start_date: str, end_date: str) -> tuple[date, date] | None:
    """Check the month or the date range; the range's days when it is one."""
    if period:
        if start_date or end_date:
            checker.add("period", "give either a period or a date range, not both")
        else:
            _month(checker, "period", period)
        return None
    if not start_date and not end_date:
        checker.add("period", "a period or a date range is required")
        return None
    return date_span(checker, start_date, end_date)


def date_span(checker: Checker, start_date: str, end_date: str) -> tuple[date, date] | None:
    """Check a date range of at most `MAX_RANGE_DAYS` days (also usage series'); its first and
    last day when valid."""
    start, end = _date(checker, "start_date", start_date), _date(checker, "end_date", end_date)
    if start is None or end is None:
        return None
    if end < start:
        checker.add("end_date", "must not be before start_date")
    elif (end - start).days >= MAX_RANGE_DAYS:
        checker.add("end_date", f"must be less than {MAX_RANGE_DAYS} days after start_date")
    return start, end


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _month_header(
    rights_holder_id: str,
    period: str,
    close_time: datetime | None,
    licensee_id: str | None,
    lines: tuple[StatementLine, ...],
    totals: tuple[StatementTotal, ...],
) -> Statement:
    first, last = month_bounds(period)
    return Statement(
        rights_holder_id=rights_holder_id,
        period=period,
        start_date=first,
        end_date=last,
        state=StatementState.OPEN if close_time is None else StatementState.CLOSED,
        close_time=close_time,
        licensee_id=licensee_id or "",
        lines=lines,
        totals=totals,
    )


def _month_statement(uow: UnitOfWork, rights_holder_id: str, period: str, licensee_id: str | None) -> Statement:
    lines, totals = statement_sums(
        uow.statements.period_sums([(rights_holder_id, period)], licensee_id), with_lines=True
    )
    closed = uow.statements.closure(rights_holder_id, period)
    (statement,) = name_statements(uow, [_month_header(rights_holder_id, period, closed, licensee_id, lines, totals)])
    return statement


def name_statements(uow: UnitOfWork, statements: Sequence[Statement]) -> list[Statement]:
    """The statements with the rights holders', characters' and licensees' current names next to their ids.

    Whoever may read a statement may read these names: a rights holder's lines are uses of its
    own characters by licensees that were granted them, a generator's are its own uses.
    """
    names = uow.display_names.lookup(
        character_ids={line.character_id for s in statements for line in s.lines},
        licensee_ids={line.licensee_id for s in statements for line in s.lines}
        | {s.licensee_id for s in statements if s.licensee_id},
        rights_holder_ids={s.rights_holder_id for s in statements},
    )
    return [
        replace(
            statement,
            rights_holder_display_name=names.rights_holders.get(statement.rights_holder_id, ""),
            licensee_display_name=names.licensees.get(statement.licensee_id, "") if statement.licensee_id else "",
            lines=tuple(
                replace(
                    line,
                    character_name=names.characters.get(line.character_id, ""),
                    licensee_display_name=names.licensees.get(line.licensee_id, ""),
                )
                for line in statement.lines
            ),
        )
        for statement in statements
    ]


def statement_sums(
    sums: Sequence[LineSums], *, with_lines: bool
) -> tuple[tuple[StatementLine, ...], tuple[StatementTotal, ...]]:
    """Round each line once, then add the lines up per currency: the lines (none unless
    ``with_lines``) and the totals, in currency order."""
    ordered = sorted(sums, key=lambda s: (s.character_id, s.licensee_id, s.currency, s.adjustment_for_period))
    lines: list[StatementLine] = []
    totals: dict[str, StatementTotal] = {}
    for line in ordered:
        share = share_of(line.revenue_times_bps)
        owed = share + line.fees_minor
        if with_lines:
            lines.append(
                StatementLine(
                    character_id=line.character_id,
                    licensee_id=line.licensee_id,
                    currency=line.currency,
                    adjustment_for_period=line.adjustment_for_period,
                    records=line.records,
                    uses=line.uses,
                    duration_ms=line.duration_ms,
                    revenue_minor=line.revenue_minor,
                    revenue_share_minor=share,
                    fee_minor=line.fees_minor,
                    owed_minor=owed,
                )
            )
        total = totals.get(line.currency) or StatementTotal(line.currency)
        totals[line.currency] = StatementTotal(
            currency=line.currency,
            records=total.records + line.records,
            uses=total.uses + line.uses,
            duration_ms=total.duration_ms + line.duration_ms,
            revenue_minor=total.revenue_minor + line.revenue_minor,
            revenue_share_minor=total.revenue_share_minor + share,
            fee_minor=total.fee_minor + line.fees_minor,
            owed_minor=total.owed_minor + owed,
        )
    return tuple(lines), tuple(totals[currency] for currency in sorted(totals))
