"""`charter authorize`, `charter screen` and `charter receipts verify` against a real server (see `conftest`)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from charter import Client, envelope
from charter.cli.authorize import EXIT_DENIED
from charter.grants import KeyRing
from charter.receipts import verify_receipt
from charter.v1 import character_pb2, decision_pb2, terms_pb2
from sdk._live import Live, unique  # tests/ is on sys.path: pytest's rootdir-relative layout
from sdk._scene import Scene
from sdk._tap import Tap
from typer.testing import CliRunner, Result

from ._commands import ERROR_LINE, active_signing_key, envelope_file, invoke
from ._readable import ReadableRunner

_UNKNOWN_CHARACTER = "chr_" + "0" * 32
_USE = ("--use-type", "image_generation", "--rating", "teen")


def _grant_file(runner: CliRunner, live: Live, staff: Client, character_id: str, path: Path) -> Path:
    (grant,) = staff.list_grants(character_id=character_id)
    return envelope_file(runner, live, grant.id, path)


def _authorize(runner: CliRunner, live: Live, scene: Scene, character_id: str, receipt_file: Path) -> Result:
    """Authorizes the character as the scene's generator and writes the receipt to `receipt_file`."""
    return invoke(
        runner,
        live,
        "authorize",
        "-c",
        character_id,
        *_USE,
        "--receipt-out",
        str(receipt_file),
        api_key=scene.generator_key,
    )


# -- authorize ------------------------------------------------------------------------------------


def test_authorize_prints_the_decision_obligations_and_detections_and_exits_0(
    runner: ReadableRunner, cli_live: Live, scene: Scene
) -> None:
    character = scene.character()
    name = character.canonical_name

    result = invoke(runner, cli_live, "authorize", "--prompt", f"{name} waves", *_USE, api_key=scene.generator_key)

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("decision: allowed\n")
    (row,) = runner.rows(result, "characters")
    (owed,) = runner.rows(result, "obligations")
    (detection,) = runner.rows(result, "detections")
    assert (row["character"], row["decision"], row["declared/detected"]) == (character.id, "allowed", "detected")
    assert (owed["attribution"], owed["per-use fee"]) == ("© Example Studio", "¥100")  # an amount for people
    assert detection["span"] == f"0-{len(name)}"
    assert result.stderr == ""


def test_authorize_json_has_every_character_and_a_receipt_that_verifies(
    runner: CliRunner, cli_live: Live, scene: Scene, staff: Client
) -> None:
    character = scene.character().id

    result = invoke(
        runner, cli_live, "authorize", "-c", character, *_USE, api_key=scene.generator_key, json_output=True
    )

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["allowed"] is True
    assert data["reasons"] == []
    assert data["licenseeId"] == scene.licensee_id
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
    keys = KeyRing.from_key_set(staff.get_key_set())
    verified = verify_receipt(json.dumps(data["receipt"]), keys=keys, licensee_id=scene.licensee_id)
    assert verified.valid
    assert verified.receipt is not None
    assert verified.receipt.receipt_id == data["receiptId"]


def test_authorize_denied_exits_3_with_every_reason(runner: ReadableRunner, cli_live: Live, scene: Scene) -> None:
    character = scene.character(granted=False).id

    table = invoke(runner, cli_live, "authorize", "-c", character, *_USE, api_key=scene.generator_key)
    as_json = invoke(  # the command's own --json
        runner, cli_live, "authorize", "-c", character, "--json", *_USE, api_key=scene.generator_key
    )

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


def test_authorize_sends_every_option(
    runner: CliRunner, cli_live: Live, scene: Scene, staff: Client, tap: Tap, tmp_path: Path
) -> None:
    character = scene.character().id
    ungranted = scene.character(granted=False).id
    request_id = unique("render-")
    grant_file = _grant_file(runner, cli_live, staff, character, tmp_path / "grant.json")

    result = invoke(
        runner,
        cli_live,
        "authorize",
        "--character",
        character,
        "-c",
        ungranted,
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
        request_id,
        via=tap,
        api_key=scene.generator_key,
    )

    assert result.exit_code == EXIT_DENIED, result.output  # adult exceeds the terms; the second has no grant
    request = tap.calls_of("Authorize")[0].request
    assert list(request.character_ids) == [character, ungranted]
    assert request.prompt == "a stage"
    assert request.context.use_type == terms_pb2.USE_TYPE_VIDEO_GENERATION
    assert request.context.content_rating == terms_pb2.CONTENT_RATING_ADULT
    assert list(request.context.categories) == [terms_pb2.CONTENT_CATEGORY_HATE, terms_pb2.CONTENT_CATEGORY_SELF_HARM]
    assert request.context.territory == "JP"
    assert request.context.commercial is True
    assert request.context.duration.ToTimedelta() == dt.timedelta(seconds=12.5)
    assert list(request.grants) == [envelope.from_json(grant_file.read_text(encoding="utf-8"))]
    assert request.request_id == request_id


def test_authorize_defaults(runner: CliRunner, cli_live: Live, scene: Scene, tap: Tap) -> None:
    invoke(runner, cli_live, "authorize", "--prompt", "nobody", *_USE, via=tap, api_key=scene.generator_key)

    request = tap.calls_of("Authorize")[0].request
    assert list(request.character_ids) == []
    assert request.context.commercial is False
    assert not request.context.HasField("duration")
    assert list(request.grants) == []
    assert len(request.request_id) == 32


def test_receipt_out_writes_dsse_json_that_receipts_verify_accepts(
    runner: CliRunner, cli_live: Live, scene: Scene, staff: Client, tap: Tap, tmp_path: Path
) -> None:
    character = scene.character().id
    receipt_file = tmp_path / "receipt.json"
    verify = ("receipts", "verify", str(receipt_file))

    authorized = _authorize(runner, cli_live, scene, character, receipt_file)
    valid = invoke(runner, cli_live, *verify, "--licensee", scene.licensee_id, via=tap)
    as_json = invoke(runner, cli_live, *verify, via=tap, json_output=True)
    wrong = invoke(runner, cli_live, *verify, "--licensee", "lic_other", "--json", via=tap)

    assert authorized.exit_code == 0, authorized.output
    # Wrapped at the width: between words, and a path longer than the width folded in it.
    assert f"receipt written to {receipt_file}".replace(" ", "") in "".join(authorized.stdout.split())
    receipt = envelope.from_json(receipt_file.read_text(encoding="utf-8"))
    assert receipt.payload_type == envelope.RECEIPT_PAYLOAD_TYPE
    assert valid.exit_code == 0, valid.output
    assert valid.stdout.startswith("verdict: VALID\n")
    assert f"key: {active_signing_key(staff)}" in valid.stdout
    assert character in valid.stdout  # the decision's characters
    data = json.loads(as_json.stdout)
    assert as_json.exit_code == 0
    assert data["verdict"] == "VALID"
    assert data["keyId"] == active_signing_key(staff)
    assert data["receipt"]["characters"][0]["characterId"] == character
    assert data["receipt"]["licenseeId"] == scene.licensee_id
    assert wrong.exit_code == 1
    assert json.loads(wrong.stdout)["verdict"] == "WRONG_LICENSEE"
    assert len(tap.calls_of("GetKeySet")) == 3


def test_a_denial_writes_its_receipt_too(
    runner: CliRunner, cli_live: Live, scene: Scene, staff: Client, tmp_path: Path
) -> None:
    receipt_file = tmp_path / "denied.json"
    opted_out = scene.character(opted_in=False).id

    result = _authorize(runner, cli_live, scene, opted_out, receipt_file)

    assert result.exit_code == EXIT_DENIED
    signed = verify_receipt(receipt_file.read_text(encoding="utf-8"), keys=KeyRing.from_key_set(staff.get_key_set()))
    assert signed.valid
    assert signed.receipt is not None
    assert signed.receipt.characters[0].reasons == [decision_pb2.DENY_REASON_CHARACTER_NOT_OPTED_IN]


def test_authorize_usage_errors_exit_2_before_any_call(
    runner: CliRunner, cli_live: Live, tap: Tap, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"payload": "not base64!"}', encoding="utf-8")

    def authorize(*args: str) -> int:
        return invoke(runner, cli_live, "authorize", "-c", "chr_1", *args, via=tap).exit_code

    codes = [
        authorize("--use-type", "painting", "--rating", "teen"),
        authorize("--use-type", "cameo", "--rating", "r18"),
        authorize(*_USE, "--category", "spicy"),
        authorize("--rating", "teen"),
        authorize(*_USE, "--grant", str(garbage)),
        authorize(*_USE, "--grant", str(tmp_path / "none")),
        authorize(*_USE, "--duration", "-1"),
    ]

    assert codes == [2] * len(codes)
    assert tap.calls_of("Authorize") == []


def test_authorize_failures_exit_1_with_the_error_line(runner: CliRunner, cli_live: Live) -> None:
    # Authorize is for generator keys; the admin key is refused.
    result = invoke(runner, cli_live, "authorize", "-c", _UNKNOWN_CHARACTER, *_USE)

    match = ERROR_LINE.match(result.stderr.splitlines()[0])
    assert result.exit_code == 1
    assert match is not None
    assert (match["code"], match["reason"]) == ("PERMISSION_DENIED", "ROLE_NOT_PERMITTED")
    assert result.stdout == ""


def test_an_invalid_request_exits_1_with_field_violations(runner: CliRunner, cli_live: Live, scene: Scene) -> None:
    result = invoke(
        runner, cli_live, "authorize", *_USE, api_key=scene.generator_key
    )  # neither characters nor a prompt

    assert result.exit_code == 1
    assert "character_ids" in result.stderr.splitlines()[1]


# -- receipts verify ------------------------------------------------------------------------------


def test_receipts_verify_refuses_tampered_receipts_grants_and_garbage(
    runner: CliRunner, cli_live: Live, scene: Scene, staff: Client, tmp_path: Path
) -> None:
    character = scene.character().id
    receipt_file = tmp_path / "receipt.json"
    _authorize(runner, cli_live, scene, character, receipt_file)
    signed = envelope.from_json(receipt_file.read_text(encoding="utf-8"))
    tampered_receipt = decision_pb2.DecisionReceipt.FromString(signed.payload)
    tampered_receipt.allowed = False
    signed.payload = tampered_receipt.SerializeToString()
    tampered = tmp_path / "tampered.json"
    tampered.write_text(envelope.to_json(signed), encoding="utf-8")
    grant = _grant_file(runner, cli_live, staff, character, tmp_path / "grant.json")
    garbage = tmp_path / "garbage.json"
    garbage.write_text("not json", encoding="utf-8")
    binary = tmp_path / "binary.bin"
    binary.write_bytes(b"\xff\xfe\x00")

    verdicts = {}
    for name, path in (("tampered", tampered), ("grant", grant), ("garbage", garbage)):
        result = invoke(runner, cli_live, "receipts", "verify", str(path), json_output=True)
        assert result.exit_code == 1, result.output
        verdicts[name] = json.loads(result.stdout)
    unreadable = invoke(runner, cli_live, "receipts", "verify", str(binary))

    assert {name: v["verdict"] for name, v in verdicts.items()} == {
        "tampered": "SIGNATURE_INVALID",
        "grant": "WRONG_PAYLOAD_TYPE",
        "garbage": "MALFORMED",
    }
    assert all(v["receipt"] is None for v in verdicts.values())
    assert unreadable.exit_code == 2


def test_receipts_verify_fails_when_the_key_set_cannot_be_fetched(
    runner: CliRunner, cli_live: Live, tmp_path: Path
) -> None:
    receipt_file = tmp_path / "receipt.json"
    receipt_file.write_text("{}", encoding="utf-8")

    # A key the server never issued.
    result = invoke(runner, cli_live, "receipts", "verify", str(receipt_file), api_key=f"key_{'0' * 32}.unknown")

    match = ERROR_LINE.match(result.stderr.splitlines()[0])
    assert result.exit_code == 1
    assert match is not None
    assert match["reason"] == "CREDENTIALS_INVALID"


# -- screen ---------------------------------------------------------------------------------------


def test_screen_prints_detections_as_a_table_or_json(runner: CliRunner, cli_live: Live, scene: Scene, tap: Tap) -> None:
    given = unique()
    nickname = character_pb2.Alias(value=given, language="en", kind=character_pb2.Alias.KIND_NICKNAME, ambiguous=True)
    rin = scene.character(granted=False, name=f"Kagamine {given}", aliases=(nickname,))
    # The nickname inside the whole name is not found again; on its own it is.
    prompt = f"kagamine {given.lower()} dances, {given} bows"
    whole, alone = len(rin.canonical_name), prompt.rindex(given)

    table = invoke(runner, cli_live, "screen", prompt, via=tap)
    as_json = invoke(runner, cli_live, "screen", prompt, json_output=True)

    assert table.exit_code == 0, table.output
    assert rin.id in table.stdout
    assert f"0-{whole}" in table.stdout
    assert f"{alone}-{alone + len(given)}" in table.stdout
    assert "2 found" in table.stdout
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == [
        {
            "characterId": rin.id,
            "matchedAlias": rin.canonical_name,
            "start": 0,
            "end": whole,
            "text": prompt[:whole],
            "ambiguous": False,
            "rule": "RULE_EXACT",
            "kind": "KIND_NAME",
        },
        {
            "characterId": rin.id,
            "matchedAlias": given,
            "start": alone,
            "end": alone + len(given),
            "text": given,
            "ambiguous": True,
            "rule": "RULE_EXACT",
            "kind": "KIND_NAME",
        },
    ]
    assert tap.calls_of("ScreenPrompt")[0].request.prompt == prompt


def test_screen_of_an_empty_prompt_exits_1(runner: CliRunner, cli_live: Live) -> None:
    result = invoke(runner, cli_live, "screen", "")

    match = ERROR_LINE.match(result.stderr.splitlines()[0])
    assert result.exit_code == 1
    assert match is not None
    assert match["reason"] == "INVALID_FIELD"
