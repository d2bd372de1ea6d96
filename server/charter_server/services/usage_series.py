"""``GetUsageSeries``: a rights holder's usage day by day, per character or per licensee.

The series are read from the daily roll-up (``usage_daily``) that ``ReportUsage`` keeps in the
transaction that accepts the records, so they agree with the records exactly and a year of a
busy rights holder is at most one row per character, licensee and day. Days are UTC days of when
the uses happened (as in a statement over a date range), never adjusted by closed months.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from charter.v1 import usage_service_pb2 as pb

from charter_server.domain.models import DailyUsage, Principal
from charter_server.services import statements
from charter_server.services.validation import Checker
from charter_server.storage.database import Database

DEFAULT_MAX_SERIES = 20
"""The series returned when the request does not say."""
MAX_SERIES = 100
"""The most series one answer may carry."""

CHARACTER = pb.USAGE_SERIES_GROUPING_CHARACTER
LICENSEE = pb.USAGE_SERIES_GROUPING_LICENSEE


class UsageSeriesService:
    """Builds usage series; see the module docstring."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, principal: Principal, request: pb.GetUsageSeriesRequest) -> pb.GetUsageSeriesResponse:
        """The daily series of a rights holder's usage over a date range.

        Raises:
            InvalidArgument: A field is invalid (each named).
            PermissionDenied: A rights-holder key asked for another's; a generator key for another licensee.
            NotFound: The rights holder does not exist.
        """
        checker = Checker()
        checker.resource_id("rights_holder_id", request.rights_holder_id, "rights_holder")
        if request.character_id:
            checker.resource_id("character_id", request.character_id, "character")
        if request.licensee_id:
            checker.resource_id("licensee_id", request.licensee_id, "licensee")
        if request.grouping not in (pb.USAGE_SERIES_GROUPING_UNSPECIFIED, CHARACTER, LICENSEE):
            checker.add("grouping", "must be CHARACTER or LICENSEE")
        if not 0 <= request.max_series <= MAX_SERIES:
            checker.add("max_series", f"must be between 0 and {MAX_SERIES}")
        span = None
        if not request.start_date and not request.end_date:
            checker.add("start_date", "is required")
        else:
            span = statements.date_span(checker, request.start_date, request.end_date)
        checker.done()
        assert span is not None
        start, end = span
        licensee_id = statements.scope(principal, request.rights_holder_id, request.licensee_id)
        grouping = LICENSEE if request.grouping == LICENSEE else CHARACTER
        limit = request.max_series or DEFAULT_MAX_SERIES
        by_licensee = grouping == LICENSEE
        first_day, last_day = start.isoformat(), end.isoformat()
        filters = {"character_id": request.character_id or None, "licensee_id": licensee_id}
        with self._db.uow() as uow:
            statements.require_rights_holder(uow, request.rights_holder_id)
            # Added up in the database, in three reads whatever the volume: every series' total (to
            # rank them), the days of the series kept, and the days of all of them together.
            totals = uow.usage.usage_by_key(
                request.rights_holder_id, first_day, last_day, by_licensee=by_licensee, **filters
            )
            ranked = sorted(totals, key=lambda t: (-t.uses, -t.records, t.key))
            kept = ranked[:limit]
            days_of_kept = uow.usage.usage_by_day(
                request.rights_holder_id,
                first_day,
                last_day,
                by_licensee=by_licensee,
                keys=[t.key for t in kept],
                **filters,
            )
            every_day = uow.usage.usage_by_day(request.rights_holder_id, first_day, last_day, **filters)
            ids = [t.key for t in kept]
            names = uow.display_names.lookup(
                character_ids=() if by_licensee else ids,
                licensee_ids=ids if by_licensee else (),
                rights_holder_ids=[request.rights_holder_id],
            )
        by_key: dict[str, list[DailyUsage]] = defaultdict(list)
        for row in days_of_kept:
            by_key[row.key].append(row)
        overall = DailyUsage(
            "",
            "",
            sum(t.records for t in totals),
            sum(t.uses for t in totals),
            sum(t.duration_ms for t in totals),
        )
        response = pb.GetUsageSeriesResponse(
            rights_holder_id=request.rights_holder_id,
            rights_holder_display_name=names.rights_holders.get(request.rights_holder_id, ""),
            start_date=first_day,
            end_date=last_day,
            grouping=grouping,
            omitted_series=len(ranked) - len(kept),
            total=_day(overall),
        )
        for total in kept:
            series = response.series.add(
                days=[_day(d) for d in sorted(by_key[total.key], key=lambda d: d.day)], total=_day(total)
            )
            if by_licensee:
                series.licensee_id = total.key
                series.licensee_display_name = names.licensees.get(total.key, "")
            else:
                series.character_id = total.key
                series.character_name = names.characters.get(total.key, "")
        found = {d.day: d for d in every_day}
        for n in range((end - start).days + 1):
            day = (start + timedelta(days=n)).isoformat()
            response.days.append(_day(found.get(day, DailyUsage(day, "", 0, 0, 0)), day))
        return response


def _day(sums: DailyUsage, day: str | None = None) -> pb.UsageDay:
    return pb.UsageDay(
        date=sums.day if day is None else day,
        records=sums.records,
        uses=sums.uses,
        duration_milliseconds=sums.duration_ms,
    )
