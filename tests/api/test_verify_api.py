"""VerifyGrant end to end: every attack on a grant envelope is an OK answer with its own verdict
(never an error status), a generator key verifies only for its own licensee, and a third party
can check a grant with nothing but the key set, the DSSE pre-authentication encoding and Ed25519.
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import datetime, timedelta
from typing import Any

import grpc
import nacl.signing
import pytest
from charter import envelope as dsse
from charter.v1 import access_service_pb2 as access_pb
from charter.v1 import api_key_pb2, envelope_pb2, grant_pb2
from charter.v1 import authorization_service_pb2 as az
from charter_server.domain import ids

from .character_helpers import refused
from .grant_helpers import (
    Grant,
    Stubs,
    Verdict,
    World,
    claims_of,
    issue,
    key_set,
    new_world,
    rotate,
    stubs,
    verdict,
    verify,
)
from .helpers import auth, failure, unique

Envelope = envelope_pb2.Envelope


@pytest.fixture(scope="module")
def api(channel: grpc.Channel) -> Stubs:
    return stubs(channel)


@pytest.fixture(scope="module")
def world(api: Stubs, keys: Any) -> World:
    return new_world(api, keys.admin)


@pytest.fixture(scope="module")
def grant(api: Stubs, keys: Any, clock: Any, world: World) -> Grant:
    """A valid grant that the attacks tamper with (copies of it; the grant itself stays valid)."""
    issued = issue(api, keys.admin, clock, world.character_id, world.licensee_id)
    assert verdict(api, keys.admin, issued) == Verdict.GRANT_VERDICT_VALID
    return issued


def copy(envelope: Envelope) -> Envelope:
    result = Envelope()
    result.CopyFrom(envelope)
    return result


def fresh_key_id() -> str:
    return "sk_" + secrets.token_hex(8)


def fake_signed(payload: bytes, key_id: str, seed: bytes | None = None) -> Envelope:
    """A grant envelope signed by a key the server never had (or by ``seed``)."""
    return dsse.sign(payload, dsse.GRANT_PAYLOAD_TYPE, key_id=key_id, private_key=seed or secrets.token_bytes(32))


def verdict_of(api: Stubs, secret: str, presented: Envelope | str, grant: Grant) -> az.VerifyGrantResponse:
    return verify(api, secret, presented, grant.licensee_id, grant.character_id)


# Tampering ----------------------------------------------------------------------------------


def test_the_licensee_itself_gets_valid_with_the_claims_and_key(api: Stubs, keys: Any, grant: Grant) -> None:
    own_generator = api.access.CreateApiKey(
        access_pb.CreateApiKeyRequest(
            display_name=f"gen {unique()}", role=api_key_pb2.ROLE_GENERATOR, licensee_id=grant.licensee_id
        ),
        metadata=auth(keys.admin),
    ).secret

    answer = verdict_of(api, own_generator, grant.envelope, grant)

    assert answer.verdict == Verdict.GRANT_VERDICT_VALID
    assert answer.claims == claims_of(grant)
    assert answer.key_id == grant.envelope.signatures[0].keyid


def test_a_flipped_payload_byte_breaks_the_signature(api: Stubs, keys: Any, grant: Grant) -> None:
    size = len(grant.envelope.payload)
    answers = []
    for position in (0, size // 2, size - 1):
        tampered = copy(grant.envelope)
        payload = bytearray(tampered.payload)
        payload[position] ^= 0x01
        tampered.payload = bytes(payload)
        answers.append(verdict_of(api, keys.admin, tampered, grant))

    assert {a.verdict for a in answers} == {Verdict.GRANT_VERDICT_SIGNATURE_INVALID}
    assert not any(a.HasField("claims") for a in answers)


def test_a_changed_payload_type_is_refused(api: Stubs, keys: Any, grant: Grant) -> None:
    as_receipt, as_other = copy(grant.envelope), copy(grant.envelope)
    as_receipt.payload_type = dsse.RECEIPT_PAYLOAD_TYPE
    as_other.payload_type = dsse.GRANT_PAYLOAD_TYPE.replace("v1", "v2")

    answers = [verdict_of(api, keys.admin, e, grant) for e in (as_receipt, as_other)]

    assert [a.verdict for a in answers] == [Verdict.GRANT_VERDICT_WRONG_PAYLOAD_TYPE] * 2


def test_a_signature_by_a_key_outside_the_key_set_is_unknown(api: Stubs, keys: Any, grant: Grant) -> None:
    forged = fake_signed(grant.envelope.payload, fresh_key_id())

    answer = verdict_of(api, keys.admin, forged, grant)

    assert answer.verdict == Verdict.GRANT_VERDICT_UNKNOWN_KEY
    assert not answer.HasField("claims")


def test_a_keyid_naming_one_key_on_a_signature_by_another_is_invalid(api: Stubs, keys: Any, grant: Grant) -> None:
    rotate(api, keys.admin)  # so the key set holds another key than the grant's
    other = next(k.key_id for k in key_set(api, keys.admin).keys if k.key_id != grant.envelope.signatures[0].keyid)
    relabelled = copy(grant.envelope)
    relabelled.signatures[0].keyid = other
    forged = fake_signed(grant.envelope.payload, grant.envelope.signatures[0].keyid)

    answers = [verdict_of(api, keys.admin, e, grant) for e in (relabelled, forged)]

    assert [a.verdict for a in answers] == [Verdict.GRANT_VERDICT_SIGNATURE_INVALID] * 2
    assert verdict(api, keys.admin, grant) == Verdict.GRANT_VERDICT_VALID


def test_a_good_signature_by_an_unknown_key_does_not_rescue_a_bad_one_by_a_known_key(
    api: Stubs, keys: Any, grant: Grant
) -> None:
    known = grant.envelope.signatures[0].keyid
    stranger = fake_signed(grant.envelope.payload, fresh_key_id())
    bad = fake_signed(grant.envelope.payload, known)
    both = copy(stranger)
    both.signatures.extend(bad.signatures)

    answer = verdict_of(api, keys.admin, both, grant)

    assert answer.verdict == Verdict.GRANT_VERDICT_SIGNATURE_INVALID


def test_a_grant_claiming_an_issue_time_after_its_key_was_retired(
    api: Stubs, server: Any, keys: Any, clock: Any, world: World
) -> None:
    """A leaked retired key signing a grant dated after its retirement is caught by the issue time."""
    fresh = issue(api, keys.admin, clock, world.character_id, world.licensee_id)
    retiring = server.services.keys.signer()
    assert retiring.key_id == fresh.envelope.signatures[0].keyid
    retired = rotate(api, keys.admin).retired_key
    claims = claims_of(fresh)
    late = grant_pb2.GrantClaims()
    late.CopyFrom(claims)
    late.issue_time.FromNanoseconds(retired.retire_time.ToNanoseconds() + 60 * 10**9)

    resigned = dsse.sign(
        claims.SerializeToString(), dsse.GRANT_PAYLOAD_TYPE, key_id=retiring.key_id, private_key=retiring.private_key
    )
    after_retirement = dsse.sign(
        late.SerializeToString(), dsse.GRANT_PAYLOAD_TYPE, key_id=retiring.key_id, private_key=retiring.private_key
    )

    assert verdict(api, keys.admin, fresh, resigned) == Verdict.GRANT_VERDICT_VALID
    assert verdict(api, keys.admin, fresh, after_retirement) == Verdict.GRANT_VERDICT_KEY_NOT_VALID_AT_ISSUE


# Who and what the grant is for ----------------------------------------------------------------


def test_a_grant_of_one_licensee_presented_for_another(api: Stubs, keys: Any, grant: Grant) -> None:
    assert grant.licensee_id != keys.licensee_id
    by_staff = [
        verify(api, secret, grant.envelope, keys.licensee_id, grant.character_id)
        for secret in (keys.admin, keys.auditor)
    ]
    by_the_other_generator = verify(api, keys.generator, grant.envelope, keys.licensee_id, grant.character_id)

    assert [a.verdict for a in by_staff] == [Verdict.GRANT_VERDICT_WRONG_LICENSEE] * 2
    assert by_the_other_generator.verdict == Verdict.GRANT_VERDICT_WRONG_LICENSEE
    assert by_the_other_generator.claims.licensee_id == grant.licensee_id


def test_a_generator_verifies_only_for_its_own_licensee(api: Stubs, keys: Any, grant: Grant) -> None:
    request = az.VerifyGrantRequest(
        envelope=grant.envelope, licensee_id=grant.licensee_id, character_id=grant.character_id
    )

    got = refused(api.authz.VerifyGrant, request, keys.generator)

    assert (got.code, got.reason) == (grpc.StatusCode.PERMISSION_DENIED, "RESOURCE_NOT_OWNED")


def test_a_grant_for_one_character_presented_for_another(api: Stubs, keys: Any, grant: Grant, world: World) -> None:
    answer = verify(api, keys.admin, grant.envelope, grant.licensee_id, ids.new_id("character"))

    assert answer.verdict == Verdict.GRANT_VERDICT_WRONG_CHARACTER
    assert answer.claims.character_id == world.character_id


# The validity window at the clock-skew edges --------------------------------------------------


def _move_to(moved_clock: Any, target: datetime) -> None:
    moved_clock.advance(target - moved_clock.now())


def test_expiry_at_and_around_the_skew_edge(api: Stubs, server: Any, keys: Any, moved_clock: Any, world: World) -> None:
    skew = timedelta(seconds=server.settings.clock_skew_seconds)
    short = issue(api, keys.admin, moved_clock, world.character_id, world.licensee_id, lifetime=timedelta(hours=1))
    expiry = claims_of(short).expire_time.ToDatetime(tzinfo=moved_clock.now().tzinfo)
    seen = {}

    for label, at in (
        ("just_expired_within_skew", expiry + timedelta(seconds=1)),
        ("a_second_before_the_edge", expiry + skew - timedelta(seconds=1)),
        ("at_the_edge", expiry + skew),
        ("just_past_the_edge", expiry + skew + timedelta(seconds=1)),
    ):
        _move_to(moved_clock, at)
        seen[label] = verdict(api, keys.admin, short)

    assert skew > timedelta(seconds=2)
    assert seen == {
        "just_expired_within_skew": Verdict.GRANT_VERDICT_VALID,
        "a_second_before_the_edge": Verdict.GRANT_VERDICT_VALID,
        "at_the_edge": Verdict.GRANT_VERDICT_EXPIRED,
        "just_past_the_edge": Verdict.GRANT_VERDICT_EXPIRED,
    }


def test_not_yet_valid_at_and_around_the_skew_edge(
    api: Stubs, server: Any, keys: Any, moved_clock: Any, world: World
) -> None:
    skew = timedelta(seconds=server.settings.clock_skew_seconds)
    start = moved_clock.now() + timedelta(hours=1)
    later = issue(api, keys.admin, moved_clock, world.character_id, world.licensee_id, not_before=start)
    seen = {"now": verdict(api, keys.admin, later)}

    for label, at in (
        ("just_before_the_edge", start - skew - timedelta(seconds=1)),
        ("at_the_edge", start - skew),
        ("within_skew", start - timedelta(seconds=1)),
    ):
        _move_to(moved_clock, at)
        seen[label] = verdict(api, keys.admin, later)

    assert seen == {
        "now": Verdict.GRANT_VERDICT_NOT_YET_VALID,
        "just_before_the_edge": Verdict.GRANT_VERDICT_NOT_YET_VALID,
        "at_the_edge": Verdict.GRANT_VERDICT_VALID,
        "within_skew": Verdict.GRANT_VERDICT_VALID,
    }


# Undecodable envelopes: a verdict, never an error ---------------------------------------------


def _json(grant: Grant, **changes: Any) -> str:
    document = json.loads(dsse.to_json(grant.envelope))
    document.update(changes)
    return json.dumps(document)


def _bad_sig_json(grant: Grant) -> str:
    document = json.loads(dsse.to_json(grant.envelope))
    document["signatures"][0]["sig"] = "*not base64*"
    return json.dumps(document)


def _oversized(grant: Grant) -> Envelope:
    big = copy(grant.envelope)
    big.payload = big.payload + b"\x00" * (dsse.MAX_ENVELOPE_BYTES + 1)
    return big


MALFORMED: dict[str, Any] = {
    "no_signatures_protobuf": lambda g: Envelope(payload=g.envelope.payload, payload_type=g.envelope.payload_type),
    "no_signatures_json": lambda g: _json(g, signatures=[]),
    "empty_envelope": lambda g: Envelope(),
    "garbage_json": lambda g: "this is not JSON {",
    "json_list": lambda g: "[1, 2, 3]",
    "json_object_without_members": lambda g: "{}",
    "truncated_json": lambda g: dsse.to_json(g.envelope)[:-7],
    "invalid_base64_payload": lambda g: _json(g, payload="%%%not-base64%%%"),
    "invalid_base64_sig": _bad_sig_json,
}


@pytest.mark.parametrize(
    ("make", "field"),
    [
        pytest.param(_oversized, "envelope", id="oversized_protobuf"),
        pytest.param(lambda g: dsse.to_json(_oversized(g)), "envelope_json", id="oversized_json"),
    ],
)
def test_an_oversized_envelope_is_refused_before_any_work(
    api: Stubs, keys: Any, grant: Grant, make: Any, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        verdict_of(api, keys.admin, make(grant), grant)

    got = failure(raised.value)
    assert (got.code, got.reason, got.fields) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", (field,))


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_an_undecodable_envelope_is_malformed_not_an_error(api: Stubs, keys: Any, grant: Grant, kind: str) -> None:
    presented = MALFORMED[kind](grant)

    answer = verdict_of(api, keys.admin, presented, grant)

    assert answer.verdict == Verdict.GRANT_VERDICT_MALFORMED
    assert (answer.HasField("claims"), answer.key_id) == (False, "")


def test_a_signed_payload_that_is_not_claims_is_malformed(api: Stubs, server: Any, keys: Any, grant: Grant) -> None:
    signer = server.services.keys.signer()
    junk = dsse.sign(b"\xff\xff\xff", dsse.GRANT_PAYLOAD_TYPE, key_id=signer.key_id, private_key=signer.private_key)

    answer = verdict_of(api, keys.admin, junk, grant)

    assert answer.verdict == Verdict.GRANT_VERDICT_MALFORMED


def test_a_missing_envelope_is_invalid_argument(api: Stubs, keys: Any, grant: Grant) -> None:
    missing = az.VerifyGrantRequest(licensee_id=grant.licensee_id, character_id=grant.character_id)
    empty_json = az.VerifyGrantRequest(envelope_json="", licensee_id=grant.licensee_id, character_id=grant.character_id)

    no_envelope = refused(api.authz.VerifyGrant, missing, keys.admin)
    no_json = refused(api.authz.VerifyGrant, empty_json, keys.admin)

    assert (no_envelope.code, no_envelope.reason, no_envelope.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_FIELD",
        ("envelope",),
    )
    assert (no_json.code, no_json.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ("envelope_json",))


# A third party with nothing but the key set ---------------------------------------------------


def test_a_third_party_verifies_the_json_form_with_the_key_set_alone(api: Stubs, keys: Any, grant: Grant) -> None:
    """No SDK: base64, the DSSE pre-authentication encoding written out here, and raw Ed25519."""
    document = json.loads(dsse.to_json(grant.envelope))
    payload = base64.b64decode(document["payload"], validate=True)
    payload_type = document["payloadType"].encode()
    (signature,) = document["signatures"]
    published = {k.key_id: k.public_key for k in key_set(api, keys.generator).keys}
    message = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type, len(payload), payload)

    nacl.signing.VerifyKey(published[signature["keyid"]]).verify(message, base64.b64decode(signature["sig"]))

    assert grant_pb2.GrantClaims.FromString(payload) == claims_of(grant)
    assert signature["keyid"] == grant.envelope.signatures[0].keyid
