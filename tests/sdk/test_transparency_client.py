"""The SDK and the transparency log: `license()` exposes the receipt's digest, and the client's
log calls (checkpoint, inclusion by receipt digest, consistency, listing) give what
`charter.transparency` verifies offline with the key set. Sync and asyncio share the calls."""

from __future__ import annotations

import time
from typing import Any

import pytest
from charter import AsyncClient, Client, Decision, InvalidArgumentError, NotFoundError, transparency
from charter.v1 import transparency_service_pb2

from ._live import Live, run_async
from ._scene import IMAGE, TEEN, Scene


def _proved(client: Client, digest: bytes, timeout: float = 10.0) -> transparency_service_pb2.GetInclusionProofResponse:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.get_inclusion_proof(receipt_digest=digest)
        except NotFoundError as error:
            assert error.reason == "LOG_ENTRY_NOT_INTEGRATED"
            assert time.monotonic() < deadline
            time.sleep(0.02)


def test_a_license_names_its_receipt_in_the_log_and_the_client_proves_it(generator: Client, scene: Scene) -> None:
    character = scene.character()

    with generator.license(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN) as granted:
        digest = granted.receipt_digest
    proof = _proved(generator, digest)
    verifiers = transparency.log_verifiers(generator.get_key_set())
    checkpoint = generator.get_checkpoint()
    signed = transparency.verify_checkpoint(proof.checkpoint, origin=checkpoint.origin, verifiers=verifiers)

    assert granted.receipt is not None
    assert digest == transparency.payload_digest(granted.receipt) == granted.decision.receipt_digest
    (included,) = proof.entries
    transparency.verify_inclusion(
        included.entry.leaf_hash,
        included.entry.index,
        proof.tree_size,
        list(included.proof),
        signed.checkpoint.root_hash,
    )
    assert transparency.open_entry(included.entry.entry, included.entry.leaf_hash).decision.character_id == character.id
    later = transparency.verify_checkpoint(checkpoint.checkpoint, origin=checkpoint.origin, verifiers=verifiers)
    small, large = sorted((signed.checkpoint, later.checkpoint), key=lambda c: c.size)
    transparency.verify_consistency(
        small.size,
        large.size,
        generator.get_consistency_proof(small.size, large.size),
        small.root_hash,
        large.root_hash,
    )


def test_an_offline_decision_has_no_receipt_digest() -> None:
    assert Decision(allowed=True, characters=(), offline=True).receipt_digest == b""


def test_the_client_checks_its_arguments_and_the_server_names_the_field(staff: Client) -> None:
    with pytest.raises(ValueError):
        staff.get_inclusion_proof(index=0, leaf_hash=b"x" * 32)
    with pytest.raises(InvalidArgumentError) as bad:
        staff.get_consistency_proof(2, 1)

    assert bad.value.reason == "INVALID_FIELD"


def test_the_async_client_lists_the_entries_the_checkpoint_covers(sdk_live: Live) -> None:
    async def scenario(client: AsyncClient) -> tuple[int, list[Any]]:
        checkpoint = await client.get_checkpoint()
        start = max(0, checkpoint.tree_size - 3)
        listed = [e async for e in client.list_log_entries(start_index=start, page_size=2)]
        return checkpoint.tree_size, listed

    size, listed = run_async(sdk_live.target, sdk_live.admin, scenario)

    assert [e.index for e in listed] == list(range(max(0, size - 3), size))
    assert all(transparency.leaf_hash(e.entry) == e.leaf_hash for e in listed)


def test_the_use_a_license_reports_is_logged_with_its_receipts_digest(generator: Client, scene: Scene) -> None:
    character = scene.character()
    start = generator.get_checkpoint().tree_size

    with generator.license(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN) as granted:
        pass
    assert granted.usage_results and all(r.accepted for r in granted.usage_results)

    deadline = time.monotonic() + 10
    while True:
        logged = [
            transparency.open_entry(e.entry, e.leaf_hash)
            for e in generator.list_log_entries(start_index=start)
            if not e.withheld
        ]
        usage = [e.usage for e in logged if e.WhichOneof("change") == "usage"]
        if usage or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    (record,) = [u for u in usage if u.receipt_digest == granted.receipt_digest]
    assert (record.character_id, record.licensee_id, record.uses) == (character.id, scene.licensee_id, 1)
    assert record.rights_holder_id == scene.rights_holder_id
