"""A grant whose signed claims or terms carry fields this SDK does not know (a newer server's terms,
which may restrict the use) is not decided offline: the server decides it, and when it cannot be
reached the character is denied with ``SERVER_UNREACHABLE``. Pure: no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import nacl.signing
import pytest
from charter.decide import CharacterState, Integrity, allowing_by_position
from charter.decisions import CharacterDecision
from charter.envelope import GRANT_PAYLOAD_TYPE, sign
from charter.grants import GrantVerifier, KeyRing
from charter.offline.decisions import decide_offline
from charter.offline.held import Checked, Held, HeldGrants, check
from charter.offline.revocations import RevocationView
from charter.terms import DenyReason, UseContext
from charter.v1 import grant_pb2, signing_key_pb2, terms_pb2
from charter.v1.envelope_pb2 import Envelope
from google.protobuf.timestamp_pb2 import Timestamp

NOW = datetime(2027, 1, 10, 12, tzinfo=UTC)
LICENSEE = "lic_" + "a" * 32
CHARACTER = "chr_" + "b" * 32
KEY_ID = "sk_" + "1" * 16
SEED = nacl.signing.SigningKey(b"\x07" * 32)
IMAGE = terms_pb2.USE_TYPE_IMAGE_GENERATION
TEEN = terms_pb2.CONTENT_RATING_TEEN


def _ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _ring() -> KeyRing:
    key = signing_key_pb2.SigningKey(
        key_id=KEY_ID,
        public_key=bytes(SEED.verify_key),
        algorithm="ed25519",
        state=signing_key_pb2.SigningKey.STATE_ACTIVE,
        purpose=signing_key_pb2.SigningKey.PURPOSE_GRANTS,
        activate_time=_ts(NOW - timedelta(days=30)),
    )
    return KeyRing.from_key_set(signing_key_pb2.KeySet(version="v1", keys=[key]))


def _varint(number: int) -> bytes:
    out = b""
    while True:
        byte, number = number & 0x7F, number >> 7
        out += bytes([byte | (0x80 if number else 0)])
        if not number:
            return out


def _unknown(field_number: int, value: int) -> bytes:
    """A varint field the SDK's messages do not define (as a newer server could add one)."""
    return _varint(field_number << 3) + _varint(value)


def _claims(grant_id: str, issued: datetime) -> grant_pb2.GrantClaims:
    return grant_pb2.GrantClaims(
        grant_id=grant_id,
        character_id=CHARACTER,
        rights_holder_id="rh_x",
        licensee_id=LICENSEE,
        terms=terms_pb2.Terms(character_id=CHARACTER, permitted_use_types=[IMAGE], max_content_rating=TEEN),
        terms_version=1,
        issue_time=_ts(issued),
        not_before=_ts(NOW - timedelta(days=2)),
        expire_time=_ts(NOW + timedelta(days=30)),
    )


def _envelope(claims: grant_pb2.GrantClaims, extra: bytes = b"") -> Envelope:
    return sign(claims.SerializeToString() + extra, GRANT_PAYLOAD_TYPE, key_id=KEY_ID, private_key=SEED)


def _with_unknown_term(claims: grant_pb2.GrantClaims) -> grant_pb2.GrantClaims:
    claims.terms.MergeFromString(_unknown(40, 512))  # say, a "max_resolution" of a newer server
    return claims


def _with_unknown_fee_field(claims: grant_pb2.GrantClaims) -> grant_pb2.GrantClaims:
    claims.terms.per_use_fee.currency_code = "JPY"
    claims.terms.per_use_fee.MergeFromString(_unknown(9, 1))  # two levels down
    return claims


def _decide(*envelopes: Envelope) -> tuple[tuple[Checked, ...], CharacterDecision | DenyReason]:
    held = HeldGrants()
    held.add(envelopes)
    ring, verifier = _ring(), GrantVerifier()
    grants = held.by_character[CHARACTER]

    def checker(grant: Held, against: KeyRing, now: datetime) -> Checked:
        return check(verifier, grant, against, LICENSEE, now, 60_000_000)

    context = UseContext(IMAGE, TEEN, NOW, licensee_id=LICENSEE)
    decided = decide_offline(CHARACTER, context, grants, ring, RevocationView(lambda: NOW), False, checker)
    return grants.candidates, decided


@pytest.mark.parametrize(
    "envelope",
    [
        pytest.param(_envelope(_claims("grt_" + "c" * 32, NOW), _unknown(20, 1)), id="claims"),
        pytest.param(_envelope(_with_unknown_term(_claims("grt_" + "c" * 32, NOW))), id="terms"),
        pytest.param(_envelope(_with_unknown_fee_field(_claims("grt_" + "c" * 32, NOW))), id="nested"),
    ],
)
def test_a_grant_with_fields_the_sdk_does_not_know_is_left_to_the_server(envelope: Envelope) -> None:
    (checked,), decided = _decide(envelope)
    found = allowing_by_position(False, CharacterState.OPTED_IN, (checked,), {}.get, UseContext(IMAGE, TEEN, NOW))

    assert checked.integrity is Integrity.UNSUPPORTED
    assert found is None  # `charter.decide` cannot judge it
    assert decided is DenyReason.SERVER_UNREACHABLE  # the server decides (denied so if unreachable)


def test_an_older_grant_with_unknown_fields_does_not_stop_a_newer_one_that_allows() -> None:
    newer = _envelope(_claims("grt_" + "d" * 32, NOW - timedelta(hours=1)))
    older = _envelope(_with_unknown_term(_claims("grt_" + "e" * 32, NOW - timedelta(days=1))))
    (first, second), decided = _decide(newer, older)

    assert (first.integrity, second.integrity) == (Integrity.VERIFIED, Integrity.UNSUPPORTED)
    assert isinstance(decided, CharacterDecision)
    assert decided.allowed
    assert decided.grant_id == "grt_" + "d" * 32


def test_a_newer_grant_with_unknown_fields_before_one_that_allows_goes_to_the_server() -> None:
    newer = _envelope(_with_unknown_term(_claims("grt_" + "d" * 32, NOW - timedelta(hours=1))))
    older = _envelope(_claims("grt_" + "e" * 32, NOW - timedelta(days=1)))
    _candidates, decided = _decide(newer, older)

    assert decided is DenyReason.SERVER_UNREACHABLE
