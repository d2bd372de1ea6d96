"""Authorize end to end: the signed decision receipt, every deny reason the server produces, the
overall decision, prompt screening, presented grants, quotas (counted once, atomically, across
replicas, replayed by request id), who may ask, and that a change is seen by the very next call.

Every test builds its own characters and grants (the session's licensee is shared, but quota
counters are per licensee and character), so no test depends on another's rows. A decision is
warmed up before each change that takes something away, so the tests see the in-memory view
being replaced, not merely filled for the first time.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import nacl.exceptions
import nacl.signing
import pytest
from charter import envelope as dsse
from charter.grants import KeyRing
from charter.receipts import verify_receipt
from charter.v1 import access_service_pb2 as access_pb
from charter.v1 import api_key_pb2, decision_pb2, envelope_pb2, grant_pb2, licensee_pb2, terms_pb2
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import catalog_service_pb2 as catalog_pb
from charter.v1 import grant_service_pb2 as gs
from charter.v1 import key_service_pb2 as ks
from charter_server.app import CharterServer, build_server
from charter_server.config import Settings
from charter_server.domain import ids
from google.protobuf import duration_pb2

from .character_helpers import Holder, alias, create, kana_marker, mask, new_holder, opt_in, refused, terms
from .grant_helpers import (
    Grant,
    Stubs,
    Verdict,
    issue,
    key_set,
    new_licensee,
    opted_in_character,
    rotate,
    stubs,
    verify,
)
from .helpers import auth, failure, unique

T = terms_pb2
D = decision_pb2
CharacterDecision = D.CharacterDecision
Envelope = envelope_pb2.Envelope

NOT_OPTED_IN = D.DENY_REASON_CHARACTER_NOT_OPTED_IN
CHARACTER_SUSPENDED = D.DENY_REASON_CHARACTER_SUSPENDED
NO_GRANT = D.DENY_REASON_NO_GRANT
GRANT_REVOKED = D.DENY_REASON_GRANT_REVOKED
GRANT_SUSPENDED = D.DENY_REASON_GRANT_SUSPENDED
GRANT_EXPIRED = D.DENY_REASON_GRANT_EXPIRED
GRANT_NOT_YET_VALID = D.DENY_REASON_GRANT_NOT_YET_VALID
GRANT_INVALID = D.DENY_REASON_GRANT_INVALID
LICENSEE_ARCHIVED = D.DENY_REASON_LICENSEE_ARCHIVED
QUOTA_EXHAUSTED = D.DENY_REASON_QUOTA_EXHAUSTED
CO_APPEARANCE = D.DENY_REASON_CO_APPEARANCE_PROHIBITED


# Fixtures and helpers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(channel: grpc.Channel) -> Stubs:
    return stubs(channel)


@pytest.fixture(scope="module")
def holder(api: Stubs, keys: Any) -> Holder:
    """A rights holder of this module (characters are fresh per test)."""
    return new_holder(api.catalog, api.access, keys.admin)


def _settings(database_url: str, **changes: Any) -> Settings:
    return Settings(
        listen="127.0.0.1:0",
        database_url=database_url,
        log_format="json",
        shutdown_grace_seconds=1.0,
        authorization_lease_seconds=0.05,  # as the session server
        **changes,
    )


@contextmanager
def running(settings: Settings, clock: Any) -> Iterator[tuple[CharterServer, Stubs]]:
    """A started server and stubs over a channel to it; stopped afterwards."""
    started = build_server(settings, clock=clock)
    started.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{started.port}") as opened:
            grpc.channel_ready_future(opened).result(timeout=10)
            yield started, stubs(opened)
    finally:
        started.stop(grace=0)


@pytest.fixture(scope="module")
def replica(server: CharterServer, clock: Any) -> Iterator[Stubs]:
    """A second server over the session's database, as another replica of the deployment."""
    with running(_settings(server.settings.database_url), clock) as (_, replica_stubs):
        yield replica_stubs


@pytest.fixture
def default_lease(server: CharterServer, replica: Stubs) -> Iterator[None]:
    """The deployment's lease at its default (1 s) during a test, then the suite's 0.05 s again.

    Calls racing on two replicas of a loaded machine can take longer than 0.05 s to confirm their
    view, and then ``Authorize`` fails closed with ``STORAGE_UNAVAILABLE`` (rightly, but that is
    not what the tests that race are about). Set after ``replica``, which sets 0.05 s as it starts.
    """

    def set_lease(seconds: float) -> None:
        with server.db.uow(write=True) as uow:
            uow.deployment.set_lease(seconds)
            uow.commit()
        time.sleep(0.2)  # every server's poller reads the lease within a poll (12.5 ms at 0.05 s)

    set_lease(1.0)
    try:
        yield
    finally:
        set_lease(0.05)


@contextmanager
def own_database(server: CharterServer, tmp_path: Path) -> Iterator[str]:
    """An empty database of the session server's backend, for a server whose key changes stay its own."""
    url = server.settings.database_url
    if url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'own.db'}"
        return
    import psycopg

    admin_url = url.replace("postgresql+psycopg://", "postgresql://")
    name = f"charter_authz_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{url.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def use(**changes: Any) -> D.UseContext:
    """A use context the default terms allow, with ``changes`` applied."""
    fields: dict[str, Any] = {
        "use_type": T.USE_TYPE_IMAGE_GENERATION,
        "content_rating": T.CONTENT_RATING_ALL_AGES,
        **changes,
    }
    return D.UseContext(**fields)


def request(
    *character_ids: str,
    prompt: str = "",
    grants: tuple[Envelope, ...] = (),
    request_id: str = "",
    context: D.UseContext | None = None,
) -> az.AuthorizeRequest:
    return az.AuthorizeRequest(
        character_ids=list(character_ids),
        prompt=prompt,
        grants=list(grants),
        context=context or use(),
        request_id=request_id,
    )


def authorize(api: Stubs, secret: str, *character_ids: str, **options: Any) -> az.AuthorizeResponse:
    response: az.AuthorizeResponse = api.authz.Authorize(request(*character_ids, **options), metadata=auth(secret))
    return response


def decisions(response: az.AuthorizeResponse) -> dict[str, CharacterDecision]:
    return {d.character_id: d for d in response.decision.characters}


def outcome(response: az.AuthorizeResponse, character_id: str) -> tuple[bool, list[int], str]:
    """(allowed, reasons, grant id) of one character's decision."""
    found = decisions(response)[character_id]
    return found.allowed, list(found.reasons), found.grant_id


def allowed_with(grant: Grant) -> tuple[bool, list[int], str]:
    return True, [], grant.id


def denied(*reasons: int, grant_id: str = "") -> tuple[bool, list[int], str]:
    return False, list(reasons), grant_id


@dataclass(frozen=True)
class Licensed:
    """An opted-in character and a grant of it to a licensee."""

    character_id: str
    grant: Grant


def licensed(
    api: Stubs,
    keys: Any,
    clock: Any,
    holder: Holder,
    given: T.Terms | None = None,
    licensee_id: str = "",
    **options: Any,
) -> Licensed:
    character_id = opted_in_character(api, holder, given)
    grant = issue(api, keys.admin, clock, character_id, licensee_id or keys.licensee_id, **options)
    return Licensed(character_id, grant)


def generator_key(api: Stubs, admin: str, licensee_id: str) -> str:
    """The secret of a new generator key bound to ``licensee_id``."""
    created = api.access.CreateApiKey(
        access_pb.CreateApiKeyRequest(
            display_name=f"gen {unique()}", role=api_key_pb2.ROLE_GENERATOR, licensee_id=licensee_id
        ),
        metadata=auth(admin),
    )
    return str(created.secret)


def revoke_grant(api: Stubs, admin: str, grant_id: str) -> None:
    api.grants.RevokeGrant(gs.RevokeGrantRequest(id=grant_id, reason="licence ended"), metadata=auth(admin))


def suspend_grant(api: Stubs, admin: str, grant_id: str) -> None:
    api.grants.SuspendGrant(gs.SuspendGrantRequest(id=grant_id, reason="under review"), metadata=auth(admin))


def copy(envelope: Envelope) -> Envelope:
    result = Envelope()
    result.CopyFrom(envelope)
    return result


def move_to(moved_clock: Any, target: datetime) -> None:
    moved_clock.advance(target - moved_clock.now())


def noon_tomorrow(moved_clock: Any) -> datetime:
    """Noon (UTC) of the next day: far from a day boundary, so quota periods never roll over by accident."""
    tomorrow: datetime = moved_clock.now() + timedelta(days=1)
    return tomorrow.replace(hour=12, minute=0, second=0, microsecond=0)


def timestamp_of(value: Any) -> datetime:
    return value.ToDatetime(tzinfo=UTC)  # type: ignore[no-any-return]


# An allowed decision and its receipt ------------------------------------------------------------


def test_an_allowed_character_gets_its_obligations_and_a_verifiable_receipt(
    api: Stubs, server: CharterServer, keys: Any, moved_clock: Any, holder: Holder
) -> None:
    moved_clock.advance(timedelta(hours=2))  # the decision time is the server's clock, not the wall clock
    given = terms(
        attribution_text="© Studio, used with permission",
        watermark_required=True,
        revenue_share_bps=250,
        per_use_fee=T.Money(currency_code="JPY", minor_units=500),
    )
    party = licensed(api, keys, moved_clock, holder, given)
    sent = request(party.character_id, context=use(territory="JP", duration=duration_pb2.Duration(seconds=30)))

    before = moved_clock.now()
    first = api.authz.Authorize(sent, metadata=auth(keys.generator))
    second = api.authz.Authorize(sent, metadata=auth(keys.generator))
    after = moved_clock.now()

    decision, receipt = first.decision, first.receipt
    assert decision.allowed
    assert list(decision.characters) == [
        CharacterDecision(
            character_id=party.character_id,
            allowed=True,
            grant_id=party.grant.id,
            terms_version=1,
            rights_holder_id=holder.id,
            declared=True,
            detected=False,
            obligations=D.Obligations(
                attribution_text="© Studio, used with permission",
                watermark_required=True,
                revenue_share_bps=250,
                per_use_fee=T.Money(currency_code="JPY", minor_units=500),
            ),
        )
    ]
    assert (decision.licensee_id, decision.issuer) == (keys.licensee_id, server.settings.issuer)
    assert decision.context == sent.context
    assert before <= timestamp_of(decision.decide_time) <= after
    assert ids.is_valid("receipt", decision.receipt_id)
    assert decision.request_digest == hashlib.sha256(sent.SerializeToString(deterministic=True)).digest()
    assert list(first.detections) == []

    assert receipt.payload_type == "application/vnd.charter.receipt.v1+protobuf" == dsse.RECEIPT_PAYLOAD_TYPE
    assert D.DecisionReceipt.FromString(receipt.payload) == decision
    (signature,) = receipt.signatures
    published = {k.key_id: k.public_key for k in key_set(api, keys.generator).keys}
    verify_key = nacl.signing.VerifyKey(published[signature.keyid])
    verify_key.verify(dsse.pae(receipt.payload_type, receipt.payload), signature.sig)  # raises if it does not verify
    with pytest.raises(nacl.exceptions.BadSignatureError):
        verify_key.verify(dsse.pae(receipt.payload_type, receipt.payload + b"\x00"), signature.sig)
    by_sdk = verify_receipt(
        receipt, keys=KeyRing.from_key_set(key_set(api, keys.auditor)), licensee_id=keys.licensee_id
    )
    assert (by_sdk.verdict, by_sdk.receipt) == (Verdict.GRANT_VERDICT_VALID, decision)

    assert second.decision.receipt_id != decision.receipt_id
    assert second.decision.request_digest == decision.request_digest
    assert list(second.decision.characters) == list(decision.characters)


def test_a_receipt_is_never_accepted_as_a_grant(api: Stubs, keys: Any, clock: Any, holder: Holder) -> None:
    party = licensed(api, keys, clock, holder)
    receipt = authorize(api, keys.generator, party.character_id).receipt

    answer = verify(api, keys.admin, receipt, keys.licensee_id, party.character_id)
    presented = refused(api.authz.Authorize, request(party.character_id, grants=(receipt,)), keys.generator)

    assert answer.verdict == Verdict.GRANT_VERDICT_WRONG_PAYLOAD_TYPE
    assert not answer.HasField("claims")
    assert (presented.code, presented.reason, presented.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_FIELD",
        ("grants[0].payload_type",),
    )


# Deny reasons -----------------------------------------------------------------------------------


def test_characters_not_opted_in_never_opted_in_opted_out_or_archived(
    api: Stubs, keys: Any, clock: Any, holder: Holder
) -> None:
    never = create(api.catalog, holder.secret, holder.id).id
    leaving = licensed(api, keys, clock, holder)
    archived = licensed(api, keys, clock, holder)
    warm = authorize(api, keys.generator, leaving.character_id, archived.character_id)

    api.catalog.OptOut(catalog_pb.OptOutRequest(character_id=leaving.character_id), metadata=auth(holder.secret))
    api.catalog.ArchiveCharacter(
        catalog_pb.ArchiveCharacterRequest(id=archived.character_id), metadata=auth(holder.secret)
    )
    response = authorize(api, keys.generator, never, leaving.character_id, archived.character_id)

    assert warm.decision.allowed
    assert not response.decision.allowed
    assert [(d.character_id, d.allowed, list(d.reasons)) for d in response.decision.characters] == [
        (never, False, [NOT_OPTED_IN]),
        (leaving.character_id, False, [NOT_OPTED_IN]),
        (archived.character_id, False, [NOT_OPTED_IN]),
    ]
    first = response.decision.characters[0]
    assert (first.grant_id, first.terms_version, first.rights_holder_id) == ("", 0, holder.id)
    assert not first.HasField("obligations")


def test_a_suspended_character_is_denied_until_reinstated(api: Stubs, keys: Any, clock: Any, holder: Holder) -> None:
    party = licensed(api, keys, clock, holder)
    before = authorize(api, keys.generator, party.character_id)

    api.catalog.SuspendCharacter(
        catalog_pb.SuspendCharacterRequest(id=party.character_id, reason="dispute"), metadata=auth(keys.admin)
    )
    suspended = authorize(api, keys.generator, party.character_id)
    api.catalog.ReinstateCharacter(
        catalog_pb.ReinstateCharacterRequest(id=party.character_id), metadata=auth(keys.admin)
    )
    reinstated = authorize(api, keys.generator, party.character_id)

    assert outcome(before, party.character_id) == allowed_with(party.grant)
    assert outcome(suspended, party.character_id) == denied(CHARACTER_SUSPENDED)
    assert not suspended.decision.allowed
    assert outcome(reinstated, party.character_id) == allowed_with(party.grant)


def test_no_grant_for_this_licensee_even_when_another_licensee_has_one(
    api: Stubs, keys: Any, clock: Any, holder: Holder
) -> None:
    other_licensee = new_licensee(api, keys.admin)
    party = licensed(api, keys, clock, holder, licensee_id=other_licensee)

    response = authorize(api, keys.generator, party.character_id)

    assert outcome(response, party.character_id) == denied(NO_GRANT)
    assert decisions(response)[party.character_id].rights_holder_id == holder.id


def test_after_issue_grant_returns_the_next_authorize_allows(api: Stubs, keys: Any, clock: Any, holder: Holder) -> None:
    character_id = opted_in_character(api, holder)
    before = authorize(api, keys.generator, character_id)

    grant = issue(api, keys.admin, clock, character_id, keys.licensee_id)
    after = authorize(api, keys.generator, character_id)

    assert outcome(before, character_id) == denied(NO_GRANT)
    assert outcome(after, character_id) == allowed_with(grant)


def test_after_revoke_grant_returns_the_next_authorize_denies(
    api: Stubs, keys: Any, clock: Any, holder: Holder
) -> None:
    party = licensed(api, keys, clock, holder)
    before = authorize(api, keys.generator, party.character_id)

    revoke_grant(api, keys.admin, party.grant.id)
    after = authorize(api, keys.generator, party.character_id)

    assert outcome(before, party.character_id) == allowed_with(party.grant)
    assert outcome(after, party.character_id) == denied(GRANT_REVOKED, grant_id=party.grant.id)
    assert decisions(after)[party.character_id].terms_version == 1


def test_a_revocation_through_one_replica_is_seen_by_another_at_once(
    api: Stubs, replica: Stubs, keys: Any, clock: Any, holder: Holder
) -> None:
    party = licensed(api, keys, clock, holder)
    before = authorize(replica, keys.generator, party.character_id)

    revoke_grant(api, keys.admin, party.grant.id)
    after = authorize(replica, keys.generator, party.character_id)

    assert outcome(before, party.character_id) == allowed_with(party.grant)
    assert outcome(after, party.character_id) == denied(GRANT_REVOKED, grant_id=party.grant.id)


def test_a_suspended_grant_is_denied_until_reinstated(api: Stubs, keys: Any, clock: Any, holder: Holder) -> None:
    party = licensed(api, keys, clock, holder)
    before = authorize(api, keys.generator, party.character_id)

    suspend_grant(api, keys.admin, party.grant.id)
    suspended = authorize(api, keys.generator, party.character_id)
    api.grants.ReinstateGrant(gs.ReinstateGrantRequest(id=party.grant.id), metadata=auth(keys.admin))
    reinstated = authorize(api, keys.generator, party.character_id)

    assert outcome(before, party.character_id) == allowed_with(party.grant)
    assert outcome(suspended, party.character_id) == denied(GRANT_SUSPENDED, grant_id=party.grant.id)
    assert outcome(reinstated, party.character_id) == allowed_with(party.grant)


def test_a_grant_outside_its_window_is_not_yet_valid_then_valid_then_expired(
    api: Stubs, keys: Any, moved_clock: Any, holder: Holder
) -> None:
    start = moved_clock.now() + timedelta(hours=1)
    party = licensed(api, keys, moved_clock, holder, not_before=start, lifetime=timedelta(hours=2))
    seen = {"now": authorize(api, keys.generator, party.character_id)}

    for label, at in (
        ("a_second_before_not_before", start - timedelta(seconds=1)),  # the server allows no clock skew
        ("at_not_before", start),
        ("a_second_before_expiry", start + timedelta(hours=2, seconds=-1)),
        ("at_expiry", start + timedelta(hours=2)),
        ("a_day_later", start + timedelta(days=1)),
    ):
        move_to(moved_clock, at)
        seen[label] = authorize(api, keys.generator, party.character_id)

    assert {label: outcome(r, party.character_id) for label, r in seen.items()} == {
        "now": denied(GRANT_NOT_YET_VALID, grant_id=party.grant.id),
        "a_second_before_not_before": denied(GRANT_NOT_YET_VALID, grant_id=party.grant.id),
        "at_not_before": allowed_with(party.grant),
        "a_second_before_expiry": allowed_with(party.grant),
        "at_expiry": denied(GRANT_EXPIRED, grant_id=party.grant.id),
        "a_day_later": denied(GRANT_EXPIRED, grant_id=party.grant.id),
    }


def test_an_archived_licensee_is_denied_for_every_character(api: Stubs, keys: Any, clock: Any, holder: Holder) -> None:
    licensee_id = new_licensee(api, keys.admin)
    secret = generator_key(api, keys.admin, licensee_id)
    party = licensed(api, keys, clock, holder, licensee_id=licensee_id)
    never = create(api.catalog, holder.secret, holder.id).id
    before = authorize(api, secret, party.character_id)

    api.catalog.ArchiveLicensee(catalog_pb.ArchiveLicenseeRequest(id=licensee_id), metadata=auth(keys.admin))
    after = authorize(api, secret, party.character_id, never)

    assert outcome(before, party.character_id) == allowed_with(party.grant)
    assert before.decision.licensee_id == licensee_id
    assert not after.decision.allowed
    assert outcome(after, party.character_id) == denied(LICENSEE_ARCHIVED)
    assert outcome(after, never) == denied(LICENSEE_ARCHIVED)


def test_failed_terms_report_every_reason_in_deny_reason_order(
    api: Stubs, keys: Any, clock: Any, holder: Holder
) -> None:
    given = terms(
        permitted_use_types=[T.USE_TYPE_IMAGE_GENERATION],
        max_content_rating=T.CONTENT_RATING_TEEN,
        prohibited_categories=[T.CONTENT_CATEGORY_GRAPHIC_VIOLENCE],
        allowed_territories=["JP", "KR"],
        commercial_use_allowed=False,
    )
    party = licensed(api, keys, clock, holder, given)
    everything_wrong = use(
        use_type=T.USE_TYPE_VIDEO_GENERATION,
        content_rating=T.CONTENT_RATING_MATURE,
        categories=[T.CONTENT_CATEGORY_POLITICAL, T.CONTENT_CATEGORY_GRAPHIC_VIOLENCE],
        territory="US",
        commercial=True,
    )

    failed = authorize(api, keys.generator, party.character_id, context=everything_wrong)
    rating_and_territory = authorize(
        api, keys.generator, party.character_id, context=use(content_rating=T.CONTENT_RATING_ADULT)
    )
    fine = authorize(api, keys.generator, party.character_id, context=use(territory="jp"))

    assert outcome(failed, party.character_id) == denied(
        D.DENY_REASON_USE_TYPE_NOT_PERMITTED,
        D.DENY_REASON_RATING_EXCEEDS_TERMS,
        D.DENY_REASON_CATEGORY_PROHIBITED,
        D.DENY_REASON_TERRITORY_NOT_LICENSED,
        D.DENY_REASON_COMMERCIAL_USE_NOT_PERMITTED,
        grant_id=party.grant.id,
    )
    assert not decisions(failed)[party.character_id].HasField("obligations")
    assert outcome(rating_and_territory, party.character_id) == denied(  # no territory given: restricted fails
        D.DENY_REASON_RATING_EXCEEDS_TERMS, D.DENY_REASON_TERRITORY_NOT_LICENSED, grant_id=party.grant.id
    )
    assert outcome(fine, party.character_id) == allowed_with(party.grant)  # territory in any case


def test_co_appearance_prohibited_with_a_declared_or_a_detected_character(
    server: CharterServer, api: Stubs, keys: Any, clock: Any, holder: Holder
) -> None:
    rival = licensed(api, keys, clock, holder)
    loner = licensed(api, keys, clock, holder, terms(prohibited_co_appearance_ids=[rival.character_id]))
    rival_name = api.catalog.GetCharacter(
        catalog_pb.GetCharacterRequest(id=rival.character_id), metadata=auth(keys.admin)
    ).character.canonical_name
    server.services.screen.refresh_now()

    together = authorize(api, keys.generator, loner.character_id, rival.character_id)
    named = authorize(api, keys.generator, loner.character_id, prompt=f"{rival_name} waves")
    alone = authorize(api, keys.generator, loner.character_id)

    assert not together.decision.allowed
    assert outcome(together, loner.character_id) == denied(CO_APPEARANCE, grant_id=loner.grant.id)
    assert outcome(together, rival.character_id) == allowed_with(rival.grant)  # the prohibition is one-sided
    assert outcome(named, loner.character_id) == denied(CO_APPEARANCE, grant_id=loner.grant.id)
    assert (decisions(named)[rival.character_id].declared, decisions(named)[rival.character_id].detected) == (
        False,
        True,
    )
    assert outcome(alone, loner.character_id) == allowed_with(loner.grant)


def test_one_allowed_and_one_denied_character_deny_the_request(
    api: Stubs, keys: Any, clock: Any, holder: Holder
) -> None:
    party = licensed(api, keys, clock, holder)
    ungranted = opted_in_character(api, holder)

    response = authorize(api, keys.generator, ungranted, party.character_id)

    assert not response.decision.allowed
    assert [d.character_id for d in response.decision.characters] == [ungranted, party.character_id]
    assert outcome(response, ungranted) == denied(NO_GRANT)
    assert outcome(response, party.character_id) == allowed_with(party.grant)
    assert decisions(response)[party.character_id].HasField("obligations")


def test_the_first_grant_that_allows_decides_else_the_newest_good_grants_terms(
    api: Stubs, keys: Any, clock: Any, holder: Holder
) -> None:
    character_id = opted_in_character(api, holder, terms(commercial_use_allowed=True))
    older = issue(api, keys.admin, clock, character_id, keys.licensee_id, narrowed=terms(commercial_use_allowed=False))
    newer = issue(api, keys.admin, clock, character_id, keys.licensee_id)
    by_newest = authorize(api, keys.generator, character_id, context=use(commercial=True))

    suspend_grant(api, keys.admin, newer.id)
    by_older = authorize(api, keys.generator, character_id)
    older_terms_fail = authorize(api, keys.generator, character_id, context=use(commercial=True))
    revoke_grant(api, keys.admin, older.id)
    none_good = authorize(api, keys.generator, character_id)

    assert outcome(by_newest, character_id) == allowed_with(newer)
    assert outcome(by_older, character_id) == allowed_with(older)
    assert outcome(older_terms_fail, character_id) == denied(
        D.DENY_REASON_COMMERCIAL_USE_NOT_PERMITTED, grant_id=older.id
    )
    assert outcome(none_good, character_id) == denied(GRANT_SUSPENDED, grant_id=newer.id)


def test_a_grant_signed_by_a_key_revoked_since_is_invalid(clock: Any, server: CharterServer, tmp_path: Path) -> None:
    """On a server of its own: revoking a signing key affects every grant that key signed."""
    with own_database(server, tmp_path) as url, running(_settings(url, migrate=True), clock) as (own, own_api):
        admin = own.services.access.create_bootstrap_admin("authorize test admin").secret
        own_holder = new_holder(own_api.catalog, own_api.access, admin)
        character_id = opted_in_character(own_api, own_holder)
        licensee_id = new_licensee(own_api, admin)
        secret = generator_key(own_api, admin, licensee_id)
        old = issue(own_api, admin, clock, character_id, licensee_id)
        signed_before = authorize(own_api, secret, character_id)

        rotated = rotate(own_api, admin)
        after_rotation = authorize(own_api, secret, character_id)
        own_api.keys.RevokeSigningKey(
            ks.RevokeSigningKeyRequest(key_id=rotated.retired_key.key_id, reason="compromised"), metadata=auth(admin)
        )
        stored = authorize(own_api, secret, character_id)
        presented = authorize(own_api, secret, character_id, grants=(old.envelope,))
        new = issue(own_api, admin, clock, character_id, licensee_id)
        reissued = authorize(own_api, secret, character_id)

    assert old.envelope.signatures[0].keyid == rotated.retired_key.key_id
    assert signed_before.receipt.signatures[0].keyid == rotated.retired_key.key_id
    assert outcome(signed_before, character_id) == allowed_with(old)
    assert outcome(after_rotation, character_id) == allowed_with(old)  # a retired key still verifies
    assert after_rotation.receipt.signatures[0].keyid == rotated.active_key.key_id
    assert outcome(stored, character_id) == denied(GRANT_INVALID, grant_id=old.id)
    assert outcome(presented, character_id)[:2] == denied(GRANT_INVALID)[:2]
    assert outcome(reissued, character_id) == allowed_with(new)


def test_a_licensee_moved_to_another_platform_is_denied_by_terms_naming_platforms(
    api: Stubs, keys: Any, clock: Any, holder: Holder
) -> None:
    licensee_id = new_licensee(api, keys.admin, platform="test-app")
    secret = generator_key(api, keys.admin, licensee_id)
    party = licensed(api, keys, clock, holder, terms(allowed_platforms=["test-app"]), licensee_id=licensee_id)
    before = authorize(api, secret, party.character_id)

    api.catalog.UpdateLicensee(
        catalog_pb.UpdateLicenseeRequest(
            licensee=licensee_pb2.Licensee(id=licensee_id, platform="other-app"), update_mask=mask("platform")
        ),
        metadata=auth(keys.admin),
    )
    after = authorize(api, secret, party.character_id)

    assert outcome(before, party.character_id) == allowed_with(party.grant)
    assert outcome(after, party.character_id) == denied(D.DENY_REASON_PLATFORM_NOT_PERMITTED, grant_id=party.grant.id)


def test_after_a_rotation_through_another_replica_receipts_are_signed_by_the_new_key(
    moved_clock: Any, server: CharterServer, tmp_path: Path
) -> None:
    with (
        own_database(server, tmp_path) as url,
        running(_settings(url, migrate=True), moved_clock) as (own, own_api),
        running(_settings(url), moved_clock) as (_, other_api),
    ):
        admin = own.services.access.create_bootstrap_admin("authorize test admin").secret
        own_holder = new_holder(own_api.catalog, own_api.access, admin)
        character_id = opted_in_character(own_api, own_holder)
        licensee_id = new_licensee(own_api, admin)
        secret = generator_key(own_api, admin, licensee_id)
        grant = issue(own_api, admin, moved_clock, character_id, licensee_id)
        before = authorize(own_api, secret, character_id)  # the signer is cached from here on

        rotated = rotate(other_api, admin)
        time.sleep(4 * own.settings.authorization_lease_seconds)  # the lease is the bound receipts.py allows
        moved_clock.advance(timedelta(minutes=2))
        after = authorize(own_api, secret, character_id)
        ring = KeyRing.from_key_set(key_set(other_api, admin))

    checked = verify_receipt(after.receipt, keys=ring, licensee_id=licensee_id)
    assert before.receipt.signatures[0].keyid == rotated.retired_key.key_id
    assert outcome(after, character_id) == allowed_with(grant)
    assert checked.reason == "VALID"
    assert after.receipt.signatures[0].keyid == rotated.active_key.key_id


# Prompt screening -------------------------------------------------------------------------------


def test_an_undeclared_character_named_in_the_prompt_is_detected_and_decided(
    server: CharterServer, api: Stubs, keys: Any, clock: Any, holder: Holder
) -> None:
    kana = kana_marker()
    opted_out = create(api.catalog, holder.secret, holder.id, aliases=(alias(kana),))
    server.services.screen.refresh_now()
    prompt = f"😀 {kana}さん dancing"

    response = authorize(api, keys.generator, prompt=prompt)

    start = prompt.index(kana)
    assert not response.decision.allowed
    assert list(response.decision.characters) == [
        CharacterDecision(
            character_id=opted_out.id,
            allowed=False,
            reasons=[NOT_OPTED_IN],
            rights_holder_id=holder.id,
            declared=False,
            detected=True,
        )
    ]
    assert [(d.character_id, d.matched_alias, d.start, d.end, d.text, d.ambiguous) for d in response.detections] == [
        (opted_out.id, kana, start, start + len(kana), kana, False)
    ]
    assert start == 2  # spans count code points: the emoji is one


def test_declared_characters_come_first_and_a_named_declared_one_is_decided_once(
    server: CharterServer, api: Stubs, keys: Any, clock: Any, holder: Holder
) -> None:
    declared = licensed(api, keys, clock, holder)
    undeclared = licensed(api, keys, clock, holder)
    names = {
        cid: api.catalog.GetCharacter(catalog_pb.GetCharacterRequest(id=cid), metadata=auth(keys.admin)).character
        for cid in (declared.character_id, undeclared.character_id)
    }
    server.services.screen.refresh_now()
    prompt = f"{names[undeclared.character_id].canonical_name} meets {names[declared.character_id].canonical_name}"

    response = authorize(api, keys.generator, declared.character_id, prompt=prompt)

    assert response.decision.allowed
    assert [(d.character_id, d.declared, d.detected, d.allowed) for d in response.decision.characters] == [
        (declared.character_id, True, True, True),
        (undeclared.character_id, False, True, True),
    ]
    assert [d.character_id for d in response.detections] == [undeclared.character_id, declared.character_id]
    assert outcome(response, undeclared.character_id) == allowed_with(undeclared.grant)


def test_an_ambiguous_alias_is_reported_but_decided_only_if_declared(
    server: CharterServer, api: Stubs, keys: Any, clock: Any, holder: Holder
) -> None:
    shared = f"ミク{kana_marker()}"
    other_holder = new_holder(api.catalog, api.access, keys.admin)
    mine = create(api.catalog, holder.secret, holder.id, aliases=(alias(shared, ambiguous=True),))
    theirs = create(api.catalog, other_holder.secret, other_holder.id, aliases=(alias(shared, ambiguous=True),))
    opt_in(api.catalog, holder.secret, mine.id)
    grant = issue(api, keys.admin, clock, mine.id, keys.licensee_id)
    server.services.screen.refresh_now()
    prompt = f"a picture of {shared}"

    undeclared = authorize(api, keys.generator, prompt=prompt)
    declared = authorize(api, keys.generator, mine.id, prompt=prompt)

    start = prompt.index(shared)
    expected_detections = sorted(
        (cid, shared, start, start + len(shared), shared, True) for cid in (mine.id, theirs.id)
    )
    for response in (undeclared, declared):
        assert (
            sorted((d.character_id, d.matched_alias, d.start, d.end, d.text, d.ambiguous) for d in response.detections)
            == expected_detections
        )
    assert list(undeclared.decision.characters) == []
    assert undeclared.decision.allowed  # nothing to decide: an ambiguous name may name something else
    assert [(d.character_id, d.declared, d.detected) for d in declared.decision.characters] == [(mine.id, True, True)]
    assert outcome(declared, mine.id) == allowed_with(grant)


# Presented grants -------------------------------------------------------------------------------


def test_a_presented_grant_decides_its_character_and_the_others_use_the_record(
    api: Stubs, keys: Any, clock: Any, holder: Holder
) -> None:
    first = licensed(api, keys, clock, holder)
    newer = issue(api, keys.admin, clock, first.character_id, keys.licensee_id)
    other = licensed(api, keys, clock, holder)
    unrelated = licensed(api, keys, clock, holder)

    by_record = authorize(api, keys.generator, first.character_id)
    presented = authorize(
        api,
        keys.generator,
        first.character_id,
        other.character_id,
        grants=(first.grant.envelope, unrelated.grant.envelope),  # a grant for a character not asked about is ignored
    )

    assert outcome(by_record, first.character_id) == allowed_with(newer)
    assert presented.decision.allowed
    assert outcome(presented, first.character_id) == allowed_with(first.grant)
    assert outcome(presented, other.character_id) == allowed_with(other.grant)
    assert unrelated.character_id not in decisions(presented)


def test_another_licensees_grant_presented_is_invalid_even_with_a_grant_on_record(
    api: Stubs, keys: Any, clock: Any, holder: Holder
) -> None:
    own = licensed(api, keys, clock, holder)
    foreign = issue(api, keys.admin, clock, own.character_id, new_licensee(api, keys.admin))

    response = authorize(api, keys.generator, own.character_id, grants=(foreign.envelope,))
    both = authorize(api, keys.generator, own.character_id, grants=(foreign.envelope, own.grant.envelope))

    assert not response.decision.allowed
    assert outcome(response, own.character_id) == denied(GRANT_INVALID, grant_id=foreign.id)
    assert outcome(both, own.character_id) == allowed_with(own.grant)  # any presented grant that allows decides


def test_a_presented_grant_with_a_corrupted_signature_is_invalid(
    api: Stubs, keys: Any, clock: Any, holder: Holder
) -> None:
    party = licensed(api, keys, clock, holder)
    corrupted = copy(party.grant.envelope)
    signature = bytearray(corrupted.signatures[0].sig)
    signature[10] ^= 0x01
    corrupted.signatures[0].sig = bytes(signature)

    response = authorize(api, keys.generator, party.character_id, grants=(corrupted,))

    assert outcome(response, party.character_id) == denied(GRANT_INVALID)
    assert not response.decision.allowed


def test_a_presented_revoked_grant_is_revoked_even_with_a_live_grant_on_record(
    api: Stubs, keys: Any, clock: Any, holder: Holder
) -> None:
    old = licensed(api, keys, clock, holder)
    live = issue(api, keys.admin, clock, old.character_id, keys.licensee_id)
    revoke_grant(api, keys.admin, old.grant.id)

    presented = authorize(api, keys.generator, old.character_id, grants=(old.grant.envelope,))
    by_record = authorize(api, keys.generator, old.character_id)

    assert outcome(presented, old.character_id) == denied(GRANT_REVOKED, grant_id=old.grant.id)
    assert outcome(by_record, old.character_id) == allowed_with(live)


# Quotas -----------------------------------------------------------------------------------------


def quota_used(server: CharterServer, licensee_id: str, character_id: str, period: str) -> int:
    """The uses counted, as stored (no RPC reads the counters)."""
    with server.db.uow() as uow:
        return int(uow.quotas.used(licensee_id, character_id, period))


def test_a_daily_quota_allows_that_many_uses_per_day(
    server: CharterServer, api: Stubs, keys: Any, moved_clock: Any, holder: Holder
) -> None:
    move_to(moved_clock, noon_tomorrow(moved_clock))
    party = licensed(api, keys, moved_clock, holder, terms(daily_quota=2))
    ungranted = opted_in_character(api, holder)

    denied_together = authorize(api, keys.generator, party.character_id, ungranted)  # denied: counts nothing
    uses = [authorize(api, keys.generator, party.character_id) for _ in range(3)]
    day = f"D{moved_clock.now():%Y-%m-%d}"
    counted = quota_used(server, keys.licensee_id, party.character_id, day)
    moved_clock.advance(timedelta(days=1))
    next_day = authorize(api, keys.generator, party.character_id)

    assert not denied_together.decision.allowed
    assert outcome(denied_together, party.character_id) == allowed_with(party.grant)
    assert [outcome(r, party.character_id) for r in uses] == [
        allowed_with(party.grant),
        allowed_with(party.grant),
        denied(QUOTA_EXHAUSTED, grant_id=party.grant.id),
    ]
    assert not uses[2].decision.allowed
    assert not decisions(uses[2])[party.character_id].HasField("obligations")
    assert counted == 2
    assert outcome(next_day, party.character_id) == allowed_with(party.grant)


def test_a_monthly_quota_spans_days_and_resets_with_the_month(
    api: Stubs, keys: Any, moved_clock: Any, holder: Holder
) -> None:
    now = moved_clock.now()
    tenth = (now.replace(day=1) + timedelta(days=32)).replace(day=10, hour=12, minute=0, second=0)
    move_to(moved_clock, tenth)
    party = licensed(api, keys, moved_clock, holder, terms(monthly_quota=2), lifetime=timedelta(days=90))

    seen = [outcome(authorize(api, keys.generator, party.character_id), party.character_id)]
    moved_clock.advance(timedelta(days=1))
    seen += [outcome(authorize(api, keys.generator, party.character_id), party.character_id) for _ in range(2)]
    move_to(moved_clock, (tenth + timedelta(days=31)).replace(day=10))
    seen.append(outcome(authorize(api, keys.generator, party.character_id), party.character_id))

    assert seen == [
        allowed_with(party.grant),
        allowed_with(party.grant),
        denied(QUOTA_EXHAUSTED, grant_id=party.grant.id),
        allowed_with(party.grant),
    ]


def test_an_exhausted_quota_counts_none_of_the_requests_other_uses(
    server: CharterServer, api: Stubs, keys: Any, moved_clock: Any, holder: Holder
) -> None:
    move_to(moved_clock, noon_tomorrow(moved_clock))
    roomy = licensed(api, keys, moved_clock, holder, terms(daily_quota=2))
    scarce = licensed(api, keys, moved_clock, holder, terms(daily_quota=1))
    day = f"D{moved_clock.now():%Y-%m-%d}"

    both = [authorize(api, keys.generator, roomy.character_id, scarce.character_id) for _ in range(2)]
    roomy_used = quota_used(server, keys.licensee_id, roomy.character_id, day)
    alone = authorize(api, keys.generator, roomy.character_id)

    assert both[0].decision.allowed
    assert not both[1].decision.allowed
    assert outcome(both[1], scarce.character_id) == denied(QUOTA_EXHAUSTED, grant_id=scarce.grant.id)
    assert roomy_used == 1  # the second request counted nothing, not even the use that had room
    assert outcome(alone, roomy.character_id) == allowed_with(roomy.grant)


def test_a_retry_with_the_same_request_id_returns_the_first_decision_and_counts_once(
    api: Stubs, keys: Any, moved_clock: Any, holder: Holder
) -> None:
    move_to(moved_clock, noon_tomorrow(moved_clock))
    party = licensed(api, keys, moved_clock, holder, terms(daily_quota=2))
    first_id, second_id = f"r-{unique()}", f"r-{unique()}"

    first = authorize(api, keys.generator, party.character_id, request_id=first_id)
    retried = authorize(api, keys.generator, party.character_id, request_id=first_id)
    second = authorize(api, keys.generator, party.character_id, request_id=second_id)
    third = authorize(api, keys.generator, party.character_id, request_id=f"r-{unique()}")
    retried_after_exhaustion = authorize(api, keys.generator, party.character_id, request_id=first_id)
    reused = refused(
        api.authz.Authorize,
        request(party.character_id, request_id=first_id, context=use(territory="JP")),
        keys.generator,
    )

    assert retried == first
    assert retried_after_exhaustion == first
    assert first.decision.allowed and second.decision.allowed
    assert second.decision.receipt_id != first.decision.receipt_id
    assert outcome(third, party.character_id) == denied(QUOTA_EXHAUSTED, grant_id=party.grant.id)
    assert (reused.code, reused.reason) == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")


def test_concurrent_retries_of_one_request_count_it_once(
    server: CharterServer, api: Stubs, replica: Stubs, default_lease: None, keys: Any, moved_clock: Any, holder: Holder
) -> None:
    threads = 6
    move_to(moved_clock, noon_tomorrow(moved_clock))
    party = licensed(api, keys, moved_clock, holder, terms(daily_quota=3))
    day = f"D{moved_clock.now():%Y-%m-%d}"
    retried = request(party.character_id, request_id=f"r-{unique()}")

    def attempt(index: int) -> az.AuthorizeResponse | tuple[grpc.StatusCode, str | None]:
        target = api if index % 2 else replica
        try:
            return target.authz.Authorize(retried, metadata=auth(keys.generator))
        except grpc.RpcError as error:
            return error.code(), failure(error).reason

    with ThreadPoolExecutor(max_workers=threads) as pool:
        answers = list(pool.map(attempt, range(threads)))
    later = api.authz.Authorize(retried, metadata=auth(keys.generator))

    answered = [a for a in answers if isinstance(a, az.AuthorizeResponse)]
    failed = [a for a in answers if not isinstance(a, az.AuthorizeResponse)]
    assert answered, answers
    assert set(failed) <= {(grpc.StatusCode.ABORTED, "REQUEST_IN_PROGRESS")}  # "decided first; retry"
    assert all(a == later for a in answered)
    assert later.decision.allowed
    assert quota_used(server, keys.licensee_id, party.character_id, day) == 1


def test_concurrent_requests_on_two_replicas_never_exceed_a_quota(
    server: CharterServer, api: Stubs, replica: Stubs, default_lease: None, keys: Any, moved_clock: Any, holder: Holder
) -> None:
    quota, threads, per_thread = 4, 6, 4
    move_to(moved_clock, noon_tomorrow(moved_clock))
    party = licensed(api, keys, moved_clock, holder, terms(daily_quota=quota))
    day = f"D{moved_clock.now():%Y-%m-%d}"

    def worker(index: int) -> list[az.AuthorizeResponse]:
        target = api if index % 2 else replica
        return [authorize(target, keys.generator, party.character_id) for _ in range(per_thread)]

    with ThreadPoolExecutor(max_workers=threads) as pool:
        responses = [r for batch in pool.map(worker, range(threads)) for r in batch]

    allowed = [r for r in responses if r.decision.allowed]
    refused_ones = [r for r in responses if not r.decision.allowed]
    assert len(responses) == threads * per_thread
    assert len(allowed) == quota
    assert {tuple(outcome(r, party.character_id)[1]) for r in refused_ones} == {(QUOTA_EXHAUSTED,)}
    assert len({r.decision.receipt_id for r in responses}) == len(responses)
    assert quota_used(server, keys.licensee_id, party.character_id, day) == quota


def grant_used(server: CharterServer, grant_id: str) -> int:
    with server.db.uow() as uow:
        return int(uow.quotas.grant_used(grant_id))


def test_a_grant_cap_allows_that_many_uses_over_the_grants_life(
    server: CharterServer, api: Stubs, keys: Any, moved_clock: Any, holder: Holder
) -> None:
    move_to(moved_clock, noon_tomorrow(moved_clock))
    capped = licensed(api, keys, moved_clock, holder, max_uses=2, lifetime=timedelta(days=90))
    uncapped = licensed(api, keys, moved_clock, holder, lifetime=timedelta(days=90))
    claims = grant_pb2.GrantClaims.FromString(capped.grant.envelope.payload)

    first = authorize(api, keys.generator, capped.character_id)
    moved_clock.advance(timedelta(days=40))  # another day and month: the cap spans the grant's life
    second = authorize(api, keys.generator, capped.character_id)
    third = authorize(api, keys.generator, capped.character_id)
    free = [authorize(api, keys.generator, uncapped.character_id).decision.allowed for _ in range(3)]

    assert (capped.grant.max_uses, claims.max_uses) == (2, 2)
    assert not uncapped.grant.HasField("max_uses")
    assert outcome(first, capped.character_id) == allowed_with(capped.grant)
    assert outcome(second, capped.character_id) == allowed_with(capped.grant)
    assert outcome(third, capped.character_id) == denied(QUOTA_EXHAUSTED, grant_id=capped.grant.id)
    assert free == [True, True, True]
    assert grant_used(server, capped.grant.id) == 2


def test_a_grant_cap_of_zero_allows_no_use(api: Stubs, keys: Any, clock: Any, holder: Holder) -> None:
    capped = licensed(api, keys, clock, holder, max_uses=0)

    response = authorize(api, keys.generator, capped.character_id)

    assert outcome(response, capped.character_id) == denied(QUOTA_EXHAUSTED, grant_id=capped.grant.id)


def test_concurrent_requests_on_two_replicas_never_exceed_a_grant_cap(
    server: CharterServer, api: Stubs, replica: Stubs, default_lease: None, keys: Any, clock: Any, holder: Holder
) -> None:
    cap, threads, per_thread = 5, 6, 4
    capped = licensed(api, keys, clock, holder, max_uses=cap)

    def worker(index: int) -> list[az.AuthorizeResponse]:
        target = api if index % 2 else replica
        return [authorize(target, keys.generator, capped.character_id) for _ in range(per_thread)]

    with ThreadPoolExecutor(max_workers=threads) as pool:
        responses = [r for batch in pool.map(worker, range(threads)) for r in batch]

    allowed = [r for r in responses if r.decision.allowed]
    assert len(allowed) == cap
    assert {tuple(outcome(r, capped.character_id)[1]) for r in responses if not r.decision.allowed} == {
        (QUOTA_EXHAUSTED,)
    }
    assert grant_used(server, capped.grant.id) == cap


# Who may ask ------------------------------------------------------------------------------------


def test_only_a_generator_key_may_authorize_even_a_valid_request(
    api: Stubs, keys: Any, clock: Any, holder: Holder
) -> None:
    """The role matrix sends empty requests; this sends one the generator is allowed."""
    party = licensed(api, keys, clock, holder)
    valid = request(party.character_id)

    got = {
        role: refused(api.authz.Authorize, valid, getattr(keys, role)) for role in ("admin", "rights_holder", "auditor")
    }

    assert {role: (g.code, g.reason) for role, g in got.items()} == dict.fromkeys(
        got, (grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_PERMITTED")
    )
    assert api.authz.Authorize(valid, metadata=auth(keys.generator)).decision.allowed
