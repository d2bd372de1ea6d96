"""The `charter` command line against the in-process fake server."""

from __future__ import annotations

import json
import re
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from charter.cli import main
from charter.cli._app import app
from typer.testing import CliRunner, Result

try:
    from ..sdk._fakes import API_KEY, CALLER_ID, RunningFake
except ImportError:
    from sdk._fakes import API_KEY, CALLER_ID, RunningFake

_ERROR_LINE = re.compile(
    r"^error: (?P<code>[A-Z_]+)(?: (?P<reason>[A-Z_]+))?: .* \(request id (?P<rid>[0-9a-f]{32})\)$"
)


def _invoke(runner: CliRunner, server: RunningFake, *args: str, json_output: bool = False) -> Result:
    base = ["--target", server.target, "--api-key", API_KEY]
    if json_output:
        base.append("--json")
    return runner.invoke(app, [*base, *args])


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _create_holder(runner: CliRunner, server: RunningFake, name: str = "Example Studio") -> dict[str, Any]:
    result = _invoke(
        runner,
        server,
        "rights-holders",
        "create",
        "--display-name",
        name,
        "--contact-email",
        "licensing@example.com",
        json_output=True,
    )
    created: dict[str, Any] = _json(result)
    return created


def test_create_prints_protobuf_json(runner: CliRunner, server: RunningFake) -> None:
    created = _create_holder(runner, server)

    (call,) = server.fake.calls_of("CreateRightsHolder")
    assert created["id"].startswith("rh_")
    assert created["displayName"] == "Example Studio"
    assert created["state"] == "STATE_ACTIVE"
    assert created["legalName"] == ""  # Every field is present, empty or not.
    assert call.metadata["authorization"] == f"Bearer {API_KEY}"
    assert call.request.request_id


def test_show_and_list_print_tables_for_people(runner: CliRunner, server: RunningFake) -> None:
    first = _create_holder(runner, server, "First [bold]Studio[/bold]")
    second = _create_holder(runner, server, "Second Studio")

    shown = _invoke(runner, server, "rights-holders", "show", first["id"])
    listed = _invoke(runner, server, "rights-holders", "list", "--page-size", "1")

    assert shown.exit_code == 0
    assert first["id"] in shown.stdout
    assert "First [bold]Studio[/bold]" in shown.stdout  # User text is never read as Rich markup.
    assert "active" in shown.stdout
    assert listed.exit_code == 0
    assert first["id"] in listed.stdout
    assert second["id"] in listed.stdout
    assert "2 shown" in listed.stdout
    assert len(server.fake.calls_of("ListRightsHolders")) == 2  # The pager followed the token.


def test_list_json_is_a_list_and_limit_stops_early(runner: CliRunner, server: RunningFake) -> None:
    ids = [_create_holder(runner, server, f"Studio {i}")["id"] for i in range(3)]

    everything = _json(_invoke(runner, server, "rights-holders", "list", json_output=True))
    limited = _json(
        _invoke(runner, server, "rights-holders", "list", "--limit", "1", "--page-size", "1", json_output=True)
    )

    assert [h["id"] for h in everything] == ids
    assert [h["id"] for h in limited] == ids[:1]
    assert len(server.fake.calls_of("ListRightsHolders")) == 2


def test_update_and_archive(runner: CliRunner, server: RunningFake) -> None:
    holder = _create_holder(runner, server)

    updated = _json(
        _invoke(runner, server, "rights-holders", "update", holder["id"], "--display-name", "Renamed", json_output=True)
    )
    archived = _json(_invoke(runner, server, "rights-holders", "archive", holder["id"], json_output=True))
    archived_list = _json(_invoke(runner, server, "rights-holders", "list", "--state", "ARCHIVED", json_output=True))

    (call,) = server.fake.calls_of("UpdateRightsHolder")
    assert list(call.request.update_mask.paths) == ["display_name"]
    assert updated["displayName"] == "Renamed"
    assert archived["state"] == "STATE_ARCHIVED"
    assert [h["id"] for h in archived_list] == [holder["id"]]


def test_update_without_fields_is_a_usage_error(runner: CliRunner, server: RunningFake) -> None:
    result = _invoke(runner, server, "rights-holders", "update", "rh_1")

    assert result.exit_code == 2
    assert server.fake.calls == []


def test_not_found_prints_one_error_line_and_exits_1(runner: CliRunner, server: RunningFake) -> None:
    result = _invoke(runner, server, "rights-holders", "show", "rh_missing")

    (call,) = server.fake.calls
    lines = result.stderr.splitlines()
    match = _ERROR_LINE.match(lines[0])
    assert result.exit_code == 1
    assert len(lines) == 1
    assert match is not None
    assert match["code"] == "NOT_FOUND"
    assert match["reason"] == "RIGHTS_HOLDER_NOT_FOUND"
    assert match["rid"] == call.metadata["x-request-id"]
    assert result.stdout == ""


def test_validation_errors_list_each_field_violation(runner: CliRunner, server: RunningFake) -> None:
    result = _invoke(
        runner,
        server,
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
    match = _ERROR_LINE.match(first)
    assert result.exit_code == 1
    assert match is not None
    assert (match["code"], match["reason"]) == ("INVALID_ARGUMENT", "INVALID_FIELD")
    assert [v.split(":")[0].strip() for v in violations] == ["licensee.display_name", "licensee.platform"]


def test_missing_key_is_unauthenticated(runner: CliRunner, server: RunningFake) -> None:
    result = runner.invoke(app, ["--target", server.target, "whoami"])

    error, hint = result.stderr.splitlines()
    match = _ERROR_LINE.match(error)
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
    match = _ERROR_LINE.match(error)
    assert result.exit_code == 1
    assert match is not None
    assert match["code"] == "UNAVAILABLE"
    assert match["reason"] is None
    assert hint.startswith("hint: ")
    assert f"127.0.0.1:{port}" in hint  # says which address did not answer


def test_target_and_key_come_from_the_environment(runner: CliRunner, server: RunningFake) -> None:
    result = runner.invoke(app, ["--json", "whoami"], env={"CHARTER_TARGET": server.target, "CHARTER_API_KEY": API_KEY})

    assert _json(result)["id"] == CALLER_ID


def test_whoami_table(runner: CliRunner, server: RunningFake) -> None:
    result = _invoke(runner, server, "whoami")

    assert result.exit_code == 0
    assert CALLER_ID in result.stdout
    assert "admin" in result.stdout


def test_api_key_create_shows_the_secret_once_with_a_warning(runner: CliRunner, server: RunningFake) -> None:
    table = _invoke(
        runner,
        server,
        "api-keys",
        "create",
        "--display-name",
        "render farm",
        "--role",
        "GENERATOR",
        "--licensee-id",
        "lic_1",
        "--expire-time",
        "2031-01-01T00:00:00Z",
        "--request-id",
        "same-request",
    )
    repeated = _invoke(
        runner,
        server,
        "api-keys",
        "create",
        "--display-name",
        "render farm",
        "--role",
        "generator",
        "--licensee-id",
        "lic_1",
        "--request-id",
        "same-request",
        json_output=True,
    )

    first_call = server.fake.calls_of("CreateApiKey")[0]
    lines = table.stdout.splitlines()
    label = lines.index("secret (shown only this once):")
    assert table.exit_code == 0
    assert lines[label + 1].startswith("key_")
    assert sum(line.startswith("key_") for line in lines) == 1
    assert table.stderr.startswith("warning: ")
    assert first_call.request.role == 3  # ROLE_GENERATOR
    assert first_call.request.expire_time.seconds == 1924992000
    assert _json(repeated)["secret"] == ""
    assert repeated.stderr.startswith("warning: ")


def test_api_keys_show_list_and_revoke(runner: CliRunner, server: RunningFake) -> None:
    created = _json(
        _invoke(runner, server, "api-keys", "create", "--display-name", "audit", "--role", "auditor", json_output=True)
    )
    key_id = created["apiKey"]["id"]

    shown = _json(_invoke(runner, server, "api-keys", "show", key_id, json_output=True))
    auditors = _json(_invoke(runner, server, "api-keys", "list", "--role", "auditor", json_output=True))
    revoked = _json(_invoke(runner, server, "api-keys", "revoke", key_id, json_output=True))
    again = _invoke(runner, server, "api-keys", "revoke", key_id)
    table = _invoke(runner, server, "api-keys", "list", "--show-inactive")

    match = _ERROR_LINE.match(again.stderr.splitlines()[0])
    assert "secret" not in shown
    assert [k["id"] for k in auditors] == [key_id]
    assert revoked["state"] == "STATE_REVOKED"
    assert again.exit_code == 1
    assert match is not None
    assert (match["code"], match["reason"]) == ("FAILED_PRECONDITION", "API_KEY_ALREADY_REVOKED")
    assert key_id in table.stdout
    assert "revoked" in table.stdout


def test_licensees_commands(runner: CliRunner, server: RunningFake) -> None:
    created = _json(
        _invoke(
            runner,
            server,
            "licensees",
            "create",
            "--display-name",
            "Video App",
            "--contact-email",
            "ops@example.com",
            "--platform",
            "video-app",
            json_output=True,
        )
    )

    shown = _invoke(runner, server, "licensees", "show", created["id"])
    listed = _json(_invoke(runner, server, "licensees", "list", "--platform", "video-app", json_output=True))
    updated = _json(
        _invoke(runner, server, "licensees", "update", created["id"], "--legal-name", "Video KK", json_output=True)
    )
    archived = _json(_invoke(runner, server, "licensees", "archive", created["id"], json_output=True))

    assert shown.exit_code == 0
    assert "video-app" in shown.stdout
    assert [lic["id"] for lic in listed] == [created["id"]]
    assert updated["legalName"] == "Video KK"
    assert archived["state"] == "STATE_ARCHIVED"


def test_bad_choices_and_missing_files_are_usage_errors(runner: CliRunner, server: RunningFake, tmp_path: Path) -> None:
    bad_role = _invoke(runner, server, "api-keys", "create", "--display-name", "k", "--role", "superuser")
    bad_time = _invoke(
        runner, server, "api-keys", "create", "--display-name", "k", "--role", "admin", "--expire-time", "soon"
    )
    missing_ca = runner.invoke(app, ["--tls-ca", str(tmp_path / "missing.pem"), "whoami"])
    bad_key = runner.invoke(app, ["--target", server.target, "--api-key", "two words", "whoami"])

    assert (bad_role.exit_code, bad_time.exit_code, missing_ca.exit_code, bad_key.exit_code) == (2, 2, 2, 2)
    assert server.fake.calls == []


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
