"""Exports of the log: every entry up to a signed checkpoint, checked offline.

An export is text, one JSON object per line (JSON Lines, UTF-8):

* the first line names the format and holds the signed checkpoint note the export is checked
  against: ``{"format": "charter-log-export/v1", "origin": "<origin>", "checkpoint": "<base64 note>"}``;
* then one line per entry in index order from 0: ``{"index": N, "leaf_hash": "<base64>", "entry":
  "<base64 LogEntry bytes>"}``, without ``entry`` when the exporter could not read it (a leaf hash
  alone still places it in the tree).

`verify_export` checks the checkpoint's signature, then hashes every entry's bytes again (never
trusting a listed leaf hash when the bytes are there), and recomputes the root from the leaves in
O(log n) memory with `CompactRange`: an entry deleted, altered, reordered or inserted anywhere
changes the root or the count, so the export no longer matches the signed checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Iterable, Iterator
from typing import Any, Final

from charter.transparency.checkpoint import SignedCheckpoint, verify_checkpoint
from charter.transparency.merkle import HASH_SIZE, CompactRange, leaf_hash
from charter.transparency.note import NoteVerifier

__all__ = [
    "EXPORT_FORMAT",
    "ExportMismatch",
    "ExportSummary",
    "MalformedExport",
    "export_lines",
    "verify_entries",
    "verify_export",
]

EXPORT_FORMAT: Final = "charter-log-export/v1"
"""The value of the first line's ``format``."""


class MalformedExport(ValueError):
    """The text is not an export (a line is not the JSON this format has)."""


class ExportMismatch(ValueError):
    """The export does not rebuild the tree its checkpoint signs.

    Attributes:
        index: The index of the first entry found wrong, or None when only the root or the count
            tells (an entry changed somewhere, or entries are missing or extra).
    """

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


@dataclasses.dataclass(frozen=True, slots=True)
class ExportSummary:
    """What a verified export holds.

    Attributes:
        checkpoint: The verified checkpoint the entries rebuild.
        entries: How many entries the export lists (the checkpoint's tree size).
        withheld: How many of them came as a leaf hash only.
    """

    checkpoint: SignedCheckpoint
    entries: int
    withheld: int


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedExport(f"{what} is a base64 string")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise MalformedExport(f"{what} is not standard base64") from None


def _object(line: str | bytes, number: int) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        # JSONDecodeError and UnicodeDecodeError are ValueErrors, and so is a number of more digits
        # than Python converts (sys.get_int_max_str_digits); RecursionError: a line nested too deep.
        raise MalformedExport(f"line {number} is not JSON") from None
    if not isinstance(value, dict):
        raise MalformedExport(f"line {number} is not a JSON object")
    return value


def export_lines(checkpoint: bytes, origin: str, entries: Iterable[tuple[int, bytes, bytes | None]]) -> Iterator[str]:
    """Write an export, line by line (each with its newline).

    Args:
        checkpoint: The signed checkpoint note the entries are checked against.
        origin: The log's origin.
        entries: ``(index, leaf hash, entry bytes or None when withheld)``, in index order from 0.

    Yields:
        The lines.
    """
    header = {"format": EXPORT_FORMAT, "origin": origin, "checkpoint": base64.b64encode(checkpoint).decode("ascii")}
    yield json.dumps(header) + "\n"
    for index, leaf, entry in entries:
        line: dict[str, Any] = {"index": index, "leaf_hash": base64.b64encode(leaf).decode("ascii")}
        if entry is not None:
            line["entry"] = base64.b64encode(entry).decode("ascii")
        yield json.dumps(line) + "\n"


def verify_export(
    lines: Iterable[str | bytes], *, verifiers: Iterable[NoteVerifier], origin: str | None = None
) -> ExportSummary:
    """Verify an export against the signed checkpoint it carries.

    Args:
        lines: The export's lines (a file opened in text or binary mode will do).
        verifiers: The log's keys (`charter.transparency.log_verifiers` of the key set, or keys
            pinned by the witness).
        origin: The origin expected; the export's own by default.

    Returns:
        The checkpoint and counts.

    Raises:
        MalformedExport: The text is not an export.
        charter.transparency.note.NoteError: The checkpoint's signature does not verify.
        charter.transparency.checkpoint.CheckpointError: The checkpoint is malformed or of
            another log.
        ExportMismatch: The entries do not rebuild the signed tree.
    """
    iterator = iter(lines)
    first = next(iterator, None)
    if first is None:
        raise MalformedExport("the export is empty")
    header = _object(first, 1)
    if header.get("format") != EXPORT_FORMAT or not isinstance(header.get("origin"), str):
        raise MalformedExport(f"the first line names the format {EXPORT_FORMAT} and the origin")
    signed = verify_checkpoint(
        _b64(header.get("checkpoint"), "the checkpoint"),
        origin=header["origin"] if origin is None else origin,
        verifiers=verifiers,
    )
    return verify_entries(_listed(iterator), signed)


def _listed(lines: Iterator[str | bytes]) -> Iterator[tuple[object, bytes | None, bytes | None]]:
    for number, line in enumerate(lines, start=2):
        if not line.strip():
            continue
        item = _object(line, number)
        listed = _b64(item["leaf_hash"], f"line {number}'s leaf hash") if "leaf_hash" in item else None
        entry = _b64(item["entry"], f"line {number}'s entry") if "entry" in item else None
        if entry is None and (listed is None or len(listed) != HASH_SIZE):
            raise MalformedExport(f"line {number} has neither an entry nor a 32-byte leaf hash")
        yield item.get("index"), listed, entry


def verify_entries(
    entries: Iterable[tuple[object, bytes | None, bytes | None]], signed: SignedCheckpoint
) -> ExportSummary:
    """Check that entries rebuild the tree of a verified checkpoint (the core of `verify_export`).

    Args:
        entries: ``(index, listed leaf hash or None, entry bytes or None)`` in index order from 0;
            an entry's bytes are hashed (a listed leaf hash must then agree); without bytes the
            listed leaf hash stands for the entry.
        signed: The checkpoint, verified (`verify_checkpoint`).

    Returns:
        The checkpoint and counts.

    Raises:
        ExportMismatch: The entries do not rebuild the signed tree.
    """
    size = signed.checkpoint.size
    compact = CompactRange()
    withheld = 0
    for index, listed, entry in entries:
        if index != compact.size:
            raise ExportMismatch(f"index {index!r} is listed where {compact.size} comes next", compact.size)
        if compact.size >= size:
            raise ExportMismatch(f"more entries are listed than the checkpoint's {size}", compact.size)
        if entry is not None:
            leaf = leaf_hash(entry)
            if listed is not None and listed != leaf:
                raise ExportMismatch(f"entry {index} does not hash to its listed leaf hash", compact.size)
        elif listed is not None:
            leaf = listed
            withheld += 1
        else:
            raise ExportMismatch(f"entry {index} has neither bytes nor a leaf hash", compact.size)
        compact.extend((leaf,))
    if compact.size != size:
        raise ExportMismatch(f"{compact.size} entries are listed; the checkpoint signs {size}")
    if compact.root() != signed.checkpoint.root_hash:
        raise ExportMismatch("the entries do not rebuild the root hash the checkpoint signs")
    return ExportSummary(signed, size, withheld)
