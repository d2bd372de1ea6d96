"""Characters, terms, templates, import and collisions through the synchronous Client, against the real server."""

from __future__ import annotations

import datetime as dt
import re

import charter
import pytest
from charter import Client
from charter.v1 import catalog_service_pb2, character_pb2, terms_pb2

from ._live import Live, unique, unique_kana
from ._tap import Tap, follows_pages

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


_MISSING = "0" * 32


@pytest.fixture
def holder(staff: Client) -> str:
    """A fresh rights holder's id."""
    return staff.create_rights_holder(display_name="Crypton", contact_email="rights@crypton.example").id


def _miku(client: Client, holder: str, **options: object) -> character_pb2.Character:
    """A character with two Japanese aliases no other test's character has."""
    short = unique_kana()
    return client.create_character(
        rights_holder_id=holder,
        canonical_name=unique("Hatsune "),
        aliases=[charter.alias("初音" + short, "ja", "official_name"), charter.alias(short, "ja", "short_name")],
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


def test_create_character_sends_every_field_and_a_request_id(client: Client, tap: Tap, holder: str) -> None:
    short, name = unique_kana(), unique("Hatsune ")
    created = client.create_character(
        rights_holder_id=holder,
        canonical_name=name,
        franchise="Vocaloid",
        description="A singing voice synthesizer character.",
        reference_urls=["https://example.com/miku"],
        aliases=[charter.alias(short, "ja", "short_name")],
        external_id="cv-01",
    )

    (call,) = tap.calls_of("CreateCharacter")
    sent = call.request.character
    assert _HEX32.fullmatch(call.request.request_id)
    assert (sent.rights_holder_id, sent.canonical_name, sent.franchise, sent.external_id) == (
        holder,
        name,
        "Vocaloid",
        "cv-01",
    )
    assert list(sent.reference_urls) == ["https://example.com/miku"]
    assert [(a.value, a.language, a.kind) for a in sent.aliases] == [(short, "ja", Alias.KIND_SHORT_NAME)]
    assert created.id.startswith("chr_")
    assert created.state == Character.STATE_OPTED_OUT


def test_create_character_with_a_request_id_is_idempotent(client: Client, tap: Tap, holder: str) -> None:
    same = unique("same-")
    aliases = [charter.alias(unique_kana(), "ja", "short_name")]

    name = unique("Miku ")

    first = client.create_character(rights_holder_id=holder, canonical_name=name, aliases=aliases, request_id=same)
    second = client.create_character(rights_holder_id=holder, canonical_name=name, aliases=aliases, request_id=same)

    assert [c.request.request_id for c in tap.calls_of("CreateCharacter")] == [same, same]
    assert second.id == first.id
    assert [c.id for c in client.list_characters(rights_holder_id=holder)] == [first.id]


def test_lists_of_the_wrong_type_fail_before_any_call(client: Client, tap: Tap, holder: str) -> None:
    with pytest.raises(TypeError) as single_string:
        client.create_character(rights_holder_id=holder, canonical_name="M", reference_urls="https://example.com")
    with pytest.raises(TypeError) as plain_strings:
        client.create_character(rights_holder_id=holder, canonical_name="M", aliases=["ミク"])  # type: ignore[list-item]
    with pytest.raises(TypeError) as not_terms:
        client.opt_in("chr_1", {"permitted_use_types": ["USE_TYPE_CAMEO"]})  # type: ignore[arg-type]
    with pytest.raises(TypeError) as not_rows:
        client.import_characters(holder, [Character(external_id="x")])  # type: ignore[list-item]

    assert {single_string.type, plain_strings.type, not_terms.type, not_rows.type} == {TypeError}
    assert tap.calls == []


def test_get_character_not_found_has_its_reason(client: Client) -> None:
    with pytest.raises(charter.NotFoundError) as exc:
        client.get_character("chr_" + _MISSING)

    assert exc.value.reason == "CHARACTER_NOT_FOUND"


def test_list_characters_passes_filters_and_follows_pages(client: Client, tap: Tap, holder: str) -> None:
    marker = unique()
    created = [
        client.create_character(rights_holder_id=holder, canonical_name=f"C{i} {marker}", franchise="Vocaloid")
        for i in range(5)
    ]
    client.opt_in(created[0].id, _terms())
    tap.clear()

    pager = client.list_characters(rights_holder_id=holder, page_size=2)
    calls_before_iterating = len(tap.calls)
    everything = [c.id for c in pager]
    opted_in = list(client.list_characters(rights_holder_id=holder, state="opted_in", franchise="vocaloid", query="c0"))

    pages = tap.calls_of("ListCharacters")
    filtered = pages[-1].request
    assert calls_before_iterating == 0
    assert everything == [c.id for c in created]
    assert follows_pages(pages[:3], 3)
    assert filtered.state == Character.STATE_OPTED_IN
    assert (filtered.rights_holder_id, filtered.franchise, filtered.query) == (holder, "vocaloid", "c0")
    assert [c.id for c in opted_in] == [created[0].id]


def test_list_characters_rejects_an_unknown_state_at_once(client: Client, tap: Tap, holder: str) -> None:
    with pytest.raises(ValueError) as exc:
        client.list_characters(state="deleted")

    assert exc.type is ValueError
    assert tap.calls == []


def test_update_character_masks_the_given_fields_and_replaces_lists(client: Client, tap: Tap, holder: str) -> None:
    character = _miku(client, holder, franchise="Vocaloid", description="old")
    name = unique("Miku ")

    renamed = client.update_character(character.id, canonical_name=name, description="")
    cleared = client.update_character(character.id, aliases=[], reference_urls=["https://example.com/a"])

    first, second = tap.calls_of("UpdateCharacter")
    assert list(first.request.update_mask.paths) == ["canonical_name", "description"]
    assert list(second.request.update_mask.paths) == ["reference_urls", "aliases"]
    assert (renamed.canonical_name, renamed.description, renamed.franchise) == (name, "", "Vocaloid")
    assert len([a for a in renamed.aliases if not a.derived]) == 2  # the server adds readings of the kanji name
    assert list(cleared.aliases) == []
    assert list(cleared.reference_urls) == ["https://example.com/a"]


def test_update_character_needs_a_field(client: Client, tap: Tap, holder: str) -> None:
    with pytest.raises(ValueError) as exc:
        client.update_character("chr_1")

    assert exc.type is ValueError
    assert tap.calls == []


def test_archive_suspend_and_reinstate(client: Client, tap: Tap, holder: str) -> None:
    character = _miku(client, holder)
    client.opt_in(character.id, _terms())

    suspended = client.suspend_character(character.id, reason="under review")
    reinstated = client.reinstate_character(character.id)
    with pytest.raises(charter.FailedPreconditionError) as again:
        client.reinstate_character(character.id)
    archived = client.archive_character(character.id)
    with pytest.raises(charter.FailedPreconditionError) as changed:
        client.update_character(character.id, franchise="x")

    assert tap.calls_of("SuspendCharacter")[0].request.reason == "under review"
    assert suspended.state == Character.STATE_SUSPENDED
    assert reinstated.state == Character.STATE_OPTED_IN
    assert again.value.reason == "CHARACTER_NOT_SUSPENDED"
    assert archived.state == Character.STATE_ARCHIVED
    assert changed.value.reason == "CHARACTER_ARCHIVED"


def test_terms_versions_stay_readable(client: Client, tap: Tap, holder: str, sdk_live: Live) -> None:
    character = _miku(client, holder)

    opted_in = client.opt_in(character.id, _terms(attribution_text="© Crypton"))
    second = client.update_terms(character.id, _terms(revenue_share_bps=500))
    current = client.get_terms(character.id)
    first = client.get_terms(character.id, version=1)
    history = list(client.list_terms_versions(character.id, page_size=1))

    assert tap.calls_of("OptIn")[0].request.terms.attribution_text == "© Crypton"
    assert opted_in.character.state == Character.STATE_OPTED_IN
    assert (opted_in.terms.version, opted_in.terms.author_key_id) == (1, sdk_live.admin_key_id)
    assert second.version == 2
    assert (current.version, current.revenue_share_bps) == (2, 500)
    assert (first.version, first.attribution_text) == (1, "© Crypton")
    assert [t.version for t in history] == [2, 1]
    assert follows_pages(tap.calls_of("ListTermsVersions"), 2)
    assert [c.request.version for c in tap.calls_of("GetTerms")] == [0, 1]


def test_terms_state_errors_have_reasons(client: Client, holder: str) -> None:
    character = _miku(client, holder)

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


def test_invalid_terms_name_the_fields(client: Client, holder: str) -> None:
    character = _miku(client, holder)

    with pytest.raises(charter.InvalidArgumentError) as exc:
        client.opt_in(character.id, terms_pb2.Terms(revenue_share_bps=20000))

    assert exc.value.reason == "INVALID_FIELD"
    assert {v.field for v in exc.value.field_violations} == {
        "terms.permitted_use_types",
        "terms.max_content_rating",
        "terms.revenue_share_bps",
    }


def test_opt_out_returns_the_revoked_grant_count(client: Client, tap: Tap, holder: str) -> None:
    character = _miku(client, holder)
    client.opt_in(character.id, _terms())
    expire = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    for number in range(3):
        licensee = client.create_licensee(display_name=f"App {number}", contact_email="o@app.example", platform="app")
        client.issue_grant(character_id=character.id, licensee_id=licensee.id, expire_time=expire)

    response = client.opt_out(character.id, reason="contract ended")

    assert tap.calls_of("OptOut")[0].request.reason == "contract ended"
    assert isinstance(response, catalog_service_pb2.OptOutResponse)
    assert response.character.state == Character.STATE_OPTED_OUT
    assert response.revoked_grant_count == 3


def test_list_terms_templates_returns_a_list(client: Client) -> None:
    templates = client.list_terms_templates()

    assert isinstance(templates, list)
    assert [t.name for t in templates] == ["fan-noncommercial", "commercial-partner", "promotional-cameo"]
    assert not templates[0].terms.commercial_use_allowed


def test_import_characters_reports_per_row_outcomes(client: Client, tap: Tap, holder: str) -> None:
    rows = [
        catalog_service_pb2.ImportRow(character=Character(external_id="a", canonical_name=unique("A "))),
        catalog_service_pb2.ImportRow(
            character=Character(external_id="b", canonical_name=unique("B "), rights_holder_id="ignored"),
            terms=_terms(),
        ),
        catalog_service_pb2.ImportRow(character=Character(external_id="c")),
    ]

    first = client.import_characters(holder, rows)
    again = client.import_characters(holder, rows[:2])

    request = tap.calls_of("ImportCharacters")[0].request
    assert request.rights_holder_id == holder
    assert [r.character.external_id for r in request.rows] == ["a", "b", "c"]
    assert [(r.index, r.external_id, r.outcome) for r in first] == [
        (0, "a", Result.OUTCOME_CREATED),
        (1, "b", Result.OUTCOME_CREATED),
        (2, "c", Result.OUTCOME_FAILED),
    ]
    assert first[2].error_reason == "INVALID_FIELD"
    assert [v.field for v in first[2].field_violations] == ["character.canonical_name"]
    assert [r.outcome for r in again] == [Result.OUTCOME_UNCHANGED, Result.OUTCOME_UNCHANGED]


def test_list_alias_collisions_follows_pages(client: Client, staff: Client, tap: Tap, holder: str) -> None:
    other = staff.create_rights_holder(display_name="Other Studio", contact_email="rights@other.example").id
    shared = sorted(unique().lower() for _ in range(3))
    pairs = []
    for name in shared:
        ours, theirs = (
            staff.create_character(
                rights_holder_id=owner, canonical_name=unique(), aliases=[charter.alias(name, "en", ambiguous=True)]
            ).id
            for owner in (holder, other)
        )
        pairs.append((name, sorted([ours, theirs])))

    collisions = list(client.list_alias_collisions(page_size=2))

    listed = [c.normalized for c in collisions]
    found = [(c.normalized, sorted(c.character_ids)) for c in collisions if c.normalized in shared]
    calls = tap.calls_of("ListAliasCollisions")
    assert found == pairs
    assert listed == sorted(listed)
    assert follows_pages(calls, len(calls))
    assert len(calls) >= 2
