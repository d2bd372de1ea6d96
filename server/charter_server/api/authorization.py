"""AuthorizationService servicer: generation-time decisions, the key set, grant verification, prompt
screening and the revocation stream."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import grpc
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import authorization_service_pb2_grpc as az_grpc
from charter.v1 import decision_pb2

from charter_server.api import convert
from charter_server.api.context import current_principal
from charter_server.api.watch import RevocationStreams
from charter_server.services.authorization import (
    AuthorizationService,
    AuthorizeCommand,
    PreviewCommand,
    ProposedTerms,
    SimulateCommand,
    UseRequest,
)
from charter_server.services.authorization.receipt import character_decision
from charter_server.services.authorization.service import stated
from charter_server.services.grants import GrantService
from charter_server.services.keys import KeyService
from charter_server.services.screening import PromptScreen

_WOULD_DENY = az.TermsChange.DIRECTION_WOULD_DENY
_WOULD_ALLOW = az.TermsChange.DIRECTION_WOULD_ALLOW


class AuthorizationServicer(az_grpc.AuthorizationServiceServicer):
    """The AuthorizationService RPCs over gRPC."""

    def __init__(
        self,
        keys: KeyService,
        grants: GrantService,
        screen: PromptScreen,
        streams: RevocationStreams,
        authorization: AuthorizationService,
    ) -> None:
        self._keys = keys
        self._grants = grants
        self._screen = screen
        self._streams = streams
        self._authorization = authorization

    # Answers with the serialized response, assembled around the receipt's bytes (see
    # services.authorization.receipt), which the dispatcher sends as they are.
    def Authorize(self, request: az.AuthorizeRequest, context: grpc.ServicerContext) -> bytes:  # type: ignore[override]
        result = self._authorization.authorize(current_principal(), authorize_command(request))
        return result.signed.response(convert.detection(d).SerializeToString() for d in result.detections)

    def GetKeySet(self, request: az.GetKeySetRequest, context: grpc.ServicerContext) -> az.GetKeySetResponse:
        return az.GetKeySetResponse(
            key_set=convert.key_set(self._keys.key_ring(), self._keys.all_keys(), self._keys.log_origin)
        )

    def VerifyGrant(self, request: az.VerifyGrantRequest, context: grpc.ServicerContext) -> az.VerifyGrantResponse:
        form = request.WhichOneof("grant")
        presented = request.envelope if form == "envelope" else request.envelope_json if form else None
        result = self._grants.verify(
            current_principal(), presented, licensee_id=request.licensee_id, character_id=request.character_id
        )
        return az.VerifyGrantResponse(verdict=result.verdict, claims=result.claims, key_id=result.key_id)  # type: ignore[arg-type]

    def ScreenPrompt(self, request: az.ScreenPromptRequest, context: grpc.ServicerContext) -> az.ScreenPromptResponse:
        detections = self._screen.screen(request.prompt)
        return az.ScreenPromptResponse(detections=[convert.detection(d) for d in detections])

    def SimulateUse(self, request: az.SimulateUseRequest, context: grpc.ServicerContext) -> az.SimulateUseResponse:
        proposed = None
        if request.HasField("proposed"):
            proposed = ProposedTerms(request.proposed.character_id, request.proposed.terms)
        command = SimulateCommand(
            character_ids=tuple(request.character_ids),
            prompt=request.prompt,
            use=use_request(request.context) if request.HasField("context") else None,
            licensee_id=request.licensee_id,
            proposed=proposed,
        )
        result = self._authorization.simulate(current_principal(), command)
        response = az.SimulateUseResponse(
            allowed=result.allowed,
            decisions=[character_decision(stated(outcome)) for outcome in result.outcomes],
            detections=[convert.detection(d) for d in result.detections],
            licensee_id=result.licensee_id,
        )
        response.decide_time.FromDatetime(result.decide_time)
        return response

    def PreviewTerms(self, request: az.PreviewTermsRequest, context: grpc.ServicerContext) -> az.PreviewTermsResponse:
        proposed = None
        if request.HasField("proposed"):
            proposed = ProposedTerms(request.proposed.character_id, request.proposed.terms)
        result = self._authorization.preview_terms(current_principal(), PreviewCommand(proposed, request.days))
        response = az.PreviewTermsResponse(
            replayed=result.replayed,
            allowed_then=result.allowed_then,
            would_deny=result.would_deny,
            would_allow=result.would_allow,
            not_replayed=result.not_replayed,
            changes=[
                az.TermsChange(
                    direction=_WOULD_DENY if change.would_deny else _WOULD_ALLOW,
                    licensee_id=change.licensee_id,
                    licensee_display_name=change.licensee_display_name,
                    reason=decision_pb2.DenyReason.Value(f"DENY_REASON_{change.reason}"),
                    decisions=change.decisions,
                )
                for change in result.changes
            ],
        )
        response.start_time.FromDatetime(result.start_time)
        response.end_time.FromDatetime(result.end_time)
        return response

    async def WatchRevocations(
        self, request: az.WatchRevocationsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[az.WatchRevocationsResponse]:
        # A coroutine on the event loop: an open stream holds no thread (see api.watch).
        async for item in self._streams.watch(request.since_sequence, current_principal(), registry=request.registry):
            yield convert.watch_message(item)


def authorize_command(request: az.AuthorizeRequest) -> AuthorizeCommand:
    """The request as the service takes it (converted, not judged: the service validates).

    The fields this server does not know were never validated, so they are dropped first: they
    must not reach the receipt, nor its request digest (nor the idempotency fingerprint).
    """
    request.DiscardUnknownFields()
    use = use_request(request.context) if request.HasField("context") else None
    return AuthorizeCommand(
        character_ids=tuple(request.character_ids),
        prompt=request.prompt,
        use=use,
        grants=tuple(request.grants),
        request_id=request.request_id,
        request_digest=hashlib.sha256(request.SerializeToString(deterministic=True)).digest(),
    )


def use_request(context: decision_pb2.UseContext) -> UseRequest:
    """A request's use context as the services take it (not judged: they validate)."""
    return UseRequest(
        use_type=context.use_type,
        content_rating=context.content_rating,
        categories=tuple(context.categories),
        territory=context.territory,
        commercial=context.commercial,
        duration=(context.duration.seconds, context.duration.nanos) if context.HasField("duration") else None,
    )
