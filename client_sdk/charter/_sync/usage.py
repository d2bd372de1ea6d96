# Generated from charter/_async/usage.py by client_sdk/generate_sync.py; do not edit.
"""Usage and revenue share: reporting uses, and reading and closing statements (UsageService)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator

from charter import _io_sync as io
from charter import _requests
from charter._license import License, SendOutcome, settle_flush, settle_license_report
from charter._options import retry_delays
from charter._sync._transport import Transport
from charter.errors import CharterError, DeadlineExceededError
from charter.usage import MAX_BATCH_SIZE, UsageReport, UsageResult
from charter.v1 import usage_pb2, usage_service_pb2


class UsageCalls(Transport):
    """Reporting what was rendered, and the statements of what it is owed."""

    def report_usage(
        self,
        records: Iterable[UsageReport | usage_pb2.UsageRecord],
        *,
        batch_size: int = 100,
        timeout: float | None = None,
    ) -> list[UsageResult]:
        """Reports what was rendered: one record per use of a character under a decision receipt.

        The records go in batches of `batch_size`, one call each, and are answered one by one:
        a rejected record (for example `RECEIPT_DOES_NOT_ALLOW_CHARACTER`) does not sink the
        others. Every record is idempotent by its key, so a batch is safe to send again: gRPC
        retries it on `UNAVAILABLE` according to the client's `retry`, and the client sends it
        again with a fresh deadline after `DEADLINE_EXCEEDED`, up to the same number of attempts.
        Allowed roles: generator (the records of its own licensee).

        Example:
            ```python
            results = client.report_usage([UsageReport(decision.receipt, "chr_...")])
            for result in results:
                if not result.accepted:
                    print(result.index, result.error_reason)
            ```

        Args:
            records: `charter.usage.UsageReport` objects or `charter.v1.usage_pb2.UsageRecord`
                messages. A report without `happen_time` gets the time of this call; give it a
                time (or fix it with `UsageReport.at`) if you may send it again, since a record
                re-sent with another time is refused with `IDEMPOTENCY_KEY_REUSED`.
            batch_size: Records per call, 1 to 1000.
            timeout: The deadline of each call in seconds, instead of the default.

        Returns:
            One result per record, in the order given (`UsageResult.index` is the position in
            `records`); empty when `records` is.

        Raises:
            TypeError: If a record is neither a `UsageReport` nor a `UsageRecord`.
            ValueError: If `batch_size` is out of range.
            PermissionDeniedError: If the API key is not a generator's.
            CharterError: If a batch still fails after the retries; the batches before it were
                recorded, and sending the same records again is safe (they come back as
                duplicates).
        """
        batch_size = _requests.check_batch_size(batch_size)
        prepared = _requests.usage_records(records, now=dt.datetime.now(dt.UTC))
        results, _, error = self._send_usage(prepared, batch_size, timeout, repeat=True)
        if error is not None:
            raise error
        return results

    def flush_usage(self, *, batch_size: int = 100, timeout: float | None = None) -> list[UsageResult]:
        """Sends the reports waiting in `pending_usage` again.

        ``license(...)`` blocks whose report could not be delivered leave it there. Each report
        is sent exactly as first attempted (same key, same time), so one that did reach the
        server before is answered as a duplicate and never counted twice. Reports that meet a
        delivery failure again (`UNAVAILABLE`, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`) go back
        in the queue; a rejected record does not (its result says why). Allowed roles: generator.

        Args:
            batch_size: Records per call, 1 to 1000.
            timeout: The deadline of each call in seconds, instead of the default.

        Returns:
            The results of the reports delivered, `index` counting from 0 over the reports taken
            from the queue; empty when nothing was pending or nothing could be delivered.

        Raises:
            ValueError: If `batch_size` is out of range.
            CharterError: If a call fails other than by a delivery failure (for example
                `PermissionDeniedError` for a key that is not a generator's); the reports not
                delivered are back in the queue.
        """
        batch_size = _requests.check_batch_size(batch_size)
        reports = self.pending_usage.drain()
        if not reports:
            return []
        prepared = [report.to_proto() for report in reports]  # their times were fixed when queued
        outcome = self._send_usage(prepared, batch_size, timeout, repeat=True)
        return settle_flush(reports, outcome, self.pending_usage)

    def get_statement(
        self,
        rights_holder_id: str,
        *,
        period: str = "",
        start_date: dt.date | str = "",
        end_date: dt.date | str = "",
        licensee_id: str = "",
        timeout: float | None = None,
    ) -> usage_pb2.Statement:
        """Gets a rights holder's revenue-share statement for a month or a date range.

        Every amount is an integer number of minor units of the line's currency. Allowed roles:
        admin and auditor (any rights holder), a rights holder (its own), a generator (any
        rights holder, but only its own licensee's lines).

        Args:
            rights_holder_id: The rights holder (`rh_...`).
            period: The calendar month, `YYYY-MM` (UTC); give this or the two dates.
            start_date: The first day of a date range (a `date` or `YYYY-MM-DD`), inclusive.
            end_date: The last day of the range, inclusive; the range covers at most 366 days.
            licensee_id: Only this licensee's lines.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The statement with its lines and totals per currency; its `state` is open or closed
            for a month, range for a date range.

        Raises:
            ValueError: Unless exactly one of `period` and the two dates is given.
            InvalidArgumentError: If a field is malformed (see `field_violations`).
            NotFoundError: If the rights holder does not exist.
            PermissionDeniedError: If the key may not see this rights holder or licensee.
            CharterError: For any other failure.
        """
        start = _requests.day(start_date, what="start_date")
        end = _requests.day(end_date, what="end_date")
        if not isinstance(period, str):
            raise TypeError(f"period must be a 'YYYY-MM' string, not {type(period).__name__}")
        if bool(start) != bool(end):
            raise ValueError("start_date and end_date must be given together")
        if bool(period) == bool(start):
            raise ValueError("give either period ('YYYY-MM') or start_date and end_date, not both or neither")
        request = usage_service_pb2.GetStatementRequest(
            rights_holder_id=rights_holder_id, period=period, start_date=start, end_date=end, licensee_id=licensee_id
        )
        response: usage_service_pb2.GetStatementResponse = self._unary(self._usage.GetStatement, request, timeout)
        return response.statement

    def list_statements(
        self,
        *,
        rights_holder_id: str = "",
        licensee_id: str = "",
        page_size: int = 0,
        timeout: float | None = None,
    ) -> Iterator[usage_pb2.Statement]:
        """Lists monthly statements (totals, no lines), newest month first, fetching pages as iterated.

        A month is listed when a rights holder's characters were used in it, or when it was
        closed. Allowed roles: admin and auditor; a rights holder sees its own statements; a
        generator its own licensee's usage.

        Args:
            rights_holder_id: Only this rights holder's statements.
            licensee_id: Only this licensee's usage.
            page_size: Statements per call; 0 for the server's default.
            timeout: The deadline of each page's call in seconds.

        Returns:
            An iterator over the statements. Calls happen during iteration, so errors
            are raised from the iteration too.

        Raises:
            CharterError: If a page cannot be fetched.
        """
        request = usage_service_pb2.ListStatementsRequest(
            rights_holder_id=rights_holder_id, licensee_id=licensee_id, page_size=page_size
        )
        return self._paginate(self._usage.ListStatements, request, lambda r: r.statements, timeout)

    def close_statement_period(
        self, rights_holder_id: str, *, period: str, timeout: float | None = None
    ) -> usage_pb2.Statement:
        """Closes a rights holder's calendar month, which must have ended. Allowed roles: admin.

        A closed statement never changes: records that arrive late for it count in the next
        open month, as adjustments naming it.

        Args:
            rights_holder_id: The rights holder (`rh_...`).
            period: The month, `YYYY-MM` (UTC).
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The closed statement, with its lines and totals.

        Raises:
            InvalidArgumentError: If a field is malformed.
            NotFoundError: If the rights holder does not exist.
            FailedPreconditionError: If the month is already closed (`STATEMENT_PERIOD_CLOSED`)
                or has not ended (`STATEMENT_PERIOD_NOT_ENDED`).
            CharterError: For any other failure.
        """
        request = usage_service_pb2.CloseStatementPeriodRequest(rights_holder_id=rights_holder_id, period=period)
        response: usage_service_pb2.CloseStatementPeriodResponse = self._unary(
            self._usage.CloseStatementPeriod, request, timeout
        )
        return response.statement

    def get_usage_series(
        self,
        rights_holder_id: str,
        *,
        start_date: dt.date | str,
        end_date: dt.date | str,
        by_licensee: bool = False,
        character_id: str = "",
        licensee_id: str = "",
        max_series: int = 0,
        timeout: float | None = None,
    ) -> usage_service_pb2.GetUsageSeriesResponse:
        """Gets a rights holder's usage day by day, one series per character or per licensee.

        Days are the UTC days the uses happened, over a range of up to 366 days. Allowed roles:
        admin and auditor (any rights holder), a rights holder (its own), a generator (any rights
        holder, but only its own licensee's uses).

        Args:
            rights_holder_id: The rights holder (`rh_...`).
            start_date: The first day (a `date` or `YYYY-MM-DD`), inclusive.
            end_date: The last day, inclusive.
            by_licensee: One series per licensee instead of per character.
            character_id: Only this character's uses.
            licensee_id: Only this licensee's uses.
            max_series: The most series to return (most uses first); 0 for the server's 20.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The series with their names, every day's sums over all series, and the range's total.

        Raises:
            InvalidArgumentError: If a field is malformed or the range is too long.
            NotFoundError: If the rights holder does not exist.
            PermissionDeniedError: If the key may not see this rights holder or licensee.
            CharterError: For any other failure.
        """
        grouping = (
            usage_service_pb2.USAGE_SERIES_GROUPING_LICENSEE
            if by_licensee
            else usage_service_pb2.USAGE_SERIES_GROUPING_CHARACTER
        )
        request = usage_service_pb2.GetUsageSeriesRequest(
            rights_holder_id=rights_holder_id,
            start_date=_requests.day(start_date, what="start_date"),
            end_date=_requests.day(end_date, what="end_date"),
            character_id=character_id,
            licensee_id=licensee_id,
            grouping=grouping,
            max_series=max_series,
        )
        response: usage_service_pb2.GetUsageSeriesResponse = self._unary(self._usage.GetUsageSeries, request, timeout)
        return response

    def _send_usage(
        self, records: list[usage_pb2.UsageRecord], batch_size: int, timeout: float | None, *, repeat: bool
    ) -> SendOutcome:
        """Sends records in batches until one fails; never raises a `CharterError`."""
        results: list[UsageResult] = []
        for start in range(0, len(records), batch_size):
            request = usage_service_pb2.ReportUsageRequest(records=records[start : start + batch_size])
            try:
                response = self._report_batch(request, timeout, repeat=repeat)
            except CharterError as error:
                return results, start, error
            results.extend(UsageResult.from_proto(result, offset=start) for result in response.results)
        return results, len(records), None

    def _report_batch(
        self, request: usage_service_pb2.ReportUsageRequest, timeout: float | None, *, repeat: bool
    ) -> usage_service_pb2.ReportUsageResponse:
        # gRPC retries UNAVAILABLE within the deadline by itself; a deadline that passed is
        # retried here with a fresh one, which the idempotency keys make safe.
        for delay in retry_delays(self._config.retry) if repeat else ():
            try:
                response: usage_service_pb2.ReportUsageResponse = self._unary(self._usage.ReportUsage, request, timeout)
            except DeadlineExceededError:
                io.sleep(delay)
                continue
            return response
        last: usage_service_pb2.ReportUsageResponse = self._unary(self._usage.ReportUsage, request, timeout)
        return last

    def _report_license(self, granted: License, timeout: float | None, happen_time: dt.datetime | None = None) -> None:
        """Reports a clean exit of a `license` block (at ``happen_time``, now by default); never
        raises (see `License`)."""
        reports = granted.usage_reports(happen_time or dt.datetime.now(dt.UTC))
        if not reports:
            return
        # One attempt, with gRPC's own retries of UNAVAILABLE: a hung server delays the block's
        # exit by one deadline at most, and flush_usage() sends the report again later.
        outcome = self._send_usage([r.to_proto() for r in reports], MAX_BATCH_SIZE, timeout, repeat=False)
        settle_license_report(granted, reports, outcome, self.pending_usage)
