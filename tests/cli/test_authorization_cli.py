"""`charter authorize`, `charter screen` and `charter receipts verify` against the in-process fake server."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import grpc
from charter import envelope
from charter.cli._app import app
from charter.cli.authorize import EXIT_DENIED
from charter.grants import KeyRing
from charter.receipts import verify_receipt
from charter.v1 import character_pb2, decision_pb2, terms_pb2
from sdk._fakes import API_KEY, LICENSEE_ID, RunningFake  # tests/ is on sys.path: pytest's rootdir-relative layout
from typer.testing import CliRunner, Result

from ._readable import ReadableRunner

_ERROR_LINE = re.compile(r"^error: (?P<code>[A-Z_]+)(?: (?P<reason>[A-Z_]+))?: .* \(request id [0-9a-f]{32}\)$")

TERMS = terms_pb2.Terms(
    permitted_use_types=[terms_pb2.USE_TYPE_IMAGE_GENERATION, terms_pb2.USE_TYPE_VIDEO_GENERATION],
    max_content_rating=terms_pb2.CONTENT_RATING_TEEN,
    attribution_text="© Example Studio",
    watermark_required=True,
    revenue_share_bps=1500,
    per_use_fee=terms_pb2.Money(currency_code="JPY", minor_units=100),
)


def _invoke(runner: CliRunner, server: RunningFake, *args: str, json_output: bool = False) -> Result:
    base = ["--target", server.target, "--api-key", API_KEY]
    if json_output:
        base.append("--json")
    return runner.invoke(app, [*base, *args])


def _character(runner: CliRunner, server: RunningFake, *, granted: bool = True, **options: Any) -> str:
    """An opted-in character under TERMS, with a 30-day grant for the fake's licensee unless told not to."""
    character_id: str = server.fake.add_character(terms=TERMS, **options).id
    if granted:
        issued = _invoke(
            runner, server, "grants", "issue", "--character", character_id, "--licensee", LICENSEE_ID, "--days", "30"
        )
        assert issued.exit_code == 0, issued.output
    return character_id


def _grant_file(runner: CliRunner, server: RunningFake, character_id: str, path: Path) -> Path:
    grant_id = next(g.id for g in server.fake.issued_grants.values() if g.character_id == character_id)
    shown = _invoke(runner, server, "grants", "show", grant_id, "--envelope-json")
    assert shown.exit_code == 0, shown.output
    path.write_text(shown.stdout, encoding="utf-8")
    return path


_USE = ("--use-type", "image_generation", "--rating", "teen")


# -- authorize ------------------------------------------------------------------------------------


def test_authorize_prints_the_decision_obligations_and_detections_and_exits_0(
    runner: ReadableRunner, server: RunningFake
) -> None:
    character = _character(runner, server)

    result = _invoke(runner, server, "authorize", "--prompt", "Hatsune Miku waves", *_USE)

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("decision: allowed\n")
    (row,) = runner.rows(result, "characters")
    (owed,) = runner.rows(result, "obligations")
    (detection,) = runner.rows(result, "detections")
    assert (row["character"], row["decision"], row["declared/detected"]) == (character, "allowed", "detected")
    assert (owed["attribution"], owed["per-use fee"]) == ("© Example Studio", "¥100")  # an amount for people
    assert detection["span"] == "0-12"
    assert result.stderr == ""


def test_authorize_json_has_every_character_and_a_receipt_that_verifies(runner: CliRunner, server: RunningFake) -> None:
    character = _character(runner, server)

    result = _invoke(runner, server, "authorize", "-c", character, *_USE, json_output=True)

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["allowed"] is True
    assert data["reasons"] == []
    assert data["licenseeId"] == LICENSEE_ID
    (decided,) = data["characters"]
    assert decided["characterId"] == character
    assert (decided["allowed"], decided["reasons"], decided["declared"], decided["detected"]) == (True, [], True, False)
    assert decided["termsVersion"] == 1
    assert decided["obligations"] == {
        "attributionText": "© Example Studio",
        "watermarkRequired": True,
        "revenueShareBps": 1500,
        "perUseFee": {"currencyCode": "JPY", "minorUnits": "100"},
    }
    keys = KeyRing.from_key_set(server.fake.key_set())
    verified = verify_receipt(json.dumps(data["receipt"]), keys=keys, licensee_id=LICENSEE_ID)
    assert verified.valid
    assert verified.receipt is not None
    assert verified.receipt.receipt_id == data["receiptId"]


def test_authorize_denied_exits_3_with_every_reason(runner: ReadableRunner, server: RunningFake) -> None:
    character = _character(runner, server, granted=False)

    table = _invoke(runner, server, "authorize", "-c", character, *_USE)
    as_json = _invoke(runner, server, "authorize", "-c", character, "--json", *_USE)  # the command's own --json

    assert table.exit_code == EXIT_DENIED == 3
    assert table.stdout.startswith("decision: denied: no_grant\n")
    assert [(r["character"], r["decision"], r["reasons"]) for r in runner.rows(table, "characters")] == [
        (character, "denied", "no_grant")
    ]
    assert as_json.exit_code == EXIT_DENIED
    data = json.loads(as_json.stdout)
    assert data["allowed"] is False
    assert data["reasons"] == ["DENY_REASON_NO_GRANT"]
    assert data["characters"][0]["obligations"] is None


def test_authorize_sends_every_option(runner: CliRunner, server: RunningFake, tmp_path: Path) -> None:
    character = _character(runner, server)
    grant_file = _grant_file(runner, server, character, tmp_path / "grant.json")

    result = _invoke(
        runner,
        server,
        "authorize",
        "--character",
        character,
        "-c",
        "chr_second",
        "--prompt",
        "a stage",
        "--use-type",
        "video-generation",
        "--rating",
        "adult",
        "--category",
        "hate",
        "--category",
        "self-harm",
        "--territory",
        "JP",
        "--commercial",
        "--duration",
        "12.5",
        "--grant",
        str(grant_file),
        "--request-id",
        "render-7",
    )

    assert result.exit_code == EXIT_DENIED, result.output  # adult exceeds the terms; chr_second is unknown
    request = server.fake.calls_of("Authorize")[0].request
    assert list(request.character_ids) == [character, "chr_second"]
    assert request.prompt == "a stage"
    assert request.context.use_type == terms_pb2.USE_TYPE_VIDEO_GENERATION
    assert request.context.content_rating == terms_pb2.CONTENT_RATING_ADULT
    assert list(request.context.categories) == [terms_pb2.CONTENT_CATEGORY_HATE, terms_pb2.CONTENT_CATEGORY_SELF_HARM]
    assert request.context.territory == "JP"
    assert request.context.commercial is True
    assert request.context.duration.ToTimedelta() == dt.timedelta(seconds=12.5)
    assert list(request.grants) == [envelope.from_json(grant_file.read_text(encoding="utf-8"))]
    assert request.request_id == "render-7"


def test_authorize_defaults(runner: CliRunner, server: RunningFake) -> None:
    _invoke(runner, server, "authorize", "--prompt", "nobody", *_USE)

    request = server.fake.calls_of("Authorize")[0].request
    assert list(request.character_ids) == []
    assert request.context.commercial is False
    assert not request.context.HasField("duration")
    assert list(request.grants) == []
    assert len(request.request_id) == 32


def test_receipt_out_writes_dsse_json_that_receipts_verify_accepts(
    runner: CliRunner, server: RunningFake, tmp_path: Path
) -> None:
    character = _character(runner, server)
    receipt_file = tmp_path / "receipt.json"

    authorized = _invoke(runner, server, "authorize", "-c", character, *_USE, "--receipt-out", str(receipt_file))
    valid = _invoke(runner, server, "receipts", "verify", str(receipt_file), "--licensee", LICENSEE_ID)
    as_json = _invoke(runner, server, "receipts", "verify", str(receipt_file), json_output=True)
    wrong = _invoke(runner, server, "receipts", "verify", str(receipt_file), "--licensee", "lic_other", "--json")

    assert authorized.exit_code == 0, authorized.output
    assert f"receipt written to {receipt_file}" in " ".join(authorized.stdout.split())  # wrapped between words
    receipt = envelope.from_json(receipt_file.read_text(encoding="utf-8"))
    assert receipt.payload_type == envelope.RECEIPT_PAYLOAD_TYPE
    assert valid.exit_code == 0, valid.output
    assert valid.stdout.startswith("verdict: VALID\n")
    assert f"key: {server.fake.active_key_id}" in valid.stdout
    assert character in valid.stdout  # the decision's characters
    data = json.loads(as_json.stdout)
    assert as_json.exit_code == 0
    assert data["verdict"] == "VALID"
    assert data["keyId"] == server.fake.active_key_id
    assert data["receipt"]["characters"][0]["characterId"] == character
    assert data["receipt"]["licenseeId"] == LICENSEE_ID
    assert wrong.exit_code == 1
    assert json.loads(wrong.stdout)["verdict"] == "WRONG_LICENSEE"
    assert len(server.fake.calls_of("GetKeySet")) == 3


def test_a_denial_writes_its_receipt_too(runner: CliRunner, server: RunningFake, tmp_path: Path) -> None:
    receipt_file = tmp_path / "denied.json"

    result = _invoke(runner, server, "authorize", "-c", "chr_unknown", *_USE, "--receipt-out", str(receipt_file))

    assert result.exit_code == EXIT_DENIED
    signed = verify_receipt(receipt_file.read_text(encoding="utf-8"), keys=KeyRing.from_key_set(server.fake.key_set()))
    assert signed.valid
    assert signed.receipt is not None
    assert signed.receipt.characters[0].reasons == [decision_pb2.DENY_REASON_CHARACTER_NOT_OPTED_IN]


def test_authorize_usage_errors_exit_2_before_any_call(runner: CliRunner, server: RunningFake, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"payload": "not base64!"}', encoding="utf-8")

    unknown_use = _invoke(runner, server, "authorize", "-c", "chr_1", "--use-type", "painting", "--rating", "teen")
    unknown_rating = _invoke(runner, server, "authorize", "-c", "chr_1", "--use-type", "cameo", "--rating", "r18")
    unknown_category = _invoke(runner, server, "authorize", "-c", "chr_1", *_USE, "--category", "spicy")
    missing_use = _invoke(runner, server, "authorize", "-c", "chr_1", "--rating", "teen")
    bad_grant = _invoke(runner, server, "authorize", "-c", "chr_1", *_USE, "--grant", str(garbage))
    missing_grant = _invoke(runner, server, "authorize", "-c", "chr_1", *_USE, "--grant", str(tmp_path / "none"))
    negative = _invoke(runner, server, "authorize", "-c", "chr_1", *_USE, "--duration", "-1")

    results = [unknown_use, unknown_rating, unknown_category, missing_use, bad_grant, missing_grant, negative]
    assert [r.exit_code for r in results] == [2] * len(results)
    assert server.fake.calls_of("Authorize") == []


def test_authorize_failures_exit_1_with_the_error_line(runner: CliRunner, server: RunningFake) -> None:
    server.fake.fail("Authorize", grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED")

    result = _invoke(runner, server, "authorize", "-c", "chr_1", *_USE)

    match = _ERROR_LINE.match(result.stderr.splitlines()[0])
    assert result.exit_code == 1
    assert match is not None
    assert (match["code"], match["reason"]) == ("PERMISSION_DENIED", "ROLE_NOT_ALLOWED")
    assert result.stdout == ""


def test_an_invalid_request_exits_1_with_field_violations(runner: CliRunner, server: RunningFake) -> None:
    result = _invoke(runner, server, "authorize", *_USE)  # neither characters nor a prompt

    assert result.exit_code == 1
    assert "character_ids" in result.stderr.splitlines()[1]


# -- receipts verify ------------------------------------------------------------------------------


def test_receipts_verify_refuses_tampered_receipts_grants_and_garbage(
    runner: CliRunner, server: RunningFake, tmp_path: Path
) -> None:
    character = _character(runner, server)
    receipt_file = tmp_path / "receipt.json"
    _invoke(runner, server, "authorize", "-c", character, *_USE, "--receipt-out", str(receipt_file))
    signed = envelope.from_json(receipt_file.read_text(encoding="utf-8"))
    tampered_receipt = decision_pb2.DecisionReceipt.FromString(signed.payload)
    tampered_receipt.allowed = False
    signed.payload = tampered_receipt.SerializeToString()
    tampered = tmp_path / "tampered.json"
    tampered.write_text(envelope.to_json(signed), encoding="utf-8")
    grant = _grant_file(runner, server, character, tmp_path / "grant.json")
    garbage = tmp_path / "garbage.json"
    garbage.write_text("not json", encoding="utf-8")
    binary = tmp_path / "binary.bin"
    binary.write_bytes(b"\xff\xfe\x00")

    verdicts = {}
    for name, path in (("tampered", tampered), ("grant", grant), ("garbage", garbage)):
        result = _invoke(runner, server, "receipts", "verify", str(path), json_output=True)
        assert result.exit_code == 1, result.output
        verdicts[name] = json.loads(result.stdout)
    unreadable = _invoke(runner, server, "receipts", "verify", str(binary))

    assert {name: v["verdict"] for name, v in verdicts.items()} == {
        "tampered": "SIGNATURE_INVALID",
        "grant": "WRONG_PAYLOAD_TYPE",
        "garbage": "MALFORMED",
    }
    assert all(v["receipt"] is None for v in verdicts.values())
    assert unreadable.exit_code == 2


def test_receipts_verify_fails_when_the_key_set_cannot_be_fetched(
    runner: CliRunner, server: RunningFake, tmp_path: Path
) -> None:
    receipt_file = tmp_path / "receipt.json"
    receipt_file.write_text("{}", encoding="utf-8")
    server.fake.fail("GetKeySet", grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_INVALID")

    result = _invoke(runner, server, "receipts", "verify", str(receipt_file))

    match = _ERROR_LINE.match(result.stderr.splitlines()[0])
    assert result.exit_code == 1
    assert match is not None
    assert match["reason"] == "CREDENTIALS_INVALID"


# -- screen ---------------------------------------------------------------------------------------


def test_screen_prints_detections_as_a_table_or_json(runner: CliRunner, server: RunningFake) -> None:
    nickname = character_pb2.Alias(value="Rin", language="en", kind=character_pb2.Alias.KIND_NICKNAME, ambiguous=True)
    rin = server.fake.add_character(canonical_name="Kagamine Rin", aliases=(nickname,))
    prompt = "kagamine rin dances"

    table = _invoke(runner, server, "screen", prompt)
    as_json = _invoke(runner, server, "screen", prompt, json_output=True)

    assert table.exit_code == 0, table.output
    assert rin.id in table.stdout
    assert "0-12" in table.stdout
    assert "9-12" in table.stdout
    assert "2 found" in table.stdout
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == [
        {
            "characterId": rin.id,
            "matchedAlias": "Kagamine Rin",
            "start": 0,
            "end": 12,
            "text": "kagamine rin",
            "ambiguous": False,
            "rule": "RULE_EXACT",
            "kind": "KIND_NAME",
        },
        {
            "characterId": rin.id,
            "matchedAlias": "Rin",
            "start": 9,
            "end": 12,
            "text": "rin",
            "ambiguous": True,
            "rule": "RULE_EXACT",
            "kind": "KIND_NAME",
        },
    ]
    assert server.fake.calls_of("ScreenPrompt")[0].request.prompt == prompt


def test_screen_of_an_empty_prompt_exits_1(runner: CliRunner, server: RunningFake) -> None:
    result = _invoke(runner, server, "screen", "")

    match = _ERROR_LINE.match(result.stderr.splitlines()[0])
    assert result.exit_code == 1
    assert match is not None
    assert match["reason"] == "INVALID_FIELD"
