"""The command line for people, against a real server (see `sdk._live`): names next to ids, amounts
with their currency, `--json` anywhere, a rights-holder key that needs no `--rights-holder`, one flag
name per concept, `--version`, shell completion, and errors that say what to do.

Every command runs at 80 and at 200 columns and fails when a table cannot be read (`_readable`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import charter
import pytest
import typer.main
from charter.cli._app import app
from charter.v1 import api_key_pb2
from sdk._live import Live, Party  # tests/ is on sys.path: pytest's rootdir-relative layout
from typer.testing import Result

from ._readable import ReadableRunner

LONG_NAME = "Hoshino Aoi, the Extraordinarily Long-Named Virtual Singer of the Example Star Stage"
# With 4 hex digits after it, one word of 72 columns: too wide to stand beside the labels at 80.
LONG_KANJI = "星野葵超長名前仮想歌手例示星舞台第一期生徒会長兼主題歌担当者星野葵超"


def _run(runner: ReadableRunner, live: Live, secret: str | None, *args: str) -> Result:
    key = ["--api-key", secret] if secret is not None else []
    return runner.invoke(app, ["--target", live.target, *key, *args])


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _leaf_commands() -> dict[str, Any]:
    found: dict[str, Any] = {}

    def walk(command: Any, path: str) -> None:
        children = getattr(command, "commands", None)
        if children is None:
            found[path] = command
            return
        for name, child in children.items():
            walk(child, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    return found


@pytest.fixture
def studio(admin: charter.Client, party: Party) -> str:
    """The secret of a rights-holder key of the party's rights holder."""
    return admin.create_api_key(
        display_name="studio manager", role=api_key_pb2.ROLE_RIGHTS_HOLDER, rights_holder_id=party.rights_holder_id
    ).secret


# -- --json anywhere, --version, completion -------------------------------------------------------


def test_every_command_takes_json_after_its_name() -> None:
    commands = _leaf_commands()

    without = [path for path, command in commands.items() if not any("--json" in p.opts for p in command.params)]

    assert len(commands) > 50
    assert without == []


@pytest.mark.parametrize(
    "args",
    [
        ("whoami",),
        ("rights-holders", "list"),
        ("licensees", "profiles"),
        ("grants", "list"),
        ("statements", "list"),
        ("terms", "templates"),
        ("signing-keys", "list"),
    ],
    ids=" ".join,
)
def test_json_after_the_command_prints_what_json_before_it_prints(
    runner: ReadableRunner, live: Live, party: Party, args: tuple[str, ...]
) -> None:
    before = _json(_run(runner, live, live.admin, "--json", *args))
    after = _json(_run(runner, live, live.admin, *args, "--json"))

    assert after == before


def test_version_prints_the_sdk_version(runner: ReadableRunner) -> None:
    result = runner.invoke(app, ["--version"])

    assert result.exit_code == 0
    assert result.stdout == f"charter {charter.__version__} (charter-sdk)\n"


def test_shell_completion_completes_commands_and_options(runner: ReadableRunner) -> None:
    def complete(words: str) -> list[str]:
        env = {"_CHARTER_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}
        result = runner.invoke(app, [], env=env, prog_name="charter")
        assert result.exit_code == 0, result.output
        return result.stdout.split()

    script = runner.invoke(app, ["--show-completion", "bash"], prog_name="charter")

    assert complete("charter stat") == ["statements"]
    assert complete("charter statements show --rights") == ["--rights-holder"]
    assert script.exit_code == 0
    assert "_CHARTER_COMPLETE=complete_bash" in script.stdout


# -- what a rights-holder key is bound to ---------------------------------------------------------


def test_a_rights_holder_key_needs_no_rights_holder_flag(
    runner: ReadableRunner, live: Live, party: Party, studio: str, tmp_path: Path
) -> None:
    catalogue = tmp_path / "catalogue.csv"
    catalogue.write_text(f'external_id,canonical_name\nrow-1,"{LONG_NAME} {party.licensee_id[-8:]}"\n')

    created = _json(
        _run(runner, live, studio, "characters", "create", "--canonical-name", f"Ren {party.licensee_id}", "--json")
    )
    imported = _run(runner, live, studio, "characters", "import", str(catalogue))
    shown = _run(runner, live, studio, "statements", "show", "--from", "2026-01-01", "--to", "2026-01-31")
    without = _run(runner, live, live.admin, "characters", "create", "--canonical-name", "Nobody's")

    assert created["rightsHolderId"] == party.rights_holder_id
    assert imported.exit_code == 0, imported.output
    assert runner.rows(imported, "import summary")[0] == {"outcome": "created", "rows": "1"}
    assert shown.exit_code == 0, shown.output
    assert f"rights holder: {party.rights_holder_id}" in shown.stdout
    assert without.exit_code == 2  # an admin key is bound to no rights holder


def test_a_generator_key_verifies_a_grant_without_naming_its_licensee(
    runner: ReadableRunner, live: Live, party: Party, admin: charter.Client, tmp_path: Path
) -> None:
    character = party.character_ids[0]
    (grant,) = admin.list_grants(character_id=character)
    envelope_file = tmp_path / "grant.json"
    envelope_file.write_text(_run(runner, live, live.admin, "grants", "show", grant.id, "--envelope-json").stdout)

    verified = _run(runner, live, party.generator, "grants", "verify", str(envelope_file), "--character", character)

    assert verified.exit_code == 0, verified.output
    assert verified.stdout.startswith("verdict: VALID\n")


# -- names where people read ----------------------------------------------------------------------


def test_grants_and_profiles_show_licensee_names_to_the_rights_holder(
    runner: ReadableRunner, live: Live, party: Party, studio: str, admin: charter.Client
) -> None:
    licensee = admin.get_licensee(party.licensee_id)
    names = {c: admin.get_character(c).canonical_name for c in party.character_ids}

    grants = _run(runner, live, studio, "grants", "list")
    profiles = _run(runner, live, studio, "licensees", "profiles")
    profile = _run(runner, live, studio, "licensees", "profile", party.licensee_id)
    whole = _run(runner, live, studio, "licensees", "show", party.licensee_id)

    assert sorted(row["character"] for row in runner.rows(grants, "grants")) == sorted(
        f"{c}\n{name}" for c, name in names.items()
    )
    assert {row["licensee"] for row in runner.rows(grants, "grants")} == {f"{licensee.id}\n{licensee.display_name}"}
    assert [(r["id"], r["display name"], r["platform"]) for r in runner.rows(profiles, "licensee profiles")] == [
        (licensee.id, licensee.display_name, licensee.platform)
    ]
    assert runner.rows(profile, "licensee profile")[0]["display_name"] == licensee.display_name
    error, hint = whole.stderr.splitlines()
    assert whole.exit_code == 1
    assert "PERMISSION_DENIED ROLE_NOT_PERMITTED" in error
    assert "charter licensees profiles" in hint  # points to the command a rights holder may use


def test_long_names_in_any_script_are_never_broken_letter_by_letter(
    runner: ReadableRunner, live: Live, party: Party, studio: str
) -> None:
    created = _json(
        _run(
            runner,
            live,
            studio,
            "characters",
            "create",
            "--canonical-name",
            f"{LONG_NAME} {party.licensee_id[-6:]}",
            "--franchise",
            "Example Star Stage: The Extraordinarily Long Franchise Title",
            "--alias",
            f"{LONG_KANJI}{party.licensee_id[-4:]}|ja|official_name",
            "--json",
        )
    )

    listed = _run(runner, live, studio, "characters", "list", "--query", party.licensee_id[-6:])
    shown = _run(runner, live, studio, "characters", "show", created["id"])

    assert [row["id"] for row in runner.rows(listed, "characters")] == [created["id"]]
    assert runner.rows(shown, "aliases")[0]["value"] == f"{LONG_KANJI}{party.licensee_id[-4:]}"


def test_the_other_tables_read_at_both_widths(
    runner: ReadableRunner, live: Live, party: Party, admin: charter.Client
) -> None:
    character = party.character_ids[0]
    name = admin.get_licensee(party.licensee_id).display_name

    licensees = _run(runner, live, live.admin, "licensees", "list", "--query", name)
    history = _run(runner, live, live.admin, "terms", "history", character)
    templates = _run(runner, live, live.admin, "terms", "templates")
    screened = _run(runner, live, party.generator, "screen", "a quiet landscape")

    assert licensees.exit_code == 0, licensees.output
    assert [row["id"] for row in runner.rows(licensees, "licensees")] == [party.licensee_id]
    assert [row["version"] for row in runner.rows(history, "terms versions")] == ["1"]
    assert "fan-noncommercial" in [row["name"] for row in runner.rows(templates, "terms templates")]
    assert runner.rows(screened, "detections") == []


# -- one flag name per concept --------------------------------------------------------------------


def test_api_keys_create_takes_the_one_names_and_the_old_spellings_hidden(
    runner: ReadableRunner, live: Live, party: Party
) -> None:
    common = ["api-keys", "create", "--display-name", "render farm", "--role", "generator", "--json"]

    new = _json(_run(runner, live, live.admin, *common, "--licensee", party.licensee_id, "--expires", "2031-01-01"))
    old = _json(
        _run(
            runner,
            live,
            live.admin,
            *common,
            "--licensee-id",
            party.licensee_id,
            "--expire-time",
            "2031-01-01T00:00:00",
        )
    )
    holder = _json(
        _run(
            runner,
            live,
            live.admin,
            "api-keys",
            "create",
            "--display-name",
            "studio",
            "--role",
            "rights_holder",
            "--rights-holder-id",
            party.rights_holder_id,
            "--json",
        )
    )
    usage = runner.invoke(app, ["api-keys", "create", "--help"]).stdout

    for created in (new, old):
        assert (created["apiKey"]["licenseeId"], created["apiKey"]["expireTime"]) == (
            party.licensee_id,
            "2031-01-01T00:00:00Z",
        )
    assert holder["apiKey"]["rightsHolderId"] == party.rights_holder_id
    assert "--licensee " in usage and "--rights-holder " in usage and "--expires " in usage
    assert "--licensee-id" not in usage and "--rights-holder-id" not in usage and "--expire-time" not in usage


# -- errors that say what to do -------------------------------------------------------------------


def test_a_revoked_key_is_told_to_get_a_new_one(runner: ReadableRunner, live: Live, admin: charter.Client) -> None:
    created = admin.create_api_key(display_name="leaving", role=api_key_pb2.ROLE_AUDITOR)
    admin.revoke_api_key(created.api_key.id)

    result = _run(runner, live, created.secret, "whoami")

    error, hint = result.stderr.splitlines()
    assert result.exit_code == 1
    assert error.startswith("error: UNAUTHENTICATED API_KEY_REVOKED: ")
    assert hint.startswith("hint: ")
    assert "CHARTER_API_KEY" in hint
