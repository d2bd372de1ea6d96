"""`charter audit` against a log operator who lies with the log's own key: checkpoints it signs that
no honest log would (an empty tree with a root), answers a witness or a prover must not take (a
checkpoint of another key or origin, data after its signatures, a key set that does not parse,
``DATA_LOSS`` between two answers), and entries that are in the tree but are not the receipt's
decisions (a usage record's entry, a decision that contradicts the receipt, more entries than any
receipt has). Each is an ALERT (exit 2), never exit 0 or a traceback.

As in `test_audit_cli`, the server is the real one: its answers are edited in the client
(monkeypatching `Client`), replaced by a tap in front of it (`Tap.answer`, `Tap.fail`), or the
operator writes to its log with the log's own appender and signs with the log's own key."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from charter import Client, transparency
from charter.cli import audit as audit_cli
from charter.transparency import NoteSigner, sign_note
from charter.transparency.note import parse_note
from charter.usage import UsageReport
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import decision_pb2, signing_key_pb2
from charter.v1 import transparency_pb2 as tp
from charter.v1 import transparency_service_pb2 as ts
from charter_server.domain import errors
from charter_server.domain.models import SigningKeyPurpose
from charter_server.services.authorization import MAX_CHARACTERS
from sdk._live import Live, unique
from sdk._scene import Scene
from sdk._tap import Tap
from typer.testing import Result

from ._commands import invoke
from ._readable import ReadableRunner
from .test_audit_cli import alerts, append, prove_once_integrated, receipt_file


def log_signer(live: Live) -> NoteSigner:
    """The log's own key, as the operator who runs it holds it."""
    signer = live.server.services.keys.signer(purpose=SigningKeyPurpose.TRANSPARENCY_LOG)
    return NoteSigner(live.server.settings.origin, signer.signing_key)


def latest(live: Live) -> ts.GetCheckpointResponse:
    with Client(live.target, api_key=live.admin) as client:
        return client.get_checkpoint()


def checkpoint_answer(note: bytes, real: ts.GetCheckpointResponse) -> Callable[[Any], ts.GetCheckpointResponse]:
    """A GetCheckpoint answer carrying ``note`` in place of the real checkpoint (the other fields as
    the server sent them: nothing but the signed note is to be believed)."""
    answer = ts.GetCheckpointResponse()
    answer.CopyFrom(real)
    answer.checkpoint = note
    return lambda _request: answer


def forged_checkpoint(live: Live, lie: str) -> bytes:
    """What a lying log answers for its checkpoint (see `FORGED`)."""
    real = latest(live)
    text, _ = parse_note(real.checkpoint)
    origin, size, root = text.splitlines()[:3]
    signer = log_signer(live)
    if lie == "an empty tree with a root":
        return sign_note(f"{origin}\n0\n{root}\n", signer)
    if lie == "signed by a key not in the key set":
        return sign_note(text, NoteSigner(origin, os.urandom(32)))
    if lie == "another origin line":
        return sign_note(f"other.example/log\n{size}\n{root}\n", signer)
    if lie == "data after the signatures":
        return real.checkpoint + b"trailing\n"
    assert lie == "a cosignature by another key"
    return real.checkpoint + sign_note(text, NoteSigner("witness.example", os.urandom(32))).split(b"\n\n")[-1]


FORGED = {
    "an empty tree with a root": 2,
    "signed by a key not in the key set": 2,
    "another origin line": 2,
    "data after the signatures": 2,
    "a cosignature by another key": 0,  # a witness's cosignature (C2SP): unknown keys are ignored
}


@pytest.mark.parametrize("lie", FORGED)
def test_a_witness_refuses_a_checkpoint_no_honest_log_signs(
    runner: ReadableRunner, own_live: Live, tmp_path: Path, lie: str
) -> None:
    """The first run keeps what it is shown: a signed empty tree whose root is not SHA-256 of the
    empty string (RFC 9162 §2.1.1) would be kept, and since no consistency proof is asked from size
    0, any tree after it would pass. Each forged answer is an ALERT and nothing is kept."""
    append(own_live, 3)
    state = tmp_path / "witness.checkpoint"
    with Tap(own_live.target) as tap:
        tap.answer("GetCheckpoint", checkpoint_answer(forged_checkpoint(own_live, lie), latest(own_live)))
        watched = invoke(runner, own_live, "audit", "watch", "--state", str(state), via=tap)

    assert watched.exit_code == FORGED[lie], watched.output
    assert isinstance(watched.exception, SystemExit) or watched.exception is None
    if FORGED[lie]:
        assert alerts(watched)
        assert not state.exists()


def logged_receipt(runner: ReadableRunner, live: Live, scene: Scene, tmp_path: Path) -> tuple[Any, Path, str]:
    """A decision of one character, its receipt file and the character, once the honest log proves
    it."""
    character = scene.character()
    decision, receipt = receipt_file(live, scene, tmp_path, [character.id])
    honest = prove_once_integrated(runner, live, str(receipt))
    assert honest.exit_code == 0, honest.output
    return decision, receipt, character.id


def refused_cleanly(result: Result) -> bool:
    """An ALERT and exit 2, with no traceback (an exception other than the exit itself)."""
    return result.exit_code == 2 and bool(alerts(result)) and isinstance(result.exception, SystemExit)


def malformed(key_set: signing_key_pb2.KeySet, case: str) -> signing_key_pb2.KeySet:
    """The key set with one key broken: cut to 31 bytes, or listed again under its id with another
    public key."""
    tampered = signing_key_pb2.KeySet()
    tampered.CopyFrom(key_set)
    log = signing_key_pb2.SigningKey.PURPOSE_TRANSPARENCY_LOG
    key = next(k for k in tampered.keys if (k.purpose == log) == (" log " in case))
    if case.endswith("of 31 bytes"):
        key.public_key = key.public_key[:31]
        return tampered
    twin = tampered.keys.add()
    twin.CopyFrom(key)
    twin.public_key = os.urandom(32)
    if key.purpose == log:  # a well-formed log key of its own, under the same id
        other = NoteSigner(key.note_verifier_key.split("+")[0], os.urandom(32)).verifier
        twin.public_key, twin.note_verifier_key = other.public_key, other.vkey
    return tampered


KEY_SET_FAULTS = [
    "a grant key of 31 bytes",
    "two grant keys with one id",
    "a log key of 31 bytes",
    "two log keys with one id",
]


@pytest.mark.parametrize("case", KEY_SET_FAULTS)
def test_prove_raises_the_alarm_on_a_key_set_that_does_not_parse(
    runner: ReadableRunner,
    cli_live: Live,
    scene: Scene,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    """A receipt older than the log's bound that the log says it does not hold is checked against
    the key set's grant keys: a set that does not parse was a ValueError traceback (exit 1),
    letting a log that dropped the receipt pass for a broken client. The log keys are read for
    every proof: two under one id passed (exit 0), as no grant keys would."""
    _, receipt, _ = logged_receipt(runner, cli_live, scene, tmp_path)
    with Client(cli_live.target, api_key=cli_live.admin) as client:
        key_set = client.get_key_set()
    monkeypatch.setattr(audit_cli, "_now", lambda: datetime.now(UTC) + timedelta(minutes=2))
    with Tap(cli_live.target) as tap:
        if "grant" in case:
            tap.fail("GetInclusionProof", errors.NotFound("no such entry", reason="LOG_ENTRY_NOT_FOUND"))
        tap.answer("GetKeySet", lambda _request: az.GetKeySetResponse(key_set=malformed(key_set, case)))
        proved = invoke(runner, cli_live, "audit", "prove", str(receipt), via=tap)

    assert refused_cleanly(proved), (proved.output, proved.exception)


@pytest.mark.parametrize("lie", ["DATA_LOSS", "an empty tree with a root", "signed by a key not in the key set"])
def test_prove_raises_the_alarm_when_the_second_checkpoint_is_lost_or_forged(
    runner: ReadableRunner,
    cli_live: Live,
    scene: Scene,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lie: str,
) -> None:
    """For a receipt it says it does not hold, the log's latest checkpoint is fetched again (does
    the receipt name this log?): DATA_LOSS there was exit 1, and a checkpoint that does not verify
    passed for "another log's receipt" (exit 1, retry later) instead of the evidence it is."""
    _, receipt, _ = logged_receipt(runner, cli_live, scene, tmp_path)
    monkeypatch.setattr(audit_cli, "_now", lambda: datetime.now(UTC) + timedelta(minutes=2))
    with Tap(cli_live.target) as tap:
        tap.fail("GetInclusionProof", errors.NotFound("no such entry", reason="LOG_ENTRY_NOT_FOUND"))
        if lie == "DATA_LOSS":
            tap.fail("GetCheckpoint", errors.DataLoss("the stored log does not match its checkpoint"))
        else:
            tap.answer("GetCheckpoint", checkpoint_answer(forged_checkpoint(cli_live, lie), latest(cli_live)))
        proved = invoke(runner, cli_live, "audit", "prove", str(receipt), via=tap)

    assert refused_cleanly(proved), (proved.output, proved.exception)


def test_prove_by_digest_does_not_take_a_usage_records_entry_for_the_decision(
    runner: ReadableRunner, cli_live: Live, scene: Scene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A usage record's entry names the receipt's digest too, and is in the tree: answered in place
    of the decision's entry (which the server never does: it is not found by the digest), it
    verified, and `prove` printed "verified" (exit 0) for a decision it never proved."""
    decision, _, character_id = logged_receipt(runner, cli_live, scene, tmp_path)
    with Client(cli_live.target, api_key=scene.generator_key) as generator:
        (reported,) = generator.report_usage([UsageReport(decision.receipt, character_id)])
    assert reported.accepted
    while cli_live.server.services.sequencer.integrate():
        pass
    with Client(cli_live.target, api_key=cli_live.admin) as staff:
        size = staff.get_checkpoint().tree_size
        (usage_index,) = [
            e.index
            for e in staff.list_log_entries(start_index=max(0, size - 50))
            if tp.LogEntry.FromString(e.entry).usage.usage_id == reported.usage_id
        ]
    answered = Client.get_inclusion_proof

    def lying(self: Client, **request: Any) -> Any:
        answer = answered(self, **request)
        answer.entries[0].CopyFrom(answered(self, index=usage_index, tree_size=answer.tree_size).entries[0])
        return answer

    monkeypatch.setattr(Client, "get_inclusion_proof", lying)
    lied = invoke(runner, cli_live, "audit", "prove", decision.receipt_digest.hex())

    assert refused_cleanly(lied), lied.output
    assert "verified:" not in lied.stdout


@pytest.mark.parametrize("lie", ["denied where it allowed", "another grant", "another receipt id"])
def test_prove_raises_the_alarm_when_the_logged_decision_is_not_the_one_the_receipt_signed(
    runner: ReadableRunner,
    cli_live: Live,
    scene: Scene,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lie: str,
) -> None:
    """The operator logs, under the receipt's digest, a decision other than the one it signed (the
    rights holder reading the log sees "denied", and is owed nothing), and answers it in place of
    the true one: its character matched, so `prove` said "verified" (exit 0)."""
    decision, receipt, _ = logged_receipt(runner, cli_live, scene, tmp_path)
    with Client(cli_live.target, api_key=cli_live.admin) as staff:
        (true,) = staff.get_inclusion_proof(receipt_digest=decision.receipt_digest).entries
    logged = tp.LogEntry.FromString(true.entry.entry).decision
    if lie == "denied where it allowed":
        assert logged.allowed
        logged.allowed, logged.grant_id = False, ""
    elif lie == "another grant":
        logged.grant_id = "grt_" + os.urandom(16).hex()
    else:
        logged.receipt_id = "rcp_" + os.urandom(16).hex()
    server = cli_live.server
    with server.db.uow(write=True) as uow:
        server.services.appender.append(
            uow,
            "decision",
            logged,
            rights_holder_id=logged.rights_holder_id,
            licensee_id=logged.licensee_id,
            receipt_digest=decision.receipt_digest,
        )
        uow.commit()
    while server.services.sequencer.integrate():
        pass
    answered = Client.get_inclusion_proof

    def lying(self: Client, **request: Any) -> Any:
        answer = answered(self, **request)
        kept = [e for e in answer.entries if e.entry.index != true.entry.index]
        del answer.entries[:]
        answer.entries.extend(kept)
        return answer

    monkeypatch.setattr(Client, "get_inclusion_proof", lying)
    lied = invoke(runner, cli_live, "audit", "prove", str(receipt))

    assert refused_cleanly(lied), lied.output
    assert "verified:" not in lied.stdout


def test_prove_by_digest_refuses_more_entries_than_any_receipt_has_before_verifying_them(
    runner: ReadableRunner, cli_live: Live, scene: Scene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a digest alone there is no receipt to count against: the answer was bounded only by
    gRPC's message size, each entry verified and a bundle written for it. More entries than the
    log's documented bound (`MAX_RECEIPT_ENTRIES`) is an ALERT, before any proof or bundle. (The
    bound is lowered to 64 here, so that the lie costs 64 fetches instead of 1,000.)"""
    monkeypatch.setattr(transparency, "MAX_RECEIPT_ENTRIES", 64)
    decision, _, _ = logged_receipt(runner, cli_live, scene, tmp_path)
    append(cli_live, transparency.MAX_RECEIPT_ENTRIES + 2)
    answered = Client.get_inclusion_proof

    def lying(self: Client, **request: Any) -> Any:
        answer = answered(self, **request)
        own = answer.entries[0].entry.index
        others = [i for i in range(answer.tree_size - 1, -1, -1) if i != own][: transparency.MAX_RECEIPT_ENTRIES]
        for index in others:
            other = answered(self, index=index, tree_size=answer.tree_size).entries[0]
            other.entry.entry, other.entry.withheld = b"", True
            answer.entries.append(other)
        return answer

    monkeypatch.setattr(Client, "get_inclusion_proof", lying)
    bundles = tmp_path / "bundles"
    lied = invoke(runner, cli_live, "audit", "prove", decision.receipt_digest.hex(), "--bundle-out", str(bundles))

    assert refused_cleanly(lied), lied.output
    assert not bundles.exists() or not list(bundles.iterdir())


def test_the_log_answers_at_most_its_documented_bound_of_entries_for_a_digest(cli_live: Live) -> None:
    """The server side of the bound: entries logged under one digest past `MAX_RECEIPT_ENTRIES`
    (one per character decided: only a prompt naming more than 936 undeclared characters decides
    more) are not all answered; the first ones are."""
    assert MAX_CHARACTERS <= transparency.MAX_RECEIPT_ENTRIES  # every real receipt is answered whole
    digest = os.urandom(32)
    server = cli_live.server
    with server.db.uow(write=True) as uow:
        for _ in range(transparency.MAX_RECEIPT_ENTRIES + 3):
            logged = tp.DecisionLogged(receipt_id="rcp_" + os.urandom(16).hex(), receipt_digest=digest, allowed=True)
            server.services.appender.append(uow, "decision", logged, receipt_digest=digest)
        uow.commit()
    while server.services.sequencer.integrate():
        pass
    with Client(cli_live.target, api_key=cli_live.admin) as staff:
        answer = staff.get_inclusion_proof(receipt_digest=digest)

    assert len(answer.entries) == transparency.MAX_RECEIPT_ENTRIES
    indexes = [e.entry.index for e in answer.entries]
    assert indexes == sorted(indexes)
    assert indexes[-1] - indexes[0] == transparency.MAX_RECEIPT_ENTRIES - 1
    for included in answer.entries:
        transparency.verify_inclusion(
            included.entry.leaf_hash,
            included.entry.index,
            answer.tree_size,
            list(included.proof),
            transparency.Checkpoint.from_text(parse_note(answer.checkpoint)[0]).root_hash,
        )


def test_a_receipt_that_decided_more_characters_than_it_declared_is_proved_whole(
    runner: ReadableRunner, cli_live: Live, scene: Scene, tmp_path: Path
) -> None:
    """A receipt decides every declared character (at most 64) and every other one its prompt
    names: 64 declared and two named in the prompt are 66 entries, each proved (a bound of 64 on
    the entries of a digest once made such a receipt an ALERT)."""
    declared = [scene.character().id for _ in range(MAX_CHARACTERS)]
    named = [scene.character(name=unique("Zorblax ")) for _ in range(2)]
    prompt = " and ".join(c.canonical_name for c in named)
    decision, receipt = receipt_file(cli_live, scene, tmp_path, declared, prompt)
    payload = decision_pb2.DecisionReceipt.FromString(decision.receipt.payload)

    proved = prove_once_integrated(runner, cli_live, str(receipt))

    assert len(payload.characters) == MAX_CHARACTERS + 2
    assert proved.exit_code == 0, proved.output


@pytest.mark.parametrize("lie", ["a smaller size", "another origin"])
def test_an_export_follows_the_size_its_checkpoint_signs_not_the_answers_other_fields(
    runner: ReadableRunner, own_live: Live, tmp_path: Path, lie: str
) -> None:
    """GetCheckpoint's size and origin fields are the server's word beside the signed note: an
    export that listed up to the field's size stopped short of the signed tree, and said it
    exported the log (exit 0). An answer that disagrees with its own note is an ALERT."""
    append(own_live, 10)
    real = latest(own_live)
    answer = ts.GetCheckpointResponse()
    answer.CopyFrom(real)
    if lie == "a smaller size":
        answer.tree_size -= 3
    else:
        answer.origin = "other.example/log"
    with Tap(own_live.target) as tap:
        tap.answer("GetCheckpoint", lambda _request: answer)
        exported = invoke(runner, own_live, "audit", "export", str(tmp_path / "log.jsonl"), via=tap)

    assert refused_cleanly(exported), exported.output


def test_verify_export_takes_a_number_too_long_to_read_for_no_export_not_a_crash(
    runner: ReadableRunner, own_live: Live, tmp_path: Path
) -> None:
    """A line with an index of more digits than Python converts to an int (a ValueError that is not
    a JSONDecodeError) was a traceback; it is 'not an export' (exit 1), as any line not JSON is."""
    append(own_live, 3)
    exported = tmp_path / "log.jsonl"
    assert invoke(runner, own_live, "audit", "export", str(exported)).exit_code == 0
    lines = exported.read_text().splitlines(keepends=True)
    exported.write_text("".join([*lines[:2], '{"index": ' + "1" * 5000 + "}\n", *lines[3:]]))

    refused = invoke(runner, own_live, "audit", "verify-export", str(exported))

    assert refused.exit_code == 1, refused.output
    assert isinstance(refused.exception, SystemExit), refused.exception
    assert not alerts(refused)


@pytest.mark.parametrize("command", ["watch", "export", "prove"])
def test_a_file_that_cannot_be_written_is_an_error_line_not_a_traceback(
    runner: ReadableRunner, cli_live: Live, scene: Scene, tmp_path: Path, command: str
) -> None:
    """Where the witness keeps its checkpoint, the export or the bundles go under a regular file:
    an OSError was a traceback; it is an error line and exit 1 (nothing about the log)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    if command == "prove":
        decision, _, _ = logged_receipt(runner, cli_live, scene, tmp_path)
        args = ["prove", decision.receipt_digest.hex(), "--bundle-out", str(blocker / "bundles")]
    elif command == "watch":
        args = ["watch", "--state", str(blocker / "witness.checkpoint")]
    else:
        args = ["export", str(blocker / "log.jsonl")]

    failed = invoke(runner, cli_live, "audit", *args)

    assert failed.exit_code == 1, failed.output
    assert isinstance(failed.exception, SystemExit), failed.exception
    assert not alerts(failed)


@pytest.mark.parametrize("kept", [False, True])
def test_a_witness_raises_the_alarm_when_the_log_it_kept_a_checkpoint_of_lists_no_key(
    runner: ReadableRunner, own_live: Live, tmp_path: Path, kept: bool
) -> None:
    """A key set without a log key is a server without the log (exit 1) for a first run; after a
    kept checkpoint it was exit 1 too, so an operator who hides a rewrite by dropping the log key
    from the key set left every witness retrying quietly. It is an ALERT, the kept one unchanged."""
    append(own_live, 3)
    state = tmp_path / "witness.checkpoint"
    if kept:
        assert invoke(runner, own_live, "audit", "watch", "--state", str(state)).exit_code == 0
    before = state.read_bytes() if kept else None
    with Client(own_live.target, api_key=own_live.admin) as client:
        key_set = client.get_key_set()
    without = signing_key_pb2.KeySet()
    without.CopyFrom(key_set)
    del without.keys[:]
    log = signing_key_pb2.SigningKey.PURPOSE_TRANSPARENCY_LOG
    without.keys.extend(k for k in key_set.keys if k.purpose != log)
    with Tap(own_live.target) as tap:
        tap.answer("GetKeySet", lambda _request: az.GetKeySetResponse(key_set=without))
        watched = invoke(runner, own_live, "audit", "watch", "--state", str(state), via=tap)

    if kept:
        assert refused_cleanly(watched), watched.output
        assert state.read_bytes() == before
    else:
        assert watched.exit_code == 1, watched.output
        assert not alerts(watched)
        assert not state.exists()
