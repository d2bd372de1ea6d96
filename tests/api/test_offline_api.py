"""OfflineService end to end on both backends: licensee keys (who may register, rotate, revoke),
grant bundles, quota leases (never more than the quota across leases and online decisions, given
back on return and on reclaim), and decision records reported through ReportUsage (accepted once,
and forged, replayed, over-lease, mismatched and late records refused with their own reasons).
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import datetime, timedelta
from typing import Any

import grpc
import pytest
from charter.decision_records import DecisionRecordSigner, generate_key
from charter.v1 import decision_pb2, offline_pb2, usage_pb2
from charter.v1 import grant_service_pb2 as gs
from charter.v1 import offline_service_pb2 as osv
from charter.v1 import transparency_pb2 as tp
from charter.v1 import usage_service_pb2 as us
from charter.v1.envelope_pb2 import Envelope
from charter_server.domain import ids
from charter_server.storage.offline import LeaseRepository

from .character_helpers import terms
from .grant_helpers import Grant, Stubs, issue, stubs
from .helpers import auth, failure
from .log_helpers import logged_since, verified_checkpoint, wait_for_size
from .offline_helpers import (
    CONTEXT,
    Edge,
    OfflineStub,
    UsageStub,
    call_error,
    granted,
    lease,
    new_edge,
    offline_record,
    reasons,
    report,
    signed,
    ttl,
)
from .test_usage_api import authorize
from .test_usage_api import record as receipt_record

KEY = offline_pb2.LicenseeKey
LEASE = offline_pb2.QuotaLease


@pytest.fixture(scope="module")
def api(channel: grpc.Channel) -> Stubs:
    return stubs(channel)


@pytest.fixture(scope="module")
def offline(channel: grpc.Channel) -> OfflineStub:
    return OfflineStub(channel)


@pytest.fixture(scope="module")
def usage(channel: grpc.Channel) -> UsageStub:
    return UsageStub(channel)


@pytest.fixture
def edge(api: Stubs, offline: OfflineStub, keys: Any) -> Edge:
    return new_edge(api, offline, keys.admin)


# Licensee keys ----------------------------------------------------------------------------------


def test_licensee_admin_registers_rotates_and_revokes_its_own_keys(offline: OfflineStub, edge: Edge) -> None:
    _seed, second = generate_key()
    listed = offline.ListLicenseeKeys(osv.ListLicenseeKeysRequest(), metadata=auth(edge.licensee_admin)).keys
    first = listed[0]

    rotated = offline.RegisterLicenseeKey(
        osv.RegisterLicenseeKeyRequest(public_key=second, display_name="farm 2", replaces_key_id=first.key_id),
        metadata=auth(edge.licensee_admin),
    )
    revoked = offline.RevokeLicenseeKey(
        osv.RevokeLicenseeKeyRequest(key_id=rotated.key.key_id, reason="leaked"), metadata=auth(edge.licensee_admin)
    ).key
    again = call_error(
        offline.RevokeLicenseeKey,
        osv.RevokeLicenseeKeyRequest(key_id=rotated.key.key_id, reason="x"),
        edge.licensee_admin,
    )
    seen_by_generator = offline.ListLicenseeKeys(osv.ListLicenseeKeysRequest(), metadata=auth(edge.generator)).keys

    assert [k.public_key for k in listed] == [edge.public_key]
    assert (rotated.key.state, rotated.key.licensee_id, rotated.key.public_key) == (
        KEY.STATE_ACTIVE,
        edge.licensee_id,
        second,
    )
    assert rotated.retired_key.key_id == first.key_id and rotated.retired_key.state == KEY.STATE_RETIRED
    assert rotated.retired_key.HasField("retire_time")
    assert revoked.state == KEY.STATE_REVOKED and revoked.HasField("revoke_time")
    assert (failure(again).code, failure(again).reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "LICENSEE_KEY_ALREADY_REVOKED",
    )
    assert [(k.key_id, k.state) for k in seen_by_generator] == [
        (rotated.key.key_id, KEY.STATE_REVOKED),
        (first.key_id, KEY.STATE_RETIRED),
    ]


def test_staff_register_for_a_named_licensee(offline: OfflineStub, edge: Edge, keys: Any) -> None:
    _seed, public = generate_key()
    missing = call_error(
        offline.RegisterLicenseeKey, osv.RegisterLicenseeKeyRequest(public_key=public, display_name="x"), keys.admin
    )

    key = offline.RegisterLicenseeKey(
        osv.RegisterLicenseeKeyRequest(licensee_id=edge.licensee_id, public_key=public, display_name="staff"),
        metadata=auth(keys.admin),
    ).key

    assert (failure(missing).code, failure(missing).fields) == (grpc.StatusCode.INVALID_ARGUMENT, ("licensee_id",))
    assert key.licensee_id == edge.licensee_id


def test_a_public_key_is_registered_once(offline: OfflineStub, edge: Edge, keys: Any) -> None:
    error = call_error(
        offline.RegisterLicenseeKey,
        osv.RegisterLicenseeKeyRequest(licensee_id=edge.licensee_id, public_key=edge.public_key, display_name="dup"),
        keys.admin,
    )

    assert (failure(error).code, failure(error).reason) == (grpc.StatusCode.ALREADY_EXISTS, "LICENSEE_KEY_EXISTS")


@pytest.mark.parametrize(
    ("public_key", "display_name", "replaces", "fields"),
    [
        (b"short", "ok", "", ("public_key",)),
        (b"\x01" * 32, "", "", ("display_name",)),
        (b"\x02" * 32, "ok", "lk_nothex", ("replaces_key_id",)),
    ],
)
def test_register_names_the_invalid_field(
    offline: OfflineStub, edge: Edge, public_key: bytes, display_name: str, replaces: str, fields: tuple[str, ...]
) -> None:
    request = osv.RegisterLicenseeKeyRequest(public_key=public_key, display_name=display_name, replaces_key_id=replaces)
    error = call_error(offline.RegisterLicenseeKey, request, edge.licensee_admin)

    assert (failure(error).code, failure(error).fields) == (grpc.StatusCode.INVALID_ARGUMENT, fields)


def test_a_licensee_admin_key_acts_only_for_its_own_licensee(
    api: Stubs, offline: OfflineStub, edge: Edge, keys: Any
) -> None:
    other = new_edge(api, offline, keys.admin)
    other_key = offline.ListLicenseeKeys(osv.ListLicenseeKeysRequest(), metadata=auth(other.licensee_admin)).keys[0]
    _seed, public = generate_key()

    register = call_error(
        offline.RegisterLicenseeKey,
        osv.RegisterLicenseeKeyRequest(licensee_id=other.licensee_id, public_key=public, display_name="x"),
        edge.licensee_admin,
    )
    listing = call_error(
        offline.ListLicenseeKeys, osv.ListLicenseeKeysRequest(licensee_id=other.licensee_id), edge.licensee_admin
    )
    revoke = call_error(
        offline.RevokeLicenseeKey,
        osv.RevokeLicenseeKeyRequest(key_id=other_key.key_id, reason="x"),
        edge.licensee_admin,
    )
    missing = call_error(
        offline.RevokeLicenseeKey,
        osv.RevokeLicenseeKeyRequest(key_id=ids.new_id("licensee_key"), reason="x"),
        edge.licensee_admin,
    )
    after = offline.ListLicenseeKeys(osv.ListLicenseeKeysRequest(), metadata=auth(other.licensee_admin)).keys[0]

    assert (failure(register).code, failure(register).reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "RESOURCE_NOT_OWNED",
    )
    assert (failure(listing).code, failure(listing).reason) == (grpc.StatusCode.PERMISSION_DENIED, "RESOURCE_NOT_OWNED")
    assert (failure(revoke).code, failure(revoke).reason) == (grpc.StatusCode.NOT_FOUND, "LICENSEE_KEY_NOT_FOUND")
    assert (failure(missing).code, failure(missing).reason) == (grpc.StatusCode.NOT_FOUND, "LICENSEE_KEY_NOT_FOUND")
    assert after.state == KEY.STATE_ACTIVE


# Grant bundles ----------------------------------------------------------------------------------


def test_a_generator_fetches_its_own_live_grants_with_envelopes(
    api: Stubs, offline: OfflineStub, edge: Edge, keys: Any, clock: Any, server: Any
) -> None:
    kept = granted(api, keys.admin, clock, edge)
    gone = granted(api, keys.admin, clock, edge)
    api.grants.RevokeGrant(gs.RevokeGrantRequest(id=gone.id, reason="ended"), metadata=auth(keys.admin))
    with server.db.uow() as uow:
        head = uow.revocations.head()

    bundle = offline.GetGrantBundle(osv.GetGrantBundleRequest(), metadata=auth(edge.generator))

    assert [g.id for g in bundle.grants] == [kept.id]
    assert bundle.grants[0].envelope == kept.envelope
    assert bundle.revocation_sequence >= head
    assert kept.envelope.signatures[0].keyid in {k.key_id for k in bundle.key_set.keys}
    assert [k.public_key for k in bundle.licensee_keys] == [edge.public_key]


# Quota leases -----------------------------------------------------------------------------------


def test_leases_and_online_decisions_share_the_quota_exactly(
    api: Stubs, offline: OfflineStub, edge: Edge, keys: Any, clock: Any
) -> None:
    grant = granted(api, keys.admin, clock, edge, terms(daily_quota=5))

    first = lease(offline, edge, grant, 3)
    too_many = call_error(
        offline.LeaseQuota,
        osv.LeaseQuotaRequest(character_id=grant.character_id, grant_id=grant.id, uses=3, ttl=ttl(60)),
        edge.generator,
    )
    online = authorize(api, edge.generator, grant.character_id)
    second = lease(offline, edge, grant, 1)
    denied = authorize(api, edge.generator, grant.character_id)

    assert (first.uses, first.state, first.reported_uses) == (3, LEASE.STATE_OPEN, 0)
    assert (failure(too_many).code, failure(too_many).reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "LEASE_REFUSED")
    assert failure(too_many).metadata.get("cause") == "QUOTA"
    assert online.decision.allowed and second.uses == 1
    assert not denied.decision.allowed


def test_a_returned_lease_gives_back_what_was_not_spent(
    api: Stubs, offline: OfflineStub, edge: Edge, keys: Any, clock: Any
) -> None:
    grant = granted(api, keys.admin, clock, edge, max_uses=4)
    held = lease(offline, edge, grant, 4)

    returned = offline.ReturnQuotaLease(
        osv.ReturnQuotaLeaseRequest(lease_id=held.lease_id, spent_uses=1), metadata=auth(edge.generator)
    )
    again = call_error(offline.ReturnQuotaLease, osv.ReturnQuotaLeaseRequest(lease_id=held.lease_id), edge.generator)
    renew = call_error(
        offline.RenewQuotaLease, osv.RenewQuotaLeaseRequest(lease_id=held.lease_id, ttl=ttl(60)), edge.generator
    )
    next_lease = lease(offline, edge, grant, 3)

    assert (returned.released_uses, returned.lease.uses, returned.lease.state) == (3, 1, LEASE.STATE_RETURNED)
    assert (failure(again).code, failure(again).reason) == (grpc.StatusCode.FAILED_PRECONDITION, "LEASE_CLOSED")
    assert (failure(renew).code, failure(renew).reason) == (grpc.StatusCode.FAILED_PRECONDITION, "LEASE_CLOSED")
    assert next_lease.uses == 3


def test_a_lease_returned_while_it_is_renewed_takes_no_uses_after_its_return(
    api: Stubs, offline: OfflineStub, edge: Edge, keys: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The renewal is held between reading the lease and growing it while the return arrives: the
    # return must wait for it (or the renewal find the lease returned), never leave a returned
    # lease holding more uses than it kept.
    grant = granted(api, keys.admin, clock, edge, max_uses=10)
    held = lease(offline, edge, grant, 2)
    taking, go_on = threading.Event(), threading.Event()
    take_grant = LeaseRepository.take_grant

    def held_back(repository: LeaseRepository, grant_id: str, n: int, limit: int) -> bool:
        if grant_id == grant.id and not go_on.is_set():
            taking.set()
            go_on.wait(10)
        return take_grant(repository, grant_id, n, limit)

    monkeypatch.setattr(LeaseRepository, "take_grant", held_back)
    renew = osv.RenewQuotaLeaseRequest(lease_id=held.lease_id, add_uses=3, ttl=ttl(600))
    give_back = osv.ReturnQuotaLeaseRequest(lease_id=held.lease_id, spent_uses=1)
    with ThreadPoolExecutor(max_workers=2) as pool:
        renewing = pool.submit(offline.RenewQuotaLease, renew, metadata=auth(edge.generator), timeout=20)
        assert taking.wait(10)
        returning = pool.submit(offline.ReturnQuotaLease, give_back, metadata=auth(edge.generator), timeout=20)
        wait([returning], timeout=1)  # done at once without the lease's lock; else it waits for the renewal
        go_on.set()
        outcomes = [f.exception() or f.result() for f in (renewing, returning)]
    monkeypatch.undo()
    left = lease(offline, edge, grant, 9)

    returned = outcomes[1]
    assert isinstance(returned, osv.ReturnQuotaLeaseResponse)
    assert (returned.lease.state, returned.lease.uses) == (LEASE.STATE_RETURNED, 1)
    assert left.uses == 9  # 10 capped, 1 kept: nothing else is held by the returned lease


def test_renewing_adds_uses_within_the_quota(
    api: Stubs, offline: OfflineStub, edge: Edge, keys: Any, clock: Any
) -> None:
    grant = granted(api, keys.admin, clock, edge, terms(monthly_quota=10))
    held = lease(offline, edge, grant, 4, seconds=60)

    renewed = offline.RenewQuotaLease(
        osv.RenewQuotaLeaseRequest(lease_id=held.lease_id, add_uses=6, ttl=ttl(3600)), metadata=auth(edge.generator)
    ).lease
    over = call_error(
        offline.RenewQuotaLease,
        osv.RenewQuotaLeaseRequest(lease_id=held.lease_id, add_uses=1, ttl=ttl(60)),
        edge.generator,
    )

    assert renewed.uses == 10
    assert renewed.expire_time.ToDatetime() > held.expire_time.ToDatetime()
    assert (failure(over).code, failure(over).reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "LEASE_REFUSED")


def test_a_lease_is_logged_as_it_is_leased_renewed_and_returned(
    api: Stubs, offline: OfflineStub, edge: Edge, keys: Any, clock: Any, channel: grpc.Channel
) -> None:
    grant = granted(api, keys.admin, clock, edge, terms(monthly_quota=10))
    before = verified_checkpoint(channel, keys.auditor).checkpoint.size
    held = lease(offline, edge, grant, 4)
    offline.RenewQuotaLease(
        osv.RenewQuotaLeaseRequest(lease_id=held.lease_id, add_uses=2, ttl=ttl(600)), metadata=auth(edge.generator)
    )
    offline.ReturnQuotaLease(
        osv.ReturnQuotaLeaseRequest(lease_id=held.lease_id, spent_uses=1), metadata=auth(edge.generator)
    )
    wait_for_size(channel, keys.auditor, before + 3)

    def logged(secret: str) -> list[tuple[int, int, str]]:
        found = logged_since(
            channel,
            secret,
            before,
            3,
            lambda e: e.WhichOneof("change") == "quota_lease" and e.quota_lease.lease_id == held.lease_id,
        )
        return [(e.quota_lease.action, e.quota_lease.uses, e.actor_key_id) for e in found]

    generator_id = edge.generator.partition(".")[0]
    actions = tp.QuotaLeaseLogged
    expected = [
        (actions.ACTION_LEASED, 4, generator_id),
        (actions.ACTION_RENEWED, 6, generator_id),
        (actions.ACTION_RETURNED, 1, generator_id),
    ]
    assert logged(keys.auditor) == expected
    assert logged(edge.generator) == expected  # the licensee reads its own leases
    assert logged(edge.holder.secret) == expected  # and the rights holder whose quota they count


def test_lease_refusals(api: Stubs, offline: OfflineStub, edge: Edge, keys: Any, clock: Any) -> None:
    free = granted(api, keys.admin, clock, edge)
    other = new_edge(api, offline, keys.admin)
    theirs = granted(api, keys.admin, clock, other, max_uses=3)

    no_quota = call_error(
        offline.LeaseQuota,
        osv.LeaseQuotaRequest(character_id=free.character_id, grant_id=free.id, uses=1, ttl=ttl(60)),
        edge.generator,
    )
    not_mine = call_error(
        offline.LeaseQuota,
        osv.LeaseQuotaRequest(character_id=theirs.character_id, grant_id=theirs.id, uses=1, ttl=ttl(60)),
        edge.generator,
    )
    invalid = call_error(offline.LeaseQuota, osv.LeaseQuotaRequest(uses=0), edge.generator)
    unknown = call_error(
        offline.RenewQuotaLease,
        osv.RenewQuotaLeaseRequest(lease_id=ids.new_id("quota_lease"), ttl=ttl(60)),
        edge.generator,
    )

    assert (failure(no_quota).code, failure(no_quota).fields) == (grpc.StatusCode.INVALID_ARGUMENT, ("grant_id",))
    assert (failure(not_mine).code, failure(not_mine).reason) == (grpc.StatusCode.NOT_FOUND, "GRANT_NOT_FOUND")
    assert failure(invalid).code == grpc.StatusCode.INVALID_ARGUMENT
    assert set(failure(invalid).fields) == {"character_id", "grant_id", "uses", "ttl"}
    assert (failure(unknown).code, failure(unknown).reason) == (grpc.StatusCode.NOT_FOUND, "LEASE_NOT_FOUND")


def test_a_ttl_far_out_of_range_is_an_invalid_field_and_changes_nothing(
    api: Stubs, offline: OfflineStub, edge: Edge, keys: Any, clock: Any
) -> None:
    grant = granted(api, keys.admin, clock, edge, max_uses=10)
    held = lease(offline, edge, grant, 2)

    huge = call_error(
        offline.LeaseQuota,
        osv.LeaseQuotaRequest(character_id=grant.character_id, grant_id=grant.id, uses=1, ttl=ttl(10**15)),
        edge.generator,
    )
    negative = call_error(
        offline.RenewQuotaLease,
        osv.RenewQuotaLeaseRequest(lease_id=held.lease_id, add_uses=1, ttl=ttl(-(10**15))),
        edge.generator,
    )
    rest = lease(offline, edge, grant, 8)  # all that is left: the refused calls took nothing

    for refused in (huge, negative):
        assert (failure(refused).code, failure(refused).reason, failure(refused).fields) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_FIELD",
            ("ttl",),
        )
    assert rest.uses == 8


def test_concurrent_leases_never_exceed_the_cap(
    api: Stubs, offline: OfflineStub, edge: Edge, keys: Any, clock: Any
) -> None:
    cap = 20
    grant = granted(api, keys.admin, clock, edge, max_uses=cap)
    start = threading.Barrier(6)

    def take() -> int:
        start.wait(timeout=10)
        taken = 0
        for _ in range(40):  # bounded: at most 40 attempts per thread
            try:
                taken += lease(offline, edge, grant, 2).uses
            except grpc.RpcError as error:
                if failure(error).reason == "LEASE_REFUSED":
                    return taken
                assert error.code() == grpc.StatusCode.UNAVAILABLE, failure(error)  # busy: retry
        return taken

    with ThreadPoolExecutor(max_workers=6) as pool:
        total = sum(pool.map(lambda _: take(), range(6), timeout=60))

    assert total == cap


# Decision records -------------------------------------------------------------------------------


def test_decision_records_are_counted_once_and_paid_like_receipts(
    api: Stubs, offline: OfflineStub, usage: UsageStub, edge: Edge, keys: Any, clock: Any
) -> None:
    grant = granted(api, keys.admin, clock, edge, terms(revenue_share_bps=1000))
    now = clock.now()
    envelope = signed(edge, grant, now)
    record = offline_record(envelope, grant.character_id, now)
    record.attributed_revenue.currency_code, record.attributed_revenue.minor_units = "USD", 500

    first = report(usage, edge.generator, record)
    repeat = report(usage, edge.generator, record)
    replay = report(usage, edge.generator, offline_record(envelope, grant.character_id, now))
    period = f"{now:%Y-%m}"
    statement = usage.GetStatement(
        us.GetStatementRequest(rights_holder_id=edge.holder.id, period=period), metadata=auth(keys.admin)
    ).statement

    assert reasons(first) == ["ACCEPTED"] and reasons(repeat) == ["DUPLICATE"]
    assert reasons(replay) == ["DECISION_RECORD_REPLAYED"]
    assert [(line.character_id, line.uses, line.revenue_share_minor_units) for line in statement.lines] == [
        (grant.character_id, 1, 50)
    ]


def test_an_accepted_record_is_logged_under_its_payload_digest(
    api: Stubs, offline: OfflineStub, usage: UsageStub, edge: Edge, keys: Any, clock: Any, channel: grpc.Channel
) -> None:
    grant = granted(api, keys.admin, clock, edge, terms())
    now = clock.now()
    envelope = signed(edge, grant, now)
    before = verified_checkpoint(channel, keys.auditor).checkpoint.size

    (accepted,) = report(usage, edge.generator, offline_record(envelope, grant.character_id, now))
    logged = logged_since(
        channel,
        keys.auditor,
        before,
        1,
        lambda e: e.WhichOneof("change") == "usage" and e.usage.usage_id == accepted.usage_id,
    )

    assert reasons([accepted]) == ["ACCEPTED"]
    # As a receipt's use names its receipt: an auditor ties the paid use to the record signed.
    assert [e.usage.receipt_digest for e in logged] == [hashlib.sha256(envelope.payload).digest()]


def test_forged_and_mismatched_records_are_refused(
    api: Stubs, offline: OfflineStub, usage: UsageStub, edge: Edge, keys: Any, clock: Any
) -> None:
    grant = granted(api, keys.admin, clock, edge)
    other = granted(api, keys.admin, clock, edge)
    now = clock.now()
    seed, _public = generate_key()
    stranger = DecisionRecordSigner(key_id=edge.signer.key_id, private_key=seed, licensee_id=edge.licensee_id)
    forged = stranger.sign(
        character_id=grant.character_id,
        grant_id=grant.id,
        terms_version=grant.terms_version,
        allowed=True,
        context=CONTEXT,
    )
    tampered = signed(edge, grant, now)
    tampered.payload = tampered.payload.replace(grant.id.encode(), other.id.encode())
    denied = signed(edge, grant, now, allowed=False)
    wrong_grant = signed(edge, other, now)

    results = report(
        usage,
        edge.generator,
        offline_record(forged, grant.character_id, now),
        offline_record(tampered, grant.character_id, now),
        offline_record(denied, grant.character_id, now),
        offline_record(wrong_grant, grant.character_id, now),
    )

    assert reasons(results) == [
        "DECISION_RECORD_INVALID",
        "DECISION_RECORD_INVALID",
        "DECISION_RECORD_MISMATCH",
        "DECISION_RECORD_MISMATCH",
    ]


def test_a_record_id_must_be_a_decision_record_id(
    api: Stubs, offline: OfflineStub, usage: UsageStub, edge: Edge, keys: Any, clock: Any
) -> None:
    # The record id is the key a use is counted under, beside the ids of Charter's receipts: a
    # record named after the licensee's own receipt would make one report stand for two uses (the
    # receipt's report then found it consumed), and an id longer than its column failed the whole
    # call on PostgreSQL.
    grant = granted(api, keys.admin, clock, edge)
    now = clock.now()
    online = authorize(api, edge.generator, grant.character_id)
    receipt_id = decision_pb2.DecisionReceipt.FromString(online.receipt.payload).receipt_id
    named_after_receipt = named(edge, grant, now, receipt_id)
    too_long = named(edge, grant, now, "dr_" + "0" * 100)
    good = signed(edge, grant, now)

    results = report(
        usage,
        edge.generator,
        offline_record(named_after_receipt, grant.character_id, now),
        offline_record(too_long, grant.character_id, now),
        offline_record(good, grant.character_id, now),
        receipt_record(online.receipt, grant.character_id, now),
    )

    assert reasons(results) == ["DECISION_RECORD_INVALID", "DECISION_RECORD_INVALID", "ACCEPTED", "ACCEPTED"]
    assert [(r.error_code, tuple(v.field for v in r.field_violations)) for r in results[:2]] == [
        ("INVALID_ARGUMENT", ("decision_record",)),
    ] * 2


def test_records_naming_another_licensees_grant_lease_or_key_are_refused(
    api: Stubs, offline: OfflineStub, usage: UsageStub, edge: Edge, keys: Any, clock: Any
) -> None:
    other = new_edge(api, offline, keys.admin)
    mine = granted(api, keys.admin, clock, edge, terms(daily_quota=10))
    theirs = granted(api, keys.admin, clock, other, terms(daily_quota=10))
    my_lease, their_lease = lease(offline, edge, mine, 2), lease(offline, other, theirs, 2)
    now = clock.now()
    their_grant = signed_as(edge.signer, theirs, now, my_lease.lease_id)
    their_key = DecisionRecordSigner(
        key_id=other.signer.key_id, private_key=other.signer._key, licensee_id=edge.licensee_id
    )
    genuine = signed(edge, mine, now, lease_id=my_lease.lease_id)

    results = report(
        usage,
        edge.generator,
        offline_record(their_grant, theirs.character_id, now),
        offline_record(signed(edge, mine, now, lease_id=their_lease.lease_id), mine.character_id, now),
        offline_record(signed_as(their_key, mine, now, my_lease.lease_id), mine.character_id, now),
    )
    reported_by_them = report(usage, other.generator, offline_record(genuine, mine.character_id, now))

    assert reasons(results) == ["DECISION_RECORD_MISMATCH", "LEASE_NOT_FOUND", "DECISION_RECORD_INVALID"]
    assert reasons(reported_by_them) == ["DECISION_RECORD_INVALID"]


def test_a_record_id_is_counted_per_licensee_so_another_cannot_block_it(
    api: Stubs, offline: OfflineStub, usage: UsageStub, edge: Edge, keys: Any, clock: Any
) -> None:
    """Another licensee with a grant of the same character learns (or guesses) a record's id and
    reports a record of its own under it first: that is its own use, and the genuine record is
    still accepted; each licensee's replays are still refused."""
    other = new_edge(api, offline, keys.admin)
    mine = granted(api, keys.admin, clock, edge)
    theirs = issue(api, keys.admin, clock, mine.character_id, other.licensee_id)
    now = clock.now()
    genuine = signed(edge, mine, now)
    record_id = offline_pb2.DecisionRecordClaims.FromString(genuine.payload).record_id
    squatted = signed_as(other.signer, theirs, now, "", record_id=record_id)

    theirs_first = report(usage, other.generator, offline_record(squatted, mine.character_id, now))
    mine_then = report(usage, edge.generator, offline_record(genuine, mine.character_id, now))
    my_replay = report(usage, edge.generator, offline_record(genuine, mine.character_id, now))
    their_replay = report(usage, other.generator, offline_record(squatted, mine.character_id, now))

    assert reasons(theirs_first) == ["ACCEPTED"]
    assert reasons(mine_then) == ["ACCEPTED"]
    assert reasons(my_replay) == ["DECISION_RECORD_REPLAYED"]
    assert reasons(their_replay) == ["DECISION_RECORD_REPLAYED"]


def named(edge: Edge, grant: Grant, when: datetime, record_id: str) -> Envelope:
    """A decision record like `signed`, under a record id of the caller's choosing."""
    return signed_as(edge.signer, grant, when, "", record_id=record_id)


def signed_as(
    signer: DecisionRecordSigner, grant: Grant, when: datetime, lease_id: str, *, record_id: str | None = None
) -> Envelope:
    """A decision record allowing the grant's character at ``when``, signed by ``signer``."""
    return signer.sign(
        character_id=grant.character_id,
        grant_id=grant.id,
        terms_version=grant.terms_version,
        allowed=True,
        context=CONTEXT,
        lease_id=lease_id,
        decide_time_ns=int(when.timestamp() * 1e9),
        record_id=record_id,
    )


def test_a_revoked_licensee_key_signs_nothing_any_more(
    api: Stubs, offline: OfflineStub, usage: UsageStub, edge: Edge, keys: Any, clock: Any
) -> None:
    grant = granted(api, keys.admin, clock, edge)
    now = clock.now()
    before = signed(edge, grant, now)
    offline.RevokeLicenseeKey(
        osv.RevokeLicenseeKeyRequest(key_id=edge.signer.key_id, reason="stolen"), metadata=auth(edge.licensee_admin)
    )

    results = report(usage, edge.generator, offline_record(before, grant.character_id, now))

    assert reasons(results) == ["DECISION_RECORD_INVALID"]


def test_an_accepted_record_sent_again_after_its_key_was_revoked_is_a_duplicate(
    api: Stubs, offline: OfflineStub, usage: UsageStub, edge: Edge, keys: Any, clock: Any
) -> None:
    """A retry is answered as the first time before any check that may have changed since: the SDK
    would otherwise drop an accepted use as refused."""
    grant = granted(api, keys.admin, clock, edge)
    now = clock.now()
    accepted = offline_record(signed(edge, grant, now), grant.character_id, now)
    first = report(usage, edge.generator, accepted)
    offline.RevokeLicenseeKey(
        osv.RevokeLicenseeKeyRequest(key_id=edge.signer.key_id, reason="rotated"), metadata=auth(edge.licensee_admin)
    )
    changed = usage_pb2.UsageRecord()
    changed.CopyFrom(accepted)
    changed.uses = 0

    again = report(usage, edge.generator, accepted, changed)

    assert reasons(first) == ["ACCEPTED"]
    # Another record under the key is no duplicate: checked as new, it no longer verifies.
    assert reasons(again) == ["DUPLICATE", "DECISION_RECORD_INVALID"]
    assert again[0].usage_id == first[0].usage_id


def test_records_of_a_quota_grant_count_against_their_lease(
    api: Stubs, offline: OfflineStub, usage: UsageStub, edge: Edge, keys: Any, clock: Any
) -> None:
    grant = granted(api, keys.admin, clock, edge, terms(daily_quota=10))
    held = lease(offline, edge, grant, 2)
    now = clock.now()
    in_lease = [signed(edge, grant, now, lease_id=held.lease_id) for _ in range(3)]
    without = signed(edge, grant, now)

    results = report(usage, edge.generator, *(offline_record(e, grant.character_id, now) for e in [*in_lease, without]))
    after = lease(offline, edge, grant, 8)

    # Which of the three records comes third follows the records' (random) ids.
    assert sorted(reasons(results[:3])) == ["ACCEPTED", "ACCEPTED", "LEASE_EXCEEDED"]
    assert reasons(results[3:]) == ["DECISION_RECORD_MISMATCH"]
    assert after.uses == 8


def test_an_expired_lease_is_reclaimed(
    api: Stubs, offline: OfflineStub, usage: UsageStub, edge: Edge, keys: Any, moved_clock: Any, server: Any
) -> None:
    # Records that arrive after the reclaim: tests/api/test_offline_late_records.py.
    grant = granted(api, keys.admin, moved_clock, edge, max_uses=5)
    held = lease(offline, edge, grant, 5, seconds=60)
    decided = moved_clock.now()
    spent = signed(edge, grant, decided, lease_id=held.lease_id)
    reported = report(usage, edge.generator, offline_record(spent, grant.character_id, decided))
    moved_clock.advance(timedelta(seconds=60) + server.services.leases.report_grace + timedelta(seconds=1))

    reclaimed = server.services.leases.reclaim_due(limit=1000)
    again = lease(offline, edge, grant, 4)
    over = call_error(
        offline.LeaseQuota,
        osv.LeaseQuotaRequest(character_id=grant.character_id, grant_id=grant.id, uses=1, ttl=ttl(60)),
        edge.generator,
    )

    assert reasons(reported) == ["ACCEPTED"]
    assert reclaimed >= 1
    assert again.uses == 4  # 5 leased, 1 reported: 4 went back
    assert failure(over).reason == "LEASE_REFUSED"


def test_an_online_decision_takes_back_the_uses_of_a_lease_past_its_report_deadline(
    api: Stubs, offline: OfflineStub, usage: UsageStub, edge: Edge, keys: Any, moved_clock: Any, server: Any
) -> None:
    # A backend leased the whole cap, reported one use and was never heard of again; nothing
    # leases any more, and online decisions must get the other uses back once the lease is due.
    grant = granted(api, keys.admin, moved_clock, edge, max_uses=3)
    held = lease(offline, edge, grant, 3, seconds=60)
    decided = moved_clock.now()
    record = signed(edge, grant, decided, lease_id=held.lease_id)
    reported = report(usage, edge.generator, offline_record(record, grant.character_id, decided))
    before = authorize(api, edge.generator, grant.character_id)
    moved_clock.advance(timedelta(seconds=60) + server.services.leases.report_grace + timedelta(seconds=1))

    after = [authorize(api, edge.generator, grant.character_id) for _ in range(3)]

    assert reasons(reported) == ["ACCEPTED"]
    assert not before.decision.allowed  # every use is in the lease until its report deadline
    assert [a.decision.allowed for a in after] == [True, True, False]  # 3 leased, 1 reported: 2 back
    assert list(after[2].decision.characters[0].reasons) == [decision_pb2.DENY_REASON_QUOTA_EXHAUSTED]


def test_usage_record_takes_a_receipt_or_a_decision_record_never_both(
    api: Stubs, offline: OfflineStub, usage: UsageStub, edge: Edge, keys: Any, clock: Any
) -> None:
    grant = granted(api, keys.admin, clock, edge)
    now = clock.now()
    both = offline_record(signed(edge, grant, now), grant.character_id, now)
    both.receipt.CopyFrom(authorize(api, edge.generator, grant.character_id).receipt)
    wrong_type = offline_record(signed(edge, grant, now), grant.character_id, now)
    wrong_type.decision_record.payload_type = "application/vnd.charter.receipt.v1+protobuf"

    results = report(usage, edge.generator, both, wrong_type)

    assert [tuple(v.field for v in r.field_violations) for r in results] == [
        ("receipt",),
        ("decision_record.payload_type",),
    ]
    assert {r.status for r in results} == {usage_pb2.USAGE_STATUS_REJECTED}
