"""Characters, terms, templates, import and collisions through the synchronous Client against the fake server."""

from __future__ import annotations

import re

import charter
import pytest
from charter import Client
from charter.v1 import catalog_service_pb2, character_pb2, terms_pb2

from ._fakes import CALLER_ID, RunningFake

_HEX32 = re.compile(r"[0-9a-f]{32}")
Character = character_pb2.Character
Alias = character_pb2.Alias
Result = catalog_service_pb2.ImportRowResult


def _terms(**overrides: object) -> terms_pb2.Terms:
    terms = terms_pb2.Terms(
        permitted_use_types=[terms_pb2.USE_TYPE_IMAGE_GENERATION],
        max_content_rating=terms_pb2.CONTENT_RATING_TEEN,
    )
    for name, value in overrides.items():
        setattr(terms, name, value)
    return terms


def _miku(client: Client, **options: object) -> character_pb2.Character:
    return client.create_character(
        rights_holder_id="rh_1",
        canonical_name="Hatsune Miku",
        aliases=[charter.alias("初音ミク", "ja", "official_name"), charter.alias("ミク", "ja", "short_name")],
        **options,  # type: ignore[arg-type]
    )


def test_alias_helper_accepts_kind_names_and_values() -> None:
    by_name = charter.alias("ミク", "ja", "short_name")
    by_prefixed_name = charter.alias("Hatsune Miku", "ja-Latn", "KIND_ROMANIZATION", ambiguous=True)
    by_value = charter.alias("Miku", "en", Alias.KIND_TRANSLATION)
    default = charter.alias("Miku-san", "ja-Latn")

    assert (by_name.value, by_name.language, by_name.kind) == ("ミク", "ja", Alias.KIND_SHORT_NAME)
    assert (by_prefixed_name.kind, by_prefixed_name.ambiguous) == (Alias.KIND_ROMANIZATION, True)
    assert by_value.kind == Alias.KIND_TRANSLATION
    assert default.kind == Alias.KIND_NICKNAME
    assert not default.ambiguous


def test_alias_helper_rejects_unknown_kinds() -> None:
    with pytest.raises(ValueError) as exc:
        charter.alias("ミク", "ja", "stage_name")

    assert exc.type is ValueError


def test_create_character_sends_every_field_and_a_request_id(client: Client, server: RunningFake) -> None:
    created = client.create_character(
        rights_holder_id="rh_1",
        canonical_name="Hatsune Miku",
        franchise="Vocaloid",
        description="A singing voice synthesizer character.",
        reference_urls=["https://example.com/miku"],
        aliases=[charter.alias("ミク", "ja", "short_name")],
        external_id="cv-01",
    )

    (call,) = server.fake.calls_of("CreateCharacter")
    sent = call.request.character
    assert _HEX32.fullmatch(call.request.request_id)
    assert (sent.rights_holder_id, sent.canonical_name, sent.franchise, sent.external_id) == (
        "rh_1",
        "Hatsune Miku",
        "Vocaloid",
        "cv-01",
    )
    assert list(sent.reference_urls) == ["https://example.com/miku"]
    assert [(a.value, a.language, a.kind) for a in sent.aliases] == [("ミク", "ja", Alias.KIND_SHORT_NAME)]
    assert created.id.startswith("chr_")
    assert created.state == Character.STATE_OPTED_OUT


def test_create_character_with_a_request_id_is_idempotent(client: Client, server: RunningFake) -> None:
    first = _miku(client, request_id="same")
    second = _miku(client, request_id="same")

    assert [c.request.request_id for c in server.fake.calls_of("CreateCharacter")] == ["same", "same"]
    assert second.id == first.id
    assert len(server.fake.characters) == 1


def test_lists_of_the_wrong_type_fail_before_any_call(client: Client, server: RunningFake) -> None:
    with pytest.raises(TypeError) as single_string:
        client.create_character(rights_holder_id="rh_1", canonical_name="M", reference_urls="https://example.com")
    with pytest.raises(TypeError) as plain_strings:
        client.create_character(rights_holder_id="rh_1", canonical_name="M", aliases=["ミク"])  # type: ignore[list-item]
    with pytest.raises(TypeError) as not_terms:
        client.opt_in("chr_1", {"permitted_use_types": ["USE_TYPE_CAMEO"]})  # type: ignore[arg-type]
    with pytest.raises(TypeError) as not_rows:
        client.import_characters("rh_1", [Character(external_id="x")])  # type: ignore[list-item]

    assert {single_string.type, plain_strings.type, not_terms.type, not_rows.type} == {TypeError}
    assert server.fake.calls == []


def test_get_character_not_found_has_its_reason(client: Client) -> None:
    with pytest.raises(charter.NotFoundError) as exc:
        client.get_character("chr_missing")

    assert exc.value.reason == "CHARACTER_NOT_FOUND"


def test_list_characters_passes_filters_and_follows_pages(client: Client, server: RunningFake) -> None:
    created = [
        client.create_character(rights_holder_id="rh_1", canonical_name=f"C{i}", franchise="Vocaloid") for i in range(5)
    ]
    client.opt_in(created[0].id, _terms())
    server.fake.calls.clear()

    pager = client.list_characters(page_size=2)
    calls_before_iterating = len(server.fake.calls)
    everything = [c.id for c in pager]
    opted_in = list(client.list_characters(rights_holder_id="rh_1", state="opted_in", franchise="vocaloid", query="c0"))

    pages = server.fake.calls_of("ListCharacters")
    filtered = pages[-1].request
    assert calls_before_iterating == 0
    assert everything == [c.id for c in created]
    assert [c.request.page_token for c in pages[:3]] == ["", "2", "4"]
    assert filtered.state == Character.STATE_OPTED_IN
    assert (filtered.rights_holder_id, filtered.franchise, filtered.query) == ("rh_1", "vocaloid", "c0")
    assert [c.id for c in opted_in] == [created[0].id]


def test_list_characters_rejects_an_unknown_state_at_once(client: Client, server: RunningFake) -> None:
    with pytest.raises(ValueError) as exc:
        client.list_characters(state="deleted")

    assert exc.type is ValueError
    assert server.fake.calls == []


def test_update_character_masks_the_given_fields_and_replaces_lists(client: Client, server: RunningFake) -> None:
    character = _miku(client, franchise="Vocaloid", description="old")

    renamed = client.update_character(character.id, canonical_name="Miku", description="")
    cleared = client.update_character(character.id, aliases=[], reference_urls=["https://example.com/a"])

    first, second = server.fake.calls_of("UpdateCharacter")
    assert list(first.request.update_mask.paths) == ["canonical_name", "description"]
    assert list(second.request.update_mask.paths) == ["reference_urls", "aliases"]
    assert (renamed.canonical_name, renamed.description, renamed.franchise) == ("Miku", "", "Vocaloid")
    assert len(renamed.aliases) == 2
    assert list(cleared.aliases) == []
    assert list(cleared.reference_urls) == ["https://example.com/a"]


def test_update_character_needs_a_field(client: Client, server: RunningFake) -> None:
    with pytest.raises(ValueError) as exc:
        client.update_character("chr_1")

    assert exc.type is ValueError
    assert server.fake.calls == []


def test_archive_suspend_and_reinstate(client: Client, server: RunningFake) -> None:
    character = _miku(client)
    client.opt_in(character.id, _terms())

    suspended = client.suspend_character(character.id, reason="under review")
    reinstated = client.reinstate_character(character.id)
    with pytest.raises(charter.FailedPreconditionError) as again:
        client.reinstate_character(character.id)
    archived = client.archive_character(character.id)
    with pytest.raises(charter.FailedPreconditionError) as changed:
        client.update_character(character.id, franchise="x")

    assert server.fake.calls_of("SuspendCharacter")[0].request.reason == "under review"
    assert suspended.state == Character.STATE_SUSPENDED
    assert reinstated.state == Character.STATE_OPTED_IN
    assert again.value.reason == "CHARACTER_NOT_SUSPENDED"
    assert archived.state == Character.STATE_ARCHIVED
    assert changed.value.reason == "CHARACTER_ARCHIVED"


def test_terms_versions_stay_readable(client: Client, server: RunningFake) -> None:
    character = _miku(client)

    opted_in = client.opt_in(character.id, _terms(attribution_text="© Crypton"))
    second = client.update_terms(character.id, _terms(revenue_share_bps=500))
    current = client.get_terms(character.id)
    first = client.get_terms(character.id, version=1)
    history = list(client.list_terms_versions(character.id, page_size=1))

    assert server.fake.calls_of("OptIn")[0].request.terms.attribution_text == "© Crypton"
    assert opted_in.character.state == Character.STATE_OPTED_IN
    assert (opted_in.terms.version, opted_in.terms.author_key_id) == (1, CALLER_ID)
    assert second.version == 2
    assert (current.version, current.revenue_share_bps) == (2, 500)
    assert (first.version, first.attribution_text) == (1, "© Crypton")
    assert [t.version for t in history] == [2, 1]
    assert [c.request.page_token for c in server.fake.calls_of("ListTermsVersions")] == ["", "1"]
    assert [c.request.version for c in server.fake.calls_of("GetTerms")] == [0, 1]


def test_terms_state_errors_have_reasons(client: Client) -> None:
    character = _miku(client)

    with pytest.raises(charter.FailedPreconditionError) as not_opted_in:
        client.update_terms(character.id, _terms())
    with pytest.raises(charter.NotFoundError) as no_terms:
        client.get_terms(character.id)
    client.opt_in(character.id, _terms())
    with pytest.raises(charter.FailedPreconditionError) as twice:
        client.opt_in(character.id, _terms())
    with pytest.raises(charter.NotFoundError) as no_version:
        client.get_terms(character.id, version=7)

    assert not_opted_in.value.reason == "CHARACTER_NOT_OPTED_IN"
    assert no_terms.value.reason == "TERMS_VERSION_NOT_FOUND"
    assert twice.value.reason == "CHARACTER_ALREADY_OPTED_IN"
    assert no_version.value.reason == "TERMS_VERSION_NOT_FOUND"


def test_invalid_terms_name_the_fields(client: Client) -> None:
    character = _miku(client)

    with pytest.raises(charter.InvalidArgumentError) as exc:
        client.opt_in(character.id, terms_pb2.Terms(revenue_share_bps=20000))

    assert exc.value.reason == "INVALID_FIELD"
    assert {v.field for v in exc.value.field_violations} == {
        "terms.permitted_use_types",
        "terms.max_content_rating",
        "terms.revenue_share_bps",
    }


def test_opt_out_returns_the_revoked_grant_count(client: Client, server: RunningFake) -> None:
    character = _miku(client)
    client.opt_in(character.id, _terms())
    server.fake.grants[character.id] = 3

    response = client.opt_out(character.id, reason="contract ended")

    assert server.fake.calls_of("OptOut")[0].request.reason == "contract ended"
    assert isinstance(response, catalog_service_pb2.OptOutResponse)
    assert response.character.state == Character.STATE_OPTED_OUT
    assert response.revoked_grant_count == 3


def test_list_terms_templates_returns_a_list(client: Client) -> None:
    templates = client.list_terms_templates()

    assert isinstance(templates, list)
    assert [t.name for t in templates] == ["fan-noncommercial", "commercial-partner"]
    assert not templates[0].terms.commercial_use_allowed


def test_import_characters_reports_per_row_outcomes(client: Client, server: RunningFake) -> None:
    rows = [
        catalog_service_pb2.ImportRow(character=Character(external_id="a", canonical_name="A")),
        catalog_service_pb2.ImportRow(
            character=Character(external_id="b", canonical_name="B", rights_holder_id="ignored"),
            terms=_terms(),
        ),
        catalog_service_pb2.ImportRow(character=Character(external_id="c")),
    ]

    first = client.import_characters("rh_1", rows)
    again = client.import_characters("rh_1", rows[:2])

    request = server.fake.calls_of("ImportCharacters")[0].request
    assert request.rights_holder_id == "rh_1"
    assert [r.character.external_id for r in request.rows] == ["a", "b", "c"]
    assert [(r.index, r.external_id, r.outcome) for r in first] == [
        (0, "a", Result.OUTCOME_CREATED),
        (1, "b", Result.OUTCOME_CREATED),
        (2, "c", Result.OUTCOME_FAILED),
    ]
    assert first[2].error_reason == "INVALID_FIELD"
    assert [v.field for v in first[2].field_violations] == ["character.canonical_name"]
    assert [r.outcome for r in again] == [Result.OUTCOME_UNCHANGED, Result.OUTCOME_UNCHANGED]


def test_list_alias_collisions_follows_pages(client: Client, server: RunningFake) -> None:
    server.fake.collisions = [
        catalog_service_pb2.AliasCollision(normalized=name, character_ids=["chr_a", "chr_b"])
        for name in ("blue", "red", "sky")
    ]

    found = [c.normalized for c in client.list_alias_collisions(page_size=2)]

    assert found == ["blue", "red", "sky"]
    assert [c.request.page_token for c in server.fake.calls_of("ListAliasCollisions")] == ["", "2"]
