"""`charter audit` against a real server: a witness that keeps the last verified checkpoint and
raises the alarm (exit 2) when the log shrinks, forks or is rewritten; exports verified offline,
whose every kind of tampering is caught; a receipt's inclusion proved and written as C2SP
tlog-proof bundles. The real server never lies; where a test needs a server that does (an answer
to a proof or a listing with an entry left out, repeated or missing), it edits the real server's
answer in the client; where it needs one that refuses (a consistency proof, a listing), a tap in
front of the real server answers with the status the server builds for that error."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from charter import Client, envelope, transparency
from charter.cli import audit as audit_cli
from charter.cli._witness import USAGE_EXIT
from charter.v1 import transparency_pb2 as tp
from charter_server.domain import errors
from charter_server.storage.log_tables import LogCheckpointRow, LogEntryRow, LogHeadRow, LogPendingRow, LogTileRow
from sdk._live import Live, serve
from sdk._scene import IMAGE, TEEN, Scene
from sdk._tap import Tap
from sqlalchemy import delete, update
from typer.testing import Result

from ._commands import invoke
from ._readable import ReadableRunner


def append(live: Live, count: int) -> None:
    """Log ``count`` entries and integrate them now."""
    server = live.server
    with server.db.uow(write=True) as uow:
        for _ in range(count):
            message = tp.RightsHolderLogged(
                action=tp.RightsHolderLogged.ACTION_CREATED, rights_holder_id=f"rh_{os.urandom(16).hex()}"
            )
            server.services.appender.append(uow, "rights_holder", message)
        uow.commit()
    while server.services.sequencer.integrate():
        pass


def rewrite(live: Live) -> None:
    """What an operator who rewrites history does: throw the tree away and let the log sign anew."""
    with live.server.db.uow(write=True) as uow:
        for table in (LogEntryRow, LogTileRow, LogCheckpointRow, LogPendingRow):
            uow.session.execute(delete(table))
        uow.session.execute(update(LogHeadRow).values(tree_size=0, root_hash=hashlib.sha256().digest()))
        uow.commit()


def alerts(result: object) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("ALERT: ")]  # type: ignore[attr-defined]


def receipt_file(
    live: Live, scene: Scene, tmp_path: Path, character_ids: list[str], prompt: str = ""
) -> tuple[Any, Path]:
    """The generator's decision about ``character_ids`` (and ``prompt``) and its receipt's file."""
    with Client(live.target, api_key=scene.generator_key) as generator:
        decision = generator.authorize(character_ids=character_ids, prompt=prompt, use_type=IMAGE, content_rating=TEEN)
    assert decision.receipt is not None
    receipt = tmp_path / "receipt.json"
    receipt.write_text(envelope.to_json(decision.receipt))
    return decision, receipt


def prove_once_integrated(runner: ReadableRunner, live: Live, *args: str) -> Result:
    """``charter audit prove ARGS``, again while the receipt's entries are not integrated yet (at
    most 10 s)."""
    deadline = time.monotonic() + 10
    proved = invoke(runner, live, "audit", "prove", *args)
    while proved.exit_code == 1 and "LOG_ENTRY_NOT_INTEGRATED" in proved.stderr and time.monotonic() < deadline:
        time.sleep(0.05)
        proved = invoke(runner, live, "audit", "prove", *args)
    return proved


def test_a_witness_keeps_the_first_checkpoint_and_then_sees_the_log_only_grow(
    runner: ReadableRunner, own_live: Live, tmp_path: Path
) -> None:
    state = tmp_path / "witness.checkpoint"
    append(own_live, 3)

    first = invoke(runner, own_live, "audit", "watch", "--state", str(state))
    kept = state.read_bytes()
    append(own_live, 300)
    second = invoke(runner, own_live, "audit", "watch", "--state", str(state), json_output=True)
    unchanged = invoke(runner, own_live, "audit", "watch", "--state", str(state))

    assert first.exit_code == 0, first.output
    assert "first checkpoint of" in first.stdout
    assert kept.startswith(own_live.server.settings.origin.encode() + b"\n")
    assert second.exit_code == 0, second.output
    grown = json.loads(second.stdout)
    assert grown["treeSize"] == grown["previousTreeSize"] + 300
    assert unchanged.exit_code == 0 and "consistent" in unchanged.stdout
    assert state.read_bytes() != kept


@pytest.mark.parametrize("rewritten", ["longer", "shorter", "same size"])
def test_a_witness_raises_the_alarm_when_the_log_is_rewritten(
    runner: ReadableRunner, own_live: Live, tmp_path: Path, rewritten: str
) -> None:
    state = tmp_path / "witness.checkpoint"
    append(own_live, 20)
    assert invoke(runner, own_live, "audit", "watch", "--state", str(state)).exit_code == 0
    kept = state.read_bytes()
    size = transparency.Checkpoint.from_text(kept.decode().split("\n\n")[0] + "\n").size

    rewrite(own_live)
    append(own_live, {"longer": size + 5, "shorter": size - 5, "same size": size}[rewritten])
    alarm = invoke(runner, own_live, "audit", "watch", "--state", str(state))

    assert alarm.exit_code == 2, alarm.output
    assert alerts(alarm)
    assert state.read_bytes() == kept  # the evidence is kept, not replaced


def test_a_witness_on_its_default_state_is_not_reset_by_a_log_that_takes_another_origin(
    runner: ReadableRunner, clock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator rewrites the log and restarts the server, at the same address, under another
    --log-origin (the key set names the same log key by it, so the new checkpoints verify): a
    witness run from cron without --state compares them with what it kept, not with nothing."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    database = f"sqlite:///{tmp_path / 'charter.db'}"
    before = serve(database, clock, log_process=False)
    live = next(before)
    try:
        append(live, 20)
        first = invoke(runner, live, "audit", "watch")
        rewrite(live)
    finally:
        before.close()
    after = serve(database, clock, listen=live.target, log_origin="rewritten.example/log", log_process=False)
    renamed = next(after)
    try:
        append(renamed, 5)
        alarm = invoke(runner, renamed, "audit", "watch")
    finally:
        after.close()

    assert first.exit_code == 0, first.output
    assert alarm.exit_code == 2, alarm.output
    assert alerts(alarm)
    (kept,) = (tmp_path / "state").rglob("*.checkpoint")
    assert kept.read_bytes().startswith(live.server.settings.origin.encode() + b"\n")  # the evidence stays


def test_an_export_verifies_offline_and_any_tampering_with_it_is_caught(
    runner: ReadableRunner, own_live: Live, tmp_path: Path
) -> None:
    append(own_live, 40)
    exported = tmp_path / "log.jsonl"
    made = invoke(runner, own_live, "audit", "export", str(exported), "--page-size", "7")
    with Client(own_live.target, api_key=own_live.admin) as client:
        vkeys = [v.vkey for v in transparency.log_verifiers(client.get_key_set())]
    pinned = [arg for vkey in vkeys for arg in ("--log-key", vkey)]

    online = invoke(runner, own_live, "audit", "verify-export", str(exported))
    offline = invoke(runner, own_live, "audit", "verify-export", str(exported), *pinned)

    assert made.exit_code == 0, made.output
    assert online.exit_code == 0, online.output
    assert offline.exit_code == 0, offline.output
    assert "verified:" in offline.stdout
    lines = exported.read_text().splitlines(keepends=True)
    entry = json.loads(lines[5])
    altered = dict(entry, entry=base64.b64encode(b"\x00" + base64.b64decode(entry["entry"])).decode())
    tampered = {
        "deleted": lines[:5] + lines[6:],
        "altered": [*lines[:5], json.dumps(altered) + "\n", *lines[6:]],
        "reordered": [*lines[:5], lines[6], lines[5], *lines[7:]],
        "inserted": [*lines[:5], lines[5], *lines[5:]],
    }
    for kind, changed in tampered.items():
        path = tmp_path / f"{kind}.jsonl"
        path.write_text("".join(changed))
        caught = invoke(runner, own_live, "audit", "verify-export", str(path), *pinned)
        assert caught.exit_code == 2, (kind, caught.output)
        assert alerts(caught), kind
    # A line nested deeper than the JSON parser goes is not an export (exit 1), not a traceback.
    nested = tmp_path / "nested.jsonl"
    nested.write_text("".join([*lines[:5], "[" * 100_000 + "]" * 100_000 + "\n", *lines[6:]]))
    refused = invoke(runner, own_live, "audit", "verify-export", str(nested), *pinned)
    assert refused.exit_code == 1, refused.output
    assert isinstance(refused.exception, SystemExit)


def test_prove_verifies_a_receipts_entries_and_writes_their_bundles(
    runner: ReadableRunner, cli_live: Live, scene: Scene, tmp_path: Path
) -> None:
    character = scene.character()
    decision, receipt = receipt_file(cli_live, scene, tmp_path, [character.id])
    bundles = tmp_path / "bundles"

    proved = prove_once_integrated(runner, cli_live, str(receipt), "--bundle-out", str(bundles))
    by_digest = invoke(runner, cli_live, "audit", "prove", decision.receipt_digest.hex(), json_output=True)
    unknown = invoke(runner, cli_live, "audit", "prove", os.urandom(32).hex())

    assert proved.exit_code == 0, proved.output
    assert "verified: every entry is included" in proved.stdout
    assert by_digest.exit_code == 0, by_digest.output
    (shown,) = json.loads(by_digest.stdout)["entries"]
    assert shown["entry"]["decision"]["characterId"] == character.id
    (bundle,) = bundles.iterdir()
    with Client(cli_live.target, api_key=cli_live.admin) as client:
        verifiers = transparency.log_verifiers(client.get_key_set())
    transparency.verify_bundle(
        bundle.read_bytes(),
        bytes.fromhex(shown["leafHash"]),
        origin=cli_live.server.settings.origin,
        verifiers=verifiers,
    )
    assert unknown.exit_code == 1
    assert "LOG_ENTRY_NOT_FOUND" in unknown.stderr


def test_prove_by_digest_with_an_origin_takes_a_checkpoint_of_that_log_only(
    runner: ReadableRunner, cli_live: Live, scene: Scene, tmp_path: Path
) -> None:
    """Given only a digest, `prove` took the checkpoint of whatever log the answer named; --origin pins
    it (as `watch --origin` does), and a receipt file naming another log is a usage error."""
    decision, receipt = receipt_file(cli_live, scene, tmp_path, [scene.character().id])
    assert prove_once_integrated(runner, cli_live, str(receipt)).exit_code == 0
    digest, origin = decision.receipt_digest.hex(), cli_live.server.settings.origin

    pinned = invoke(runner, cli_live, "audit", "prove", digest, "--origin", origin)
    elsewhere = invoke(runner, cli_live, "audit", "prove", digest, "--origin", "other.example/log")
    mismatched = invoke(runner, cli_live, "audit", "prove", str(receipt), "--origin", "other.example/log")

    assert pinned.exit_code == 0, pinned.output
    assert elsewhere.exit_code == 2, elsewhere.output
    assert alerts(elsewhere)
    assert mismatched.exit_code == USAGE_EXIT, mismatched.output
    assert not alerts(mismatched)


@pytest.mark.parametrize("lie", ["one left out", "one twice", "none at all"])
def test_prove_raises_the_alarm_when_the_log_does_not_prove_every_decision_of_the_receipt(
    runner: ReadableRunner, cli_live: Live, scene: Scene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lie: str
) -> None:
    """What a log that hides a decision answers: the server's own proofs, with an entry left out,
    repeated in another's place, or none at all (the honest server answers NOT_FOUND instead). With
    the receipt at hand every character it decided is proved once; with a digest, at least one."""
    first, second = scene.character(), scene.character()
    decision, receipt = receipt_file(cli_live, scene, tmp_path, [first.id, second.id])
    honest = prove_once_integrated(runner, cli_live, str(receipt))

    answered = Client.get_inclusion_proof

    def lying(self: Client, **request: Any) -> Any:
        answer = answered(self, **request)
        if lie == "one twice":
            answer.entries[1].CopyFrom(answer.entries[0])
        else:
            del answer.entries[1 if lie == "one left out" else 0 :]
        return answer

    monkeypatch.setattr(Client, "get_inclusion_proof", lying)
    asked = decision.receipt_digest.hex() if lie == "none at all" else str(receipt)
    lied = invoke(runner, cli_live, "audit", "prove", asked)

    assert honest.exit_code == 0, honest.output
    assert lied.exit_code == 2, lied.output
    assert alerts(lied)


@pytest.mark.parametrize("asked", ["receipt", "digest"])
def test_prove_does_not_take_a_withheld_entry_for_the_receipts(
    runner: ReadableRunner, cli_live: Live, scene: Scene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, asked: str
) -> None:
    """A log that answers another entry's leaf and proof, marked withheld (its body not shown),
    where the receipt's entry belongs: the proof verifies, but nothing ties that entry to the
    receipt, so `prove` does not say it proved the receipt (exit 1, no "verified")."""
    character = scene.character()
    decision, receipt = receipt_file(cli_live, scene, tmp_path, [character.id])
    chosen = str(receipt) if asked == "receipt" else decision.receipt_digest.hex()
    honest = prove_once_integrated(runner, cli_live, chosen)
    answered = Client.get_inclusion_proof

    def lying(self: Client, **request: Any) -> Any:
        answer = answered(self, **request)
        other = answered(self, index=0, tree_size=answer.tree_size).entries[0]
        assert other.entry.index != answer.entries[0].entry.index
        other.entry.entry, other.entry.withheld = b"", True
        answer.entries[0].CopyFrom(other)
        return answer

    monkeypatch.setattr(Client, "get_inclusion_proof", lying)
    lied = invoke(runner, cli_live, "audit", "prove", chosen, "--bundle-out", str(tmp_path / "bundles"))

    assert honest.exit_code == 0, honest.output
    assert "verified:" in honest.stdout
    assert lied.exit_code == 1, lied.output
    assert "verified:" not in lied.stdout
    assert not alerts(lied)


def test_prove_checks_how_many_entries_the_log_answered_before_writing_any_bundle(
    runner: ReadableRunner, cli_live: Live, scene: Scene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log that answers a receipt of one character with many entries (each proved in its tree) is
    refused on their count, before any bundle is written: an answer that raises the alarm leaves
    nothing behind, and a hostile answer cannot make `prove` write a checkpoint per entry it lists."""
    character = scene.character()
    _, receipt = receipt_file(cli_live, scene, tmp_path, [character.id])
    honest = prove_once_integrated(runner, cli_live, str(receipt))
    answered = Client.get_inclusion_proof

    def lying(self: Client, **request: Any) -> Any:
        answer = answered(self, **request)
        own = answer.entries[0].entry.index
        others = [i for i in range(answer.tree_size) if i != own][:20]
        assert len(others) >= 3
        for index in others:
            other = answered(self, index=index, tree_size=answer.tree_size).entries[0]
            other.entry.entry, other.entry.withheld = b"", True
            answer.entries.append(other)
        return answer

    monkeypatch.setattr(Client, "get_inclusion_proof", lying)
    bundles = tmp_path / "bundles"
    lied = invoke(runner, cli_live, "audit", "prove", str(receipt), "--bundle-out", str(bundles))

    assert honest.exit_code == 0, honest.output
    assert lied.exit_code == 2, lied.output
    assert alerts(lied)
    assert not bundles.exists() or not list(bundles.iterdir())


@pytest.mark.parametrize("lie", ["one left out", "the same page again and again", "ended early"])
def test_an_export_refuses_a_listing_that_skips_repeats_or_ends_before_its_checkpoint(
    runner: ReadableRunner, own_live: Live, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lie: str
) -> None:
    """What a log that hides entries from an exporter lists, or one that answers its first page
    forever (the honest server lists each entry once, up to the checkpoint the export carries)."""
    append(own_live, 10)
    listed = Client.list_log_entries

    def lying(self: Client, **request: Any) -> Iterator[tp.LoggedEntry]:
        entries = list(listed(self, **request))
        if lie == "one left out":
            yield from entries[:4] + entries[5:]
        elif lie == "ended early":
            yield from entries[:-1]
        else:
            while True:
                yield from entries[:3]

    monkeypatch.setattr(Client, "list_log_entries", lying)
    exported = invoke(runner, own_live, "audit", "export", str(tmp_path / "log.jsonl"))

    assert exported.exit_code == 2, exported.output
    assert alerts(exported)


def test_a_malformed_log_key_is_a_usage_error_not_a_crash(
    runner: ReadableRunner, own_live: Live, tmp_path: Path
) -> None:
    append(own_live, 3)
    exported = tmp_path / "log.jsonl"
    assert invoke(runner, own_live, "audit", "export", str(exported)).exit_code == 0

    results = [
        invoke(runner, own_live, "audit", *command, "--log-key", "log+0000+not-a-key")
        for command in (("verify-export", str(exported)), ("watch", "--state", str(tmp_path / "w")))
    ]

    for result in results:
        assert result.exit_code == USAGE_EXIT, result.output
        assert isinstance(result.exception, SystemExit), result.exception
        assert not alerts(result)


USAGE_ERRORS = {
    "an unknown option": ("watch", "--no-such-option"),
    "a missing argument": ("prove",),
    "a receipt that is no file": ("prove", "no-such-receipt.json"),
    "an unknown command": ("no-such-command",),
    "a bad option of the group": ("--no-such-option", "watch"),
}


@pytest.mark.parametrize("case", USAGE_ERRORS)
def test_a_command_line_audit_cannot_run_is_never_taken_for_an_alert(
    runner: ReadableRunner, cli_live: Live, case: str
) -> None:
    """Exit 2 is evidence against the log: Click's usage errors exited 2 too, so a typo in a cron
    job's command line looked like a forked log. They exit 64 (EX_USAGE); other commands keep 2."""
    result = invoke(runner, cli_live, "audit", *USAGE_ERRORS[case])
    elsewhere = invoke(runner, cli_live, "grants", "list", "--no-such-option")

    assert result.exit_code == USAGE_EXIT == 64, result.output
    assert not alerts(result)
    assert elsewhere.exit_code == 2, elsewhere.output


REFUSALS = {
    "sizes out of range": errors.InvalidArgument.one("from_tree_size", "must be at most the latest size"),
    "log inconsistent": errors.DataLoss("the stored log does not match its checkpoint"),
    "not found": errors.NotFound("no such tree", reason="LOG_ENTRY_NOT_FOUND"),
    "failed precondition": errors.FailedPrecondition("not now"),
    "unimplemented": errors.Unimplemented("no proofs here"),
    "bare internal": grpc.StatusCode.INTERNAL,
}
"""What a log that cannot prove it only grew may answer for the consistency proof: each an ALERT."""

TRANSIENT = {
    "unreachable": grpc.StatusCode.UNAVAILABLE,
    "storage busy": errors.StorageBusy("busy"),
    "too slow": grpc.StatusCode.DEADLINE_EXCEEDED,
    "limit reached": errors.ResourceExhausted("too many calls", reason="CONCURRENCY_LIMIT_REACHED"),
}
"""Failures that say nothing about the log: an ordinary failure (exit 1), to be tried again."""


@pytest.mark.parametrize("refusal", [*REFUSALS, *TRANSIENT])
def test_a_witness_raises_the_alarm_when_the_log_refuses_to_prove_it_only_grew(
    runner: ReadableRunner, own_live: Live, tmp_path: Path, refusal: str
) -> None:
    state = tmp_path / "witness.checkpoint"
    append(own_live, 5)
    with Tap(own_live.target) as tap:
        assert invoke(runner, own_live, "audit", "watch", "--state", str(state), via=tap).exit_code == 0
        kept = state.read_bytes()
        append(own_live, 5)
        # Every attempt of the call (the SDK's retries of UNAVAILABLE included) is refused.
        tap.fail("GetConsistencyProof", {**REFUSALS, **TRANSIENT}[refusal], times=20)
        refused = invoke(runner, own_live, "audit", "watch", "--state", str(state), via=tap)
        asked = len(tap.calls_of("GetConsistencyProof"))

    assert asked >= 1
    if refusal in REFUSALS:
        assert refused.exit_code == 2, refused.output
        assert alerts(refused)
    else:
        assert refused.exit_code == 1, refused.output
        assert not alerts(refused)
    assert state.read_bytes() == kept  # neither replaces the kept checkpoint


@pytest.mark.parametrize("refused", ["GetCheckpoint", "ListEntries"])
def test_an_export_raises_the_alarm_when_the_log_refuses_its_listing_or_says_it_lost_data(
    runner: ReadableRunner, own_live: Live, tmp_path: Path, refused: str
) -> None:
    """DATA_LOSS for the checkpoint; a listing refused (a log that will not show the entries its
    checkpoint signs): neither is an export."""
    append(own_live, 10)
    with Tap(own_live.target) as tap:
        if refused == "GetCheckpoint":
            tap.fail(refused, errors.DataLoss("the stored log does not match its checkpoint"))
        else:
            tap.fail(refused, errors.InvalidArgument.one("start_index", "must be at most the latest size"))
        exported = invoke(runner, own_live, "audit", "export", str(tmp_path / "log.jsonl"), via=tap)

    assert exported.exit_code == 2, exported.output
    assert alerts(exported)


def test_prove_raises_the_alarm_when_the_server_says_its_log_lost_data(runner: ReadableRunner, own_live: Live) -> None:
    append(own_live, 3)
    with Tap(own_live.target) as tap:
        tap.fail("GetInclusionProof", errors.DataLoss("the stored log does not match its checkpoint"))
        proved = invoke(runner, own_live, "audit", "prove", os.urandom(32).hex(), via=tap)

    assert proved.exit_code == 2, proved.output
    assert alerts(proved)


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("older than the bound", 2),
        ("younger than the bound", 1),
        ("older, by its digest", 1),
        ("older, not integrated yet", 1),
        ("an hour older, not integrated yet", 2),
        ("older, not signed by the server", 1),
    ],
)
def test_prove_raises_the_alarm_when_the_log_does_not_hold_a_receipt_older_than_its_bound(
    runner: ReadableRunner,
    cli_live: Live,
    scene: Scene,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    status: int,
) -> None:
    """A receipt the server signed, naming this log, that the log does not hold (LOG_ENTRY_NOT_FOUND,
    answered here by a tap in front of the real server, as a log that dropped it would) more than the
    log's integration bound after its decision (the clock moved 2 minutes on: past the bound and the
    clock skew allowed) is evidence against the log: an ALERT. Younger, it may still come (exit 1);
    by its digest alone its age is unknown; LOG_ENTRY_NOT_INTEGRATED says the log holds it, and is an
    ALERT only an hour after the decision (the log withholds it from its signed trees); and a
    receipt that the key set does not verify proves nothing."""
    character = scene.character()
    with Client(cli_live.target, api_key=scene.generator_key) as generator:
        decision = generator.authorize(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN)
    signed = decision.receipt
    assert signed is not None
    if case == "older, not signed by the server":
        signed = envelope.sign(signed.payload, signed.payload_type, key_id="sk_forged", private_key=os.urandom(32))
    receipt = tmp_path / "receipt.json"
    receipt.write_text(envelope.to_json(signed))
    if case.startswith(("older", "an hour older")):
        later = timedelta(minutes=62 if case.startswith("an hour") else 2)
        monkeypatch.setattr(audit_cli, "_now", lambda: datetime.now(UTC) + later)
    reason = "LOG_ENTRY_NOT_INTEGRATED" if case.endswith("not integrated yet") else "LOG_ENTRY_NOT_FOUND"
    asked = decision.receipt_digest.hex() if case == "older, by its digest" else str(receipt)
    with Tap(cli_live.target) as tap:
        tap.fail("GetInclusionProof", errors.NotFound("no such entry", reason=reason))
        proved = invoke(runner, cli_live, "audit", "prove", asked, via=tap)

    assert proved.exit_code == status, proved.output
    assert bool(alerts(proved)) == (status == 2)
