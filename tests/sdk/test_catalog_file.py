"""The catalogue import file formats: good rows, every kind of bad row, whole-file errors, template merging."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from charter import catalog_file
from charter.catalog_file import CatalogFileError, CatalogRow, RowError
from charter.v1 import catalog_service_pb2, character_pb2, terms_pb2

Alias = character_pb2.Alias

_TEMPLATES = [
    terms_pb2.TermsTemplate(
        name="fan",
        terms=terms_pb2.Terms(
            permitted_use_types=[terms_pb2.USE_TYPE_IMAGE_GENERATION, terms_pb2.USE_TYPE_VIDEO_GENERATION],
            max_content_rating=terms_pb2.CONTENT_RATING_TEEN,
            prohibited_categories=[terms_pb2.CONTENT_CATEGORY_SEXUAL, terms_pb2.CONTENT_CATEGORY_CHARACTER_DAMAGING],
            commercial_use_allowed=True,
            attribution_text="© Studio",
            daily_quota=50,
        ),
    )
]


def _good(entries: list[CatalogRow | RowError]) -> list[CatalogRow]:
    return [e for e in entries if isinstance(e, CatalogRow)]


def _errors(entries: list[CatalogRow | RowError]) -> dict[int, RowError]:
    return {e.row: e for e in entries if isinstance(e, RowError)}


def _fields(error: RowError) -> list[str]:
    return [v.field for v in error.violations]


def _csv(*lines: str) -> str:
    return "\n".join(lines) + "\n"


# -- JSON -------------------------------------------------------------------------------------


def test_json_rows_in_snake_and_camel_case() -> None:
    text = json.dumps(
        [
            {
                "external_id": "cv-01",
                "canonical_name": "Hatsune Miku",
                "franchise": "Vocaloid",
                "description": "Singer",
                "reference_urls": ["https://example.com/miku"],
                "aliases": [
                    {"value": "初音ミク", "language": "ja", "kind": "KIND_OFFICIAL_NAME"},
                    {"value": "ミク", "language": "ja", "kind": "short_name", "ambiguous": True},
                    {"value": "Miku", "language": "en"},
                ],
                "terms_template": "fan",
                "terms": {"daily_quota": 10, "maxContentRating": "all_ages"},
            },
            {
                "externalId": "cv-02",
                "canonicalName": "Kagamine Rin",
                "referenceUrls": [],
                # Output-only fields, as `charter characters list --json` prints them, are ignored.
                "id": "chr_1",
                "state": "STATE_OPTED_IN",
                "termsVersion": 2,
                "createTime": "2030-01-01T00:00:00Z",
                "aliases": [{"value": "Rin", "language": "en", "kind": "KIND_NICKNAME", "normalized": "rin"}],
            },
        ]
    )

    first, second = catalog_file.parse_json(text)

    assert isinstance(first, CatalogRow)
    assert isinstance(second, CatalogRow)
    assert (first.row, first.external_id, first.terms_template) == (1, "cv-01", "fan")
    assert first.character.canonical_name == "Hatsune Miku"
    assert (first.character.franchise, first.character.description) == ("Vocaloid", "Singer")
    assert list(first.character.reference_urls) == ["https://example.com/miku"]
    assert [(a.value, a.language, a.kind, a.ambiguous) for a in first.character.aliases] == [
        ("初音ミク", "ja", Alias.KIND_OFFICIAL_NAME, False),
        ("ミク", "ja", Alias.KIND_SHORT_NAME, True),
        ("Miku", "en", Alias.KIND_NICKNAME, False),
    ]
    assert first.terms is not None
    assert first.terms.fields == {"daily_quota", "max_content_rating"}
    assert first.terms.terms.max_content_rating == terms_pb2.CONTENT_RATING_ALL_AGES
    assert (second.row, second.external_id, second.terms, second.terms_template) == (2, "cv-02", None, "")
    assert [a.normalized for a in second.character.aliases] == [""]


def test_json_object_with_a_characters_list() -> None:
    entries = catalog_file.parse_json('{"characters": [{"external_id": "a", "canonical_name": "A"}]}')

    assert [e.external_id for e in _good(entries)] == ["a"]


def test_json_bad_rows_are_reported_and_good_rows_still_parsed() -> None:
    rows: list[object] = [
        {"external_id": "ok-1", "canonical_name": "One"},
        "not an object",
        {"canonical_name": "No id"},
        {"external_id": "no-name"},
        {"external_id": "types", "canonical_name": "T", "franchise": 3, "reference_urls": "https://example.com"},
        {"external_id": "unknown", "canonical_name": "U", "nickname": "x"},
        {"external_id": "twice", "canonical_name": "T", "canonicalName": "T"},
        {
            "external_id": "aliases",
            "canonical_name": "A",
            "aliases": ["ミク", {"value": "ミク"}, {"value": "ミク", "language": "ja", "kind": "stage_name"}],
        },
        {
            "external_id": "alias-flag",
            "canonical_name": "A",
            "aliases": [{"value": "v", "language": "en", "ambiguous": "yes"}],
        },
        {"external_id": "terms", "canonical_name": "T", "terms": {"maxContentRating": "extreme"}},
        {"external_id": "terms-field", "canonical_name": "T", "terms": {"colour": "blue"}},
        {"external_id": "terms-type", "canonical_name": "T", "terms": {"daily_quota": "lots"}},
        {"external_id": "terms-list", "canonical_name": "T", "terms": []},
        {"external_id": "template", "canonical_name": "T", "terms_template": 7},
        {"external_id": "ok-1", "canonical_name": "Again"},
        {"external_id": "ok-2", "canonical_name": "Two"},
    ]

    entries = catalog_file.parse_json(json.dumps(rows))

    errors = _errors(entries)
    assert len(entries) == len(rows)
    assert [(e.row, e.external_id) for e in _good(entries)] == [(1, "ok-1"), (16, "ok-2")]
    assert _fields(errors[2]) == ["row"]
    assert (errors[3].external_id, _fields(errors[3])) == ("", ["external_id"])
    assert _fields(errors[4]) == ["canonical_name"]
    assert _fields(errors[5]) == ["franchise", "reference_urls"]
    assert _fields(errors[6]) == ["nickname"]
    assert _fields(errors[7]) == ["canonicalName"]
    assert _fields(errors[8]) == ["aliases[0]", "aliases[1].language", "aliases[2].kind"]
    assert _fields(errors[9]) == ["aliases[0].ambiguous"]
    assert _fields(errors[10]) == ["terms.maxContentRating"]
    assert _fields(errors[11]) == ["terms.colour"]
    assert _fields(errors[12]) == ["terms.daily_quota"]
    assert _fields(errors[13]) == ["terms"]
    assert _fields(errors[14]) == ["terms_template"]
    assert (errors[15].reason, _fields(errors[15])) == ("EXTERNAL_ID_CONFLICT", ["external_id"])
    assert {e.reason for row, e in errors.items() if row != 15} == {"INVALID_FIELD"}


@pytest.mark.parametrize(
    "text",
    ["[{", '{"rows": []}', '"characters"', ""],
    ids=["truncated", "wrong-key", "string", "empty"],
)
def test_json_files_that_cannot_be_read_at_all(text: str) -> None:
    with pytest.raises(CatalogFileError) as exc:
        catalog_file.parse_json(text)

    assert isinstance(exc.value, ValueError)


# -- CSV --------------------------------------------------------------------------------------


def test_csv_rows_with_every_column() -> None:
    text = _csv(
        "External_ID , canonical_name,franchise,description,reference_urls,aliases,terms_template,terms_json",
        "cv-01,Hatsune Miku,Vocaloid,Singer,https://example.com/a; https://example.com/b,"
        '初音ミク|ja|official_name; ミク | ja | short_name ;Miku|en||true;,fan,"{""daily_quota"": 5}"',
        ",,,,,,,",
        "",
        "cv-02,Kagamine Rin,,,,,,",
    )

    first, second = catalog_file.parse_csv("\ufeff" + text)

    assert isinstance(first, CatalogRow)
    assert isinstance(second, CatalogRow)
    assert (first.row, first.external_id, first.terms_template) == (2, "cv-01", "fan")
    assert (first.character.franchise, first.character.description) == ("Vocaloid", "Singer")
    assert list(first.character.reference_urls) == ["https://example.com/a", "https://example.com/b"]
    assert [(a.value, a.language, a.kind, a.ambiguous) for a in first.character.aliases] == [
        ("初音ミク", "ja", Alias.KIND_OFFICIAL_NAME, False),
        ("ミク", "ja", Alias.KIND_SHORT_NAME, False),
        ("Miku", "en", Alias.KIND_NICKNAME, True),
    ]
    assert first.terms is not None
    assert first.terms.fields == {"daily_quota"}
    assert first.terms.terms.daily_quota == 5
    # Blank rows are skipped but still counted, so row numbers match a spreadsheet's.
    assert (second.row, second.external_id, second.terms) == (5, "cv-02", None)


def test_csv_needs_only_the_required_columns_in_any_order() -> None:
    entries = catalog_file.parse_csv(_csv("canonical_name,external_id", "Miku,cv-01"))

    (row,) = _good(entries)
    assert (row.external_id, row.character.canonical_name) == ("cv-01", "Miku")


def test_csv_bad_rows_are_reported_with_spreadsheet_row_numbers() -> None:
    text = _csv(
        "external_id,canonical_name,aliases,terms_json",
        "ok-1,One,,",
        ",No id,,",
        "no-name,,,",
        "no-language,A,ミク,",
        "bad-kind,A,ミク|ja|stage_name,",
        "bad-flag,A,ミク|ja|short_name|maybe,",
        "too-many-parts,A,ミク|ja|short_name|true|extra,",
        "empty-value,A,|ja,",
        'not-json,A,,"{oops"',
        'not-object,A,,"[1, 2]"',
        'unknown-term,A,,"{""colour"": ""blue""}"',
        'bad-enum,A,,"{""permitted_use_types"": [""video_generation"", ""hologram""]}"',
        "extra-cells,A,,,surplus",
        "ok-1,Again,,",
        "ok-2,Two,,",
        "several,,ミク,{",
    )

    entries = catalog_file.parse_csv(text)

    errors = _errors(entries)
    assert [(e.row, e.external_id) for e in _good(entries)] == [(2, "ok-1"), (16, "ok-2")]
    assert (errors[3].external_id, _fields(errors[3])) == ("", ["external_id"])
    assert _fields(errors[4]) == ["canonical_name"]
    assert _fields(errors[5]) == ["aliases[0]"]
    assert _fields(errors[6]) == ["aliases[0]"]
    assert _fields(errors[7]) == ["aliases[0]"]
    assert _fields(errors[8]) == ["aliases[0]"]
    assert _fields(errors[9]) == ["aliases[0]"]
    assert _fields(errors[10]) == ["terms_json"]
    assert _fields(errors[11]) == ["terms_json"]
    assert _fields(errors[12]) == ["terms_json.colour"]
    assert _fields(errors[13]) == ["terms_json.permitted_use_types[1]"]
    assert _fields(errors[14]) == ["row"]
    assert (errors[15].reason, _fields(errors[15])) == ("EXTERNAL_ID_CONFLICT", ["external_id"])
    assert _fields(errors[17]) == ["canonical_name", "aliases[0]", "terms_json"]
    assert len(entries) == 16


@pytest.mark.parametrize(
    "text",
    [
        "",
        "external_id,canonical_name,colour\n",
        "external_id,franchise\n",
        "external_id,canonical_name,external_id\n",
    ],
    ids=["no-header", "unknown-column", "missing-required", "repeated-column"],
)
def test_csv_files_that_cannot_be_read_at_all(text: str) -> None:
    with pytest.raises(CatalogFileError) as exc:
        catalog_file.parse_csv(text)

    assert isinstance(exc.value, ValueError)


def test_parse_rejects_bytes_that_are_not_utf8() -> None:
    with pytest.raises(CatalogFileError) as exc:
        catalog_file.parse("external_id,canonical_name\nx,Mik\xf6\n".encode("latin-1"), format="csv")

    assert isinstance(exc.value, ValueError)


def test_load_takes_the_format_from_the_extension(tmp_path: Path) -> None:
    csv_file = tmp_path / "catalogue.CSV"
    csv_file.write_text("external_id,canonical_name\na,A\n", encoding="utf-8")
    json_file = tmp_path / "catalogue.json"
    json_file.write_text('[{"external_id": "b", "canonical_name": "B"}]', encoding="utf-8")
    other = tmp_path / "catalogue.txt"
    other.write_text('[{"external_id": "c", "canonical_name": "C"}]', encoding="utf-8")

    from_csv = catalog_file.load(csv_file)
    from_json = catalog_file.load(json_file)
    forced = catalog_file.load(other, format="json")
    with pytest.raises(CatalogFileError) as unknown:
        catalog_file.load(other)

    assert [e.external_id for e in from_csv] == ["a"]
    assert [e.external_id for e in from_json] == ["b"]
    assert [e.external_id for e in forced] == ["c"]
    assert isinstance(unknown.value, ValueError)


def test_parse_alias_entry() -> None:
    alias = catalog_file.parse_alias_entry(" Hatsune Miku | ja-Latn | romanization | TRUE ")

    assert (alias.value, alias.language, alias.kind, alias.ambiguous) == (
        "Hatsune Miku",
        "ja-Latn",
        Alias.KIND_ROMANIZATION,
        True,
    )


# -- terms and templates ----------------------------------------------------------------------


def _row(**fields: object) -> CatalogRow:
    data = {"external_id": "x", "canonical_name": "X", **fields}
    (entry,) = catalog_file.parse_json(json.dumps([data]))
    assert isinstance(entry, CatalogRow), entry
    return entry


def test_template_then_row_terms_each_given_field_replacing_the_templates() -> None:
    row = _row(
        terms_template="fan",
        terms={
            "prohibited_categories": ["hate"],
            "commercialUseAllowed": False,
            "daily_quota": None,
            "revenue_share_bps": 250,
        },
    )

    resolved = catalog_file.resolve(row, _TEMPLATES)

    assert isinstance(resolved, catalog_service_pb2.ImportRow)
    terms = resolved.terms
    assert resolved.character.external_id == "x"
    # Lists are replaced, not appended to; given defaults (false, null) win over the template.
    assert list(terms.prohibited_categories) == [terms_pb2.CONTENT_CATEGORY_HATE]
    assert not terms.commercial_use_allowed
    assert not terms.HasField("daily_quota")
    assert terms.revenue_share_bps == 250
    # Fields the row does not give come from the template.
    assert list(terms.permitted_use_types) == list(_TEMPLATES[0].terms.permitted_use_types)
    assert terms.max_content_rating == terms_pb2.CONTENT_RATING_TEEN
    assert terms.attribution_text == "© Studio"
    # The template itself is untouched.
    assert _TEMPLATES[0].terms.daily_quota == 50


def test_template_alone_row_terms_alone_and_neither() -> None:
    template_only = catalog_file.resolve(_row(terms_template="fan"), {t.name: t for t in _TEMPLATES})
    terms_only = catalog_file.resolve(
        _row(terms={"permitted_use_types": ["USE_TYPE_CAMEO"], "max_content_rating": "mature", "version": 4}),
        _TEMPLATES,
    )
    neither = catalog_file.resolve(_row(), [])

    assert isinstance(template_only, catalog_service_pb2.ImportRow)
    assert isinstance(terms_only, catalog_service_pb2.ImportRow)
    assert isinstance(neither, catalog_service_pb2.ImportRow)
    assert template_only.terms == _TEMPLATES[0].terms
    assert list(terms_only.terms.permitted_use_types) == [terms_pb2.USE_TYPE_CAMEO]
    assert terms_only.terms.version == 0  # Output-only fields are dropped.
    assert not neither.HasField("terms")


def test_unknown_template_is_a_row_error() -> None:
    resolved = catalog_file.resolve(_row(terms_template="missing"), _TEMPLATES)

    assert isinstance(resolved, RowError)
    assert (resolved.row, resolved.external_id, resolved.reason) == (1, "x", "INVALID_FIELD")
    assert _fields(resolved) == ["terms_template"]


def test_terms_from_json_reads_shown_terms_back() -> None:
    shown = {
        "version": 3,
        "characterId": "chr_1",
        "permittedUseTypes": ["USE_TYPE_VIDEO_GENERATION"],
        "maxContentRating": "CONTENT_RATING_TEEN",
        "perUseFee": {"currencyCode": "JPY", "minorUnits": "120"},
        "validUntil": "2031-01-01T00:00:00Z",
        "createTime": "2030-01-01T00:00:00Z",
        "authorKeyId": "key_1",
    }

    override = catalog_file.terms_from_json(shown)
    terms = override.over()

    assert override.fields == {"permitted_use_types", "max_content_rating", "per_use_fee", "valid_until"}
    assert (terms.per_use_fee.currency_code, terms.per_use_fee.minor_units) == ("JPY", 120)
    assert terms.valid_until.seconds == 1924992000
    assert (terms.version, terms.character_id, terms.author_key_id) == (0, "", "")
    assert not terms.HasField("create_time")


def test_terms_from_json_names_the_bad_field() -> None:
    with pytest.raises(ValueError) as exc:
        catalog_file.terms_from_json({"max_content_rating": "extreme"})

    assert str(exc.value).startswith("terms.max_content_rating:")


def test_row_error_as_an_import_result() -> None:
    (error,) = catalog_file.parse_csv(_csv("external_id,canonical_name", "x,"))
    assert isinstance(error, RowError)

    result = error.to_result()

    assert result.outcome == catalog_service_pb2.ImportRowResult.OUTCOME_FAILED
    assert (result.external_id, result.error_reason) == ("x", "INVALID_FIELD")
    assert [v.field for v in result.field_violations] == ["canonical_name"]
