"""TransparencyService through gRPC on the session server: signed checkpoints every witness can
verify with the key set, entries appended in the transaction of a change and integrated within a
second, inclusion proofs by index, leaf hash and size, consistency proofs between checkpoints,
entry bodies by tenancy (hashes and proofs public), the log key rotated on its own, and the
answers about entries the log does not hold.

The tree is also rebuilt from the listed leaves with pymerkle, a Merkle tree implementation this
project did not write, and its root compared with the signed one.
"""

from __future__ import annotations

import os
import time
from typing import Any

import charter
import grpc
import pytest
from charter import transparency
from charter.grants import KeyRing
from charter.v1 import grant_service_pb2 as gs
from charter.v1 import key_service_pb2 as ks
from charter.v1 import signing_key_pb2
from charter.v1 import transparency_pb2 as tp
from charter.v1 import transparency_service_pb2 as ts
from charter_server.app import CharterServer
from pymerkle import InmemoryTree

from .character_helpers import new_holder
from .grant_helpers import Stubs, issue, key_set, new_licensee, opted_in_character, stubs
from .helpers import auth, failure, unique
from .log_helpers import all_entries, logged_since, stub, verified_checkpoint, wait_for_size

SigningKey = signing_key_pb2.SigningKey
NOT_FOUND = grpc.StatusCode.NOT_FOUND


@pytest.fixture(scope="module")
def api(channel: grpc.Channel) -> Stubs:
    return stubs(channel)


def append(server: CharterServer, count: int, *, rights_holder_id: str = "", licensee_id: str = "") -> list[bytes]:
    """Append ``count`` entries (rights holder renames) in one transaction, as a service does."""
    written = []
    with server.db.uow(write=True) as uow:
        for _ in range(count):
            message = tp.RightsHolderLogged(
                action=tp.RightsHolderLogged.ACTION_RENAMED,
                rights_holder_id=rights_holder_id or f"rh_{os.urandom(16).hex()}",
                display_name=f"Studio {unique()}",
            )
            pending = server.services.appender.append(
                uow, "rights_holder", message, rights_holder_id=rights_holder_id, licensee_id=licensee_id
            )
            written.append(pending.entry)
        uow.commit()
    return written


def prove(channel: grpc.Channel, secret: str, **request: Any) -> ts.GetInclusionProofResponse:
    return stub(channel).GetInclusionProof(ts.GetInclusionProofRequest(**request), metadata=auth(secret))


def proved(channel: grpc.Channel, secret: str, leaf: bytes, timeout: float = 10.0) -> ts.GetInclusionProofResponse:
    """The inclusion proof of a leaf, once its batch is integrated (bounded wait)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return prove(channel, secret, leaf_hash=leaf)
        except grpc.RpcError as error:
            got = failure(error)
            assert (got.code, got.reason) == (NOT_FOUND, "LOG_ENTRY_NOT_INTEGRATED")
            assert time.monotonic() < deadline, "the entry was not integrated in time"
            time.sleep(0.02)


def verifiers(api: Stubs, secret: str) -> list[transparency.NoteVerifier]:
    return transparency.log_verifiers(key_set(api, secret))


def test_every_role_reads_a_checkpoint_signed_by_the_log_key_of_the_key_set(
    channel: grpc.Channel, api: Stubs, keys: Any
) -> None:
    before = verified_checkpoint(channel, keys.auditor)

    seen = [verified_checkpoint(channel, secret) for secret in (keys.admin, keys.rights_holder, keys.generator)]

    assert all(s.checkpoint.size >= before.checkpoint.size for s in seen)
    log_keys = [k for k in key_set(api, keys.generator).keys if k.purpose == SigningKey.PURPOSE_TRANSPARENCY_LOG]
    assert [k.state for k in log_keys].count(SigningKey.STATE_ACTIVE) == 1
    # Grant and receipt verifiers never accept the log's key.
    ring = KeyRing.from_key_set(key_set(api, keys.generator))
    assert log_keys and not any(ring.get(k.key_id) for k in log_keys)


def test_appended_entries_are_integrated_and_proved_by_hash_and_index(
    channel: grpc.Channel, api: Stubs, server: CharterServer, keys: Any
) -> None:
    written = append(server, 5)
    leaves = [transparency.leaf_hash(e) for e in written]

    answers = [proved(channel, keys.auditor, leaf) for leaf in leaves]

    for entry, leaf, answer in zip(written, leaves, answers, strict=True):
        (included,) = answer.entries
        assert (included.entry.entry, included.entry.leaf_hash, included.entry.withheld) == (entry, leaf, False)
        # Asked without a size: the proof is for the latest checkpoint, which comes with it.
        signed = transparency.verify_checkpoint(
            answer.checkpoint, origin=server.settings.origin, verifiers=verifiers(api, keys.auditor)
        )
        assert signed.checkpoint.size == answer.tree_size
        transparency.verify_inclusion(
            leaf, included.entry.index, answer.tree_size, list(included.proof), signed.checkpoint.root_hash
        )
        by_index = prove(channel, keys.generator, index=included.entry.index, tree_size=answer.tree_size)
        assert list(by_index.entries[0].proof) == list(included.proof)
        assert by_index.checkpoint == b""  # a size was asked: no checkpoint comes with it
        assert transparency.open_entry(entry, leaf).rights_holder.action == tp.RightsHolderLogged.ACTION_RENAMED


def test_a_proof_for_an_earlier_size_verifies_against_that_checkpoint(
    channel: grpc.Channel, server: CharterServer, keys: Any
) -> None:
    (entry,) = append(server, 1)
    leaf = transparency.leaf_hash(entry)
    index = proved(channel, keys.auditor, leaf).entries[0].entry.index
    earlier = wait_for_size(channel, keys.auditor, index + 1)
    append(server, 3)
    wait_for_size(channel, keys.auditor, earlier.checkpoint.size + 3)

    answer = prove(channel, keys.auditor, leaf_hash=leaf, tree_size=earlier.checkpoint.size)

    assert answer.tree_size == earlier.checkpoint.size
    transparency.verify_inclusion(
        leaf, index, earlier.checkpoint.size, list(answer.entries[0].proof), earlier.checkpoint.root_hash
    )


def test_consistency_proofs_link_every_pair_of_checkpoints(
    channel: grpc.Channel, server: CharterServer, keys: Any
) -> None:
    checkpoints = [verified_checkpoint(channel, keys.auditor)]
    for count in (1, 7, 300):
        append(server, count)
        checkpoints.append(wait_for_size(channel, keys.auditor, checkpoints[-1].checkpoint.size + count))

    for old in checkpoints:
        for new in checkpoints:
            if old.checkpoint.size > new.checkpoint.size or old.checkpoint.size == 0:
                continue
            proof = stub(channel).GetConsistencyProof(
                ts.GetConsistencyProofRequest(from_tree_size=old.checkpoint.size, to_tree_size=new.checkpoint.size),
                metadata=auth(keys.generator),
            )
            transparency.verify_consistency(
                old.checkpoint.size,
                new.checkpoint.size,
                list(proof.proof),
                old.checkpoint.root_hash,
                new.checkpoint.root_hash,
            )


def test_the_listed_leaves_rebuild_the_signed_root_with_pymerkle(channel: grpc.Channel, keys: Any) -> None:
    entries, size = all_entries(channel, keys.auditor)
    signed = verified_checkpoint(channel, keys.auditor)
    assert size <= signed.checkpoint.size
    assert [e.index for e in entries] == list(range(size))

    other = InmemoryTree(algorithm="sha256")
    for listed in entries:
        # Hash the bytes as listed, never the listed hash: a rewritten entry must not pass.
        assert transparency.leaf_hash(listed.entry) == listed.leaf_hash
        other.append_entry(listed.entry)
    compact = transparency.CompactRange()
    compact.extend(e.leaf_hash for e in entries)

    proof = stub(channel).GetConsistencyProof(
        ts.GetConsistencyProofRequest(from_tree_size=size, to_tree_size=signed.checkpoint.size),
        metadata=auth(keys.auditor),
    )
    transparency.verify_consistency(
        size, signed.checkpoint.size, list(proof.proof), other.get_root(size), signed.checkpoint.root_hash
    )
    assert compact.root() == other.get_root(size)


def test_entry_bodies_only_to_the_tenants_they_concern(channel: grpc.Channel, server: CharterServer, keys: Any) -> None:
    mine = append(server, 2, rights_holder_id=keys.rights_holder_id)
    theirs = append(server, 2, licensee_id=keys.licensee_id)
    nobody = append(server, 1)
    for entry in (*mine, *theirs, *nobody):
        proved(channel, keys.auditor, transparency.leaf_hash(entry))
    start = proved(channel, keys.auditor, transparency.leaf_hash(mine[0])).entries[0].entry.index

    seen = {
        role: {e.leaf_hash: e for e in all_entries(channel, secret, start)[0]}
        for role, secret in (
            ("rights_holder", keys.rights_holder),
            ("generator", keys.generator),
            ("auditor", keys.auditor),
            ("admin", keys.admin),
        )
    }

    readable = {
        "rights_holder": set(mine),
        "generator": set(theirs),
        "auditor": {*mine, *theirs, *nobody},
        "admin": {*mine, *theirs, *nobody},
    }
    for role, listed in seen.items():
        for entry in (*mine, *theirs, *nobody):
            shown = listed[transparency.leaf_hash(entry)]  # every leaf hash is public
            if entry in readable[role]:
                assert (shown.entry, shown.withheld) == (entry, False), role
            else:
                assert (shown.entry, shown.withheld) == (b"", True), role
    # A withheld entry's inclusion is still proved to anyone, without its body.
    withheld = prove(channel, keys.generator, leaf_hash=transparency.leaf_hash(mine[0])).entries[0]
    assert (withheld.entry.entry, withheld.entry.withheld, len(withheld.proof) > 0) == (b"", True, True)


def test_listing_pages_end_at_the_size_the_first_page_saw(
    channel: grpc.Channel, server: CharterServer, keys: Any
) -> None:
    *_, last = append(server, 3)
    # Wait for these three themselves: the shared log is already larger than 3, and entries
    # appended before them may still be integrating.
    start = proved(channel, keys.auditor, transparency.leaf_hash(last)).entries[0].entry.index - 2
    first = stub(channel).ListEntries(
        ts.ListEntriesRequest(start_index=start, page_size=2), metadata=auth(keys.auditor)
    )
    append(server, 5)
    wait_for_size(channel, keys.auditor, first.tree_size + 5)

    second = stub(channel).ListEntries(
        ts.ListEntriesRequest(start_index=start, page_size=2, page_token=first.next_page_token),
        metadata=auth(keys.auditor),
    )

    # The second page ends where the first page's tree did, although the log has grown by 5 since.
    rest = list(range(start + 2, min(start + 4, first.tree_size)))
    assert [e.index for e in first.entries] == [start, start + 1]
    assert [e.index for e in second.entries] == rest
    assert second.tree_size == first.tree_size
    assert (second.next_page_token == "") == (start + 4 >= first.tree_size)


def test_unknown_and_not_yet_integrated_entries_are_not_found(
    channel: grpc.Channel, server: CharterServer, keys: Any
) -> None:
    unknown = refused(
        stub(channel).GetInclusionProof, ts.GetInclusionProofRequest(leaf_hash=os.urandom(32)), keys.generator
    )
    receipt = refused(
        stub(channel).GetInclusionProof, ts.GetInclusionProofRequest(receipt_digest=os.urandom(32)), keys.auditor
    )
    # An entry of a larger tree is not in the tree of an earlier size.
    (entry,) = append(server, 1)
    index = proved(channel, keys.auditor, transparency.leaf_hash(entry)).entries[0].entry.index
    earlier = (
        refused(
            stub(channel).GetInclusionProof,
            ts.GetInclusionProofRequest(leaf_hash=transparency.leaf_hash(entry), tree_size=index),
            keys.auditor,
        )
        if index > 0
        else None
    )

    assert (unknown.code, unknown.reason) == (NOT_FOUND, "LOG_ENTRY_NOT_FOUND")
    assert (receipt.code, receipt.reason) == (NOT_FOUND, "LOG_ENTRY_NOT_FOUND")
    assert earlier is None or (earlier.code, earlier.reason) == (NOT_FOUND, "LOG_ENTRY_NOT_FOUND")


def test_the_log_key_rotates_on_its_own_and_old_checkpoints_still_verify(
    channel: grpc.Channel, api: Stubs, server: CharterServer, keys: Any
) -> None:
    before = verified_checkpoint(channel, keys.auditor)
    grant_key = [
        k.key_id
        for k in key_set(api, keys.auditor).keys
        if k.purpose == SigningKey.PURPOSE_GRANTS and k.state == SigningKey.STATE_ACTIVE
    ]

    rotated = api.keys.RotateSigningKey(
        ks.RotateSigningKeyRequest(purpose=SigningKey.PURPOSE_TRANSPARENCY_LOG), metadata=auth(keys.admin)
    )
    after = wait_for_size(channel, keys.auditor, before.checkpoint.size + 2)  # the rotation is logged

    assert rotated.active_key.purpose == SigningKey.PURPOSE_TRANSPARENCY_LOG
    assert rotated.retired_key.state == SigningKey.STATE_RETIRED
    assert rotated.active_key.note_verifier_key.startswith(server.settings.origin + "+")
    # The new checkpoint is signed by the new key; the old one still verifies with the retired key.
    assert [s.key_id for s in after.note.signatures] == [
        transparency.NoteVerifier.from_vkey(rotated.active_key.note_verifier_key).key_id
    ]
    transparency.verify_checkpoint(before.data, origin=server.settings.origin, verifiers=verifiers(api, keys.auditor))
    assert grant_key == [
        k.key_id
        for k in key_set(api, keys.auditor).keys
        if k.purpose == SigningKey.PURPOSE_GRANTS and k.state == SigningKey.STATE_ACTIVE
    ]
    logged = [
        transparency.open_entry(e.entry, e.leaf_hash)
        for e in all_entries(channel, keys.auditor, before.checkpoint.size)[0]
    ]
    keys_logged = [e for e in logged if e.WhichOneof("change") == "signing_key"]
    assert [(e.signing_key.action, e.signing_key.key_id, e.actor_key_id) for e in keys_logged[-2:]] == [
        (tp.SigningKeyLogged.ACTION_RETIRED, rotated.retired_key.key_id, keys.admin_key_id),
        (tp.SigningKeyLogged.ACTION_ACTIVATED, rotated.active_key.key_id, keys.admin_key_id),
    ]
    assert keys_logged[-1].signing_key.purpose == SigningKey.PURPOSE_TRANSPARENCY_LOG


def refused(call: Any, request: Any, secret: str) -> Any:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, metadata=auth(secret))
    return failure(raised.value)


def test_catalogue_and_grant_changes_are_logged_with_what_they_changed(
    channel: grpc.Channel, api: Stubs, keys: Any, clock: Any
) -> None:
    before = verified_checkpoint(channel, keys.auditor).checkpoint.size
    holder = new_holder(api.catalog, api.access, keys.admin)
    character = opted_in_character(api, holder)
    licensee_id = new_licensee(api, keys.admin)
    grant = issue(api, keys.admin, clock, character, licensee_id)
    api.grants.SuspendGrant(gs.SuspendGrantRequest(id=grant.id, reason="audit"), metadata=auth(keys.admin))
    api.grants.RevokeGrant(gs.RevokeGrantRequest(id=grant.id, reason="breach"), metadata=auth(keys.admin))
    mine = logged_since(channel, keys.auditor, before, 7, lambda e: _holder_of(e) == holder.id)

    kinds = [(e.WhichOneof("change"), _action(e)) for e in mine]
    assert kinds[:2] == [("rights_holder", "ACTION_CREATED"), ("api_key", "ACTION_CREATED")]
    assert ("character", "ACTION_CREATED") in kinds
    assert ("terms", "ACTION_OPTED_IN") in kinds
    grants = [e.grant for e in mine if e.WhichOneof("change") == "grant"]
    assert [(g.action, g.reason) for g in grants] == [
        (tp.GrantLogged.ACTION_ISSUED, ""),
        (tp.GrantLogged.ACTION_SUSPENDED, "audit"),
        (tp.GrantLogged.ACTION_REVOKED, "breach"),
    ]
    assert grants[0].claims_digest == transparency.payload_digest(grant.envelope)
    assert grants[0].licensee_id == licensee_id
    opted = next(e.terms for e in mine if e.WhichOneof("change") == "terms")
    assert (opted.character_id, opted.terms_version, opted.terms.permitted_use_types != []) == (character, 1, True)
    # Each entry names the API key whose call made the change.
    actors = {(e.WhichOneof("change"), e.actor_key_id) for e in mine}
    admin_id, holder_key_id = keys.admin.partition(".")[0], holder.secret.partition(".")[0]
    assert {("rights_holder", admin_id), ("grant", admin_id), ("character", holder_key_id)} <= actors
    assert all(actor for _, actor in actors)


def _holder_of(entry: tp.LogEntry) -> str:
    change = getattr(entry, entry.WhichOneof("change") or "")
    return str(getattr(change, "rights_holder_id", ""))


def _action(entry: tp.LogEntry) -> str:
    change = getattr(entry, entry.WhichOneof("change") or "")
    value = getattr(change, "action", 0)
    return str(type(change).Action.Name(value)) if hasattr(type(change), "Action") else ""


def test_licensee_changes_and_licensee_keys_are_logged_for_the_licensee(
    channel: grpc.Channel, server: CharterServer, keys: Any
) -> None:
    before = verified_checkpoint(channel, keys.auditor).checkpoint.size
    with charter.Client(f"127.0.0.1:{server.port}", api_key=keys.admin) as admin:
        licensee = admin.create_licensee(
            display_name=f"Logged App {unique()}", contact_email="ops@app.example", platform="web"
        )
        admin.update_licensee(licensee.id, display_name="Renamed")  # changes nothing that may be rendered
        admin.update_licensee(licensee.id, platform="mobile")
        first = admin.register_licensee_key(b"\x01" * 32, display_name="edge", licensee_id=licensee.id).key
        second = admin.register_licensee_key(
            b"\x02" * 32, display_name="edge 2", licensee_id=licensee.id, replaces_key_id=first.key_id
        ).key
        admin.revoke_licensee_key(second.key_id, reason="leaked")
        admin.archive_licensee(licensee.id)
    mine = logged_since(channel, keys.auditor, before, 7, lambda e: _licensee_of(e) == licensee.id)

    kinds = [(e.WhichOneof("change"), _action(e)) for e in mine]
    assert [k for k in kinds if k[0] == "licensee"] == [
        ("licensee", "ACTION_CREATED"),
        ("licensee", "ACTION_PLATFORM_CHANGED"),
        ("licensee", "ACTION_ARCHIVED"),
    ]
    logged_keys = [e.licensee_key for e in mine if e.WhichOneof("change") == "licensee_key"]
    assert [(k.key_id, k.action, k.public_key, k.reason) for k in logged_keys] == [
        (first.key_id, tp.LicenseeKeyLogged.ACTION_REGISTERED, b"\x01" * 32, ""),
        (first.key_id, tp.LicenseeKeyLogged.ACTION_RETIRED, b"\x01" * 32, ""),
        (second.key_id, tp.LicenseeKeyLogged.ACTION_REGISTERED, b"\x02" * 32, ""),
        (second.key_id, tp.LicenseeKeyLogged.ACTION_REVOKED, b"\x02" * 32, "leaked"),
    ]
    platform = next(e.licensee for e in mine if _action(e) == "ACTION_PLATFORM_CHANGED")
    assert (platform.platform, platform.display_name) == ("mobile", "Renamed")


def _licensee_of(entry: tp.LogEntry) -> str:
    change = getattr(entry, entry.WhichOneof("change") or "")
    return str(getattr(change, "licensee_id", ""))
