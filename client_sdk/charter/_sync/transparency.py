# Generated from charter/_async/transparency.py by client_sdk/generate_sync.py; do not edit.
"""The transparency log: checkpoints, inclusion and consistency proofs, entries (TransparencyService).

The answers are not to be trusted as they are: verify them with `charter.transparency`
(`verify_checkpoint` with the log keys of `get_key_set`, then `verify_inclusion` or
`verify_consistency`), or let ``charter audit`` do it.
"""

from __future__ import annotations

from collections.abc import Iterator

from charter._sync._transport import Transport
from charter.v1 import transparency_pb2, transparency_service_pb2


class TransparencyCalls(Transport):
    """Reading and proving the transparency log."""

    def get_checkpoint(self, *, timeout: float | None = None) -> transparency_service_pb2.GetCheckpointResponse:
        """Returns the log's latest signed checkpoint. Allowed roles: all.

        Args:
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The response: the signed note (`checkpoint`, verify it before trusting the rest), the
            log's `origin`, the `tree_size`, the `root_hash` and the signing `key_id`.

        Raises:
            DataLossError: If the server's stored log no longer recomputes to what it signed
                (`TRANSPARENCY_LOG_INCONSISTENT`).
            CharterError: For any other failure.
        """
        response: transparency_service_pb2.GetCheckpointResponse = self._unary(
            self._transparency.GetCheckpoint, transparency_service_pb2.GetCheckpointRequest(), timeout
        )
        return response

    def get_inclusion_proof(
        self,
        *,
        index: int | None = None,
        leaf_hash: bytes | None = None,
        receipt_digest: bytes | None = None,
        tree_size: int = 0,
        timeout: float | None = None,
    ) -> transparency_service_pb2.GetInclusionProofResponse:
        """Returns the inclusion proof of one entry, or of every entry of a decision receipt. Allowed roles: all.

        Choose exactly one of `index`, `leaf_hash` and `receipt_digest` (a `Decision`'s or a
        `License`'s `receipt_digest`: one entry per character decided).

        Args:
            index: The entry's index in the log.
            leaf_hash: The entry's 32-byte leaf hash.
            receipt_digest: The 32-byte digest of a decision receipt.
            tree_size: The tree to prove inclusion in; 0 for the latest checkpoint's, which
                then comes with the response.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The response: the `tree_size`, each entry with its `proof`, and the signed
            `checkpoint` when `tree_size` was 0. Entry bodies the caller may not read are
            withheld; their leaf hashes and proofs are not.

        Raises:
            ValueError: If not exactly one of `index`, `leaf_hash` and `receipt_digest` is given.
            InvalidArgumentError: If a size or index is out of range or a hash is not 32 bytes.
            NotFoundError: If the log holds no such entry (`LOG_ENTRY_NOT_FOUND`), or not yet
                (`LOG_ENTRY_NOT_INTEGRATED`: retry within a second).
            CharterError: For any other failure.
        """
        chosen = [
            name
            for name, value in (("index", index), ("leaf_hash", leaf_hash), ("receipt_digest", receipt_digest))
            if value is not None
        ]
        if len(chosen) != 1:
            raise ValueError("give exactly one of index, leaf_hash and receipt_digest")
        request = transparency_service_pb2.GetInclusionProofRequest(tree_size=tree_size)
        if index is not None:
            request.index = index
        elif leaf_hash is not None:
            request.leaf_hash = leaf_hash
        elif receipt_digest is not None:
            request.receipt_digest = receipt_digest
        response: transparency_service_pb2.GetInclusionProofResponse = self._unary(
            self._transparency.GetInclusionProof, request, timeout
        )
        return response

    def get_consistency_proof(
        self, from_tree_size: int, to_tree_size: int, *, timeout: float | None = None
    ) -> list[bytes]:
        """Returns the proof that the tree of `to_tree_size` extends that of `from_tree_size`. Allowed roles: all.

        Args:
            from_tree_size: The smaller size, at least 1.
            to_tree_size: The larger size, at most the latest checkpoint's.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The RFC 9162 consistency proof (empty when the sizes are equal).

        Raises:
            InvalidArgumentError: If a size is out of range or the sizes are inverted.
            CharterError: For any other failure.
        """
        response: transparency_service_pb2.GetConsistencyProofResponse = self._unary(
            self._transparency.GetConsistencyProof,
            transparency_service_pb2.GetConsistencyProofRequest(
                from_tree_size=from_tree_size, to_tree_size=to_tree_size
            ),
            timeout,
        )
        return list(response.proof)

    def list_log_entries(
        self, *, start_index: int = 0, page_size: int = 0, timeout: float | None = None
    ) -> Iterator[transparency_pb2.LoggedEntry]:
        """Lists the log's entries in index order from `start_index`. Allowed roles: all.

        The listing ends at the size of the checkpoint its first page saw, so it ends even
        while the log grows. Every leaf hash is listed; an entry's body only to whom it
        concerns (admins and auditors read every entry) and is withheld otherwise.

        Args:
            start_index: The first index listed.
            page_size: Entries per call; 0 for the server's default (at most 1000).
            timeout: The deadline of each page's call in seconds.

        Returns:
            An iterator over the entries. Calls happen during iteration, so errors are
            raised from the iteration too.

        Raises:
            CharterError: If a page cannot be fetched.
        """
        request = transparency_service_pb2.ListEntriesRequest(start_index=start_index, page_size=page_size)
        return self._paginate(self._transparency.ListEntries, request, lambda r: r.entries, timeout)
