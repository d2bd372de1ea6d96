"""Conversions for UsageService: usage records in, outcomes and statements out.

Like ``convert``, these only translate. A usage record's malformed time or duration is not
raised here but handed to the service as `Unreadable`, because a bad record is answered alone
with all of its violations, never by failing the whole batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from charter.v1 import usage_pb2, usage_service_pb2
from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

from charter_server.api.convert import timestamp
from charter_server.api.status import status_code_for
from charter_server.domain.errors import InvalidArgument
from charter_server.domain.models import DailyUsage
from charter_server.services.statements import Statement, StatementState
from charter_server.services.transparency.feed import statement_total
from charter_server.services.usage import Money, UsageOutcome, UsageRecordInput
from charter_server.services.usage_series import UsageSeriesResult
from charter_server.services.validation import Unreadable

_MAX_TIMESTAMP_SECONDS = 253402300799  # 9999-12-31T23:59:59Z, the last second Timestamp allows
_NANOS = 1_000_000_000

STATEMENT_STATE_TO_PB = {
    StatementState.OPEN: usage_pb2.STATEMENT_STATE_OPEN,
    StatementState.CLOSED: usage_pb2.STATEMENT_STATE_CLOSED,
    StatementState.RANGE: usage_pb2.STATEMENT_STATE_RANGE,
}


def usage_records(request: usage_service_pb2.ReportUsageRequest) -> list[UsageRecordInput]:
    """The records of a ReportUsage request, in order."""
    return [usage_record(record) for record in request.records]


def usage_record(record: usage_pb2.UsageRecord) -> UsageRecordInput:
    """One usage record; its fingerprint is the hash of its deterministic wire form."""
    has_receipt = record.HasField("receipt") and bool(record.receipt.payload)
    has_record = record.HasField("decision_record") and bool(record.decision_record.payload)
    duration: int | Unreadable | None = None
    if record.HasField("duration"):
        seconds, nanos = record.duration.seconds, record.duration.nanos
        # A Duration's nanos carry the sign of its seconds; a negative one is too short anyway.
        valid = seconds >= 0 and 0 <= nanos < _NANOS
        duration = seconds * _NANOS + nanos if valid else Unreadable("must be between 0 and 24 hours")
    happen_time: datetime | Unreadable | None = None
    if record.HasField("happen_time"):
        stamp = record.happen_time
        if 0 <= stamp.seconds <= _MAX_TIMESTAMP_SECONDS and 0 <= stamp.nanos < _NANOS:
            happen_time = stamp.ToDatetime(tzinfo=UTC)
        else:
            happen_time = Unreadable("must be a valid time")
    revenue = None
    if record.HasField("attributed_revenue"):
        revenue = Money(record.attributed_revenue.currency_code, record.attributed_revenue.minor_units)
    return UsageRecordInput(
        idempotency_key=record.idempotency_key,
        fingerprint=hashlib.sha256(record.SerializeToString(deterministic=True)).hexdigest(),
        receipt=record.receipt.SerializeToString(deterministic=True) if has_receipt else b"",
        receipt_payload_type=record.receipt.payload_type,
        character_id=record.character_id,
        uses=record.uses,
        duration_ns=duration,
        attributed_revenue=revenue,
        happen_time=happen_time,
        decision_record=record.decision_record.SerializeToString(deterministic=True) if has_record else b"",
        decision_record_payload_type=record.decision_record.payload_type,
    )


def usage_result(outcome: UsageOutcome) -> usage_pb2.UsageResult:
    """One record's answer; a refused record carries what an error of a whole call would."""
    result = usage_pb2.UsageResult(index=outcome.index, idempotency_key=outcome.idempotency_key)
    if outcome.error is not None:
        error = outcome.error
        result.status = usage_pb2.USAGE_STATUS_REJECTED
        result.error_code = status_code_for(error).name
        result.error_reason = error.reason
        result.error_message = error.message
        if isinstance(error, InvalidArgument):
            result.field_violations.extend(
                usage_pb2.UsageFieldViolation(field=v.field, description=v.description) for v in error.violations
            )
        return result
    entry = outcome.entry
    assert entry is not None
    result.status = usage_pb2.USAGE_STATUS_ACCEPTED
    result.duplicate = outcome.duplicate
    result.late = outcome.late
    result.usage_id = entry.id
    result.statement_period = entry.statement_period
    result.accept_time.FromDatetime(entry.accept_time)
    return result


def statement(value: Statement) -> usage_pb2.Statement:
    """The protobuf form of a statement."""
    return usage_pb2.Statement(
        rights_holder_id=value.rights_holder_id,
        period=value.period,
        start_date=value.start_date.isoformat(),
        end_date=value.end_date.isoformat(),
        state=STATEMENT_STATE_TO_PB[value.state],
        close_time=timestamp(value.close_time),
        licensee_id=value.licensee_id,
        lines=[
            usage_pb2.StatementLine(
                character_id=line.character_id,
                licensee_id=line.licensee_id,
                currency_code=line.currency,
                adjustment_for_period=line.adjustment_for_period,
                records=line.records,
                uses=line.uses,
                duration_milliseconds=line.duration_ms,
                revenue_minor_units=line.revenue_minor,
                revenue_share_minor_units=line.revenue_share_minor,
                fee_minor_units=line.fee_minor,
                owed_minor_units=line.owed_minor,
                character_name=line.character_name,
                licensee_display_name=line.licensee_display_name,
            )
            for line in value.lines
        ],
        totals=[statement_total(total) for total in value.totals],
        rights_holder_display_name=value.rights_holder_display_name,
        licensee_display_name=value.licensee_display_name,
    )


def statements(values: Sequence[Statement]) -> list[usage_pb2.Statement]:
    """The protobuf forms of several statements, in order."""
    return [statement(value) for value in values]


def usage_day(sums: DailyUsage) -> usage_service_pb2.UsageDay:
    """One day's (or, with an empty day, a range's) sums."""
    return usage_service_pb2.UsageDay(
        date=sums.day, records=sums.records, uses=sums.uses, duration_milliseconds=sums.duration_ms
    )


def _add_days(days: RepeatedCompositeFieldContainer[usage_service_pb2.UsageDay], found: Iterable[DailyUsage]) -> None:
    """Append each day's sums to a repeated ``UsageDay`` field: made in place, not built apart and
    copied in (a year of 20 series is over 7,000 of them)."""
    add = days.add
    for sums in found:
        add(date=sums.day, records=sums.records, uses=sums.uses, duration_milliseconds=sums.duration_ms)


def usage_series(result: UsageSeriesResult) -> usage_service_pb2.GetUsageSeriesResponse:
    """A GetUsageSeries answer."""
    by_licensee = result.by_licensee
    response = usage_service_pb2.GetUsageSeriesResponse(
        rights_holder_id=result.rights_holder_id,
        rights_holder_display_name=result.rights_holder_display_name,
        start_date=result.start_date,
        end_date=result.end_date,
        grouping=usage_service_pb2.USAGE_SERIES_GROUPING_LICENSEE
        if by_licensee
        else usage_service_pb2.USAGE_SERIES_GROUPING_CHARACTER,
        total=usage_day(result.total),
        omitted_series=result.omitted_series,
    )
    _add_days(response.days, result.days)
    for found in result.series:
        series = response.series.add(total=usage_day(found.total))
        _add_days(series.days, found.days)
        if by_licensee:
            series.licensee_id, series.licensee_display_name = found.key, found.name
        else:
            series.character_id, series.character_name = found.key, found.name
    # A series' total carries no day.
    for series in response.series:
        series.total.date = ""
    response.total.date = ""
    return response
