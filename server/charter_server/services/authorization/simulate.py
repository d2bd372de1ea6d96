"""``SimulateUse``: what ``Authorize`` would decide, optionally under proposed terms, with nothing
counted, signed or recorded.

The decision is the server's own decision step (``decision.Decider``, which calls
`charter.decide`), run over a private generation built for this one question from a single read
transaction, never over the shared view (so a proposal can never leak into a real decision):

* **with a licensee**: the licensee's grants of each character on record (as ``Authorize`` loads
  them), their states, windows and keys as they are; for the proposed character, each grant's
  terms are replaced by the proposed terms (as if the grants were issued again under them);
* **without a licensee**: one assumed grant per character, valid and active, under the
  character's terms in force (or the proposed terms): the answer is what the terms themselves
  decide for this use. Terms that name licensees or platforms then fail those terms (no licensee,
  no platform), which tells a rights holder the use is open only to those named.

Quotas are not looked at (nothing is counted): an allowed answer means "allowed unless a quota is
used up". A rights holder reaches only its own characters: every declared character and the
proposed one must be its own (``PERMISSION_DENIED`` otherwise, whether the character exists or
not), and of the characters the prompt names only its own are decided (the detections are
reported whole, as ``ScreenPrompt`` reports them to everyone).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from charter.terms import CompiledTerms
from charter.v1 import terms_pb2

from charter_server.domain import ids
from charter_server.domain.clock import Clock
from charter_server.domain.errors import InvalidArgument, NotFound, PermissionDenied
from charter_server.domain.models import (
    Character,
    CharacterState,
    Detection,
    GrantRecord,
    GrantState,
    LifecycleState,
    Principal,
    Role,
)
from charter_server.services.authorization.command import UseRequest
from charter_server.services.authorization.decision import CharacterOutcome, Decider
from charter_server.services.authorization.validation import MAX_CHARACTERS, validate_use
from charter_server.services.authorization.view import Generation, GrantView, LicenseeView, view_of
from charter_server.services.keys import build_ring
from charter_server.services.ownership import not_owned, require_generator_licensee
from charter_server.services.screening import MAX_PROMPT_LENGTH, PromptScreen
from charter_server.services.terms_rules import check_terms
from charter_server.services.validation import Checker
from charter_server.storage.database import Database

_RECENTLY_EXPIRED = timedelta(days=30)  # as the view: expired grants answer GRANT_EXPIRED, not NO_GRANT
_ALWAYS = (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))


@dataclass(frozen=True, slots=True)
class ProposedTerms:
    """Terms proposed for one character.

    Attributes:
        character_id: The character.
        terms: The terms, unvalidated.
    """

    character_id: str
    terms: terms_pb2.Terms


@dataclass(frozen=True, slots=True)
class SimulateCommand:
    """One ``SimulateUse`` request.

    Attributes:
        character_ids: The declared characters, in the order given.
        prompt: The prompt ("" when none).
        use: The use context, or None when the request has none (invalid).
        licensee_id: The licensee whose grants decide ("" when none).
        proposed: Terms proposed for one character, or None.
    """

    character_ids: tuple[str, ...]
    prompt: str
    use: UseRequest | None
    licensee_id: str = ""
    proposed: ProposedTerms | None = None


@dataclass(frozen=True, slots=True)
class SimulateResult:
    """The answer: the outcomes in order (declared, then detected), the detections, and for whom."""

    allowed: bool
    outcomes: list[CharacterOutcome]
    detections: list[Detection]
    licensee_id: str
    decide_time: datetime
    proposed_character_id: str = ""


class UseSimulator:
    """Answers ``SimulateUse``; see the module documentation."""

    def __init__(self, db: Database, clock: Clock, screen: PromptScreen, decider: Decider) -> None:
        self._db = db
        self._clock = clock
        self._screen = screen
        self._decider = decider

    def simulate(self, principal: Principal, command: SimulateCommand) -> SimulateResult:
        """Decide the request as ``Authorize`` would, counting and signing nothing.

        Raises:
            PermissionDenied: The role may not simulate, a generator names another licensee, or a
                rights holder names a character that is not its own (or does not exist).
            InvalidArgument: A field is invalid (each one named), or a declared character does not exist.
            NotFound: The licensee, or (for staff) the proposed character, does not exist.
        """
        # Every field first (a malformed id is invalid whoever asks), then whose it is.
        _validate(command)
        licensee_id = _licensee_for(principal, command.licensee_id)
        use = command.use
        assert use is not None  # validated
        proposed = command.proposed
        named = list(command.character_ids)
        if proposed is not None and proposed.character_id not in named:
            named.append(proposed.character_id)
        detections = self._screen.screen(command.prompt) if command.prompt.strip() else []
        now = self._clock.now()
        with self._db.uow() as uow:
            characters = uow.characters.get_many(named)
            _check_named(principal, command, characters)
            order = dict.fromkeys(named, True)
            detected_ids = [d.character_id for d in detections if not d.ambiguous and d.character_id not in order]
            characters.update(uow.characters.get_many(detected_ids) if detected_ids else {})
            for character_id in detected_ids:
                character = characters.get(character_id)
                if principal.role is not Role.RIGHTS_HOLDER or (
                    character is not None and character.rights_holder_id == principal.rights_holder_id
                ):
                    order.setdefault(character_id, False)
            if licensee_id:
                licensee = uow.licensees.get(licensee_id)
                if licensee is None:
                    raise NotFound("no such licensee", reason="LICENSEE_NOT_FOUND")
                records = uow.authz.grants_for(licensee_id, list(order), now - _RECENTLY_EXPIRED)
                licensee_view = LicenseeView(
                    archived=licensee.state is LifecycleState.ARCHIVED, platform=licensee.platform
                )
                terms_in_force: dict[str, terms_pb2.Terms] = {}
            else:
                records = []
                licensee_view = LicenseeView(archived=False, platform="")
                terms_in_force = {
                    cid: terms
                    for cid, character in characters.items()
                    if cid in order and character.state is CharacterState.OPTED_IN
                    for terms in [uow.terms.get(cid, character.terms_version)]
                    if terms is not None
                }
            ring = build_ring(uow.signing_keys.all())
        generation = Generation(0, 0.0, 0.0)  # private to this question: never published
        generation.ring = ring
        generation.licensees[licensee_id] = licensee_view
        for character_id, character in characters.items():
            generation.characters[character_id] = view_of(character)
        compiled = CompiledTerms.from_terms(proposed.terms) if proposed is not None else None
        grants: dict[str, list[GrantView]] = {cid: [] for cid in order}
        for record in records:
            grants[record.character_id].append(_grant_view(record, compiled, proposed))
        for character_id, terms in terms_in_force.items():
            chosen = compiled if proposed is not None and proposed.character_id == character_id else None
            assumed = chosen or CompiledTerms.from_terms(terms)
            version = 0 if chosen is not None else characters[character_id].terms_version
            grants[character_id].append(_assumed(assumed, version))
        for character_id, views in grants.items():
            generation.grants[(licensee_id, character_id)] = tuple(views)
        detected = {d.character_id for d in detections if not d.ambiguous or d.character_id in order}
        outcomes = self._decider.decide(generation, licensee_id, order, detected, [], use, now)
        return SimulateResult(
            allowed=all(o.allowed for o in outcomes),
            outcomes=outcomes,
            detections=detections,
            licensee_id=licensee_id,
            decide_time=now,
            proposed_character_id=proposed.character_id if proposed is not None else "",
        )


def _licensee_for(principal: Principal, requested: str) -> str:
    """The licensee decided for; the role is checked before anything is looked up."""
    role = principal.role
    if role is Role.GENERATOR:
        if not principal.licensee_id:
            raise PermissionDenied("only generator keys bound to a licensee may simulate", reason="ROLE_NOT_PERMITTED")
        if requested:
            require_generator_licensee(principal, requested)
        return principal.licensee_id
    if role in (Role.ADMIN, Role.AUDITOR, Role.RIGHTS_HOLDER):
        return requested
    raise PermissionDenied("this role may not simulate uses", reason="ROLE_NOT_PERMITTED")


def _validate(command: SimulateCommand) -> None:
    checker = Checker()
    if command.use is None:
        checker.add("context", "is required")
    else:
        validate_use(checker, command.use)
    if len(command.character_ids) > MAX_CHARACTERS:
        checker.add("character_ids", f"must hold at most {MAX_CHARACTERS} ids")
    else:
        unique: set[str] = set()
        for i, character_id in enumerate(command.character_ids):
            if not ids.is_valid("character", character_id):
                checker.add(f"character_ids[{i}]", "must be a character id (chr_ and 32 hex digits)")
            elif character_id in unique:
                checker.add(f"character_ids[{i}]", "is a duplicate")
            unique.add(character_id)
    if len(command.prompt) > MAX_PROMPT_LENGTH:
        checker.add("prompt", f"must be at most {MAX_PROMPT_LENGTH} characters")
    if command.licensee_id and not ids.is_valid("licensee", command.licensee_id):
        checker.add("licensee_id", "must be a licensee id (lic_ and 32 hex digits)")
    proposed = command.proposed
    if proposed is not None:
        if not ids.is_valid("character", proposed.character_id):
            checker.add("proposed.character_id", "must be a character id (chr_ and 32 hex digits)")
        check_terms(checker, proposed.terms, "proposed.terms", character_id=proposed.character_id)
    elif not command.character_ids and not command.prompt.strip():
        checker.add("character_ids", "at least one of character_ids, prompt and proposed is required")
    checker.done()


def _check_named(principal: Principal, command: SimulateCommand, characters: dict[str, Character]) -> None:
    """A rights holder names only its own characters (existence not revealed); for staff, a declared
    character that does not exist is invalid (as in ``Authorize``) and a proposed one not found."""
    if principal.role is Role.RIGHTS_HOLDER:
        for character_id in (*command.character_ids, *([command.proposed.character_id] if command.proposed else [])):
            character = characters.get(character_id)
            if character is None or character.rights_holder_id != principal.rights_holder_id:
                raise not_owned()
        return
    for i, character_id in enumerate(command.character_ids):
        if character_id not in characters:
            raise InvalidArgument.one(f"character_ids[{i}]", "no such character")
    if command.proposed is not None and command.proposed.character_id not in characters:
        raise NotFound("no such character", reason="CHARACTER_NOT_FOUND")


def _grant_view(record: GrantRecord, proposed: CompiledTerms | None, proposal: ProposedTerms | None) -> GrantView:
    replaced = proposed is not None and proposal is not None and proposal.character_id == record.character_id
    terms = (
        proposed
        if replaced and proposed is not None
        else CompiledTerms.from_terms(terms_pb2.Terms.FromString(record.terms))
    )
    return GrantView(
        id=record.id,
        state=record.state,
        not_before=record.not_before,
        expire_time=record.expire_time,
        terms_version=0 if replaced else record.terms_version,
        signing_key_id=record.signing_key_id,
        terms=terms,
        max_uses=record.max_uses,
    )


def _assumed(terms: CompiledTerms, version: int) -> GrantView:
    """A grant assumed for the question "what do these terms decide": valid, active, no key."""
    return GrantView(
        id="",
        state=GrantState.ACTIVE,
        not_before=_ALWAYS[0],
        expire_time=_ALWAYS[1],
        terms_version=version,
        signing_key_id="",
        terms=terms,
        max_uses=None,
    )


__all__ = ["ProposedTerms", "SimulateCommand", "SimulateResult", "UseSimulator"]
