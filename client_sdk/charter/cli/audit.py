"""`charter audit`: witness the transparency log, verify an export, prove a receipt's inclusion.

Everything is checked here, with the log keys of the server's key set (or keys given with
``--log-key``, for a witness that pins them), never taken on the server's word. A proof that
fails, a checkpoint whose signature fails, a log that shrank, forked or was rewritten, or one that
refuses a consistency proof or the rest of a listing it owes (any error but a transient one, see
`charter.cli._witness`), or says its stored log no longer matches what it signed (``DATA_LOSS``),
or does not hold a receipt it signed longer ago than its integration bound (`prove`), is evidence
against the log: it is reported with ``ALERT`` lines on stderr and exit status 2 (1 is for
ordinary failures, such as a server that does not answer, and 64 for a command line that cannot
run: never Click's 2).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Final

import typer
from google.protobuf.message import DecodeError

from charter import envelope, transparency
from charter.cli import _output
from charter.cli._audit_output import print_proof
from charter.cli._context import JsonOption, settings
from charter.cli._witness import AuditGroup, alert, check_one_tree, keep, refused, state_path, stored, unwritable
from charter.client import Client
from charter.errors import CharterError, DataLossError, NotFoundError
from charter.keyring import KeyRing
from charter.receipts import verify_receipt
from charter.transparency import (
    Checkpoint,
    CheckpointError,
    ExportMismatch,
    InvalidProof,
    MalformedExport,
    NoteError,
    NoteVerifier,
    ProofBundle,
    WrongOrigin,
)
from charter.transparency.note import parse_note
from charter.v1 import decision_pb2, transparency_pb2, transparency_service_pb2
from charter.v1.envelope_pb2 import Envelope

app = typer.Typer(
    cls=AuditGroup,
    help="The transparency log: witness it (watch), verify an export, prove a receipt is logged.",
    no_args_is_help=True,
)

INTEGRATION_BOUND: Final = timedelta(seconds=1)
"""The log's documented bound: an entry is integrated at most a second after its change
(``transparency_service.proto``; a receipt's entries within a second of its decision)."""
CLOCK_SKEW: Final = timedelta(seconds=60)
"""What is allowed between this machine's clock and the server's, on top of the bound (the SDK's
default skew)."""
WITHHELD_AFTER: Final = timedelta(hours=1)
"""How long after its decision a receipt the log says it holds but has not integrated
(``LOG_ENTRY_NOT_INTEGRATED``) is taken as withheld from the log's signed trees (plus the clock
skew): far past the integration bound, so that a log catching up after an outage is not taken for
one that keeps an entry out of every checkpoint."""

_now: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731 - the clock (tests move it)

_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
LogKeyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--log-key",
        help="A log verifier key to trust (<origin>+<key id>+<base64>), repeatable; the key set's log keys by default.",
    ),
]


def _pinned(vkeys: list[str]) -> list[NoteVerifier]:
    try:
        return [NoteVerifier.from_vkey(vkey) for vkey in vkeys]
    except NoteError as exc:
        raise typer.BadParameter(str(exc), param_hint="--log-key") from None


def _verifiers(client: Client, pinned: list[str] | None, *, witnessed: bool = False) -> list[NoteVerifier]:
    """The log keys to verify with: ``pinned``, or the server's key set's. A key set with none is
    exit 1 (a server without the log), but an ALERT for a witness that kept a checkpoint of this
    log (``witnessed``): a log that drops or revokes its every key can no longer show it only grew,
    and must not pass for a server that is down."""
    if pinned:
        return _pinned(pinned)
    try:
        verifiers = transparency.log_verifiers(client.get_key_set())
    except NoteError as exc:
        alert(f"the key set's log key is malformed: {exc}")
    if not verifiers and witnessed:
        alert("the server's key set no longer lists a log key, though a checkpoint of its log is kept")
    if not verifiers:
        _output.print_line("error: the server's key set has no transparency log key")
        raise typer.Exit(1)
    return verifiers


@app.command("watch")
def watch(
    ctx: typer.Context,
    *,
    state: Annotated[
        Path | None,
        typer.Option(
            dir_okay=False,
            help="Where the last verified checkpoint is kept;"
            " $XDG_STATE_HOME/charter/witness/<--origin, or else the server address>.checkpoint by default.",
        ),
    ] = None,
    origin: Annotated[str | None, typer.Option(help="The log's origin to expect; the server's by default.")] = None,
    log_key: LogKeyOption = None,
    json_output: JsonOption = False,
) -> None:
    """Check that the log only grew since the last run, then keep its new checkpoint.

    The first run keeps the current checkpoint (after checking its signature). Every later run
    fetches the latest checkpoint and the consistency proof from the kept one: a smaller tree, a
    different root for the same size, a proof that fails or is refused means the log forked, was
    rewritten or cannot show it only grew, reported with ALERT lines and exit status 2 (the kept
    checkpoint is left as it was). A server that is unreachable, busy or slow is exit status 1.
    """
    cli = settings(ctx, json_output)
    path = state_path(state, origin or cli.target)
    old = stored(path) if path.exists() else None
    with cli.client() as client:
        verifiers = _verifiers(client, log_key, witnessed=old is not None)
        try:
            answer = client.get_checkpoint()
        except DataLossError as exc:
            alert(f"the server says its stored log no longer matches what it signed: {exc}")
        expected = origin or answer.origin
        try:
            signed = transparency.verify_checkpoint(answer.checkpoint, origin=expected, verifiers=verifiers)
        except (NoteError, CheckpointError) as exc:
            alert(f"the log's checkpoint does not verify: {exc}")
        new = signed.checkpoint
        if old is not None:
            check_one_tree(client, old, new, may_be_older=False)
    keep(path, signed.data)
    result = {
        "origin": new.origin,
        "previousTreeSize": None if old is None else old.size,
        "treeSize": new.size,
        "rootHash": base64.b64encode(new.root_hash).decode("ascii"),
        "state": str(path),
    }
    if cli.json_output:
        _output.print_json(result)
    elif old is None:
        typer.echo(f"first checkpoint of {new.origin}: {new.size} entries, kept in {path}")
    else:
        typer.echo(f"consistent: {new.origin} grew from {old.size} to {new.size} entries")


def _exported_size(answer: transparency_service_pb2.GetCheckpointResponse) -> int:
    """The size of the tree the export's checkpoint signs: that of the note itself, not the
    answer's side fields (which an export checked offline later does not carry). An answer whose
    fields disagree with its own note is an ALERT: the listing would stop short of what is signed,
    or not be of it at all. The signature is verify-export's to check, with the log's keys."""
    try:
        head = Checkpoint.from_text(parse_note(answer.checkpoint)[0])
    except (NoteError, CheckpointError) as exc:
        alert(f"the log's checkpoint is not a checkpoint: {exc}")
    if (head.origin, head.size) != (answer.origin, answer.tree_size):
        alert(
            f"the log answered a tree of {answer.tree_size} entries of {answer.origin!r};"
            f" its checkpoint signs {head.size} of {head.origin!r}"
        )
    return head.size


@app.command("export")
def export(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(dir_okay=False, help="Where to write the export (JSON Lines).")],
    *,
    page_size: Annotated[int, typer.Option(min=1, max=1000, help="Entries per call.")] = 1000,
    json_output: JsonOption = False,
) -> None:
    """Write every entry up to the latest checkpoint, with it, for `charter audit verify-export`.

    Entries the key may not read are exported as their leaf hash only (auditor and admin keys
    read every entry). A listing that skips or repeats an entry, or ends before the size the
    checkpoint note signs (refused part way, or never ending), an answer whose size or origin
    disagree with its note, and a server that says its stored log no longer matches what it signed
    (DATA_LOSS), are reported with ALERT lines and exit status 2.
    """
    cli = settings(ctx, json_output)
    with cli.client() as client:
        try:
            answer = client.get_checkpoint()
        except DataLossError as exc:
            alert(f"the server says its stored log no longer matches what it signed: {exc}")
        size = _exported_size(answer)

        def entries() -> Iterator[tuple[int, bytes, bytes | None]]:
            # Each entry must be the next one: a listing that skips or repeats entries (a page
            # answered again and again) is refused at once, rather than written on without end.
            expected = 0
            try:
                for listed in client.list_log_entries(page_size=page_size):
                    if expected == size:
                        return
                    if listed.index != expected:
                        alert(f"the log listed entry {listed.index} where entry {expected} comes next")
                    expected += 1
                    yield listed.index, listed.leaf_hash, None if listed.withheld else listed.entry
            except CharterError as exc:
                # A listing refused (or one the SDK ended because it would not end) stops short.
                if not refused(exc):
                    raise
                alert(f"the log's listing stopped after {expected} of {size} entries: {exc}")
            if expected != size:
                alert(f"the log listed {expected} entries; its checkpoint signs {size}")

        try:
            with file.open("w", encoding="utf-8") as out:
                out.writelines(transparency.export_lines(answer.checkpoint, answer.origin, entries()))
        except OSError as exc:
            unwritable(file, exc)
    if cli.json_output:
        _output.print_json({"origin": answer.origin, "tree_size": size, "file": str(file)})
    else:
        typer.echo(f"exported {size} entries of {answer.origin} to {file}")


@app.command("verify-export")
def verify_export(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="An export (charter audit export).")
    ],
    *,
    origin: Annotated[str | None, typer.Option(help="The log's origin to expect; the export's by default.")] = None,
    log_key: LogKeyOption = None,
    json_output: JsonOption = False,
) -> None:
    """Recompute the tree from an export and check it against the signed checkpoint it carries.

    With --log-key the check needs no server at all. Exit status 2 when the export does not
    rebuild the signed tree (an entry deleted, altered, reordered or inserted) or the checkpoint's
    signature fails.
    """
    cli = settings(ctx, json_output)
    if log_key:
        verifiers = _pinned(log_key)
    else:
        with cli.client() as client:
            verifiers = _verifiers(client, None)
    try:
        with file.open("rb") as lines:
            summary = transparency.verify_export(lines, verifiers=verifiers, origin=origin)
    except MalformedExport as exc:
        _output.print_line(f"error: {file.name} is not an export: {exc}")
        raise typer.Exit(1) from None
    except (NoteError, CheckpointError) as exc:
        alert(f"the export's checkpoint does not verify: {exc}")
    except ExportMismatch as exc:
        where = "" if exc.index is None else f" (entry {exc.index})"
        alert(f"the export does not match its signed checkpoint{where}: {exc}")
    checkpoint = summary.checkpoint.checkpoint
    if cli.json_output:
        _output.print_json(
            {
                "origin": checkpoint.origin,
                "treeSize": checkpoint.size,
                "rootHash": base64.b64encode(checkpoint.root_hash).decode("ascii"),
                "withheld": summary.withheld,
            }
        )
        return
    typer.echo(
        f"verified: {summary.entries} entries rebuild the signed root of {checkpoint.origin}"
        f" ({summary.withheld} as leaf hashes only)"
    )


# What the log answers for a receipt it does not prove, and how long after the decision that is
# evidence against it: the entry dropped, or withheld from every signed tree.
_MISSING: Final = {
    "LOG_ENTRY_NOT_FOUND": (INTEGRATION_BOUND, "the log dropped it"),
    "LOG_ENTRY_NOT_INTEGRATED": (WITHHELD_AFTER, "the log withholds it from its signed trees"),
}


def _missing(client: Client, signed: Envelope, verifiers: list[NoteVerifier], reason: str) -> str | None:
    """Why a receipt the log does not prove (``reason``: not held, or held and not integrated) is
    evidence against the log, or None when it is not: it must be signed by a key of the server's key
    set, name this log (its latest checkpoint verifies under the receipt's origin), and be older than
    the reason's bound (plus the clock skew) by this machine's clock. A receipt that does not verify,
    names another log or is younger proves nothing (exit 1: the wrong server, or retry later). A key
    set that does not parse, a latest checkpoint that fails for any reason but naming another
    origin, and ``DATA_LOSS`` are ALERTs: none of them lets a log that dropped a receipt pass for
    one that was asked too early."""
    try:
        ring = KeyRing.from_key_set(client.get_key_set())
    except ValueError as exc:
        alert(f"the server's key set is malformed: {exc}")
    verified = verify_receipt(signed, keys=ring)
    receipt = verified.receipt
    if not verified.valid or receipt is None or not receipt.log_origin:
        return None
    try:
        latest = client.get_checkpoint()
    except DataLossError as exc:
        alert(f"the server says its stored log no longer matches what it signed: {exc}")
    try:
        transparency.verify_checkpoint(latest.checkpoint, origin=receipt.log_origin, verifiers=verifiers)
    except WrongOrigin:
        return None  # another log's receipt, asked of the wrong server
    except (NoteError, CheckpointError) as exc:
        # Not a log that names another origin: one whose checkpoint fails (a forged or broken
        # signature, an empty tree with a root): no reason to take the missing receipt lightly.
        alert(f"the log's checkpoint does not verify: {exc}")
    decided = receipt.decide_time.ToDatetime(UTC)
    bound, meaning = _MISSING[reason]
    if _now() - decided <= bound + CLOCK_SKEW:
        return None
    return (
        f"receipt {receipt.receipt_id}, signed by the server at {decided.isoformat()}, is not proved in"
        f" {receipt.log_origin} ({reason}), more than {bound.total_seconds():g} s after the decision: {meaning}"
    )


def _receipt(receipt: str) -> tuple[bytes, Envelope | None]:
    """The receipt's digest, and the receipt itself when a file was given (not a digest)."""
    if _HEX_DIGEST.fullmatch(receipt):
        return bytes.fromhex(receipt), None
    path = Path(receipt)
    if not path.is_file():
        raise typer.BadParameter("a receipt file (DSSE JSON) or a 64-digit hex digest", param_hint="RECEIPT")
    try:
        signed = envelope.from_json(path.read_bytes())
        decision_pb2.DecisionReceipt.FromString(signed.payload)
    except (ValueError, OSError, DecodeError) as exc:
        raise typer.BadParameter(f"{path.name} is not a receipt envelope: {exc}", param_hint="RECEIPT") from None
    return hashlib.sha256(signed.payload).digest(), signed


def _provable(signed_receipt: Envelope | None) -> decision_pb2.DecisionReceipt | None:
    """The receipt's decision, when it was given; exit 1 when it decided more characters than the
    log answers entries for one digest (`transparency.MAX_RECEIPT_ENTRIES`): that says nothing
    about the log."""
    if signed_receipt is None:
        return None
    decided = decision_pb2.DecisionReceipt.FromString(signed_receipt.payload)
    if len(decided.characters) > transparency.MAX_RECEIPT_ENTRIES:
        _output.print_line(
            f"error: the receipt decided {len(decided.characters)} characters; the log answers at most "
            f"{transparency.MAX_RECEIPT_ENTRIES} entries for one receipt: prove the others by index"
        )
        raise typer.Exit(1)
    return decided


def _check_count(indexes: list[int], receipt: decision_pb2.DecisionReceipt | None) -> None:
    """ALERT unless the entries are each logged once, no more than any receipt has
    (`transparency.MAX_RECEIPT_ENTRIES`, the log's documented bound) and, for a receipt at hand,
    are one per character it decided (one for a receipt that named none): a log that left a
    decision out, or answered with none at all, must not pass as having proved it. Checked on the
    indexes alone, before any proof is verified or bundle written, so a log that answers far more
    entries than a receipt decides (given by its digest alone too) costs nothing more than its
    answer."""
    if not indexes:
        alert("the log answered no entry for this receipt")
    if len(indexes) > transparency.MAX_RECEIPT_ENTRIES:
        alert(f"the log answered {len(indexes)} entries; a receipt has at most {transparency.MAX_RECEIPT_ENTRIES}")
    if len(set(indexes)) != len(indexes):
        alert("the log answered the same entry twice for this receipt")
    if receipt is not None and len(indexes) != len(receipt.characters) + (not receipt.characters):
        alert(f"the log answered {len(indexes)} entries; the receipt decided {len(receipt.characters) or 1}")


def _decided(receipt: decision_pb2.DecisionReceipt) -> Counter[tuple[str, str, bool, str, int]]:
    """What the receipt signed about each character (a receipt that named none: the request's
    verdict), as its log entries must record it."""
    if not receipt.characters:
        return Counter([("", "", receipt.allowed, "", 0)])
    return Counter(
        (c.character_id, c.rights_holder_id, c.allowed, c.grant_id, c.terms_version) for c in receipt.characters
    )


def _check_decisions(
    bodies: list[transparency_pb2.LogEntry | None], receipt: decision_pb2.DecisionReceipt | None
) -> None:
    """ALERT when the entries shown record other decisions than the receipt signed: another
    character, verdict, grant, terms version or rights holder (a log that shows a rights holder
    "denied" where the licensee holds "allowed" hides a use it is owed for), or another receipt id
    or licensee."""
    if receipt is None:
        return
    shown = [body.decision for body in bodies if body is not None]
    if any((d.receipt_id, d.licensee_id) != (receipt.receipt_id, receipt.licensee_id) for d in shown):
        alert("the log's entries name another receipt or licensee than the receipt does")
    recorded = Counter((d.character_id, d.rights_holder_id, d.allowed, d.grant_id, d.terms_version) for d in shown)
    if recorded - _decided(receipt):
        alert("the log's entries record other decisions than the receipt signed")


def _expected_origin(option: str | None, decided: decision_pb2.DecisionReceipt | None) -> str | None:
    """The log the proof must come from: --origin, the log the receipt names, or None (the one the
    checkpoint names). A receipt of another log than --origin is a usage error."""
    named = decided.log_origin if decided is not None and decided.log_origin else None
    if option is not None and named is not None and option != named:
        raise typer.BadParameter(f"the receipt names the log {named!r}", param_hint="--origin")
    return option or named


def _proof_checkpoint(note: bytes, origin: str | None, verifiers: list[NoteVerifier]) -> transparency.SignedCheckpoint:
    """The proof's checkpoint, verified as a checkpoint of ``origin`` (else of the log it names)."""
    try:
        if origin is None:
            origin = transparency.Checkpoint.from_text(parse_note(note)[0]).origin
        return transparency.verify_checkpoint(note, origin=origin, verifiers=verifiers)
    except (NoteError, CheckpointError) as exc:
        alert(f"the checkpoint does not verify: {exc}")


def _write_bundles(directory: Path, bundles: list[tuple[int, ProofBundle]]) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for index, bundle in bundles:
            (directory / f"entry-{index}.tlog-proof").write_bytes(bundle.to_text())
    except OSError as exc:
        unwritable(directory, exc)


@app.command("prove")
def prove(
    ctx: typer.Context,
    receipt: Annotated[
        str,
        typer.Argument(help="A receipt (DSSE JSON, as `charter authorize --receipt-out` writes) or its hex digest."),
    ],
    *,
    bundle_out: Annotated[
        Path | None,
        typer.Option(file_okay=False, help="Also write each entry's C2SP tlog-proof bundle into this directory."),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            dir_okay=False,
            help="A witness's kept checkpoint (`watch --state`): the proof's checkpoint must be of the same tree;"
            " a larger one (or the first) is kept in the file.",
        ),
    ] = None,
    origin: Annotated[
        str | None,
        typer.Option(help="The log's origin to expect; the log the receipt names by default, else the checkpoint's."),
    ] = None,
    log_key: LogKeyOption = None,
    json_output: JsonOption = False,
) -> None:
    """Print and verify the inclusion proof of a receipt's log entries (one per character decided).

    With the receipt file (not only its digest) the checkpoint must be of the log the receipt names,
    and every character it decided must be proved, once, by an entry that records the decision the
    receipt signed. Exit status 2 when a proof or the checkpoint fails, a decision is missing or
    another than the receipt's, the log answers more entries than its bound for one receipt (1,000) or one that is
    not a decision of this receipt, the key set does not parse, or the server says its stored log
    no longer matches what it signed (DATA_LOSS), or when the log does not hold a receipt file (LOG_ENTRY_NOT_FOUND)
    that the server's key set verifies, that names this log and that is older than the log's
    integration bound (`INTEGRATION_BOUND`, one second, plus `CLOCK_SKEW`): the log dropped it; the
    same for a receipt the log holds but has not integrated (LOG_ENTRY_NOT_INTEGRATED) an hour after
    its decision (`WITHHELD_AFTER`, plus `CLOCK_SKEW`): the log withholds it. 1 otherwise (given by
    its digest, or younger: retry later), and when an entry's body is withheld from this key: its
    proof shows that some entry is in the tree, not that it is about this receipt.

    Given by its digest alone, the checkpoint is of the log it names unless --origin pins one.
    With --state, a split view is caught too: the proof's checkpoint must be of the tree the witness
    kept (the smaller proved a prefix of the larger by the log's consistency proof), else exit 2; a
    larger checkpoint is then kept in the file, as `watch` would (and the first, if there is none).
    """
    digest, signed_receipt = _receipt(receipt)
    decided = _provable(signed_receipt)
    expected = _expected_origin(origin, decided)
    cli = settings(ctx, json_output)
    kept = stored(state) if state is not None and state.exists() else None
    with cli.client() as client:
        verifiers = _verifiers(client, log_key)
        try:
            answer = client.get_inclusion_proof(receipt_digest=digest)
        except DataLossError as exc:
            alert(f"the server says its stored log no longer matches what it signed: {exc}")
        except NotFoundError as exc:
            missing = None
            if exc.reason in _MISSING and signed_receipt is not None:
                missing = _missing(client, signed_receipt, verifiers, exc.reason)
            if missing is not None:
                alert(missing)
            raise
        signed = _proof_checkpoint(answer.checkpoint, expected, verifiers)
        if kept is not None:
            check_one_tree(client, kept, signed.checkpoint, may_be_older=True)
    _check_count([included.entry.index for included in answer.entries], decided)
    shown = []
    for included in answer.entries:
        entry = included.entry
        try:
            transparency.verify_inclusion(
                entry.leaf_hash, entry.index, signed.checkpoint.size, list(included.proof), signed.checkpoint.root_hash
            )
            body = transparency.open_entry(entry.entry, entry.leaf_hash) if entry.entry else None
        except (InvalidProof, ValueError) as exc:
            alert(f"entry {entry.index} is not proved in the signed tree: {exc}")
        # Only a decision entry is the receipt's: a usage record's entry names the receipt's digest
        # too, but is never answered for it, and says nothing of what was decided.
        if body is not None and (body.WhichOneof("change") != "decision" or body.decision.receipt_digest != digest):
            alert(f"entry {entry.index} is not about this receipt")
        shown.append((entry, body, ProofBundle(entry.index, tuple(included.proof), answer.checkpoint)))
    _check_decisions([body for _, body, _ in shown], decided)
    # Written only once everything verified: an answer that raised the alarm leaves no bundle behind.
    if bundle_out is not None:
        _write_bundles(bundle_out, [(entry.index, bundle) for entry, _, bundle in shown])
    if state is not None and (kept is None or signed.checkpoint.size > kept.size):
        keep(state, signed.data)
    print_proof(cli.json_output, digest, signed.checkpoint, shown)
    withheld = [entry.index for entry, body, _ in shown if body is None]
    if withheld:
        # A withheld entry's proof shows that some entry is in the tree, not that it is about this
        # receipt (any entry's leaf and proof would do): it proves nothing, so this is no success.
        _output.print_line(
            f"error: entries {withheld} were withheld from this key, so nothing shows they are about this"
            " receipt; prove it with a key that may read them (the receipt's licensee, an auditor or staff)"
        )
        raise typer.Exit(1)
