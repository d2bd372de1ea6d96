"""`charter.envelope.PreparedEnvelope` and `GrantVerifier.verify_prepared`: the held-grant form of
an envelope gives the same verdicts as the envelope, shares the verifier's cache with it by
digest, and cannot be changed after the digest was computed."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from charter.envelope import MAX_ENVELOPE_BYTES, PreparedEnvelope, digest, pae
from charter.grants import GrantVerifier
from charter.offline.held import parse
from charter.v1 import grant_pb2 as g
from charter.v1.envelope_pb2 import Envelope, Signature

from .test_grant_verifier import (
    CHARACTER,
    EXPIRE,
    KEY_A,
    KEY_B,
    LICENSEE,
    NOT_BEFORE,
    NOW,
    SKEW,
    check,
    claims,
    grant,
    ring,
    stamp,
)

VALID = g.GRANT_VERDICT_VALID
MALFORMED = g.GRANT_VERDICT_MALFORMED
SIGNATURE_INVALID = g.GRANT_VERDICT_SIGNATURE_INVALID
UNKNOWN_KEY = g.GRANT_VERDICT_UNKNOWN_KEY
WRONG_CHARACTER = g.GRANT_VERDICT_WRONG_CHARACTER
EXPIRED = g.GRANT_VERDICT_EXPIRED


def tampered(env: Envelope) -> Envelope:
    changed = Envelope()
    changed.CopyFrom(env)
    changed.payload = changed.payload[:-1] + bytes([changed.payload[-1] ^ 1])
    return changed


def test_the_parts_are_the_envelopes_with_its_pae_and_digest() -> None:
    env = grant()
    env.signatures.add(keyid=KEY_B.key_id, sig=KEY_B.signature(pae(env.payload_type, env.payload)))
    prepared = PreparedEnvelope(env)

    assert prepared.payload_type == env.payload_type
    assert prepared.payload == env.payload
    assert prepared.signatures == tuple((s.keyid, s.sig) for s in env.signatures)
    assert prepared.message == pae(env.payload_type, env.payload)
    assert prepared.digest == digest(env)
    assert prepared.size == env.ByteSize()
    assert prepared.to_envelope() == env


def test_a_prepared_envelope_cannot_be_changed() -> None:
    prepared = PreparedEnvelope(grant())
    with pytest.raises(AttributeError):
        prepared.payload = b"other"
    with pytest.raises(AttributeError):
        del prepared.digest
    assert prepared.digest == digest(grant())


def test_changing_the_envelope_afterwards_changes_nothing_prepared() -> None:
    env = grant()
    prepared = PreparedEnvelope(env)
    env.payload = b"changed"
    assert prepared.payload == grant().payload
    assert check(prepared).verdict == VALID


@pytest.mark.parametrize(
    ("env", "character_id", "now", "verdict"),
    [
        (grant(), CHARACTER, NOW, VALID),
        (tampered(grant()), CHARACTER, NOW, SIGNATURE_INVALID),
        (grant(key=KEY_B), CHARACTER, NOW, UNKNOWN_KEY),
        (grant(), "chr_" + "9" * 32, NOW, WRONG_CHARACTER),
        (grant(), CHARACTER, NOW + timedelta(days=400), EXPIRED),
        (Envelope(payload_type=grant().payload_type, payload=grant().payload), CHARACTER, NOW, MALFORMED),
    ],
)
def test_verdicts_are_those_of_the_envelope(env: Envelope, character_id: str, now: datetime, verdict: int) -> None:
    for form in (env, PreparedEnvelope(env)):
        for verifier in (GrantVerifier(), GrantVerifier(cache_size=0)):
            result = verifier.verify(form, keys=ring(), licensee_id=LICENSEE, character_id=character_id, now=now)
            assert result.verdict == verdict


def test_an_oversized_prepared_envelope_is_malformed() -> None:
    env = grant()
    env.signatures.add(keyid="x" * MAX_ENVELOPE_BYTES, sig=b"")
    result, window = GrantVerifier().verify_prepared(
        PreparedEnvelope(env), keys=ring(), licensee_id=LICENSEE, character_id=CHARACTER, now=NOW
    )
    assert (result.verdict, window) == (MALFORMED, None)


def test_the_prepared_and_received_forms_share_the_cache_by_digest(signature_checks: list[bytes]) -> None:
    verifier = GrantVerifier()
    env = grant()
    assert check(PreparedEnvelope(env), verifier=verifier).verdict == VALID
    assert check(env, verifier=verifier).verdict == VALID
    assert check(PreparedEnvelope(env), verifier=verifier).verdict == VALID
    assert len(signature_checks) == 1

    # Different bytes are never found under another envelope's digest.
    assert check(PreparedEnvelope(tampered(env)), verifier=verifier).verdict == SIGNATURE_INVALID
    assert len(signature_checks) == 2
    # Without a cache, every verification checks the signature.
    uncached = GrantVerifier(cache_size=0)
    for _ in range(2):
        assert check(PreparedEnvelope(env), verifier=uncached).verdict == VALID
    assert len(signature_checks) == 4


def test_verify_prepared_reports_the_window_the_verdict_was_judged_on() -> None:
    env = grant(claims(not_before=stamp(NOT_BEFORE, nanos=1500), expire_time=stamp(EXPIRE, nanos=2500)))
    verifier = GrantVerifier(skew=SKEW)
    result, window = verifier.verify_prepared(
        PreparedEnvelope(env), keys=ring(), licensee_id=LICENSEE, character_id=CHARACTER, now=NOW
    )
    assert result.verdict == VALID
    # Rounded so that the window never grows: the start up, the end down, to whole microseconds.
    assert window == (NOT_BEFORE + timedelta(microseconds=2) - SKEW, EXPIRE + timedelta(microseconds=2) + SKEW)
    failed, none = verifier.verify_prepared(
        PreparedEnvelope(tampered(env)), keys=ring(), licensee_id=LICENSEE, character_id=CHARACTER, now=NOW
    )
    assert (failed.verdict, none) == (SIGNATURE_INVALID, None)


def test_a_held_grant_presents_the_envelope_it_was_given() -> None:
    env = grant()
    env.signatures.append(Signature(keyid=KEY_A.key_id, sig=env.signatures[0].sig))
    key, held = parse(env)
    assert key == digest(env)
    assert held.envelope == env
    assert held.envelope is held.envelope  # built once
