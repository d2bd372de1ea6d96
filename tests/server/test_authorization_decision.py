"""The server's decision step on its own (`services.authorization.decision.Decider`), over an
in-memory generation of the view: no gRPC, no database. What it adds to `charter.decide` is
gathering the inputs: grants on record or presented, newest first, a presented grant judged by
the record of it, a revoked signing key, and validation of the command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import nacl.signing
import pytest
from charter.envelope import GRANT_PAYLOAD_TYPE, sign
from charter.grants import GrantVerifier, KeyRing, KeyState, PublicKey
from charter.terms import CompiledTerms, DenyReason
from charter.v1 import grant_pb2, terms_pb2
from charter.v1.envelope_pb2 import Envelope
from charter_server.domain.errors import InvalidArgument
from charter_server.domain.models import CharacterState, GrantState
from charter_server.services.authorization.command import AuthorizeCommand, UseRequest
from charter_server.services.authorization.decision import CharacterOutcome, Decider
from charter_server.services.authorization.validation import validate
from charter_server.services.authorization.view import CharacterView, Generation, GrantView, LicenseeView
from google.protobuf import timestamp_pb2

NOW = datetime(2030, 6, 1, 12, tzinfo=UTC)
LICENSEE = "lic_" + "a" * 32
CHARACTER = "chr_" + "c" * 32
HOLDER = "rh_" + "b" * 32
IMAGE = terms_pb2.USE_TYPE_IMAGE_GENERATION
VIDEO = terms_pb2.USE_TYPE_VIDEO_GENERATION
TEEN = terms_pb2.CONTENT_RATING_TEEN
USE = UseRequest(IMAGE, TEEN)
TERMS = terms_pb2.Terms(permitted_use_types=[IMAGE], max_content_rating=TEEN)
SIGNER = nacl.signing.SigningKey.generate()
OLD_SIGNER = nacl.signing.SigningKey.generate()


def _ring(*, old_revoked: bool = False) -> KeyRing:
    keys = [
        PublicKey("sk_new", bytes(SIGNER.verify_key), KeyState.ACTIVE, NOW - timedelta(days=10)),
        PublicKey(
            "sk_old",
            bytes(OLD_SIGNER.verify_key),
            KeyState.REVOKED if old_revoked else KeyState.RETIRED,
            NOW - timedelta(days=400),
            NOW - timedelta(days=10),
        ),
    ]
    return KeyRing(keys, revoked=["sk_old"] if old_revoked else [], version="1")


def _grant(
    grant_id: str, *, state: GrantState = GrantState.ACTIVE, days: tuple[int, int] = (-1, 30), key: str = "sk_new"
) -> GrantView:
    return GrantView(
        id=grant_id,
        state=state,
        not_before=NOW + timedelta(days=days[0]),
        expire_time=NOW + timedelta(days=days[1]),
        terms_version=1,
        signing_key_id=key,
        terms=CompiledTerms.from_terms(TERMS),
        max_uses=None,
    )


def _envelope(grant: GrantView, *, issued_days_ago: int, signer: nacl.signing.SigningKey = SIGNER) -> Envelope:
    def stamp(moment: datetime) -> timestamp_pb2.Timestamp:
        value = timestamp_pb2.Timestamp()
        value.FromDatetime(moment)
        return value

    claims = grant_pb2.GrantClaims(
        grant_id=grant.id,
        character_id=CHARACTER,
        rights_holder_id=HOLDER,
        licensee_id=LICENSEE,
        terms=TERMS,
        terms_version=1,
        issue_time=stamp(NOW - timedelta(days=issued_days_ago)),
        not_before=stamp(grant.not_before),
        expire_time=stamp(grant.expire_time),
        issuer="charter",
    )
    key_id = "sk_new" if signer is SIGNER else "sk_old"
    return sign(claims.SerializeToString(), GRANT_PAYLOAD_TYPE, key_id=key_id, private_key=signer)


def _generation(stored: tuple[GrantView, ...], *, ring: KeyRing | None = None) -> Generation:
    generation = Generation(epoch=1, started=0.0, lease=1.0)
    generation.characters[CHARACTER] = CharacterView(CharacterState.OPTED_IN, HOLDER)
    generation.licensees[LICENSEE] = LicenseeView(archived=False, platform="app")
    generation.grants[(LICENSEE, CHARACTER)] = stored
    generation.ring = ring or _ring()
    return generation


def _decide(generation: Generation, presented: tuple[Envelope, ...] = ()) -> CharacterOutcome:
    command = AuthorizeCommand((CHARACTER,), "", USE, grants=presented)
    (outcome,) = Decider(GrantVerifier()).decide(
        generation, LICENSEE, {CHARACTER: True}, set(), validate(command), USE, NOW
    )
    return outcome


def test_the_newest_grant_on_record_that_allows_decides() -> None:
    newer, older = _grant("grt_2", state=GrantState.SUSPENDED), _grant("grt_1")

    outcome = _decide(_generation((newer, older)))

    assert (outcome.allowed, outcome.grant_id, outcome.rights_holder_id) == (True, "grt_1", HOLDER)
    assert outcome.evaluation is not None and outcome.evaluation.obligations is not None


def test_a_revoked_and_expired_grant_on_record_is_revoked() -> None:
    grant = _grant("grt_1", state=GrantState.REVOKED, days=(-30, -1))

    outcome = _decide(_generation((grant,)))

    assert (outcome.allowed, outcome.reasons, outcome.grant_id) == (False, (DenyReason.GRANT_REVOKED,), "grt_1")


def test_a_revoked_and_expired_grant_presented_is_revoked() -> None:
    grant = _grant("grt_1", state=GrantState.REVOKED, days=(-5, -1))

    outcome = _decide(_generation((grant,)), (_envelope(grant, issued_days_ago=5),))

    assert (outcome.allowed, outcome.reasons, outcome.grant_id) == (False, (DenyReason.GRANT_REVOKED,), "grt_1")


def test_a_grant_signed_by_a_key_revoked_since_is_invalid_before_its_state() -> None:
    grant = _grant("grt_1", state=GrantState.REVOKED, key="sk_old")
    generation = _generation((grant,), ring=_ring(old_revoked=True))

    from_records = _decide(generation)
    presented = _decide(generation, (_envelope(grant, issued_days_ago=20, signer=OLD_SIGNER),))

    assert from_records.reasons == (DenyReason.GRANT_INVALID,)
    assert presented.reasons == (DenyReason.GRANT_INVALID,)


def test_presented_grants_are_considered_newest_first_whatever_their_order() -> None:
    older, newer = _grant("grt_1", days=(-1, 30)), _grant("grt_2", state=GrantState.SUSPENDED)
    generation = _generation((newer, older))
    envelopes = (_envelope(older, issued_days_ago=5), _envelope(newer, issued_days_ago=1))

    both = _decide(generation, envelopes)
    only_newer = _decide(generation, envelopes[1:])

    assert (both.allowed, both.grant_id) == (True, "grt_1")
    assert (only_newer.allowed, only_newer.reasons, only_newer.grant_id) == (
        False,
        (DenyReason.GRANT_SUSPENDED,),
        "grt_2",
    )


def test_a_presented_grant_without_a_record_is_revoked() -> None:
    unknown = _grant("grt_9")

    outcome = _decide(_generation(()), (_envelope(unknown, issued_days_ago=1),))

    assert (outcome.allowed, outcome.reasons, outcome.grant_id) == (False, (DenyReason.GRANT_REVOKED,), "grt_9")


def test_a_presented_grant_is_judged_by_its_record_window_on_the_server_clock() -> None:
    # Signed as valid until tomorrow; the record says it expires now (the server's own clock).
    signed = _grant("grt_1", days=(-1, 1))
    recorded = _grant("grt_1", days=(-1, 0))  # expires at NOW: expired

    outcome = _decide(_generation((recorded,)), (_envelope(signed, issued_days_ago=1),))

    assert (outcome.allowed, outcome.reasons) == (False, (DenyReason.GRANT_EXPIRED,))


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (CharacterState.SUSPENDED, DenyReason.CHARACTER_SUSPENDED),
        (CharacterState.OPTED_OUT, DenyReason.CHARACTER_NOT_OPTED_IN),
        (CharacterState.ARCHIVED, DenyReason.CHARACTER_NOT_OPTED_IN),
    ],
)
def test_the_character_decides_before_any_grant(state: CharacterState, expected: DenyReason) -> None:
    generation = _generation((_grant("grt_1"),))
    generation.characters[CHARACTER] = CharacterView(state, HOLDER)

    outcome = _decide(generation)

    assert (outcome.allowed, outcome.reasons, outcome.grant_id) == (False, (expected,), "")


def test_an_archived_licensee_is_refused_first() -> None:
    generation = _generation((_grant("grt_1"),))
    generation.licensees[LICENSEE] = LicenseeView(archived=True, platform="app")
    generation.characters[CHARACTER] = CharacterView(CharacterState.SUSPENDED, HOLDER)

    outcome = _decide(generation)

    assert outcome.reasons == (DenyReason.LICENSEE_ARCHIVED,)


def test_validation_names_every_bad_field_of_the_command() -> None:
    command = AuthorizeCommand(
        ("chr_x", "chr_x"),
        "",
        UseRequest(0, TEEN, categories=(9999,), territory="XX1", duration=(-1, 0)),
        grants=(Envelope(payload_type="application/other"),),
        request_id="not valid!",
    )

    with pytest.raises(InvalidArgument) as raised:
        validate(command)

    fields = {violation.field for violation in raised.value.violations}
    assert {
        "context.use_type",
        "context.categories[0]",
        "context.territory",
        "context.duration",
        "character_ids[0]",
        "character_ids[1]",
        "request_id",
        "grants[0].payload_type",
    } <= fields
