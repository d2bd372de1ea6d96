"""Deciding each character of a request with `charter.decide`, from the in-memory view.

This module only gathers the inputs, the same way for both sources of candidate grants:

* **from records**: the licensee's grants of the character in the view, newest first; a grant
  signed by a key revoked since is `Integrity.INVALID`; its state is the one on record;
* **presented**: the envelopes the request presents for the character, newest first by their
  claimed issue time, each verified with the shared verifier (`charter.grants`) and judged by
  `charter.decide.integrity_of`; a verified grant's window, terms and state are the ones on record
  (the server decides on its own clock, without the skew a client's verification allows), and a
  grant this server signed but has no record of for this licensee counts as revoked.

Then `charter.decide.decide` answers, in its documented order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from charter.decide import CharacterState as DecideCharacter
from charter.decide import Integrity, decide, integrity_of
from charter.grants import GrantStatus, GrantVerifier, KeyRing
from charter.terms import CompiledTerms, DenyReason, Evaluation, UseContext
from charter.v1.envelope_pb2 import Envelope

from charter_server.domain.models import CharacterState, GrantState
from charter_server.services.authorization.command import UseRequest
from charter_server.services.authorization.validation import Presented
from charter_server.services.authorization.view import CharacterView, Generation, GrantView

_STATUS = {
    GrantState.ACTIVE: GrantStatus.ACTIVE,
    GrantState.SUSPENDED: GrantStatus.SUSPENDED,
    GrantState.REVOKED: GrantStatus.REVOKED,
}
_CHARACTER = {
    CharacterState.OPTED_IN: DecideCharacter.OPTED_IN,
    CharacterState.SUSPENDED: DecideCharacter.SUSPENDED,
    CharacterState.OPTED_OUT: DecideCharacter.NOT_OPTED_IN,
    CharacterState.ARCHIVED: DecideCharacter.NOT_OPTED_IN,
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A grant that may decide a character (a `charter.decide.Candidate`), and its record if any."""

    grant_id: str
    integrity: Integrity
    not_before: datetime
    expire_time: datetime
    terms: CompiledTerms | None
    grant: GrantView | None


@dataclass(slots=True)
class CharacterOutcome:
    """What was decided for one character of a request (quotas may still turn it into a denial)."""

    character_id: str
    declared: bool
    detected: bool
    allowed: bool = False
    reasons: tuple[DenyReason, ...] = ()
    grant: GrantView | None = None
    grant_id: str = ""
    rights_holder_id: str = ""
    evaluation: Evaluation | None = None


class Decider:
    """Decides the characters of a request from one generation of the view."""

    def __init__(self, verifier: GrantVerifier) -> None:
        self._verifier = verifier

    def decide(
        self,
        generation: Generation,
        licensee_id: str,
        order: dict[str, bool],
        detected: set[str],
        presented: Sequence[Presented],
        use: UseRequest,
        now: datetime,
    ) -> list[CharacterOutcome]:
        """Decide every character of ``order`` (character id → declared), in that order."""
        licensee = generation.licensees[licensee_id]
        ring = generation.ring
        assert ring is not None
        everyone = frozenset(order)
        presented_by_character: dict[str, list[Presented]] = {}
        for grant in sorted(presented, key=_issued, reverse=True):  # newest first (stable), as offline
            if grant.character_id in everyone:
                presented_by_character.setdefault(grant.character_id, []).append(grant)
        duration = 0.0 if use.duration is None else use.duration[0] + use.duration[1] / 1e9
        outcomes = []
        for character_id, declared in order.items():
            outcome = CharacterOutcome(character_id, declared=declared, detected=character_id in detected)
            outcomes.append(outcome)
            character = generation.characters.get(character_id)
            if character is not None:
                outcome.rights_holder_id = character.rights_holder_id
            state = _character_state(character)
            stored = generation.grants.get((licensee_id, character_id), ())
            candidates: list[Candidate] = []
            # The licensee and the character come first (charter.decide): no grant is verified for nothing.
            if not licensee.archived and state is DecideCharacter.OPTED_IN:
                if character_id in presented_by_character:
                    candidates = [
                        self._presented(grant.envelope, licensee_id, character_id, stored, ring, now)
                        for grant in presented_by_character[character_id]
                    ]
                else:
                    candidates = [_from_record(grant, ring) for grant in stored]
            states = {grant.id: _STATUS[grant.state] for grant in stored}
            context = UseContext(
                use.use_type,
                use.content_rating,
                now,
                categories=use.categories,
                territory=use.territory,
                platform=licensee.platform,
                licensee_id=licensee_id,
                commercial=use.commercial,
                duration_seconds=duration,
                co_characters=everyone - {character_id},
            )
            decided = decide(
                licensee_archived=licensee.archived,
                character=state,
                candidates=candidates,
                status=_status(states),
                use=context,
            )
            # The server's ring holds every key it had: no candidate has an unknown key.
            assert decided is not None
            outcome.allowed, outcome.reasons, outcome.evaluation = decided.allowed, decided.reasons, decided.evaluation
            if decided.candidate is not None:
                outcome.grant, outcome.grant_id = decided.candidate.grant, decided.candidate.grant_id
        return outcomes

    def _presented(
        self,
        envelope: Envelope,
        licensee_id: str,
        character_id: str,
        stored: tuple[GrantView, ...],
        ring: KeyRing,
        now: datetime,
    ) -> Candidate:
        result = self._verifier.verify(envelope, keys=ring, licensee_id=licensee_id, character_id=character_id, now=now)
        claims = result.claims
        integrity = integrity_of(result, licensee_id=licensee_id, character_id=character_id)
        if integrity is not Integrity.VERIFIED or claims is None:
            # The server knows every key it ever had: one it does not know signed nothing.
            grant_id = claims.grant_id if claims is not None else ""
            return Candidate(grant_id, Integrity.INVALID, _EPOCH, _EPOCH, None, None)
        grant = next((g for g in stored if g.id == claims.grant_id), None)
        if grant is None:  # not on record for this licensee: `status` reports it revoked
            return Candidate(claims.grant_id, integrity, _EPOCH, _EPOCH, None, None)
        # The record's window and terms, judged on the server's own clock.
        return _from_record(grant, ring)


def _from_record(grant: GrantView, ring: KeyRing) -> Candidate:
    # A grant signed by a key revoked since verifies nothing.
    integrity = Integrity.INVALID if grant.signing_key_id in ring.revoked else Integrity.VERIFIED
    return Candidate(grant.id, integrity, grant.not_before, grant.expire_time, grant.terms, grant)


def _character_state(character: CharacterView | None) -> DecideCharacter:
    return DecideCharacter.NOT_OPTED_IN if character is None else _CHARACTER[character.state]


def _issued(grant: Presented) -> tuple[int, int]:
    return grant.issued


def _status(states: dict[str, GrantStatus]) -> Callable[[str], GrantStatus]:
    """Grant states by id; a grant this server signed but has no record of (for this licensee)
    is not honoured."""

    def status(grant_id: str) -> GrantStatus:
        return states.get(grant_id, GrantStatus.REVOKED)

    return status
