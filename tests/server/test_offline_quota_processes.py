"""A grant's cap of uses spent from quota leases (issue 16) by two generation backends, each an
`OfflineAuthorizer` with its own licensee key in a process of its own (``_backend.py``), through
two ``charter_server`` processes on one PostgreSQL database: exactly the cap is allowed in total,
online and offline together, while both servers restart (one killed, one drained; the backend
spends its lease meanwhile and reports when they are back) and when one backend is killed with
SIGKILL holding a lease with uses unspent (they come back to the pool at its report deadline, the
lease's expiry plus the report grace, and are spent by the other). Every allowed use is counted
once in the statement, and what the leases took is what was reported.

Skipped, with the reason, where PostgreSQL is unreachable.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import charter
import pytest
from charter_server.storage.database import Database
from sqlalchemy import text

from ._backends import Deployment, backend_config, make_world, spawn_backend
from ._support import prepare_database

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CAP = 40
LEASE_USES = 4
LEASE_TTL = 8.0  # the SDK stops spending a lease 2 s before it expires
# Longer than the servers take to restart on a busy machine, so that the uses spent meanwhile are
# reported before their lease's report deadline (after it, a lease's unreported uses go back to the
# pool and can be allowed again: with 4 s, under load, 42 of a cap of 40 were allowed; the late
# records are still accepted and paid, and counted again, tests/api/test_offline_late_records.py).
REPORT_GRACE = 15.0


@pytest.fixture
def deployment(fresh_postgres_url: str, tmp_path: Path) -> Iterator[Deployment]:
    made = Deployment(
        fresh_postgres_url,
        tmp_path,
        options=("--lease-report-grace-seconds", str(REPORT_GRACE), "--shutdown-grace-seconds", "1"),
    )
    try:
        yield made
    finally:
        made.close()


def _unspent(status: dict[str, Any]) -> list[list[Any]]:
    """The open leases with uses left: [character, grant, lease id, uses, spent]."""
    return [lease for lease in status["leases"] if lease[4] < lease[3]]


def _accepted(answer: dict[str, Any]) -> bool:
    return all(accepted and not reason for accepted, _, reason in answer["reported"])


def test_a_cap_spent_from_leases_by_two_backends_is_exact_through_restarts_and_a_kill(
    deployment: Deployment, tmp_path: Path
) -> None:
    admin = prepare_database(deployment.database_url, "offline quota")
    a, b = deployment.start("a"), deployment.start("b")
    world = make_world(a.target, admin, {"capped": CAP}, signers=2)
    character, grant = world.characters["capped"], world.grants["capped"]
    settings = {"max_staleness": 30.0, "lease_uses": LEASE_USES, "lease_ttl": LEASE_TTL}
    one = spawn_backend(backend_config(a.target, world, 0, **settings), tmp_path / "one.log")
    two = spawn_backend(backend_config(b.target, world, 1, **settings), tmp_path / "two.log")
    outcomes: list[dict[str, Any]] = []
    flushed: list[dict[str, Any]] = []

    def expiry(lease_id: str) -> datetime:
        db = Database(deployment.database_url)
        try:
            with db.engine.connect() as connection:
                query = text("SELECT expire_time FROM quota_leases WHERE lease_id = :id")
                when = connection.execute(query, {"id": lease_id}).scalar_one()
        finally:
            db.dispose()
        return when if when.tzinfo else when.replace(tzinfo=UTC)

    def until_holding(backend: Any, *, spendable_for: float = 0.0) -> dict[str, Any]:
        """Decide until the backend holds a lease with uses left that it may spend for at least
        ``spendable_for`` seconds more (it stops 2 s before the expiry); its status then."""
        for _ in range(60):
            status = backend.call("status")
            held = _unspent(status)
            if held and (expiry(held[0][2]) - datetime.now(UTC)).total_seconds() >= 2 + spendable_for:
                return status
            outcomes.extend(backend.call("license", character=character)["outcomes"])
            time.sleep(0.1)
        pytest.fail(f"no lease held:\n{backend.log}")

    try:
        # Both backends at once, through both servers.
        for backend in (one, two):
            backend.send("license", character=character, count=8, interval=0.05)
        for backend in (one, two):
            outcomes.extend(backend.receive(60)["outcomes"])

        # Backend one is killed holding a lease with uses unspent (every use it allowed reported).
        held = until_holding(one)
        assert held["pending"] == 0
        assert one.kill() == -9

        # Both servers go down (A killed, B drained) while backend two holds a lease: it spends it
        # offline and reports once they are back.
        until_holding(two, spendable_for=3.0)
        a.process.kill()
        b.process.terminate()
        assert (a.process.wait(10), b.process.wait(10)) == (-9, 0)
        during = two.call("license", character=character, count=2)["outcomes"]
        a, b = (deployment.start(name, port=int(old.target.rpartition(":")[2])) for name, old in (("a", a), ("b", b)))
        outcomes.extend(during)
        flushed.append(two.call("flush"))

        # Backend two spends what is left: the killed lease's unspent uses once it is reclaimed (at
        # its report deadline, 23 s after it was leased, plus the restarts: on a loaded machine 40 s
        # once ran out with 38 of 40 allowed; the loop ends as soon as the cap is reached).
        deadline = time.monotonic() + 90
        while sum(o["allowed"] for o in outcomes) < CAP and time.monotonic() < deadline:
            answer = two.call("license", character=character, count=4, interval=0.05)
            outcomes.extend(answer["outcomes"])
            if answer["pending"]:
                flushed.append(two.call("flush"))
            time.sleep(0.2)
        beyond = two.call("license", character=character, count=4, interval=0.05)["outcomes"]
        flushed.append(two.call("flush"))
        closed = two.close()
        with charter.Client(b.target, api_key=admin) as staff:
            statement = staff.get_statement(
                rights_holder_id=world.rights_holder_id,
                period=f"{datetime.now(UTC):%Y-%m}",
                licensee_id=world.licensee_id,
            )
    finally:
        one.kill()
        two.kill()
    db = Database(deployment.database_url)
    try:
        with db.engine.connect() as connection:
            used = connection.execute(text("SELECT used FROM grant_uses WHERE grant_id = :g"), {"g": grant}).scalar()
            leases = connection.execute(
                text("SELECT lease_id, uses, reported, state FROM quota_leases WHERE grant_id = :g"), {"g": grant}
            ).all()
            stored = connection.execute(
                text("SELECT count(*), count(DISTINCT idempotency_key) FROM usage_records WHERE licensee_id = :l"),
                {"l": world.licensee_id},
            ).one()
    finally:
        db.dispose()

    allowed = [o for o in outcomes if o["allowed"]]
    refused = [r for o in outcomes for r in o["reported"] if r != [True, False, ""]]
    refused += [r for answer in flushed for r in answer["reported"] if not (r[0] and not r[2])]
    assert (len(allowed), refused) == (CAP, [])
    assert not any(o["allowed"] for o in beyond)
    # Allowed offline from leases (a record naming its lease) and by the servers (a receipt).
    assert {(o["offline"], bool(o["lease"]), o["receipt"]) for o in allowed} == {
        (True, True, False),
        (False, False, True),
    }
    # Spent while the servers were down, reported when they were back.
    assert [(o["allowed"], o["offline"], o["reported"]) for o in during] == [(True, True, [])] * 2
    assert _accepted(flushed[0]) and len(flushed[0]["reported"]) == 2
    # Every allowed use is reported exactly once; the statement counts each once.
    assert all(_accepted(answer) for answer in flushed)
    assert closed["pending"] == 0
    reported_at_once = [o for o in allowed if o["reported"]]
    assert all(o["reported"] == [[True, False, ""]] for o in reported_at_once)
    assert len(reported_at_once) + sum(len(answer["reported"]) for answer in flushed) == CAP
    assert tuple(stored) == (CAP, CAP)
    assert [(line.character_id, line.uses) for line in statement.lines] == [(character, CAP)]
    # The killed backend's lease was reclaimed, keeping what it reported; the cap's counter holds
    # exactly the uses decided online and those reported under leases.
    killed = {lease[2] for lease in _unspent(held)}
    by_id = {row.lease_id: row for row in leases}
    assert killed <= set(by_id)
    assert {by_id[lease_id].state for lease_id in killed} == {"reclaimed"}
    online = sum(not o["offline"] for o in allowed)
    assert used == CAP == online + sum(row.reported for row in leases)
