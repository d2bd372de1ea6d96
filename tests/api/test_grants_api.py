"""Grants through gRPC: issuing signed grants (claims, refusals, narrowing, lifetime, idempotency),
the lifecycle (suspend, reinstate, revoke, the revocation log's sequence numbers), rights-holder
scoping, listing, and opting a character out or archiving it revoking its grants.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import grpc
import pytest
from charter import envelope as dsse
from charter.v1 import catalog_service_pb2 as catalog_pb
from charter.v1 import grant_service_pb2 as gs
from charter.v1 import key_service_pb2 as ks
from charter.v1 import terms_pb2
from charter_server.app import build_server
from charter_server.config import Settings
from charter_server.domain import ids
from charter_server.domain.models import RevocationKind

from .character_helpers import Holder, create, new_holder, refused, terms
from .grant_helpers import (
    ACTIVE,
    REVOKED,
    SUSPENDED,
    Grant,
    Stubs,
    Verdict,
    World,
    claims_of,
    get_grant,
    issue,
    issue_request,
    new_licensee,
    new_world,
    opted_in_character,
    revocation_head,
    revocation_log,
    stamp,
    stubs,
    verdict,
    verify,
)
from .helpers import auth, failure, unique

T = terms_pb2
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


@pytest.fixture(scope="module")
def api(channel: grpc.Channel) -> Stubs:
    return stubs(channel)


@pytest.fixture
def world(api: Stubs, keys: Any) -> World:
    """A fresh rights holder, an opted-in character of it and a fresh licensee."""
    return new_world(api, keys.admin)


def list_grants(api: Stubs, secret: str, **filters: Any) -> list[Grant]:
    """Every grant a caller sees with these filters, page by page."""
    request = gs.ListGrantsRequest(page_size=filters.pop("page_size", 50), **filters)
    found: list[Grant] = []
    while True:
        response = api.grants.ListGrants(request, metadata=auth(secret))
        found.extend(response.grants)
        if not response.next_page_token:
            return found
        request.page_token = response.next_page_token


def suspend(api: Stubs, grant_id: str, secret: str, reason: str = "under review") -> gs.SuspendGrantResponse:
    return api.grants.SuspendGrant(gs.SuspendGrantRequest(id=grant_id, reason=reason), metadata=auth(secret))


def reinstate(api: Stubs, grant_id: str, secret: str) -> gs.ReinstateGrantResponse:
    return api.grants.ReinstateGrant(gs.ReinstateGrantRequest(id=grant_id), metadata=auth(secret))


def revoke(api: Stubs, grant_id: str, secret: str, reason: str = "licence ended") -> gs.RevokeGrantResponse:
    return api.grants.RevokeGrant(gs.RevokeGrantRequest(id=grant_id, reason=reason), metadata=auth(secret))


# Issue --------------------------------------------------------------------------------------


def test_an_issued_grant_is_active_and_verifies_in_both_forms(api: Stubs, keys: Any, clock: Any, world: World) -> None:
    grant = issue(api, keys.admin, clock, world.character_id, world.licensee_id)

    as_protobuf = verify(api, keys.admin, grant.envelope, world.licensee_id, world.character_id)
    as_json = verify(api, keys.auditor, dsse.to_json(grant.envelope), world.licensee_id, world.character_id)

    assert grant.state == ACTIVE
    assert ids.is_valid("grant", grant.id)
    assert grant.envelope.payload_type == dsse.GRANT_PAYLOAD_TYPE
    assert [s.keyid for s in grant.envelope.signatures] == [grant.envelope.signatures[0].keyid]
    for answer in (as_protobuf, as_json):
        assert answer.verdict == Verdict.GRANT_VERDICT_VALID
        assert answer.claims == claims_of(grant)
        assert answer.key_id == grant.envelope.signatures[0].keyid
    assert get_grant(api, keys.auditor, grant.id) == grant


def test_the_claims_are_the_grant_as_issued(api: Stubs, keys: Any, clock: Any, world: World) -> None:
    current = api.catalog.GetTerms(
        catalog_pb.GetTermsRequest(character_id=world.character_id), metadata=auth(keys.admin)
    ).terms
    not_before = clock.now() + timedelta(hours=1)
    before = clock.now()

    grant = issue(
        api, keys.admin, clock, world.character_id, world.licensee_id, not_before=not_before, lifetime=timedelta(days=7)
    )

    after = clock.now()
    claims = claims_of(grant)
    granted = T.Terms()
    granted.CopyFrom(current)
    for output_only in ("version", "character_id", "create_time", "author_key_id"):
        granted.ClearField(output_only)
    assert (claims.grant_id, claims.character_id, claims.rights_holder_id, claims.licensee_id) == (
        grant.id,
        world.character_id,
        world.holder.id,
        world.licensee_id,
    )
    assert claims.terms == granted == grant.terms
    assert claims.terms_version == current.version == grant.terms_version == 1
    assert claims.not_before.ToDatetime() == not_before.replace(tzinfo=None)
    assert claims.expire_time.ToDatetime() == (not_before + timedelta(days=7)).replace(tzinfo=None)
    assert before - timedelta(seconds=1) <= claims.issue_time.ToDatetime(tzinfo=before.tzinfo) <= after
    assert (claims.not_before, claims.expire_time, claims.issue_time) == (
        grant.not_before,
        grant.expire_time,
        grant.issue_time,
    )
    assert claims.issuer == "charter"
    assert grant.rights_holder_id == world.holder.id


def test_issue_without_not_before_starts_now(api: Stubs, keys: Any, clock: Any, world: World) -> None:
    before = clock.now()

    grant = issue(api, keys.admin, clock, world.character_id, world.licensee_id)

    claims = claims_of(grant)
    not_before = claims.not_before.ToDatetime(tzinfo=before.tzinfo)
    assert before <= not_before <= claims.issue_time.ToDatetime(tzinfo=before.tzinfo)


def test_issue_is_refused_for_a_character_never_opted_in(api: Stubs, keys: Any, clock: Any, world: World) -> None:
    character = create(api.catalog, world.holder.secret, world.holder.id)

    got = refused(api.grants.IssueGrant, issue_request(clock, character.id, world.licensee_id), keys.admin)

    assert (got.code, got.reason) == (FAILED_PRECONDITION, "CHARACTER_NOT_OPTED_IN")


def test_issue_is_refused_for_a_character_opted_out(api: Stubs, keys: Any, clock: Any, world: World) -> None:
    api.catalog.OptOut(catalog_pb.OptOutRequest(character_id=world.character_id), metadata=auth(world.holder.secret))

    got = refused(api.grants.IssueGrant, issue_request(clock, world.character_id, world.licensee_id), keys.admin)

    assert (got.code, got.reason) == (FAILED_PRECONDITION, "CHARACTER_NOT_OPTED_IN")


def test_issue_is_refused_for_a_suspended_character(api: Stubs, keys: Any, clock: Any, world: World) -> None:
    api.catalog.SuspendCharacter(
        catalog_pb.SuspendCharacterRequest(id=world.character_id, reason="dispute"), metadata=auth(keys.admin)
    )

    got = refused(api.grants.IssueGrant, issue_request(clock, world.character_id, world.licensee_id), keys.admin)

    assert (got.code, got.reason) == (FAILED_PRECONDITION, "CHARACTER_SUSPENDED")


def test_issue_is_refused_for_an_archived_licensee(api: Stubs, keys: Any, clock: Any, world: World) -> None:
    api.catalog.ArchiveLicensee(catalog_pb.ArchiveLicenseeRequest(id=world.licensee_id), metadata=auth(keys.admin))

    got = refused(api.grants.IssueGrant, issue_request(clock, world.character_id, world.licensee_id), keys.admin)

    assert (got.code, got.reason) == (FAILED_PRECONDITION, "LICENSEE_ARCHIVED")


@pytest.mark.parametrize("by", ["allowed_licensee_ids", "allowed_platforms"])
def test_issue_is_refused_for_a_licensee_the_terms_exclude(api: Stubs, keys: Any, clock: Any, by: str) -> None:
    holder = new_holder(api.catalog, api.access, keys.admin)
    allowed = new_licensee(api, keys.admin, platform="allowed-app")
    excluded = new_licensee(api, keys.admin, platform="other-app")
    limit = (
        {"allowed_licensee_ids": [allowed]} if by == "allowed_licensee_ids" else {"allowed_platforms": ["allowed-app"]}
    )
    character_id = opted_in_character(api, holder, terms(**limit))

    got = refused(api.grants.IssueGrant, issue_request(clock, character_id, excluded), keys.admin)
    granted = issue(api, keys.admin, clock, character_id, allowed)

    assert (got.code, got.reason) == (FAILED_PRECONDITION, "LICENSEE_NOT_PERMITTED_BY_TERMS")
    assert granted.state == ACTIVE


def test_issue_names_a_missing_character_or_licensee(api: Stubs, keys: Any, clock: Any, world: World) -> None:
    no_character = refused(
        api.grants.IssueGrant, issue_request(clock, ids.new_id("character"), world.licensee_id), keys.admin
    )
    no_licensee = refused(
        api.grants.IssueGrant, issue_request(clock, world.character_id, ids.new_id("licensee")), keys.admin
    )

    assert (no_character.code, no_character.reason) == (grpc.StatusCode.NOT_FOUND, "CHARACTER_NOT_FOUND")
    assert (no_licensee.code, no_licensee.reason) == (grpc.StatusCode.NOT_FOUND, "LICENSEE_NOT_FOUND")


# Narrowing ----------------------------------------------------------------------------------


class Rich:
    """A character with terms that restrict every field, so each can be widened."""

    def __init__(self, api: Stubs, keys: Any, clock: Any) -> None:
        self.holder = new_holder(api.catalog, api.access, keys.admin)
        self.licensee_id = new_licensee(api, keys.admin)
        other = create(api.catalog, self.holder.secret, self.holder.id).id
        self.now = clock.now()
        self.terms = T.Terms(
            permitted_use_types=[T.USE_TYPE_IMAGE_GENERATION, T.USE_TYPE_VIDEO_GENERATION],
            max_content_rating=T.CONTENT_RATING_TEEN,
            prohibited_categories=[T.CONTENT_CATEGORY_SEXUAL, T.CONTENT_CATEGORY_POLITICAL],
            allowed_territories=["JP", "US"],
            excluded_territories=["KP"],
            commercial_use_allowed=False,
            allowed_licensee_ids=[self.licensee_id],
            allowed_platforms=["test-app"],
            prohibited_co_appearance_ids=[other],
            valid_from=stamp(self.now - timedelta(days=1)),
            valid_until=stamp(self.now + timedelta(days=400)),
            attribution_text="© Rich Studio",
            watermark_required=True,
            revenue_share_bps=500,
            per_use_fee=T.Money(currency_code="JPY", minor_units=10),
            daily_quota=100,
            monthly_quota=1000,
        )
        self.character_id = opted_in_character(api, self.holder, self.terms)

    def narrowed(self, change: Callable[[T.Terms], Any]) -> T.Terms:
        """The character's terms with one change applied."""
        result = T.Terms()
        result.CopyFrom(self.terms)
        change(result)
        return result


@pytest.fixture(scope="module")
def rich(api: Stubs, keys: Any, clock: Any) -> Rich:
    return Rich(api, keys, clock)


def test_narrower_terms_are_accepted_and_signed(api: Stubs, keys: Any, clock: Any, rich: Rich) -> None:
    def narrow(t: T.Terms) -> None:
        del t.permitted_use_types[1]
        t.max_content_rating = T.CONTENT_RATING_ALL_AGES
        t.prohibited_categories.append(T.CONTENT_CATEGORY_HATE)
        del t.allowed_territories[1]
        t.excluded_territories.append("CN")
        t.valid_from.FromDatetime(rich.now + timedelta(days=1))
        t.valid_until.FromDatetime(rich.now + timedelta(days=100))
        t.revenue_share_bps = 1000
        t.per_use_fee.minor_units = 20
        t.daily_quota = 10
        t.monthly_quota = 100

    narrowed = rich.narrowed(narrow)

    grant = issue(api, keys.admin, clock, rich.character_id, rich.licensee_id, narrowed=narrowed)

    assert claims_of(grant).terms == narrowed == grant.terms
    assert verdict(api, keys.admin, grant) == Verdict.GRANT_VERDICT_VALID


def test_the_same_terms_as_narrowing_are_accepted(api: Stubs, keys: Any, clock: Any, rich: Rich) -> None:
    grant = issue(api, keys.admin, clock, rich.character_id, rich.licensee_id, narrowed=rich.narrowed(lambda t: None))

    assert claims_of(grant).terms == rich.terms


def _set(name: str, value: Any) -> Callable[[T.Terms], None]:
    return lambda t: setattr(t, name, value)


def _clear(name: str) -> Callable[[T.Terms], None]:
    return lambda t: t.ClearField(name)


WIDER: dict[str, tuple[Callable[[T.Terms], Any], str]] = {
    "more_use_types": (lambda t: t.permitted_use_types.append(T.USE_TYPE_AUDIO_GENERATION), "permitted_use_types"),
    "higher_rating": (_set("max_content_rating", T.CONTENT_RATING_ADULT), "max_content_rating"),
    "dropped_prohibited_category": (lambda t: t.prohibited_categories.pop(), "prohibited_categories"),
    "more_territories": (lambda t: t.allowed_territories.append("FR"), "allowed_territories"),
    "worldwide": (_clear("allowed_territories"), "allowed_territories"),
    "dropped_excluded_territory": (_clear("excluded_territories"), "excluded_territories"),
    "commercial": (_set("commercial_use_allowed", True), "commercial_use_allowed"),
    "another_licensee": (
        lambda t: t.allowed_licensee_ids.append(ids.new_id("licensee")),
        "allowed_licensee_ids",
    ),
    "any_licensee": (_clear("allowed_licensee_ids"), "allowed_licensee_ids"),
    "any_platform": (_clear("allowed_platforms"), "allowed_platforms"),
    "another_platform": (lambda t: t.allowed_platforms.append("other-app"), "allowed_platforms"),
    "dropped_co_appearance": (_clear("prohibited_co_appearance_ids"), "prohibited_co_appearance_ids"),
    "earlier_start": (lambda t: setattr(t.valid_from, "seconds", t.valid_from.seconds - 1), "valid_from"),
    "no_start": (_clear("valid_from"), "valid_from"),
    "later_end": (lambda t: setattr(t.valid_until, "seconds", t.valid_until.seconds + 1), "valid_until"),
    "no_end": (_clear("valid_until"), "valid_until"),
    "other_attribution": (_set("attribution_text", "© Someone Else"), "attribution_text"),
    "no_attribution": (_set("attribution_text", ""), "attribution_text"),
    "no_watermark": (_set("watermark_required", False), "watermark_required"),
    "lower_share": (_set("revenue_share_bps", 499), "revenue_share_bps"),
    "lower_fee": (lambda t: setattr(t.per_use_fee, "minor_units", 9), "per_use_fee"),
    "other_currency": (lambda t: setattr(t.per_use_fee, "currency_code", "USD"), "per_use_fee"),
    "no_fee": (_clear("per_use_fee"), "per_use_fee"),
    "higher_daily_quota": (_set("daily_quota", 101), "daily_quota"),
    "no_daily_quota": (_clear("daily_quota"), "daily_quota"),
    "higher_monthly_quota": (_set("monthly_quota", 1001), "monthly_quota"),
    "no_monthly_quota": (_clear("monthly_quota"), "monthly_quota"),
}


@pytest.mark.parametrize("how", list(WIDER))
def test_wider_terms_are_refused_naming_the_field(api: Stubs, keys: Any, clock: Any, rich: Rich, how: str) -> None:
    change, field = WIDER[how]
    request = issue_request(clock, rich.character_id, rich.licensee_id, narrowed=rich.narrowed(change))

    got = refused(api.grants.IssueGrant, request, keys.admin)

    assert (got.code, got.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "TERMS_WIDER_THAN_CHARACTER")
    assert got.fields == (f"narrowed_terms.{field}",)


def test_every_wider_field_is_named_and_nothing_is_issued(api: Stubs, keys: Any, clock: Any, rich: Rich) -> None:
    def widen(t: T.Terms) -> None:
        for how in ("higher_rating", "lower_share", "no_watermark"):
            WIDER[how][0](t)

    before = list_grants(api, keys.admin, character_id=rich.character_id)
    request = issue_request(clock, rich.character_id, rich.licensee_id, narrowed=rich.narrowed(widen))

    got = refused(api.grants.IssueGrant, request, keys.admin)

    assert got.reason == "TERMS_WIDER_THAN_CHARACTER"
    assert set(got.fields) == {
        "narrowed_terms.max_content_rating",
        "narrowed_terms.revenue_share_bps",
        "narrowed_terms.watermark_required",
    }
    assert list_grants(api, keys.admin, character_id=rich.character_id) == before


# Validity window and lifetime -----------------------------------------------------------------


def test_expire_time_is_required_after_not_before_and_in_the_future(
    api: Stubs, keys: Any, clock: Any, world: World
) -> None:
    now = clock.now()
    missing = gs.IssueGrantRequest(character_id=world.character_id, licensee_id=world.licensee_id)
    before_start = issue_request(
        clock, world.character_id, world.licensee_id, not_before=now + timedelta(days=2), lifetime=-timedelta(days=1)
    )
    at_start = issue_request(
        clock, world.character_id, world.licensee_id, not_before=now + timedelta(days=2), lifetime=timedelta()
    )
    past = issue_request(
        clock, world.character_id, world.licensee_id, not_before=now - timedelta(days=2), lifetime=timedelta(days=1)
    )

    answers = {
        name: refused(api.grants.IssueGrant, r, keys.admin)
        for name, r in (("missing", missing), ("before_start", before_start), ("at_start", at_start), ("past", past))
    }

    for name, got in answers.items():
        assert (got.code, got.reason, got.fields) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_FIELD",
            ("expire_time",),
        ), name
    assert list_grants(api, keys.admin, character_id=world.character_id) == []


@pytest.fixture(scope="module")
def short_lived(server: Any, clock: Any) -> Iterator[Stubs]:
    """A second server over the session's database whose grants may last at most two days."""
    settings = Settings(
        listen="127.0.0.1:0",
        database_url=server.settings.database_url,
        log_format="json",
        shutdown_grace_seconds=1.0,
        max_grant_lifetime_days=2,
        authorization_lease_seconds=0.05,  # as the session server: replicas share one lease
    )
    other = build_server(settings, clock=clock)
    other.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{other.port}") as opened:
            yield stubs(opened)
    finally:
        other.stop(grace=0)


def test_the_lifetime_is_bounded_by_the_configured_maximum(
    api: Stubs, short_lived: Stubs, keys: Any, clock: Any, world: World
) -> None:
    start = clock.now() + timedelta(hours=1)
    longest = issue_request(clock, world.character_id, world.licensee_id, not_before=start, lifetime=timedelta(days=2))
    too_long = issue_request(
        clock, world.character_id, world.licensee_id, not_before=start, lifetime=timedelta(days=2, seconds=1)
    )
    default_max = issue_request(clock, world.character_id, world.licensee_id, lifetime=timedelta(days=300))

    got = refused(short_lived.grants.IssueGrant, too_long, keys.admin)
    issued = short_lived.grants.IssueGrant(longest, metadata=auth(keys.admin)).grant
    on_the_session_server = api.grants.IssueGrant(default_max, metadata=auth(keys.admin)).grant

    assert (got.code, got.reason, got.fields) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", ("expire_time",))
    assert issued.expire_time == stamp(start + timedelta(days=2))
    assert verdict(api, keys.admin, issued) == Verdict.GRANT_VERDICT_NOT_YET_VALID
    assert on_the_session_server.state == ACTIVE


def test_the_session_server_refuses_more_than_a_year(api: Stubs, keys: Any, clock: Any, world: World) -> None:
    request = issue_request(clock, world.character_id, world.licensee_id, lifetime=timedelta(days=367))

    got = refused(api.grants.IssueGrant, request, keys.admin)

    assert (got.code, got.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ("expire_time",))


# Idempotency --------------------------------------------------------------------------------


def test_a_retry_with_the_same_request_id_returns_the_first_grant(
    api: Stubs, keys: Any, clock: Any, world: World
) -> None:
    request = issue_request(clock, world.character_id, world.licensee_id, request_id=unique("req"))

    first = api.grants.IssueGrant(request, metadata=auth(keys.admin)).grant
    again = api.grants.IssueGrant(request, metadata=auth(keys.admin)).grant
    other = gs.IssueGrantRequest()
    other.CopyFrom(request)
    other.expire_time.seconds += 60
    reused = refused(api.grants.IssueGrant, other, keys.admin)

    assert again == first
    assert [g.id for g in list_grants(api, keys.admin, character_id=world.character_id)] == [first.id]
    assert (reused.code, reused.reason) == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")


# Lifecycle ----------------------------------------------------------------------------------


def test_suspend_reinstate_revoke(api: Stubs, keys: Any, clock: Any, world: World) -> None:
    grant = issue(api, keys.admin, clock, world.character_id, world.licensee_id)

    suspended = suspend(api, grant.id, keys.admin, reason="payment overdue")
    while_suspended = verdict(api, keys.admin, grant)
    reinstated = reinstate(api, grant.id, keys.admin)
    while_reinstated = verdict(api, keys.admin, grant)
    revoked = revoke(api, grant.id, keys.admin, reason="contract ended")
    after_revocation = verdict(api, keys.admin, grant)
    stored = get_grant(api, keys.admin, grant.id)

    assert (suspended.grant.state, suspended.grant.state_reason) == (SUSPENDED, "payment overdue")
    assert while_suspended == Verdict.GRANT_VERDICT_SUSPENDED
    assert reinstated.grant.state == ACTIVE
    assert while_reinstated == Verdict.GRANT_VERDICT_VALID
    assert (revoked.grant.state, revoked.grant.state_reason) == (REVOKED, "contract ended")
    assert after_revocation == Verdict.GRANT_VERDICT_REVOKED
    assert 0 < suspended.sequence < reinstated.sequence < revoked.sequence
    assert (stored.state, stored.state_reason, stored.state_time) == (
        REVOKED,
        "contract ended",
        revoked.grant.state_time,
    )
    assert stored.envelope == grant.envelope


def test_the_revocation_log_records_each_change_in_order(
    api: Stubs, server: Any, keys: Any, clock: Any, world: World
) -> None:
    head = revocation_head(server)
    grant = issue(api, keys.admin, clock, world.character_id, world.licensee_id)

    sequences = [
        suspend(api, grant.id, keys.admin, reason="a").sequence,
        reinstate(api, grant.id, keys.admin).sequence,
        revoke(api, grant.id, keys.admin, reason="b").sequence,
    ]

    events = revocation_log(server, head)
    assert [(e.sequence, e.grant_id, e.kind, e.reason) for e in events] == [
        (sequences[0], grant.id, RevocationKind.SUSPENDED, "a"),
        (sequences[1], grant.id, RevocationKind.REINSTATED, ""),
        (sequences[2], grant.id, RevocationKind.REVOKED, "b"),
    ]
    assert sequences == [head + 1, head + 2, head + 3]


def test_transitions_are_enforced(api: Stubs, keys: Any, clock: Any, world: World) -> None:
    grant = issue(api, keys.admin, clock, world.character_id, world.licensee_id)
    suspend_request = gs.SuspendGrantRequest(id=grant.id, reason="x")
    reinstate_request = gs.ReinstateGrantRequest(id=grant.id)
    revoke_request = gs.RevokeGrantRequest(id=grant.id, reason="x")

    reinstate_active = refused(api.grants.ReinstateGrant, reinstate_request, keys.admin)
    suspend(api, grant.id, keys.admin)
    suspend_twice = refused(api.grants.SuspendGrant, suspend_request, keys.admin)
    revoke(api, grant.id, keys.admin)  # a suspended grant may be revoked
    on_revoked = {
        "suspend": refused(api.grants.SuspendGrant, suspend_request, keys.admin),
        "reinstate": refused(api.grants.ReinstateGrant, reinstate_request, keys.admin),
        "revoke": refused(api.grants.RevokeGrant, revoke_request, keys.admin),
    }

    assert (reinstate_active.code, reinstate_active.reason) == (FAILED_PRECONDITION, "GRANT_NOT_SUSPENDED")
    assert (suspend_twice.code, suspend_twice.reason) == (FAILED_PRECONDITION, "GRANT_ALREADY_SUSPENDED")
    assert {name: (got.code, got.reason) for name, got in on_revoked.items()} == {
        name: (FAILED_PRECONDITION, "GRANT_REVOKED") for name in on_revoked
    }
    assert get_grant(api, keys.admin, grant.id).state == REVOKED


def test_a_missing_grant_is_not_found(api: Stubs, keys: Any) -> None:
    missing = ids.new_id("grant")

    answers = [
        refused(api.grants.GetGrant, gs.GetGrantRequest(id=missing), keys.admin),
        refused(api.grants.SuspendGrant, gs.SuspendGrantRequest(id=missing, reason="x"), keys.admin),
        refused(api.grants.ReinstateGrant, gs.ReinstateGrantRequest(id=missing), keys.admin),
        refused(api.grants.RevokeGrant, gs.RevokeGrantRequest(id=missing, reason="x"), keys.admin),
    ]

    assert {(got.code, got.reason) for got in answers} == {(grpc.StatusCode.NOT_FOUND, "GRANT_NOT_FOUND")}


def test_concurrent_revocations_get_consecutive_sequence_numbers(
    api: Stubs, server: Any, keys: Any, clock: Any, world: World
) -> None:
    grants = [issue(api, keys.admin, clock, world.character_id, world.licensee_id) for _ in range(12)]
    head = revocation_head(server)
    start = threading.Barrier(len(grants))

    def change(index: int) -> int:
        start.wait(timeout=10)
        grant_id = grants[index].id
        if index % 3 == 0:
            return int(suspend(api, grant_id, keys.admin).sequence)
        return int(revoke(api, grant_id, keys.admin).sequence)

    with ThreadPoolExecutor(max_workers=len(grants)) as pool:
        sequences = list(pool.map(change, range(len(grants))))

    assert sorted(sequences) == list(range(head + 1, head + 1 + len(grants)))
    assert sorted(e.sequence for e in revocation_log(server, head)) == sorted(sequences)


# Rights holders -----------------------------------------------------------------------------


@pytest.fixture
def two_worlds(api: Stubs, keys: Any, clock: Any) -> tuple[World, Grant, World, Grant]:
    """Two rights holders, each with a character, a licensee and one grant."""
    mine, theirs = new_world(api, keys.admin), new_world(api, keys.admin)
    return (
        mine,
        issue(api, keys.admin, clock, mine.character_id, mine.licensee_id),
        theirs,
        issue(api, keys.admin, clock, theirs.character_id, theirs.licensee_id),
    )


def test_a_rights_holder_lists_only_grants_of_its_own_characters(
    api: Stubs, two_worlds: tuple[World, Grant, World, Grant]
) -> None:
    mine, my_grant, theirs, _ = two_worlds
    secret = mine.holder.secret

    everything = list_grants(api, secret)
    by_their_character = list_grants(api, secret, character_id=theirs.character_id)
    by_their_licensee = list_grants(api, secret, licensee_id=theirs.licensee_id)
    by_my_id = list_grants(api, secret, rights_holder_id=mine.holder.id)
    by_their_id = refused(api.grants.ListGrants, gs.ListGrantsRequest(rights_holder_id=theirs.holder.id), secret)

    assert [g.id for g in everything] == [my_grant.id]
    assert (by_their_character, by_their_licensee) == ([], [])
    assert [g.id for g in by_my_id] == [my_grant.id]
    assert (by_their_id.code, by_their_id.reason) == (grpc.StatusCode.PERMISSION_DENIED, "RESOURCE_NOT_OWNED")


def test_a_rights_holder_reaches_only_its_own_grants(
    api: Stubs, keys: Any, two_worlds: tuple[World, Grant, World, Grant]
) -> None:
    mine, my_grant, _, their_grant = two_worlds
    secret = mine.holder.secret
    missing = ids.new_id("grant")

    seen = get_grant(api, secret, my_grant.id)
    revoked = revoke(api, my_grant.id, secret, reason="we withdraw it")
    denied = {
        "get_theirs": refused(api.grants.GetGrant, gs.GetGrantRequest(id=their_grant.id), secret),
        "get_missing": refused(api.grants.GetGrant, gs.GetGrantRequest(id=missing), secret),
        "revoke_theirs": refused(api.grants.RevokeGrant, gs.RevokeGrantRequest(id=their_grant.id, reason="x"), secret),
        "revoke_missing": refused(api.grants.RevokeGrant, gs.RevokeGrantRequest(id=missing, reason="x"), secret),
    }

    assert seen == my_grant
    assert (revoked.grant.state, revoked.sequence > 0) == (REVOKED, True)
    assert {name: (got.code, got.reason) for name, got in denied.items()} == {
        name: (grpc.StatusCode.PERMISSION_DENIED, "RESOURCE_NOT_OWNED") for name in denied
    }
    assert get_grant(api, keys.admin, their_grant.id).state == ACTIVE


# Listing ------------------------------------------------------------------------------------


def test_list_filters_and_pages_newest_first(api: Stubs, keys: Any, clock: Any, world: World) -> None:
    other_character = opted_in_character(api, world.holder)
    other_licensee = new_licensee(api, keys.admin)
    made = [
        issue(api, keys.admin, clock, character, licensee)
        for character, licensee in (
            (world.character_id, world.licensee_id),
            (world.character_id, other_licensee),
            (other_character, world.licensee_id),
            (world.character_id, world.licensee_id),
            (other_character, other_licensee),
        )
    ]
    suspend(api, made[3].id, keys.admin)
    revoke(api, made[4].id, keys.admin)

    pages: list[list[str]] = []
    request = gs.ListGrantsRequest(rights_holder_id=world.holder.id, page_size=2)
    while True:
        response = api.grants.ListGrants(request, metadata=auth(keys.auditor))
        pages.append([g.id for g in response.grants])
        if not response.next_page_token:
            break
        request.page_token = response.next_page_token

    def listed(**filters: Any) -> list[str]:
        return [g.id for g in list_grants(api, keys.admin, rights_holder_id=world.holder.id, **filters)]

    newest_first = [g.id for g in reversed(made)]
    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:5]]
    assert listed(character_id=world.character_id) == [made[3].id, made[1].id, made[0].id]
    assert listed(licensee_id=other_licensee) == [made[4].id, made[1].id]
    assert listed(character_id=world.character_id, licensee_id=world.licensee_id) == [made[3].id, made[0].id]
    assert listed(state=ACTIVE) == [made[2].id, made[1].id, made[0].id]
    assert listed(state=SUSPENDED) == [made[3].id]
    assert listed(state=REVOKED) == [made[4].id]


# Opting out and archiving -------------------------------------------------------------------


def _live_and_dead(api: Stubs, keys: Any, clock: Any, world: World) -> tuple[list[Grant], Grant]:
    """Three live grants of the world's character (one suspended) and one already revoked."""
    made = [issue(api, keys.admin, clock, world.character_id, world.licensee_id) for _ in range(4)]
    suspend(api, made[1].id, keys.admin)
    revoke(api, made[3].id, keys.admin, reason="earlier")
    return made[:3], made[3]


def test_opting_out_revokes_every_live_grant(api: Stubs, server: Any, keys: Any, clock: Any, world: World) -> None:
    live, dead = _live_and_dead(api, keys, clock, world)
    head = revocation_head(server)

    answer = api.catalog.OptOut(
        catalog_pb.OptOutRequest(character_id=world.character_id, reason="we leave"), metadata=auth(world.holder.secret)
    )

    assert answer.revoked_grant_count == len(live)
    for grant in live:
        stored = get_grant(api, keys.admin, grant.id)
        assert (stored.state, stored.state_reason) == (REVOKED, "we leave")
        assert verdict(api, keys.admin, grant) == Verdict.GRANT_VERDICT_REVOKED
    assert get_grant(api, keys.admin, dead.id).state_reason == "earlier"
    events = revocation_log(server, head)
    # The grants' revocations, then the character's own event (offline deciders say why).
    revoked, withdrawn = events[:-1], events[-1]
    assert sorted((e.grant_id, e.kind) for e in revoked) == sorted((g.id, RevocationKind.REVOKED) for g in live)
    assert (withdrawn.character_id, withdrawn.kind, withdrawn.reason) == (
        world.character_id,
        RevocationKind.CHARACTER_WITHDRAWN,
        "we leave",
    )
    assert [e.sequence for e in events] == list(range(head + 1, head + 2 + len(live)))


def test_archiving_the_character_revokes_every_live_grant(
    api: Stubs, server: Any, keys: Any, clock: Any, world: World
) -> None:
    live, _ = _live_and_dead(api, keys, clock, world)
    head = revocation_head(server)

    api.catalog.ArchiveCharacter(catalog_pb.ArchiveCharacterRequest(id=world.character_id), metadata=auth(keys.admin))

    assert {get_grant(api, keys.admin, g.id).state for g in live} == {REVOKED}
    assert {verdict(api, keys.admin, g) for g in live} == {Verdict.GRANT_VERDICT_REVOKED}
    *revoked, archived = revocation_log(server, head)
    assert sorted(e.grant_id for e in revoked) == sorted(g.id for g in live)
    assert (archived.character_id, archived.kind) == (world.character_id, RevocationKind.CHARACTER_ARCHIVED)


def test_opting_out_without_grants_revokes_nothing(api: Stubs, keys: Any, world: World) -> None:
    answer = api.catalog.OptOut(
        catalog_pb.OptOutRequest(character_id=world.character_id), metadata=auth(world.holder.secret)
    )

    assert answer.revoked_grant_count == 0


def test_opting_in_again_does_not_revive_revoked_grants(api: Stubs, keys: Any, clock: Any, world: World) -> None:
    grant = issue(api, keys.admin, clock, world.character_id, world.licensee_id)
    holder: Holder = world.holder
    api.catalog.OptOut(catalog_pb.OptOutRequest(character_id=world.character_id), metadata=auth(holder.secret))
    api.catalog.OptIn(
        catalog_pb.OptInRequest(character_id=world.character_id, terms=terms()), metadata=auth(holder.secret)
    )

    again = issue(api, keys.admin, clock, world.character_id, world.licensee_id)

    assert verdict(api, keys.admin, grant) == Verdict.GRANT_VERDICT_REVOKED
    assert verdict(api, keys.admin, again) == Verdict.GRANT_VERDICT_VALID
    assert claims_of(again).terms_version == 2


def test_a_grant_refusal_carries_the_request_id(api: Stubs, keys: Any) -> None:
    """A refusal's request id is reported (the contract every error keeps)."""
    with pytest.raises(grpc.RpcError) as raised:
        api.grants.GetGrant(gs.GetGrantRequest(id=ids.new_id("grant")), metadata=auth(keys.admin))

    got = failure(raised.value)
    assert got.request_id and got.request_id == got.trailing_request_id


@pytest.mark.parametrize("by", ["allowed_licensee_ids", "allowed_platforms"])
def test_issue_is_refused_when_the_narrowing_excludes_the_licensee(api: Stubs, keys: Any, clock: Any, by: str) -> None:
    """A grant whose own signed terms exclude its licensee would be a promise of nothing."""
    holder = new_holder(api.catalog, api.access, keys.admin)
    licensee = new_licensee(api, keys.admin, platform="app-one")
    other = new_licensee(api, keys.admin, platform="app-two")
    if by == "allowed_licensee_ids":
        current, narrowed = terms(allowed_licensee_ids=[licensee, other]), terms(allowed_licensee_ids=[other])
    else:
        current, narrowed = terms(allowed_platforms=["app-one", "app-two"]), terms(allowed_platforms=["app-two"])
    character_id = opted_in_character(api, holder, current)

    got = refused(api.grants.IssueGrant, issue_request(clock, character_id, licensee, narrowed=narrowed), keys.admin)
    for_the_other = issue(api, keys.admin, clock, character_id, other, narrowed=narrowed)

    assert (got.code, got.reason) == (FAILED_PRECONDITION, "LICENSEE_NOT_PERMITTED_BY_TERMS")
    assert for_the_other.state == ACTIVE


def test_a_replica_signs_with_the_key_another_replica_rotated_to(
    api: Stubs, short_lived: Stubs, keys: Any, clock: Any, world: World
) -> None:
    """Two servers on one database: after a rotation through one, the other signs with the new key."""
    before = issue_request(clock, world.character_id, world.licensee_id, lifetime=timedelta(days=1))
    short_lived.grants.IssueGrant(before, metadata=auth(keys.admin))  # the replica has a signer now
    rotated = api.keys.RotateSigningKey(ks.RotateSigningKeyRequest(), metadata=auth(keys.admin))

    after = short_lived.grants.IssueGrant(before, metadata=auth(keys.admin)).grant

    assert after.envelope.signatures[0].keyid == rotated.active_key.key_id
    assert verdict(api, keys.admin, after) == Verdict.GRANT_VERDICT_VALID


def test_grants_issued_while_keys_rotate_all_verify(
    api: Stubs, short_lived: Stubs, keys: Any, clock: Any, world: World
) -> None:
    """Issuing through one replica while another rotates never signs with a key already retired."""
    request = issue_request(clock, world.character_id, world.licensee_id, lifetime=timedelta(days=1))
    start = threading.Barrier(12)

    def work(index: int) -> Grant | None:
        start.wait(timeout=10)
        if index % 3 == 0:
            api.keys.RotateSigningKey(ks.RotateSigningKeyRequest(), metadata=auth(keys.admin))
            return None
        return short_lived.grants.IssueGrant(request, metadata=auth(keys.admin)).grant

    with ThreadPoolExecutor(max_workers=12) as pool:
        issued = [g for g in pool.map(work, range(12)) if g is not None]

    assert {verdict(api, keys.admin, g) for g in issued} == {Verdict.GRANT_VERDICT_VALID}
