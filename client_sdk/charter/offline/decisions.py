"""One character decided offline: the held grants checked against the ring, then `charter.decide`
with what the view knows; or, when the server must decide, the reason to deny with if it cannot
be reached."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final

from charter.decide import CharacterState, Integrity, Outcome, allowing_by_position
from charter.decisions import CharacterDecision
from charter.grants import KeyRing
from charter.offline.held import CharacterGrants, Checked, Held
from charter.offline.revocations import RevocationView
from charter.terms import DenyReason, UseContext

_OPTED_IN: Final = CharacterState.OPTED_IN
_SUSPENDED: Final = CharacterState.SUSPENDED
_NOT_OPTED_IN: Final = CharacterState.NOT_OPTED_IN
_UNREACHABLE: Final = DenyReason.SERVER_UNREACHABLE
_UNKNOWN_KEY: Final = DenyReason.UNKNOWN_KEY
_LEASE_EXPIRED: Final = DenyReason.LEASE_EXPIRED
_UNSUPPORTED: Final = Integrity.UNSUPPORTED
_UNKNOWN_KEY_INTEGRITY: Final = Integrity.UNKNOWN_KEY
_NO_REASONS: Final[tuple[DenyReason, ...]] = ()


def decide_offline(
    character_id: str,
    context: UseContext,
    held: CharacterGrants | None,
    ring: KeyRing | None,
    view: RevocationView,
    licensee_archived: bool,
    check: Callable[[Held, KeyRing, datetime], Checked],
    spend: Callable[[str, str], bool] | None = None,
    floor: CharacterState = _OPTED_IN,
) -> CharacterDecision | DenyReason:
    """Decide a character from the held grants and the view, or say why the server must.

    The server decides when no grant is held for the character (it knows whether the character
    exists and is opted in), before the first key set, when a grant whose key the ring does not
    know, or whose signed claims carry fields this SDK does not know, comes before the one that
    would allow (`charter.decide`), and when the grant that allows
    has a quota or a cap, unless ``spend`` spends a use of a quota lease for it.

    Args:
        character_id: The character.
        context: The use, with the time of the decision.
        held: The grants held for the character, newest first.
        ring: The key ring.
        view: The revocation view.
        licensee_archived: Whether the licensee is archived.
        check: Verifies a held grant against a ring (when its last check was against another).
        spend: Spends one leased use of (character, grant); whether there was one.
        floor: The character's state in the registry snapshot, when there is one: the stricter
            of it and the view's decides (they agree once both are current).

    Returns:
        The decision (shared objects: read-only); or, when the server must decide, the reason to
        deny with if it cannot be reached: ``UNKNOWN_KEY`` (a key the ring does not know),
        ``LEASE_EXPIRED`` (a quota or cap, and no leased use to spend), else ``SERVER_UNREACHABLE``
        (also for a grant with fields this SDK does not know).
    """
    suspended = view.suspended.get(character_id)
    if suspended is not None or floor is _SUSPENDED:
        state = _SUSPENDED
    elif character_id in view.withdrawn or floor is _NOT_OPTED_IN:
        state = _NOT_OPTED_IN
    else:
        state = _OPTED_IN
    candidates: tuple[Checked, ...] = ()
    if state is _OPTED_IN:  # a character suspended or not opted in is denied whatever grants are held
        if held is None or ring is None:  # (a character is held with one grant at least)
            return _UNREACHABLE
        candidates = held.candidates
        if not candidates or candidates[0].ring is not ring:  # all against one ring, or none yet
            candidates = held.against(ring, context.time, check)
    # `status`: the view's `dict.get` (None: active), `RevocationView.status` without its call.
    found = allowing_by_position(licensee_archived, state, candidates, view.status_of, context)
    if found is None and _unsupported_first(candidates):
        return _UNREACHABLE  # (only the server can judge a grant with fields this SDK does not know)
    return answer(character_id, found, suspended, spend)


def _unsupported_first(candidates: tuple[Checked, ...]) -> bool:
    """Whether the grant that made `charter.decide` give up (the first it could not judge) has
    claims with fields this SDK does not know, rather than a key the ring does not know."""
    for candidate in candidates:
        if candidate.integrity is _UNSUPPORTED:
            return True
        if candidate.integrity is _UNKNOWN_KEY_INTEGRITY:
            return False
    return False


def answer(
    character_id: str,
    found: Checked | Outcome[Checked] | None,
    suspended: CharacterDecision | None = None,
    spend: Callable[[str, str], bool] | None = None,
) -> CharacterDecision | DenyReason:
    """The offline answer for a character from what `charter.decide` answered (see `decide_offline`).

    Args:
        character_id: The character.
        found: What `charter.decide.allowing_by_position` answered for it: the grant that allows,
            or the outcome that denies (or None).
        suspended: The view's denial of the character when staff suspended it.
        spend: Spends one leased use of (character, grant); whether there was one.

    Returns:
        As `decide_offline`.
    """
    if found is None:
        return _UNKNOWN_KEY  # a key the ring does not know
    if type(found) is Checked:  # allowed by this grant (no `Outcome` is made for it)
        chosen: Checked | None = found
        allowed, reasons = True, _NO_REASONS
    else:
        chosen, allowed, reasons = found.candidate, found.allowed, found.reasons
    if chosen is None:
        return suspended or CharacterDecision(character_id, allowed=False, reasons=reasons)
    if allowed:
        # Quotas and caps are counted by the server: offline only with a use it leased.
        if chosen.quota and (spend is None or not spend(character_id, chosen.grant_id)):
            return _UNREACHABLE if spend is None else _LEASE_EXPIRED
        return chosen.allow or _UNREACHABLE  # (an allowing grant always has its decision made)
    return chosen.denial(reasons)
