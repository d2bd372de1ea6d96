"""C2SP transparency log checkpoints (c2sp.org/tlog-checkpoint): the signed tree head.

A checkpoint is a signed note (`charter.transparency.note`) whose text is::

    <origin>
    <tree size, ASCII decimal, no leading zeros>
    <root hash, standard base64>
    [extension lines, each non-empty]

for example::

    charter.example/log
    1024
    2Nf8pnKTlbpmuH4V0lxVgNvg/OOzj8n5KHXKHJ3bm5s=

    — charter.example/log 3A9qK...

The log signs it with an Ed25519 note key whose name, by convention, is the origin; any
tool that reads C2SP checkpoints (Go's ``golang.org/x/mod/sumdb/note``, transparency-dev's
witnesses) verifies it. `verify_checkpoint` checks the signature *before* reading the text,
then the origin, and parses the tree head strictly.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Iterable
from typing import Final

from charter.transparency.merkle import EMPTY_ROOT, HASH_SIZE, MAX_TREE_SIZE
from charter.transparency.note import Note, NoteSigner, NoteVerifier, open_note, sign_note

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "MalformedCheckpoint",
    "SignedCheckpoint",
    "WrongOrigin",
    "sign_checkpoint",
    "verify_checkpoint",
]

_SIZE: Final = re.compile(r"0|[1-9][0-9]{0,18}")


class CheckpointError(ValueError):
    """A verified note is not an acceptable checkpoint: the base class of the errors here."""


class MalformedCheckpoint(CheckpointError):
    """The note text is not a tlog-checkpoint body."""


class WrongOrigin(CheckpointError):
    """The checkpoint is of another log than the one expected.

    Attributes:
        origin: The origin the checkpoint names.
    """

    def __init__(self, origin: str) -> None:
        super().__init__("the checkpoint is of another log")
        self.origin = origin


@dataclasses.dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tree head: the log's origin, the tree size and the root hash.

    Attributes:
        origin: The log's origin, a unique name such as ``charter.example/log``; not empty,
            no newline.
        size: The number of entries in the tree.
        root_hash: The 32-byte RFC 9162 root hash of the tree of ``size`` entries: for the empty
            tree, `EMPTY_ROOT` (the SHA-256 of the empty string, RFC 9162 §2.1.1) and nothing else.
        extensions: Extra lines after the root hash, opaque and each non-empty (C2SP
            advises against them; Charter writes none).

    Raises:
        MalformedCheckpoint: A field is out of its range, or the tree is empty and its root is
            not `EMPTY_ROOT`.
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for line in (self.origin, *self.extensions):
            if not isinstance(line, str) or not line or "\n" in line:
                raise MalformedCheckpoint("the origin and extension lines are non-empty single lines")
        if not isinstance(self.size, int) or isinstance(self.size, bool) or not 0 <= self.size < MAX_TREE_SIZE:
            raise MalformedCheckpoint("the tree size is an integer from 0 to 2**63 - 1")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_SIZE:
            raise MalformedCheckpoint("the root hash is 32 bytes")
        # Every tree extends the empty one, so no consistency proof is ever asked from size 0: a
        # signed empty tree with any other root would pass unchecked, whatever comes after it.
        if self.size == 0 and self.root_hash != EMPTY_ROOT:
            raise MalformedCheckpoint("the root of the empty tree is the SHA-256 of the empty string")

    def text(self) -> str:
        """The note text of the checkpoint (final newline included)."""
        root = base64.b64encode(self.root_hash).decode("ascii")
        return "".join(f"{line}\n" for line in (self.origin, str(self.size), root, *self.extensions))

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse a checkpoint's note text strictly.

        Args:
            text: The note text, ending with a newline.

        Returns:
            The checkpoint.

        Raises:
            MalformedCheckpoint: Fewer than three lines, an empty line, a size that is not
                canonical ASCII decimal, a root that is not canonical base64 of 32 bytes, or an
                empty tree whose root is not `EMPTY_ROOT`.
        """
        if not text.endswith("\n"):
            raise MalformedCheckpoint("a checkpoint text ends with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3 or not all(lines):
            raise MalformedCheckpoint("a checkpoint has an origin, a size and a root hash, none empty")
        origin, size, root, *extensions = lines
        if not _SIZE.fullmatch(size):
            raise MalformedCheckpoint("the tree size is ASCII decimal without leading zeros")
        try:
            root_hash = base64.b64decode(root.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise MalformedCheckpoint("the root hash is standard base64") from None
        if base64.b64encode(root_hash).decode("ascii") != root:
            raise MalformedCheckpoint("the root hash is canonical base64")
        return cls(origin, int(size), root_hash, tuple(extensions))


@dataclasses.dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint whose signature verified.

    Attributes:
        checkpoint: The tree head.
        note: The opened note: the verified and the unknown signatures (for example
            witnesses' cosignatures).
        data: The signed note exactly as received, to store and show to others.
    """

    checkpoint: Checkpoint
    note: Note
    data: bytes


def sign_checkpoint(checkpoint: Checkpoint, *signers: NoteSigner) -> bytes:
    """Sign a checkpoint as a note.

    Args:
        checkpoint: The tree head.
        *signers: The log's keys, at least one.

    Returns:
        The signed note, as UTF-8 bytes.

    Raises:
        charter.transparency.note.MalformedNote: No signer was given.
    """
    return sign_note(checkpoint.text(), *signers)


def verify_checkpoint(data: bytes, *, origin: str, verifiers: Iterable[NoteVerifier]) -> SignedCheckpoint:
    """Verify a signed checkpoint of the log ``origin``.

    The signature is verified first; only then is the text read (a note's text means
    nothing until a trusted key signed it).

    Args:
        data: The signed checkpoint note, as received.
        origin: The origin of the log expected. It may differ from the key name (Go's
            checksum database signs ``go.sum database tree`` with the key ``sum.golang.org``).
        verifiers: The log's keys (see `charter.transparency.log_verifiers`).

    Returns:
        The checkpoint, the opened note and the data.

    Raises:
        charter.transparency.note.NoteError: The note is malformed, a known key's signature
            fails, or no known key signed it.
        MalformedCheckpoint: The verified text is not a checkpoint.
        WrongOrigin: The checkpoint is of another log.
    """
    note = open_note(data, verifiers)
    checkpoint = Checkpoint.from_text(note.text)
    if checkpoint.origin != origin:
        raise WrongOrigin(checkpoint.origin)
    return SignedCheckpoint(checkpoint, note, bytes(data))
