"""GrantService and KeyService servicers: convert, call the service, convert back."""

from __future__ import annotations

import grpc
from charter.v1 import grant_pb2
from charter.v1 import grant_service_pb2 as gs
from charter.v1 import grant_service_pb2_grpc as gs_grpc
from charter.v1 import key_service_pb2 as ks
from charter.v1 import key_service_pb2_grpc as ks_grpc

from charter_server.api import convert
from charter_server.api.context import current_principal
from charter_server.domain.errors import InvalidArgument
from charter_server.domain.models import GrantRecord
from charter_server.services.grants import GrantService, IssueInput
from charter_server.services.keys import KeyService


class GrantServicer(gs_grpc.GrantServiceServicer):
    """Grants over gRPC."""

    def __init__(self, grants: GrantService) -> None:
        self._grants = grants

    def _named(self, records: list[GrantRecord]) -> list[grant_pb2.Grant]:
        names = self._grants.names_of(records)
        return [convert.grant(record, names) for record in records]

    def _one(self, record: GrantRecord) -> grant_pb2.Grant:
        return self._named([record])[0]

    def IssueGrant(self, request: gs.IssueGrantRequest, context: grpc.ServicerContext) -> gs.IssueGrantResponse:
        value = IssueInput(
            character_id=request.character_id,
            licensee_id=request.licensee_id,
            expire_time=convert.optional_time(request, "expire_time"),
            not_before=convert.optional_time(request, "not_before"),
            narrowed_terms=request.narrowed_terms.SerializeToString() if request.HasField("narrowed_terms") else None,
            max_uses=request.max_uses if request.HasField("max_uses") else None,
        )
        issued = self._grants.issue(current_principal(), value, request_id=request.request_id)
        return gs.IssueGrantResponse(grant=self._one(issued))

    def GetGrant(self, request: gs.GetGrantRequest, context: grpc.ServicerContext) -> gs.GetGrantResponse:
        return gs.GetGrantResponse(grant=self._one(self._grants.get(current_principal(), request.id)))

    def ListGrants(self, request: gs.ListGrantsRequest, context: grpc.ServicerContext) -> gs.ListGrantsResponse:
        page = self._grants.list(
            current_principal(),
            character_id=request.character_id,
            licensee_id=request.licensee_id,
            rights_holder_id=request.rights_holder_id,
            state=convert.grant_state(request.state, "state"),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return gs.ListGrantsResponse(grants=self._named(page.items), next_page_token=page.next_page_token)

    def SuspendGrant(self, request: gs.SuspendGrantRequest, context: grpc.ServicerContext) -> gs.SuspendGrantResponse:
        grant, sequence = self._grants.suspend(current_principal(), request.id, request.reason)
        return gs.SuspendGrantResponse(grant=self._one(grant), sequence=sequence)

    def ReinstateGrant(
        self, request: gs.ReinstateGrantRequest, context: grpc.ServicerContext
    ) -> gs.ReinstateGrantResponse:
        grant, sequence = self._grants.reinstate(current_principal(), request.id)
        return gs.ReinstateGrantResponse(grant=self._one(grant), sequence=sequence)

    def RevokeGrant(self, request: gs.RevokeGrantRequest, context: grpc.ServicerContext) -> gs.RevokeGrantResponse:
        grant, sequence = self._grants.revoke(current_principal(), request.id, request.reason)
        return gs.RevokeGrantResponse(grant=self._one(grant), sequence=sequence)


class KeyServicer(ks_grpc.KeyServiceServicer):
    """Signing keys over gRPC."""

    def __init__(self, keys: KeyService) -> None:
        self._keys = keys

    def RotateSigningKey(
        self, request: ks.RotateSigningKeyRequest, context: grpc.ServicerContext
    ) -> ks.RotateSigningKeyResponse:
        purpose = convert.SIGNING_KEY_PURPOSE_FROM_PB.get(request.purpose)
        if purpose is None:
            raise InvalidArgument.one("purpose", "must be a signing key purpose")
        active, retired = self._keys.rotate(purpose, actor_key_id=current_principal().key_id)
        origin = self._keys.log_origin
        return ks.RotateSigningKeyResponse(
            active_key=convert.signing_key(active, origin),
            retired_key=convert.signing_key(retired, origin) if retired is not None else None,
        )

    def RevokeSigningKey(
        self, request: ks.RevokeSigningKeyRequest, context: grpc.ServicerContext
    ) -> ks.RevokeSigningKeyResponse:
        key = self._keys.revoke(request.key_id, request.reason, actor_key_id=current_principal().key_id)
        return ks.RevokeSigningKeyResponse(key=convert.signing_key(key, self._keys.log_origin))

    def ListSigningKeys(
        self, request: ks.ListSigningKeysRequest, context: grpc.ServicerContext
    ) -> ks.ListSigningKeysResponse:
        origin = self._keys.log_origin
        return ks.ListSigningKeysResponse(keys=[convert.signing_key(k, origin) for k in self._keys.all_keys()])
