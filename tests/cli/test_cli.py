"""The `charter` command line against a real server (see `conftest`)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from charter import Client
from charter.cli import main
from charter.cli._app import app
from charter.v1 import api_key_pb2
from sdk._live import Live, unique  # tests/ is on sys.path: pytest's rootdir-relative layout
from sdk._tap import Tap
from typer.testing import CliRunner

from ._commands import ERROR_LINE, invoke, json_of

_MISSING = "0" * 32


def _create_holder(
    runner: CliRunner, live: Live, name: str = "Example Studio", *, via: Tap | None = None
) -> dict[str, Any]:
    args = ("rights-holders", "create", "--display-name", name, "--contact-email", "licensing@example.com")
    created: dict[str, Any] = json_of(invoke(runner, live, *args, via=via, json_output=True))
    return created


def test_create_prints_protobuf_json(runner: CliRunner, cli_live: Live, tap: Tap) -> None:
    created = _create_holder(runner, cli_live, via=tap)

    (call,) = tap.calls_of("CreateRightsHolder")
    assert created["id"].startswith("rh_")
    assert created["displayName"] == "Example Studio"
    assert created["state"] == "STATE_ACTIVE"
    assert created["legalName"] == ""  # Every field is present, empty or not.
    assert call.metadata["authorization"] == f"Bearer {cli_live.admin}"
    assert call.request.request_id


def test_show_and_list_print_tables_for_people(runner: CliRunner, cli_live: Live, tap: Tap) -> None:
    marker = unique()
    first = _create_holder(runner, cli_live, f"First [bold]Studio[/bold] {marker}")
    second = _create_holder(runner, cli_live, f"Second Studio {marker}")

    shown = invoke(runner, cli_live, "rights-holders", "show", first["id"])
    listed = invoke(runner, cli_live, "rights-holders", "list", "--query", marker, "--page-size", "1", via=tap)

    assert shown.exit_code == 0
    assert first["id"] in shown.stdout
    assert "First [bold]Studio[/bold]" in shown.stdout  # User text is never read as Rich markup.
    assert "active" in shown.stdout
    assert listed.exit_code == 0
    assert first["id"] in listed.stdout
    assert second["id"] in listed.stdout
    assert "2 shown" in listed.stdout
    assert len(tap.calls_of("ListRightsHolders")) == 2  # The pager followed the token.


def test_list_json_is_a_list_and_limit_stops_early(runner: CliRunner, cli_live: Live, tap: Tap) -> None:
    marker = unique()
    ids = [_create_holder(runner, cli_live, f"Studio {marker} {i}")["id"] for i in range(3)]

    everything = json_of(invoke(runner, cli_live, "rights-holders", "list", "--query", marker, json_output=True))
    limited = json_of(
        invoke(
            runner,
            cli_live,
            "rights-holders",
            "list",
            "--query",
            marker,
            "--limit",
            "1",
            "--page-size",
            "1",
            via=tap,
            json_output=True,
        )
    )

    assert [h["id"] for h in everything] == ids
    assert [h["id"] for h in limited] == ids[:1]
    assert len(tap.calls_of("ListRightsHolders")) == 1  # The limit was reached on the first page.


def test_update_and_archive(runner: CliRunner, cli_live: Live, tap: Tap) -> None:
    marker = unique()
    holder = _create_holder(runner, cli_live, f"Studio {marker}")

    updated = json_of(
        invoke(
            runner,
            cli_live,
            "rights-holders",
            "update",
            holder["id"],
            "--display-name",
            f"Renamed {marker}",
            via=tap,
            json_output=True,
        )
    )
    archived = json_of(invoke(runner, cli_live, "rights-holders", "archive", holder["id"], json_output=True))
    archived_list = json_of(
        invoke(runner, cli_live, "rights-holders", "list", "--state", "ARCHIVED", "--query", marker, json_output=True)
    )

    (call,) = tap.calls_of("UpdateRightsHolder")
    assert list(call.request.update_mask.paths) == ["display_name"]
    assert updated["displayName"] == f"Renamed {marker}"
    assert archived["state"] == "STATE_ARCHIVED"
    assert [h["id"] for h in archived_list] == [holder["id"]]


def test_update_without_fields_is_a_usage_error(runner: CliRunner, cli_live: Live, tap: Tap) -> None:
    result = invoke(runner, cli_live, "rights-holders", "update", "rh_1", via=tap)

    assert result.exit_code == 2
    assert tap.calls == []


def test_not_found_prints_one_error_line_and_exits_1(runner: CliRunner, cli_live: Live, tap: Tap) -> None:
    result = invoke(runner, cli_live, "rights-holders", "show", "rh_" + _MISSING, via=tap)

    (call,) = tap.calls
    lines = result.stderr.splitlines()
    match = ERROR_LINE.match(lines[0])
    assert result.exit_code == 1
    assert len(lines) == 1
    assert match is not None
    assert match["code"] == "NOT_FOUND"
    assert match["reason"] == "RIGHTS_HOLDER_NOT_FOUND"
    assert match["rid"] == call.metadata["x-request-id"]
    assert result.stdout == ""


def test_validation_errors_list_each_field_violation(runner: CliRunner, cli_live: Live) -> None:
    result = invoke(
        runner,
        cli_live,
        "licensees",
        "create",
        "--display-name",
        "",
        "--contact-email",
        "ops@example.com",
        "--platform",
        "",
    )

    first, *violations = result.stderr.splitlines()
    match = ERROR_LINE.match(first)
    assert result.exit_code == 1
    assert match is not None
    assert (match["code"], match["reason"]) == ("INVALID_ARGUMENT", "INVALID_FIELD")
    assert [v.split(":")[0].strip() for v in violations] == ["licensee.display_name", "licensee.platform"]


def test_missing_key_is_unauthenticated(runner: CliRunner, cli_live: Live) -> None:
    result = runner.invoke(app, ["--target", cli_live.target, "whoami"])

    error, hint = result.stderr.splitlines()
    match = ERROR_LINE.match(error)
    assert result.exit_code == 1
    assert match is not None
    assert (match["code"], match["reason"]) == ("UNAUTHENTICATED", "CREDENTIALS_MISSING")
    assert hint.startswith("hint: ")
    assert "CHARTER_API_KEY" in hint  # names the variable to set


def test_unreachable_server_is_unavailable(runner: CliRunner) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    result = runner.invoke(app, ["--target", f"127.0.0.1:{port}", "--timeout", "2", "whoami"])

    error, hint = result.stderr.splitlines()
    match = ERROR_LINE.match(error)
    assert result.exit_code == 1
    assert match is not None
    assert match["code"] == "UNAVAILABLE"
    assert match["reason"] is None
    assert hint.startswith("hint: ")
    assert f"127.0.0.1:{port}" in hint  # says which address did not answer


def test_target_and_key_come_from_the_environment(runner: CliRunner, cli_live: Live) -> None:
    result = runner.invoke(
        app, ["--json", "whoami"], env={"CHARTER_TARGET": cli_live.target, "CHARTER_API_KEY": cli_live.admin}
    )

    assert json_of(result)["id"] == cli_live.admin_key_id


def test_whoami_table(runner: CliRunner, cli_live: Live) -> None:
    result = invoke(runner, cli_live, "whoami")

    assert result.exit_code == 0
    assert cli_live.admin_key_id in result.stdout
    assert "admin" in result.stdout


def test_api_key_create_shows_the_secret_once_with_a_warning(
    runner: CliRunner, cli_live: Live, tap: Tap, staff: Client
) -> None:
    licensee = staff.create_licensee(display_name=unique("App "), contact_email="ops@app.example", platform="app")
    request_id = unique("request-")
    args = ("api-keys", "create", "--display-name", "render farm", "--licensee-id", licensee.id)
    same = ("--expire-time", "2031-01-01T00:00:00Z", "--request-id", request_id)

    table = invoke(runner, cli_live, *args, "--role", "GENERATOR", *same, via=tap)
    repeated = invoke(runner, cli_live, *args, "--role", "generator", *same, json_output=True)

    first_call = tap.calls_of("CreateApiKey")[0]
    lines = table.stdout.splitlines()
    label = lines.index("secret (shown only this once):")
    assert table.exit_code == 0
    assert lines[label + 1].startswith("key_")
    assert sum(line.startswith("key_") for line in lines) == 1
    assert table.stderr.startswith("warning: ")
    assert first_call.request.role == api_key_pb2.ROLE_GENERATOR
    assert first_call.request.expire_time.seconds == 1924992000
    assert json_of(repeated)["secret"] == ""
    assert repeated.stderr.startswith("warning: ")


def test_api_keys_show_list_and_revoke(runner: CliRunner, cli_live: Live) -> None:
    created = json_of(
        invoke(runner, cli_live, "api-keys", "create", "--display-name", "audit", "--role", "auditor", json_output=True)
    )
    key_id = created["apiKey"]["id"]

    shown = json_of(invoke(runner, cli_live, "api-keys", "show", key_id, json_output=True))
    auditors = json_of(invoke(runner, cli_live, "api-keys", "list", "--role", "auditor", json_output=True))
    revoked = json_of(invoke(runner, cli_live, "api-keys", "revoke", key_id, json_output=True))
    again = invoke(runner, cli_live, "api-keys", "revoke", key_id)
    table = invoke(runner, cli_live, "api-keys", "list", "--show-inactive")

    match = ERROR_LINE.match(again.stderr.splitlines()[0])
    assert "secret" not in shown
    assert key_id in [k["id"] for k in auditors]
    assert {k["role"] for k in auditors} == {"ROLE_AUDITOR"}
    assert revoked["state"] == "STATE_REVOKED"
    assert again.exit_code == 1
    assert match is not None
    assert (match["code"], match["reason"]) == ("FAILED_PRECONDITION", "API_KEY_ALREADY_REVOKED")
    assert key_id in table.stdout
    assert "revoked" in table.stdout


def test_licensees_commands(runner: CliRunner, cli_live: Live) -> None:
    platform = unique("video-app-").lower()
    created = json_of(
        invoke(
            runner,
            cli_live,
            "licensees",
            "create",
            "--display-name",
            "Video App",
            "--contact-email",
            "ops@example.com",
            "--platform",
            platform,
            json_output=True,
        )
    )

    shown = invoke(runner, cli_live, "licensees", "show", created["id"])
    listed = json_of(invoke(runner, cli_live, "licensees", "list", "--platform", platform, json_output=True))
    updated = json_of(
        invoke(runner, cli_live, "licensees", "update", created["id"], "--legal-name", "Video KK", json_output=True)
    )
    archived = json_of(invoke(runner, cli_live, "licensees", "archive", created["id"], json_output=True))

    assert shown.exit_code == 0
    assert platform in shown.stdout
    assert [lic["id"] for lic in listed] == [created["id"]]
    assert updated["legalName"] == "Video KK"
    assert archived["state"] == "STATE_ARCHIVED"


def test_bad_choices_and_missing_files_are_usage_errors(
    runner: CliRunner, cli_live: Live, tap: Tap, tmp_path: Path
) -> None:
    create = ("api-keys", "create", "--display-name", "k")
    bad_role = invoke(runner, cli_live, *create, "--role", "superuser", via=tap)
    bad_time = invoke(runner, cli_live, *create, "--role", "admin", "--expire-time", "soon", via=tap)
    missing_ca = runner.invoke(app, ["--tls-ca", str(tmp_path / "missing.pem"), "whoami"])
    bad_key = runner.invoke(app, ["--target", tap.target, "--api-key", "two words", "whoami"])

    assert (bad_role.exit_code, bad_time.exit_code, missing_ca.exit_code, bad_key.exit_code) == (2, 2, 2, 2)
    assert tap.calls == []


def test_main_explains_how_to_install_the_cli_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "typer", None)  # Makes `import typer` raise ImportError.

    with pytest.raises(SystemExit) as exc:
        main()

    err = capsys.readouterr().err
    assert exc.value.code == 1
    assert len(err.splitlines()) == 1
    assert "pip install 'charter-sdk[cli]'" in err
