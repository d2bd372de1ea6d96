"""When the server decides for an offline authorizer: the held grants the request presents, and
the fail-closed answer when the server cannot be reached."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

from charter.decisions import CharacterDecision, Decision
from charter.offline.held import Held
from charter.terms import DenyReason
from charter.v1.envelope_pb2 import Envelope

MAX_GRANTS_PER_REQUEST: Final = 64
"""The most grant envelopes one ``Authorize`` request may present."""

_UNREACHABLE: Final = (DenyReason.SERVER_UNREACHABLE,)
_CORRUPTED: Final = (DenyReason.CACHE_CORRUPTED,)


def presented(held: Mapping[str, tuple[Held, ...]], ids: tuple[str, ...], prompt: str) -> list[Envelope]:
    """The held grants to present with a request: the declared characters' first, then, when there
    is a prompt (it may name characters that were not declared), every other held grant; at most
    `MAX_GRANTS_PER_REQUEST`."""
    envelopes = [grant.envelope for character_id in ids for grant in held.get(character_id, ())]
    if prompt:
        declared = set(ids)
        envelopes += [
            grant.envelope for character_id, grants in held.items() if character_id not in declared for grant in grants
        ]
    return envelopes[:MAX_GRANTS_PER_REQUEST]


def unreachable(ids: tuple[str, ...], now: datetime, licensee_id: str, *, cache_corrupted: bool) -> Decision:
    """Every declared character denied: ``SERVER_UNREACHABLE``, or ``CACHE_CORRUPTED`` when the
    cache the authorizer started from failed its integrity check."""
    reasons = _CORRUPTED if cache_corrupted else _UNREACHABLE
    return Decision(
        allowed=False,
        characters=tuple(CharacterDecision(character_id, False, reasons) for character_id in ids),
        decide_time=now,
        licensee_id=licensee_id,
        offline=True,
    )
