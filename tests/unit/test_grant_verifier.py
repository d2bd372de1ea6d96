"""GrantVerifier: one test per attack of issue 4, the order of the checks, and the cache.

Keys are generated at test time. Every verdict is checked by value; a verification never
raises on bad input.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import nacl.signing
import pytest
from charter.envelope import (
    GRANT_PAYLOAD_TYPE,
    MAX_ENVELOPE_BYTES,
    MAX_SIGNATURES,
    RECEIPT_PAYLOAD_TYPE,
    PreparedEnvelope,
    sign,
    to_json,
)
from charter.grants import GrantStatus, GrantVerifier, KeyRing, KeyState, PublicKey, Verification, verify_grant
from charter.v1 import grant_pb2 as g
from charter.v1 import signing_key_pb2, terms_pb2
from charter.v1.envelope_pb2 import Envelope, Signature
from google.protobuf import timestamp_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SKEW = timedelta(seconds=60)
US = timedelta(microseconds=1)
LICENSEE = "lic_" + "a" * 32
OTHER_LICENSEE = "lic_" + "b" * 32
CHARACTER = "chr_" + "c" * 32
OTHER_CHARACTER = "chr_" + "d" * 32
GRANT_ID = "grt_" + "e" * 32

VALID = g.GRANT_VERDICT_VALID
MALFORMED = g.GRANT_VERDICT_MALFORMED
WRONG_PAYLOAD_TYPE = g.GRANT_VERDICT_WRONG_PAYLOAD_TYPE
UNKNOWN_KEY = g.GRANT_VERDICT_UNKNOWN_KEY
KEY_REVOKED = g.GRANT_VERDICT_KEY_REVOKED
SIGNATURE_INVALID = g.GRANT_VERDICT_SIGNATURE_INVALID
KEY_NOT_VALID_AT_ISSUE = g.GRANT_VERDICT_KEY_NOT_VALID_AT_ISSUE
NOT_YET_VALID = g.GRANT_VERDICT_NOT_YET_VALID
EXPIRED = g.GRANT_VERDICT_EXPIRED
WRONG_LICENSEE = g.GRANT_VERDICT_WRONG_LICENSEE
WRONG_CHARACTER = g.GRANT_VERDICT_WRONG_CHARACTER
REVOKED = g.GRANT_VERDICT_REVOKED
SUSPENDED = g.GRANT_VERDICT_SUSPENDED
ACTIVE_STATE = signing_key_pb2.SigningKey.STATE_ACTIVE


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

    def signature(self, message: bytes) -> bytes:
        return bytes(nacl.signing.SigningKey(self.seed).sign(message).signature)


KEY_A = Key.generate("sk_aaaaaaaaaaaaaaaa")
KEY_B = Key.generate("sk_bbbbbbbbbbbbbbbb")
STRANGER = Key.generate("sk_5555555555555555")  # never in any ring


def ring(*keys: PublicKey, revoked: tuple[str, ...] = (), version: str = "1") -> KeyRing:
    return KeyRing(keys or (KEY_A.public_key(),), revoked=revoked, version=version)


def stamp(moment: datetime, nanos: int | None = None) -> timestamp_pb2.Timestamp:
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(moment)
    if nanos is not None:
        result.nanos = nanos
    return result


def claims(**changes: Any) -> g.GrantClaims:
    fields: dict[str, Any] = {
        "grant_id": GRANT_ID,
        "character_id": CHARACTER,
        "rights_holder_id": "rh_" + "f" * 32,
        "licensee_id": LICENSEE,
        "terms": terms_pb2.Terms(
            permitted_use_types=[terms_pb2.USE_TYPE_VIDEO_GENERATION],
            max_content_rating=terms_pb2.CONTENT_RATING_ALL_AGES,
        ),
        "terms_version": 2,
        "issue_time": stamp(NOW - timedelta(days=1)),
        "not_before": stamp(NOW - timedelta(days=1)),
        "expire_time": stamp(NOW + timedelta(days=30)),
        "issuer": "charter.test",
    }
    fields.update(changes)
    return g.GrantClaims(**{k: v for k, v in fields.items() if v is not None})


def grant(
    content: g.GrantClaims | bytes | None = None, *, key: Key = KEY_A, payload_type: str = GRANT_PAYLOAD_TYPE
) -> Envelope:
    payload = content if isinstance(content, bytes) else (content or claims()).SerializeToString()
    return sign(payload, payload_type, key_id=key.key_id, private_key=key.seed)


def check(
    env: Envelope | PreparedEnvelope | str | bytes,
    *,
    verifier: GrantVerifier | None = None,
    keys: KeyRing | None = None,
    licensee_id: str = LICENSEE,
    character_id: str = CHARACTER,
    now: datetime = NOW,
    status: Callable[[str], GrantStatus] | None = None,
    payload_type: str = GRANT_PAYLOAD_TYPE,
) -> Verification:
    return (verifier or GrantVerifier()).verify(
        env,
        keys=keys or ring(),
        licensee_id=licensee_id,
        character_id=character_id,
        now=now,
        status=status,
        payload_type=payload_type,
    )


def copy(env: Envelope) -> Envelope:
    result = Envelope()
    result.CopyFrom(env)
    return result


# The good case ------------------------------------------------------------------------------------


def test_a_valid_grant_is_valid_in_every_form() -> None:
    env = grant()
    text = to_json(env)

    for form in (env, text, text.encode(), bytearray(text.encode()), memoryview(text.encode())):
        result = check(form)  # type: ignore[arg-type]
        assert result.verdict == VALID, form
        assert result.valid
        assert result.reason == "VALID"
        assert result.key_id == KEY_A.key_id
        assert result.claims == claims()


def test_verify_grant_uses_a_default_verifier() -> None:
    result = verify_grant(grant(), keys=ring(), licensee_id=LICENSEE, character_id=CHARACTER, now=NOW)

    assert result.verdict == VALID
    # Without `now`, the system clock decides.
    current = datetime.now(UTC)
    fresh = grant(claims(issue_time=stamp(current), not_before=stamp(current), expire_time=stamp(current + SKEW)))
    keys = ring(KEY_A.public_key(activate=current - timedelta(days=1)))
    assert verify_grant(fresh, keys=keys, licensee_id=LICENSEE, character_id=CHARACTER).verdict == VALID
    assert verify_grant(grant(), keys=ring(), licensee_id=LICENSEE, character_id=CHARACTER).verdict == EXPIRED


# Attacks, one test each -----------------------------------------------------------------------------

SIGNED = grant()
SHARED = GrantVerifier()  # shared across hypothesis examples: the genuine grant is cached


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_a_flipped_byte_anywhere_in_the_payload_fails(data: st.DataObject) -> None:
    assert check(SIGNED, verifier=SHARED).verdict == VALID  # cached, and the cache must not help
    position = data.draw(st.integers(0, len(SIGNED.payload) - 1), label="position")
    mask = data.draw(st.integers(1, 255), label="mask")
    tampered = copy(SIGNED)
    payload = bytearray(tampered.payload)
    payload[position] ^= mask
    tampered.payload = bytes(payload)

    assert check(tampered, verifier=SHARED).verdict == SIGNATURE_INVALID
    assert check(to_json(tampered), verifier=SHARED).verdict == SIGNATURE_INVALID


def test_a_changed_payload_type_fails() -> None:
    tampered = copy(SIGNED)
    tampered.payload_type = "application/vnd.charter.grant.v2+protobuf"

    # Presented as what it now claims to be, the signature (over the original type) fails...
    assert check(tampered, payload_type=tampered.payload_type).verdict == SIGNATURE_INVALID
    # ...and presented as a grant, the type is wrong.
    assert check(tampered).verdict == WRONG_PAYLOAD_TYPE


def test_a_grant_where_a_receipt_is_expected_fails() -> None:
    result = check(grant(), payload_type=RECEIPT_PAYLOAD_TYPE)

    assert result.verdict == WRONG_PAYLOAD_TYPE
    assert result.claims is None


def test_a_receipt_where_a_grant_is_expected_fails() -> None:
    receipt = grant(b"\x0a\x04rcpt", payload_type=RECEIPT_PAYLOAD_TYPE)  # validly signed by a known key

    assert check(receipt).verdict == WRONG_PAYLOAD_TYPE
    assert check(to_json(receipt)).verdict == WRONG_PAYLOAD_TYPE


def test_a_signature_by_a_key_not_in_the_key_set_fails() -> None:
    result = check(grant(key=STRANGER))

    assert result.verdict == UNKNOWN_KEY
    assert (result.claims, result.key_id) == (None, "")


def test_a_keyid_naming_key_a_on_a_signature_made_by_key_b_fails() -> None:
    forged = grant(key=KEY_B)
    forged.signatures[0].keyid = KEY_A.key_id

    assert check(forged, keys=ring(KEY_A.public_key())).verdict == SIGNATURE_INVALID
    assert check(forged, keys=ring(KEY_A.public_key(), KEY_B.public_key())).verdict == SIGNATURE_INVALID


def test_a_revoked_signing_key_fails() -> None:
    env = grant()
    listed_as_revoked = ring(KEY_B.public_key(), revoked=(KEY_A.key_id,))  # how GetKeySet reports it
    in_state_revoked = ring(KEY_A.public_key(KeyState.REVOKED), KEY_B.public_key())

    for keys in (listed_as_revoked, in_state_revoked):
        result = check(env, keys=keys)
        assert result.verdict == KEY_REVOKED
        assert (result.claims, result.key_id) == (None, KEY_A.key_id)


def test_a_grant_claiming_an_issue_time_after_its_key_was_retired_fails() -> None:
    retired_at = NOW - timedelta(days=2)
    keys = ring(KEY_A.public_key(KeyState.RETIRED, retire=retired_at), KEY_B.public_key())

    late = check(grant(claims(issue_time=stamp(retired_at + US))), keys=keys)
    on_time = check(grant(claims(issue_time=stamp(retired_at))), keys=keys)

    assert late.verdict == KEY_NOT_VALID_AT_ISSUE
    assert late.claims is not None and late.key_id == KEY_A.key_id
    assert on_time.verdict == VALID


def test_a_grant_claiming_an_issue_time_before_its_key_was_active_fails() -> None:
    activated = NOW - timedelta(days=10)
    keys = ring(KEY_A.public_key(activate=activated))

    assert check(grant(claims(issue_time=stamp(activated - SKEW - US))), keys=keys).verdict == KEY_NOT_VALID_AT_ISSUE
    assert check(grant(claims(issue_time=stamp(activated - SKEW))), keys=keys).verdict == VALID


EXPIRE = NOW + timedelta(hours=1)
NOT_BEFORE = NOW - timedelta(hours=1)


@pytest.mark.parametrize(
    ("now", "verdict"),
    [
        pytest.param(EXPIRE - US, VALID, id="before-expiry"),
        pytest.param(EXPIRE, VALID, id="at-expiry-within-skew"),
        pytest.param(EXPIRE + SKEW - US, VALID, id="just-inside-skew"),
        pytest.param(EXPIRE + SKEW, EXPIRED, id="at-skew-edge"),
        pytest.param(EXPIRE + SKEW + US, EXPIRED, id="just-past-skew"),
    ],
)
def test_an_expired_grant_fails_at_and_past_the_skew_edge(now: datetime, verdict: int) -> None:
    env = grant(claims(not_before=stamp(NOT_BEFORE), expire_time=stamp(EXPIRE)))

    assert check(env, now=now).verdict == verdict


@pytest.mark.parametrize(
    ("now", "verdict"),
    [
        pytest.param(NOT_BEFORE, VALID, id="at-not-before"),
        pytest.param(NOT_BEFORE - US, VALID, id="before-not-before-within-skew"),
        pytest.param(NOT_BEFORE - SKEW, VALID, id="at-skew-edge"),
        pytest.param(NOT_BEFORE - SKEW - US, NOT_YET_VALID, id="just-past-skew"),
        pytest.param(NOT_BEFORE - timedelta(days=1), NOT_YET_VALID, id="well-before"),
    ],
)
def test_a_not_yet_valid_grant_fails_past_the_skew_edge(now: datetime, verdict: int) -> None:
    env = grant(claims(not_before=stamp(NOT_BEFORE), expire_time=stamp(EXPIRE)))

    assert check(env, now=now).verdict == verdict


def test_the_skew_is_configurable_and_zero_means_exact() -> None:
    env = grant(claims(not_before=stamp(NOT_BEFORE), expire_time=stamp(EXPIRE)))
    exact = GrantVerifier(skew=timedelta())
    wide = GrantVerifier(skew=timedelta(minutes=5))

    assert check(env, verifier=exact, now=NOT_BEFORE).verdict == VALID
    assert check(env, verifier=exact, now=NOT_BEFORE - US).verdict == NOT_YET_VALID
    assert check(env, verifier=exact, now=EXPIRE - US).verdict == VALID
    assert check(env, verifier=exact, now=EXPIRE).verdict == EXPIRED
    assert check(env, verifier=wide, now=EXPIRE + timedelta(minutes=4)).verdict == VALID
    assert exact.skew == timedelta() and GrantVerifier().skew == SKEW


def test_sub_microsecond_times_never_widen_the_window() -> None:
    # A not-before 1 ns into a microsecond starts at the next microsecond; an expiry 1 ns into
    # one ends at its start.
    env = grant(claims(not_before=stamp(NOT_BEFORE, nanos=1), expire_time=stamp(EXPIRE, nanos=999)))
    exact = GrantVerifier(skew=timedelta())

    assert check(env, verifier=exact, now=NOT_BEFORE).verdict == NOT_YET_VALID
    assert check(env, verifier=exact, now=NOT_BEFORE + US).verdict == VALID
    assert check(env, verifier=exact, now=EXPIRE - US).verdict == VALID
    assert check(env, verifier=exact, now=EXPIRE).verdict == EXPIRED


def test_now_in_another_time_zone_means_the_same_instant() -> None:
    tokyo = timezone(timedelta(hours=9))
    env = grant(claims(not_before=stamp(NOT_BEFORE), expire_time=stamp(EXPIRE)))

    assert check(env, now=(EXPIRE + SKEW - US).astimezone(tokyo)).verdict == VALID
    assert check(env, now=(EXPIRE + SKEW).astimezone(tokyo)).verdict == EXPIRED


def test_a_grant_of_licensee_a_presented_by_licensee_b_fails() -> None:
    result = check(grant(), licensee_id=OTHER_LICENSEE)

    assert result.verdict == WRONG_LICENSEE
    assert result.claims is not None and result.claims.licensee_id == LICENSEE


def test_a_grant_for_character_x_presented_for_y_fails() -> None:
    assert check(grant(), character_id=OTHER_CHARACTER).verdict == WRONG_CHARACTER


@pytest.mark.parametrize(
    ("state", "verdict"),
    [(GrantStatus.REVOKED, REVOKED), (GrantStatus.SUSPENDED, SUSPENDED), (GrantStatus.ACTIVE, VALID)],
)
def test_a_revoked_or_suspended_grant_fails(state: GrantStatus, verdict: int) -> None:
    asked: list[str] = []

    def status(grant_id: str) -> GrantStatus:
        asked.append(grant_id)
        return state

    assert check(grant(), status=status).verdict == verdict
    assert asked == [GRANT_ID]


def test_an_empty_signature_list_fails() -> None:
    env = grant()
    del env.signatures[:]

    assert check(env).verdict == MALFORMED
    assert check(to_json(env)).verdict == MALFORMED


def test_several_signatures_of_which_only_a_bad_one_names_a_known_key_fail() -> None:
    env = grant(key=STRANGER)  # a good signature, by a key nobody knows
    env.signatures.add(keyid=KEY_A.key_id, sig=bytes(64))  # the known key id, on a bad signature
    env.signatures.add(keyid=KEY_A.key_id, sig=b"short")  # and on one of the wrong length

    assert check(env).verdict == SIGNATURE_INVALID


def test_one_good_signature_among_bad_ones_is_enough() -> None:
    good = grant()
    env = copy(good)
    env.signatures.insert(0, Signature(keyid=STRANGER.key_id, sig=bytes(64)))
    env.signatures.add(keyid=STRANGER.key_id, sig=bytes(64))

    assert check(env).verdict == VALID


def test_more_signatures_than_the_limit_are_malformed_before_any_check(signature_checks: list[bytes]) -> None:
    at_limit, over = copy(grant()), copy(grant())
    for _ in range(MAX_SIGNATURES - 1):
        at_limit.signatures.add(keyid=STRANGER.key_id, sig=bytes(64))
    for _ in range(MAX_SIGNATURES):
        over.signatures.add(keyid=STRANGER.key_id, sig=bytes(64))

    assert check(at_limit).verdict == VALID
    checks_at_limit = len(signature_checks)
    assert check(over).verdict == MALFORMED
    assert check(to_json(over)).verdict == MALFORMED
    assert len(signature_checks) == checks_at_limit


def test_a_failure_is_remembered_by_digest_while_the_keys_it_named_are_the_same(
    signature_checks: list[bytes],
) -> None:
    bad = copy(grant())
    bad.signatures[0].sig = bytes(64)
    verifier = GrantVerifier()
    rotated = KeyRing([PublicKey(KEY_A.key_id, KEY_B.public, KeyState.ACTIVE, NOW - timedelta(days=1))])

    first = [check(bad, verifier=verifier), check(to_json(bad), verifier=verifier)]
    after_first = len(signature_checks)
    again = check(bad, verifier=verifier)
    other_keys = check(bad, verifier=verifier, keys=rotated)

    assert [v.verdict for v in first] == [SIGNATURE_INVALID] * 2
    assert after_first == 1  # the JSON form has the same digest
    assert again.verdict == SIGNATURE_INVALID
    assert other_keys.verdict == SIGNATURE_INVALID
    assert len(signature_checks) == 2  # the same key id with another public key: checked afresh


def test_only_the_first_signature_naming_a_key_is_checked() -> None:
    """A flood of signatures naming one key costs one verification: the first decides."""
    good = grant()
    bad_first = copy(good)
    bad_first.signatures.insert(0, Signature(keyid=KEY_A.key_id, sig=bytes(64)))

    assert check(bad_first).verdict == SIGNATURE_INVALID


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_a_truncated_envelope_fails(data: st.DataObject) -> None:
    text = to_json(SIGNED)
    cut = data.draw(st.integers(0, len(text) - 1), label="cut")

    assert check(text[:cut], verifier=SHARED).verdict == MALFORMED
    assert check(text[:cut].encode(), verifier=SHARED).verdict == MALFORMED


def test_a_truncated_payload_or_signature_fails() -> None:
    short_payload = copy(SIGNED)
    short_payload.payload = SIGNED.payload[:-1]
    short_signature = copy(SIGNED)
    short_signature.signatures[0].sig = SIGNED.signatures[0].sig[:63]

    assert check(short_payload).verdict == SIGNATURE_INVALID
    assert check(short_signature).verdict == SIGNATURE_INVALID


def test_an_oversized_envelope_fails_before_any_signature_work(signature_checks: list[bytes]) -> None:
    big = grant(claims(issuer="x" * MAX_ENVELOPE_BYTES))  # correctly signed, but too big
    text = to_json(big)

    assert check(big).verdict == MALFORMED
    assert check(text).verdict == MALFORMED
    assert check(text.encode()).verdict == MALFORMED
    assert check(" " * (MAX_ENVELOPE_BYTES + 1)).verdict == MALFORMED
    assert signature_checks == []


def test_an_envelope_just_under_the_limit_is_fine() -> None:
    size = len(grant().SerializeToString())
    env = grant(claims(issuer="x" * (MAX_ENVELOPE_BYTES - size - 10)))

    assert env.ByteSize() <= MAX_ENVELOPE_BYTES
    assert check(env).verdict == VALID


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "garbage",
        b"\x00\x01\x02\xff",
        "[1, 2, 3]",
        "{}",
        '{"payload": "aGk=", "payloadType": "t"}',
        json.dumps({"payload": 1, "payloadType": GRANT_PAYLOAD_TYPE, "signatures": []}),
        "[" * 50_000,
        None,
        42,
        object(),
        ["not", "an", "envelope"],
    ],
)
def test_a_garbage_envelope_fails(garbage: object) -> None:
    result = check(garbage)  # type: ignore[arg-type]

    assert result.verdict == MALFORMED
    assert (result.claims, result.key_id) == (None, "")


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.binary(max_size=600), st.text(max_size=600)))
def test_random_input_is_malformed_never_an_exception(garbage: bytes | str) -> None:
    assert check(garbage, verifier=SHARED).verdict == MALFORMED


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.binary(max_size=200),
    st.sampled_from([GRANT_PAYLOAD_TYPE, RECEIPT_PAYLOAD_TYPE, ""]),
    st.lists(st.tuples(st.sampled_from([KEY_A.key_id, KEY_B.key_id, "", "sk_x"]), st.binary(max_size=70)), max_size=3),
)
def test_random_envelopes_get_a_verdict_never_an_exception(
    payload: bytes, payload_type: str, signatures: list[tuple[str, bytes]]
) -> None:
    env = Envelope(
        payload=payload, payload_type=payload_type, signatures=[Signature(keyid=k, sig=s) for k, s in signatures]
    )
    keys = ring(KEY_A.public_key(), revoked=(KEY_B.key_id,))

    assert check(env, verifier=SHARED, keys=keys).verdict in {
        MALFORMED,
        WRONG_PAYLOAD_TYPE,
        UNKNOWN_KEY,
        KEY_REVOKED,
        SIGNATURE_INVALID,
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("payload", "aGk"),
        ("payload", "a$k="),
        ("payload", "aGl="),
        ("payload", "-_8="),
        ("sig", "AAE"),
        ("sig", "not base64!"),
        ("sig", "AAEC\n"),
    ],
)
def test_invalid_base64_in_the_json_form_fails(field: str, value: str) -> None:
    document = json.loads(to_json(SIGNED))
    if field == "payload":
        document["payload"] = value
    else:
        document["signatures"][0]["sig"] = value

    assert check(json.dumps(document)).verdict == MALFORMED


def test_the_bytes_are_verified_as_received_not_re_serialised() -> None:
    # Unknown field 99 (a newer issuer's addition) and the fields in reverse order: valid
    # protobuf that no serialiser of this message would write.
    fields = claims()
    parts = [g.GrantClaims(**{descriptor.name: value}).SerializeToString() for descriptor, value in fields.ListFields()]
    unusual = b"".join(reversed(parts)) + b"\x98\x06\x01"
    assert g.GrantClaims.FromString(unusual).SerializeToString() != unusual
    env = grant(unusual)

    result = check(env)

    assert result.verdict == VALID
    assert result.claims is not None and result.claims.grant_id == GRANT_ID
    assert check(to_json(env)).verdict == VALID


def test_rotating_keys_leaves_every_old_grant_valid() -> None:
    verifier = GrantVerifier()
    before = ring(KEY_A.public_key(), version="1")
    old_grants = [grant(claims(grant_id=f"grt_{n:032x}")) for n in range(3)]
    for env in old_grants:
        assert check(env, verifier=verifier, keys=before).verdict == VALID

    rotated_at = NOW - timedelta(hours=1)
    after = ring(
        KEY_A.public_key(KeyState.RETIRED, retire=rotated_at),
        KEY_B.public_key(activate=rotated_at),
        version="2",
    )
    new_grant = grant(claims(issue_time=stamp(rotated_at + timedelta(minutes=1))), key=KEY_B)

    for env in old_grants:  # warm...
        assert check(env, verifier=verifier, keys=after).verdict == VALID
    for env in old_grants:  # ...and cold
        assert check(env, keys=after).verdict == VALID
    assert check(new_grant, verifier=verifier, keys=after).verdict == VALID


def test_revoking_a_key_fails_every_grant_it_signed_also_when_cached(signature_checks: list[bytes]) -> None:
    verifier = GrantVerifier()
    by_a = [grant(claims(grant_id=f"grt_{n:032x}")) for n in range(3)]
    by_b = grant(key=KEY_B)
    before = ring(KEY_A.public_key(), KEY_B.public_key())
    for env in [*by_a, by_b]:
        assert check(env, verifier=verifier, keys=before).verdict == VALID
        assert check(to_json(env), verifier=verifier, keys=before).verdict == VALID

    revoked = ring(KEY_B.public_key(), revoked=(KEY_A.key_id,), version="2")
    revoked_in_state = ring(KEY_A.public_key(KeyState.REVOKED), KEY_B.public_key(), version="3")
    for keys in (revoked, revoked_in_state):
        for env in by_a:
            assert check(env, verifier=verifier, keys=keys).verdict == KEY_REVOKED
            assert check(to_json(env), verifier=verifier, keys=keys).verdict == KEY_REVOKED
        assert check(by_b, verifier=verifier, keys=keys).verdict == VALID
    # A revoked key does no signature work at all.
    assert len(signature_checks) == 4


def test_a_cached_grant_fails_when_its_key_leaves_the_ring_or_changes() -> None:
    verifier = GrantVerifier()
    env = grant()
    assert check(env, verifier=verifier).verdict == VALID

    # The key id now names another public key (a confused or hostile key set).
    impostor = PublicKey(KEY_A.key_id, KEY_B.public, KeyState.ACTIVE, NOW - timedelta(days=30))
    assert check(env, verifier=verifier, keys=ring(impostor)).verdict == SIGNATURE_INVALID
    assert check(env, verifier=verifier, keys=ring(KEY_B.public_key())).verdict == UNKNOWN_KEY
    assert check(env, verifier=verifier).verdict == VALID


def test_a_cached_grant_is_rechecked_against_a_new_rings_key_times() -> None:
    verifier = GrantVerifier()
    env = grant()  # issued a day before NOW
    assert check(env, verifier=verifier).verdict == VALID

    retired_before_issue = ring(KEY_A.public_key(KeyState.RETIRED, retire=NOW - timedelta(days=2)))
    assert check(env, verifier=verifier, keys=retired_before_issue).verdict == KEY_NOT_VALID_AT_ISSUE


def test_the_warm_path_does_no_signature_work_and_no_parsing(
    signature_checks: list[bytes], parses: list[bytes]
) -> None:
    verifier = GrantVerifier()
    env = grant()
    text = to_json(env)

    assert check(env, verifier=verifier).verdict == VALID
    assert (len(signature_checks), len(parses)) == (1, 1)

    for _ in range(5):
        assert check(env, verifier=verifier).verdict == VALID
        assert check(copy(env), verifier=verifier).verdict == VALID
        assert check(text, verifier=verifier).verdict == VALID  # the same content in JSON: found by digest
        assert check(text.encode(), verifier=verifier).verdict == VALID
    assert (len(signature_checks), len(parses)) == (1, 1)


def test_the_warm_path_still_checks_the_window_the_parties_and_the_status(signature_checks: list[bytes]) -> None:
    verifier = GrantVerifier()
    env = grant(claims(not_before=stamp(NOT_BEFORE), expire_time=stamp(EXPIRE)))
    assert check(env, verifier=verifier).verdict == VALID

    assert check(env, verifier=verifier, now=EXPIRE + SKEW).verdict == EXPIRED
    assert check(env, verifier=verifier, now=NOT_BEFORE - SKEW - US).verdict == NOT_YET_VALID
    assert check(env, verifier=verifier, licensee_id=OTHER_LICENSEE).verdict == WRONG_LICENSEE
    assert check(env, verifier=verifier, character_id=OTHER_CHARACTER).verdict == WRONG_CHARACTER
    assert check(env, verifier=verifier, status=lambda _: GrantStatus.REVOKED).verdict == REVOKED
    assert check(env, verifier=verifier, status=lambda _: GrantStatus.SUSPENDED).verdict == SUSPENDED
    assert check(env, verifier=verifier, payload_type=RECEIPT_PAYLOAD_TYPE).verdict == WRONG_PAYLOAD_TYPE
    assert check(env, verifier=verifier).verdict == VALID
    assert len(signature_checks) == 1


def test_a_disabled_cache_verifies_every_time(signature_checks: list[bytes]) -> None:
    verifier = GrantVerifier(cache_size=0)
    env = grant()

    for _ in range(3):
        assert check(env, verifier=verifier).verdict == VALID
    assert len(signature_checks) == 3


def test_the_cache_is_bounded(signature_checks: list[bytes]) -> None:
    verifier = GrantVerifier(cache_size=2)
    envs = [grant(claims(grant_id=f"grt_{n:032x}")) for n in range(6)]

    for env in envs:
        assert check(env, verifier=verifier).verdict == VALID
    assert len(verifier._cache or {}) <= 4  # two keys per envelope: its digest and its received form
    signature_checks.clear()
    assert check(envs[0], verifier=verifier).verdict == VALID  # long evicted
    assert len(signature_checks) == 1
    verifier.clear_cache()
    assert not verifier._cache


def test_concurrent_verifications_agree() -> None:
    verifier = GrantVerifier(cache_size=8)
    envs = [grant(claims(grant_id=f"grt_{n:032x}")) for n in range(24)]
    forms: list[Envelope | str] = [*envs, *(to_json(e) for e in envs)]
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(200):
                form = forms[(i * 7 + offset) % len(forms)]
                assert check(form, verifier=verifier).verdict == VALID
                assert check(form, verifier=verifier, licensee_id=OTHER_LICENSEE).verdict == WRONG_LICENSEE
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(verifier._cache or {}) <= 16


# The order of the checks: the first failure wins -----------------------------------------------------


def _retired_before_issue() -> KeyRing:
    return ring(KEY_A.public_key(KeyState.RETIRED, retire=NOW - timedelta(days=2)))


@pytest.mark.parametrize(
    ("case", "verdict"),
    [
        pytest.param({"payload_type": RECEIPT_PAYLOAD_TYPE, "key": STRANGER}, WRONG_PAYLOAD_TYPE, id="type-before-key"),
        pytest.param({"key": STRANGER, "licensee_id": OTHER_LICENSEE}, UNKNOWN_KEY, id="key-before-licensee"),
        pytest.param({"keys": "revoked", "licensee_id": OTHER_LICENSEE}, KEY_REVOKED, id="revoked-before-licensee"),
        pytest.param({"keys": "retired", "now": EXPIRE + timedelta(days=60)}, KEY_NOT_VALID_AT_ISSUE, id="issue-first"),
        pytest.param({"now": NOW - timedelta(days=5), "licensee_id": OTHER_LICENSEE}, NOT_YET_VALID, id="window"),
        pytest.param({"now": NOW + timedelta(days=60), "licensee_id": OTHER_LICENSEE}, EXPIRED, id="expiry"),
        pytest.param({"licensee_id": OTHER_LICENSEE, "character_id": OTHER_CHARACTER}, WRONG_LICENSEE, id="parties"),
        pytest.param({"character_id": OTHER_CHARACTER, "status": GrantStatus.REVOKED}, WRONG_CHARACTER, id="status"),
    ],
)
def test_the_first_failing_check_decides(case: dict[str, Any], verdict: int) -> None:
    case = dict(case)
    env = grant(key=case.pop("key", KEY_A))
    keys = {"revoked": ring(KEY_B.public_key(), revoked=(KEY_A.key_id,)), "retired": _retired_before_issue()}
    if "keys" in case:
        case["keys"] = keys[case["keys"]]
    if "status" in case:
        state = case["status"]
        case["status"] = lambda _grant_id: state

    assert check(env, **case).verdict == verdict
    assert check(env, verifier=GrantVerifier(cache_size=0), **case).verdict == verdict


# Claims that verify but are not usable ----------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"\xff\xff\xff", id="not-protobuf"),
        pytest.param(b"\x0a\x10truncated", id="truncated-field"),
        pytest.param(claims(grant_id="").SerializeToString(), id="no-grant-id"),
        pytest.param(claims(issue_time=None).SerializeToString(), id="no-issue-time"),
        pytest.param(claims(not_before=None).SerializeToString(), id="no-not-before"),
        pytest.param(claims(expire_time=None).SerializeToString(), id="no-expire-time"),
        pytest.param(
            claims(expire_time=timestamp_pb2.Timestamp(seconds=253_402_300_800)).SerializeToString(),
            id="time-out-of-range",
        ),
        pytest.param(
            claims(not_before=timestamp_pb2.Timestamp(seconds=0, nanos=-1)).SerializeToString(), id="negative-nanos"
        ),
    ],
)
def test_signed_claims_that_do_not_parse_are_malformed(payload: bytes, parses: list[bytes]) -> None:
    result = check(grant(payload))

    assert result.verdict == MALFORMED
    assert (result.claims, result.key_id) == (None, KEY_A.key_id)
    assert parses == [payload]  # parsed only after the signature verified


def test_nothing_is_parsed_before_a_signature_verifies(parses: list[bytes]) -> None:
    forged = copy(SIGNED)
    forged.signatures[0].sig = bytes(64)

    assert check(forged).verdict == SIGNATURE_INVALID
    assert parses == []


def test_extreme_but_valid_times_do_not_crash() -> None:
    env = grant(
        claims(
            issue_time=timestamp_pb2.Timestamp(seconds=-62_135_596_800),
            not_before=timestamp_pb2.Timestamp(seconds=-62_135_596_800),
            expire_time=timestamp_pb2.Timestamp(seconds=253_402_300_799, nanos=999_999_999),
        )
    )
    keys = ring(KEY_A.public_key(activate=datetime(1, 1, 1, tzinfo=UTC)))

    assert check(env, keys=keys).verdict == VALID
    assert check(env, keys=keys, verifier=GrantVerifier(skew=timedelta(days=1))).verdict == VALID


# Key rings ------------------------------------------------------------------------------------------


def _signing_key(key: Key, state: int, **changes: Any) -> signing_key_pb2.SigningKey:
    fields: dict[str, Any] = {
        "key_id": key.key_id,
        "algorithm": "ed25519",
        "public_key": key.public,
        "state": state,
        "activate_time": stamp(NOW - timedelta(days=30)),
    }
    return signing_key_pb2.SigningKey(**{**fields, **changes})


def test_a_key_ring_from_a_key_set() -> None:
    key_set = signing_key_pb2.KeySet(
        version="v7",
        keys=[
            _signing_key(KEY_A, signing_key_pb2.SigningKey.STATE_RETIRED, retire_time=stamp(NOW - timedelta(days=1))),
            _signing_key(KEY_B, signing_key_pb2.SigningKey.STATE_ACTIVE),
            signing_key_pb2.SigningKey(
                key_id="sk_future",
                algorithm="ml-dsa-65",
                public_key=b"x" * 1952,
                state=signing_key_pb2.SigningKey.STATE_ACTIVE,
            ),
        ],
        revoked_key_ids=["sk_0000000000000000"],
    )

    keys = KeyRing.from_key_set(key_set)

    assert sorted(keys) == [KEY_A.key_id, KEY_B.key_id]  # the unknown algorithm is left out
    assert keys[KEY_A.key_id] == PublicKey(
        KEY_A.key_id, KEY_A.public, KeyState.RETIRED, NOW - timedelta(days=30), NOW - timedelta(days=1)
    )
    assert keys[KEY_B.key_id].retire_time is None
    assert keys.revoked == frozenset({"sk_0000000000000000"})
    assert keys.version == "v7"
    assert keys.is_usable(KEY_A.key_id) and not keys.is_usable("sk_0000000000000000")
    assert keys == KeyRing.from_key_set(key_set) and hash(keys) == hash(KeyRing.from_key_set(key_set))
    assert check(grant(), keys=keys).verdict == VALID
    assert check(grant(key=KEY_B), keys=keys).verdict == VALID
    assert "sk_0000000000000000" in repr(keys)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (_signing_key(KEY_A, 1, public_key=b"short"), "32 bytes"),
        (_signing_key(KEY_A, 1, key_id=""), "key id"),
        (
            signing_key_pb2.SigningKey(key_id="sk_1", algorithm="ed25519", public_key=bytes(32), state=ACTIVE_STATE),
            "activate",
        ),
    ],
)
def test_a_malformed_key_set_is_refused(key: signing_key_pb2.SigningKey, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KeyRing.from_key_set(signing_key_pb2.KeySet(keys=[key]))


def test_a_key_ring_refuses_contradictions() -> None:
    with pytest.raises(ValueError, match="twice"):
        KeyRing([KEY_A.public_key(), KEY_A.public_key()])
    with pytest.raises(ValueError, match="listed under"):
        KeyRing({KEY_B.key_id: KEY_A.public_key()})
    with pytest.raises(ValueError, match="timezone-aware"):
        PublicKey(KEY_A.key_id, KEY_A.public, KeyState.ACTIVE, datetime(2026, 1, 1))


def test_a_key_ring_is_an_immutable_mapping() -> None:
    keys = KeyRing({KEY_A.key_id: KEY_A.public_key()}, revoked=[KEY_B.key_id], version="3")

    assert dict(keys) == {KEY_A.key_id: KEY_A.public_key()}
    assert len(keys) == 1 and KEY_A.key_id in keys
    with pytest.raises(TypeError):
        keys[KEY_B.key_id] = KEY_B.public_key()  # type: ignore[index]
    with pytest.raises(AttributeError):
        keys.version = "4"  # type: ignore[misc]


# Arguments -----------------------------------------------------------------------------------------


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        check(grant(), now=datetime(2026, 6, 1))


@pytest.mark.parametrize("options", [{"skew": timedelta(seconds=-1)}, {"cache_size": -1}])
def test_verifier_options_are_checked(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="negative"):
        GrantVerifier(**options)


def test_verification_names_its_verdict() -> None:
    assert Verification(EXPIRED, None, "").reason == "EXPIRED"
    assert not Verification(EXPIRED, None, "").valid
    assert Verification(99, None, "").reason == "99"


def test_key_state_and_grant_status_match_the_contract() -> None:
    assert [int(s) for s in KeyState] == [
        signing_key_pb2.SigningKey.STATE_ACTIVE,
        signing_key_pb2.SigningKey.STATE_RETIRED,
        signing_key_pb2.SigningKey.STATE_REVOKED,
    ]
    assert [int(s) for s in GrantStatus] == [g.Grant.STATE_ACTIVE, g.Grant.STATE_SUSPENDED, g.Grant.STATE_REVOKED]
