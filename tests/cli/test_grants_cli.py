"""`charter grants` and `charter signing-keys` against a real server (see `conftest`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from charter import Client, envelope
from charter.v1 import grant_pb2, terms_pb2
from sdk._live import Live, unique  # tests/ is on sys.path: pytest's rootdir-relative layout
from sdk._scene import Scene, make_scene
from sdk._tap import Tap
from typer.testing import CliRunner, Result

from ._commands import ERROR_LINE, active_signing_key, envelope_file, invoke, json_of

Grant = grant_pb2.Grant

_UNKNOWN_LICENSEE = "lic_" + "0" * 32


def _issue(
    runner: CliRunner, live: Live, scene: Scene, *extra: str, licensee: str = "", via: Tap | None = None
) -> dict[str, Any]:
    """Issues a grant of a fresh character opted in under `sdk._scene.TERMS`, for the scene's licensee
    unless another is given, for 30 days unless `extra` says otherwise."""
    character = scene.character(granted=False)
    issued: dict[str, Any] = json_of(
        invoke(
            runner,
            live,
            "grants",
            "issue",
            "--character",
            character.id,
            "--licensee",
            licensee or scene.licensee_id,
            *(extra or ("--days", "30")),
            via=via,
            json_output=True,
        )
    )
    return issued


@dataclasses.dataclass(frozen=True)
class Own:
    """A server of this test alone (its signing keys change), a tap in front of it and a scene on it."""

    live: Live
    tap: Tap
    staff: Client
    scene: Scene


@pytest.fixture
def own(own_live: Live) -> Iterator[Own]:
    """A server of this test alone, with a tap and a fresh scene."""
    with Client(own_live.target, api_key=own_live.admin) as staff, Tap(own_live.target) as tap:
        yield Own(own_live, tap, staff, make_scene(own_live, staff))


# -- issue, show, list ----------------------------------------------------------------------------


def test_issue_with_days_not_before_terms_file_and_request_id(
    runner: CliRunner, cli_live: Live, scene: Scene, tap: Tap, tmp_path: Path
) -> None:
    terms_file = tmp_path / "narrowed.json"
    terms_file.write_text(
        json.dumps(
            {
                "permitted_use_types": ["image_generation"],
                "max_content_rating": "all_ages",
                "prohibited_categories": ["sexual"],
                # What the character's terms oblige a licensee to stays: narrowing never waives it.
                "attribution_text": "© Example Studio",
                "watermark_required": True,
                "revenue_share_bps": 1500,
                "per_use_fee": {"currency_code": "JPY", "minor_units": 100},
            }
        ),
        encoding="utf-8",
    )
    options = ("--days", "7", "--not-before", "2030-01-01T09:00:00+09:00", "--terms-file", str(terms_file))
    request_id = unique("fixed-")

    issued = _issue(runner, cli_live, scene, *options, "--request-id", request_id, via=tap)

    (call,) = tap.calls_of("IssueGrant")
    request = call.request
    assert request.request_id == request_id
    assert request.not_before.ToDatetime(dt.UTC) == dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    # --days counts from the grant's start, not from now.
    assert request.expire_time.ToDatetime(dt.UTC) == dt.datetime(2030, 1, 8, tzinfo=dt.UTC)
    assert list(request.narrowed_terms.permitted_use_types) == [terms_pb2.USE_TYPE_IMAGE_GENERATION]
    assert request.narrowed_terms.max_content_rating == terms_pb2.CONTENT_RATING_ALL_AGES
    assert issued["id"].startswith("grt_")
    assert issued["state"] == "STATE_ACTIVE"
    assert (issued["notBefore"], issued["expireTime"]) == ("2030-01-01T00:00:00Z", "2030-01-08T00:00:00Z")
    assert issued["terms"]["maxContentRating"] == "CONTENT_RATING_ALL_AGES"
    assert issued["envelope"]["payloadType"] == envelope.GRANT_PAYLOAD_TYPE


def test_issue_with_expires_reads_times_without_offset_as_utc(
    runner: CliRunner, cli_live: Live, scene: Scene, tap: Tap
) -> None:
    # Within the longest lifetime of a grant (366 days), with no offset.
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=100)).replace(microsecond=0, tzinfo=None)

    issued = _issue(runner, cli_live, scene, "--expires", expires.isoformat(), via=tap)

    request = tap.calls_of("IssueGrant")[0].request
    assert request.expire_time.ToDatetime(dt.UTC) == expires.replace(tzinfo=dt.UTC)
    assert not request.HasField("not_before")
    assert not request.HasField("narrowed_terms")
    assert not request.HasField("max_uses")
    assert issued["expireTime"] == f"{expires.isoformat()}Z"


def test_issue_with_a_cap_of_uses(runner: CliRunner, cli_live: Live, scene: Scene, tap: Tap) -> None:
    issued = _issue(runner, cli_live, scene, "--days", "30", "--max-uses", "1000", via=tap)
    refused = invoke(
        runner,
        cli_live,
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
        via=tap,
    )

    request = tap.calls_of("IssueGrant")[0].request
    assert (request.HasField("max_uses"), request.max_uses) == (True, 1000)
    assert issued["maxUses"] == "1000"  # int64 is a string in protobuf JSON.
    assert refused.exit_code == 2  # a usage error: never sent
    assert len(tap.calls_of("IssueGrant")) == 1


def test_issue_needs_exactly_one_of_expires_and_days(runner: CliRunner, cli_live: Live, tap: Tap) -> None:
    base = ("grants", "issue", "--character", "chr_1", "--licensee", "lic_1")

    neither = invoke(runner, cli_live, *base, via=tap)
    both = invoke(runner, cli_live, *base, "--days", "1", "--expires", "2031-01-01T00:00:00Z", via=tap)
    bad_time = invoke(runner, cli_live, *base, "--expires", "next tuesday", via=tap)

    assert (neither.exit_code, both.exit_code, bad_time.exit_code) == (2, 2, 2)
    assert "--days" in neither.output
    assert "not both" in both.output
    assert "ISO 8601" in bad_time.output
    assert tap.calls == []


def test_show_envelope_json_prints_only_the_dsse_json(
    runner: CliRunner, cli_live: Live, scene: Scene, staff: Client
) -> None:
    issued = _issue(runner, cli_live, scene)

    result = invoke(runner, cli_live, "grants", "show", issued["id"], "--envelope-json")

    stored = staff.get_grant(issued["id"]).envelope
    assert result.exit_code == 0, result.output
    assert result.stdout == envelope.to_json(stored) + "\n"
    assert result.stderr == ""
    parsed = envelope.from_json(result.stdout)
    assert parsed.payload == stored.payload  # Byte for byte: what was signed is what is printed.
    assert parsed == stored
    assert set(json.loads(result.stdout)) == {"payload", "payloadType", "signatures"}


def test_show_prints_a_table_with_terms_and_an_envelope_line(
    runner: CliRunner, cli_live: Live, scene: Scene, staff: Client
) -> None:
    issued = _issue(runner, cli_live, scene)

    shown = invoke(runner, cli_live, "grants", "show", issued["id"])
    as_json = json_of(invoke(runner, cli_live, "grants", "show", issued["id"], json_output=True))

    assert shown.exit_code == 0, shown.output
    assert issued["id"] in shown.stdout
    assert "terms as granted" in shown.stdout
    assert f"signed by {active_signing_key(staff)}" in shown.stdout
    assert "{" not in shown.stdout  # Neither terms nor envelope printed as raw JSON.
    assert as_json == issued


def test_show_unknown_grant_prints_the_error_line(runner: CliRunner, cli_live: Live) -> None:
    result = invoke(runner, cli_live, "grants", "show", "grt_" + "0" * 32, "--envelope-json")

    match = ERROR_LINE.match(result.stderr.splitlines()[0])
    assert result.exit_code == 1
    assert match is not None
    assert (match["code"], match["reason"]) == ("NOT_FOUND", "GRANT_NOT_FOUND")
    assert result.stdout == ""


def test_list_passes_filters_and_limit(
    runner: CliRunner, cli_live: Live, scene: Scene, staff: Client, tap: Tap
) -> None:
    other = staff.create_licensee(display_name="Other App", contact_email="ops@other.example", platform="other-app")
    first = _issue(runner, cli_live, scene)
    second = _issue(runner, cli_live, scene)
    _issue(runner, cli_live, scene, licensee=other.id)
    licensee, holder = scene.licensee_id, scene.rights_holder_id

    listed = json_of(
        invoke(
            runner, cli_live, "grants", "list", "--licensee", licensee, "--state", "active", via=tap, json_output=True
        )
    )
    limited = json_of(invoke(runner, cli_live, "grants", "list", "--limit", "1", via=tap, json_output=True))
    table = invoke(
        runner, cli_live, "grants", "list", "--rights-holder", holder, "--character", first["characterId"], via=tap
    )
    bad_state = invoke(runner, cli_live, "grants", "list", "--state", "expired", via=tap)

    first_call, _, table_call = tap.calls_of("ListGrants")
    assert first_call.request.licensee_id == licensee
    assert first_call.request.state == Grant.STATE_ACTIVE
    assert (table_call.request.rights_holder_id, table_call.request.character_id) == (holder, first["characterId"])
    assert [g["id"] for g in listed] == [second["id"], first["id"]]
    assert len(limited) == 1
    assert table.exit_code == 0, table.output
    assert first["id"] in table.stdout
    assert "1 shown" in table.stdout
    assert bad_state.exit_code == 2


# -- lifecycle ------------------------------------------------------------------------------------


def test_suspend_reinstate_and_revoke_print_sequence_numbers(
    runner: CliRunner, cli_live: Live, scene: Scene, staff: Client
) -> None:
    grant_id = _issue(runner, cli_live, scene)["id"]

    suspended = invoke(runner, cli_live, "grants", "suspend", grant_id, "--reason", "payment overdue")
    suspension = cli_live.revocation_head()
    reinstated = json_of(invoke(runner, cli_live, "grants", "reinstate", grant_id, json_output=True))
    reinstatement = cli_live.revocation_head()
    revoked = invoke(runner, cli_live, "grants", "revoke", grant_id, "--reason", "contract ended")
    revocation = cli_live.revocation_head()
    again = invoke(runner, cli_live, "grants", "revoke", grant_id, "--reason", "again")
    missing_reason = invoke(runner, cli_live, "grants", "revoke", grant_id)

    assert suspended.exit_code == 0, suspended.output
    assert f"suspension sequence: {suspension}" in suspended.stdout
    assert "suspended" in suspended.stdout
    assert reinstated["sequence"] == str(reinstatement)  # int64 is a string in protobuf JSON.
    assert reinstated["grant"]["state"] == "STATE_ACTIVE"
    assert revoked.exit_code == 0, revoked.output
    assert f"revocation sequence: {revocation}" in revoked.stdout
    assert suspension < reinstatement < revocation
    assert "contract ended" in revoked.stdout
    assert staff.get_grant(grant_id).state == Grant.STATE_REVOKED
    match = ERROR_LINE.match(again.stderr.splitlines()[0])
    assert again.exit_code == 1
    assert match is not None
    assert match["reason"] == "GRANT_REVOKED"
    assert missing_reason.exit_code == 2


# -- verify ---------------------------------------------------------------------------------------


def _json_or_exit_1(result: Result) -> Any:
    assert result.exit_code == 1, result.output
    return json.loads(result.stdout)


def test_verify_asks_the_server_and_exits_0_only_when_valid(
    runner: CliRunner, cli_live: Live, scene: Scene, staff: Client, tap: Tap, tmp_path: Path
) -> None:
    issued = _issue(runner, cli_live, scene)
    file = envelope_file(runner, cli_live, issued["id"], tmp_path / "grant.json")
    args = ("grants", "verify", str(file), "--character", issued["characterId"])

    valid = invoke(runner, cli_live, *args, "--licensee", scene.licensee_id, via=tap)
    wrong = invoke(runner, cli_live, *args, "--licensee", _UNKNOWN_LICENSEE)
    invoke(runner, cli_live, "grants", "revoke", issued["id"], "--reason", "contract ended")
    revoked = _json_or_exit_1(invoke(runner, cli_live, *args, "--licensee", scene.licensee_id, json_output=True))

    (call,) = tap.calls_of("VerifyGrant")
    assert call.request.envelope_json == file.read_text(encoding="utf-8")
    assert (call.request.licensee_id, call.request.character_id) == (scene.licensee_id, issued["characterId"])
    assert valid.exit_code == 0, valid.output
    assert valid.stdout.startswith("verdict: VALID\n")
    assert f"key: {active_signing_key(staff)}" in valid.stdout
    assert "revocation: checked by the server" in valid.stdout
    assert issued["id"] in valid.stdout  # The claims.
    assert wrong.exit_code == 1
    assert wrong.stdout.startswith("verdict: WRONG_LICENSEE\n")
    assert revoked["verdict"] == "REVOKED"
    assert revoked["revocationChecked"] is True
    assert revoked["claims"]["grantId"] == issued["id"]


def test_verify_a_garbage_file_is_malformed_and_a_binary_file_a_usage_error(
    runner: CliRunner, cli_live: Live, tap: Tap, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"payload": "not base64!"}', encoding="utf-8")
    binary = tmp_path / "binary.bin"
    binary.write_bytes(b"\xff\xfe\x00")
    parties = ("--licensee", _UNKNOWN_LICENSEE, "--character", "chr_" + "0" * 32)

    malformed = invoke(runner, cli_live, "grants", "verify", str(garbage), *parties, via=tap)
    unreadable = invoke(runner, cli_live, "grants", "verify", str(binary), *parties, via=tap)

    assert malformed.exit_code == 1
    assert malformed.stdout.startswith("verdict: MALFORMED\n")
    assert unreadable.exit_code == 2
    assert len(tap.calls_of("VerifyGrant")) == 1


def test_verify_offline_checks_locally_with_the_key_set_and_says_revocation_is_unchecked(
    runner: CliRunner, own: Own, tmp_path: Path
) -> None:
    issued = _issue(runner, own.live, own.scene)
    file = envelope_file(runner, own.live, issued["id"], tmp_path / "grant.json")
    signer = active_signing_key(own.staff)
    # Signed by a key now retired, and revoked on the server: offline verification cannot know that.
    own.staff.rotate_signing_key()
    invoke(runner, own.live, "grants", "revoke", issued["id"], "--reason", "contract ended")
    args = ("grants", "verify", str(file), "--licensee", own.scene.licensee_id, "--offline")

    valid = invoke(runner, own.live, *args, "--character", issued["characterId"], via=own.tap)
    as_json = json_of(
        invoke(runner, own.live, *args, "--character", issued["characterId"], via=own.tap, json_output=True)
    )
    wrong = invoke(runner, own.live, *args, "--character", "chr_" + "0" * 32, via=own.tap)

    assert own.tap.calls_of("VerifyGrant") == []
    assert len(own.tap.calls_of("GetKeySet")) == 3
    assert valid.exit_code == 0, valid.output
    assert valid.stdout.startswith("verdict: VALID\n")
    assert f"key: {signer}" in valid.stdout
    assert "revocation: not checked" in valid.stdout
    assert issued["id"] in valid.stdout
    assert "image_generation" in valid.stdout  # The terms as granted.
    assert as_json["verdict"] == "VALID"
    assert as_json["revocationChecked"] is False
    assert as_json["checkedBy"] == "offline"
    assert as_json["keyId"] == signer
    assert as_json["claims"]["grantId"] == issued["id"]
    assert wrong.exit_code == 1
    assert wrong.stdout.startswith("verdict: WRONG_CHARACTER\n")


def test_verify_offline_fails_once_the_signing_key_is_revoked(runner: CliRunner, own: Own, tmp_path: Path) -> None:
    issued = _issue(runner, own.live, own.scene)
    file = envelope_file(runner, own.live, issued["id"], tmp_path / "grant.json")
    old_key = active_signing_key(own.staff)
    licensee = own.scene.licensee_id
    args = ("grants", "verify", str(file), "--licensee", licensee, "--character", issued["characterId"], "--offline")

    invoke(runner, own.live, "signing-keys", "rotate")
    after_rotation = invoke(runner, own.live, *args)
    invoke(runner, own.live, "signing-keys", "revoke", old_key, "--reason", "leaked")
    after_revocation = invoke(runner, own.live, *args)

    assert after_rotation.exit_code == 0, after_rotation.output
    assert after_revocation.exit_code == 1
    assert after_revocation.stdout.startswith("verdict: KEY_REVOKED\n")


# -- signing keys ---------------------------------------------------------------------------------


def test_signing_keys_list_rotate_and_revoke(runner: CliRunner, own: Own) -> None:
    original = active_signing_key(own.staff)

    listed = invoke(runner, own.live, "signing-keys", "list")
    rotated = invoke(runner, own.live, "signing-keys", "rotate")
    new_key = active_signing_key(own.staff)
    refused = invoke(runner, own.live, "signing-keys", "revoke", new_key, "--reason", "nope")
    revoked = json_of(
        invoke(
            runner, own.live, "signing-keys", "revoke", original, "--reason", "leaked", via=own.tap, json_output=True
        )
    )
    listed_json = json_of(invoke(runner, own.live, "signing-keys", "list", json_output=True))
    rotated_json = json_of(invoke(runner, own.live, "signing-keys", "rotate", json_output=True))

    assert listed.exit_code == 0, listed.output
    assert original in listed.stdout
    assert "active" in listed.stdout
    assert "2 shown" in listed.stdout  # the key of grants and receipts, and the log's
    assert rotated.exit_code == 0, rotated.output
    assert "new active key" in rotated.stdout
    assert "retired key" in rotated.stdout
    assert new_key in rotated.stdout
    assert original in rotated.stdout
    assert "public_key" not in rotated.stdout
    match = ERROR_LINE.match(refused.stderr.splitlines()[0])
    assert refused.exit_code == 1
    assert match is not None
    assert (match["code"], match["reason"]) == ("FAILED_PRECONDITION", "SIGNING_KEY_ACTIVE")
    assert own.tap.calls_of("RevokeSigningKey")[0].request.reason == "leaked"
    assert revoked["keyId"] == original
    assert revoked["state"] == "STATE_REVOKED"
    assert revoked["publicKey"]  # Scripts get the public key (base64) in the JSON form.
    assert [(k["keyId"], k["state"]) for k in listed_json if k["purpose"] == "PURPOSE_GRANTS"] == [
        (new_key, "STATE_ACTIVE"),
        (original, "STATE_REVOKED"),
    ]
    assert [k["state"] for k in listed_json if k["purpose"] == "PURPOSE_TRANSPARENCY_LOG"] == ["STATE_ACTIVE"]
    assert rotated_json["retiredKey"]["keyId"] == new_key
    assert rotated_json["activeKey"]["state"] == "STATE_ACTIVE"
