"""An offline authorizer with a licensee key: it decides from the grant bundle it fetched, signs a
decision record per character, and a clean `license` exit reports the use, which the rights
holder's statement then counts exactly once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from charter import Client, OfflineAuthorizer
from charter.envelope import DECISION_RECORD_PAYLOAD_TYPE
from charter.usage import UsageReport
from charter.v1 import terms_pb2

from ._scene import Scene

IMAGE = terms_pb2.USE_TYPE_IMAGE_GENERATION
TEEN = terms_pb2.CONTENT_RATING_TEEN


def test_offline_uses_are_signed_reported_and_counted_once(scene: Scene, clock: Any) -> None:
    character = scene.character()
    signer = scene.signer()
    with Client(scene.live.target, api_key=scene.generator_key) as client:
        bundle = client.get_grant_bundle()
        with OfflineAuthorizer(
            client,
            grants=[g.envelope for g in bundle.grants],
            signer=signer,
            max_staleness=timedelta(seconds=30),
            min_backoff=timedelta(milliseconds=50),
        ) as authorizer:
            with authorizer.license(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN) as granted:
                pass
            (record,) = granted.decision.decision_records
            replay = client.report_usage([UsageReport(record, character.id, idempotency_key=f"again-{character.id}")])
    statement = scene.staff.get_statement(
        rights_holder_id=scene.rights_holder_id, period=f"{clock.now():%Y-%m}", licensee_id=scene.licensee_id
    )

    assert granted.decision.offline and granted.decision.receipt is None
    assert record.payload_type == DECISION_RECORD_PAYLOAD_TYPE
    assert [r.accepted for r in granted.usage_results] == [True]
    assert [(r.accepted, r.error_reason) for r in replay] == [(False, "DECISION_RECORD_REPLAYED")]
    assert [(line.character_id, line.uses) for line in statement.lines] == [(character.id, 1)]


def test_without_a_signer_offline_uses_carry_no_record(scene: Scene) -> None:
    character = scene.character()
    with Client(scene.live.target, api_key=scene.generator_key) as client:
        bundle = client.get_grant_bundle()
        with OfflineAuthorizer(client, grants=[g.envelope for g in bundle.grants]) as authorizer:
            decision = authorizer.authorize(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN)

    assert decision.offline and decision.allowed
    assert decision.decision_records == ()
