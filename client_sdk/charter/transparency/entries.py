"""Log entries: their bytes, their leaf hashes, and the digests that name signed things.

A ``charter.v1.LogEntry`` is logged as bytes serialized once; its leaf hash is
``SHA-256(0x00 || bytes)``. `open_entry` checks those bytes against a leaf hash before it
parses them, never the other way round. Grants and decision receipts are named in the log by
`payload_digest`, the SHA-256 of their envelope's payload bytes exactly as signed.
"""

from __future__ import annotations

import hashlib
from typing import Final

from google.protobuf.message import DecodeError

from charter.transparency.merkle import HASH_SIZE, InvalidProof, leaf_hash
from charter.v1.envelope_pb2 import Envelope
from charter.v1.transparency_pb2 import LogEntry

__all__ = ["MAX_RECEIPT_ENTRIES", "open_entry", "payload_digest"]

MAX_RECEIPT_ENTRIES: Final = 1000
"""The most entries ``TransparencyService.GetInclusionProof`` answers for one receipt digest (the
first ones, in index order): a receipt's decisions, one per character it decided, or one for a
receipt that named none. ``Authorize`` decides at most 64 declared characters and every other
character its prompt names, so only a prompt naming more than 936 other characters decides more;
such a receipt's other entries are proved by index. An answer with more is not the log's
(``charter audit prove`` raises the alarm on it before verifying anything)."""


def payload_digest(envelope: Envelope) -> bytes:
    """Return the digest that names a grant, a decision receipt or a decision record in the log.

    It is the SHA-256 of the envelope's payload bytes exactly as signed (the serialized
    ``GrantClaims``, ``DecisionReceipt`` or ``DecisionRecordClaims``): ``GrantLogged.claims_digest``,
    ``DecisionLogged.receipt_digest`` and ``UsageLogged.receipt_digest`` hold it (the last the
    receipt's, or for a use decided offline the decision record's), and
    ``TransparencyService.GetInclusionProof`` finds a receipt's entries by it.

    Args:
        envelope: The grant, receipt or decision record envelope.

    Returns:
        The 32-byte digest.
    """
    return hashlib.sha256(envelope.payload).digest()


def open_entry(entry: bytes, expected_leaf_hash: bytes) -> LogEntry:
    """Check an entry's bytes against its leaf hash, then parse them.

    Args:
        entry: The serialized ``LogEntry`` as the log returned it.
        expected_leaf_hash: The leaf hash the entry must have (from a verified proof or a
            recomputed tree).

    Returns:
        The parsed entry.

    Raises:
        InvalidProof: The bytes do not hash to ``expected_leaf_hash``.
        ValueError: They do, but do not parse as a ``LogEntry`` with exactly one change.
    """
    if len(expected_leaf_hash) != HASH_SIZE or leaf_hash(entry) != expected_leaf_hash:
        raise InvalidProof("the entry does not hash to the leaf hash")
    try:
        parsed = LogEntry.FromString(entry)
    except DecodeError:
        raise ValueError("the entry is not a LogEntry") from None
    if parsed.WhichOneof("change") is None:
        raise ValueError("the entry records no change")
    return parsed
