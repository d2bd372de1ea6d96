"""verify_receipt: every verdict, in the order of `charter.grants`, on keys generated at test time.

A verification never raises on bad input; verdicts are checked by value.
"""

from __future__ import annotations

from collections.abc import Iterator
from copy import copy
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import nacl.signing
import pytest
from charter import receipts
from charter.envelope import GRANT_PAYLOAD_TYPE, MAX_ENVELOPE_BYTES, MAX_SIGNATURES, RECEIPT_PAYLOAD_TYPE, sign, to_json
from charter.grants import GrantVerifier, KeyRing, KeyState, PublicKey
from charter.receipts import ReceiptVerification, verify_receipt
from charter.v1 import decision_pb2, terms_pb2
from charter.v1 import grant_pb2 as g
from charter.v1.envelope_pb2 import Envelope, Signature
from google.protobuf import timestamp_pb2

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SKEW = timedelta(seconds=60)
US = timedelta(microseconds=1)
LICENSEE = "lic_" + "a" * 32
OTHER_LICENSEE = "lic_" + "b" * 32
CHARACTER = "chr_" + "c" * 32

VALID = g.GRANT_VERDICT_VALID
MALFORMED = g.GRANT_VERDICT_MALFORMED
WRONG_PAYLOAD_TYPE = g.GRANT_VERDICT_WRONG_PAYLOAD_TYPE
UNKNOWN_KEY = g.GRANT_VERDICT_UNKNOWN_KEY
KEY_REVOKED = g.GRANT_VERDICT_KEY_REVOKED
SIGNATURE_INVALID = g.GRANT_VERDICT_SIGNATURE_INVALID
KEY_NOT_VALID_AT_ISSUE = g.GRANT_VERDICT_KEY_NOT_VALID_AT_ISSUE
WRONG_LICENSEE = g.GRANT_VERDICT_WRONG_LICENSEE


@dataclass(frozen=True)
class Key:
    """A signing key made for the test: its id, seed and public key."""

    key_id: str
    seed: bytes
    public: bytes

    @classmethod
    def generate(cls, key_id: str) -> Key:
        private = nacl.signing.SigningKey.generate()
        return cls(key_id, bytes(private), bytes(private.verify_key))

    def public_key(
        self,
        state: KeyState = KeyState.ACTIVE,
        activate: datetime = NOW - timedelta(days=30),
        retire: datetime | None = None,
    ) -> PublicKey:
        return PublicKey(self.key_id, self.public, state, activate, retire)


KEY_A = Key.generate("sk_aaaaaaaaaaaaaaaa")
KEY_B = Key.generate("sk_bbbbbbbbbbbbbbbb")
STRANGER = Key.generate("sk_5555555555555555")  # never in any ring


def ring(*keys: PublicKey, revoked: tuple[str, ...] = ()) -> KeyRing:
    return KeyRing(keys or (KEY_A.public_key(),), revoked=revoked, version="1")


def stamp(moment: datetime) -> timestamp_pb2.Timestamp:
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(moment)
    return result


def decision(**changes: Any) -> decision_pb2.DecisionReceipt:
    fields: dict[str, Any] = {
        "receipt_id": "rcp_" + "d" * 32,
        "licensee_id": LICENSEE,
        "request_digest": bytes(32),
        "allowed": True,
        "characters": [
            decision_pb2.CharacterDecision(
                character_id=CHARACTER,
                allowed=True,
                grant_id="grt_" + "e" * 32,
                terms_version=2,
                obligations=decision_pb2.Obligations(attribution_text="© Example Studio", watermark_required=True),
                declared=True,
            )
        ],
        "context": decision_pb2.UseContext(
            use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION, content_rating=terms_pb2.CONTENT_RATING_TEEN
        ),
        "decide_time": stamp(NOW),
        "issuer": "charter.test",
    }
    fields.update(changes)
    return decision_pb2.DecisionReceipt(**{k: v for k, v in fields.items() if v is not None})


def receipt(
    content: decision_pb2.DecisionReceipt | bytes | None = None,
    *,
    key: Key = KEY_A,
    payload_type: str = RECEIPT_PAYLOAD_TYPE,
) -> Envelope:
    payload = content if isinstance(content, bytes) else (content or decision()).SerializeToString()
    return sign(payload, payload_type, key_id=key.key_id, private_key=key.seed)


def check(env: object, *, keys: KeyRing | None = None, licensee_id: str | None = LICENSEE) -> ReceiptVerification:
    return verify_receipt(env, keys=keys or ring(), licensee_id=licensee_id)  # type: ignore[arg-type]


SIGNED = receipt()


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """Records every payload the verifier parses."""
    seen: list[bytes] = []
    original = receipts._parse

    def recording(payload: bytes) -> Any:
        seen.append(payload)
        return original(payload)

    monkeypatch.setattr(receipts, "_parse", recording)
    yield seen


# -- VALID ------------------------------------------------------------------------------------------


def test_a_valid_receipt_is_valid_in_every_form() -> None:
    text = to_json(SIGNED)

    for form in (SIGNED, text, text.encode("utf-8"), bytearray(text.encode("utf-8"))):
        result = check(form)
        assert result.verdict == VALID, type(form)
        assert result.valid
        assert result.reason == "VALID"
        assert result.receipt == decision()
        assert result.key_id == KEY_A.key_id


def test_without_a_licensee_any_licensee_is_accepted() -> None:
    result = check(receipt(decision(licensee_id=OTHER_LICENSEE)), licensee_id=None)

    assert result.verdict == VALID
    assert result.receipt is not None
    assert result.receipt.licensee_id == OTHER_LICENSEE


def test_a_receipt_never_expires() -> None:
    old = receipt(decision(decide_time=stamp(NOW - timedelta(days=29))))

    assert check(old).verdict == VALID


def test_the_bytes_are_verified_as_received_not_re_serialised() -> None:
    # A repeated field: the last value wins when parsing, and a re-serialisation drops the first.
    later_id = "rcp_" + "9" * 32
    payload = decision().SerializeToString() + decision_pb2.DecisionReceipt(receipt_id=later_id).SerializeToString()
    env = receipt(payload)

    result = check(env)

    assert result.verdict == VALID
    assert result.receipt is not None
    assert result.receipt.receipt_id == later_id
    assert result.receipt.SerializeToString() != payload


def test_one_good_signature_among_bad_ones_is_enough() -> None:
    env = copy(SIGNED)
    good = env.signatures[0]
    del env.signatures[:]
    env.signatures.extend([Signature(keyid=STRANGER.key_id, sig=bytes(64)), good])

    assert check(env).verdict == VALID


def test_more_signatures_than_the_limit_are_malformed() -> None:
    env = copy(SIGNED)
    env.signatures.extend([Signature(keyid=STRANGER.key_id, sig=bytes(64))] * MAX_SIGNATURES)

    assert check(env).verdict == g.GRANT_VERDICT_MALFORMED
    assert check(to_json(env)).verdict == g.GRANT_VERDICT_MALFORMED


# -- MALFORMED --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "not json",
        b"\xff\xfe",
        "[]",
        '{"payload": "", "payloadType": "x"}',
        '{"payload": "!!", "payloadType": "' + RECEIPT_PAYLOAD_TYPE + '", "signatures": []}',
        42,
        None,
        ["a", "list"],
    ],
)
def test_garbage_is_malformed_never_an_exception(garbage: object) -> None:
    result = check(garbage)

    assert result.verdict == MALFORMED
    assert (result.receipt, result.key_id) == (None, "")
    assert not result.valid


def test_an_envelope_without_signatures_is_malformed() -> None:
    env = copy(SIGNED)
    del env.signatures[:]

    assert check(env).verdict == MALFORMED
    assert check(to_json(env)).verdict == MALFORMED


def test_an_oversized_envelope_is_malformed(parses: list[bytes]) -> None:
    big = receipt(decision(issuer="x" * MAX_ENVELOPE_BYTES))

    assert check(big).verdict == MALFORMED
    assert check(to_json(big)).verdict == MALFORMED
    assert parses == []


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"\xff\xff\xff", id="not-protobuf"),
        pytest.param(decision(receipt_id="").SerializeToString(), id="no-receipt-id"),
        pytest.param(decision(decide_time=None).SerializeToString(), id="no-decide-time"),
        pytest.param(
            decision(decide_time=timestamp_pb2.Timestamp(seconds=253_402_300_800)).SerializeToString(),
            id="time-out-of-range",
        ),
        pytest.param(
            decision(decide_time=timestamp_pb2.Timestamp(seconds=0, nanos=-1)).SerializeToString(), id="negative-nanos"
        ),
    ],
)
def test_a_signed_payload_that_is_not_a_usable_receipt_is_malformed(payload: bytes, parses: list[bytes]) -> None:
    result = check(receipt(payload))

    assert result.verdict == MALFORMED
    assert (result.receipt, result.key_id) == (None, KEY_A.key_id)
    assert parses == [payload]  # parsed only after the signature verified


# -- WRONG_PAYLOAD_TYPE ------------------------------------------------------------------------------


def test_a_grant_presented_as_a_receipt_fails() -> None:
    claims = g.GrantClaims(grant_id="grt_1", licensee_id=LICENSEE, character_id=CHARACTER, issue_time=stamp(NOW))
    grant = sign(claims.SerializeToString(), GRANT_PAYLOAD_TYPE, key_id=KEY_A.key_id, private_key=KEY_A.seed)

    for form in (grant, to_json(grant)):
        result = check(form)
        assert result.verdict == WRONG_PAYLOAD_TYPE
        assert (result.receipt, result.key_id) == (None, "")


def test_a_receipt_presented_as_a_grant_fails() -> None:
    for form in (SIGNED, to_json(SIGNED)):
        result = GrantVerifier().verify(form, keys=ring(), licensee_id=LICENSEE, character_id=CHARACTER, now=NOW)
        assert result.verdict == WRONG_PAYLOAD_TYPE
        assert result.claims is None


def test_a_changed_payload_type_fails() -> None:
    env = copy(SIGNED)
    env.payload_type = RECEIPT_PAYLOAD_TYPE + "x"

    assert check(env).verdict == WRONG_PAYLOAD_TYPE


# -- keys and signatures -----------------------------------------------------------------------------


def test_a_signature_by_a_key_not_in_the_key_set_fails() -> None:
    result = check(receipt(key=STRANGER))

    assert result.verdict == UNKNOWN_KEY
    assert (result.receipt, result.key_id) == (None, "")


def test_a_revoked_signing_key_fails() -> None:
    listed_as_revoked = ring(KEY_B.public_key(), revoked=(KEY_A.key_id,))
    in_state_revoked = ring(KEY_A.public_key(KeyState.REVOKED), KEY_B.public_key())

    results = [check(SIGNED, keys=keys) for keys in (listed_as_revoked, in_state_revoked)]

    assert [r.verdict for r in results] == [KEY_REVOKED, KEY_REVOKED]
    assert [(r.receipt, r.key_id) for r in results] == [(None, KEY_A.key_id)] * 2


def test_a_tampered_payload_fails(parses: list[bytes]) -> None:
    tampered = copy(SIGNED)
    tampered.payload = decision(allowed=False).SerializeToString()

    for form in (tampered, to_json(tampered)):
        result = check(form)
        assert result.verdict == SIGNATURE_INVALID
        assert (result.receipt, result.key_id) == (None, "")
    assert parses == []  # nothing parsed before a signature verifies


@pytest.mark.parametrize("index", [0, 17, -1])
def test_a_flipped_payload_byte_fails(index: int) -> None:
    tampered = copy(SIGNED)
    payload = bytearray(tampered.payload)
    payload[index] ^= 0x01
    tampered.payload = bytes(payload)

    assert check(tampered).verdict == SIGNATURE_INVALID


def test_a_keyid_naming_key_a_on_a_signature_made_by_key_b_fails() -> None:
    forged = receipt(key=KEY_B)
    forged.signatures[0].keyid = KEY_A.key_id

    assert check(forged).verdict == SIGNATURE_INVALID


def test_a_truncated_signature_fails() -> None:
    short = copy(SIGNED)
    short.signatures[0].sig = short.signatures[0].sig[:-1]

    assert check(short).verdict == SIGNATURE_INVALID


# -- KEY_NOT_VALID_AT_ISSUE ----------------------------------------------------------------------------


def test_a_decision_before_its_key_was_active_fails_past_the_skew() -> None:
    activated = NOW - timedelta(days=10)
    keys = ring(KEY_A.public_key(activate=activated))

    early = check(receipt(decision(decide_time=stamp(activated - SKEW - US))), keys=keys)
    within_skew = check(receipt(decision(decide_time=stamp(activated - SKEW))), keys=keys)

    assert early.verdict == KEY_NOT_VALID_AT_ISSUE
    assert early.receipt is not None and early.key_id == KEY_A.key_id
    assert within_skew.verdict == VALID


def test_a_decision_after_its_key_was_retired_fails_past_the_skew() -> None:
    retired_at = NOW - timedelta(days=2)
    keys = ring(KEY_A.public_key(KeyState.RETIRED, retire=retired_at), KEY_B.public_key())

    late = check(receipt(decision(decide_time=stamp(retired_at + SKEW + US))), keys=keys)
    within_skew = check(receipt(decision(decide_time=stamp(retired_at + SKEW))), keys=keys)
    on_time = check(receipt(decision(decide_time=stamp(retired_at))), keys=keys)

    assert late.verdict == KEY_NOT_VALID_AT_ISSUE
    assert late.receipt is not None and late.key_id == KEY_A.key_id
    # A server may sign with a key rotated out through another replica for up to its lease.
    assert within_skew.verdict == VALID
    assert on_time.verdict == VALID  # a retired key keeps verifying what it signed while active


# -- WRONG_LICENSEE -----------------------------------------------------------------------------------


def test_another_licensees_receipt_fails_when_a_licensee_is_given() -> None:
    result = check(SIGNED, licensee_id=OTHER_LICENSEE)

    assert result.verdict == WRONG_LICENSEE
    assert result.reason == "WRONG_LICENSEE"
    assert result.receipt == decision()
    assert result.key_id == KEY_A.key_id


def test_the_key_check_comes_before_the_licensee_check() -> None:
    activated = NOW + timedelta(days=1)
    keys = ring(KEY_A.public_key(activate=activated))

    assert check(SIGNED, keys=keys, licensee_id=OTHER_LICENSEE).verdict == KEY_NOT_VALID_AT_ISSUE


def test_an_unknown_verdict_is_named_by_its_number() -> None:
    assert ReceiptVerification(999, None, "").reason == "999"
