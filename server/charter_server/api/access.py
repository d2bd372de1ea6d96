"""AccessService servicer: convert, call the service, convert back."""

from __future__ import annotations

import grpc
from charter.v1 import access_service_pb2 as pb
from charter.v1 import access_service_pb2_grpc as pb_grpc

from charter_server.api import convert
from charter_server.api.context import current_principal
from charter_server.domain.clock import Clock
from charter_server.services.access import AccessService, ApiKeyInput


class AccessServicer(pb_grpc.AccessServiceServicer):
    """API keys over gRPC."""

    def __init__(self, service: AccessService, clock: Clock) -> None:
        self._service = service
        self._clock = clock

    def CreateApiKey(self, request: pb.CreateApiKeyRequest, context: grpc.ServicerContext) -> pb.CreateApiKeyResponse:
        created = self._service.create_api_key(
            current_principal(),
            ApiKeyInput(
                display_name=request.display_name,
                role=convert.role(request.role, "role", required=True),
                rights_holder_id=request.rights_holder_id,
                licensee_id=request.licensee_id,
                expire_time=convert.optional_time(request, "expire_time"),
            ),
            request_id=request.request_id,
        )
        return pb.CreateApiKeyResponse(
            api_key=convert.api_key(created.api_key, self._clock.now()), secret=created.secret
        )

    def GetApiKey(self, request: pb.GetApiKeyRequest, context: grpc.ServicerContext) -> pb.GetApiKeyResponse:
        key = self._service.get_api_key(current_principal(), request.id)
        return pb.GetApiKeyResponse(api_key=convert.api_key(key, self._clock.now()))

    def ListApiKeys(self, request: pb.ListApiKeysRequest, context: grpc.ServicerContext) -> pb.ListApiKeysResponse:
        page = self._service.list_api_keys(
            current_principal(),
            role=convert.role(request.role, "role", required=False),
            show_inactive=request.show_inactive,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        now = self._clock.now()
        return pb.ListApiKeysResponse(
            api_keys=[convert.api_key(k, now) for k in page.items], next_page_token=page.next_page_token
        )

    def RevokeApiKey(self, request: pb.RevokeApiKeyRequest, context: grpc.ServicerContext) -> pb.RevokeApiKeyResponse:
        key = self._service.revoke_api_key(current_principal(), request.id)
        return pb.RevokeApiKeyResponse(api_key=convert.api_key(key, self._clock.now()))

    def GetCaller(self, request: pb.GetCallerRequest, context: grpc.ServicerContext) -> pb.GetCallerResponse:
        key = self._service.get_caller(current_principal())
        return pb.GetCallerResponse(api_key=convert.api_key(key, self._clock.now()))
