"""The SDK's OfflineService calls against the real server: a licensee admin registers a key, a
generator fetches its bundle, leases uses, reports a signed decision record and returns the rest."""

from __future__ import annotations

from typing import Any

import pytest
from charter import Client
from charter.decision_records import DecisionRecordSigner, generate_key, verify_decision_record
from charter.errors import AlreadyExistsError, ResourceExhaustedError
from charter.grants import KeyRing, KeyState, PublicKey
from charter.v1 import api_key_pb2, decision_pb2, offline_pb2, terms_pb2, usage_pb2
from google.protobuf import timestamp_pb2

from ._scene import Scene
from ._tap import Tap

CONTEXT = decision_pb2.UseContext(
    use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION, content_rating=terms_pb2.CONTENT_RATING_TEEN
)


def test_offline_calls_end_to_end(tap: Tap, scene: Scene, clock: Any) -> None:
    admin_key = scene.staff.create_api_key(
        display_name="licensee admin", role=api_key_pb2.ROLE_LICENSEE_ADMIN, licensee_id=scene.licensee_id
    )
    character = scene.character(max_uses=3)
    seed, public = generate_key()
    with Client(tap.target, api_key=admin_key.secret) as licensee_admin:
        key = licensee_admin.register_licensee_key(public, display_name="farm").key
        with pytest.raises(AlreadyExistsError) as duplicate:
            licensee_admin.register_licensee_key(public, display_name="again")
    with Client(tap.target, api_key=scene.generator_key) as generator:
        bundle = generator.get_grant_bundle()
        (grant,) = bundle.grants
        lease = generator.lease_quota(character.id, grant.id, uses=2, ttl=600)
        with pytest.raises(ResourceExhaustedError) as exhausted:
            generator.lease_quota(character.id, grant.id, uses=2, ttl=600)
        signer = DecisionRecordSigner(key_id=key.key_id, private_key=seed, licensee_id=scene.licensee_id)
        now = clock.now()
        record = signer.sign(
            character_id=character.id,
            grant_id=grant.id,
            terms_version=grant.terms_version,
            allowed=True,
            context=CONTEXT,
            lease_id=lease.lease_id,
            decide_time_ns=int(now.timestamp() * 1e9),
        )
        happened = timestamp_pb2.Timestamp()
        happened.FromDatetime(now)
        (result,) = generator.report_usage(
            [
                usage_pb2.UsageRecord(
                    idempotency_key=f"offline-{record.signatures[0].sig.hex()[:32]}",
                    decision_record=record,
                    character_id=character.id,
                    uses=1,
                    happen_time=happened,
                )
            ]
        )
        returned = generator.return_quota_lease(lease.lease_id, spent_uses=1)
        keys = generator.list_licensee_keys()
    ring = KeyRing(
        keys={key.key_id: PublicKey(key.key_id, public, KeyState.ACTIVE, key.activate_time.ToDatetime().astimezone())},
        revoked=frozenset(),
        version="",
    )

    assert duplicate.value.reason == "LICENSEE_KEY_EXISTS"
    assert [k.public_key for k in bundle.licensee_keys] == [public]
    assert lease.uses == 2 and exhausted.value.reason == "LEASE_REFUSED"
    assert result.accepted, result
    assert (returned.released_uses, returned.lease.state) == (1, offline_pb2.QuotaLease.STATE_RETURNED)
    assert [k.key_id for k in keys] == [key.key_id]
    assert verify_decision_record(record, keys=ring, licensee_id=scene.licensee_id).valid
