"""What `charter audit` keeps between runs and how it judges a checkpoint against it: the witness's
kept checkpoint (``watch``, and ``prove --state``), the ALERT that evidence against the log raises,
and the check that two checkpoints of one log are of one tree (the smaller a prefix of the larger,
proved by the log's consistency proof)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import grpc
import typer
from typer.core import TyperGroup

from charter import transparency
from charter.cli import _output
from charter.client import Client
from charter.errors import CharterError
from charter.transparency import Checkpoint, CheckpointError, InvalidProof, NoteError
from charter.transparency.note import parse_note

ALERT_EXIT = 2
"""The exit status of evidence against the log (a fork, a rewrite, a forged signature)."""
USAGE_EXIT = 64
"""The exit status of a command line `charter audit` cannot run (an unknown option, a file that is
not a receipt, a malformed --log-key): sysexits' EX_USAGE, not Click's 2, which is `ALERT_EXIT`
here, so that a script or cron job never takes a typo for evidence against the log."""

# The failures that say nothing about the log: the server is busy, unreachable or slow, or this
# key is not accepted. A witness tries again on its next run; every other refusal of a proof or a
# listing the log owes everyone (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, DATA_LOSS,
# INTERNAL, UNIMPLEMENTED, ...) is a log that cannot show it kept its promise: an ALERT.
_TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.UNAUTHENTICATED,
    }
)


# Click's usage error, as the installed Typer raises it (recent Typers carry a copy of Click's).
_USAGE_ERROR: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


@contextmanager
def _usage_exit() -> Iterator[None]:
    try:
        yield
    except _USAGE_ERROR as error:
        error.exit_code = USAGE_EXIT  # type: ignore[attr-defined]  # read by Typer when it exits
        raise


class AuditGroup(TyperGroup):
    """The `charter audit` group: a usage error of it or of its commands exits `USAGE_EXIT`."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        with _usage_exit():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        with _usage_exit():
            return super().invoke(ctx)


def refused(exc: CharterError) -> bool:
    """Whether a failed call is the log refusing what it owes, rather than a transient failure."""
    return exc.code not in _TRANSIENT


def alert(*lines: str) -> NoReturn:
    """Report evidence against the log on stderr and exit with `ALERT_EXIT`."""
    for line in lines:
        typer.echo(f"ALERT: {line}", err=True)
    raise typer.Exit(ALERT_EXIT)


def state_path(state: Path | None, watched: str) -> Path:
    """Where the witness keeps its checkpoint: ``state``, or a file named after what it was told to
    watch (``watched``: --origin, or else the server's address). Never after the origin the server
    names: a log rewritten under another origin would then find no kept checkpoint, and pass as a
    first one."""
    if state is not None:
        return state
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "charter" / "witness" / (re.sub(r"[^A-Za-z0-9._-]", "_", watched) + ".checkpoint")


def stored(path: Path) -> Checkpoint:
    """The checkpoint kept by the previous run (verified when it was kept)."""
    try:
        text, _ = parse_note(path.read_bytes())
        return Checkpoint.from_text(text)
    except (OSError, NoteError, CheckpointError) as exc:
        _output.print_line(f"error: cannot read the stored checkpoint {path}: {exc}")
        raise typer.Exit(1) from None


def unwritable(path: Path, exc: OSError) -> NoReturn:
    """A file this machine cannot write (a directory where it goes, a full disk): exit 1, no
    traceback; it says nothing about the log."""
    _output.print_line(f"error: cannot write {path}: {exc.strerror or exc}")
    raise typer.Exit(1)


def keep(path: Path, note: bytes) -> None:
    """Keep the signed checkpoint ``note`` in ``path``, replacing what was there at once."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(note)
        os.replace(partial, path)  # atomic: a crash never leaves half a checkpoint behind
    except OSError as exc:
        unwritable(path, exc)


def check_one_tree(client: Client, kept: Checkpoint, shown: Checkpoint, *, may_be_older: bool) -> None:
    """ALERT unless ``shown`` (a verified checkpoint the log just showed) and ``kept`` (one it showed
    before) are checkpoints of one log's one tree: the same origin, the same root at the same size,
    and the smaller proved a prefix of the larger by the log's consistency proof. A ``shown`` tree
    smaller than the kept one is the log shrinking, unless ``may_be_older`` (a proof's checkpoint
    may come from a replica that has not integrated as far as the witness saw)."""
    if kept.origin != shown.origin:
        alert(f"the kept checkpoint is of the log {kept.origin!r}, not {shown.origin!r}")
    if shown.size < kept.size and not may_be_older:
        alert(f"the log shrank from {kept.size} to {shown.size} entries: it was rewritten")
    if shown.size == kept.size and shown.root_hash != kept.root_hash:
        alert(f"two different trees of {shown.size} entries were signed: the log forked")
    older, newer = (shown, kept) if shown.size < kept.size else (kept, shown)
    if not older.size or older.size == newer.size:
        return
    try:
        proof = client.get_consistency_proof(older.size, newer.size)
    except CharterError as exc:
        if not refused(exc):
            raise
        alert(f"the log refused to prove that its tree of {newer.size} entries extends the one of {older.size}: {exc}")
    try:
        transparency.verify_consistency(older.size, newer.size, proof, older.root_hash, newer.root_hash)
    except InvalidProof as exc:
        alert(
            f"the tree of {newer.size} entries does not extend the one of {older.size}: "
            f"the log forked or was rewritten ({exc})"
        )
