"""Decision records that arrive after their quota lease's report deadline (issue 16: a backend
cut off for longer than its lease reports when it comes back, and every use is paid once).

The lease's unreported uses went back to the quotas at the deadline; a genuine record decided
within the lease is still accepted, counted again in those counters (beyond their limits if the
pool was spent meanwhile) and paid, exactly once. The server's clock is moved past the deadline.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import grpc
import pytest
from charter.decision_records import generate_key
from charter.usage import UsageResult
from charter.v1 import decision_pb2
from charter.v1 import offline_service_pb2 as osv
from charter.v1 import usage_service_pb2 as us
from sqlalchemy import text

from .character_helpers import terms
from .grant_helpers import Grant, Stubs, stubs
from .helpers import auth, failure
from .offline_helpers import (
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
from .test_authorize_api import move_to, noon_tomorrow
from .test_usage_api import authorize

LEASE_SECONDS = 60


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


def past_deadline(clock: Any, server: Any, extra: timedelta = timedelta(seconds=1)) -> None:
    """Move the server's clock past the report deadline of a lease of `LEASE_SECONDS` leased now."""
    clock.advance(timedelta(seconds=LEASE_SECONDS) + server.services.leases.report_grace + extra)


def counters(server: Any, grant: Grant) -> tuple[int, int]:
    """The uses counted against the grant's cap, and against its character's quotas (all periods)."""
    with server.db.uow() as uow:
        capped = uow.session.execute(
            text("SELECT coalesce(sum(used), 0) FROM grant_uses WHERE grant_id = :g"), {"g": grant.id}
        ).scalar_one()
        quotas = uow.session.execute(
            text("SELECT coalesce(sum(used), 0) FROM quota_counters WHERE character_id = :c"),
            {"c": grant.character_id},
        ).scalar_one()
    return int(capped), int(quotas)


def lease_row(server: Any, lease_id: str) -> tuple[int, int, str]:
    with server.db.uow() as uow:
        row = uow.session.execute(
            text("SELECT uses, reported, state FROM quota_leases WHERE lease_id = :l"), {"l": lease_id}
        ).one()
    return int(row.uses), int(row.reported), str(row.state)


def statement_uses(usage: UsageStub, admin: str, edge: Edge, when: datetime) -> list[tuple[str, int]]:
    statement = usage.GetStatement(
        us.GetStatementRequest(rights_holder_id=edge.holder.id, period=f"{when:%Y-%m}"), metadata=auth(admin)
    ).statement
    return [(line.character_id, line.uses) for line in statement.lines]


def test_a_late_record_of_a_reclaimed_lease_is_accepted_counted_again_and_paid_once(
    api: Stubs, offline: OfflineStub, usage: UsageStub, edge: Edge, keys: Any, moved_clock: Any, server: Any
) -> None:
    grant = granted(api, keys.admin, moved_clock, edge, max_uses=5)
    held = lease(offline, edge, grant, 5, seconds=LEASE_SECONDS)
    decided = moved_clock.now()
    in_time, late = (signed(edge, grant, decided, lease_id=held.lease_id) for _ in range(2))
    reported = report(usage, edge.generator, offline_record(in_time, grant.character_id, decided))
    past_deadline(moved_clock, server)
    reclaimed = server.services.leases.reclaim_due(limit=1000)
    after_reclaim = counters(server, grant)

    record = offline_record(late, grant.character_id, decided)
    first = report(usage, edge.generator, record)
    repeat = report(usage, edge.generator, record)  # the same key: answered as the first time
    replay = report(usage, edge.generator, offline_record(late, grant.character_id, decided))  # another key

    assert reasons(reported) == ["ACCEPTED"]
    assert reclaimed >= 1 and after_reclaim == (1, 0)  # 5 leased, 1 reported: 4 went back
    assert reasons(first) == ["ACCEPTED"] and first[0].late and UsageResult.from_proto(first[0]).late
    assert reasons(repeat) == ["DUPLICATE"] and repeat[0].late and repeat[0].usage_id == first[0].usage_id
    assert reasons(replay) == ["DECISION_RECORD_REPLAYED"]
    assert counters(server, grant) == (2, 0)  # every use decided, each once
    assert lease_row(server, held.lease_id) == (5, 2, "reclaimed")
    assert statement_uses(usage, keys.admin, edge, decided) == [(grant.character_id, 2)]
    # The pool holds what is really left: 3 of the cap of 5.
    assert lease(offline, edge, grant, 3).uses == 3
    assert not authorize(api, edge.generator, grant.character_id).decision.allowed


def test_a_lease_past_its_deadline_is_reclaimed_by_its_late_record_and_never_over_leased(
    api: Stubs, offline: OfflineStub, usage: UsageStub, edge: Edge, keys: Any, moved_clock: Any, server: Any
) -> None:
    # Nothing reclaimed the lease yet: the late batch reclaims it, then counts what it reports.
    grant = granted(api, keys.admin, moved_clock, edge, terms(daily_quota=10))
    held = lease(offline, edge, grant, 2, seconds=LEASE_SECONDS)
    decided = moved_clock.now()
    spent = [signed(edge, grant, decided, lease_id=held.lease_id) for _ in range(3)]
    past_deadline(moved_clock, server)

    results = report(usage, edge.generator, *(offline_record(e, grant.character_id, decided) for e in spent))

    # Which of the three comes third follows the records' (random) ids.
    assert sorted(reasons(results)) == ["ACCEPTED", "ACCEPTED", "LEASE_EXCEEDED"]
    assert sorted(r.late for r in results) == [False, True, True]  # a refused record is not late
    assert counters(server, grant) == (0, 2)
    assert lease_row(server, held.lease_id) == (2, 2, "reclaimed")
    assert statement_uses(usage, keys.admin, edge, decided) == [(grant.character_id, 2)]


def test_a_late_record_counts_even_beyond_the_quota_spent_meanwhile(
    api: Stubs, offline: OfflineStub, usage: UsageStub, edge: Edge, keys: Any, moved_clock: Any, server: Any
) -> None:
    # The backend spent 2 leased uses and was cut off past the deadline; the 3 uses went back and
    # were allowed online. Its records are still paid, and the counter says 5 uses happened.
    grant = granted(api, keys.admin, moved_clock, edge, max_uses=3)
    held = lease(offline, edge, grant, 3, seconds=LEASE_SECONDS)
    decided = moved_clock.now()
    spent = [signed(edge, grant, decided, lease_id=held.lease_id) for _ in range(2)]
    past_deadline(moved_clock, server)
    online = [authorize(api, edge.generator, grant.character_id).decision.allowed for _ in range(3)]

    results = report(usage, edge.generator, *(offline_record(e, grant.character_id, decided) for e in spent))
    after = authorize(api, edge.generator, grant.character_id)

    assert online == [True, True, True]
    assert reasons(results) == ["ACCEPTED", "ACCEPTED"]
    assert counters(server, grant) == (5, 0)  # 3 online and 2 offline: above the cap, and true
    assert statement_uses(usage, keys.admin, edge, decided) == [(grant.character_id, 2)]  # online ones unreported
    assert list(after.decision.characters[0].reasons) == [decision_pb2.DENY_REASON_QUOTA_EXHAUSTED]


def test_a_returned_lease_takes_late_records_up_to_what_was_kept(
    api: Stubs, offline: OfflineStub, usage: UsageStub, edge: Edge, keys: Any, moved_clock: Any, server: Any
) -> None:
    grant = granted(api, keys.admin, moved_clock, edge, max_uses=5)
    held = lease(offline, edge, grant, 5, seconds=LEASE_SECONDS)
    decided = moved_clock.now()
    spent = [signed(edge, grant, decided, lease_id=held.lease_id) for _ in range(2)]
    # The holder says it spent 1 (its second record was lost with a crash, say): 4 go back at once.
    offline.ReturnQuotaLease(
        osv.ReturnQuotaLeaseRequest(lease_id=held.lease_id, spent_uses=1), metadata=auth(edge.generator)
    )
    past_deadline(moved_clock, server)

    results = report(usage, edge.generator, *(offline_record(e, grant.character_id, decided) for e in spent))

    assert sorted(reasons(results)) == ["ACCEPTED", "LEASE_EXCEEDED"]
    assert counters(server, grant) == (1, 0)
    assert lease_row(server, held.lease_id) == (1, 1, "reclaimed")


def test_a_record_decided_after_its_lease_expired_is_refused(
    api: Stubs, offline: OfflineStub, usage: UsageStub, edge: Edge, keys: Any, moved_clock: Any, server: Any
) -> None:
    grant = granted(api, keys.admin, moved_clock, edge, max_uses=5)
    held = lease(offline, edge, grant, 5, seconds=LEASE_SECONDS)
    expired = held.expire_time.ToDatetime().replace(tzinfo=moved_clock.now().tzinfo)
    # Beyond the 5 minutes of clock skew a record's time may lie outside its lease.
    after_expiry = expired + timedelta(minutes=5, seconds=30)
    past_deadline(moved_clock, server, extra=timedelta(minutes=6))
    record = signed(edge, grant, after_expiry, lease_id=held.lease_id)

    results = report(usage, edge.generator, offline_record(record, grant.character_id, after_expiry))

    assert reasons(results) == ["DECISION_RECORD_MISMATCH"]
    assert lease_row(server, held.lease_id) == (5, 0, "open")  # nothing reported, nothing reclaimed


def test_a_suspended_character_leases_nothing_and_is_paid_only_for_uses_decided_before(
    api: Stubs, offline: OfflineStub, usage: UsageStub, edge: Edge, keys: Any, moved_clock: Any
) -> None:
    """Suspending a character leaves its grants active; Authorize denies it, and so do leases and
    records decided after the suspension (beyond the 5 minutes of clock skew). At noon: a lease of
    a daily quota closes at the day's end, which the 6 minutes moved must not cross."""
    from charter.v1 import catalog_service_pb2 as cs

    move_to(moved_clock, noon_tomorrow(moved_clock))
    grant = granted(api, keys.admin, moved_clock, edge, terms(daily_quota=50))
    held = lease(offline, edge, grant, 5, seconds=1_800)
    before = moved_clock.now()
    api.catalog.SuspendCharacter(
        cs.SuspendCharacterRequest(id=grant.character_id, reason="court order"), metadata=auth(keys.admin)
    )
    moved_clock.advance(timedelta(minutes=6))
    after = moved_clock.now()

    online = authorize(api, edge.generator, grant.character_id).decision
    new_lease = call_error(
        offline.LeaseQuota,
        osv.LeaseQuotaRequest(character_id=grant.character_id, grant_id=grant.id, uses=1, ttl=ttl(60)),
        edge.generator,
    )
    renewed = call_error(
        offline.RenewQuotaLease,
        osv.RenewQuotaLeaseRequest(lease_id=held.lease_id, add_uses=1, ttl=ttl(60)),
        edge.generator,
    )
    results = report(
        usage,
        edge.generator,
        offline_record(signed(edge, grant, before, lease_id=held.lease_id), grant.character_id, before),
        offline_record(signed(edge, grant, after, lease_id=held.lease_id), grant.character_id, after),
    )

    assert not online.allowed
    for refused in (new_lease, renewed):
        got = failure(refused)
        assert (got.code, got.reason, got.metadata.get("cause")) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "LEASE_REFUSED",
            "CHARACTER_SUSPENDED",
        )
    assert reasons(results) == ["ACCEPTED", "CHARACTER_SUSPENDED"]


def _retrying(call: Any) -> Any:
    """``call()``, again while the store is busy (a retry is safe: reports and leases are counted
    once; on PostgreSQL concurrent transactions over one lease and its counters may deadlock, and
    the loser is answered UNAVAILABLE with nothing written)."""
    for _ in range(20):
        try:
            return call()
        except grpc.RpcError as error:
            if error.code() is not grpc.StatusCode.UNAVAILABLE:
                raise
    raise AssertionError("the store stayed busy")


def test_concurrent_late_reports_and_a_reclaiming_lease_count_each_use_once(
    api: Stubs, offline: OfflineStub, usage: UsageStub, edge: Edge, keys: Any, moved_clock: Any, server: Any
) -> None:
    grant = granted(api, keys.admin, moved_clock, edge, max_uses=10)
    held = lease(offline, edge, grant, 4, seconds=LEASE_SECONDS)
    decided = moved_clock.now()
    records = [
        offline_record(signed(edge, grant, decided, lease_id=held.lease_id), grant.character_id, decided)
        for _ in range(4)
    ]
    past_deadline(moved_clock, server)
    calls = [
        lambda: report(usage, edge.generator, *records[:2]),
        lambda: report(usage, edge.generator, *records[2:]),
        lambda: report(usage, edge.generator, *records),  # the same keys again
        lambda: lease(offline, edge, grant, 6),  # reclaims the lease first, if no report did
    ]

    with ThreadPoolExecutor(len(calls)) as pool:
        answers = list(pool.map(_retrying, calls))

    by_key: dict[str, list[str]] = {}
    for results in answers[:3]:
        for result, label in zip(results, reasons(results), strict=True):
            by_key.setdefault(result.idempotency_key, []).append(label)
    assert sorted(sorted(labels) for labels in by_key.values()) == [["ACCEPTED", "DUPLICATE"]] * 4
    assert all(r.late for results in answers[:3] for r in results)
    assert answers[3].uses == 6  # the 4 leased uses went back, and came back as reported
    assert lease_row(server, held.lease_id) == (4, 4, "reclaimed")
    assert counters(server, grant) == (10, 0)  # 4 offline uses, 6 leased anew
    assert statement_uses(usage, keys.admin, edge, decided) == [(grant.character_id, 4)]


def test_a_late_record_verifies_with_a_key_retired_since_and_never_with_a_revoked_one(
    api: Stubs, offline: OfflineStub, usage: UsageStub, edge: Edge, keys: Any, moved_clock: Any, server: Any
) -> None:
    # While the backend was cut off, its licensee rotated the record key, then revoked the old one.
    grant = granted(api, keys.admin, moved_clock, edge, max_uses=5)
    held = lease(offline, edge, grant, 5, seconds=LEASE_SECONDS)
    decided = moved_clock.now()
    before_revocation, after_revocation = (signed(edge, grant, decided, lease_id=held.lease_id) for _ in range(2))
    old_key = edge.signer.key_id
    _seed, public = generate_key()
    past_deadline(moved_clock, server)
    offline.RegisterLicenseeKey(
        osv.RegisterLicenseeKeyRequest(public_key=public, display_name="farm 2", replaces_key_id=old_key),
        metadata=auth(edge.licensee_admin),
    )

    retired = report(usage, edge.generator, offline_record(before_revocation, grant.character_id, decided))
    offline.RevokeLicenseeKey(
        osv.RevokeLicenseeKeyRequest(key_id=old_key, reason="leaked"), metadata=auth(edge.licensee_admin)
    )
    revoked = report(usage, edge.generator, offline_record(after_revocation, grant.character_id, decided))

    assert reasons(retired) == ["ACCEPTED"] and retired[0].late
    assert reasons(revoked) == ["DECISION_RECORD_INVALID"]
    assert counters(server, grant) == (1, 0)
    assert lease_row(server, held.lease_id) == (5, 1, "reclaimed")
