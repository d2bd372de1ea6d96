"""Decision receipts in the transparency log: each receipt names the log, is appended off the
hot path (buffered, in batches) as one entry per character decided, and is proved by its digest
once integrated; each rights holder reads only the entries about its own characters, the
licensee all of its own, and a retried call is not logged twice.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import grpc
import pytest
from charter import transparency
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import decision_pb2, terms_pb2
from charter.v1 import transparency_service_pb2 as ts
from charter_server.app import CharterServer

from .character_helpers import new_holder
from .grant_helpers import Stubs, generator_key, issue, key_set, new_licensee, opted_in_character, stubs
from .helpers import auth, failure
from .log_helpers import stub


@pytest.fixture(scope="module")
def api(channel: grpc.Channel) -> Stubs:
    return stubs(channel)


def context() -> decision_pb2.UseContext:
    return decision_pb2.UseContext(
        use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION, content_rating=terms_pb2.CONTENT_RATING_ALL_AGES
    )


def proved(channel: grpc.Channel, secret: str, digest: bytes, timeout: float = 10.0) -> ts.GetInclusionProofResponse:
    """The inclusion proof of a receipt's entries once integrated (bounded wait)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response: ts.GetInclusionProofResponse = stub(channel).GetInclusionProof(
                ts.GetInclusionProofRequest(receipt_digest=digest), metadata=auth(secret)
            )
            return response
        except grpc.RpcError as error:
            got = failure(error)
            assert (got.code, got.reason) == (grpc.StatusCode.NOT_FOUND, "LOG_ENTRY_NOT_INTEGRATED")
            assert time.monotonic() < deadline, "the receipt was not integrated in time"
            time.sleep(0.02)


def test_a_receipt_names_the_log_and_its_entries_are_proved_by_its_digest(
    channel: grpc.Channel, api: Stubs, server: CharterServer, keys: Any, clock: Any
) -> None:
    owner = new_holder(api.catalog, api.access, keys.admin)
    other = new_holder(api.catalog, api.access, keys.admin)
    licensee_id = new_licensee(api, keys.admin)
    generator = generator_key(api, keys.admin, licensee_id)
    granted, refused_character = opted_in_character(api, owner), opted_in_character(api, other)
    grant = issue(api, keys.admin, clock, granted, licensee_id)

    answer = api.authz.Authorize(
        az.AuthorizeRequest(character_ids=[granted, refused_character], context=context()),
        metadata=auth(generator),
    )
    digest = transparency.payload_digest(answer.receipt)
    proof = proved(channel, keys.auditor, digest)

    assert answer.decision.log_origin == server.settings.origin
    signed = transparency.verify_checkpoint(
        proof.checkpoint,
        origin=answer.decision.log_origin,
        verifiers=transparency.log_verifiers(key_set(api, keys.auditor)),
    )
    decided = {}
    for included in proof.entries:
        transparency.verify_inclusion(
            included.entry.leaf_hash,
            included.entry.index,
            signed.checkpoint.size,
            list(included.proof),
            signed.checkpoint.root_hash,
        )
        entry = transparency.open_entry(included.entry.entry, included.entry.leaf_hash)
        decided[entry.decision.character_id] = entry
    assert set(decided) == {granted, refused_character}
    allowed, denied = decided[granted], decided[refused_character]
    assert (allowed.decision.allowed, allowed.decision.grant_id, allowed.decision.rights_holder_id) == (
        True,
        grant.id,
        owner.id,
    )
    assert (denied.decision.allowed, denied.decision.grant_id, denied.decision.rights_holder_id) == (
        False,
        "",
        other.id,
    )
    for entry in decided.values():
        assert (entry.decision.receipt_id, entry.decision.receipt_digest) == (answer.decision.receipt_id, digest)
        assert entry.decision.licensee_id == licensee_id
        assert entry.event_time == answer.decision.decide_time

    # Each rights holder reads the entry about its own character; the licensee reads both.
    owner_view = stub(channel).GetInclusionProof(
        ts.GetInclusionProofRequest(receipt_digest=digest), metadata=auth(owner.secret)
    )
    withheld = {e.entry.leaf_hash: e.entry.withheld for e in owner_view.entries}
    assert withheld == {
        next(e.entry.leaf_hash for e in proof.entries if decided_character(e) == granted): False,
        next(e.entry.leaf_hash for e in proof.entries if decided_character(e) == refused_character): True,
    }
    generator_view = stub(channel).GetInclusionProof(
        ts.GetInclusionProofRequest(receipt_digest=digest), metadata=auth(generator)
    )
    assert [e.entry.withheld for e in generator_view.entries] == [False, False]
    stranger = stub(channel).GetInclusionProof(
        ts.GetInclusionProofRequest(receipt_digest=digest), metadata=auth(keys.generator)
    )
    assert [e.entry.withheld for e in stranger.entries] == [True, True]


def decided_character(included: Any) -> str:
    return transparency.open_entry(included.entry.entry, included.entry.leaf_hash).decision.character_id


def test_a_receipt_that_named_no_character_is_one_entry(channel: grpc.Channel, api: Stubs, keys: Any) -> None:
    answer = api.authz.Authorize(
        az.AuthorizeRequest(prompt=f"a landscape {uuid.uuid4().hex}", context=context()), metadata=auth(keys.generator)
    )

    proof = proved(channel, keys.generator, transparency.payload_digest(answer.receipt))

    (included,) = proof.entries
    entry = transparency.open_entry(included.entry.entry, included.entry.leaf_hash)
    assert (entry.decision.character_id, entry.decision.allowed, entry.decision.licensee_id) == (
        "",
        True,
        keys.licensee_id,
    )


def pending(server: CharterServer) -> int:
    with server.db.uow() as uow:
        return uow.log.pending_count()


def test_a_retried_call_answered_with_the_first_receipt_is_logged_once(
    channel: grpc.Channel, api: Stubs, server: CharterServer, keys: Any, clock: Any
) -> None:
    owner = new_holder(api.catalog, api.access, keys.admin)
    licensee_id = new_licensee(api, keys.admin)
    generator = generator_key(api, keys.admin, licensee_id)
    limited = terms_pb2.Terms(
        permitted_use_types=[terms_pb2.USE_TYPE_IMAGE_GENERATION],
        max_content_rating=terms_pb2.CONTENT_RATING_TEEN,
        daily_quota=5,
    )
    character = opted_in_character(api, owner, limited)
    issue(api, keys.admin, clock, character, licensee_id)
    request = az.AuthorizeRequest(character_ids=[character], context=context(), request_id=f"r-{uuid.uuid4().hex}")

    first = api.authz.Authorize(request, metadata=auth(generator))
    again = api.authz.Authorize(request, metadata=auth(generator))
    assert server.flush_log(60)  # whatever was buffered is pending now
    deadline = time.monotonic() + 10
    while pending(server) and time.monotonic() < deadline:
        time.sleep(0.02)
    proof = proved(channel, keys.auditor, transparency.payload_digest(first.receipt))

    assert again.receipt == first.receipt
    assert len(proof.entries) == 1
