"""`charter.decide` on its own: the order of checks and of a grant's problems, which candidate
decides or is reported, an unknown key, and `integrity_of` (no gRPC, no database)."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from charter.decide import (
    GRANT_PROBLEM_ORDER,
    CharacterState,
    Integrity,
    Outcome,
    allowing_by_position,
    decide,
    grant_problem,
    integrity_of,
)
from charter.grants import GrantStatus, Verification
from charter.terms import CompiledTerms, DenyReason, UseContext
from charter.v1 import grant_pb2, terms_pb2

NOW = datetime(2030, 6, 1, 12, tzinfo=UTC)
IMAGE = terms_pb2.USE_TYPE_IMAGE_GENERATION
VIDEO = terms_pb2.USE_TYPE_VIDEO_GENERATION
TEEN = terms_pb2.CONTENT_RATING_TEEN
ALLOWS = CompiledTerms.from_terms(
    terms_pb2.Terms(permitted_use_types=[IMAGE], max_content_rating=TEEN, attribution_text="© Studio")
)
VIDEO_ONLY = CompiledTerms.from_terms(terms_pb2.Terms(permitted_use_types=[VIDEO], max_content_rating=TEEN))
USE = UseContext(IMAGE, TEEN, NOW, licensee_id="lic_1")


@dataclass(frozen=True)
class Grant:
    grant_id: str
    integrity: Integrity = Integrity.VERIFIED
    not_before: datetime = NOW - timedelta(days=1)
    expire_time: datetime = NOW + timedelta(days=1)
    terms: CompiledTerms | None = ALLOWS


def statuses(**states: GrantStatus) -> dict[str, GrantStatus]:
    return states


def run(
    candidates: list[Grant],
    states: dict[str, GrantStatus] | None = None,
    *,
    character: CharacterState = CharacterState.OPTED_IN,
    archived: bool = False,
) -> Outcome[Grant] | None:
    known = states or {}
    return decide(
        licensee_archived=archived,
        character=character,
        candidates=candidates,
        status=lambda grant_id: known.get(grant_id, GrantStatus.ACTIVE),
        use=USE,
    )


def test_a_good_grant_allows_with_its_obligations() -> None:
    grant = Grant("g1")

    outcome = run([grant])

    assert outcome is not None
    assert (outcome.allowed, outcome.reasons, outcome.candidate) == (True, (), grant)
    assert outcome.evaluation is not None and outcome.evaluation.obligations is not None
    assert outcome.evaluation.obligations.attribution_text == "© Studio"


@pytest.mark.parametrize(
    ("archived", "character", "candidates", "expected"),
    [
        (True, CharacterState.SUSPENDED, [Grant("g1")], DenyReason.LICENSEE_ARCHIVED),
        (True, CharacterState.OPTED_IN, [], DenyReason.LICENSEE_ARCHIVED),
        (False, CharacterState.SUSPENDED, [Grant("g1")], DenyReason.CHARACTER_SUSPENDED),
        (False, CharacterState.NOT_OPTED_IN, [Grant("g1")], DenyReason.CHARACTER_NOT_OPTED_IN),
        (False, CharacterState.NOT_OPTED_IN, [], DenyReason.CHARACTER_NOT_OPTED_IN),
        (False, CharacterState.OPTED_IN, [], DenyReason.NO_GRANT),
    ],
)
def test_the_licensee_then_the_character_then_a_grant(
    archived: bool, character: CharacterState, candidates: list[Grant], expected: DenyReason
) -> None:
    outcome = run(candidates, character=character, archived=archived)

    assert outcome is not None
    assert (outcome.allowed, outcome.reasons, outcome.candidate) == (False, (expected,), None)


# Every combination of a grant's own facts, and the one problem reported for it.
_INTEGRITIES = (Integrity.VERIFIED, Integrity.INVALID)
_STATES = tuple(GrantStatus)
_WINDOWS = {
    "valid": (NOW - timedelta(days=1), NOW + timedelta(days=1)),
    "not_yet_valid": (NOW + timedelta(seconds=1), NOW + timedelta(days=1)),
    "expired": (NOW - timedelta(days=2), NOW),  # at expire_time: expired
}


def _expected_problem(integrity: Integrity, state: GrantStatus, window: str) -> DenyReason | None:
    """The documented order, written as a table rather than as code."""
    problems = []
    if integrity is Integrity.INVALID:
        problems.append(DenyReason.GRANT_INVALID)
    if state is GrantStatus.REVOKED:
        problems.append(DenyReason.GRANT_REVOKED)
    if state is GrantStatus.SUSPENDED:
        problems.append(DenyReason.GRANT_SUSPENDED)
    if window == "not_yet_valid":
        problems.append(DenyReason.GRANT_NOT_YET_VALID)
    if window == "expired":
        problems.append(DenyReason.GRANT_EXPIRED)
    return min(problems, key=GRANT_PROBLEM_ORDER.index) if problems else None


@pytest.mark.parametrize(
    ("integrity", "state", "window"), list(itertools.product(_INTEGRITIES, _STATES, sorted(_WINDOWS)))
)
def test_a_grant_reports_the_first_of_its_problems(integrity: Integrity, state: GrantStatus, window: str) -> None:
    not_before, expire_time = _WINDOWS[window]
    grant = Grant("g1", integrity, not_before, expire_time, ALLOWS if integrity is Integrity.VERIFIED else None)
    expected = _expected_problem(integrity, state, window)

    outcome = run([grant], {"g1": state})
    problem = grant_problem(grant, state, NOW)

    assert outcome is not None
    assert problem == expected
    if expected is None:
        assert (outcome.allowed, outcome.candidate) == (True, grant)
    else:
        assert (outcome.allowed, outcome.reasons, outcome.candidate) == (False, (expected,), grant)


def test_revoked_and_expired_is_revoked() -> None:
    """The bug this module fixes: the server and the SDK used to disagree on this grant."""
    grant = Grant("g1", not_before=NOW - timedelta(days=9), expire_time=NOW - timedelta(days=1))

    outcome = run([grant], {"g1": GrantStatus.REVOKED})

    assert outcome is not None
    assert outcome.reasons == (DenyReason.GRANT_REVOKED,)


def test_the_first_grant_that_allows_decides_whatever_comes_before() -> None:
    revoked, narrow, good, later = Grant("g4"), Grant("g3", terms=VIDEO_ONLY), Grant("g2"), Grant("g1")

    outcome = run([revoked, narrow, good, later], {"g4": GrantStatus.REVOKED})

    assert outcome is not None
    assert (outcome.allowed, outcome.candidate) == (True, good)


def test_failed_terms_of_the_newest_good_grant_are_reported_over_problems() -> None:
    expired = Grant("g3", expire_time=NOW - timedelta(hours=1))
    narrow = Grant("g2", terms=VIDEO_ONLY)
    also_narrow = Grant("g1", terms=VIDEO_ONLY)

    outcome = run([expired, narrow, also_narrow])

    assert outcome is not None
    assert (outcome.allowed, outcome.reasons, outcome.candidate) == (
        False,
        (DenyReason.USE_TYPE_NOT_PERMITTED,),
        narrow,
    )


def test_without_a_good_grant_the_newest_problem_is_reported() -> None:
    suspended, invalid = Grant("g2"), Grant("g1", Integrity.INVALID, terms=None)

    outcome = run([suspended, invalid], {"g2": GrantStatus.SUSPENDED})

    assert outcome is not None
    assert (outcome.reasons, outcome.candidate) == ((DenyReason.GRANT_SUSPENDED,), suspended)


def test_an_unknown_key_before_an_allowing_grant_cannot_be_decided() -> None:
    unknown, good = Grant("g2", Integrity.UNKNOWN_KEY, terms=None), Grant("g1")

    before = run([unknown, good])
    after = run([good, unknown])
    alone = run([unknown])

    assert before is None
    assert alone is None
    assert after is not None and after.allowed


def test_the_state_of_an_invalid_grant_is_never_asked() -> None:
    asked: list[str] = []

    def status(grant_id: str) -> GrantStatus:
        asked.append(grant_id)
        return GrantStatus.REVOKED

    outcome = decide(
        licensee_archived=False,
        character=CharacterState.OPTED_IN,
        candidates=[Grant("g1", Integrity.INVALID, terms=None)],
        status=status,
        use=USE,
    )

    assert outcome is not None
    assert outcome.reasons == (DenyReason.GRANT_INVALID,)
    assert asked == []


def test_a_state_of_none_counts_as_active() -> None:
    """A mapping's ``get`` may serve as ``status`` (the offline authorizer passes its view's)."""
    grant = Grant("g1")

    def decided(states: dict[str, GrantStatus]) -> Outcome[Grant] | None:
        return decide(
            licensee_archived=False,
            character=CharacterState.OPTED_IN,
            candidates=[grant],
            status=states.get,
            use=USE,
        )

    active, revoked = decided({}), decided({"g1": GrantStatus.REVOKED})

    assert active is not None and (active.allowed, active.candidate) == (True, grant)
    assert revoked is not None and revoked.reasons == (DenyReason.GRANT_REVOKED,)


class Changing:
    """A candidate whose terms change between decisions (a `Candidate` need not be immutable)."""

    def __init__(self, terms: CompiledTerms) -> None:
        self.grant_id = "g1"
        self.integrity = Integrity.VERIFIED
        self.not_before = NOW - timedelta(days=1)
        self.expire_time = NOW + timedelta(days=1)
        self.terms: CompiledTerms | None = terms


def test_an_allowing_outcome_names_this_candidate_and_this_evaluation() -> None:
    """Allowing outcomes are kept per candidate (`decide`'s speed); never one of another
    candidate, equal or not, nor of another evaluation."""
    other_terms = CompiledTerms.from_terms(
        terms_pb2.Terms(permitted_use_types=[IMAGE], max_content_rating=TEEN, attribution_text="© Other")
    )
    one, equal = Grant("g1"), Grant("g1")
    changing = Changing(ALLOWS)

    first, again, other = run([one]), run([one]), run([equal])
    before = decide(
        licensee_archived=False, character=CharacterState.OPTED_IN, candidates=[changing], status={}.get, use=USE
    )
    changing.terms = other_terms
    after = decide(
        licensee_archived=False, character=CharacterState.OPTED_IN, candidates=[changing], status={}.get, use=USE
    )

    assert first is not None and again is not None and other is not None
    assert first.candidate is one and again.candidate is one and other.candidate is equal
    assert first == again == Outcome(True, (), one, ALLOWS.evaluate(USE))
    assert before is not None and after is not None
    assert before.evaluation is not None and before.evaluation.obligations is not None
    assert after.evaluation is not None and after.evaluation.obligations is not None
    assert before.evaluation.obligations.attribution_text == "© Studio"
    assert after.evaluation.obligations.attribution_text == "© Other"


def test_an_outcome_is_frozen() -> None:
    outcome = run([Grant("g1")])

    assert outcome is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.allowed = False  # type: ignore[misc]
    assert [field.name for field in dataclasses.fields(Outcome)] == ["allowed", "reasons", "candidate", "evaluation"]
    assert Outcome(False, (DenyReason.NO_GRANT,)) == Outcome(False, (DenyReason.NO_GRANT,), None, None)


def _claims(licensee_id: str = "lic_1", character_id: str = "chr_1") -> grant_pb2.GrantClaims:
    return grant_pb2.GrantClaims(grant_id="g1", licensee_id=licensee_id, character_id=character_id)


@pytest.mark.parametrize(
    ("verdict", "claims", "expected"),
    [
        (grant_pb2.GRANT_VERDICT_VALID, _claims(), Integrity.VERIFIED),
        (grant_pb2.GRANT_VERDICT_EXPIRED, _claims(), Integrity.VERIFIED),
        (grant_pb2.GRANT_VERDICT_NOT_YET_VALID, _claims(), Integrity.VERIFIED),
        (grant_pb2.GRANT_VERDICT_EXPIRED, _claims(licensee_id="lic_2"), Integrity.INVALID),
        (grant_pb2.GRANT_VERDICT_NOT_YET_VALID, _claims(character_id="chr_2"), Integrity.INVALID),
        (grant_pb2.GRANT_VERDICT_WRONG_LICENSEE, _claims(licensee_id="lic_2"), Integrity.INVALID),
        (grant_pb2.GRANT_VERDICT_REVOKED, _claims(), Integrity.INVALID),
        (grant_pb2.GRANT_VERDICT_KEY_REVOKED, None, Integrity.INVALID),
        (grant_pb2.GRANT_VERDICT_SIGNATURE_INVALID, None, Integrity.INVALID),
        (grant_pb2.GRANT_VERDICT_KEY_NOT_VALID_AT_ISSUE, _claims(), Integrity.INVALID),
        (grant_pb2.GRANT_VERDICT_MALFORMED, None, Integrity.INVALID),
        (grant_pb2.GRANT_VERDICT_UNKNOWN_KEY, None, Integrity.UNKNOWN_KEY),
    ],
)
def test_integrity_of_a_verification(verdict: int, claims: grant_pb2.GrantClaims | None, expected: Integrity) -> None:
    found = integrity_of(Verification(verdict, claims, ""), licensee_id="lic_1", character_id="chr_1")

    assert found is expected


@pytest.mark.parametrize(
    "candidates",
    [
        [Grant("g1")],
        [Grant("g1", terms=VIDEO_ONLY), Grant("g2")],
        [Grant("g1", terms=VIDEO_ONLY)],
        [Grant("g1", integrity=Integrity.INVALID), Grant("g2", expire_time=NOW)],
        [Grant("g1", integrity=Integrity.UNKNOWN_KEY), Grant("g2")],
        [],
    ],
    ids=["allows", "second-allows", "terms-deny", "problems", "unknown-key", "no-grant"],
)
def test_allowing_by_position_answers_an_allowed_use_with_its_grant(candidates: list[Grant]) -> None:
    """The offline authorizer's warm path takes the grant that allows without an `Outcome`; every
    other answer is `decide`'s own."""
    decided = run(candidates)
    found = allowing_by_position(False, CharacterState.OPTED_IN, candidates, {}.get, USE)

    if decided is not None and decided.allowed:
        assert found is decided.candidate
        assert decided.evaluation is ALLOWS.evaluate(USE)
    else:
        assert found == decided
        assert found is None or isinstance(found, Outcome)
