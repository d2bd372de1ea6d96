"""`charter grants` and `charter signing-keys` against the in-process fake server."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import nacl.signing
from charter import envelope
from charter.cli._app import app
from charter.v1 import grant_pb2, signing_key_pb2, terms_pb2
from google.protobuf import timestamp_pb2
from sdk._fakes import API_KEY, RunningFake  # tests/ is on sys.path: pytest's rootdir-relative layout
from typer.testing import CliRunner, Result

Grant = grant_pb2.Grant
SigningKey = signing_key_pb2.SigningKey

_ERROR_LINE = re.compile(r"^error: (?P<code>[A-Z_]+)(?: (?P<reason>[A-Z_]+))?: .* \(request id [0-9a-f]{32}\)$")


def _invoke(runner: CliRunner, server: RunningFake, *args: str, json_output: bool = False) -> Result:
    base = ["--target", server.target, "--api-key", API_KEY]
    if json_output:
        base.append("--json")
    return runner.invoke(app, [*base, *args])


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _issue(runner: CliRunner, server: RunningFake, *extra: str, licensee: str = "lic_1") -> dict[str, Any]:
    character = server.fake.add_character()
    issued: dict[str, Any] = _json(
        _invoke(
            runner,
            server,
            "grants",
            "issue",
            "--character",
            character.id,
            "--licensee",
            licensee,
            *(extra or ("--days", "30")),
            json_output=True,
        )
    )
    return issued


def _stamp(moment: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


# -- issue, show, list ----------------------------------------------------------------------------


def test_issue_with_days_not_before_terms_file_and_request_id(
    runner: CliRunner, server: RunningFake, tmp_path: Path
) -> None:
    terms_file = tmp_path / "narrowed.json"
    terms_file.write_text(
        json.dumps({"permitted_use_types": ["image_generation"], "max_content_rating": "all_ages"}), encoding="utf-8"
    )

    issued = _issue(
        runner,
        server,
        "--days",
        "7",
        "--not-before",
        "2030-01-01T09:00:00+09:00",
        "--terms-file",
        str(terms_file),
        "--request-id",
        "fixed-id",
    )

    (call,) = server.fake.calls_of("IssueGrant")
    request = call.request
    assert request.request_id == "fixed-id"
    assert request.not_before.ToDatetime(dt.UTC) == dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    # --days counts from the grant's start, not from now.
    assert request.expire_time.ToDatetime(dt.UTC) == dt.datetime(2030, 1, 8, tzinfo=dt.UTC)
    assert list(request.narrowed_terms.permitted_use_types) == [terms_pb2.USE_TYPE_IMAGE_GENERATION]
    assert request.narrowed_terms.max_content_rating == terms_pb2.CONTENT_RATING_ALL_AGES
    assert issued["id"].startswith("grt_")
    assert issued["state"] == "STATE_ACTIVE"
    assert issued["envelope"]["payloadType"] == envelope.GRANT_PAYLOAD_TYPE


def test_issue_with_expires_reads_times_without_offset_as_utc(runner: CliRunner, server: RunningFake) -> None:
    _issue(runner, server, "--expires", "2031-02-03T04:05:06")

    request = server.fake.calls_of("IssueGrant")[0].request
    assert request.expire_time.ToDatetime(dt.UTC) == dt.datetime(2031, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
    assert not request.HasField("not_before")
    assert not request.HasField("narrowed_terms")
    assert not request.HasField("max_uses")


def test_issue_with_a_cap_of_uses(runner: CliRunner, server: RunningFake) -> None:
    _issue(runner, server, "--days", "30", "--max-uses", "1000")
    refused = _invoke(
        runner,
        server,
        "grants",
        "issue",
        "--character",
        "chr_1",
        "--licensee",
        "lic_1",
        "--days",
        "1",
        "--max-uses",
        "-1",
    )

    request = server.fake.calls_of("IssueGrant")[0].request
    assert (request.HasField("max_uses"), request.max_uses) == (True, 1000)
    assert refused.exit_code == 2  # a usage error: never sent
    assert len(server.fake.calls_of("IssueGrant")) == 1


def test_issue_needs_exactly_one_of_expires_and_days(runner: CliRunner, server: RunningFake) -> None:
    base = ("grants", "issue", "--character", "chr_1", "--licensee", "lic_1")

    neither = _invoke(runner, server, *base)
    both = _invoke(runner, server, *base, "--days", "1", "--expires", "2031-01-01T00:00:00Z")
    bad_time = _invoke(runner, server, *base, "--expires", "next tuesday")

    assert (neither.exit_code, both.exit_code, bad_time.exit_code) == (2, 2, 2)
    assert "--days" in neither.output
    assert "not both" in both.output
    assert "ISO 8601" in bad_time.output
    assert server.fake.calls == []


def test_show_envelope_json_prints_only_the_dsse_json(runner: CliRunner, server: RunningFake) -> None:
    issued = _issue(runner, server)

    result = _invoke(runner, server, "grants", "show", issued["id"], "--envelope-json")

    stored = server.fake.issued_grants[issued["id"]].envelope
    assert result.exit_code == 0, result.output
    assert result.stdout == envelope.to_json(stored) + "\n"
    assert result.stderr == ""
    parsed = envelope.from_json(result.stdout)
    assert parsed.payload == stored.payload  # Byte for byte: what was signed is what is printed.
    assert parsed == stored
    assert set(json.loads(result.stdout)) == {"payload", "payloadType", "signatures"}


def test_show_prints_a_table_with_terms_and_an_envelope_line(runner: CliRunner, server: RunningFake) -> None:
    issued = _issue(runner, server)

    shown = _invoke(runner, server, "grants", "show", issued["id"])
    as_json = _json(_invoke(runner, server, "grants", "show", issued["id"], json_output=True))

    assert shown.exit_code == 0, shown.output
    assert issued["id"] in shown.stdout
    assert "terms as granted" in shown.stdout
    assert f"signed by {server.fake.active_key_id}" in shown.stdout
    assert "{" not in shown.stdout  # Neither terms nor envelope printed as raw JSON.
    assert as_json == issued


def test_show_unknown_grant_prints_the_error_line(runner: CliRunner, server: RunningFake) -> None:
    result = _invoke(runner, server, "grants", "show", "grt_" + "0" * 32, "--envelope-json")

    match = _ERROR_LINE.match(result.stderr.splitlines()[0])
    assert result.exit_code == 1
    assert match is not None
    assert (match["code"], match["reason"]) == ("NOT_FOUND", "GRANT_NOT_FOUND")
    assert result.stdout == ""


def test_list_passes_filters_and_limit(runner: CliRunner, server: RunningFake) -> None:
    first = _issue(runner, server)
    second = _issue(runner, server)
    _issue(runner, server, licensee="lic_2")

    listed = _json(
        _invoke(runner, server, "grants", "list", "--licensee", "lic_1", "--state", "active", json_output=True)
    )
    limited = _json(_invoke(runner, server, "grants", "list", "--limit", "1", json_output=True))
    table = _invoke(runner, server, "grants", "list", "--rights-holder", "rh_1", "--character", first["characterId"])
    bad_state = _invoke(runner, server, "grants", "list", "--state", "expired")

    first_call, _, table_call = server.fake.calls_of("ListGrants")
    assert first_call.request.licensee_id == "lic_1"
    assert first_call.request.state == Grant.STATE_ACTIVE
    assert (table_call.request.rights_holder_id, table_call.request.character_id) == ("rh_1", first["characterId"])
    assert [g["id"] for g in listed] == [second["id"], first["id"]]
    assert len(limited) == 1
    assert table.exit_code == 0, table.output
    assert first["id"] in table.stdout
    assert "1 shown" in table.stdout
    assert bad_state.exit_code == 2


# -- lifecycle ------------------------------------------------------------------------------------


def test_suspend_reinstate_and_revoke_print_sequence_numbers(runner: CliRunner, server: RunningFake) -> None:
    grant_id = _issue(runner, server)["id"]

    suspended = _invoke(runner, server, "grants", "suspend", grant_id, "--reason", "payment overdue")
    reinstated = _json(_invoke(runner, server, "grants", "reinstate", grant_id, json_output=True))
    revoked = _invoke(runner, server, "grants", "revoke", grant_id, "--reason", "contract ended")
    again = _invoke(runner, server, "grants", "revoke", grant_id, "--reason", "again")
    missing_reason = _invoke(runner, server, "grants", "revoke", grant_id)

    assert suspended.exit_code == 0, suspended.output
    assert "suspension sequence: 1" in suspended.stdout
    assert "suspended" in suspended.stdout
    assert reinstated["sequence"] == "2"  # int64 is a string in protobuf JSON.
    assert reinstated["grant"]["state"] == "STATE_ACTIVE"
    assert revoked.exit_code == 0, revoked.output
    assert "revocation sequence: 3" in revoked.stdout
    assert "contract ended" in revoked.stdout
    assert server.fake.issued_grants[grant_id].state == Grant.STATE_REVOKED
    match = _ERROR_LINE.match(again.stderr.splitlines()[0])
    assert again.exit_code == 1
    assert match is not None
    assert match["reason"] == "GRANT_REVOKED"
    assert missing_reason.exit_code == 2


# -- verify ---------------------------------------------------------------------------------------


def _envelope_file(runner: CliRunner, server: RunningFake, grant_id: str, path: Path) -> Path:
    result = _invoke(runner, server, "grants", "show", grant_id, "--envelope-json")
    assert result.exit_code == 0, result.output
    path.write_text(result.stdout, encoding="utf-8")
    return path


def test_verify_asks_the_server_and_exits_0_only_when_valid(
    runner: CliRunner, server: RunningFake, tmp_path: Path
) -> None:
    issued = _issue(runner, server)
    file = _envelope_file(runner, server, issued["id"], tmp_path / "grant.json")
    args = ("grants", "verify", str(file), "--character", issued["characterId"])

    valid = _invoke(runner, server, *args, "--licensee", "lic_1")
    wrong = _invoke(runner, server, *args, "--licensee", "lic_2")
    _invoke(runner, server, "grants", "revoke", issued["id"], "--reason", "contract ended")
    revoked = _json_or_exit_1(_invoke(runner, server, *args, "--licensee", "lic_1", json_output=True))

    (call, *_) = server.fake.calls_of("VerifyGrant")
    assert call.request.envelope_json == file.read_text(encoding="utf-8")
    assert (call.request.licensee_id, call.request.character_id) == ("lic_1", issued["characterId"])
    assert valid.exit_code == 0, valid.output
    assert valid.stdout.startswith("verdict: VALID\n")
    assert f"key: {server.fake.active_key_id}" in valid.stdout
    assert "revocation: checked by the server" in valid.stdout
    assert issued["id"] in valid.stdout  # The claims.
    assert wrong.exit_code == 1
    assert wrong.stdout.startswith("verdict: WRONG_LICENSEE\n")
    assert revoked["verdict"] == "REVOKED"
    assert revoked["revocationChecked"] is True
    assert revoked["claims"]["grantId"] == issued["id"]


def _json_or_exit_1(result: Result) -> Any:
    assert result.exit_code == 1, result.output
    return json.loads(result.stdout)


def test_verify_a_garbage_file_is_malformed_and_a_binary_file_a_usage_error(
    runner: CliRunner, server: RunningFake, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"payload": "not base64!"}', encoding="utf-8")
    binary = tmp_path / "binary.bin"
    binary.write_bytes(b"\xff\xfe\x00")

    malformed = _invoke(runner, server, "grants", "verify", str(garbage), "--licensee", "lic_1", "--character", "c")
    unreadable = _invoke(runner, server, "grants", "verify", str(binary), "--licensee", "lic_1", "--character", "c")

    assert malformed.exit_code == 1
    assert malformed.stdout.startswith("verdict: MALFORMED\n")
    assert unreadable.exit_code == 2
    assert len(server.fake.calls_of("VerifyGrant")) == 1


def _signed_by_a_test_key(server: RunningFake, *, grant_id: str, character_id: str) -> str:
    """A grant signed here with a fresh Ed25519 key that the fake's key set then lists as retired."""
    seed = nacl.signing.SigningKey.generate()
    now = dt.datetime.now(dt.UTC)
    key_id = "sk_00000000feedface"
    server.fake.signing_keys[key_id] = SigningKey(
        key_id=key_id,
        algorithm="ed25519",
        public_key=bytes(seed.verify_key),
        state=SigningKey.STATE_RETIRED,
        activate_time=_stamp(now - dt.timedelta(hours=1)),
        retire_time=_stamp(now),
    )
    claims = grant_pb2.GrantClaims(
        grant_id=grant_id,
        character_id=character_id,
        rights_holder_id="rh_1",
        licensee_id="lic_1",
        terms=terms_pb2.Terms(permitted_use_types=[terms_pb2.USE_TYPE_CAMEO]),
        terms_version=1,
        issue_time=_stamp(now - dt.timedelta(minutes=10)),
        not_before=_stamp(now - dt.timedelta(minutes=10)),
        expire_time=_stamp(now + dt.timedelta(days=1)),
        issuer="test",
    )
    signed = envelope.sign(
        claims.SerializeToString(), envelope.GRANT_PAYLOAD_TYPE, key_id=key_id, private_key=bytes(seed)
    )
    return envelope.to_json(signed)


def test_verify_offline_checks_locally_with_the_key_set_and_says_revocation_is_unchecked(
    runner: CliRunner, server: RunningFake, tmp_path: Path
) -> None:
    grant_id = _issue(runner, server)["id"]
    # The server knows this grant as revoked; offline verification cannot know that.
    _invoke(runner, server, "grants", "revoke", grant_id, "--reason", "contract ended")
    file = tmp_path / "grant.json"
    file.write_text(_signed_by_a_test_key(server, grant_id=grant_id, character_id="chr_x"), encoding="utf-8")
    args = ("grants", "verify", str(file), "--licensee", "lic_1", "--offline")

    valid = _invoke(runner, server, *args, "--character", "chr_x")
    as_json = _json(_invoke(runner, server, *args, "--character", "chr_x", json_output=True))
    wrong = _invoke(runner, server, *args, "--character", "chr_y")

    assert server.fake.calls_of("VerifyGrant") == []
    assert len(server.fake.calls_of("GetKeySet")) == 3
    assert valid.exit_code == 0, valid.output
    assert valid.stdout.startswith("verdict: VALID\n")
    assert "key: sk_00000000feedface" in valid.stdout
    assert "revocation: not checked" in valid.stdout
    assert grant_id in valid.stdout
    assert "cameo" in valid.stdout  # The terms as granted.
    assert as_json["verdict"] == "VALID"
    assert as_json["revocationChecked"] is False
    assert as_json["checkedBy"] == "offline"
    assert as_json["keyId"] == "sk_00000000feedface"
    assert as_json["claims"]["grantId"] == grant_id
    assert wrong.exit_code == 1
    assert wrong.stdout.startswith("verdict: WRONG_CHARACTER\n")


def test_verify_offline_fails_once_the_signing_key_is_revoked(
    runner: CliRunner, server: RunningFake, tmp_path: Path
) -> None:
    issued = _issue(runner, server)
    file = _envelope_file(runner, server, issued["id"], tmp_path / "grant.json")
    old_key = server.fake.active_key_id
    args = ("grants", "verify", str(file), "--licensee", "lic_1", "--character", issued["characterId"], "--offline")

    _invoke(runner, server, "signing-keys", "rotate")
    after_rotation = _invoke(runner, server, *args)
    _invoke(runner, server, "signing-keys", "revoke", old_key, "--reason", "leaked")
    after_revocation = _invoke(runner, server, *args)

    assert after_rotation.exit_code == 0, after_rotation.output
    assert after_revocation.exit_code == 1
    assert after_revocation.stdout.startswith("verdict: KEY_REVOKED\n")


# -- signing keys ---------------------------------------------------------------------------------


def test_signing_keys_list_rotate_and_revoke(runner: CliRunner, server: RunningFake) -> None:
    original = server.fake.active_key_id

    listed = _invoke(runner, server, "signing-keys", "list")
    rotated = _invoke(runner, server, "signing-keys", "rotate")
    new_key = server.fake.active_key_id
    refused = _invoke(runner, server, "signing-keys", "revoke", new_key, "--reason", "nope")
    revoked = _json(_invoke(runner, server, "signing-keys", "revoke", original, "--reason", "leaked", json_output=True))
    listed_json = _json(_invoke(runner, server, "signing-keys", "list", json_output=True))
    rotated_json = _json(_invoke(runner, server, "signing-keys", "rotate", json_output=True))

    assert listed.exit_code == 0, listed.output
    assert original in listed.stdout
    assert "active" in listed.stdout
    assert "1 shown" in listed.stdout
    assert rotated.exit_code == 0, rotated.output
    assert "new active key" in rotated.stdout
    assert "retired key" in rotated.stdout
    assert new_key in rotated.stdout
    assert original in rotated.stdout
    assert "public_key" not in rotated.stdout
    match = _ERROR_LINE.match(refused.stderr.splitlines()[0])
    assert refused.exit_code == 1
    assert match is not None
    assert (match["code"], match["reason"]) == ("FAILED_PRECONDITION", "SIGNING_KEY_ACTIVE")
    assert server.fake.calls_of("RevokeSigningKey")[1].request.reason == "leaked"
    assert revoked["keyId"] == original
    assert revoked["state"] == "STATE_REVOKED"
    assert revoked["publicKey"]  # Scripts get the public key (base64) in the JSON form.
    assert [(k["keyId"], k["state"]) for k in listed_json] == [
        (new_key, "STATE_ACTIVE"),
        (original, "STATE_REVOKED"),
    ]
    assert rotated_json["retiredKey"]["keyId"] == new_key
    assert rotated_json["activeKey"]["state"] == "STATE_ACTIVE"
