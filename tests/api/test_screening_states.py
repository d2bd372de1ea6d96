"""A character named in a prompt is caught and decided in every state it can be in, for good.

Archiving once removed a character from the screening index, so a prompt naming an archived,
never-opted-in character was allowed with nothing detected. Every state, and every way of
reaching it, is screened and decided here through Authorize with the character only named in
the prompt (never declared), on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from charter.screen import ScreenIndex
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import catalog_service_pb2 as catalog_pb
from charter.v1 import decision_pb2, terms_pb2
from charter_server.app import CharterServer

from .character_helpers import Character, Holder, create, mask, new_holder, opt_in
from .grant_helpers import Stubs, issue, stubs
from .helpers import auth

NOT_OPTED_IN = decision_pb2.DENY_REASON_CHARACTER_NOT_OPTED_IN
SUSPENDED = decision_pb2.DENY_REASON_CHARACTER_SUSPENDED


@pytest.fixture(scope="module")
def api(channel: grpc.Channel) -> Stubs:
    return stubs(channel)


@pytest.fixture(scope="module")
def holder(api: Stubs, keys: Any) -> Holder:
    return new_holder(api.catalog, api.access, keys.admin)


def _archive(api: Stubs, holder: Holder, keys: Any, character_id: str) -> None:
    api.catalog.ArchiveCharacter(catalog_pb.ArchiveCharacterRequest(id=character_id), metadata=auth(holder.secret))


def _suspend(api: Stubs, holder: Holder, keys: Any, character_id: str) -> None:
    request = catalog_pb.SuspendCharacterRequest(id=character_id, reason="review")
    api.catalog.SuspendCharacter(request, metadata=auth(keys.admin))


def _opt_out(api: Stubs, holder: Holder, keys: Any, character_id: str) -> None:
    api.catalog.OptOut(catalog_pb.OptOutRequest(character_id=character_id), metadata=auth(holder.secret))


def _reinstate(api: Stubs, holder: Holder, keys: Any, character_id: str) -> None:
    api.catalog.ReinstateCharacter(catalog_pb.ReinstateCharacterRequest(id=character_id), metadata=auth(keys.admin))


Step = Callable[[Stubs, Holder, Any, str], None]

# (how the character gets to its state, whether it was ever opted in with a grant, the decision).
PATHS: dict[str, tuple[tuple[Step, ...], bool, tuple[bool, list[int]]]] = {
    "never opted in": ((), False, (False, [NOT_OPTED_IN])),
    "opted in with a grant": ((), True, (True, [])),
    "opted out": ((_opt_out,), True, (False, [NOT_OPTED_IN])),
    "suspended": ((_suspend,), True, (False, [SUSPENDED])),
    "suspended, reinstated": ((_suspend, _reinstate), True, (True, [])),
    "archived, never opted in": ((_archive,), False, (False, [NOT_OPTED_IN])),
    "archived after opting in": ((_archive,), True, (False, [NOT_OPTED_IN])),
    "archived while suspended": ((_suspend, _archive), True, (False, [NOT_OPTED_IN])),
    "opted out, then archived": ((_opt_out, _archive), True, (False, [NOT_OPTED_IN])),
}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_a_character_named_only_in_the_prompt_is_detected_and_decided_in_every_state(
    server: CharterServer, api: Stubs, keys: Any, clock: Any, holder: Holder, path: str
) -> None:
    steps, licensed, expected = PATHS[path]
    character = create(api.catalog, holder.secret, holder.id)
    if licensed:
        opt_in(api.catalog, holder.secret, character.id)
        issue(api, keys.admin, clock, character.id, keys.licensee_id)
    for step in steps:
        step(api, holder, keys, character.id)

    # Rebuilt from the catalogue, as every replica does on its next refresh (and at start).
    server.services.screen.refresh_now()
    prompt = f"a poster of {character.canonical_name} at dusk"
    screened = api.authz.ScreenPrompt(az.ScreenPromptRequest(prompt=prompt), metadata=auth(keys.generator))
    request = az.AuthorizeRequest(
        prompt=prompt,
        context=decision_pb2.UseContext(
            use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION, content_rating=terms_pb2.CONTENT_RATING_ALL_AGES
        ),
    )
    response = api.authz.Authorize(request, metadata=auth(keys.generator))

    # Other modules' characters share the session's catalogue; only this one is looked at.
    assert [d.character_id for d in screened.detections if d.character_id == character.id] == [character.id]
    assert [d.character_id for d in response.detections if d.character_id == character.id] == [character.id]
    (decision,) = [d for d in response.decision.characters if d.character_id == character.id]
    assert (decision.character_id, decision.declared, decision.detected) == (character.id, False, True)
    assert (decision.allowed, list(decision.reasons)) == expected
    if not expected[0]:
        assert not response.decision.allowed


def test_a_refresh_derives_from_the_current_index_and_finds_what_a_full_build_finds(
    server: CharterServer, api: Stubs, holder: Holder
) -> None:
    screen = server.services.screen
    kept = create(api.catalog, holder.secret, holder.id)
    changed = create(api.catalog, holder.secret, holder.id)
    current = screen.refresh_now()
    unchanged = screen.refresh_now()
    renamed = f"Renamed {changed.canonical_name}"
    request = catalog_pb.UpdateCharacterRequest(
        character=Character(id=changed.id, canonical_name=renamed), update_mask=mask("canonical_name")
    )
    api.catalog.UpdateCharacter(request, metadata=auth(holder.secret))
    refreshed = screen.refresh_now()
    with server.db.uow() as uow:  # the names as the refresh read them
        full = ScreenIndex.build(uow.characters.all_names(), segmenter=refreshed.segmenter)
    prompt = f"{kept.canonical_name} meets {renamed}; {changed.canonical_name} is not here"

    assert unchanged.automaton is current.automaton  # nothing changed: nothing derived again
    assert refreshed.automaton is not current.automaton
    found = [(d.character_id, d.start, d.end) for d in refreshed.find(prompt)]
    assert found == [(d.character_id, d.start, d.end) for d in full.find(prompt)]
    assert [cid for cid, _, _ in found if cid in (kept.id, changed.id)] == [kept.id, changed.id]
