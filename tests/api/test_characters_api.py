"""Characters through gRPC: the default deny state, create/get/list/update/archive, suspension,
idempotent creates, external ids, alias collisions across rights holders, and ownership: a
rights-holder key reaches only its own characters, terms and terms history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
import pytest
from charter.v1 import catalog_service_pb2 as catalog_pb
from charter_server.domain import ids

from .character_helpers import (
    ARCHIVED,
    OPTED_IN,
    OPTED_OUT,
    SUSPENDED,
    Alias,
    Character,
    Holder,
    alias,
    create,
    full_width,
    get,
    half_width,
    hiragana,
    kana_marker,
    list_all,
    mask,
    new_holder,
    opt_in,
    refused,
    terms,
    update_terms,
    versions,
)
from .helpers import auth, unique


@pytest.fixture(scope="module")
def holders(catalog: Any, access: Any, keys: Any) -> tuple[Holder, Holder]:
    """Two fresh rights holders, A and B, each with its own rights-holder key."""
    return new_holder(catalog, access, keys.admin), new_holder(catalog, access, keys.admin)


def list_characters(catalog: Any, secret: str, **filters: Any) -> list[Character]:
    found, _ = list_all(catalog.ListCharacters, catalog_pb.ListCharactersRequest(**filters), "characters", secret)
    return found


# Names that normalise to something long ------------------------------------------------------

# "ﷺ" (U+FDFA) is one character that NFKC makes 18; "ß" case-folds to "ss".
LONG_ONCE_NORMALISED = "\ufdfa" * 30


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"canonical_name": LONG_ONCE_NORMALISED}, "character.canonical_name"),
        ({"aliases": [Alias(value=LONG_ONCE_NORMALISED, language="ar")]}, "character.aliases[0].value"),
        ({"franchise": "\u00df" * 150}, "character.franchise"),
        (
            {"keyword_sets": [{"name": "set", "keywords": [{"variants": ["ab"]}, {"variants": ["\ufdfa" * 12]}]}]},
            "character.keyword_sets[0].keywords[1].variants[0]",
        ),
    ],
    ids=["canonical_name", "alias", "franchise", "keyword_variant"],
)
def test_names_too_long_once_normalised_are_refused_naming_the_field(
    catalog: Any, holders: tuple[Holder, Holder], fields: dict[str, Any], path: str
) -> None:
    """Within their length limit but longer than the name table holds once normalised (or case
    folded): INVALID_ARGUMENT naming the field on every backend, never INTERNAL, and nothing made."""
    a, _ = holders
    before = list_characters(catalog, a.secret)
    character = Character(**{"rights_holder_id": a.id, "canonical_name": f"Chara {unique()}", **fields})

    got = refused(catalog.CreateCharacter, catalog_pb.CreateCharacterRequest(character=character), a.secret)

    assert (got.code, got.reason, got.fields) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", (path,))
    assert list_characters(catalog, a.secret) == before


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"canonical_name": "\u202eukiM enustaH"}, "character.canonical_name"),
        ({"aliases": [Alias(value="Miku \u2066Hatsune\u2069", language="en")]}, "character.aliases[0].value"),
        ({"franchise": "Vocal\u2028Series"}, "character.franchise"),
        (
            {"keyword_sets": [{"name": "set\u202d", "keywords": [{"variants": ["ab"]}, {"variants": ["cd"]}]}]},
            "character.keyword_sets[0].name",
        ),
        (
            {"keyword_sets": [{"name": "set", "keywords": [{"variants": ["a\u202eb"]}, {"variants": ["cd"]}]}]},
            "character.keyword_sets[0].keywords[0].variants[0]",
        ),
    ],
    ids=["canonical_name", "alias", "franchise", "keyword_set_name", "keyword_variant"],
)
def test_names_with_bidirectional_controls_or_line_separators_are_refused(
    catalog: Any, holders: tuple[Holder, Holder], fields: dict[str, Any], path: str
) -> None:
    """A right-to-left override makes "\u202eukiM enustaH" show as "Hatsune Miku" wherever it is
    listed (a line separator breaks the line it is shown on): refused naming the field, nothing made."""
    a, _ = holders
    before = list_characters(catalog, a.secret)
    character = Character(**{"rights_holder_id": a.id, "canonical_name": f"Chara {unique()}", **fields})

    got = refused(catalog.CreateCharacter, catalog_pb.CreateCharacterRequest(character=character), a.secret)

    assert (got.code, got.reason, got.fields) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", (path,))
    assert list_characters(catalog, a.secret) == before


def test_a_reading_too_long_for_the_name_table_is_left_out(catalog: Any, holders: tuple[Holder, Holder]) -> None:
    """A name of 200 kanji is accepted; its readings (over 400 characters) are not derived."""
    a, _ = holders
    name = "".join(chr(0x4E00 + (ord(c) * 37) % 0x5000) for c in unique()[-3:]) + "東京" * 98

    created = create(catalog, a.secret, a.id, aliases=(alias(name),))

    assert [x.value for x in created.aliases] == [name]


# The default: opted out, no terms -------------------------------------------------------------


def test_a_new_character_is_opted_out_without_terms(catalog: Any, holders: tuple[Holder, Holder]) -> None:
    a, _ = holders
    created = create(catalog, a.secret, a.id)

    current = refused(catalog.GetTerms, catalog_pb.GetTermsRequest(character_id=created.id), a.secret)
    first = refused(catalog.GetTerms, catalog_pb.GetTermsRequest(character_id=created.id, version=1), a.secret)
    history = catalog.ListTermsVersions(
        catalog_pb.ListTermsVersionsRequest(character_id=created.id), metadata=auth(a.secret)
    )

    assert (created.state, created.terms_version) == (OPTED_OUT, 0)
    assert get(catalog, a.secret, created.id).state == OPTED_OUT
    assert (current.code, current.reason) == (grpc.StatusCode.NOT_FOUND, "TERMS_VERSION_NOT_FOUND")
    assert (first.code, first.reason) == (grpc.StatusCode.NOT_FOUND, "TERMS_VERSION_NOT_FOUND")
    assert (list(history.terms), history.next_page_token) == ([], "")


# Create and get -------------------------------------------------------------------------------


def test_create_with_aliases_returns_their_normalized_keys(
    catalog: Any, keys: Any, holders: tuple[Holder, Holder]
) -> None:
    a, _ = holders
    m, k = unique(), kana_marker()
    given = Character(
        id=ids.new_id("character"),
        rights_holder_id=a.id,
        external_id=f"VOC-{m}",
        canonical_name=f"  Hatsune Miku {m} ",
        franchise="Piapro Characters",
        description="A singer.\nTeal hair.",
        reference_urls=["https://piapro.example/miku"],
        state=OPTED_IN,
        terms_version=7,
        create_time={"seconds": 1},
        update_time={"seconds": 2},
        aliases=[
            Alias(value=f"初音ミク{k}", language="ja", kind=Alias.KIND_OFFICIAL_NAME, normalized="bogus"),
            Alias(value=f"ミク{k}", language="ja", kind=Alias.KIND_SHORT_NAME),
            Alias(value=full_width(f"HATSUNE MIKU {m}"), language="ja-Latn", kind=Alias.KIND_ROMANIZATION),
            Alias(value=f"Miku-chan {m}", language="en"),
        ],
    )

    created = catalog.CreateCharacter(
        catalog_pb.CreateCharacterRequest(character=given), metadata=auth(a.secret)
    ).character

    assert ids.is_valid("character", created.id) and created.id != given.id
    assert (created.rights_holder_id, created.external_id, created.canonical_name, created.franchise) == (
        a.id,
        f"VOC-{m}",
        f"Hatsune Miku {m}",
        "Piapro Characters",
    )
    assert (created.description, list(created.reference_urls)) == (
        "A singer.\nTeal hair.",
        ["https://piapro.example/miku"],
    )
    # The readings of the name in kanji follow the aliases as given (see test_readings_api).
    assert [(x.value, x.language, x.kind, x.normalized) for x in created.aliases if not x.derived] == [
        (f"初音ミク{k}", "ja", Alias.KIND_OFFICIAL_NAME, f"初音みく{hiragana(k)}"),
        (f"ミク{k}", "ja", Alias.KIND_SHORT_NAME, f"みく{hiragana(k)}"),
        (full_width(f"HATSUNE MIKU {m}"), "ja-Latn", Alias.KIND_ROMANIZATION, f"hatsune miku {m}"),
        (f"Miku-chan {m}", "en", Alias.KIND_NICKNAME, f"miku chan {m}"),
    ]
    assert (created.state, created.terms_version) == (OPTED_OUT, 0)
    assert created.create_time == created.update_time and created.create_time.seconds > 2
    assert get(catalog, a.secret, created.id) == created
    assert get(catalog, keys.auditor, created.id) == created
    assert get(catalog, keys.admin, created.id) == created


def test_staff_create_characters_for_any_rights_holder(catalog: Any, keys: Any, holders: tuple[Holder, Holder]) -> None:
    _, b = holders
    created = create(catalog, keys.admin, b.id)

    assert created.rights_holder_id == b.id
    assert get(catalog, b.secret, created.id) == created


def test_create_for_a_missing_rights_holder_is_not_found(catalog: Any, keys: Any) -> None:
    request = catalog_pb.CreateCharacterRequest(
        character=Character(rights_holder_id=ids.new_id("rights_holder"), canonical_name=f"Chara {unique()}")
    )

    got = refused(catalog.CreateCharacter, request, keys.admin)

    assert (got.code, got.reason) == (grpc.StatusCode.NOT_FOUND, "RIGHTS_HOLDER_NOT_FOUND")


def test_create_with_the_same_request_id_twice_creates_one_character(catalog: Any, access: Any, keys: Any) -> None:
    holder = new_holder(catalog, access, keys.admin)
    name, request_id = f"Chara {unique()}", unique("req-")

    first = create(catalog, holder.secret, holder.id, name=name, request_id=request_id)
    again = create(catalog, holder.secret, holder.id, name=name, request_id=request_id)
    reused = refused(
        catalog.CreateCharacter,
        catalog_pb.CreateCharacterRequest(
            character=Character(rights_holder_id=holder.id, canonical_name=f"Other {unique()}"), request_id=request_id
        ),
        holder.secret,
    )

    assert again == first
    assert [c.id for c in list_characters(catalog, keys.admin, rights_holder_id=holder.id)] == [first.id]
    assert (reused.code, reused.reason) == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")


def test_external_ids_are_unique_per_rights_holder(catalog: Any, holders: tuple[Holder, Holder]) -> None:
    a, b = holders
    external_id = f"CAT:{unique()}"
    first = create(catalog, a.secret, a.id, external_id=external_id)
    other = create(catalog, a.secret, a.id)

    duplicate = refused(
        catalog.CreateCharacter,
        catalog_pb.CreateCharacterRequest(
            character=Character(rights_holder_id=a.id, canonical_name=f"Chara {unique()}", external_id=external_id)
        ),
        a.secret,
    )
    renamed = refused(
        catalog.UpdateCharacter,
        catalog_pb.UpdateCharacterRequest(
            character=Character(id=other.id, external_id=external_id), update_mask=mask("external_id")
        ),
        a.secret,
    )
    elsewhere = create(catalog, b.secret, b.id, external_id=external_id)

    assert (duplicate.code, duplicate.reason) == (grpc.StatusCode.ALREADY_EXISTS, "EXTERNAL_ID_CONFLICT")
    assert (renamed.code, renamed.reason) == (grpc.StatusCode.ALREADY_EXISTS, "EXTERNAL_ID_CONFLICT")
    assert get(catalog, a.secret, other.id) == other
    assert elsewhere.external_id == first.external_id == external_id


# List -----------------------------------------------------------------------------------------


def test_list_pages_through_a_rights_holders_characters_in_creation_order(catalog: Any, access: Any, keys: Any) -> None:
    holder = new_holder(catalog, access, keys.admin)
    created = [create(catalog, holder.secret, holder.id) for _ in range(5)]

    found, pages = list_all(
        catalog.ListCharacters,
        catalog_pb.ListCharactersRequest(rights_holder_id=holder.id, page_size=2),
        "characters",
        keys.admin,
    )
    own, _ = list_all(
        catalog.ListCharacters, catalog_pb.ListCharactersRequest(page_size=2), "characters", holder.secret
    )

    assert [c.id for c in found] == [c.id for c in created]
    assert pages == 3
    assert own == found


def test_list_filters_by_state_and_hides_archived_by_default(catalog: Any, access: Any, keys: Any) -> None:
    holder = new_holder(catalog, access, keys.admin)
    out, opted, suspended, archived = (create(catalog, holder.secret, holder.id) for _ in range(4))
    opt_in(catalog, holder.secret, opted.id)
    catalog.SuspendCharacter(
        catalog_pb.SuspendCharacterRequest(id=suspended.id, reason="review"), metadata=auth(keys.admin)
    )
    catalog.ArchiveCharacter(catalog_pb.ArchiveCharacterRequest(id=archived.id), metadata=auth(holder.secret))

    def listed(state: int) -> list[str]:
        return [c.id for c in list_characters(catalog, holder.secret, rights_holder_id=holder.id, state=state)]

    assert listed(0) == [out.id, opted.id, suspended.id]
    assert listed(OPTED_OUT) == [out.id]
    assert listed(OPTED_IN) == [opted.id]
    assert listed(SUSPENDED) == [suspended.id]
    assert listed(ARCHIVED) == [archived.id]


def test_list_filters_by_franchise_ignoring_case(catalog: Any, holders: tuple[Holder, Holder]) -> None:
    a, _ = holders
    franchise = f"Piapro {unique()}"
    first = create(catalog, a.secret, a.id, franchise=franchise)
    second = create(catalog, a.secret, a.id, franchise=franchise.upper())
    create(catalog, a.secret, a.id, franchise=f"{franchise} Extra")

    found = list_characters(catalog, a.secret, franchise=franchise.lower())

    assert [c.id for c in found] == [first.id, second.id]


@pytest.mark.parametrize("script", ["half_width", "hiragana", "katakana", "full_width_latin", "kanji_part"])
def test_list_query_finds_a_name_written_in_another_script(
    catalog: Any, keys: Any, holders: tuple[Holder, Holder], script: str
) -> None:
    a, _ = holders
    m, k = unique(), kana_marker()
    found_one = create(
        catalog,
        a.secret,
        a.id,
        name=f"Hatsune Miku {m}",
        aliases=(alias(f"初音ミク{k}"), alias(f"ミク{k}", kind=Alias.KIND_SHORT_NAME)),
    )
    create(catalog, a.secret, a.id, name=f"Kagamine Rin {m}x", aliases=(alias(f"リン{k}"),))
    query = {
        "half_width": f"ﾐｸ{half_width(k)}",
        "hiragana": f"みく{hiragana(k)}",
        "katakana": f"ミク{k}",
        "full_width_latin": full_width(f"MIKU {m}"),
        "kanji_part": f"初音・ミク{k[:3]}",
    }[script]

    by_holder = list_characters(catalog, a.secret, query=query)
    by_staff = list_characters(catalog, keys.admin, query=query)

    assert [c.id for c in by_holder] == [found_one.id]
    assert [c.id for c in by_staff] == [found_one.id]


def test_list_query_combines_with_the_other_filters(catalog: Any, holders: tuple[Holder, Holder]) -> None:
    a, _ = holders
    m = unique()
    out = create(catalog, a.secret, a.id, name=f"Luka {m}", franchise="Piapro")
    opted = create(catalog, a.secret, a.id, name=f"Luka {m} Two", franchise="Piapro")
    create(catalog, a.secret, a.id, name=f"Luka {m} Three", franchise="Other")
    opt_in(catalog, a.secret, opted.id)

    found = list_characters(catalog, a.secret, query=f"luka {m}", franchise="piapro", state=OPTED_OUT)

    assert [c.id for c in found] == [out.id]


# Update ---------------------------------------------------------------------------------------


def test_update_changes_only_the_fields_in_the_mask(
    catalog: Any, holders: tuple[Holder, Holder], moved_clock: Any
) -> None:
    a, _ = holders
    m = unique()
    before = create(
        catalog,
        a.secret,
        a.id,
        franchise="Old",
        description="Old description",
        reference_urls=["https://old.example"],
        aliases=(alias(f"Old {m}"),),
    )
    moved_clock.advance(timedelta(seconds=5))
    request = catalog_pb.UpdateCharacterRequest(
        character=Character(
            id=before.id,
            rights_holder_id=ids.new_id("rights_holder"),
            canonical_name=f"  New {m} ",
            franchise="Ignored",
            state=OPTED_IN,
            terms_version=9,
            aliases=[alias(f"Ignored {m}")],
        ),
        update_mask=mask("canonical_name", "canonical_name"),
    )

    updated = catalog.UpdateCharacter(request, metadata=auth(a.secret)).character

    assert updated == get(catalog, a.secret, before.id)
    assert updated.canonical_name == f"New {m}"
    assert (updated.franchise, updated.description, updated.reference_urls, updated.aliases) == (
        before.franchise,
        before.description,
        before.reference_urls,
        before.aliases,
    )
    assert (updated.rights_holder_id, updated.state, updated.terms_version) == (a.id, OPTED_OUT, 0)
    assert updated.create_time == before.create_time
    assert updated.update_time.ToDatetime() > before.update_time.ToDatetime()
    assert [c.id for c in list_characters(catalog, a.secret, query=f"new {m}")] == [before.id]


def test_update_replaces_the_aliases_whole_and_reindexes_the_names(
    catalog: Any, holders: tuple[Holder, Holder]
) -> None:
    a, b = holders
    k = kana_marker()
    before = create(catalog, a.secret, a.id, aliases=(alias(f"ミク{k}"), alias(f"ミクさん{k}")))
    request = catalog_pb.UpdateCharacterRequest(
        character=Character(id=before.id, aliases=[alias(f"ハク{k}", kind=Alias.KIND_SHORT_NAME)]),
        update_mask=mask("aliases"),
    )

    updated = catalog.UpdateCharacter(request, metadata=auth(a.secret)).character
    # The dropped names are free again, even for another rights holder.
    reused = create(catalog, b.secret, b.id, aliases=(alias(f"みく{hiragana(k)}"),))

    assert [(x.value, x.kind, x.normalized) for x in updated.aliases] == [
        (f"ハク{k}", Alias.KIND_SHORT_NAME, f"はく{hiragana(k)}")
    ]
    assert list_characters(catalog, a.secret, query=f"ミクさん{k}") == []
    assert [c.id for c in list_characters(catalog, a.secret, query=f"はく{hiragana(k)}")] == [before.id]
    assert reused.aliases[0].normalized == f"みく{hiragana(k)}"


def test_update_with_a_mask_clears_optional_fields(catalog: Any, holders: tuple[Holder, Holder]) -> None:
    a, _ = holders
    before = create(
        catalog,
        a.secret,
        a.id,
        franchise="Old",
        description="Old",
        aliases=(alias(f"A {unique()}"),),
        reference_urls=["https://old.example"],
    )
    request = catalog_pb.UpdateCharacterRequest(
        character=Character(id=before.id), update_mask=mask("franchise", "aliases", "reference_urls")
    )

    updated = catalog.UpdateCharacter(request, metadata=auth(a.secret)).character

    assert (updated.franchise, list(updated.aliases), list(updated.reference_urls)) == ("", [], [])
    assert (updated.canonical_name, updated.description) == (before.canonical_name, "Old")


def test_update_with_an_empty_mask_sets_every_non_empty_field(catalog: Any, holders: tuple[Holder, Holder]) -> None:
    a, _ = holders
    m = unique()
    before = create(
        catalog, a.secret, a.id, franchise="Old", description="Old description", aliases=(alias(f"Old {m}"),)
    )
    request = catalog_pb.UpdateCharacterRequest(
        character=Character(id=before.id, franchise="New", aliases=[alias(f"New {m}", "en")], external_id=f"EXT-{m}")
    )

    updated = catalog.UpdateCharacter(request, metadata=auth(a.secret)).character

    assert (updated.canonical_name, updated.franchise, updated.description, updated.external_id) == (
        before.canonical_name,
        "New",
        "Old description",
        f"EXT-{m}",
    )
    assert [(x.value, x.language) for x in updated.aliases] == [(f"New {m}", "en")]


# Archive, suspend, reinstate ------------------------------------------------------------------


def test_archive_is_idempotent_and_freezes_the_character(
    catalog: Any, keys: Any, holders: tuple[Holder, Holder]
) -> None:
    a, _ = holders
    character = create(catalog, a.secret, a.id)
    opt_in(catalog, a.secret, character.id)

    archived = catalog.ArchiveCharacter(
        catalog_pb.ArchiveCharacterRequest(id=character.id), metadata=auth(a.secret)
    ).character
    again = catalog.ArchiveCharacter(
        catalog_pb.ArchiveCharacterRequest(id=character.id), metadata=auth(keys.admin)
    ).character
    changes: list[tuple[Callable[..., Any], Any]] = [
        (
            catalog.UpdateCharacter,
            catalog_pb.UpdateCharacterRequest(
                character=Character(id=character.id, franchise="New"), update_mask=mask("franchise")
            ),
        ),
        (catalog.OptIn, catalog_pb.OptInRequest(character_id=character.id, terms=terms())),
        (catalog.UpdateTerms, catalog_pb.UpdateTermsRequest(character_id=character.id, terms=terms())),
        (catalog.OptOut, catalog_pb.OptOutRequest(character_id=character.id)),
    ]
    failures = [refused(call, request, a.secret) for call, request in changes]
    suspend = refused(
        catalog.SuspendCharacter, catalog_pb.SuspendCharacterRequest(id=character.id, reason="review"), keys.admin
    )
    reinstate = refused(catalog.ReinstateCharacter, catalog_pb.ReinstateCharacterRequest(id=character.id), keys.admin)

    assert (archived.state, archived.terms_version) == (ARCHIVED, 1)
    assert again == archived == get(catalog, a.secret, character.id)
    assert {(f.code, f.reason) for f in [*failures, suspend]} == {
        (grpc.StatusCode.FAILED_PRECONDITION, "CHARACTER_ARCHIVED")
    }
    assert (reinstate.code, reinstate.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CHARACTER_NOT_SUSPENDED")
    assert get(catalog, a.secret, character.id) == archived
    assert len(versions(catalog, a.secret, character.id)) == 1
    assert character.id not in {c.id for c in list_characters(catalog, a.secret)}
    assert character.id in {c.id for c in list_characters(catalog, a.secret, state=ARCHIVED)}


@pytest.mark.parametrize("opted", [True, False], ids=["opted_in", "opted_out"])
def test_reinstate_returns_to_the_state_before_the_suspension(
    catalog: Any, keys: Any, holders: tuple[Holder, Holder], opted: bool
) -> None:
    a, _ = holders
    character = create(catalog, a.secret, a.id)
    if opted:
        opt_in(catalog, a.secret, character.id)

    suspended = catalog.SuspendCharacter(
        catalog_pb.SuspendCharacterRequest(id=character.id, reason="complaint"), metadata=auth(keys.admin)
    ).character
    again = catalog.SuspendCharacter(
        catalog_pb.SuspendCharacterRequest(id=character.id, reason="complaint"), metadata=auth(keys.admin)
    ).character
    reinstated = catalog.ReinstateCharacter(
        catalog_pb.ReinstateCharacterRequest(id=character.id), metadata=auth(keys.admin)
    ).character
    twice = refused(catalog.ReinstateCharacter, catalog_pb.ReinstateCharacterRequest(id=character.id), keys.admin)

    assert suspended.state == again.state == SUSPENDED
    assert reinstated.state == (OPTED_IN if opted else OPTED_OUT)
    assert reinstated.terms_version == (1 if opted else 0)
    assert (twice.code, twice.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CHARACTER_NOT_SUSPENDED")


def test_terms_of_a_suspended_character_cannot_change_until_reinstated(
    catalog: Any, keys: Any, holders: tuple[Holder, Holder]
) -> None:
    a, _ = holders
    opted, out = create(catalog, a.secret, a.id), create(catalog, a.secret, a.id)
    opt_in(catalog, a.secret, opted.id)
    for character in (opted, out):
        catalog.SuspendCharacter(
            catalog_pb.SuspendCharacterRequest(id=character.id, reason="review"), metadata=auth(keys.admin)
        )

    updating = refused(
        catalog.UpdateTerms, catalog_pb.UpdateTermsRequest(character_id=opted.id, terms=terms()), a.secret
    )
    opting_in = refused(catalog.OptIn, catalog_pb.OptInRequest(character_id=out.id, terms=terms()), a.secret)
    # Opting out stays possible: the suspension remains, and lifting it returns to opted out.
    opted_out = catalog.OptOut(catalog_pb.OptOutRequest(character_id=opted.id), metadata=auth(a.secret)).character
    reinstated = catalog.ReinstateCharacter(
        catalog_pb.ReinstateCharacterRequest(id=opted.id), metadata=auth(keys.admin)
    ).character

    assert (updating.code, updating.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CHARACTER_SUSPENDED")
    assert (opting_in.code, opting_in.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CHARACTER_SUSPENDED")
    assert get(catalog, a.secret, out.id).state == SUSPENDED
    assert (get(catalog, a.secret, out.id).terms_version, len(versions(catalog, a.secret, opted.id))) == (0, 1)
    assert opted_out.state == SUSPENDED
    assert reinstated.state == OPTED_OUT


# Alias collisions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Miku:
    """A character of rights holder A with names in three scripts, and the markers in them."""

    id: str
    latin: str
    kana: str


def make_miku(catalog: Any, holder: Holder, *, ambiguous: bool = False) -> Miku:
    m, k = unique(), kana_marker()
    created = create(
        catalog,
        holder.secret,
        holder.id,
        name=f"Hatsune Miku {m}",
        aliases=(
            alias(f"初音ミク{k}", kind=Alias.KIND_OFFICIAL_NAME, ambiguous=ambiguous),
            alias(f"ミク{k}", kind=Alias.KIND_SHORT_NAME, ambiguous=ambiguous),
            alias(f"Miku {m}", "ja-Latn", Alias.KIND_ROMANIZATION, ambiguous=ambiguous),
        ),
    )
    return Miku(created.id, m, k)


VARIANTS: dict[str, Callable[[Miku], tuple[str, str]]] = {
    # name -> (what B writes, the normalised key it collides on)
    "full_width_romanised": lambda c: (full_width(f"HATSUNE MIKU {c.latin}"), f"hatsune miku {c.latin}"),
    "punctuated_romanised": lambda c: (f"hatsune-miku_{c.latin.upper()}!", f"hatsune miku {c.latin}"),
    "spaced_romanised": lambda c: (f"  MIKU   {c.latin} ", f"miku {c.latin}"),
    "hiragana": lambda c: (f"みく{hiragana(c.kana)}", f"みく{hiragana(c.kana)}"),
    "half_width_katakana": lambda c: (f"ﾐｸ{half_width(c.kana)}", f"みく{hiragana(c.kana)}"),
    "kanji_with_middle_dot": lambda c: (f"初音・ミク{c.kana}", f"初音みく{hiragana(c.kana)}"),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("where", ["alias", "canonical_name"])
def test_a_name_of_another_rights_holders_character_is_refused(
    catalog: Any, keys: Any, holders: tuple[Holder, Holder], variant: str, where: str
) -> None:
    a, b = holders
    miku = make_miku(catalog, a)
    written, key = VARIANTS[variant](miku)
    given = Character(rights_holder_id=b.id, canonical_name=f"Chara {unique()}")
    if where == "alias":
        given.aliases.append(alias(written, "ja", ambiguous=True))  # ambiguous on B's side only
    else:
        given.canonical_name = written
    before = list_characters(catalog, keys.admin, rights_holder_id=b.id)

    got = refused(catalog.CreateCharacter, catalog_pb.CreateCharacterRequest(character=given), b.secret)

    assert (got.code, got.reason) == (grpc.StatusCode.ALREADY_EXISTS, "ALIAS_CONFLICT")
    assert (got.metadata["normalized"], got.metadata["conflicting_character_id"]) == (key, miku.id)
    assert list_characters(catalog, keys.admin, rights_holder_id=b.id) == before


def test_an_update_adding_another_rights_holders_name_is_refused(catalog: Any, holders: tuple[Holder, Holder]) -> None:
    a, b = holders
    miku = make_miku(catalog, a)
    mine = create(catalog, b.secret, b.id)
    request = catalog_pb.UpdateCharacterRequest(
        character=Character(id=mine.id, aliases=[alias(f"ﾐｸ{half_width(miku.kana)}")]), update_mask=mask("aliases")
    )

    got = refused(catalog.UpdateCharacter, request, b.secret)

    assert (got.code, got.reason) == (grpc.StatusCode.ALREADY_EXISTS, "ALIAS_CONFLICT")
    assert got.metadata["conflicting_character_id"] == miku.id
    assert get(catalog, b.secret, mine.id) == mine


def test_an_ambiguous_name_on_one_side_only_is_refused(catalog: Any, holders: tuple[Holder, Holder]) -> None:
    a, b = holders
    ambiguous_miku = make_miku(catalog, a, ambiguous=True)

    got = refused(
        catalog.CreateCharacter,
        catalog_pb.CreateCharacterRequest(
            character=Character(
                rights_holder_id=b.id,
                canonical_name=f"Chara {unique()}",
                aliases=[alias(f"みく{hiragana(ambiguous_miku.kana)}")],
            )
        ),
        b.secret,
    )

    assert (got.code, got.reason) == (grpc.StatusCode.ALREADY_EXISTS, "ALIAS_CONFLICT")
    assert got.metadata["conflicting_character_id"] == ambiguous_miku.id


def all_collisions(catalog: Any, secret: str) -> dict[str, Any]:
    found, _ = list_all(
        catalog.ListAliasCollisions, catalog_pb.ListAliasCollisionsRequest(page_size=2), "collisions", secret
    )
    return {c.normalized: c for c in found}


def test_names_marked_ambiguous_on_both_sides_are_shared_and_reported(
    catalog: Any, keys: Any, holders: tuple[Holder, Holder]
) -> None:
    a, b = holders
    miku = make_miku(catalog, a, ambiguous=True)
    shared = create(
        catalog,
        b.secret,
        b.id,
        aliases=(
            alias(f"ﾐｸ{half_width(miku.kana)}", ambiguous=True),
            alias(full_width(f"MIKU {miku.latin}"), "ja-Latn", ambiguous=True),
        ),
    )
    short, romanised = f"みく{hiragana(miku.kana)}", f"miku {miku.latin}"

    reported = all_collisions(catalog, keys.admin)
    audited = all_collisions(catalog, keys.auditor)
    catalog.ArchiveCharacter(catalog_pb.ArchiveCharacterRequest(id=shared.id), metadata=auth(b.secret))
    after_archive = all_collisions(catalog, keys.admin)

    for key in (short, romanised):
        assert (sorted(reported[key].character_ids), sorted(reported[key].rights_holder_ids)) == (
            sorted([miku.id, shared.id]),
            sorted([a.id, b.id]),
        )
    assert f"初音みく{hiragana(miku.kana)}" not in reported
    assert list(reported) == sorted(reported)
    assert audited == reported
    assert short not in after_archive and romanised not in after_archive


def test_one_rights_holder_may_use_a_name_twice_without_a_collision(
    catalog: Any, keys: Any, holders: tuple[Holder, Holder]
) -> None:
    a, _ = holders
    miku = make_miku(catalog, a)
    twin = create(catalog, a.secret, a.id, name=f"Miku {miku.latin}", aliases=(alias(f"ﾐｸ{half_width(miku.kana)}"),))

    assert twin.rights_holder_id == a.id
    collisions = all_collisions(catalog, keys.admin)
    assert f"miku {miku.latin}" not in collisions and f"みく{hiragana(miku.kana)}" not in collisions


def test_an_archived_character_does_not_hold_its_names(catalog: Any, holders: tuple[Holder, Holder]) -> None:
    a, b = holders
    miku = make_miku(catalog, a)
    catalog.ArchiveCharacter(catalog_pb.ArchiveCharacterRequest(id=miku.id), metadata=auth(a.secret))

    taken = create(catalog, b.secret, b.id, name=f"Hatsune Miku {miku.latin}", aliases=(alias(f"ミク{miku.kana}"),))

    assert taken.canonical_name == f"Hatsune Miku {miku.latin}"


# Ownership: a rights-holder key on another rights holder's characters, terms and history -------


def character_calls(catalog: Any) -> dict[str, Callable[[str], tuple[Callable[..., Any], Any]]]:
    """Every character-scoped RPC of a rights-holder key, given the character id it aims at."""
    return {
        "GetCharacter": lambda cid: (catalog.GetCharacter, catalog_pb.GetCharacterRequest(id=cid)),
        "UpdateCharacter": lambda cid: (
            catalog.UpdateCharacter,
            catalog_pb.UpdateCharacterRequest(
                character=Character(id=cid, canonical_name=f"Hijacked {unique()}"), update_mask=mask("canonical_name")
            ),
        ),
        "ArchiveCharacter": lambda cid: (catalog.ArchiveCharacter, catalog_pb.ArchiveCharacterRequest(id=cid)),
        "OptIn": lambda cid: (catalog.OptIn, catalog_pb.OptInRequest(character_id=cid, terms=terms())),
        "UpdateTerms": lambda cid: (
            catalog.UpdateTerms,
            catalog_pb.UpdateTermsRequest(character_id=cid, terms=terms()),
        ),
        "OptOut": lambda cid: (catalog.OptOut, catalog_pb.OptOutRequest(character_id=cid)),
        "GetTerms": lambda cid: (catalog.GetTerms, catalog_pb.GetTermsRequest(character_id=cid)),
        "GetTerms-version": lambda cid: (catalog.GetTerms, catalog_pb.GetTermsRequest(character_id=cid, version=1)),
        "ListTermsVersions": lambda cid: (
            catalog.ListTermsVersions,
            catalog_pb.ListTermsVersionsRequest(character_id=cid),
        ),
    }


def holder_calls(catalog: Any) -> dict[str, Callable[[str], tuple[Callable[..., Any], Any]]]:
    """Every rights-holder-scoped RPC of a rights-holder key, given the rights holder it aims at."""
    return {
        "CreateCharacter": lambda hid: (
            catalog.CreateCharacter,
            catalog_pb.CreateCharacterRequest(
                character=Character(rights_holder_id=hid, canonical_name=f"Chara {unique()}")
            ),
        ),
        "ListCharacters": lambda hid: (catalog.ListCharacters, catalog_pb.ListCharactersRequest(rights_holder_id=hid)),
        "ImportCharacters": lambda hid: (
            catalog.ImportCharacters,
            catalog_pb.ImportCharactersRequest(
                rights_holder_id=hid, rows=[{"character": {"external_id": unique(), "canonical_name": f"C {unique()}"}}]
            ),
        ),
    }


@pytest.fixture(scope="module")
def victim(catalog: Any, access: Any, keys: Any) -> tuple[Holder, str]:
    """Rights holder B with a character opted in under two terms versions."""
    b = new_holder(catalog, access, keys.admin)
    character = create(catalog, b.secret, b.id)
    opt_in(catalog, b.secret, character.id)
    update_terms(catalog, b.secret, character.id, terms(revenue_share_bps=100))
    return b, character.id


def snapshot(catalog: Any, keys: Any, holder_id: str, character_id: str) -> tuple[Any, ...]:
    return (
        get(catalog, keys.admin, character_id),
        versions(catalog, keys.admin, character_id),
        list_characters(catalog, keys.admin, rights_holder_id=holder_id, state=0),
    )


@pytest.mark.parametrize(
    "rpc",
    [
        "GetCharacter",
        "UpdateCharacter",
        "ArchiveCharacter",
        "OptIn",
        "UpdateTerms",
        "OptOut",
        "GetTerms",
        "GetTerms-version",
        "ListTermsVersions",
    ],
)
def test_a_rights_holder_key_cannot_reach_another_rights_holders_character(
    catalog: Any, keys: Any, holders: tuple[Holder, Holder], victim: tuple[Holder, str], rpc: str
) -> None:
    a, _ = holders
    b, character_id = victim
    build = character_calls(catalog)[rpc]
    before = snapshot(catalog, keys, b.id, character_id)

    existing = refused(*build(character_id), a.secret)
    missing = refused(*build(ids.new_id("character")), a.secret)

    assert (existing.code, existing.reason) == (grpc.StatusCode.PERMISSION_DENIED, "RESOURCE_NOT_OWNED")
    assert (missing.code, missing.reason, missing.fields) == (existing.code, existing.reason, existing.fields)
    assert snapshot(catalog, keys, b.id, character_id) == before


@pytest.mark.parametrize("rpc", ["CreateCharacter", "ListCharacters", "ImportCharacters"])
def test_a_rights_holder_key_cannot_act_for_another_rights_holder(
    catalog: Any, keys: Any, holders: tuple[Holder, Holder], victim: tuple[Holder, str], rpc: str
) -> None:
    a, _ = holders
    b, character_id = victim
    build = holder_calls(catalog)[rpc]
    before = snapshot(catalog, keys, b.id, character_id)

    existing = refused(*build(b.id), a.secret)
    missing = refused(*build(ids.new_id("rights_holder")), a.secret)

    assert (existing.code, existing.reason) == (grpc.StatusCode.PERMISSION_DENIED, "RESOURCE_NOT_OWNED")
    assert (missing.code, missing.reason, missing.fields) == (existing.code, existing.reason, existing.fields)
    assert snapshot(catalog, keys, b.id, character_id) == before


def test_a_rights_holder_key_lists_only_its_own_characters(
    catalog: Any, access: Any, keys: Any, victim: tuple[Holder, str]
) -> None:
    holder = new_holder(catalog, access, keys.admin)
    mine = [create(catalog, holder.secret, holder.id) for _ in range(2)]
    b, character_id = victim
    shared_query = get(catalog, keys.admin, character_id).canonical_name

    every = list_characters(catalog, holder.secret)
    own = list_characters(catalog, holder.secret, rights_holder_id=holder.id)
    searched = list_characters(catalog, holder.secret, query=shared_query)

    assert [c.id for c in every] == [c.id for c in mine] == [c.id for c in own]
    assert searched == []
    assert [c.id for c in list_characters(catalog, b.secret, query=shared_query)] == [character_id]


@pytest.mark.parametrize("rpc", ["GetCharacter", "GetTerms", "GetTerms-version", "ListTermsVersions"])
def test_auditors_read_every_character_and_its_terms(
    catalog: Any, keys: Any, victim: tuple[Holder, str], rpc: str
) -> None:
    b, character_id = victim
    call, request = character_calls(catalog)[rpc](character_id)

    as_auditor = call(request, metadata=auth(keys.auditor))

    assert as_auditor == call(request, metadata=auth(b.secret))


@pytest.mark.parametrize("rpc", ["UpdateCharacter", "ArchiveCharacter", "OptIn", "UpdateTerms", "OptOut"])
def test_auditors_change_nothing(catalog: Any, keys: Any, victim: tuple[Holder, str], rpc: str) -> None:
    b, character_id = victim
    before = snapshot(catalog, keys, b.id, character_id)

    got = refused(*character_calls(catalog)[rpc](character_id), keys.auditor)

    assert (got.code, got.reason) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_PERMITTED")
    assert snapshot(catalog, keys, b.id, character_id) == before


@pytest.mark.parametrize(
    "rpc",
    [
        "GetCharacter",
        "UpdateCharacter",
        "ArchiveCharacter",
        "OptIn",
        "UpdateTerms",
        "OptOut",
        "GetTerms",
        "ListTermsVersions",
        "SuspendCharacter",
        "ReinstateCharacter",
    ],
)
def test_a_missing_character_is_not_found_for_staff(catalog: Any, keys: Any, rpc: str) -> None:
    calls = character_calls(catalog) | {
        "SuspendCharacter": lambda cid: (
            catalog.SuspendCharacter,
            catalog_pb.SuspendCharacterRequest(id=cid, reason="review"),
        ),
        "ReinstateCharacter": lambda cid: (catalog.ReinstateCharacter, catalog_pb.ReinstateCharacterRequest(id=cid)),
    }

    got = refused(*calls[rpc](ids.new_id("character")), keys.admin)

    assert (got.code, got.reason) == (grpc.StatusCode.NOT_FOUND, "CHARACTER_NOT_FOUND")
