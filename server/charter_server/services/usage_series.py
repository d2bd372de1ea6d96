"""``GetUsageSeries``: a rights holder's usage day by day, per character or per licensee.

The series are read from the daily roll-up (``usage_daily``) that ``ReportUsage`` keeps in the
transaction that accepts the records, so they agree with the records exactly and a year of a
busy rights holder is at most one row per character, licensee and day. Days are UTC days of when
the uses happened (as in a statement over a date range), never adjusted by closed months.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from charter_server.domain.models import DailyUsage, Principal
from charter_server.services import statements
from charter_server.services.validation import Checker
from charter_server.storage.database import Database

DEFAULT_MAX_SERIES = 20
"""The series returned when the request does not say."""
MAX_SERIES = 100
"""The most series one answer may carry."""


@dataclass(frozen=True, slots=True)
class UsageSeries:
    """The daily usage of one character (or licensee): its days with usage, in order, and its sums."""

    key: str
    name: str
    days: tuple[DailyUsage, ...]
    total: DailyUsage


@dataclass(frozen=True, slots=True)
class UsageSeriesResult:
    """A rights holder's usage series over a range: the series kept, every day's sums over all of
    them (days without usage included), the range's sums, and how many series were left out."""

    rights_holder_id: str
    rights_holder_display_name: str
    start_date: str
    end_date: str
    by_licensee: bool
    series: tuple[UsageSeries, ...]
    days: tuple[DailyUsage, ...]
    total: DailyUsage
    omitted_series: int


class UsageSeriesService:
    """Builds usage series; see the module docstring."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(
        self,
        principal: Principal,
        rights_holder_id: str,
        *,
        start_date: str,
        end_date: str,
        by_licensee: bool = False,
        character_id: str = "",
        licensee_id: str = "",
        max_series: int = 0,
    ) -> UsageSeriesResult:
        """The daily series of a rights holder's usage over a date range.

        Raises:
            InvalidArgument: A field is invalid (each named).
            PermissionDenied: A rights-holder key asked for another's; a generator key for another licensee.
            NotFound: The rights holder does not exist.
        """
        checker = Checker()
        checker.resource_id("rights_holder_id", rights_holder_id, "rights_holder")
        if character_id:
            checker.resource_id("character_id", character_id, "character")
        if licensee_id:
            checker.resource_id("licensee_id", licensee_id, "licensee")
        if not 0 <= max_series <= MAX_SERIES:
            checker.add("max_series", f"must be between 0 and {MAX_SERIES}")
        span = None
        if not start_date and not end_date:
            checker.add("start_date", "is required")
        else:
            span = statements.date_span(checker, start_date, end_date)
        checker.done()
        assert span is not None
        start, end = span
        scope = statements.scope_of(principal, rights_holder_id, licensee_id)
        limit = max_series or DEFAULT_MAX_SERIES
        first_day, last_day = start.isoformat(), end.isoformat()
        only_character = character_id or None
        with self._db.uow() as uow:
            statements.require_rights_holder(uow, rights_holder_id)
            # Added up in the database, in three reads whatever the volume: every series' total (to
            # rank them), the days of the series kept, and the days of all of them together.
            totals = uow.usage.usage_by_key(
                rights_holder_id,
                first_day,
                last_day,
                by_licensee=by_licensee,
                character_id=only_character,
                licensee_id=scope,
            )
            ranked = sorted(totals, key=lambda t: (-t.uses, -t.records, t.key))
            kept = ranked[:limit]
            ids = [t.key for t in kept]
            days_of_kept = uow.usage.usage_by_day(
                rights_holder_id,
                first_day,
                last_day,
                by_licensee=by_licensee,
                keys=ids,
                character_id=only_character,
                licensee_id=scope,
            )
            every_day = uow.usage.usage_by_day(
                rights_holder_id, first_day, last_day, character_id=only_character, licensee_id=scope
            )
            names = uow.display_names.lookup(
                character_ids=() if by_licensee else ids,
                licensee_ids=ids if by_licensee else (),
                rights_holder_ids=[rights_holder_id],
            )
        by_key: dict[str, list[DailyUsage]] = defaultdict(list)
        for row in days_of_kept:
            by_key[row.key].append(row)
        known = names.licensees if by_licensee else names.characters
        found = {d.day: d for d in every_day}
        return UsageSeriesResult(
            rights_holder_id=rights_holder_id,
            rights_holder_display_name=names.rights_holders.get(rights_holder_id, ""),
            start_date=first_day,
            end_date=last_day,
            by_licensee=by_licensee,
            series=tuple(
                UsageSeries(t.key, known.get(t.key, ""), tuple(sorted(by_key[t.key], key=lambda d: d.day)), t)
                for t in kept
            ),
            days=tuple(
                found.get(day, DailyUsage(day, "", 0, 0, 0))
                for day in ((start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1))
            ),
            total=DailyUsage(
                "",
                "",
                sum(t.records for t in totals),
                sum(t.uses for t in totals),
                sum(t.duration_ms for t in totals),
            ),
            omitted_series=len(ranked) - len(kept),
        )
