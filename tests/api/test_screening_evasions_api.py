"""Evasions of the screen through the real server's Authorize: a character's name hidden in a
prompt in ways a model still reads as the name is detected, and the character is decided (not
allowed: no grant), as the labelled corpus and ``tests/unit/test_screen_evasions.py`` say.

Names are global and the session's server is shared, so every name here carries a fresh marker
and the assertions look only at this module's character.
"""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import character_pb2
from charter_server.app import CharterServer

from .character_helpers import Holder, alias, new_holder
from .grant_helpers import Stubs, stubs
from .test_screening_rules_api import authorize, create

Rule = az.Detection.Rule


@pytest.fixture(scope="module")
def api(channel: grpc.Channel) -> Stubs:
    return stubs(channel)


@pytest.fixture(scope="module")
def named(server: CharterServer, api: Stubs, keys: Any) -> tuple[character_pb2.Character, str, str]:
    """A character named ``Zorb`` + 8 fresh letters, with a katakana alias ending in チュウ."""
    holder: Holder = new_holder(api.catalog, api.access, keys.admin)
    letters = "".join(chr(ord("g") + int(c, 16)) for c in uuid.uuid4().hex[:8])
    # No vowel kana: with one, the marker could hold long vowels of its own (サア), and a name with
    # more than two gets only the spellings that write them all alike (not チュー alone).
    kana = "".join("カキクケコサシスセソタチツテトナ"[int(d, 16)] for d in uuid.uuid4().hex[:10])
    character = create(api, holder, canonical_name=f"Zorb{letters}", aliases=[alias(f"{kana}チュウ", "ja")]).character
    server.services.screen.refresh_now()
    return character, letters, kana


def _regional(text: str) -> str:
    return "".join(chr(0x1F1E6 + ord(c) - ord("a")) for c in text.lower())


@pytest.mark.parametrize(
    ("written", "rule"),
    [
        ("Zo-rb{m}", Rule.RULE_SPACED),  # letters grouped otherwise than in the name
        ("Zorb'{m3} {rest}", Rule.RULE_SPACED),
        ("{regional}", Rule.RULE_SKELETON),  # regional indicator symbols
        ("ᴢᴏʀʙ{m}", Rule.RULE_SKELETON),  # small capitals
        ("{kana}チユウが歌う", Rule.RULE_SKELETON),  # a small kana written large
        ("{kana}チューが歌う", Rule.RULE_LONG_VOWEL),  # ー for ウ
        ("{kana}チュ〜が歌う", Rule.RULE_LONG_VOWEL),  # a wave dash for it
    ],
)
def test_a_hidden_name_is_detected_and_decided_by_authorize(
    keys: Any, api: Stubs, named: tuple[character_pb2.Character, str, str], written: str, rule: int
) -> None:
    character, letters, kana = named
    text = written.format(
        m=letters,
        m3=letters[:3],
        rest=letters[3:],
        regional=_regional(f"zorb{letters}"),
        upper=letters.upper(),
        kana=kana,
    )
    prompt = f"draw {text} at dusk"

    response = authorize(api, keys, prompt)

    found = [d for d in response.detections if d.character_id == character.id]
    assert [(d.rule, d.ambiguous) for d in found] == [(rule, False)]
    assert prompt[found[0].start : found[0].end] == found[0].text
    assert [(c.character_id, c.allowed) for c in response.decision.characters if c.character_id == character.id] == [
        (character.id, False)
    ]
