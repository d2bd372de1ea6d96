"""UsageService servicer: usage reports and revenue-share statements."""

from __future__ import annotations

import grpc
from charter.v1 import usage_pb2
from charter.v1 import usage_service_pb2 as pb
from charter.v1 import usage_service_pb2_grpc as pb_grpc
from google.protobuf import timestamp_pb2

from charter_server.api.context import current_principal
from charter_server.api.status import status_code_for
from charter_server.domain.errors import InvalidArgument
from charter_server.services.statements import StatementService
from charter_server.services.usage import UsageOutcome, UsageService
from charter_server.services.usage_series import UsageSeriesService


class UsageServicer(pb_grpc.UsageServiceServicer):
    """The UsageService RPCs over gRPC."""

    def __init__(self, usage: UsageService, statements: StatementService, series: UsageSeriesService) -> None:
        self._usage = usage
        self._statements = statements
        self._series = series

    def ReportUsage(self, request: pb.ReportUsageRequest, context: grpc.ServicerContext) -> pb.ReportUsageResponse:
        outcomes = self._usage.report(current_principal(), request)
        return pb.ReportUsageResponse(results=[_result(outcome) for outcome in outcomes])

    def GetStatement(self, request: pb.GetStatementRequest, context: grpc.ServicerContext) -> pb.GetStatementResponse:
        return pb.GetStatementResponse(statement=self._statements.get(current_principal(), request))

    def ListStatements(
        self, request: pb.ListStatementsRequest, context: grpc.ServicerContext
    ) -> pb.ListStatementsResponse:
        statements, token = self._statements.list(current_principal(), request)
        return pb.ListStatementsResponse(statements=statements, next_page_token=token)

    def CloseStatementPeriod(
        self, request: pb.CloseStatementPeriodRequest, context: grpc.ServicerContext
    ) -> pb.CloseStatementPeriodResponse:
        return pb.CloseStatementPeriodResponse(statement=self._statements.close(current_principal(), request))

    def GetUsageSeries(
        self, request: pb.GetUsageSeriesRequest, context: grpc.ServicerContext
    ) -> pb.GetUsageSeriesResponse:
        return self._series.get(current_principal(), request)


def _result(outcome: UsageOutcome) -> usage_pb2.UsageResult:
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
    accept_time = timestamp_pb2.Timestamp()
    accept_time.FromDatetime(entry.accept_time)
    result.status = usage_pb2.USAGE_STATUS_ACCEPTED
    result.duplicate = outcome.duplicate
    result.usage_id = entry.id
    result.statement_period = entry.statement_period
    result.accept_time.CopyFrom(accept_time)
    return result
