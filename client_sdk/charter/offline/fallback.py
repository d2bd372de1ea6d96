"""When the server decides for an offline authorizer: the held grants the request presents, and
the fail-closed answer when the server cannot be reached."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from charter.decisions import CharacterDecision, Decision
from charter.errors import DeadlineExceededError, UnavailableError
from charter.offline.background import log
from charter.offline.held import Held
from charter.terms import DenyReason
from charter.v1.envelope_pb2 import Envelope

if TYPE_CHECKING:
    from charter.client import Client

MAX_GRANTS_PER_REQUEST: Final = 64
"""The most grant envelopes one ``Authorize`` request may present."""

_UNREACHABLE: Final = (DenyReason.SERVER_UNREACHABLE,)


def ask_server(
    client: Client,
    held: Mapping[str, Iterable[Held]],
    ids: tuple[str, ...],
    prompt: str,
    now: datetime,
    licensee_id: str,
    obstacle: tuple[str, DenyReason],
    **use: Any,
) -> Decision:
    """The server's decision, with the held grants presented; `unreachable` when it cannot be
    reached (``UNAVAILABLE`` or ``DEADLINE_EXCEEDED``: any other failure raises)."""
    try:
        return client.authorize(character_ids=ids, prompt=prompt, grants=presented(held, ids, prompt), **use)
    except (UnavailableError, DeadlineExceededError) as error:
        log.warning("charter.offline: the server cannot be reached (%s); denying", error.code.name)
    return unreachable(ids, now, licensee_id, obstacle)


def presented(held: Mapping[str, Iterable[Held]], ids: tuple[str, ...], prompt: str) -> list[Envelope]:
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


def unreachable(ids: tuple[str, ...], now: datetime, licensee_id: str, obstacle: tuple[str, DenyReason]) -> Decision:
    """Every declared character denied because the server could not be reached: with the reason
    it could not be decided offline (``obstacle``: for one character, or for all when its
    character is ""), the others with ``SERVER_UNREACHABLE``. With no character declared (a prompt
    alone) the reason is the request's own, so that the caller still learns why."""
    who, why = obstacle
    return Decision(
        allowed=False,
        characters=tuple(
            CharacterDecision(character_id, False, (why,) if who in ("", character_id) else _UNREACHABLE)
            for character_id in ids
        ),
        decide_time=now,
        licensee_id=licensee_id,
        offline=True,
        request_reasons=() if ids else (why,),
    )
