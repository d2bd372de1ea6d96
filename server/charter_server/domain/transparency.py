"""Records of the transparency log: entries waiting for the sequencer, integrated entries,
checkpoints and the head of the tree. The entry bytes are a serialized ``charter.v1.LogEntry``,
made once when the change is logged and never re-serialized."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """An entry appended with the change it records, waiting to be integrated.

    ``rights_holder_id`` and ``licensee_id`` name the tenants that may read it ('' for none).
    """

    entry: bytes
    leaf_hash: bytes
    rights_holder_id: str = ""
    licensee_id: str = ""
    receipt_digest: bytes | None = None


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An integrated entry at its index."""

    index: int
    entry: bytes
    leaf_hash: bytes
    rights_holder_id: str
    licensee_id: str
    integrate_ms: int


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """A signed checkpoint: the note exactly as signed, the tree it signs, the key that signed it."""

    tree_size: int
    root_hash: bytes
    note: bytes
    key_id: str
    sign_ms: int


@dataclass(frozen=True, slots=True)
class LogHead:
    """The integrated tree (size and root) and which replica sequences until when (ms, database clock)."""

    tree_size: int
    root_hash: bytes
    lease_holder: str
    lease_until_ms: int
