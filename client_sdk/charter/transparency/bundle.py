"""C2SP tlog-proof bundles (c2sp.org/tlog-proof): an entry's inclusion, verifiable offline.

A bundle is the entry's index, its inclusion proof and the signed checkpoint the proof
leads to, as text::

    c2sp.org/tlog-proof@v1
    [extra <base64 opaque data>]
    index <index>
    <base64 proof hash, one per line, from the leaf's sibling up>

    <the checkpoint note, verbatim>

With the log's origin and key and the entry (or its leaf hash), anyone can check that the
entry is in the log without asking the log again; `verify_bundle` does.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Iterable
from typing import Final

from charter.transparency.checkpoint import SignedCheckpoint, verify_checkpoint
from charter.transparency.merkle import HASH_SIZE, MAX_TREE_SIZE, verify_inclusion
from charter.transparency.note import MAX_NOTE_BYTES, NoteVerifier

__all__ = ["MalformedBundle", "ProofBundle", "verify_bundle"]

_HEADER: Final = "c2sp.org/tlog-proof@v1"
_INDEX: Final = re.compile(r"index (0|[1-9][0-9]{0,18})")
# A proof has at most 63 hashes (trees below 2**63 leaves); anything longer is not a proof.
_MAX_PROOF: Final = 63


class MalformedBundle(ValueError):
    """The text is not a tlog-proof bundle."""


@dataclasses.dataclass(frozen=True, slots=True)
class ProofBundle:
    """An entry's index, inclusion proof and the signed checkpoint it leads to.

    Attributes:
        index: The entry's index in the log.
        proof: The audit path, 32-byte hashes.
        checkpoint: The signed checkpoint note, verbatim.
        extra: Opaque application data; unauthenticated, so never trust it.
    """

    index: int
    proof: tuple[bytes, ...]
    checkpoint: bytes
    extra: bytes | None = None

    def to_text(self) -> bytes:
        """The bundle in the tlog-proof text format, as UTF-8 bytes.

        Raises:
            MalformedBundle: The index is out of range or a hash is not 32 bytes.
        """
        if not 0 <= self.index < MAX_TREE_SIZE or any(len(h) != HASH_SIZE for h in self.proof):
            raise MalformedBundle("the index is from 0 to 2**63 - 1 and the proof holds 32-byte hashes")
        lines = [_HEADER]
        if self.extra is not None:
            lines.append("extra " + base64.b64encode(self.extra).decode("ascii"))
        lines.append(f"index {self.index}")
        lines.extend(base64.b64encode(h).decode("ascii") for h in self.proof)
        return ("\n".join(lines) + "\n\n").encode("ascii") + self.checkpoint

    @classmethod
    def from_text(cls, data: bytes) -> ProofBundle:
        """Parse a tlog-proof bundle (the checkpoint is not verified here).

        Args:
            data: The bundle as bytes.

        Returns:
            The bundle.

        Raises:
            MalformedBundle: The text is not a tlog-proof bundle.
        """
        if not isinstance(data, bytes | bytearray) or len(data) > MAX_NOTE_BYTES + 8192:
            raise MalformedBundle("a bundle is a short text")
        head, separator, checkpoint = bytes(data).partition(b"\n\n")
        if not separator or not checkpoint:
            raise MalformedBundle("a bundle has a blank line before its checkpoint")
        try:
            lines = head.decode("ascii").split("\n")
        except UnicodeDecodeError:
            raise MalformedBundle("a bundle's proof lines are ASCII") from None
        if lines[0] != _HEADER:
            raise MalformedBundle(f"a bundle starts with {_HEADER}")
        position, extra = 1, None
        try:
            if len(lines) > 1 and lines[1].startswith("extra "):
                extra = _decode(lines[1].removeprefix("extra "))
                position = 2
            index = _INDEX.fullmatch(lines[position]) if len(lines) > position else None
            if index is None:
                raise MalformedBundle("a bundle names the entry's index")
            proof = tuple(_decode(line) for line in lines[position + 1 :])
        except (binascii.Error, UnicodeEncodeError):
            raise MalformedBundle("a bundle's data is standard base64") from None
        if len(proof) > _MAX_PROOF or any(len(h) != HASH_SIZE for h in proof):
            raise MalformedBundle("a bundle's proof holds at most 63 hashes of 32 bytes")
        return cls(int(index.group(1)), proof, checkpoint, extra)


def _decode(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def verify_bundle(
    data: bytes | ProofBundle, leaf: bytes, *, origin: str, verifiers: Iterable[NoteVerifier]
) -> SignedCheckpoint:
    """Verify a tlog-proof bundle: its checkpoint's signature, origin, and the entry's inclusion.

    Args:
        data: The bundle, as text or parsed.
        leaf: The entry's leaf hash (`charter.transparency.leaf_hash` of the entry's bytes).
        origin: The log's origin.
        verifiers: The log's keys.

    Returns:
        The verified checkpoint the entry is included in.

    Raises:
        MalformedBundle: The bundle is malformed.
        charter.transparency.note.NoteError: The checkpoint's signature does not verify.
        charter.transparency.checkpoint.CheckpointError: The checkpoint is malformed or of
            another log.
        charter.transparency.merkle.InvalidProof: The entry is not at that index in that tree.
    """
    bundle = data if isinstance(data, ProofBundle) else ProofBundle.from_text(data)
    signed = verify_checkpoint(bundle.checkpoint, origin=origin, verifiers=verifiers)
    tree = signed.checkpoint
    verify_inclusion(leaf, bundle.index, tree.size, bundle.proof, tree.root_hash)
    return signed
