"""Signing keys through gRPC: one active key, rotation (old grants keep verifying, new ones are
signed by the new key), revocation (every grant the key signed fails with KEY_REVOKED) and the
key set every caller may read.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from charter import envelope as dsse
from charter.transparency import NoteVerifier
from charter.v1 import key_service_pb2 as ks

from .character_helpers import refused
from .grant_helpers import (
    KEY_ACTIVE,
    KEY_RETIRED,
    KEY_REVOKED,
    SigningKey,
    Stubs,
    Verdict,
    World,
    active_key,
    issue,
    key_set,
    new_world,
    rotate,
    signing_keys,
    stubs,
    verdict,
)
from .helpers import auth

FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


@pytest.fixture(scope="module")
def api(channel: grpc.Channel) -> Stubs:
    return stubs(channel)


@pytest.fixture(scope="module")
def world(api: Stubs, keys: Any) -> World:
    return new_world(api, keys.admin)


def grant_keys(keys: Any) -> list[SigningKey]:
    """The keys that sign grants and receipts (the log's keys are rotated on their own)."""
    return [k for k in keys if k.purpose == SigningKey.PURPOSE_GRANTS]


def revoke_key(api: Stubs, admin: str, key_id: str, reason: str = "compromised") -> ks.RevokeSigningKeyResponse:
    return api.keys.RevokeSigningKey(ks.RevokeSigningKeyRequest(key_id=key_id, reason=reason), metadata=auth(admin))


def test_exactly_one_key_per_purpose_is_active_and_only_public_halves_are_listed(api: Stubs, keys: Any) -> None:
    listed = signing_keys(api, keys.admin)
    as_auditor = signing_keys(api, keys.auditor)

    active = [k.purpose for k in listed if k.state == KEY_ACTIVE]
    assert sorted(active) == [SigningKey.PURPOSE_GRANTS, SigningKey.PURPOSE_TRANSPARENCY_LOG]
    assert as_auditor == listed
    for key in listed:
        assert key.key_id.startswith("sk_") and len(key.key_id) == 19
        assert (key.algorithm, len(key.public_key)) == ("ed25519", 32)
        if key.purpose == SigningKey.PURPOSE_GRANTS:
            assert key.note_verifier_key == ""
        else:
            # The log key's C2SP verifier key names it and its public key.
            verifier = NoteVerifier.from_vkey(key.note_verifier_key)
            assert verifier.public_key == key.public_key


def test_rotation_makes_a_new_active_key_and_retires_the_previous_one(api: Stubs, keys: Any) -> None:
    previous = active_key(api, keys.admin)
    version = key_set(api, keys.auditor).version

    rotated = rotate(api, keys.admin)

    new, retired = rotated.active_key, rotated.retired_key
    listed = signing_keys(api, keys.admin)
    published = {k.key_id: k for k in key_set(api, keys.generator).keys}
    assert (new.state, retired.state, retired.key_id) == (KEY_ACTIVE, KEY_RETIRED, previous.key_id)
    assert new.key_id != previous.key_id and new.public_key != previous.public_key
    assert retired.HasField("retire_time") and not retired.HasField("revoke_time")
    assert retired.retire_time.ToNanoseconds() <= new.activate_time.ToNanoseconds()
    assert not new.HasField("retire_time")
    assert listed[0] == new
    assert [k.key_id for k in grant_keys(listed) if k.state == KEY_ACTIVE] == [new.key_id]
    assert (published[new.key_id], published[retired.key_id]) == (new, retired)
    assert key_set(api, keys.auditor).version != version


def test_old_grants_stay_valid_across_rotations_and_new_ones_use_the_new_key(
    api: Stubs, keys: Any, clock: Any, world: World
) -> None:
    issued = []
    for _ in range(3):
        signer = active_key(api, keys.admin).key_id
        issued.append((signer, issue(api, keys.admin, clock, world.character_id, world.licensee_id)))
        rotate(api, keys.admin)

    answers = [verdict(api, keys.admin, grant) for _, grant in issued]
    as_json = [verdict(api, keys.admin, grant, dsse.to_json(grant.envelope)) for _, grant in issued]

    assert answers == as_json == [Verdict.GRANT_VERDICT_VALID] * 3
    assert [grant.envelope.signatures[0].keyid for _, grant in issued] == [signer for signer, _ in issued]
    assert len({signer for signer, _ in issued}) == 3


def test_the_active_key_cannot_be_revoked(api: Stubs, keys: Any) -> None:
    active = active_key(api, keys.admin)

    got = refused(api.keys.RevokeSigningKey, ks.RevokeSigningKeyRequest(key_id=active.key_id, reason="x"), keys.admin)

    assert (got.code, got.reason) == (FAILED_PRECONDITION, "SIGNING_KEY_ACTIVE")
    assert active_key(api, keys.admin) == active


def test_revoking_a_retired_key_fails_every_grant_it_signed(api: Stubs, keys: Any, clock: Any, world: World) -> None:
    doomed = rotate(api, keys.admin).active_key
    signed = [issue(api, keys.admin, clock, world.character_id, world.licensee_id) for _ in range(3)]
    rotate(api, keys.admin)
    unaffected = issue(api, keys.admin, clock, world.character_id, world.licensee_id)
    version = key_set(api, keys.auditor).version

    revoked = revoke_key(api, keys.admin, doomed.key_id, reason="leaked")

    published = key_set(api, keys.generator)
    assert (revoked.key.key_id, revoked.key.state) == (doomed.key_id, KEY_REVOKED)
    assert revoked.key.HasField("revoke_time")
    assert {verdict(api, keys.admin, g) for g in signed} == {Verdict.GRANT_VERDICT_KEY_REVOKED}
    assert {verdict(api, keys.auditor, g, dsse.to_json(g.envelope)) for g in signed} == {
        Verdict.GRANT_VERDICT_KEY_REVOKED
    }
    assert verdict(api, keys.admin, unaffected) == Verdict.GRANT_VERDICT_VALID
    assert doomed.key_id not in {k.key_id for k in published.keys}
    assert doomed.key_id in published.revoked_key_ids
    assert published.version != version
    listed = {k.key_id: k.state for k in signing_keys(api, keys.admin)}
    assert listed[doomed.key_id] == KEY_REVOKED


def test_a_key_is_revoked_only_once(api: Stubs, keys: Any) -> None:
    key = rotate(api, keys.admin).active_key
    rotate(api, keys.admin)
    revoke_key(api, keys.admin, key.key_id)

    got = refused(api.keys.RevokeSigningKey, ks.RevokeSigningKeyRequest(key_id=key.key_id, reason="x"), keys.admin)

    assert (got.code, got.reason) == (FAILED_PRECONDITION, "SIGNING_KEY_ALREADY_REVOKED")


def test_an_unknown_key_is_not_found(api: Stubs, keys: Any) -> None:
    got = refused(
        api.keys.RevokeSigningKey, ks.RevokeSigningKeyRequest(key_id="sk_" + "0" * 16, reason="x"), keys.admin
    )

    assert (got.code, got.reason) == (grpc.StatusCode.NOT_FOUND, "SIGNING_KEY_NOT_FOUND")


def test_every_caller_reads_the_same_key_set(api: Stubs, keys: Any) -> None:
    sets = [key_set(api, secret) for secret in (keys.admin, keys.rights_holder, keys.generator, keys.auditor)]

    assert all(s == sets[0] for s in sets)
    assert {k.state for k in sets[0].keys} <= {KEY_ACTIVE, KEY_RETIRED}
    assert [k.state for k in grant_keys(sets[0].keys)].count(KEY_ACTIVE) == 1
    assert list(sets[0].revoked_key_ids) == sorted(sets[0].revoked_key_ids)
    assert {k.purpose for k in sets[0].keys} == {SigningKey.PURPOSE_GRANTS, SigningKey.PURPOSE_TRANSPARENCY_LOG}


def test_concurrent_rotations_leave_exactly_one_active_key(api: Stubs, keys: Any) -> None:
    start = threading.Barrier(8)

    def rotate_once(_: int) -> ks.RotateSigningKeyResponse:
        start.wait(timeout=10)
        return rotate(api, keys.admin)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(rotate_once, range(8)))

    listed = signing_keys(api, keys.admin)
    actives = [k.key_id for k in grant_keys(listed) if k.state == KEY_ACTIVE]
    assert len(actives) == 1
    # Each rotation retired the key the one before it made: one chain, no fork.
    retired = [a.retired_key.key_id for a in answers]
    made = [a.active_key.key_id for a in answers]
    assert len(set(retired)) == len(retired)
    assert set(made) - set(retired) == set(actives)
