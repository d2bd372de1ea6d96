"""The one authorization decision: a character's state and its candidate grants in, allowed or
denied with reasons out, in one documented order.

The server deciding from its records, the server deciding from grants a request presents, and the
SDK's offline authorizer (`charter.offline`) gather their inputs differently (a database view, a
verified envelope, a held envelope and the revocation log) and then all call `decide`, so the same
facts give the same answer everywhere.

**The order.** For one character:

1. the licensee is archived → ``LICENSEE_ARCHIVED``;
2. the character is suspended → ``CHARACTER_SUSPENDED``; not opted in (opted out, archived or
   unknown) → ``CHARACTER_NOT_OPTED_IN``;
3. no candidate grant → ``NO_GRANT``;
4. each candidate, in the order given (newest first, by issue time), has at most one problem of
   its own, the first of:

   a. ``GRANT_INVALID``: it does not verify (malformed, a bad signature, a revoked key, a key not
      valid at its issue time, another licensee's or character's grant; on the server also a key
      it does not know);
   b. ``GRANT_REVOKED``: revoked;
   c. ``GRANT_SUSPENDED``: suspended;
   d. ``GRANT_NOT_YET_VALID``: the time is before its ``not_before``;
   e. ``GRANT_EXPIRED``: the time is at or after its ``expire_time``;

   a candidate without a problem has its terms evaluated (`charter.terms.CompiledTerms.evaluate`)
   against the use. The first candidate whose terms allow decides (allowed, with its
   obligations). When none does, the reasons are the failed terms of the newest candidate without
   a problem, or else the newest candidate's problem.

**Why this order.** Integrity comes first because nothing a grant claims (its id, its window) can
be trusted before its signature verified by a usable key. The states set by people (revoked,
suspended) come before the clock because they say more: a revoked grant stays unusable whatever
the time, and a licensee told ``GRANT_EXPIRED`` about a revoked grant would ask for a renewal that
will not come. Before this module, the server reported such a grant as ``GRANT_REVOKED`` from its
records but ``GRANT_EXPIRED`` when the grant was presented or decided offline (the verifier
checks the window before the status); now it is ``GRANT_REVOKED`` on every path.

A candidate whose key the decider does not know (`Integrity.UNKNOWN_KEY`) and that is reached
before a candidate that allows makes the character undecidable here (`decide` returns None): the
offline authorizer then asks the server. The server's key ring holds every key it ever had, so it
reports a key it does not know as `Integrity.INVALID` instead. A candidate whose signed claims
carry fields the decider does not know (`Integrity.UNSUPPORTED`: a newer server's terms) is
treated the same way: it may restrict the use in a way the decider cannot evaluate.

`decide` is pure: no clock, no I/O, no locks. The caller passes the time in the `UseContext` and
the window of each candidate as it honours it (the offline authorizer widens it by its clock
skew; the server, on its own clock, does not).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Generic, Protocol, TypeVar

from charter.grants import GrantStatus, Verification
from charter.terms import CompiledTerms, DenyReason, Evaluation, UseContext
from charter.v1 import grant_pb2

__all__ = [
    "GRANT_PROBLEM_ORDER",
    "Candidate",
    "CharacterState",
    "Integrity",
    "Outcome",
    "allowing_by_position",
    "decide",
    "decide_by_position",
    "grant_problem",
    "integrity_of",
]

GRANT_PROBLEM_ORDER: Final = (
    DenyReason.GRANT_INVALID,
    DenyReason.GRANT_REVOKED,
    DenyReason.GRANT_SUSPENDED,
    DenyReason.GRANT_NOT_YET_VALID,
    DenyReason.GRANT_EXPIRED,
)
"""A grant's own problems, in the order they are checked (the first one found is reported)."""


class CharacterState(enum.Enum):
    """What the decider knows of a character's state."""

    OPTED_IN = "opted_in"
    """Its rights holder opted it in: it may be licensed."""
    SUSPENDED = "suspended"
    """Suspended by Charter staff."""
    NOT_OPTED_IN = "not_opted_in"
    """Opted out, archived, or not known to the decider."""


class Integrity(enum.Enum):
    """What checking a grant's envelope found, before its state and its window."""

    VERIFIED = "verified"
    """A signature by a usable key verified and the claims are for this licensee and character."""
    INVALID = "invalid"
    """It does not verify: ``GRANT_INVALID``."""
    UNKNOWN_KEY = "unknown_key"
    """No signature names a key the decider knows: the decider cannot judge it."""
    UNSUPPORTED = "unsupported"
    """A signature verified, but the signed claims or terms carry fields the decider does not know
    (issued by a newer server): the decider cannot judge it."""


class Candidate(Protocol):
    """A grant that may decide a character, as its decider sees it.

    Attributes:
        grant_id: The grant's id (empty when not even that could be read).
        integrity: What checking its envelope found.
        not_before: The earliest time it is honoured (the decider's skew applied).
        expire_time: The time from which it is no longer honoured (the decider's skew applied).
        terms: Its compiled terms; None only for a grant that is not `Integrity.VERIFIED`.
    """

    @property
    def grant_id(self) -> str: ...
    @property
    def integrity(self) -> Integrity: ...
    @property
    def not_before(self) -> datetime: ...
    @property
    def expire_time(self) -> datetime: ...
    @property
    def terms(self) -> CompiledTerms | None: ...


C = TypeVar("C", bound=Candidate)


@dataclass(frozen=True, slots=True, init=False)
class Outcome(Generic[C]):
    """The decision for one character.

    Attributes:
        allowed: Whether the use may go ahead.
        reasons: Why not, in the documented order; empty when allowed.
        candidate: The grant that allowed it, or whose reasons are reported; None when the
            character itself (or the licensee) decided, or there was no grant.
        evaluation: The terms' evaluation of ``candidate`` when its terms were evaluated (the
            obligations when allowed); None otherwise.
    """

    allowed: bool
    reasons: tuple[DenyReason, ...]
    candidate: C | None = None
    evaluation: Evaluation | None = None

    def __init__(
        self,
        allowed: bool,
        reasons: tuple[DenyReason, ...],
        candidate: C | None = None,
        evaluation: Evaluation | None = None,
    ) -> None:
        # Written out rather than generated (as `charter.terms.UseContext`): a frozen dataclass
        # sets each field through object.__setattr__, which made an outcome cost about a fifth of
        # a warm offline decision; the slots' own descriptors set them at half the cost.
        _set_allowed(self, allowed)
        _set_reasons(self, reasons)
        _set_candidate(self, candidate)
        _set_evaluation(self, evaluation)


_OUTCOME_SLOTS: Final[dict[str, Any]] = {name: Outcome.__dict__[name] for name in Outcome.__slots__}
_set_allowed: Final = _OUTCOME_SLOTS["allowed"].__set__
_set_reasons: Final = _OUTCOME_SLOTS["reasons"].__set__
_set_candidate: Final = _OUTCOME_SLOTS["candidate"].__set__
_set_evaluation: Final = _OUTCOME_SLOTS["evaluation"].__set__

_LICENSEE_ARCHIVED: Final[Outcome[Candidate]] = Outcome(False, (DenyReason.LICENSEE_ARCHIVED,))
_SUSPENDED: Final[Outcome[Candidate]] = Outcome(False, (DenyReason.CHARACTER_SUSPENDED,))
_NOT_OPTED_IN: Final[Outcome[Candidate]] = Outcome(False, (DenyReason.CHARACTER_NOT_OPTED_IN,))
_NO_GRANT: Final[Outcome[Candidate]] = Outcome(False, (DenyReason.NO_GRANT,))
_OPTED_IN: Final = CharacterState.OPTED_IN
_VERIFIED, _INVALID, _UNKNOWN_KEY = Integrity.VERIFIED, Integrity.INVALID, Integrity.UNKNOWN_KEY
_UNSUPPORTED: Final = Integrity.UNSUPPORTED
_GRANT_INVALID, _GRANT_REVOKED, _GRANT_SUSPENDED, _GRANT_NOT_YET_VALID, _GRANT_EXPIRED = GRANT_PROBLEM_ORDER
_REVOKED, _SUSPENDED_STATUS = GrantStatus.REVOKED, GrantStatus.SUSPENDED
_TIME_VERDICTS: Final = frozenset(
    {grant_pb2.GRANT_VERDICT_VALID, grant_pb2.GRANT_VERDICT_NOT_YET_VALID, grant_pb2.GRANT_VERDICT_EXPIRED}
)


def grant_problem(candidate: Candidate, status: GrantStatus, now: datetime) -> DenyReason | None:
    """A grant's own problem at ``now``, the first in `GRANT_PROBLEM_ORDER`, or None.

    Args:
        candidate: The grant (its integrity must not be `Integrity.UNKNOWN_KEY` nor
            `Integrity.UNSUPPORTED`).
        status: Its lifecycle state as the decider knows it.
        now: The time of the use.

    Returns:
        ``GRANT_INVALID``, ``GRANT_REVOKED``, ``GRANT_SUSPENDED``, ``GRANT_NOT_YET_VALID`` or
        ``GRANT_EXPIRED``; None when the grant itself is good and its terms decide.
    """
    if candidate.integrity is not _VERIFIED:
        return DenyReason.GRANT_INVALID
    if status is _REVOKED:
        return DenyReason.GRANT_REVOKED
    if status is _SUSPENDED_STATUS:
        return DenyReason.GRANT_SUSPENDED
    if now < candidate.not_before:
        return DenyReason.GRANT_NOT_YET_VALID
    if now >= candidate.expire_time:
        return DenyReason.GRANT_EXPIRED
    return None


def decide(
    *,
    licensee_archived: bool,
    character: CharacterState,
    candidates: Sequence[C],
    status: Callable[[str], GrantStatus | None],
    use: UseContext,
) -> Outcome[C] | None:
    """Decide one character; see the module documentation for the order.

    Args:
        licensee_archived: Whether the licensee is archived.
        character: The character's state.
        candidates: Its candidate grants, newest first (by issue time).
        status: A grant's lifecycle state by grant id, as the decider knows it; None counts as
            ``ACTIVE`` (so that a mapping's ``get`` can serve, without a call of its own).
        use: The use, with the time of the decision.

    Returns:
        The outcome, or None when a candidate whose key the decider does not know (or whose
        claims carry fields it does not know) comes before any candidate that allows (the
        caller must get the answer elsewhere).
    """
    return decide_by_position(licensee_archived, character, candidates, status, use)


def decide_by_position(
    licensee_archived: bool,
    character: CharacterState,
    candidates: Sequence[C],
    status: Callable[[str], GrantStatus | None],
    use: UseContext,
) -> Outcome[C] | None:
    """`decide` with its arguments by position, in the same order: the same decision, for a caller
    on a hot path (a keyword call costs about a fiftieth of a warm offline decision). The arguments
    and the result are `decide`'s.
    """
    found = allowing_by_position(licensee_archived, character, candidates, status, use)
    if found is None or isinstance(found, Outcome):
        return found
    # The candidate that allows; its terms' evaluation is their shared allowing one.
    evaluation = found.terms._allowed  # type: ignore[union-attr]
    kept = _ALLOWED.get(id(found))
    if kept is not None and kept.candidate is found and kept.evaluation is evaluation:
        return kept
    return _allowed(found, evaluation)


def allowing_by_position(
    licensee_archived: bool,
    character: CharacterState,
    candidates: Sequence[C],
    status: Callable[[str], GrantStatus | None],
    use: UseContext,
) -> C | Outcome[C] | None:
    """`decide_by_position` answering an allowed use with the candidate that allows it rather
    than an `Outcome` (the offline authorizer's warm path needs no more: finding the kept outcome
    was about a thirtieth of a warm decision); otherwise its answer, a denying `Outcome` or None.
    The decision itself is this function's: `decide_by_position` only wraps the candidate.
    """
    if licensee_archived or character is not _OPTED_IN or not candidates:
        # Steps 1 to 3: no grant is looked at. The outcome names no candidate, so one shared
        # value serves every candidate type.
        return _refusal(licensee_archived, character)  # type: ignore[return-value]
    now = use.time
    # (Two pairs rather than four names: fewer to set on every decision, most of which allow.)
    reported: tuple[C, Evaluation] | None = None  # the newest candidate without a problem, its evaluation
    first: tuple[C, DenyReason] | None = None  # the newest candidate with a problem, that problem
    for candidate in candidates:
        # `grant_problem`, written out: this loop is most of a warm offline decision.
        integrity = candidate.integrity
        if integrity is _VERIFIED:
            # Only a verified grant's state is looked up: the id of one that does not verify is
            # not to be trusted.
            state = status(candidate.grant_id)
            if state is _REVOKED:
                problem = _GRANT_REVOKED
            elif state is _SUSPENDED_STATUS:
                problem = _GRANT_SUSPENDED
            elif now < candidate.not_before:
                problem = _GRANT_NOT_YET_VALID
            elif now >= candidate.expire_time:
                problem = _GRANT_EXPIRED
            else:
                terms = candidate.terms
                assert terms is not None  # a verified grant has its terms
                evaluation = terms.evaluate_by_position(use)
                if evaluation.allowed:
                    return candidate
                if reported is None:
                    reported = (candidate, evaluation)
                continue
        elif integrity is _UNKNOWN_KEY or integrity is _UNSUPPORTED:
            return None
        else:
            problem = _GRANT_INVALID
        if first is None:
            first = (candidate, problem)
    if reported is not None:
        return Outcome(False, reported[1].reasons, reported[0], reported[1])
    first_candidate, first_problem = first if first is not None else (None, _GRANT_INVALID)
    return Outcome(False, (first_problem,), first_candidate)


# The allowing outcome of a candidate, kept while the same candidate allows with the same
# (shared) evaluation: a caller deciding again and again with the same candidates does not build
# an outcome each time (the offline authorizer now takes `allowing_by_position`'s grant and builds
# none). Keyed by the candidate's id;
# an entry holds its candidate, so while it is kept no other object has that id. Bounded: cleared
# when full (the server's candidates are new per request and only pass through).
_ALLOWED: dict[int, Outcome[Any]] = {}
_ALLOWED_LIMIT: Final = 1024


def _allowed(candidate: C, evaluation: Evaluation) -> Outcome[C]:
    """A new allowing outcome, kept in `_ALLOWED` (the look-up is written out in `decide_by_position`)."""
    outcome = Outcome(True, (), candidate, evaluation)
    if len(_ALLOWED) >= _ALLOWED_LIMIT:
        _ALLOWED.clear()
    _ALLOWED[id(candidate)] = outcome
    return outcome


def _refusal(licensee_archived: bool, character: CharacterState) -> Outcome[Candidate]:
    if licensee_archived:
        return _LICENSEE_ARCHIVED
    if character is CharacterState.SUSPENDED:
        return _SUSPENDED
    return _NOT_OPTED_IN if character is CharacterState.NOT_OPTED_IN else _NO_GRANT


def integrity_of(result: Verification, *, licensee_id: str, character_id: str) -> Integrity:
    """The integrity of a grant from its verification, whatever the time and its state.

    The verifier checks the validity window before the parties, and the state last; `decide`
    checks the state before the window. So a verdict of ``NOT_YET_VALID`` or ``EXPIRED`` still
    counts as verified here when the signed claims name this licensee and character (the window
    and the state are judged by `decide`).

    Args:
        result: The verifier's answer (from `charter.grants.GrantVerifier.verify`, called
            without ``status``).
        licensee_id: The licensee deciding.
        character_id: The character being decided.

    Returns:
        `Integrity.UNKNOWN_KEY` for a key the ring does not know, `Integrity.VERIFIED` when a
        signature verified and the claims are for these parties, else `Integrity.INVALID`.
    """
    verdict = result.verdict
    if verdict == grant_pb2.GRANT_VERDICT_UNKNOWN_KEY:
        return _UNKNOWN_KEY
    claims = result.claims
    if (
        verdict in _TIME_VERDICTS
        and claims is not None
        and claims.licensee_id == licensee_id
        and claims.character_id == character_id
    ):
        return _VERIFIED
    return _INVALID
