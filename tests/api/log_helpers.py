"""Helpers of the transparency log tests: stubs, the verified checkpoint, waiting for integration."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
from charter import transparency
from charter.v1 import authorization_service_pb2, authorization_service_pb2_grpc
from charter.v1 import transparency_pb2 as tp
from charter.v1 import transparency_service_pb2 as ts
from charter.v1 import transparency_service_pb2_grpc as ts_grpc

from .helpers import auth


def stub(channel: grpc.Channel) -> ts_grpc.TransparencyServiceStub:
    """The generated TransparencyService stub."""
    return ts_grpc.TransparencyServiceStub(channel)


def verified_checkpoint(channel: grpc.Channel, secret: str) -> transparency.SignedCheckpoint:
    """The latest checkpoint, verified with the log keys of the key set (as any witness would)."""
    answer = stub(channel).GetCheckpoint(ts.GetCheckpointRequest(), metadata=auth(secret))
    key_set = (
        authorization_service_pb2_grpc.AuthorizationServiceStub(channel)
        .GetKeySet(authorization_service_pb2.GetKeySetRequest(), metadata=auth(secret))
        .key_set
    )
    signed = transparency.verify_checkpoint(
        answer.checkpoint, origin=answer.origin, verifiers=transparency.log_verifiers(key_set)
    )
    assert (signed.checkpoint.size, signed.checkpoint.root_hash) == (answer.tree_size, answer.root_hash)
    return signed


def wait_for_size(
    channel: grpc.Channel, secret: str, size: int, timeout: float = 10.0
) -> transparency.SignedCheckpoint:
    """The first verified checkpoint of at least ``size`` entries (bounded wait)."""
    deadline = time.monotonic() + timeout
    while True:
        signed = verified_checkpoint(channel, secret)
        if signed.checkpoint.size >= size or time.monotonic() > deadline:
            assert signed.checkpoint.size >= size, f"the log did not reach {size} entries in {timeout} s"
            return signed
        time.sleep(0.05)


def all_entries(channel: grpc.Channel, secret: str, start: int = 0, page_size: int = 1000) -> tuple[list[Any], int]:
    """Every entry from ``start`` as a caller sees them, page by page, and the listing's tree size."""
    found: list[Any] = []
    token = ""
    while True:
        page = stub(channel).ListEntries(
            ts.ListEntriesRequest(start_index=start, page_size=page_size, page_token=token), metadata=auth(secret)
        )
        found.extend(page.entries)
        token = page.next_page_token
        if not token:
            return found, page.tree_size


def logged_since(
    channel: grpc.Channel, secret: str, before: int, count: int, wanted: Callable[[tp.LogEntry], bool]
) -> list[tp.LogEntry]:
    """The entries from index ``before`` that ``secret`` may read and ``wanted`` picks, once
    ``count`` of them are integrated (or after 10 s: the caller's assertions then say what is
    missing)."""
    wait_for_size(channel, secret, before + count)
    deadline = time.monotonic() + 10
    while True:
        logged = [
            transparency.open_entry(e.entry, e.leaf_hash)
            for e in all_entries(channel, secret, before)[0]
            if not e.withheld
        ]
        found = [e for e in logged if wanted(e)]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)
