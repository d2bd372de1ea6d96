"""ScreenPrompt end to end: every character is screened for — opted out, opted in, suspended and
archived alike — the index follows the catalogue without a restart, and every role may screen.

Names are global and the session's server is shared, so every name here carries a fresh marker
and the assertions look only at this module's characters.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Sequence
from typing import Any

import grpc
import pytest
from charter._analysers import _fugashi_tagger, _jieba_tokenizer
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import authorization_service_pb2_grpc as az_grpc
from charter.v1 import catalog_service_pb2 as catalog_pb
from charter_server.app import CharterServer
from charter_server.services import readings
from charter_server.services.screening import PromptScreen
from google.protobuf import field_mask_pb2

from .character_helpers import Holder, alias, create, half_width, kana_marker, new_holder, opt_in
from .helpers import auth, unique

MAX_PROMPT = 8000
BACKGROUND_REFRESH_LIMIT = 5.0  # seconds; the screen checks the catalogue every second


@pytest.fixture(scope="module")
def screening(channel: grpc.Channel) -> az_grpc.AuthorizationServiceStub:
    return az_grpc.AuthorizationServiceStub(channel)


@pytest.fixture(scope="module")
def holder(catalog: Any, access: Any, keys: Any) -> Holder:
    return new_holder(catalog, access, keys.admin)


def screen(stub: Any, prompt: str, secret: str) -> list[az.Detection]:
    return list(stub.ScreenPrompt(az.ScreenPromptRequest(prompt=prompt), metadata=auth(secret)).detections)


def of(detections: Sequence[az.Detection], *character_ids: str) -> list[tuple[str, str, int, int, str, bool]]:
    """The detections of these characters, as plain tuples (other tests' characters are ignored)."""
    return [
        (d.character_id, d.matched_alias, d.start, d.end, d.text, d.ambiguous)
        for d in detections
        if d.character_id in character_ids
    ]


def wait_for(condition: Any, limit: float) -> float:
    """Poll ``condition`` until it holds; return how long it took (fail after ``limit`` seconds)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > limit:
            pytest.fail(f"not within {limit} s")
        time.sleep(0.05)
    return time.monotonic() - start


def test_an_opted_out_character_named_in_a_prompt_is_detected(
    server: CharterServer, screening: Any, catalog: Any, keys: Any, holder: Holder
) -> None:
    kana = kana_marker()
    latin = f"Opted {unique()}"
    character = create(
        catalog, holder.secret, holder.id, name=latin, aliases=(alias(kana), alias(f"ミク{kana}", ambiguous=True))
    )
    assert character.state == character.STATE_OPTED_OUT
    server.services.screen.refresh_now()

    prompt = f"😀 draw {latin.upper()} with {half_width(kana)}さん"
    detections = screen(screening, prompt, keys.generator)

    start = prompt.index(latin.upper())
    kana_start = prompt.index(half_width(kana))
    assert of(detections, character.id) == [
        (character.id, latin, start, start + len(latin), latin.upper(), False),
        (character.id, kana, kana_start, kana_start + len(kana), half_width(kana), False),
    ]
    assert prompt[:start].count("😀") == 1  # the span counts code points: the emoji is one


def test_characters_in_every_state_are_detected_archived_ones_included(
    server: CharterServer, screening: Any, catalog: Any, keys: Any, holder: Holder
) -> None:
    opted_in, suspended, archived, never = (create(catalog, holder.secret, holder.id) for _ in range(4))
    opt_in(catalog, holder.secret, opted_in.id)
    catalog.SuspendCharacter(
        catalog_pb.SuspendCharacterRequest(id=suspended.id, reason="review"), metadata=auth(keys.admin)
    )
    catalog.ArchiveCharacter(catalog_pb.ArchiveCharacterRequest(id=archived.id), metadata=auth(holder.secret))
    server.services.screen.refresh_now()

    everyone = (opted_in, suspended, archived, never)
    prompt = ", ".join(c.canonical_name for c in everyone)
    detections = screen(screening, prompt, keys.generator)

    assert [d[0] for d in of(detections, *(c.id for c in everyone))] == [c.id for c in everyone]


def test_a_character_created_after_start_is_found_after_refresh_now(
    server: CharterServer, screening: Any, catalog: Any, keys: Any, holder: Holder
) -> None:
    character = create(catalog, holder.secret, holder.id)
    server.services.screen.refresh_now()
    assert of(screen(screening, f"{character.canonical_name}!", keys.generator), character.id)


def test_the_background_refresh_follows_the_catalogue_without_a_restart(
    screening: Any, catalog: Any, keys: Any, holder: Holder
) -> None:
    character = create(catalog, holder.secret, holder.id, aliases=(alias(kana_marker()),))
    prompt = f"a portrait of {character.canonical_name} and {character.aliases[0].value}"

    wait_for(lambda: len(of(screen(screening, prompt, keys.auditor), character.id)) == 2, BACKGROUND_REFRESH_LIMIT)

    character.ClearField("aliases")
    catalog.UpdateCharacter(
        catalog_pb.UpdateCharacterRequest(character=character, update_mask=field_mask_pb2.FieldMask(paths=["aliases"])),
        metadata=auth(holder.secret),
    )
    wait_for(lambda: len(of(screen(screening, prompt, keys.auditor), character.id)) == 1, BACKGROUND_REFRESH_LIMIT)


def test_a_renamed_alias_is_followed(
    server: CharterServer, screening: Any, catalog: Any, keys: Any, holder: Holder
) -> None:
    old, new = kana_marker(), kana_marker()
    character = create(catalog, holder.secret, holder.id, aliases=(alias(old),))
    character.ClearField("aliases")
    character.aliases.append(alias(new))
    catalog.UpdateCharacter(
        catalog_pb.UpdateCharacterRequest(character=character, update_mask=field_mask_pb2.FieldMask(paths=["aliases"])),
        metadata=auth(holder.secret),
    )
    server.services.screen.refresh_now()
    assert [d[1] for d in of(screen(screening, f"{old} {new}", keys.generator), character.id)] == [new]


@pytest.mark.parametrize("role", ["admin", "rights_holder", "generator", "auditor"])
def test_every_role_may_screen(
    server: CharterServer, screening: Any, catalog: Any, keys: Any, holder: Holder, role: str
) -> None:
    character = create(catalog, holder.secret, holder.id)
    server.services.screen.refresh_now()
    detections = screen(screening, f"{character.canonical_name}", getattr(keys, role))
    assert of(detections, character.id)


def test_the_longest_prompt_is_accepted(screening: Any, keys: Any) -> None:
    prompt = ("初音ミク and Hatsune Miku. " * 400)[:MAX_PROMPT]
    assert len(prompt) == MAX_PROMPT
    screen(screening, prompt, keys.generator)


def test_an_unauthenticated_caller_may_not_screen(screening: Any) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        screening.ScreenPrompt(az.ScreenPromptRequest(prompt="Hatsune Miku"))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_an_unchanged_catalogue_is_not_rebuilt(server: CharterServer) -> None:
    """The background check finds the marker unchanged and keeps the index it has."""
    screen = server.services.screen
    index = screen.refresh_now()
    time.sleep(1.5)  # more than one check
    assert screen.index is index


WARM_LIMIT = 120.0  # seconds; a bound on the wait, not a timing (loading takes 1-4 s)


def test_the_server_loads_the_analysers_and_converters_when_it_starts(server: CharterServer) -> None:
    """jieba's dictionary, fugashi's tagger, pykakasi, pypinyin and wordfreq's lists are loaded by
    the server's start, in the background: no request (a first Chinese prompt, a first name in
    hanzi) pays for loading them."""
    screen = server.services.screen
    assert screen.warmed.wait(WARM_LIMIT)
    assert _jieba_tokenizer.cache_info().currsize == 1
    assert _fugashi_tagger.cache_info().currsize == 1
    assert readings._kakasi.cache_info().currsize == 1
    assert readings._frequencies.cache_info().currsize >= 4
    # Moved out of the cyclic collector's sight once loaded (a full collection walked them: 150 ms).
    assert gc.get_freeze_count() > 100_000


def test_without_preload_the_screen_starts_no_loading(server: CharterServer) -> None:
    """``--no-preload``: nothing is loaded at start (each analyser loads on first need); the screen
    reports itself warmed at once."""
    screen = PromptScreen(server.db, preload=False)
    before = {thread.ident for thread in threading.enumerate()}
    screen.start()
    try:
        assert screen.warmed.is_set()
        started = [t.name for t in threading.enumerate() if t.ident not in before]
        assert "charter-screen-warm" not in started
    finally:
        screen.stop()
