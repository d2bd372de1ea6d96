"""`charter characters` and `charter terms` against a real server (see `conftest`)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from charter import Client
from charter.v1 import api_key_pb2, character_pb2, terms_pb2
from sdk._live import Live, unique, unique_kana  # tests/ is on sys.path: pytest's rootdir-relative layout
from sdk._tap import Tap
from typer.testing import CliRunner

from ._commands import ERROR_LINE, invoke, json_of
from ._readable import ReadableRunner

Character = character_pb2.Character

# NAME and KANA stand for names no other test uses (see `_catalogue`): a rights holder's names are
# its own unless both sides mark them ambiguous.
_MIXED_CSV = """external_id,canonical_name,franchise,aliases,terms_template,terms_json
cv-01,Hatsune NAME,Vocaloid,初音KANA|ja|official_name;ミクKANA|ja|short_name,fan-noncommercial,
cv-02,Kagamine NAME,Vocaloid,Rin NAME|en,,"{""permitted_use_types"": [""cameo""], ""max_content_rating"": ""teen""}"
,Nameless,,,,
cv-04,Bad Alias,,ミク|ja|stage_name,,
cv-05,Bad Share,,,commercial-partner,"{""revenue_share_bps"": 20000}"
cv-06,Unknown Template,,,no-such-template,
cv-07,Megurine NAME,Vocaloid,,,
"""


def _catalogue(path: Path, text: str) -> Path:
    """Writes a catalogue file with NAME and KANA replaced by names of this test alone."""
    path.write_text(text.replace("NAME", unique()).replace("KANA", unique_kana()), encoding="utf-8")
    return path


@pytest.fixture
def holder(staff: Client) -> str:
    """The id of a fresh rights holder."""
    return staff.create_rights_holder(display_name=unique("Studio "), contact_email="rights@studio.example").id


def _create(
    runner: CliRunner, live: Live, holder: str, *extra: str, name: str = "", via: Tap | None = None
) -> dict[str, Any]:
    created: dict[str, Any] = json_of(
        invoke(
            runner,
            live,
            "characters",
            "create",
            "--rights-holder",
            holder,
            "--canonical-name",
            name or unique("Miku "),
            *extra,
            via=via,
            json_output=True,
        )
    )
    return created


_TERMS = terms_pb2.Terms(
    permitted_use_types=[terms_pb2.USE_TYPE_CAMEO], max_content_rating=terms_pb2.CONTENT_RATING_TEEN
)


# -- characters -------------------------------------------------------------------------------


def _registered(aliases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The aliases as registered, without the readings the server derives from kanji names."""
    return [a for a in aliases if not a.get("derived")]


def test_create_list_and_show_as_json(runner: CliRunner, cli_live: Live, holder: str, tap: Tap) -> None:
    name = unique("Hatsune ")
    kanji = f"初音{unique_kana()}"
    created = _create(
        runner,
        cli_live,
        holder,
        "--franchise",
        "Vocaloid",
        "--external-id",
        "cv-01",
        "--reference-url",
        "https://example.com/miku",
        "--alias",
        f"{kanji}|ja|official_name",
        "--alias",
        f"{name}|ja-Latn|romanization|true",
        name=name,
        via=tap,
    )
    other = _create(runner, cli_live, holder)

    listed = json_of(
        invoke(
            runner,
            cli_live,
            "characters",
            "list",
            "--state",
            "opted_out",
            "--rights-holder",
            holder,
            via=tap,
            json_output=True,
        )
    )
    filtered = json_of(
        invoke(
            runner,
            cli_live,
            "characters",
            "list",
            "--query",
            name.split()[1].lower(),
            "--rights-holder",
            holder,
            json_output=True,
        )
    )
    shown = json_of(invoke(runner, cli_live, "characters", "show", created["id"], json_output=True))

    request = tap.calls_of("CreateCharacter")[0].request
    assert request.request_id
    assert [(a.value, a.kind, a.ambiguous) for a in request.character.aliases] == [
        (kanji, character_pb2.Alias.KIND_OFFICIAL_NAME, False),
        (name, character_pb2.Alias.KIND_ROMANIZATION, True),
    ]
    assert created["state"] == "STATE_OPTED_OUT"
    assert created["externalId"] == "cv-01"
    assert [c["id"] for c in listed] == [created["id"], other["id"]]
    assert tap.calls_of("ListCharacters")[0].request.state == Character.STATE_OPTED_OUT
    assert [c["id"] for c in filtered] == [created["id"]]
    assert shown == created
    assert [a["value"] for a in _registered(shown["aliases"])] == [kanji, name]


def test_show_table_lists_aliases_in_a_table_of_their_own(runner: CliRunner, cli_live: Live, holder: str) -> None:
    created = _create(runner, cli_live, holder, "--alias", f"{unique_kana()}|ja|short_name")

    shown = invoke(runner, cli_live, "characters", "show", created["id"])

    assert shown.exit_code == 0
    assert created["id"] in shown.stdout
    assert "opted_out" in shown.stdout
    assert "short_name" in shown.stdout
    assert "{" not in shown.stdout  # No alias printed as raw JSON.


def test_bad_alias_and_state_options_are_usage_errors(runner: CliRunner, cli_live: Live, tap: Tap) -> None:
    bad_alias = invoke(
        runner,
        cli_live,
        "characters",
        "create",
        "--rights-holder",
        "rh_1",
        "--canonical-name",
        "M",
        "--alias",
        "ミク",
        via=tap,
    )
    bad_state = invoke(runner, cli_live, "characters", "list", "--state", "deleted", via=tap)
    bad_kind = invoke(
        runner, cli_live, "characters", "add-alias", "chr_1", "ミク", "--language", "ja", "--kind", "x", via=tap
    )
    no_change = invoke(runner, cli_live, "characters", "update", "chr_1", via=tap)

    assert [r.exit_code for r in (bad_alias, bad_state, bad_kind, no_change)] == [2, 2, 2, 2]
    assert tap.calls == []


def test_add_and_remove_alias_update_the_alias_list(runner: CliRunner, cli_live: Live, holder: str, tap: Tap) -> None:
    official, short = f"初音{unique_kana()}", unique_kana()
    created = _create(runner, cli_live, holder, "--alias", f"{official}|ja|official_name")
    alias = ("characters", "add-alias", created["id"], short, "--language", "ja")

    added = json_of(invoke(runner, cli_live, *alias, "--kind", "short_name", "--ambiguous", via=tap, json_output=True))
    changed = json_of(invoke(runner, cli_live, *alias, json_output=True))
    removed = json_of(invoke(runner, cli_live, "characters", "remove-alias", created["id"], official, json_output=True))
    missing = invoke(runner, cli_live, "characters", "remove-alias", created["id"], official)

    first_update = tap.calls_of("UpdateCharacter")[0].request
    assert list(first_update.update_mask.paths) == ["aliases"]
    assert [(a["value"], a["kind"], a["ambiguous"]) for a in _registered(added["aliases"])] == [
        (official, "KIND_OFFICIAL_NAME", False),
        (short, "KIND_SHORT_NAME", True),
    ]
    assert [(a["value"], a["kind"]) for a in _registered(changed["aliases"])] == [
        (official, "KIND_OFFICIAL_NAME"),
        (short, "KIND_NICKNAME"),
    ]
    assert [a["value"] for a in _registered(removed["aliases"])] == [short]
    assert missing.exit_code == 1


def test_update_suspend_reinstate_archive_and_collisions(
    runner: CliRunner, cli_live: Live, holder: str, staff: Client, tap: Tap
) -> None:
    created = _create(runner, cli_live, holder, "--reference-url", "https://example.com/a")
    # A name two rights holders share, marked ambiguous on both sides.
    shared = unique("Blue ")
    ambiguous = character_pb2.Alias(value=shared, language="en", kind=character_pb2.Alias.KIND_NICKNAME, ambiguous=True)
    other_holder = staff.create_rights_holder(display_name=unique("Studio "), contact_email="rights@other.example")
    sharing = sorted(
        staff.create_character(rights_holder_id=owner, canonical_name=unique("Sharer "), aliases=[ambiguous]).id
        for owner in (holder, other_holder.id)
    )

    updated = json_of(
        invoke(
            runner,
            cli_live,
            "characters",
            "update",
            created["id"],
            "--franchise",
            "Vocaloid",
            "--clear-reference-urls",
            via=tap,
            json_output=True,
        )
    )
    suspended = json_of(
        invoke(runner, cli_live, "characters", "suspend", created["id"], "--reason", "review", json_output=True)
    )
    reinstated = json_of(invoke(runner, cli_live, "characters", "reinstate", created["id"], json_output=True))
    again = invoke(runner, cli_live, "characters", "reinstate", created["id"])
    archived = json_of(invoke(runner, cli_live, "characters", "archive", created["id"], json_output=True))
    collisions = invoke(runner, cli_live, "characters", "collisions")
    as_json = json_of(invoke(runner, cli_live, "characters", "collisions", json_output=True))

    match = ERROR_LINE.match(again.stderr.splitlines()[0])
    assert list(tap.calls_of("UpdateCharacter")[0].request.update_mask.paths) == ["franchise", "reference_urls"]
    assert (updated["franchise"], updated["referenceUrls"]) == ("Vocaloid", [])
    assert suspended["state"] == "STATE_SUSPENDED"
    assert reinstated["state"] == "STATE_OPTED_OUT"
    assert again.exit_code == 1
    assert match is not None
    assert match["reason"] == "CHARACTER_NOT_SUSPENDED"
    assert archived["state"] == "STATE_ARCHIVED"
    assert collisions.exit_code == 0
    (collision,) = [c for c in as_json if c["characterIds"] == sharing]
    assert sorted(collision["rightsHolderIds"]) == sorted([holder, other_holder.id])
    assert collision["normalized"] in collisions.stdout
    assert all(character in collisions.stdout for character in sharing)


# -- import -----------------------------------------------------------------------------------


def test_import_of_a_mixed_file_reports_each_failed_row_and_exits_1(
    runner: ReadableRunner, cli_live: Live, holder: str, tap: Tap, tmp_path: Path
) -> None:
    file = _catalogue(tmp_path / "catalogue.csv", _MIXED_CSV)

    result = invoke(
        runner, cli_live, "characters", "import", str(file), "--rights-holder", holder, "--batch-size", "2", via=tap
    )

    calls = tap.calls_of("ImportCharacters")
    sent = [row.character.external_id for call in calls for row in call.request.rows]
    summary = runner.rows(result, "import summary")
    failed = runner.rows(result, "failed rows")
    assert result.exit_code == 1
    # Rows that fail in the file (no id, bad alias, unknown template) are never sent.
    assert sent == ["cv-01", "cv-02", "cv-05", "cv-07"]
    assert [len(call.request.rows) for call in calls] == [2, 2]
    assert {call.request.rights_holder_id for call in calls} == {holder}
    assert len(tap.calls_of("ListTermsTemplates")) == 1
    assert [(row["outcome"], row["rows"]) for row in summary[:4]] == [
        ("created", "3"),
        ("updated", "0"),
        ("unchanged", "0"),
        ("failed", "4"),
    ]
    assert [(row["row"], row["external id"], row["reason"]) for row in failed] == [
        ("4", "-", "INVALID_FIELD"),
        ("5", "cv-04", "INVALID_FIELD"),
        ("6", "cv-05", "INVALID_FIELD"),
        ("7", "cv-06", "INVALID_FIELD"),
    ]
    assert "external_id: is required" in result.stdout
    assert "terms.revenue_share_bps" in result.stdout
    assert "terms_template" in result.stdout
    # The template was resolved and sent as terms; the override replaced its field.
    miku = calls[0].request.rows[0]
    assert miku.terms.max_content_rating == terms_pb2.CONTENT_RATING_TEEN
    assert not miku.terms.commercial_use_allowed
    assert calls[1].request.rows[0].terms.per_use_fee.currency_code == "USD"


def test_import_json_output_and_idempotent_reimport(
    runner: ReadableRunner, cli_live: Live, holder: str, tap: Tap, tmp_path: Path
) -> None:
    catalogue = {
        "characters": [
            {
                "external_id": "cv-01",
                "canonical_name": "Hatsune NAME",
                "aliases": [{"value": "ミクKANA", "language": "ja", "kind": "short_name"}],
                "terms_template": "fan-noncommercial",
                "terms": {"daily_quota": 100},
            },
            {"external_id": "cv-02", "canonical_name": "Kagamine NAME"},
        ]
    }
    file = _catalogue(tmp_path / "catalogue.json", json.dumps(catalogue, ensure_ascii=False))
    args = ("characters", "import", str(file), "--rights-holder", holder)

    first = json_of(invoke(runner, cli_live, *args, via=tap, json_output=True))
    again = invoke(runner, cli_live, *args)

    assert first["summary"] == {"created": 2, "updated": 0, "unchanged": 0, "failed": 0, "notSent": 0}
    assert [(r["row"], r["externalId"], r["outcome"]) for r in first["rows"]] == [
        (1, "cv-01", "OUTCOME_CREATED"),
        (2, "cv-02", "OUTCOME_CREATED"),
    ]
    assert all(r["characterId"].startswith("chr_") for r in first["rows"])
    assert "index" not in first["rows"][0]
    assert tap.calls_of("ImportCharacters")[0].request.rows[0].terms.daily_quota == 100
    assert again.exit_code == 0
    assert [(row["outcome"], row["rows"]) for row in runner.rows(again, "import summary")[:4]] == [
        ("created", "0"),
        ("updated", "0"),
        ("unchanged", "2"),
        ("failed", "0"),
    ]
    assert "failed rows" not in again.stdout


def test_import_json_lists_failed_rows_with_their_violations(
    runner: CliRunner, cli_live: Live, holder: str, tmp_path: Path
) -> None:
    file = _catalogue(tmp_path / "catalogue.csv", _MIXED_CSV)

    result = invoke(runner, cli_live, "characters", "import", str(file), "--rights-holder", holder, json_output=True)

    data = json.loads(result.stdout)
    failed = {r["row"]: r for r in data["rows"] if r["outcome"] == "OUTCOME_FAILED"}
    assert result.exit_code == 1
    assert data["summary"]["failed"] == 4
    assert [r["row"] for r in data["rows"]] == [2, 3, 4, 5, 6, 7, 8]
    assert failed[4]["fieldViolations"][0]["field"] == "external_id"
    assert failed[5]["fieldViolations"][0]["field"] == "aliases[0]"
    assert failed[6]["fieldViolations"][0]["field"] == "terms.revenue_share_bps"
    assert failed[7]["fieldViolations"][0]["field"] == "terms_template"


def test_import_of_an_unreadable_file_is_a_usage_error(
    runner: CliRunner, cli_live: Live, holder: str, tap: Tap, tmp_path: Path
) -> None:
    bad_header = tmp_path / "catalogue.csv"
    bad_header.write_text("external_id,name\nx,X\n", encoding="utf-8")
    no_format = _catalogue(tmp_path / "catalogue.txt", "external_id,canonical_name\nx,NAME\n")

    def run(file: Path, *extra: str) -> int:
        args = ("characters", "import", str(file), "--rights-holder", holder, *extra)
        return invoke(runner, cli_live, *args, via=tap).exit_code

    header = run(bad_header)
    unknown = run(no_format)
    forced = run(no_format, "--format", "csv")

    assert (header, unknown) == (2, 2)
    assert forced == 0
    assert [c.method for c in tap.calls] == ["ImportCharacters"]


def test_import_stops_at_a_failed_call_and_reports_what_was_done(
    runner: ReadableRunner, cli_live: Live, holder: str, staff: Client, tap: Tap, tmp_path: Path
) -> None:
    file = _catalogue(tmp_path / "catalogue.csv", "external_id,canonical_name\na,A NAME\nb,B NAME\nc,C NAME\n")
    # A rights holder's key importing into another rights holder's catalogue.
    other = staff.create_rights_holder(display_name=unique("Studio "), contact_email="rights@other.example")
    studio = staff.create_api_key(display_name="studio", role=api_key_pb2.ROLE_RIGHTS_HOLDER, rights_holder_id=other.id)
    args = ("characters", "import", str(file), "--rights-holder", holder, "--batch-size", "2")

    result = invoke(runner, cli_live, *args, via=tap, api_key=studio.secret)

    match = ERROR_LINE.match(result.stderr.splitlines()[-2])
    assert result.exit_code == 1
    assert len(tap.calls_of("ImportCharacters")) == 1
    assert ["not sent", "3"] in [[row["outcome"], row["rows"]] for row in runner.rows(result, "import summary")]
    assert match is not None
    assert (match["code"], match["reason"]) == ("PERMISSION_DENIED", "RESOURCE_NOT_OWNED")


# -- terms ------------------------------------------------------------------------------------


def test_terms_set_from_flags_opts_in_then_updates(runner: CliRunner, cli_live: Live, holder: str, tap: Tap) -> None:
    created = _create(runner, cli_live, holder)
    flags = [
        "--use-type",
        "video_generation",
        "--use-type",
        "IMAGE_GENERATION",
        "--max-rating",
        "teen",
        "--prohibit",
        "sexual",
        "--prohibit",
        "character_damaging",
        "--territory",
        "jp",
        "--exclude-territory",
        "KP",
        "--no-commercial",
        "--attribution",
        "© Crypton",
        "--watermark",
        "--revenue-share-bps",
        "1500",
        "--fee",
        "120",
        "--currency",
        "jpy",
        "--daily-quota",
        "0",
        "--valid-from",
        "2030-01-01T00:00:00",
        "--valid-until",
        "2031-01-01T09:00:00+09:00",
    ]

    first = json_of(
        invoke(runner, cli_live, "terms", "set", created["id"], *flags, "--opt-in", via=tap, json_output=True)
    )
    second = json_of(
        invoke(
            runner,
            cli_live,
            "terms",
            "set",
            created["id"],
            "--use-type",
            "cameo",
            "--max-rating",
            "all_ages",
            "--opt-in",
            via=tap,
            json_output=True,
        )
    )

    sent = tap.calls_of("OptIn")[0].request.terms
    assert list(sent.permitted_use_types) == [terms_pb2.USE_TYPE_VIDEO_GENERATION, terms_pb2.USE_TYPE_IMAGE_GENERATION]
    assert sent.max_content_rating == terms_pb2.CONTENT_RATING_TEEN
    assert list(sent.prohibited_categories) == [
        terms_pb2.CONTENT_CATEGORY_SEXUAL,
        terms_pb2.CONTENT_CATEGORY_CHARACTER_DAMAGING,
    ]
    assert (list(sent.allowed_territories), list(sent.excluded_territories)) == (["JP"], ["KP"])
    assert (sent.commercial_use_allowed, sent.watermark_required) == (False, True)
    assert (sent.attribution_text, sent.revenue_share_bps) == ("© Crypton", 1500)
    assert (sent.per_use_fee.currency_code, sent.per_use_fee.minor_units) == ("JPY", 120)
    assert sent.HasField("daily_quota")
    assert sent.daily_quota == 0
    assert not sent.HasField("monthly_quota")
    assert sent.valid_from.seconds == 1893456000
    assert sent.valid_until.seconds == 1924992000
    assert first["version"] == 1
    assert first["dailyQuota"] == "0"  # int64 is a string in protobuf JSON.
    assert second["version"] == 2
    assert len(tap.calls_of("UpdateTerms")) == 1
    assert second["permittedUseTypes"] == ["USE_TYPE_CAMEO"]


def test_terms_set_without_opt_in_on_an_opted_out_character_explains(
    runner: CliRunner, cli_live: Live, holder: str, tap: Tap
) -> None:
    created = _create(runner, cli_live, holder)

    result = invoke(
        runner, cli_live, "terms", "set", created["id"], "--use-type", "cameo", "--max-rating", "teen", via=tap
    )

    first, hint = result.stderr.splitlines()
    match = ERROR_LINE.match(first)
    assert result.exit_code == 1
    assert match is not None
    assert (match["code"], match["reason"]) == ("FAILED_PRECONDITION", "CHARACTER_NOT_OPTED_IN")
    assert "--opt-in" in hint
    assert tap.calls_of("OptIn") == []


def test_terms_set_from_a_file_with_flags_overriding(
    runner: CliRunner, cli_live: Live, holder: str, staff: Client, tap: Tap, tmp_path: Path
) -> None:
    created = _create(runner, cli_live, holder)
    staff.opt_in(created["id"], _TERMS)
    file = tmp_path / "terms.json"
    file.write_text(
        json.dumps(
            {
                "version": 9,
                "permittedUseTypes": ["USE_TYPE_IMAGE_GENERATION"],
                "max_content_rating": "mature",
                "prohibited_categories": ["hate", "political"],
                "daily_quota": 10,
            }
        ),
        encoding="utf-8",
    )

    result = json_of(
        invoke(
            runner,
            cli_live,
            "terms",
            "set",
            created["id"],
            "--file",
            str(file),
            "--prohibit",
            "drugs",
            via=tap,
            json_output=True,
        )
    )

    sent = tap.calls_of("UpdateTerms")[0].request.terms
    assert sent.version == 0
    assert list(sent.permitted_use_types) == [terms_pb2.USE_TYPE_IMAGE_GENERATION]
    assert sent.max_content_rating == terms_pb2.CONTENT_RATING_MATURE
    assert list(sent.prohibited_categories) == [terms_pb2.CONTENT_CATEGORY_DRUGS]
    assert sent.daily_quota == 10
    assert result["version"] == 2
    assert result["prohibitedCategories"] == ["CONTENT_CATEGORY_DRUGS"]


def test_terms_set_usage_errors(runner: CliRunner, cli_live: Live, tap: Tap, tmp_path: Path) -> None:
    bad_file = tmp_path / "terms.json"
    bad_file.write_text('{"max_content_rating": "extreme"}', encoding="utf-8")

    def terms_set(*args: str) -> int:
        return invoke(runner, cli_live, "terms", "set", "chr_1", *args, via=tap).exit_code

    codes = [
        terms_set(),
        terms_set("--fee", "100"),
        terms_set("--use-type", "hologram"),
        terms_set("--valid-from", "soon"),
        terms_set("--file", str(bad_file)),
        terms_set("--use-type", "cameo", "--max-rating", "teen", "--territory", "\u0131t"),  # not "IT"
        terms_set("--use-type", "cameo", "--max-rating", "teen", "--exclude-territory", "\uff29\uff34"),
    ]

    assert codes == [2, 2, 2, 2, 2, 2, 2]
    assert tap.calls == []


def test_apply_template_with_overrides(runner: CliRunner, cli_live: Live, holder: str, tap: Tap) -> None:
    created = _create(runner, cli_live, holder)
    template = ("terms", "apply-template", created["id"])

    result = json_of(
        invoke(
            runner,
            cli_live,
            *template,
            "commercial-partner",
            "--revenue-share-bps",
            "2000",
            "--opt-in",
            via=tap,
            json_output=True,
        )
    )
    unknown = invoke(runner, cli_live, *template, "no-such-template")

    sent = tap.calls_of("OptIn")[0].request.terms
    assert sent.revenue_share_bps == 2000
    assert sent.commercial_use_allowed
    assert (sent.per_use_fee.currency_code, sent.per_use_fee.minor_units) == ("USD", 5)
    assert result["version"] == 1
    assert result["revenueShareBps"] == 2000
    assert unknown.exit_code == 2


def test_terms_show_history_templates_and_opt_out(
    runner: CliRunner, cli_live: Live, holder: str, staff: Client, tap: Tap
) -> None:
    created = _create(runner, cli_live, holder)
    invoke(runner, cli_live, "terms", "apply-template", created["id"], "fan-noncommercial", "--opt-in")
    invoke(runner, cli_live, "terms", "set", created["id"], "--use-type", "cameo", "--max-rating", "teen")
    licensee = staff.create_licensee(display_name=unique("App "), contact_email="ops@app.example", platform="app")
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    for _ in range(2):
        staff.issue_grant(character_id=created["id"], licensee_id=licensee.id, expire_time=expires)

    current = json_of(invoke(runner, cli_live, "terms", "show", created["id"], json_output=True))
    first = json_of(invoke(runner, cli_live, "terms", "show", created["id"], "--version", "1", json_output=True))
    table = invoke(runner, cli_live, "terms", "show", created["id"])
    history = json_of(invoke(runner, cli_live, "terms", "history", created["id"], json_output=True))
    templates = json_of(invoke(runner, cli_live, "terms", "templates", json_output=True))
    template = invoke(runner, cli_live, "terms", "templates", "fan-noncommercial")
    opt_out = ("terms", "opt-out", created["id"], "--reason", "ended")
    opted_out = json_of(invoke(runner, cli_live, *opt_out, via=tap, json_output=True))

    quota_line = next(line for line in table.stdout.splitlines() if "daily_quota" in line)
    assert (current["version"], first["version"]) == (2, 1)
    assert first["prohibitedCategories"][0] == "CONTENT_CATEGORY_SEXUAL"
    assert quota_line.split()[1:4] == ["daily_quota", "│", "-"]  # Unset means unlimited: shown as "-", not 0.
    assert [t["version"] for t in history] == [2, 1]
    assert [t["name"] for t in templates] == ["fan-noncommercial", "commercial-partner", "promotional-cameo"]
    assert "character_damaging" in template.stdout
    assert opted_out["character"]["state"] == "STATE_OPTED_OUT"
    assert opted_out["revokedGrantCount"] == 2
    assert tap.calls_of("OptOut")[0].request.reason == "ended"
