"""UsageService servicer: usage reports and revenue-share statements."""

from __future__ import annotations

import grpc
from charter.v1 import usage_service_pb2 as pb
from charter.v1 import usage_service_pb2_grpc as pb_grpc

from charter_server.api import convert_usage as convert
from charter_server.api.context import current_principal
from charter_server.services.statements import StatementService
from charter_server.services.usage import UsageService


class UsageServicer(pb_grpc.UsageServiceServicer):
    """The UsageService RPCs over gRPC."""

    def __init__(self, usage: UsageService, statements: StatementService) -> None:
        self._usage = usage
        self._statements = statements

    def ReportUsage(self, request: pb.ReportUsageRequest, context: grpc.ServicerContext) -> pb.ReportUsageResponse:
        outcomes = self._usage.report(current_principal(), convert.usage_records(request))
        return pb.ReportUsageResponse(results=[convert.usage_result(outcome) for outcome in outcomes])

    def GetStatement(self, request: pb.GetStatementRequest, context: grpc.ServicerContext) -> pb.GetStatementResponse:
        statement = self._statements.get(
            current_principal(),
            request.rights_holder_id,
            period=request.period,
            start_date=request.start_date,
            end_date=request.end_date,
            licensee_id=request.licensee_id,
        )
        return pb.GetStatementResponse(statement=convert.statement(statement))

    def ListStatements(
        self, request: pb.ListStatementsRequest, context: grpc.ServicerContext
    ) -> pb.ListStatementsResponse:
        statements, token = self._statements.list(
            current_principal(),
            rights_holder_id=request.rights_holder_id,
            licensee_id=request.licensee_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListStatementsResponse(statements=convert.statements(statements), next_page_token=token)

    def CloseStatementPeriod(
        self, request: pb.CloseStatementPeriodRequest, context: grpc.ServicerContext
    ) -> pb.CloseStatementPeriodResponse:
        statement = self._statements.close(current_principal(), request.rights_holder_id, request.period)
        return pb.CloseStatementPeriodResponse(statement=convert.statement(statement))
