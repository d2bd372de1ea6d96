"""charter.decision_records: every verdict of a decision record, in the order of the checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from charter import envelope as dsse
from charter.decision_records import (
    DecisionRecordSigner,
    generate_key,
    new_record_id,
    use_context_digest,
    verify_decision_record,
)
from charter.grants import KeyRing, KeyState, PublicKey
from charter.v1 import decision_pb2, grant_pb2, terms_pb2
from charter.v1.envelope_pb2 import Envelope
from charter.v1.offline_pb2 import DecisionRecordClaims

V = grant_pb2
NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)
CONTEXT = decision_pb2.UseContext(use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION)


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000


@pytest.fixture
def pair() -> tuple[DecisionRecordSigner, KeyRing]:
    seed, public = generate_key()
    signer = DecisionRecordSigner(key_id="lk_a", private_key=seed, licensee_id="lic_1")
    ring = KeyRing(
        keys={"lk_a": PublicKey("lk_a", public, KeyState.ACTIVE, NOW - timedelta(days=1))},
        revoked=frozenset({"lk_gone"}),
        version="",
    )
    return signer, ring


def _sign(signer: DecisionRecordSigner, when: datetime = NOW, **changes: object) -> Envelope:
    options: dict[str, object] = {
        "character_id": "chr_1",
        "grant_id": "grt_1",
        "terms_version": 2,
        "allowed": True,
        "context": CONTEXT,
        "decide_time_ns": _ns(when),
        **changes,
    }
    return signer.sign(**options)  # type: ignore[arg-type]


def test_a_signed_record_verifies_and_states_what_was_decided(pair: tuple[DecisionRecordSigner, KeyRing]) -> None:
    signer, ring = pair
    record = _sign(signer, lease_id="ql_1", snapshot_version="s7", revocation_sequence=42)

    result = verify_decision_record(record, keys=ring, licensee_id="lic_1")
    as_json = verify_decision_record(dsse.to_json(record), keys=ring)

    assert result.valid and as_json.valid and result.key_id == "lk_a"
    assert result.claims is not None
    claims = result.claims
    assert (claims.licensee_id, claims.character_id, claims.grant_id, claims.terms_version) == (
        "lic_1",
        "chr_1",
        "grt_1",
        2,
    )
    assert (claims.lease_id, claims.snapshot_version, claims.revocation_sequence) == ("ql_1", "s7", 42)
    assert claims.use_context_digest == use_context_digest(CONTEXT)
    assert claims.decide_time.ToDatetime(tzinfo=UTC) == NOW
    assert claims.record_id.startswith("dr_") and len(claims.record_id) == 35


def test_each_failure_has_its_verdict(pair: tuple[DecisionRecordSigner, KeyRing]) -> None:
    signer, ring = pair
    good = _sign(signer)
    wrong_type = Envelope(payload=good.payload, payload_type=dsse.RECEIPT_PAYLOAD_TYPE, signatures=good.signatures)
    unsigned = Envelope(payload=good.payload, payload_type=good.payload_type)
    other_seed, _ = generate_key()
    unknown = _sign(DecisionRecordSigner(key_id="lk_x", private_key=other_seed, licensee_id="lic_1"))
    revoked = _sign(DecisionRecordSigner(key_id="lk_gone", private_key=other_seed, licensee_id="lic_1"))
    forged = _sign(DecisionRecordSigner(key_id="lk_a", private_key=other_seed, licensee_id="lic_1"))
    tampered = Envelope(
        payload=good.payload.replace(b"chr_1", b"chr_2"), payload_type=good.payload_type, signatures=good.signatures
    )
    no_id = dsse.sign(
        DecisionRecordClaims(licensee_id="lic_1").SerializeToString(),
        dsse.DECISION_RECORD_PAYLOAD_TYPE,
        key_id="lk_a",
        private_key=signer._key,
    )
    before_key = _sign(signer, NOW - timedelta(days=2))

    verdicts = {
        name: verify_decision_record(envelope, keys=ring, licensee_id="lic_1").verdict
        for name, envelope in {
            "wrong_type": wrong_type,
            "unsigned": unsigned,
            "unknown": unknown,
            "revoked": revoked,
            "forged": forged,
            "tampered": tampered,
            "no_id": no_id,
            "before_key": before_key,
        }.items()
    }
    wrong_licensee = verify_decision_record(good, keys=ring, licensee_id="lic_2")
    garbage = verify_decision_record("not json", keys=ring)

    assert verdicts == {
        "wrong_type": V.GRANT_VERDICT_WRONG_PAYLOAD_TYPE,
        "unsigned": V.GRANT_VERDICT_MALFORMED,
        "unknown": V.GRANT_VERDICT_UNKNOWN_KEY,
        "revoked": V.GRANT_VERDICT_KEY_REVOKED,
        "forged": V.GRANT_VERDICT_SIGNATURE_INVALID,
        "tampered": V.GRANT_VERDICT_SIGNATURE_INVALID,
        "no_id": V.GRANT_VERDICT_MALFORMED,
        "before_key": V.GRANT_VERDICT_KEY_NOT_VALID_AT_ISSUE,
    }
    assert wrong_licensee.verdict == V.GRANT_VERDICT_WRONG_LICENSEE and wrong_licensee.reason == "WRONG_LICENSEE"
    assert garbage.verdict == V.GRANT_VERDICT_MALFORMED


def test_record_ids_are_fresh_and_the_signer_hides_its_key(pair: tuple[DecisionRecordSigner, KeyRing]) -> None:
    signer, _ring = pair

    ids = {new_record_id() for _ in range(100)}

    assert len(ids) == 100
    assert "lk_a" in repr(signer) and "private" not in repr(signer).lower()
    with pytest.raises(ValueError):
        DecisionRecordSigner(key_id="", private_key=b"\0" * 32, licensee_id="lic_1")
    with pytest.raises(ValueError):
        DecisionRecordSigner(key_id="lk_a", private_key=b"\0" * 31, licensee_id="lic_1")


def test_a_signer_made_from_a_signing_key_signs_as_one_made_from_its_seed(
    pair: tuple[DecisionRecordSigner, KeyRing],
) -> None:
    signer, ring = pair
    again = DecisionRecordSigner(key_id="lk_a", private_key=signer._key, licensee_id="lic_1")
    fields = {"character_id": "chr_1", "grant_id": "grt_1", "terms_version": 1, "allowed": True, "context": CONTEXT}
    made = [s.sign(**fields, record_id="dr_1", decide_time_ns=_ns(NOW)) for s in (signer, again)]  # type: ignore[arg-type]

    assert made[0] == made[1]  # Ed25519 signatures are deterministic
    assert verify_decision_record(made[1], keys=ring, licensee_id="lic_1").valid


def test_the_offline_context_digest_is_the_digest_of_the_context_it_stands_for() -> None:
    from charter.offline.records import offline_context, offline_context_digest

    cases = [
        (terms_pb2.USE_TYPE_IMAGE_GENERATION, terms_pb2.CONTENT_RATING_TEEN, (), "", False, None),
        (
            terms_pb2.USE_TYPE_VIDEO_GENERATION,
            terms_pb2.CONTENT_RATING_ALL_AGES,
            (3, 1),
            "JP",
            True,
            timedelta(seconds=9),
        ),
    ]
    for case in cases * 2:  # the second time from the cache
        assert offline_context_digest(*case) == use_context_digest(offline_context(*case))
    assert offline_context_digest(*cases[0]) != offline_context_digest(*cases[1])
