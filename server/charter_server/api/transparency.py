"""TransparencyService servicer: checkpoints, proofs and entries of the transparency log."""

from __future__ import annotations

import grpc
from charter.v1 import transparency_pb2 as tp
from charter.v1 import transparency_service_pb2 as ts
from charter.v1 import transparency_service_pb2_grpc as ts_grpc
from google.protobuf import timestamp_pb2

from charter_server.api.context import current_principal
from charter_server.services.transparency.reader import ShownEntry, TransparencyLog


def _logged(shown: ShownEntry) -> tp.LoggedEntry:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMilliseconds(shown.entry.integrate_ms)
    return tp.LoggedEntry(
        index=shown.entry.index,
        leaf_hash=shown.entry.leaf_hash,
        integrate_time=stamp,
        entry=b"" if shown.withheld else shown.entry.entry,
        withheld=shown.withheld,
    )


class TransparencyServicer(ts_grpc.TransparencyServiceServicer):
    """The transparency log over gRPC."""

    def __init__(self, log: TransparencyLog, origin: str) -> None:
        self._log = log
        self._origin = origin

    def GetCheckpoint(
        self, request: ts.GetCheckpointRequest, context: grpc.ServicerContext
    ) -> ts.GetCheckpointResponse:
        checkpoint = self._log.checkpoint()
        return ts.GetCheckpointResponse(
            checkpoint=checkpoint.note,
            origin=self._origin,
            tree_size=checkpoint.tree_size,
            root_hash=checkpoint.root_hash,
            key_id=checkpoint.key_id,
        )

    def GetInclusionProof(
        self, request: ts.GetInclusionProofRequest, context: grpc.ServicerContext
    ) -> ts.GetInclusionProofResponse:
        chosen = request.WhichOneof("entry")
        inclusion = self._log.inclusion(
            current_principal(),
            index=request.index if chosen == "index" else None,
            leaf=request.leaf_hash if chosen == "leaf_hash" else None,
            receipt_digest=request.receipt_digest if chosen == "receipt_digest" else None,
            tree_size=request.tree_size,
        )
        return ts.GetInclusionProofResponse(
            tree_size=inclusion.tree_size,
            entries=[ts.IncludedEntry(entry=_logged(shown), proof=proof) for shown, proof in inclusion.entries],
            checkpoint=inclusion.checkpoint,
        )

    def GetConsistencyProof(
        self, request: ts.GetConsistencyProofRequest, context: grpc.ServicerContext
    ) -> ts.GetConsistencyProofResponse:
        return ts.GetConsistencyProofResponse(proof=self._log.consistency(request.from_tree_size, request.to_tree_size))

    def ListEntries(self, request: ts.ListEntriesRequest, context: grpc.ServicerContext) -> ts.ListEntriesResponse:
        page = self._log.list_entries(
            current_principal(),
            start_index=request.start_index,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return ts.ListEntriesResponse(
            entries=[_logged(shown) for shown in page.entries],
            next_page_token=page.next_page_token,
            tree_size=page.tree_size,
        )
