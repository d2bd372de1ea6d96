"""Authorize end to end through the SDK, on SQLite and PostgreSQL: every kind of decision, the signed
receipt, prompt screening, presented grants, quotas and their retries, and the consistency of the
in-memory view after a change in the same process."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import charter
import grpc
import pytest
from charter.envelope import RECEIPT_PAYLOAD_TYPE, pae
from charter.grants import KeyRing
from charter.receipts import verify_receipt
from charter.terms import DenyReason
from charter.v1 import (
    access_service_pb2,
    api_key_pb2,
    authorization_service_pb2,
    catalog_service_pb2,
    decision_pb2,
    grant_pb2,
    grant_service_pb2,
    terms_pb2,
)
from nacl.signing import VerifyKey

from .character_helpers import alias, create, terms
from .grant_helpers import Stubs, World, issue, new_world, revocation_head, revocation_log, stubs
from .helpers import auth, unique

IMAGE = terms_pb2.USE_TYPE_IMAGE_GENERATION
TEEN = terms_pb2.CONTENT_RATING_TEEN


@pytest.fixture(scope="module")
def api(channel: grpc.Channel) -> Stubs:
    return stubs(channel)


def generator_key(api: Stubs, admin: str, licensee_id: str) -> str:
    request = access_service_pb2.CreateApiKeyRequest(
        display_name=f"gen {unique()}", role=api_key_pb2.ROLE_GENERATOR, licensee_id=licensee_id
    )
    return str(api.access.CreateApiKey(request, metadata=auth(admin)).secret)


@pytest.fixture
def client_for(keys: Any) -> Iterator[Any]:
    opened: list[charter.Client] = []

    def open_client(secret: str) -> charter.Client:
        client = charter.Client(keys.target, api_key=secret)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.close()


def world_with_key(api: Stubs, keys: Any, given_terms: terms_pb2.Terms | None = None) -> tuple[World, str]:
    world = new_world(api, keys.admin, given_terms)
    return world, generator_key(api, keys.admin, world.licensee_id)


def decide(client: charter.Client, **request: Any) -> charter.Decision:
    request.setdefault("use_type", IMAGE)
    request.setdefault("content_rating", TEEN)
    return client.authorize(**request)


def reasons(decision: charter.Decision) -> list[tuple[str, tuple[DenyReason, ...]]]:
    return [(c.character_id, c.reasons) for c in decision.characters]


def test_an_allowed_use_carries_obligations_and_a_receipt_that_verifies(
    api: Stubs, keys: Any, clock: Any, client_for: Any
) -> None:
    fee = terms_pb2.Money(currency_code="JPY", minor_units=30)
    given = terms(attribution_text="© Studio", watermark_required=True, revenue_share_bps=1500, per_use_fee=fee)
    world, secret = world_with_key(api, keys, given)
    grant = issue(api, keys.admin, clock, world.character_id, world.licensee_id)
    client = client_for(secret)

    decision = decide(client, character_ids=[world.character_id], request_id="same-request-1")
    again = decide(client, character_ids=[world.character_id])
    assert decision.receipt is not None
    receipt = decision_pb2.DecisionReceipt.FromString(decision.receipt.payload)
    key_set = client.get_key_set()
    signer = next(k for k in key_set.keys if k.key_id == decision.receipt.signatures[0].keyid)
    expected_request = authorization_service_pb2.AuthorizeRequest(
        character_ids=[world.character_id],
        context=decision_pb2.UseContext(use_type=IMAGE, content_rating=TEEN),
        request_id="same-request-1",
    )

    assert decision.allowed and not decision.offline
    (character,) = decision.characters
    assert (character.allowed, character.grant_id, character.terms_version) == (True, grant.id, 1)
    assert (character.rights_holder_id, character.declared, character.detected) == (world.holder.id, True, False)
    assert character.obligations is not None
    assert (character.obligations.attribution_text, character.obligations.watermark_required) == ("© Studio", True)
    assert (character.obligations.revenue_share_bps, character.obligations.per_use_fee_minor_units) == (1500, 30)
    assert character.obligations.per_use_fee_currency == "JPY"
    assert decision.licensee_id == world.licensee_id
    assert abs(decision.decide_time - clock.now()) < timedelta(seconds=5)  # the server's clock
    assert decision.receipt.payload_type == RECEIPT_PAYLOAD_TYPE
    assert receipt.receipt_id == decision.receipt_id and receipt.receipt_id.startswith("rcp_")
    assert receipt.request_digest == hashlib.sha256(expected_request.SerializeToString(deterministic=True)).digest()
    VerifyKey(signer.public_key).verify(
        pae(RECEIPT_PAYLOAD_TYPE, decision.receipt.payload), decision.receipt.signatures[0].sig
    )
    assert verify_receipt(decision.receipt, keys=KeyRing.from_key_set(key_set), licensee_id=world.licensee_id).valid
    assert again.receipt_id != decision.receipt_id


def test_a_receipt_is_never_accepted_as_a_grant(api: Stubs, keys: Any, clock: Any, client_for: Any) -> None:
    world, secret = world_with_key(api, keys)
    issue(api, keys.admin, clock, world.character_id, world.licensee_id)
    client = client_for(secret)
    decision = decide(client, character_ids=[world.character_id])
    assert decision.receipt is not None

    answer = client.verify_grant(decision.receipt, licensee_id=world.licensee_id, character_id=world.character_id)
    with pytest.raises(charter.InvalidArgumentError) as presented:
        decide(client, character_ids=[world.character_id], grants=[decision.receipt])

    assert answer.verdict == grant_pb2.GRANT_VERDICT_WRONG_PAYLOAD_TYPE
    assert [v.field for v in presented.value.field_violations] == ["grants[0].payload_type"]


def test_each_state_of_character_and_grant_denies_with_its_reason(
    api: Stubs, keys: Any, clock: Any, client_for: Any
) -> None:
    world, secret = world_with_key(api, keys)
    client = client_for(secret)
    never = create(api.catalog, world.holder.secret, world.holder.id)
    no_grant = decide(client, character_ids=[world.character_id, never.id])
    grant = issue(api, keys.admin, clock, world.character_id, world.licensee_id)
    allowed = decide(client, character_ids=[world.character_id])
    api.grants.SuspendGrant(
        grant_service_pb2.SuspendGrantRequest(id=grant.id, reason="audit"), metadata=auth(keys.admin)
    )
    suspended = decide(client, character_ids=[world.character_id])
    api.grants.ReinstateGrant(grant_service_pb2.ReinstateGrantRequest(id=grant.id), metadata=auth(keys.admin))
    reinstated = decide(client, character_ids=[world.character_id])
    api.catalog.SuspendCharacter(
        catalog_service_pb2.SuspendCharacterRequest(id=world.character_id, reason="dispute"), metadata=auth(keys.admin)
    )
    character_suspended = decide(client, character_ids=[world.character_id])
    api.catalog.ReinstateCharacter(
        catalog_service_pb2.ReinstateCharacterRequest(id=world.character_id), metadata=auth(keys.admin)
    )
    api.grants.RevokeGrant(grant_service_pb2.RevokeGrantRequest(id=grant.id, reason="ended"), metadata=auth(keys.admin))
    revoked = decide(client, character_ids=[world.character_id])

    assert not no_grant.allowed
    assert reasons(no_grant) == [
        (world.character_id, (DenyReason.NO_GRANT,)),
        (never.id, (DenyReason.CHARACTER_NOT_OPTED_IN,)),
    ]
    assert allowed.allowed
    assert reasons(suspended) == [(world.character_id, (DenyReason.GRANT_SUSPENDED,))]
    assert suspended.characters[0].grant_id == grant.id
    assert reinstated.allowed
    assert reasons(character_suspended) == [(world.character_id, (DenyReason.CHARACTER_SUSPENDED,))]
    assert reasons(revoked) == [(world.character_id, (DenyReason.GRANT_REVOKED,))]


def test_validity_window_of_the_grant(api: Stubs, keys: Any, moved_clock: Any, client_for: Any) -> None:
    world, secret = world_with_key(api, keys)
    client = client_for(secret)
    issue(
        api,
        keys.admin,
        moved_clock,
        world.character_id,
        world.licensee_id,
        not_before=moved_clock.now() + timedelta(days=1),
        lifetime=timedelta(days=2),
    )

    early = decide(client, character_ids=[world.character_id])
    moved_clock.advance(timedelta(days=1))
    inside = decide(client, character_ids=[world.character_id])
    moved_clock.advance(timedelta(days=2))
    late = decide(client, character_ids=[world.character_id])

    assert reasons(early) == [(world.character_id, (DenyReason.GRANT_NOT_YET_VALID,))]
    assert inside.allowed
    assert reasons(late) == [(world.character_id, (DenyReason.GRANT_EXPIRED,))]


def test_every_failed_term_is_named_in_order(api: Stubs, keys: Any, clock: Any, client_for: Any) -> None:
    given = terms(allowed_territories=["JP"], prohibited_categories=[terms_pb2.CONTENT_CATEGORY_POLITICAL])
    world, secret = world_with_key(api, keys, given)
    issue(api, keys.admin, clock, world.character_id, world.licensee_id)
    client = client_for(secret)

    denied = decide(
        client,
        character_ids=[world.character_id],
        use_type=terms_pb2.USE_TYPE_VIDEO_GENERATION,
        content_rating=terms_pb2.CONTENT_RATING_ADULT,
        categories=[terms_pb2.CONTENT_CATEGORY_POLITICAL],
        territory="US",
        commercial=True,
    )
    lower_case_territory = decide(client, character_ids=[world.character_id], territory="jp")

    assert reasons(denied) == [
        (
            world.character_id,
            (
                DenyReason.USE_TYPE_NOT_PERMITTED,
                DenyReason.RATING_EXCEEDS_TERMS,
                DenyReason.CATEGORY_PROHIBITED,
                DenyReason.TERRITORY_NOT_LICENSED,
                DenyReason.COMMERCIAL_USE_NOT_PERMITTED,
            ),
        )
    ]
    assert denied.characters[0].obligations is None
    assert lower_case_territory.allowed


def test_co_appearance_and_the_overall_decision(api: Stubs, keys: Any, clock: Any, client_for: Any) -> None:
    world, secret = world_with_key(api, keys)
    rival = create(api.catalog, world.holder.secret, world.holder.id)
    loner_terms = terms(prohibited_co_appearance_ids=[rival.id])
    loner = create(api.catalog, world.holder.secret, world.holder.id)
    api.catalog.OptIn(
        catalog_service_pb2.OptInRequest(character_id=loner.id, terms=loner_terms), metadata=auth(world.holder.secret)
    )
    issue(api, keys.admin, clock, world.character_id, world.licensee_id)
    issue(api, keys.admin, clock, loner.id, world.licensee_id)
    client = client_for(secret)

    together = decide(client, character_ids=[world.character_id, loner.id])
    with_rival = decide(client, character_ids=[loner.id, rival.id])

    assert together.allowed and [c.allowed for c in together.characters] == [True, True]
    assert not with_rival.allowed
    assert reasons(with_rival) == [
        (loner.id, (DenyReason.CO_APPEARANCE_PROHIBITED,)),
        (rival.id, (DenyReason.CHARACTER_NOT_OPTED_IN,)),
    ]


def test_a_prompt_is_screened_and_what_it_names_is_decided(
    server: Any, api: Stubs, keys: Any, clock: Any, client_for: Any
) -> None:
    world, secret = world_with_key(api, keys)
    marker = unique("zq").replace("-", "")
    named = create(api.catalog, world.holder.secret, world.holder.id, name=f"Kirari {marker}")
    shared = create(
        api.catalog,
        world.holder.secret,
        world.holder.id,
        name=f"Tsubasa {marker}",
        aliases=(alias(f"Wing {marker}", "en", ambiguous=True),),
    )
    issue(api, keys.admin, clock, world.character_id, world.licensee_id)
    server.services.screen.refresh_now()
    client = client_for(secret)
    opted_in = api.catalog.GetCharacter(
        catalog_service_pb2.GetCharacterRequest(id=world.character_id), metadata=auth(keys.admin)
    ).character

    decision = decide(
        client,
        character_ids=[world.character_id],
        prompt=f"{opted_in.canonical_name} meets Kirari {marker} and Wing {marker}",
    )

    assert not decision.allowed
    assert [(c.character_id, c.declared, c.detected, c.allowed) for c in decision.characters] == [
        (world.character_id, True, True, True),
        (named.id, False, True, False),
    ]
    assert decision.characters[1].reasons == (DenyReason.CHARACTER_NOT_OPTED_IN,)
    found = {d.character_id: d for d in decision.detections}
    assert set(found) == {world.character_id, named.id, shared.id}
    assert found[shared.id].ambiguous  # reported, but not decided unless declared
    prompt = f"{opted_in.canonical_name} meets Kirari {marker} and Wing {marker}"
    assert prompt[found[named.id].start : found[named.id].end] == f"Kirari {marker}"


def test_presented_grants_decide_their_character(api: Stubs, keys: Any, clock: Any, client_for: Any) -> None:
    world, secret = world_with_key(api, keys)
    own = issue(api, keys.admin, clock, world.character_id, world.licensee_id)
    other_licensee_grant = issue(api, keys.admin, clock, world.character_id, keys.licensee_id)
    client = client_for(secret)
    tampered = grant_pb2.Grant()
    tampered.CopyFrom(own)
    tampered.envelope.signatures[0].sig = bytes(64)

    presented = decide(client, character_ids=[world.character_id], grants=[own.envelope])
    foreign = decide(client, character_ids=[world.character_id], grants=[other_licensee_grant.envelope])
    forged = decide(client, character_ids=[world.character_id], grants=[tampered.envelope])

    assert presented.allowed and presented.characters[0].grant_id == own.id
    # Only the presented grants count for their character, even though the caller has its own.
    assert reasons(foreign) == [(world.character_id, (DenyReason.GRANT_INVALID,))]
    assert reasons(forged) == [(world.character_id, (DenyReason.GRANT_INVALID,))]


def test_an_archived_licensee_is_denied(api: Stubs, keys: Any, clock: Any, client_for: Any) -> None:
    world, secret = world_with_key(api, keys)
    issue(api, keys.admin, clock, world.character_id, world.licensee_id)
    client = client_for(secret)
    before = decide(client, character_ids=[world.character_id])
    api.catalog.ArchiveLicensee(
        catalog_service_pb2.ArchiveLicenseeRequest(id=world.licensee_id), metadata=auth(keys.admin)
    )

    after = decide(client, character_ids=[world.character_id])

    assert before.allowed
    assert reasons(after) == [(world.character_id, (DenyReason.LICENSEE_ARCHIVED,))]


def test_a_daily_quota_counts_allowed_uses_once_each(api: Stubs, keys: Any, clock: Any, client_for: Any) -> None:
    world, secret = world_with_key(api, keys, terms(daily_quota=3))
    issue(api, keys.admin, clock, world.character_id, world.licensee_id)
    client = client_for(secret)
    never = create(api.catalog, world.holder.secret, world.holder.id)

    first = decide(client, character_ids=[world.character_id], request_id="quota-retry")
    retried = decide(client, character_ids=[world.character_id], request_id="quota-retry")
    with pytest.raises(charter.AlreadyExistsError) as reused:
        decide(client, character_ids=[world.character_id], territory="JP", request_id="quota-retry")
    with_denied_other = decide(client, character_ids=[world.character_id, never.id])  # denied: counts nothing
    second = decide(client, character_ids=[world.character_id])
    third = decide(client, character_ids=[world.character_id])
    fourth = decide(client, character_ids=[world.character_id])

    assert first.allowed and retried.allowed
    assert retried.receipt_id == first.receipt_id
    assert reused.value.reason == "REQUEST_ID_REUSED"
    assert not with_denied_other.allowed
    assert [second.allowed, third.allowed] == [True, True]
    assert reasons(fourth) == [(world.character_id, (DenyReason.QUOTA_EXHAUSTED,))]


def test_concurrent_uses_never_exceed_a_quota(api: Stubs, keys: Any, clock: Any, client_for: Any) -> None:
    quota = 7
    world, secret = world_with_key(api, keys, terms(monthly_quota=quota))
    issue(api, keys.admin, clock, world.character_id, world.licensee_id)
    client = client_for(secret)

    with ThreadPoolExecutor(max_workers=6) as pool:
        decisions = list(pool.map(lambda _: decide(client, character_ids=[world.character_id]), range(4 * quota)))

    assert sum(d.allowed for d in decisions) == quota
    assert {c.reasons for d in decisions if not d.allowed for c in d.characters} == {(DenyReason.QUOTA_EXHAUSTED,)}


def test_a_change_is_seen_by_the_very_next_call(api: Stubs, keys: Any, clock: Any, client_for: Any) -> None:
    world, secret = world_with_key(api, keys)
    client = client_for(secret)
    denied = decide(client, character_ids=[world.character_id])  # caches "no grant"
    grant = issue(api, keys.admin, clock, world.character_id, world.licensee_id)
    allowed = decide(client, character_ids=[world.character_id])
    api.grants.RevokeGrant(grant_service_pb2.RevokeGrantRequest(id=grant.id, reason="ended"), metadata=auth(keys.admin))
    revoked = decide(client, character_ids=[world.character_id])

    assert reasons(denied) == [(world.character_id, (DenyReason.NO_GRANT,))]
    assert allowed.allowed
    assert reasons(revoked) == [(world.character_id, (DenyReason.GRANT_REVOKED,))]


def test_only_generator_keys_may_authorize(keys: Any, client_for: Any) -> None:
    with pytest.raises(charter.PermissionDeniedError) as as_admin:
        client_for(keys.admin).authorize(character_ids=[], prompt="anything", use_type=IMAGE, content_rating=TEEN)

    assert as_admin.value.reason == "ROLE_NOT_PERMITTED"


def test_a_character_suspension_and_reinstatement_enter_the_revocation_log(
    server: Any, api: Stubs, keys: Any, client_for: Any
) -> None:
    world, _ = world_with_key(api, keys)
    client = client_for(keys.admin)
    since = revocation_head(server)
    client.suspend_character(world.character_id, reason="rights dispute")
    client.reinstate_character(world.character_id)

    events = []
    with client.watch_revocations(since) as watch:
        for item in watch:
            if isinstance(item, grant_pb2.RevocationEvent):
                events.append(item)
            if len(events) == 2:
                break

    kinds = grant_pb2.RevocationEvent
    assert [(e.kind, e.character_id, e.grant_id) for e in events] == [
        (kinds.KIND_CHARACTER_SUSPENDED, world.character_id, ""),
        (kinds.KIND_CHARACTER_REINSTATED, world.character_id, ""),
    ]
    # In the log's order (each state change also has a registry event, not sent unasked).
    assert [e.sequence for e in events] == [e.sequence for e in revocation_log(server, since)]
    assert events[0].reason == "rights dispute"


def test_a_character_withdrawn_opted_in_again_and_archived_enter_the_revocation_log(
    server: Any, api: Stubs, keys: Any, clock: Any, client_for: Any
) -> None:
    world, secret = world_with_key(api, keys)
    held = issue(api, keys.admin, clock, world.character_id, world.licensee_id)
    client = client_for(keys.admin)
    since = revocation_head(server)
    client.opt_out(world.character_id, reason="leaving")
    client.opt_in(world.character_id, terms())
    client.archive_character(world.character_id)

    def read(watcher: charter.Client, count: int) -> list[grant_pb2.RevocationEvent]:
        events: list[grant_pb2.RevocationEvent] = []
        with watcher.watch_revocations(since) as watch:
            for item in watch:
                if isinstance(item, grant_pb2.RevocationEvent):
                    events.append(item)
                if len(events) == count:
                    break
        return events

    staff = read(client, 4)
    generator = read(client_for(secret), 4)  # it holds a grant of the character, so it is told

    kinds = grant_pb2.RevocationEvent
    assert [(e.kind, e.character_id, e.grant_id) for e in staff] == [
        (kinds.KIND_REVOKED, "", held.id),
        (kinds.KIND_CHARACTER_WITHDRAWN, world.character_id, ""),
        (kinds.KIND_CHARACTER_OPTED_IN, world.character_id, ""),
        (kinds.KIND_CHARACTER_ARCHIVED, world.character_id, ""),
    ]
    assert [e.sequence for e in staff] == [e.sequence for e in revocation_log(server, since)]
    assert staff[1].reason == "leaving"
    assert [(e.kind, e.sequence) for e in generator] == [(e.kind, e.sequence) for e in staff]
    assert [e.reason for e in generator] == ["", "", "", ""]  # free text is for staff and the owner
