"""`charter.grants.PreparedGrant`: a held grant's payload is parsed once, when it is prepared, and
the verifier takes those claims only once a signature verified over the PAE of those very bytes;
a verifier with a cache remembers a prepared grant on the grant itself, and every check after the
signature still runs on every verification."""

from __future__ import annotations

from datetime import timedelta

import pytest
from charter._grant_entry import Claimed
from charter.grants import GrantVerifier, KeyRing, KeyState, PreparedGrant, Verification
from charter.offline.held import check as check_held
from charter.offline.held import parse
from charter.v1.envelope_pb2 import Envelope

from .test_grant_verifier import (
    CHARACTER,
    EXPIRE,
    KEY_A,
    KEY_REVOKED,
    LICENSEE,
    NOW,
    OTHER_LICENSEE,
    WRONG_LICENSEE,
    claims,
    copy,
    grant,
    ring,
    stamp,
)
from .test_prepared_envelope import (
    EXPIRED,
    MALFORMED,
    SIGNATURE_INVALID,
    VALID,
)
from .test_prepared_envelope import tampered as flipped

LATER = EXPIRE + timedelta(days=365)


def verify(
    prepared: PreparedGrant,
    verifier: GrantVerifier,
    keys: KeyRing | None = None,
    licensee_id: str = LICENSEE,
    now: object = NOW,
) -> Verification:
    result, _window = verifier.verify_prepared(
        prepared,
        keys=keys or ring(),
        licensee_id=licensee_id,
        character_id=CHARACTER,
        now=now,  # type: ignore[arg-type]
    )
    return result


def resigned_payload(env: Envelope) -> Envelope:
    """The envelope with other claims (a far later expiry) under its original signature."""
    forged = copy(env)
    forged.payload = claims(expire_time=stamp(LATER)).SerializeToString()
    return forged


def test_the_claims_parsed_when_prepared_are_taken_without_parsing_again(parses: list[bytes]) -> None:
    prepared = PreparedGrant(grant())
    assert parses == [prepared.payload]  # parsed once, when prepared

    for verifier in (GrantVerifier(), GrantVerifier(cache_size=0)):
        result = verify(prepared, verifier)
        assert result.verdict == VALID
        assert result.claims is prepared.claimed.claims
    assert len(parses) == 1


@pytest.mark.parametrize("forge", [resigned_payload, flipped], ids=["other-claims", "flipped-byte"])
def test_a_changed_payload_is_refused_although_its_claims_were_parsed(forge: object) -> None:
    prepared = PreparedGrant(forge(grant()))  # type: ignore[operator]

    for verifier in (GrantVerifier(), GrantVerifier(cache_size=0)):
        result, window = verifier.verify_prepared(
            prepared, keys=ring(), licensee_id=LICENSEE, character_id=CHARACTER, now=NOW
        )
        assert (result.verdict, result.claims, window) == (SIGNATURE_INVALID, None, None)


def test_claims_parsed_from_other_bytes_are_never_taken() -> None:
    prepared = PreparedGrant(grant())
    # Claims that would outlive the real ones, slipped in past the immutability.
    object.__setattr__(prepared, "claimed", Claimed(claims(expire_time=stamp(LATER)).SerializeToString()))

    for verifier in (GrantVerifier(), GrantVerifier(cache_size=0)):
        result = verify(prepared, verifier, now=EXPIRE + timedelta(days=30))
        assert result.verdict == EXPIRED  # judged on the claims of the payload that was signed
        assert result.claims == claims()


def test_signed_claims_without_a_grant_id_are_malformed_after_the_signature() -> None:
    prepared = PreparedGrant(grant(claims(grant_id="")))
    assert not prepared.claimed.usable
    assert verify(prepared, GrantVerifier()).verdict == MALFORMED


def test_a_prepared_grant_is_remembered_on_itself(signature_checks: list[bytes]) -> None:
    verifier = GrantVerifier()
    prepared = PreparedGrant(grant())

    assert verify(prepared, verifier).verdict == VALID
    assert verify(prepared, verifier, keys=ring(version="2")).verdict == VALID  # a new ring, the same key
    assert len(signature_checks) == 1
    assert not verifier._cache  # not under its digest

    assert verify(prepared, GrantVerifier()).verdict == VALID  # another verifier checks for itself
    assert len(signature_checks) == 2
    verifier.clear_cache()
    assert verify(prepared, verifier).verdict == VALID
    assert len(signature_checks) == 3
    uncached = GrantVerifier(cache_size=0)
    for _ in range(2):
        assert verify(prepared, uncached).verdict == VALID
    assert len(signature_checks) == 5


def test_every_check_after_the_signature_runs_on_a_remembered_grant(signature_checks: list[bytes]) -> None:
    verifier = GrantVerifier()
    prepared = PreparedGrant(grant())
    assert verify(prepared, verifier).verdict == VALID

    revoked = ring(KEY_A.public_key(KeyState.REVOKED))
    assert verify(prepared, verifier, keys=revoked).verdict == KEY_REVOKED
    assert verify(prepared, verifier, licensee_id=OTHER_LICENSEE).verdict == WRONG_LICENSEE
    assert verify(prepared, verifier, now=EXPIRE + timedelta(days=30)).verdict == EXPIRED
    assert verify(prepared, verifier).verdict == VALID
    assert len(signature_checks) == 1  # the revoked key was never asked to verify


def test_a_held_grant_is_decided_from_what_its_claims_gave_when_added() -> None:
    verifier = GrantVerifier()
    _, held = parse(grant())
    assert held.granted is not None

    checked = check_held(verifier, held, ring(), licensee_id=LICENSEE, now=NOW, skew_us=0)
    assert checked.integrity.value == "verified"
    assert checked.terms is held.granted.terms
    assert checked.allow is held.granted.allow
    assert (checked.not_before, checked.expire_time) == verifier.verify_prepared(
        held.prepared, keys=ring(), licensee_id=LICENSEE, character_id=CHARACTER, now=NOW
    )[1]


def test_a_held_grant_with_a_changed_payload_is_invalid() -> None:
    _, held = parse(resigned_payload(grant()))
    assert held.granted is not None  # worked out from the unverified claims, never trusted

    checked = check_held(GrantVerifier(), held, ring(), licensee_id=LICENSEE, now=NOW, skew_us=0)
    assert checked.integrity.value == "invalid"
    assert (checked.terms, checked.allow, checked.grant_id) == (None, None, "")
