"""The screening rules through the API, on SQLite and PostgreSQL: derived readings that the rights
holder sees and edits, warnings about names that would cry wolf, ambiguous canonical names,
keyword sets decided like names, and the rule of each detection in ScreenPrompt and Authorize.

Names are global and the session's server is shared, so every name here carries a fresh marker
and the assertions look only at this module's characters.
"""

# ruff: noqa: RUF001  (look-alike characters are the point)

from __future__ import annotations

from typing import Any

import grpc
import pytest
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import catalog_service_pb2 as catalog_pb
from charter.v1 import character_pb2, decision_pb2, terms_pb2
from charter_server.app import CharterServer
from charter_server.services.readings import readings
from google.protobuf import field_mask_pb2

from .character_helpers import Holder, alias, kana_marker, new_holder, opt_in, refused
from .grant_helpers import Stubs, issue, stubs
from .helpers import auth, unique

Alias = character_pb2.Alias
Rule = az.Detection.Rule
Warning = catalog_pb.NameWarning


@pytest.fixture(scope="module")
def api(channel: grpc.Channel) -> Stubs:
    return stubs(channel)


@pytest.fixture(scope="module")
def holder(api: Stubs, keys: Any) -> Holder:
    return new_holder(api.catalog, api.access, keys.admin)


def create(api: Stubs, holder: Holder, **fields: Any) -> catalog_pb.CreateCharacterResponse:
    character = character_pb2.Character(rights_holder_id=holder.id, **fields)
    response: catalog_pb.CreateCharacterResponse = api.catalog.CreateCharacter(
        catalog_pb.CreateCharacterRequest(character=character), metadata=auth(holder.secret)
    )
    return response


def update(api: Stubs, holder: Holder, character: Any, *paths: str) -> catalog_pb.UpdateCharacterResponse:
    request = catalog_pb.UpdateCharacterRequest(character=character, update_mask=field_mask_pb2.FieldMask(paths=paths))
    response: catalog_pb.UpdateCharacterResponse = api.catalog.UpdateCharacter(request, metadata=auth(holder.secret))
    return response


def screen(api: Stubs, keys: Any, prompt: str, character_id: str) -> list[az.Detection]:
    response = api.authz.ScreenPrompt(az.ScreenPromptRequest(prompt=prompt), metadata=auth(keys.generator))
    return [d for d in response.detections if d.character_id == character_id]


def authorize(api: Stubs, keys: Any, prompt: str, *declared: str) -> az.AuthorizeResponse:
    context = decision_pb2.UseContext(
        use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION, content_rating=terms_pb2.CONTENT_RATING_ALL_AGES
    )
    request = az.AuthorizeRequest(prompt=prompt, character_ids=list(declared), context=context)
    response: az.AuthorizeResponse = api.authz.Authorize(request, metadata=auth(keys.generator))
    return response


def kanji_marker() -> str:
    """Three kanji that no other test uses together, so a name made with them is fresh."""
    return "".join(chr(0x4E00 + (ord(c) * 37) % 0x5000) for c in unique()[-3:])


def test_readings_of_a_kanji_name_are_derived_shown_removable_and_not_derived_again(
    server: CharterServer, api: Stubs, keys: Any, holder: Holder
) -> None:
    kana = kana_marker()
    created = create(api, holder, canonical_name=f"初音ミク{kana}").character
    derived = [(a.kind, a.language, a.derived) for a in created.aliases]
    assert derived == [(Alias.KIND_READING, "ja-Hira", True), (Alias.KIND_READING, "ja-Latn", True)]
    romaji = created.aliases[1].value
    server.services.screen.refresh_now()
    assert [(d.rule, d.text) for d in screen(api, keys, f"a {romaji.lower()} poster", created.id)] == [
        (Rule.RULE_READING, romaji.lower())
    ]

    # The rights holder removes the romanisation and adds its own; other updates keep that choice.
    kept = [a for a in created.aliases if a.language != "ja-Latn"]
    created.ClearField("aliases")
    created.aliases.extend([*kept, alias(f"Miku {unique()}", "en")])
    updated = update(api, holder, created, "aliases").character
    created.description = "changed"
    again = update(api, holder, created, "description").character
    assert [a.language for a in updated.aliases] == ["ja-Hira", "en"]
    assert [a.language for a in again.aliases] == ["ja-Hira", "en"]


def test_a_reading_that_another_rights_holders_name_has_is_left_out_not_refused(
    api: Stubs, keys: Any, holder: Holder
) -> None:
    other = new_holder(api.catalog, api.access, keys.admin)
    name = f"初音ミク{kana_marker()}"
    (_, romaji) = [value for value, _ in readings(name, "ja")]
    first = create(api, other, canonical_name=romaji).character
    second = create(api, holder, canonical_name=name).character
    assert first.id != second.id
    assert [a.language for a in second.aliases] == ["ja-Hira"]  # the romaji is the other's name


def test_names_that_would_cry_wolf_get_warnings_unless_marked_ambiguous(api: Stubs, holder: Holder) -> None:
    response = create(
        api,
        holder,
        canonical_name="Link",
        aliases=[alias("Rin", "ja-Latn"), alias("ミ", "ja"), alias("Doctor", "en", ambiguous=True)],
    )
    assert [(w.field, w.name, w.kind, w.language) for w in response.warnings] == [
        ("character.canonical_name", "Link", Warning.KIND_COMMON_WORD, "en"),
        ("character.aliases[0].value", "Rin", Warning.KIND_TOO_SHORT, ""),
        ("character.aliases[1].value", "ミ", Warning.KIND_TOO_SHORT, ""),
    ]
    # An update warns about the names it sets, not about the ones it leaves alone.
    character = response.character
    character.canonical_name_ambiguous = True
    assert list(update(api, holder, character, "canonical_name_ambiguous").warnings) == []
    assert [w.field for w in update(api, holder, character, "aliases").warnings] == [
        "character.aliases[0].value",
        "character.aliases[1].value",
    ]
    character.description = "changed"
    assert list(update(api, holder, character, "description").warnings) == []


def test_an_ambiguous_canonical_name_is_reported_but_decided_only_when_declared(
    server: CharterServer, api: Stubs, keys: Any, clock: Any, holder: Holder
) -> None:
    name = f"Link{unique()}"
    character = create(api, holder, canonical_name=name, canonical_name_ambiguous=True).character
    assert character.canonical_name_ambiguous
    server.services.screen.refresh_now()
    prompt = f"click the {name.lower()} below"

    undeclared = authorize(api, keys, prompt)
    declared = authorize(api, keys, prompt, character.id)

    assert [d.ambiguous for d in undeclared.detections if d.character_id == character.id] == [True]
    assert character.id not in [d.character_id for d in undeclared.decision.characters]
    assert [(d.character_id, d.allowed) for d in declared.decision.characters] == [(character.id, False)]


def test_a_keyword_set_is_a_description_detection_decided_like_a_name(
    server: CharterServer, api: Stubs, keys: Any, clock: Any, holder: Holder
) -> None:
    marker = unique()
    plumber = character_pb2.Keyword(variants=[f"plumber{marker}", f"配管工{kana_marker()}"])
    game = character_pb2.Keyword(variants=["videogame", "video game"])
    character = create(api, holder, canonical_name=f"Mario {marker}").character
    character.keyword_sets.append(character_pb2.KeywordSet(name="plumber game", keywords=[plumber, game]))
    updated = update(api, holder, character, "keyword_sets").character
    assert [(k.name, [list(w.variants) for w in k.keywords]) for k in updated.keyword_sets] == [
        ("plumber game", [list(plumber.variants), ["videogame", "video game"]])
    ]
    server.services.screen.refresh_now()
    prompt = f"a video game hero who is a plumber{marker}"

    denied = authorize(api, keys, prompt)
    opt_in(api.catalog, holder.secret, character.id)
    issue(api, keys.admin, clock, character.id, keys.licensee_id)
    allowed = authorize(api, keys, prompt)

    (found,) = [d for d in denied.detections if d.character_id == character.id]
    assert (found.rule, found.kind, found.keyword_set) == (
        Rule.RULE_DESCRIPTION,
        found.KIND_DESCRIPTION,
        "plumber game",
    )
    assert prompt[found.start : found.end] == found.text == f"video game hero who is a plumber{marker}"
    assert [(d.character_id, d.allowed, d.detected) for d in denied.decision.characters] == [
        (character.id, False, True)
    ]
    assert [(d.character_id, d.allowed) for d in allowed.decision.characters] == [(character.id, True)]


@pytest.mark.parametrize(
    ("keyword_sets", "field"),
    [
        ([{"name": "one", "keywords": [{"variants": ["plumber"]}]}], "character.keyword_sets[0].keywords"),
        ([{"name": "", "keywords": [{"variants": ["a1"]}, {"variants": ["b2"]}]}], "character.keyword_sets[0].name"),
        (
            [{"name": "x", "keywords": [{"variants": ["!!"]}, {"variants": ["b2"]}]}],
            "character.keyword_sets[0].keywords[0].variants[0]",
        ),
        (
            [{"name": "x", "keywords": [{"variants": []}, {"variants": ["b2"]}]}],
            "character.keyword_sets[0].keywords[0].variants",
        ),
        (
            [{"name": "x", "keywords": [{"variants": ["a1"]}, {"variants": ["b2"]}]}] * 2,
            "character.keyword_sets[1].name",
        ),
    ],
)
def test_invalid_keyword_sets_are_refused_naming_the_field_and_change_nothing(
    api: Stubs, holder: Holder, keyword_sets: list[dict[str, Any]], field: str
) -> None:
    character = create(api, holder, canonical_name=f"Kw {unique()}").character
    changed = character_pb2.Character(id=character.id, keyword_sets=keyword_sets)
    request = catalog_pb.UpdateCharacterRequest(
        character=changed, update_mask=field_mask_pb2.FieldMask(paths=["keyword_sets"])
    )
    got = refused(api.catalog.UpdateCharacter, request, holder.secret)
    after = api.catalog.GetCharacter(catalog_pb.GetCharacterRequest(id=character.id), metadata=auth(holder.secret))
    assert (got.code, got.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")
    assert field in got.fields
    assert list(after.character.keyword_sets) == []


@pytest.mark.parametrize(
    ("written", "rule"),
    [
        ("Hat\u200bsune {m}", Rule.RULE_EXACT),
        ("Нatsune {m}", Rule.RULE_SKELETON),
        ("#Hatsune{m}", Rule.RULE_HASHTAG),
        ("Hatsune {m}s", Rule.RULE_PLURAL),
    ],
)
def test_screen_prompt_reports_the_rule_and_the_span_of_each_evasion(
    server: CharterServer, api: Stubs, keys: Any, holder: Holder, written: str, rule: int
) -> None:
    marker = "".join(c for c in unique() if c.isalpha())[:8] or "marker"
    character = create(api, holder, canonical_name=f"Hatsune {marker}").character
    server.services.screen.refresh_now()
    text = written.format(m=marker)
    prompt = f"draw {text} now"
    (found,) = screen(api, keys, prompt, character.id)
    assert (found.rule, found.kind) == (rule, found.KIND_NAME)
    assert prompt[found.start : found.end] == found.text == text.lstrip("#")


def test_a_short_name_inside_an_ordinary_japanese_word_is_not_detected_nor_allowed(
    server: CharterServer, api: Stubs, keys: Any, clock: Any, holder: Holder
) -> None:
    """ミクロ once came back allowed, with obligations and a receipt, for a character named ミク;
    エルサレム (Jerusalem) likewise named エルサ (Elsa)."""
    character = create(api, holder, canonical_name=f"Elsa {unique()}", aliases=[alias("エルサ", "ja")]).character
    opt_in(api.catalog, holder.secret, character.id)
    issue(api, keys.admin, clock, character.id, keys.licensee_id)
    server.services.screen.refresh_now()

    inside = authorize(api, keys, "エルサレムの旧市街を歩く")
    named = authorize(api, keys, "エルサが歌う")

    assert character.id not in [d.character_id for d in inside.detections]
    assert character.id not in [d.character_id for d in inside.decision.characters]
    assert [d.character_id for d in named.detections if d.character_id == character.id] == [character.id]


def test_staff_see_names_that_the_look_alike_rule_would_merge(api: Stubs, keys: Any, holder: Holder) -> None:
    """A name in Cyrillic letters that reads as another character's Latin name: both are kept
    apart by screening and listed for staff, page by page."""
    marker = "".join(c for c in unique() if c.isalpha())[:6] or "marker"
    other = new_holder(api.catalog, api.access, keys.admin)
    latin = create(api, other, canonical_name=f"Capa {marker}").character
    cyrillic = create(api, holder, canonical_name=f"Сара {marker}").character

    found, token = [], ""
    while True:
        page = api.catalog.ListAliasCollisions(
            catalog_pb.ListAliasCollisionsRequest(page_size=1, page_token=token), metadata=auth(keys.auditor)
        )
        found += [c for c in page.collisions if latin.id in c.character_ids]
        token = page.next_page_token
        if not token:
            break

    assert [(c.kind, c.normalized, list(c.character_ids), list(c.rights_holder_ids)) for c in found] == [
        (catalog_pb.AliasCollision.KIND_LOOK_ALIKE, f"capa {marker}", [cyrillic.id, latin.id], [holder.id, other.id])
    ]


def test_another_rights_holders_look_alike_name_does_not_turn_off_the_look_alike_rule(
    server: CharterServer, api: Stubs, keys: Any, holder: Holder
) -> None:
    """A rights holder registering a name in look-alike letters (a Cyrillic a) of another's
    character's name is listed for staff, and keeps only its own text from being read as that name:
    the name written with other look-alikes (a Cyrillic o) is still a detection of rule SKELETON."""
    marker = "".join(c for c in unique() if c.isalpha())[:8] or "marker"
    victim = create(api, holder, canonical_name=f"Zorblax {marker}").character
    other = new_holder(api.catalog, api.access, keys.admin)
    look_alike = create(api, other, canonical_name=f"Zorblаx {marker}").character
    server.services.screen.refresh_now()

    evasion = f"draw Zоrblax {marker} dancing"
    own_text = f"draw Zorblаx {marker} dancing"
    assert [(d.rule, d.text) for d in screen(api, keys, evasion, victim.id)] == [
        (Rule.RULE_SKELETON, f"Zоrblax {marker}")
    ]
    assert screen(api, keys, own_text, victim.id) == []
    assert [d.rule for d in screen(api, keys, own_text, look_alike.id)] == [Rule.RULE_EXACT]
    denied = authorize(api, keys, evasion)
    assert [(c.character_id, c.allowed) for c in denied.decision.characters if c.character_id == victim.id] == [
        (victim.id, False)
    ]
