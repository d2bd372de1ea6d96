"""Quota leases spent by the offline authorizer: a grant with a cap is decided offline from a
leased block of uses (the first decision, and any while no lease is at hand, by the server), the
uses allowed never pass the cap whichever decided them, every use is reported and counted once,
and what was not spent goes back when the authorizer closes."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from charter import Client, OfflineAuthorizer
from charter.decisions import LicenseDenied
from charter.terms import DenyReason
from charter.v1 import terms_pb2
from charter.v1.offline_pb2 import DecisionRecordClaims

from ._scene import Scene

IMAGE = terms_pb2.USE_TYPE_IMAGE_GENERATION
TEEN = terms_pb2.CONTENT_RATING_TEEN
CAP = 5


def test_a_capped_grant_is_spent_from_leases_and_never_past_its_cap(scene: Scene, clock: Any) -> None:
    character = scene.character(max_uses=CAP)
    signer = scene.signer()
    outcomes: list[tuple[bool, bool, tuple[DenyReason, ...], str]] = []
    with (
        Client(scene.live.target, api_key=scene.generator_key) as client,
        OfflineAuthorizer(
            client, fetch_bundle=True, signer=signer, lease_uses=2, min_backoff=timedelta(milliseconds=50)
        ) as authorizer,
    ):
        deadline = time.monotonic() + 20
        while sum(o[1] for o in outcomes) < CAP and time.monotonic() < deadline:
            try:
                with authorizer.license(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN) as granted:
                    pass
            except LicenseDenied as denied:
                decision = denied.decision
            else:
                decision = granted.decision
                assert [r.accepted for r in granted.usage_results] == [True], granted.usage_results
            lease_id = ""
            if decision.decision_records:
                lease_id = DecisionRecordClaims.FromString(decision.decision_records[0].payload).lease_id
            outcomes.append((decision.offline, decision.allowed, decision.characters[0].reasons, lease_id))
            time.sleep(0.05)  # the lease thread leases and renews meanwhile
        open_before_close = authorizer.leases()
        after = authorizer.authorize(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN)
    statement = scene.staff.get_statement(
        rights_holder_id=scene.rights_holder_id, period=f"{clock.now():%Y-%m}", licensee_id=scene.licensee_id
    )

    allowed = [o for o in outcomes if o[1]]
    assert len(allowed) == CAP
    assert not outcomes[0][0]  # no lease yet: the server decided (and counted) the first use
    offline = [o for o in allowed if o[0]]
    assert offline and all(o[3].startswith("ql_") for o in offline)  # spent from a lease, named in the record
    assert all(not o[0] for o in allowed if not o[3])  # every allowed use without a lease came from the server
    assert not after.allowed  # the cap is used up, offline or not
    assert open_before_close  # a lease was held (and is given back on close)
    assert [(line.character_id, line.uses) for line in statement.lines] == [(character.id, CAP)]
