"""``GetUsageSeries``: a rights holder's usage day by day, per character or per licensee.

The series are read from the daily roll-ups that ``ReportUsage`` keeps in the transaction that
accepts the records (``usage_daily`` per character and licensee, ``usage_daily_characters`` and
``usage_daily_licensees`` summed over the other), so they agree with the records exactly. The
database sums them per day, per series and per both, and only the busiest series' days leave it,
so the work here is bounded by what the answer carries, not by how busy the rights holder is.
Days are UTC days of when the uses happened (as in a statement over a date range), never adjusted
by closed months.
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
            holder = statements.require_rights_holder(uow, rights_holder_id, principal)  # and its name
            found = uow.usage.usage_series(
                rights_holder_id,
                first_day,
                last_day,
                by_licensee=by_licensee,
                limit=limit,
                character_id=only_character,
                licensee_id=scope,
            )
            ids = [series.key for series in found.ranked]
            names = uow.display_names.lookup(
                character_ids=() if by_licensee else ids,
                licensee_ids=ids if by_licensee else (),
            )
        by_key: dict[str, list[DailyUsage]] = defaultdict(list)
        for row in found.series_days:
            by_key[row.key].append(row)
        for days in by_key.values():
            days.sort()  # by day: the key is the same in each
        per_day = {row.day: row for row in found.days}
        known = names.licensees if by_licensee else names.characters
        every_day = ((start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1))
        return UsageSeriesResult(
            rights_holder_id=rights_holder_id,
            rights_holder_display_name=holder.display_name,
            start_date=first_day,
            end_date=last_day,
            by_licensee=by_licensee,
            series=tuple(
                UsageSeries(series.key, known.get(series.key, ""), tuple(by_key[series.key]), series)
                for series in found.ranked
            ),
            days=tuple(per_day.get(day) or DailyUsage(day, "", 0, 0, 0) for day in every_day),
            total=DailyUsage(
                "",
                "",
                sum(d.records for d in found.days),
                sum(d.uses for d in found.days),
                sum(d.duration_ms for d in found.days),
            ),
            omitted_series=found.series_count - len(found.ranked),
        )
