"""`charter characters` and `charter terms` against the in-process fake server."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import grpc
from charter.cli._app import app
from charter.v1 import catalog_service_pb2, character_pb2, terms_pb2
from sdk._fakes import API_KEY, RunningFake  # tests/ is on sys.path: pytest's rootdir-relative layout
from typer.testing import CliRunner, Result

Character = character_pb2.Character

_ERROR_LINE = re.compile(r"^error: (?P<code>[A-Z_]+)(?: (?P<reason>[A-Z_]+))?: .*$")

_MIXED_CSV = """external_id,canonical_name,franchise,aliases,terms_template,terms_json
cv-01,Hatsune Miku,Vocaloid,初音ミク|ja|official_name;ミク|ja|short_name,fan-noncommercial,
cv-02,Kagamine Rin,Vocaloid,Rin|en,,"{""permitted_use_types"": [""cameo""], ""max_content_rating"": ""teen""}"
,Nameless,,,,
cv-04,Bad Alias,,ミク|ja|stage_name,,
cv-05,Bad Share,,,commercial-partner,"{""revenue_share_bps"": 20000}"
cv-06,Unknown Template,,,no-such-template,
cv-07,Megurine Luka,Vocaloid,,,
"""


def _invoke(runner: CliRunner, server: RunningFake, *args: str, json_output: bool = False) -> Result:
    base = ["--target", server.target, "--api-key", API_KEY]
    if json_output:
        base.append("--json")
    return runner.invoke(app, [*base, *args])


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _create(runner: CliRunner, server: RunningFake, name: str = "Hatsune Miku", *extra: str) -> dict[str, Any]:
    created: dict[str, Any] = _json(
        _invoke(
            runner,
            server,
            "characters",
            "create",
            "--rights-holder",
            "rh_1",
            "--canonical-name",
            name,
            *extra,
            json_output=True,
        )
    )
    return created


def _opt_in(server: RunningFake, character_id: str) -> None:
    character = server.fake.characters[character_id]
    character.state = Character.STATE_OPTED_IN
    server.fake.terms_versions[character_id] = [terms_pb2.Terms(version=1, character_id=character_id)]
    character.terms_version = 1


# -- characters -------------------------------------------------------------------------------


def test_create_list_and_show_as_json(runner: CliRunner, server: RunningFake) -> None:
    created = _create(
        runner,
        server,
        "Hatsune Miku",
        "--franchise",
        "Vocaloid",
        "--external-id",
        "cv-01",
        "--reference-url",
        "https://example.com/miku",
        "--alias",
        "初音ミク|ja|official_name",
        "--alias",
        "Hatsune Miku|ja-Latn|romanization|true",
    )
    other = _create(runner, server, "Kagamine Rin")

    listed = _json(_invoke(runner, server, "characters", "list", "--state", "opted_out", json_output=True))
    filtered = _json(
        _invoke(runner, server, "characters", "list", "--query", "miku", "--rights-holder", "rh_1", json_output=True)
    )
    shown = _json(_invoke(runner, server, "characters", "show", created["id"], json_output=True))

    request = server.fake.calls_of("CreateCharacter")[0].request
    assert request.request_id
    assert [(a.value, a.kind, a.ambiguous) for a in request.character.aliases] == [
        ("初音ミク", character_pb2.Alias.KIND_OFFICIAL_NAME, False),
        ("Hatsune Miku", character_pb2.Alias.KIND_ROMANIZATION, True),
    ]
    assert created["state"] == "STATE_OPTED_OUT"
    assert created["externalId"] == "cv-01"
    assert [c["id"] for c in listed] == [created["id"], other["id"]]
    assert server.fake.calls_of("ListCharacters")[0].request.state == Character.STATE_OPTED_OUT
    assert [c["id"] for c in filtered] == [created["id"]]
    assert shown == created
    assert [a["value"] for a in shown["aliases"]] == ["初音ミク", "Hatsune Miku"]


def test_show_table_lists_aliases_in_a_table_of_their_own(runner: CliRunner, server: RunningFake) -> None:
    created = _create(runner, server, "Hatsune Miku", "--alias", "ミク|ja|short_name")

    shown = _invoke(runner, server, "characters", "show", created["id"])

    assert shown.exit_code == 0
    assert created["id"] in shown.stdout
    assert "opted_out" in shown.stdout
    assert "short_name" in shown.stdout
    assert "{" not in shown.stdout  # No alias printed as raw JSON.


def test_bad_alias_and_state_options_are_usage_errors(runner: CliRunner, server: RunningFake) -> None:
    bad_alias = _invoke(
        runner, server, "characters", "create", "--rights-holder", "rh_1", "--canonical-name", "M", "--alias", "ミク"
    )
    bad_state = _invoke(runner, server, "characters", "list", "--state", "deleted")
    bad_kind = _invoke(runner, server, "characters", "add-alias", "chr_1", "ミク", "--language", "ja", "--kind", "x")
    no_change = _invoke(runner, server, "characters", "update", "chr_1")

    assert [r.exit_code for r in (bad_alias, bad_state, bad_kind, no_change)] == [2, 2, 2, 2]
    assert server.fake.calls == []


def test_add_and_remove_alias_update_the_alias_list(runner: CliRunner, server: RunningFake) -> None:
    created = _create(runner, server, "Hatsune Miku", "--alias", "初音ミク|ja|official_name")

    added = _json(
        _invoke(
            runner,
            server,
            "characters",
            "add-alias",
            created["id"],
            "ミク",
            "--language",
            "ja",
            "--kind",
            "short_name",
            "--ambiguous",
            json_output=True,
        )
    )
    changed = _json(
        _invoke(runner, server, "characters", "add-alias", created["id"], "ミク", "--language", "ja", json_output=True)
    )
    removed = _json(_invoke(runner, server, "characters", "remove-alias", created["id"], "初音ミク", json_output=True))
    missing = _invoke(runner, server, "characters", "remove-alias", created["id"], "初音ミク")

    first_update = server.fake.calls_of("UpdateCharacter")[0].request
    assert list(first_update.update_mask.paths) == ["aliases"]
    assert [(a["value"], a["kind"], a["ambiguous"]) for a in added["aliases"]] == [
        ("初音ミク", "KIND_OFFICIAL_NAME", False),
        ("ミク", "KIND_SHORT_NAME", True),
    ]
    assert [(a["value"], a["kind"]) for a in changed["aliases"]] == [
        ("初音ミク", "KIND_OFFICIAL_NAME"),
        ("ミク", "KIND_NICKNAME"),
    ]
    assert [a["value"] for a in removed["aliases"]] == ["ミク"]
    assert missing.exit_code == 1


def test_update_suspend_reinstate_archive_and_collisions(runner: CliRunner, server: RunningFake) -> None:
    created = _create(runner, server, "Miku", "--reference-url", "https://example.com/a")
    server.fake.collisions = [
        catalog_service_pb2.AliasCollision(
            normalized="blue", character_ids=["chr_a", "chr_b"], rights_holder_ids=["rh_1"]
        )
    ]

    updated = _json(
        _invoke(
            runner,
            server,
            "characters",
            "update",
            created["id"],
            "--franchise",
            "Vocaloid",
            "--clear-reference-urls",
            json_output=True,
        )
    )
    suspended = _json(
        _invoke(runner, server, "characters", "suspend", created["id"], "--reason", "review", json_output=True)
    )
    reinstated = _json(_invoke(runner, server, "characters", "reinstate", created["id"], json_output=True))
    again = _invoke(runner, server, "characters", "reinstate", created["id"])
    archived = _json(_invoke(runner, server, "characters", "archive", created["id"], json_output=True))
    collisions = _invoke(runner, server, "characters", "collisions")

    match = _ERROR_LINE.match(again.stderr.splitlines()[0])
    assert list(server.fake.calls_of("UpdateCharacter")[0].request.update_mask.paths) == ["franchise", "reference_urls"]
    assert (updated["franchise"], updated["referenceUrls"]) == ("Vocaloid", [])
    assert suspended["state"] == "STATE_SUSPENDED"
    assert reinstated["state"] == "STATE_OPTED_OUT"
    assert again.exit_code == 1
    assert match is not None
    assert match["reason"] == "CHARACTER_NOT_SUSPENDED"
    assert archived["state"] == "STATE_ARCHIVED"
    assert collisions.exit_code == 0
    assert "blue" in collisions.stdout
    assert "chr_a, chr_b" in collisions.stdout


# -- import -----------------------------------------------------------------------------------


def test_import_of_a_mixed_file_reports_each_failed_row_and_exits_1(
    runner: CliRunner, server: RunningFake, tmp_path: Path
) -> None:
    file = tmp_path / "catalogue.csv"
    file.write_text(_MIXED_CSV, encoding="utf-8")

    result = _invoke(runner, server, "characters", "import", str(file), "--rights-holder", "rh_1", "--batch-size", "2")

    calls = server.fake.calls_of("ImportCharacters")
    sent = [row.character.external_id for call in calls for row in call.request.rows]
    summary = _table_rows(result.stdout, "import summary")
    failed = _table_rows(result.stdout, "failed rows")
    assert result.exit_code == 1
    # Rows that fail in the file (no id, bad alias, unknown template) are never sent.
    assert sent == ["cv-01", "cv-02", "cv-05", "cv-07"]
    assert [len(call.request.rows) for call in calls] == [2, 2]
    assert {call.request.rights_holder_id for call in calls} == {"rh_1"}
    assert len(server.fake.calls_of("ListTermsTemplates")) == 1
    assert summary[:4] == [["created", "3"], ["updated", "0"], ["unchanged", "0"], ["failed", "4"]]
    assert [row[:3] for row in failed] == [
        ["4", "-", "INVALID_FIELD"],
        ["5", "cv-04", "INVALID_FIELD"],
        ["6", "cv-05", "INVALID_FIELD"],
        ["7", "cv-06", "INVALID_FIELD"],
    ]
    assert "external_id: is required" in result.stdout
    assert "terms.revenue_share_bps" in result.stdout
    assert "terms_template" in result.stdout
    # The template was resolved and sent as terms; the override replaced its field.
    miku = calls[0].request.rows[0]
    assert miku.terms.max_content_rating == terms_pb2.CONTENT_RATING_TEEN
    assert not miku.terms.commercial_use_allowed
    assert calls[1].request.rows[0].terms.per_use_fee.currency_code == "JPY"


def test_import_json_output_and_idempotent_reimport(runner: CliRunner, server: RunningFake, tmp_path: Path) -> None:
    file = tmp_path / "catalogue.json"
    file.write_text(
        json.dumps(
            {
                "characters": [
                    {
                        "external_id": "cv-01",
                        "canonical_name": "Hatsune Miku",
                        "aliases": [{"value": "ミク", "language": "ja", "kind": "short_name"}],
                        "terms_template": "fan-noncommercial",
                        "terms": {"daily_quota": 100},
                    },
                    {"external_id": "cv-02", "canonical_name": "Kagamine Rin"},
                ]
            }
        ),
        encoding="utf-8",
    )

    first = _json(
        _invoke(runner, server, "characters", "import", str(file), "--rights-holder", "rh_1", json_output=True)
    )
    again = _invoke(runner, server, "characters", "import", str(file), "--rights-holder", "rh_1")

    assert first["summary"] == {"created": 2, "updated": 0, "unchanged": 0, "failed": 0, "notSent": 0}
    assert [(r["row"], r["externalId"], r["outcome"]) for r in first["rows"]] == [
        (1, "cv-01", "OUTCOME_CREATED"),
        (2, "cv-02", "OUTCOME_CREATED"),
    ]
    assert all(r["characterId"].startswith("chr_") for r in first["rows"])
    assert "index" not in first["rows"][0]
    assert server.fake.calls_of("ImportCharacters")[0].request.rows[0].terms.daily_quota == 100
    assert again.exit_code == 0
    assert _table_rows(again.stdout, "import summary")[:4] == [
        ["created", "0"],
        ["updated", "0"],
        ["unchanged", "2"],
        ["failed", "0"],
    ]
    assert "failed rows" not in again.stdout


def test_import_json_lists_failed_rows_with_their_violations(
    runner: CliRunner, server: RunningFake, tmp_path: Path
) -> None:
    file = tmp_path / "catalogue.csv"
    file.write_text(_MIXED_CSV, encoding="utf-8")

    result = _invoke(runner, server, "characters", "import", str(file), "--rights-holder", "rh_1", json_output=True)

    data = json.loads(result.stdout)
    failed = {r["row"]: r for r in data["rows"] if r["outcome"] == "OUTCOME_FAILED"}
    assert result.exit_code == 1
    assert data["summary"]["failed"] == 4
    assert [r["row"] for r in data["rows"]] == [2, 3, 4, 5, 6, 7, 8]
    assert failed[4]["fieldViolations"][0]["field"] == "external_id"
    assert failed[5]["fieldViolations"][0]["field"] == "aliases[0]"
    assert failed[6]["fieldViolations"][0]["field"] == "terms.revenue_share_bps"
    assert failed[7]["fieldViolations"][0]["field"] == "terms_template"


def test_import_of_an_unreadable_file_is_a_usage_error(runner: CliRunner, server: RunningFake, tmp_path: Path) -> None:
    bad_header = tmp_path / "catalogue.csv"
    bad_header.write_text("external_id,name\nx,X\n", encoding="utf-8")
    no_format = tmp_path / "catalogue.txt"
    no_format.write_text("external_id,canonical_name\nx,X\n", encoding="utf-8")

    header = _invoke(runner, server, "characters", "import", str(bad_header), "--rights-holder", "rh_1")
    unknown = _invoke(runner, server, "characters", "import", str(no_format), "--rights-holder", "rh_1")
    forced = _invoke(
        runner, server, "characters", "import", str(no_format), "--rights-holder", "rh_1", "--format", "csv"
    )

    assert (header.exit_code, unknown.exit_code) == (2, 2)
    assert forced.exit_code == 0
    assert [c.method for c in server.fake.calls] == ["ImportCharacters"]


def test_import_stops_at_a_failed_call_and_reports_what_was_done(
    runner: CliRunner, server: RunningFake, tmp_path: Path
) -> None:
    file = tmp_path / "catalogue.csv"
    file.write_text("external_id,canonical_name\na,A\nb,B\nc,C\n", encoding="utf-8")
    server.fake.fail("ImportCharacters", grpc.StatusCode.PERMISSION_DENIED, "RESOURCE_NOT_OWNED")

    result = _invoke(runner, server, "characters", "import", str(file), "--rights-holder", "rh_2", "--batch-size", "2")

    match = _ERROR_LINE.match(result.stderr.splitlines()[-2])
    assert result.exit_code == 1
    assert len(server.fake.calls_of("ImportCharacters")) == 1
    assert ["not sent", "3"] in _table_rows(result.stdout, "import summary")
    assert match is not None
    assert (match["code"], match["reason"]) == ("PERMISSION_DENIED", "RESOURCE_NOT_OWNED")


def _table_rows(output: str, title: str) -> list[list[str]]:
    """The cells of each body row of the Rich table with the given title."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == title)
    rows: list[list[str]] = []
    separators = 0
    for line in lines[start + 1 :]:
        if line.startswith(("┏", "┡", "└", "┗")) or set(line.strip()) <= set("━─╇╈┃│┼+-"):
            if line.startswith("└"):
                break
            separators += 1
            continue
        cells = [cell.strip() for cell in line.strip().strip("│┃").split("│")]
        if separators >= 2 and cells[0]:
            rows.append(cells)
    return rows


# -- terms ------------------------------------------------------------------------------------


def test_terms_set_from_flags_opts_in_then_updates(runner: CliRunner, server: RunningFake) -> None:
    created = _create(runner, server)
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

    first = _json(_invoke(runner, server, "terms", "set", created["id"], *flags, "--opt-in", json_output=True))
    second = _json(
        _invoke(
            runner,
            server,
            "terms",
            "set",
            created["id"],
            "--use-type",
            "cameo",
            "--max-rating",
            "all_ages",
            "--opt-in",
            json_output=True,
        )
    )

    sent = server.fake.calls_of("OptIn")[0].request.terms
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
    assert second["version"] == 2
    assert len(server.fake.calls_of("UpdateTerms")) == 1
    assert second["permittedUseTypes"] == ["USE_TYPE_CAMEO"]


def test_terms_set_without_opt_in_on_an_opted_out_character_explains(runner: CliRunner, server: RunningFake) -> None:
    created = _create(runner, server)

    result = _invoke(runner, server, "terms", "set", created["id"], "--use-type", "cameo", "--max-rating", "teen")

    first, hint = result.stderr.splitlines()
    match = _ERROR_LINE.match(first)
    assert result.exit_code == 1
    assert match is not None
    assert (match["code"], match["reason"]) == ("FAILED_PRECONDITION", "CHARACTER_NOT_OPTED_IN")
    assert "--opt-in" in hint
    assert server.fake.calls_of("OptIn") == []


def test_terms_set_from_a_file_with_flags_overriding(runner: CliRunner, server: RunningFake, tmp_path: Path) -> None:
    created = _create(runner, server)
    _opt_in(server, created["id"])
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

    result = _json(
        _invoke(
            runner, server, "terms", "set", created["id"], "--file", str(file), "--prohibit", "drugs", json_output=True
        )
    )

    sent = server.fake.calls_of("UpdateTerms")[0].request.terms
    assert sent.version == 0
    assert list(sent.permitted_use_types) == [terms_pb2.USE_TYPE_IMAGE_GENERATION]
    assert sent.max_content_rating == terms_pb2.CONTENT_RATING_MATURE
    assert list(sent.prohibited_categories) == [terms_pb2.CONTENT_CATEGORY_DRUGS]
    assert sent.daily_quota == 10
    assert result["version"] == 2


def test_terms_set_usage_errors(runner: CliRunner, server: RunningFake, tmp_path: Path) -> None:
    bad_file = tmp_path / "terms.json"
    bad_file.write_text('{"max_content_rating": "extreme"}', encoding="utf-8")

    nothing = _invoke(runner, server, "terms", "set", "chr_1")
    fee_alone = _invoke(runner, server, "terms", "set", "chr_1", "--fee", "100")
    bad_use = _invoke(runner, server, "terms", "set", "chr_1", "--use-type", "hologram")
    bad_time = _invoke(runner, server, "terms", "set", "chr_1", "--valid-from", "soon")
    bad_terms = _invoke(runner, server, "terms", "set", "chr_1", "--file", str(bad_file))

    assert [r.exit_code for r in (nothing, fee_alone, bad_use, bad_time, bad_terms)] == [2, 2, 2, 2, 2]
    assert server.fake.calls == []


def test_apply_template_with_overrides(runner: CliRunner, server: RunningFake) -> None:
    created = _create(runner, server)

    result = _json(
        _invoke(
            runner,
            server,
            "terms",
            "apply-template",
            created["id"],
            "commercial-partner",
            "--revenue-share-bps",
            "2000",
            "--opt-in",
            json_output=True,
        )
    )
    unknown = _invoke(runner, server, "terms", "apply-template", created["id"], "no-such-template")

    sent = server.fake.calls_of("OptIn")[0].request.terms
    assert sent.revenue_share_bps == 2000
    assert sent.commercial_use_allowed
    assert sent.per_use_fee.currency_code == "JPY"
    assert result["version"] == 1
    assert unknown.exit_code == 2


def test_terms_show_history_templates_and_opt_out(runner: CliRunner, server: RunningFake) -> None:
    created = _create(runner, server)
    _invoke(runner, server, "terms", "apply-template", created["id"], "fan-noncommercial", "--opt-in")
    _invoke(runner, server, "terms", "set", created["id"], "--use-type", "cameo", "--max-rating", "teen")
    server.fake.grants[created["id"]] = 2

    current = _json(_invoke(runner, server, "terms", "show", created["id"], json_output=True))
    first = _json(_invoke(runner, server, "terms", "show", created["id"], "--version", "1", json_output=True))
    table = _invoke(runner, server, "terms", "show", created["id"])
    history = _json(_invoke(runner, server, "terms", "history", created["id"], json_output=True))
    templates = _json(_invoke(runner, server, "terms", "templates", json_output=True))
    template = _invoke(runner, server, "terms", "templates", "fan-noncommercial")
    opted_out = _json(_invoke(runner, server, "terms", "opt-out", created["id"], "--reason", "ended", json_output=True))

    quota_line = next(line for line in table.stdout.splitlines() if "daily_quota" in line)
    assert (current["version"], first["version"]) == (2, 1)
    assert first["prohibitedCategories"][0] == "CONTENT_CATEGORY_SEXUAL"
    assert quota_line.split()[1:4] == ["daily_quota", "│", "-"]  # Unset means unlimited: shown as "-", not 0.
    assert [t["version"] for t in history] == [2, 1]
    assert [t["name"] for t in templates] == ["fan-noncommercial", "commercial-partner"]
    assert "character_damaging" in template.stdout
    assert opted_out["character"]["state"] == "STATE_OPTED_OUT"
    assert opted_out["revokedGrantCount"] == 2
    assert server.fake.calls_of("OptOut")[0].request.reason == "ended"
