"""``GetUsageSeries``: a rights holder's usage day by day, per character or per licensee.

The series are read from the daily roll-up (``usage_daily``) that ``ReportUsage`` keeps in the
transaction that accepts the records, so they agree with the records exactly and a year of a
busy rights holder is at most one row per character, licensee and day. Days are UTC days of when
the uses happened (as in a statement over a date range), never adjusted by closed months.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
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


@dataclass(slots=True)
class _Sums:
    records: int = 0
    uses: int = 0
    duration_ms: int = 0
    days: dict[str, list[int]] = field(default_factory=dict)

    def add(self, row: DailyUsage) -> None:
        self.records += row.records
        self.uses += row.uses
        self.duration_ms += row.duration_ms
        day = self.days.setdefault(row.day, [0, 0, 0])
        day[0] += row.records
        day[1] += row.uses
        day[2] += row.duration_ms


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
        with self._db.uow() as uow:
            statements.require_rights_holder(uow, request.rights_holder_id)
            rows = uow.usage.daily(
                request.rights_holder_id,
                start.isoformat(),
                end.isoformat(),
                character_id=request.character_id or None,
                licensee_id=licensee_id,
            )
            by_key: dict[str, _Sums] = defaultdict(_Sums)
            overall = _Sums()
            for row in rows:
                by_key[row.character_id if grouping == CHARACTER else row.licensee_id].add(row)
                overall.add(row)
            ranked = sorted(by_key.items(), key=lambda item: (-item[1].uses, -item[1].records, item[0]))
            kept = ranked[:limit]
            ids = [key for key, _ in kept]
            names = uow.display_names.lookup(
                character_ids=ids if grouping == CHARACTER else (),
                licensee_ids=ids if grouping == LICENSEE else (),
                rights_holder_ids=[request.rights_holder_id],
            )
        response = pb.GetUsageSeriesResponse(
            rights_holder_id=request.rights_holder_id,
            rights_holder_display_name=names.rights_holders.get(request.rights_holder_id, ""),
            start_date=start.isoformat(),
            end_date=end.isoformat(),
            grouping=grouping,
            omitted_series=len(ranked) - len(kept),
            total=pb.UsageDay(records=overall.records, uses=overall.uses, duration_milliseconds=overall.duration_ms),
        )
        for key, sums in kept:
            series = response.series.add(
                days=_days(sorted(sums.days.items())),
                total=pb.UsageDay(records=sums.records, uses=sums.uses, duration_milliseconds=sums.duration_ms),
            )
            if grouping == CHARACTER:
                series.character_id = key
                series.character_name = names.characters.get(key, "")
            else:
                series.licensee_id = key
                series.licensee_display_name = names.licensees.get(key, "")
        every_day = ((start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1))
        response.days.extend(_days((day, overall.days.get(day, [0, 0, 0])) for day in every_day))
        return response


def _days(days: Iterable[tuple[str, list[int]]]) -> list[pb.UsageDay]:
    return [pb.UsageDay(date=day, records=v[0], uses=v[1], duration_milliseconds=v[2]) for day, v in days]
