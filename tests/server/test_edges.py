"""The edges a server must not be tricked by, each as it was seen: signature floods, signed
receipts that carried bytes the client chose, page tokens anyone could mint, a concurrent retry
reported as an outage, and VerifyGrant answering VALID where Authorize denies."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import charter
import grpc
import nacl.signing
import pytest
from charter.envelope import MAX_ENVELOPE_BYTES, MAX_SIGNATURES
from charter.v1 import access_service_pb2 as access_pb
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import authorization_service_pb2_grpc as az_grpc
from charter.v1 import catalog_service_pb2 as catalog_pb
from charter.v1 import catalog_service_pb2_grpc as catalog_grpc
from charter.v1 import decision_pb2, envelope_pb2, grant_pb2, terms_pb2
from charter_server.app import CharterServer
from charter_server.storage.repositories import RequestRecordRepository
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ._serving import CONTEXT, TERMS, Party, authorize_request, bearer, new_party
from ._support import access_stub, open_channel, reason
from .conftest import ServerFactory

MARKER = b"bytes the client chose"
# An unknown field (number 1000, length-delimited) holding MARKER, as a client could append it.
UNKNOWN = bytes([0xC2, 0x3E, len(MARKER)]) + MARKER


@pytest.fixture
def admin(server: CharterServer) -> str:
    return server.services.access.create_bootstrap_admin("edges").secret


@pytest.fixture
def party(server: CharterServer, admin: str) -> Party:
    return new_party(f"127.0.0.1:{server.port}", admin)


def _authorize(server: CharterServer, party: Party, request: az.AuthorizeRequest) -> az.AuthorizeResponse:
    with open_channel(f"127.0.0.1:{server.port}") as channel:
        response: az.AuthorizeResponse = az_grpc.AuthorizationServiceStub(channel).Authorize(
            request, metadata=bearer(party.generator), timeout=10
        )
    return response


def _failure(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


# Signature floods ---------------------------------------------------------------------------------


class VerifySpy:
    """Counts Ed25519 verifications (the real ones still run)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = nacl.signing.VerifyKey.verify

        def counted(key: nacl.signing.VerifyKey, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return original(key, *args, **kwargs)

        monkeypatch.setattr(nacl.signing.VerifyKey, "verify", counted)


def _flooded(envelope: envelope_pb2.Envelope, signatures: int) -> envelope_pb2.Envelope:
    """The grant's payload with ``signatures`` forged signatures, all naming its real key."""
    keyid = envelope.signatures[0].keyid
    forged = [envelope_pb2.Signature(keyid=keyid, sig=os.urandom(64)) for _ in range(signatures)]
    return envelope_pb2.Envelope(payload=envelope.payload, payload_type=envelope.payload_type, signatures=forged)


def test_a_signature_flood_costs_one_check_per_key_and_nothing_the_second_time(
    server: CharterServer, party: Party, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen: 60 envelopes of 731 signatures naming the active key cost 2.5 s of CPU, every time."""
    spy = VerifySpy(monkeypatch)
    flood = _flooded(party.envelope, MAX_SIGNATURES)
    request = authorize_request(party, grants=[flood])

    first = _authorize(server, party, request)
    after_first = spy.count
    second = _authorize(server, party, request)

    assert [list(c.reasons) for c in (first.decision.characters[0], second.decision.characters[0])] == [
        [decision_pb2.DENY_REASON_GRANT_INVALID]
    ] * 2
    assert after_first == 1  # one key named, one verification, however many signatures
    assert spy.count == after_first  # the failure is remembered by the envelope's digest


@pytest.mark.parametrize(
    ("grants", "field"),
    [
        pytest.param([MAX_SIGNATURES + 1], "grants[0].signatures", id="more signatures than an envelope may carry"),
        pytest.param([731], "grants", id="731 signatures"),
        pytest.param([MAX_SIGNATURES] * 60, "grants", id="more signatures than a request may carry"),
    ],
)
def test_envelopes_over_the_limits_are_refused_before_any_work(
    server: CharterServer, party: Party, monkeypatch: pytest.MonkeyPatch, grants: list[int], field: str
) -> None:
    spy = VerifySpy(monkeypatch)
    request = authorize_request(party, grants=[_flooded(party.envelope, n) for n in grants])

    error = _failure(lambda: _authorize(server, party, request))

    assert (error.code(), reason(error)) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")
    assert _fields(error) == [field]
    assert spy.count == 0


def test_verify_grant_refuses_envelopes_over_the_limits(server: CharterServer, party: Party) -> None:
    """Seen: VerifyGrant, open to every role, cost 43 ms per 64 KiB envelope."""
    oversized = envelope_pb2.Envelope(
        payload=b"x" * MAX_ENVELOPE_BYTES,
        payload_type=party.envelope.payload_type,
        signatures=party.envelope.signatures,
    )
    too_many = _flooded(party.envelope, MAX_SIGNATURES + 1)
    json_too_many = charter.envelope.to_json(too_many)
    with open_channel(f"127.0.0.1:{server.port}") as channel:
        stub = az_grpc.AuthorizationServiceStub(channel)

        def verify(**grant: Any) -> Any:
            request = az.VerifyGrantRequest(licensee_id=party.licensee_id, character_id=party.character_id, **grant)
            return stub.VerifyGrant(request, metadata=bearer(party.generator), timeout=10)

        errors = [
            _failure(lambda: verify(envelope=oversized)),
            _failure(lambda: verify(envelope=too_many)),
            _failure(lambda: verify(envelope_json=json_too_many)),
        ]
        fine = verify(envelope=party.envelope)

    assert [(e.code(), reason(e)) for e in errors] == [(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")] * 3
    assert [_fields(e) for e in errors] == [["envelope"], ["envelope.signatures"], ["envelope_json"]]
    assert fine.verdict == grant_pb2.GRANT_VERDICT_VALID


def _fields(error: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    fields: list[str] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.extend(v.field for v in bad.field_violations)
    return fields


# Signed payloads hold only what was validated ----------------------------------------------------------


def test_a_receipt_never_signs_fields_the_client_appended(server: CharterServer, party: Party) -> None:
    """Seen: unknown fields appended to the UseContext were copied into the signed receipt."""
    context = decision_pb2.UseContext.FromString(CONTEXT.SerializeToString() + UNKNOWN)
    request = az.AuthorizeRequest.FromString(
        authorize_request(party, request_id="edges-1").SerializeToString() + UNKNOWN
    )
    request.context.CopyFrom(context)
    wire = request.SerializeToString()
    assert wire.count(MARKER) == 2  # the bytes really travel, at the top and in the context

    with open_channel(f"127.0.0.1:{server.port}") as channel:
        raw = channel.unary_unary("/charter.v1.AuthorizationService/Authorize")(
            wire, metadata=bearer(party.generator), timeout=10
        )
    response = az.AuthorizeResponse.FromString(raw)
    receipt = decision_pb2.DecisionReceipt.FromString(response.receipt.payload)
    clean = authorize_request(party, request_id="edges-1").SerializeToString(deterministic=True)

    assert response.decision.allowed
    assert MARKER not in response.receipt.payload
    assert receipt.context.SerializeToString() == CONTEXT.SerializeToString()
    assert receipt.request_digest == hashlib.sha256(clean).digest()


def test_a_grant_never_signs_terms_fields_the_client_appended(server: CharterServer, admin: str) -> None:
    target = f"127.0.0.1:{server.port}"
    with charter.Client(target, api_key=admin) as client:
        holder = client.create_rights_holder(display_name="Appended", contact_email="rights@studio.example")
        licensee = client.create_licensee(display_name="Appended App", contact_email="ops@app.example", platform="app")
        character = client.create_character(rights_holder_id=holder.id, canonical_name="Appended Chara")
    with open_channel(target) as channel:
        catalog_grpc.CatalogServiceStub(channel).OptIn(
            catalog_pb.OptInRequest(
                character_id=character.id, terms=terms_pb2.Terms.FromString(TERMS.SerializeToString() + UNKNOWN)
            ),
            metadata=bearer(admin),
            timeout=10,
        )
    with charter.Client(target, api_key=admin) as client:
        grant = client.issue_grant(
            character_id=character.id,
            licensee_id=licensee.id,
            expire_time=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
        )

    assert MARKER not in grant.envelope.payload
    assert grant_pb2.GrantClaims.FromString(grant.envelope.payload).terms.permitted_use_types == list(
        TERMS.permitted_use_types
    )


# Page tokens --------------------------------------------------------------------------------------


def _unkeyed_token(filters: str, after: int) -> str:
    """A token as the server made them before: an unkeyed hash anyone could compute."""
    digest = hashlib.sha256(f"{filters}|{after}".encode()).hexdigest()[:16]
    raw = json.dumps({"a": after, "f": digest}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_page_tokens_cannot_be_minted_or_moved_between_deployments(
    server: CharterServer, admin: str, fresh_database_url: str, server_factory: ServerFactory
) -> None:
    """Seen: page tokens were an unkeyed hash anyone could mint."""
    for name in ("page one", "page two"):
        server.services.access.create_bootstrap_admin(name)
    other = server_factory(database_url=fresh_database_url)
    other_admin = other.services.access.create_bootstrap_admin("elsewhere").secret
    for name in ("elsewhere one", "elsewhere two"):
        other.services.access.create_bootstrap_admin(name)

    def page(target: str, secret: str, token: str) -> Any:
        with open_channel(target) as channel:
            return access_stub(channel).ListApiKeys(
                access_pb.ListApiKeysRequest(page_size=1, page_token=token), metadata=bearer(secret), timeout=10
            )

    here = f"127.0.0.1:{server.port}"
    there = f"127.0.0.1:{other.port}"
    first = page(here, admin, "")
    second = page(here, admin, first.next_page_token)
    minted = _failure(lambda: page(here, admin, _unkeyed_token("key|None|False", 2**40)))
    moved = _failure(lambda: page(there, other_admin, first.next_page_token))

    assert first.next_page_token
    assert second.api_keys[0].id != first.api_keys[0].id
    for error in (minted, moved):
        assert (error.code(), reason(error)) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")
        assert _fields(error) == ["page_token"]


# A concurrent retry --------------------------------------------------------------------------------


def test_a_concurrent_retry_is_aborted_with_its_own_reason(
    postgres_url: str, server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen: a concurrent retry of an Authorize request_id was reported as STORAGE_UNAVAILABLE
    (it looked like a database outage on alerts). Both copies are made to pass the "not decided
    yet" check before either records itself, as two replicas can on PostgreSQL."""
    srv = server_factory(database_url=postgres_url)
    target = f"127.0.0.1:{srv.port}"
    admin = srv.services.access.create_bootstrap_admin("retry").secret
    quota = terms_pb2.Terms()
    quota.CopyFrom(TERMS)
    quota.daily_quota = 10  # a quota, so the decision is recorded under its request_id
    party = new_party(target, admin, terms=quota)
    request = authorize_request(party, request_id="edges-retry-1")
    both_read = threading.Barrier(2, timeout=10)
    original = RequestRecordRepository.get

    def meet(self: RequestRecordRepository, key_id: str, method: str, request_id: str) -> Any:
        found = original(self, key_id, method, request_id)
        if request_id == "edges-retry-1":
            both_read.wait()
        return found

    monkeypatch.setattr(RequestRecordRepository, "get", meet)

    def attempt(_: int) -> Any:
        try:
            return _authorize(srv, party, request)
        except grpc.RpcError as error:
            return error

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(attempt, range(2)))
    monkeypatch.setattr(RequestRecordRepository, "get", original)
    retried = _authorize(srv, party, request)

    decided = [a for a in answers if isinstance(a, az.AuthorizeResponse)]
    aborted = [a for a in answers if isinstance(a, grpc.RpcError)]
    assert len(decided) == 1
    assert [(e.code(), reason(e)) for e in aborted] == [(grpc.StatusCode.ABORTED, "REQUEST_IN_PROGRESS")]
    assert retried.decision.receipt_id == decided[0].decision.receipt_id


# VerifyGrant knows what Authorize denies --------------------------------------------------------------


def _verdict(server: CharterServer, party: Party) -> int:
    with open_channel(f"127.0.0.1:{server.port}") as channel:
        response = az_grpc.AuthorizationServiceStub(channel).VerifyGrant(
            az.VerifyGrantRequest(
                envelope=party.envelope, licensee_id=party.licensee_id, character_id=party.character_id
            ),
            metadata=bearer(party.generator),
            timeout=10,
        )
    return int(response.verdict)


def test_verify_grant_reports_a_suspended_character_and_an_archived_licensee(server: CharterServer, admin: str) -> None:
    """Seen: VerifyGrant answered VALID where Authorize denied (character suspended, licensee archived)."""
    target = f"127.0.0.1:{server.port}"
    suspended, archived = new_party(target, admin), new_party(target, admin)
    before = (_verdict(server, suspended), _verdict(server, archived))
    with charter.Client(target, api_key=admin) as client:
        client.suspend_character(suspended.character_id, reason="under review")
        client.archive_licensee(archived.licensee_id)
    denied = [
        _authorize(server, p, authorize_request(p)).decision.characters[0].reasons[0] for p in (suspended, archived)
    ]

    assert before == (grant_pb2.GRANT_VERDICT_VALID, grant_pb2.GRANT_VERDICT_VALID)
    assert _verdict(server, suspended) == grant_pb2.GRANT_VERDICT_CHARACTER_SUSPENDED
    assert _verdict(server, archived) == grant_pb2.GRANT_VERDICT_LICENSEE_ARCHIVED
    assert denied == [decision_pb2.DENY_REASON_CHARACTER_SUSPENDED, decision_pb2.DENY_REASON_LICENSEE_ARCHIVED]


def test_verify_grant_reports_a_grant_whose_uses_are_spent(server: CharterServer, admin: str) -> None:
    party = new_party(f"127.0.0.1:{server.port}", admin, max_uses=1)
    before = _verdict(server, party)
    used = _authorize(server, party, authorize_request(party))
    refused = _authorize(server, party, authorize_request(party))

    assert before == grant_pb2.GRANT_VERDICT_VALID
    assert used.decision.allowed
    assert list(refused.decision.characters[0].reasons) == [decision_pb2.DENY_REASON_QUOTA_EXHAUSTED]
    assert _verdict(server, party) == grant_pb2.GRANT_VERDICT_USES_EXHAUSTED
