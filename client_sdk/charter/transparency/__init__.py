"""Charter's transparency log, verifiable offline: Merkle proofs, signed checkpoints, entries.

Every change to what may be rendered or to what is owed, every decision and every usage
record is appended to an RFC 9162 Merkle tree (SHA-256). The log signs checkpoints of the
tree in the C2SP tlog-checkpoint signed-note format with an Ed25519 key listed in the key set
(``AuthorizationService/GetKeySet``) with purpose ``PURPOSE_TRANSPARENCY_LOG``. With this
package and the key set alone, a rights holder, an auditor or any witness checks:

* that a checkpoint is the log's (`verify_checkpoint` with `log_verifiers`);
* that an entry is in the tree a checkpoint signs (`verify_inclusion`, or `verify_bundle`
  for a C2SP tlog-proof bundle);
* that a later checkpoint extends an earlier one, so nothing was removed or rewritten
  (`verify_consistency`);
* that an export of every entry rebuilds a checkpoint's root (`verify_export`, `CompactRange`).

The same pure code builds the log on the server: proofs from stored subtree hashes
(`inclusion_proof`, `consistency_proof`) and the C2SP tile layout (`charter.transparency.tiles`).

Example:
    ```python
    from charter import transparency

    verifiers = transparency.log_verifiers(client.get_key_set())
    signed = transparency.verify_checkpoint(note_bytes, origin="charter.example/log", verifiers=verifiers)
    transparency.verify_inclusion(
        transparency.leaf_hash(entry_bytes), index, signed.checkpoint.size, proof, signed.checkpoint.root_hash
    )
    ```
"""

from __future__ import annotations

from charter.transparency.bundle import MalformedBundle, ProofBundle, verify_bundle
from charter.transparency.checkpoint import (
    Checkpoint,
    CheckpointError,
    MalformedCheckpoint,
    SignedCheckpoint,
    WrongOrigin,
    sign_checkpoint,
    verify_checkpoint,
)
from charter.transparency.entries import MAX_RECEIPT_ENTRIES, open_entry, payload_digest
from charter.transparency.export import (
    ExportMismatch,
    ExportSummary,
    MalformedExport,
    export_lines,
    verify_entries,
    verify_export,
)
from charter.transparency.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    InvalidProof,
    Node,
    NodeReader,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_consistency_proof,
    root_from_inclusion_proof,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from charter.transparency.note import (
    InvalidNoteSignature,
    MalformedNote,
    Note,
    NoteError,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    UnverifiedNote,
    open_note,
    sign_note,
)
from charter.v1.signing_key_pb2 import KeySet, SigningKey

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_RECEIPT_ENTRIES",
    "Checkpoint",
    "CheckpointError",
    "CompactRange",
    "ExportMismatch",
    "ExportSummary",
    "InvalidNoteSignature",
    "InvalidProof",
    "MalformedBundle",
    "MalformedCheckpoint",
    "MalformedExport",
    "MalformedNote",
    "Node",
    "NodeReader",
    "Note",
    "NoteError",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "ProofBundle",
    "SignedCheckpoint",
    "UnverifiedNote",
    "WrongOrigin",
    "consistency_proof",
    "export_lines",
    "inclusion_proof",
    "leaf_hash",
    "log_verifiers",
    "node_hash",
    "open_entry",
    "open_note",
    "payload_digest",
    "root_from_consistency_proof",
    "root_from_inclusion_proof",
    "root_hash",
    "sign_checkpoint",
    "sign_note",
    "verify_bundle",
    "verify_checkpoint",
    "verify_consistency",
    "verify_entries",
    "verify_export",
    "verify_inclusion",
]


def log_verifiers(key_set: KeySet) -> list[NoteVerifier]:
    """Return the note verifiers of the transparency log's keys in a key set.

    The log's keys are those of purpose ``PURPOSE_TRANSPARENCY_LOG`` that are not revoked:
    the active one and retired ones (a checkpoint signed before a rotation still verifies).
    Each key's ``note_verifier_key`` is parsed and must carry the key's own public key.

    Args:
        key_set: The answer of ``AuthorizationService/GetKeySet``.

    Returns:
        The verifiers, in key set order; empty when the set holds no log key.

    Raises:
        MalformedNote: A log key's verifier key is malformed, or names another public key, or two
            log keys share an id (as `charter.grants.KeyRing.from_key_set` refuses for grant keys).
    """
    revoked = set(key_set.revoked_key_ids)
    verifiers: list[NoteVerifier] = []
    seen: set[str] = set()
    for key in key_set.keys:
        if key.purpose != SigningKey.PURPOSE_TRANSPARENCY_LOG:
            continue
        if key.key_id in seen:
            raise MalformedNote(f"two log keys share the id {key.key_id}")
        seen.add(key.key_id)
        if key.state == SigningKey.STATE_REVOKED or key.key_id in revoked:
            continue
        verifier = NoteVerifier.from_vkey(key.note_verifier_key)
        if verifier.public_key != key.public_key:
            raise MalformedNote(f"the verifier key of {key.key_id} names another public key")
        verifiers.append(verifier)
    return verifiers
