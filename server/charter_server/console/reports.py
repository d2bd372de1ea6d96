"""Grants, usage over time and statements: what a rights holder's characters are licensed for, how
much they are used, and what is owed, with names and money formatted for the reader."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from charter.v1 import usage_pb2
from charter.v1 import usage_service_pb2 as usage_pb
from starlette.requests import Request
from starlette.responses import Response

from charter_server.console import formatting
from charter_server.console.chart import daily_chart, dense
from charter_server.console.pages import PAGE, first
from charter_server.console.sessions import Session
from charter_server.console.web import message_page, page, session_of

FIRST_DAY = date(1970, 1, 1)
"""The first day the usage page shows (no use of Charter is older)."""
MAX_DAYS = 366
CHARTS = 8
"""Series drawn as charts on the usage page (the busiest first)."""
_PERIOD = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
_ID = re.compile(r"[a-z]{2,4}_[0-9a-f]{32}")


def _holder_id(session: Session, given: str) -> str:
    """A rights-holder key always reads its own; staff choose."""
    if session.caller.is_rights_holder:
        return session.caller.rights_holder_id
    return given


async def grants(request: Request) -> Response:
    """Grants on the caller's characters (all grants for staff), newest first, with names."""
    session = session_of(request)
    state = request.query_params.get("state", "")
    if state not in ("", "active", "suspended", "revoked"):
        state = ""
    character_id = request.query_params.get("character", "")[:60]
    found = await first(
        session.client.list_grants(character_id=character_id, state=state or None, page_size=PAGE), PAGE
    )
    return page(
        request,
        "grants.html",
        {"grants": found, "state": state, "character": character_id, "default_expiry": _in_a_year()},
        session=session,
    )


def _in_a_year() -> str:
    return f"{datetime.now(UTC) + timedelta(days=365):%Y-%m-%d}"


def _parse_day(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        return None


async def usage(request: Request) -> Response:
    """Daily uses over a range of up to a year, per character or per licensee, with totals."""
    session = session_of(request)
    params = request.query_params
    today = datetime.now(UTC).date()
    end = _parse_day(params.get("end", "")) or today
    # By default the 30 days up to the end, never before FIRST_DAY (0001-01-01 - 29 days overflows).
    month_before = end - timedelta(days=29) if end >= FIRST_DAY + timedelta(days=29) else FIRST_DAY
    start = _parse_day(params.get("start", "")) or month_before
    by = "licensee" if params.get("by") == "licensee" else "character"
    character_id = params.get("character", "")[:60]
    holder = _holder_id(session, params.get("rights_holder", "")[:60])
    problem = ""
    if start < FIRST_DAY or end < FIRST_DAY:
        problem = f"Choose days from {FIRST_DAY.isoformat()} on."
    elif end < start:
        problem = "The last day must not be before the first."
    elif (end - start).days >= MAX_DAYS:
        problem = f"Choose a range of at most {MAX_DAYS} days."
    context: dict[str, object] = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "by": by,
        "character": character_id,
        "rights_holder": holder,
        "problem": problem,
        "result": None,
    }
    if not problem and holder:
        result: usage_pb.GetUsageSeriesResponse = await session.client.get_usage_series(
            holder,
            start_date=start,
            end_date=end,
            by_licensee=by == "licensee",
            character_id=character_id,
            max_series=20,
        )
        all_days = [d.date for d in result.days]
        context["result"] = result
        context["total_chart"] = daily_chart([(d.date, d.uses) for d in result.days])
        context["series"] = list(result.series)
        # A chart for the busiest few; the table lists every series returned.
        context["series_charts"] = [
            (s, daily_chart(dense(all_days, {d.date: d.uses for d in s.days}))) for s in result.series[:CHARTS]
        ]
    status = 400 if problem else 200
    return page(request, "usage.html", context, status=status, session=session)


async def statements(request: Request) -> Response:
    """The monthly statements of a rights holder (the caller's own, or the one staff chose)."""
    session = session_of(request)
    holder = _holder_id(session, request.query_params.get("rights_holder", "")[:60])
    found = []
    if holder or session.caller.is_staff:
        found = await first(session.client.list_statements(rights_holder_id=holder, page_size=PAGE), PAGE)
    return page(
        request,
        "statements.html",
        {"statements": found, "rights_holder": holder, "last_month": _last_month()},
        session=session,
    )


def _last_month() -> str:
    first_of_this = datetime.now(UTC).date().replace(day=1)
    return f"{first_of_this - timedelta(days=1):%Y-%m}"


async def _statement(request: Request) -> tuple[Session, usage_pb2.Statement | None, Response | None]:
    session = session_of(request)
    holder = request.path_params["rights_holder_id"]
    period = request.path_params["period"]
    if not _PERIOD.fullmatch(period) or not _ID.fullmatch(holder):
        return (
            session,
            None,
            message_page(request, "Not found", "There is no statement at this address.", status=404, session=session),
        )
    statement: usage_pb2.Statement = await session.client.get_statement(holder, period=period)
    return session, statement, None


async def statement(request: Request) -> Response:
    """One month's statement: lines with character and licensee names, adjustments marked, totals."""
    session, found, problem = await _statement(request)
    if problem is not None:
        return problem
    return page(request, "statement.html", {"statement": found}, session=session)


CSV_COLUMNS = (
    "period",
    "character_id",
    "character_name",
    "licensee_id",
    "licensee_name",
    "adjustment_for_period",
    "currency",
    "records",
    "uses",
    "duration_ms",
    "revenue_minor_units",
    "revenue",
    "revenue_share_minor_units",
    "revenue_share",
    "fee_minor_units",
    "fees",
    "owed_minor_units",
    "owed",
)


async def statement_csv(request: Request) -> Response:
    """The statement as CSV: ids and names, exact minor units and the amounts in major units."""
    _, found, problem = await _statement(request)
    if problem is not None:
        return problem
    assert found is not None
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for line in found.lines:
        currency = line.currency_code

        def major(minor: int, currency: str = currency) -> Decimal:
            return formatting.major_units(minor, currency)

        writer.writerow(
            [
                formatting.csv_cell(value)
                for value in (
                    found.period,
                    line.character_id,
                    line.character_name,
                    line.licensee_id,
                    line.licensee_display_name,
                    line.adjustment_for_period,
                    currency,
                    line.records,
                    line.uses,
                    line.duration_milliseconds,
                    line.revenue_minor_units,
                    major(line.revenue_minor_units),
                    line.revenue_share_minor_units,
                    major(line.revenue_share_minor_units),
                    line.fee_minor_units,
                    major(line.fee_minor_units),
                    line.owed_minor_units,
                    major(line.owed_minor_units),
                )
            ]
        )
    name = f"statement-{found.rights_holder_id}-{found.period}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
