"""Generation backends deciding offline (issue 16), each an `OfflineAuthorizer` in a process of its
own (``_backend.py``), against real ``charter_server`` processes with a 1-second revocation
heartbeat.

* **Revocation and staleness**: a grant revoked through one server is denied offline by a backend
  watching another within the heartbeat; with the backend's server killed (SIGKILL), offline
  decisions go on until the staleness bound (the last heartbeat + ``max_staleness``) and are then
  denied with ``REVOCATIONS_STALE``, within a second of ``max_staleness`` after the kill. A second
  backend watching the same server screens prompts itself (``screen_locally``) and decides them
  offline up to the same bound (its registry snapshot is current as of the same heartbeats), then
  denies them the same way.
* **An hour offline**: a backend keeps deciding, signing and queueing its uses while its server is
  down for an hour, and reports them when the server is back; the statement counts each once.
  A test cannot wait an hour: the hour passes at once on both sides, the backend's clock (the
  authorizer's ``clock``) and the server's (``_clocked_server.py``: the server's own clock, moved),
  while the server is down; everything checked against it on the way back runs for real (the
  lease's spending period and report deadline, the decision records' times, the usage window,
  the statement's period). With leases shorter than the outage (5 minutes, and the default
  10-minute report grace), the uses spent from a lease are paid all the same: accepted once,
  ``late``, and counted again in the cap they had gone back to.
* **Tampered cache files**: a backend restarted while Charter is unreachable refuses a cache file
  that is damaged (``CACHE_CORRUPTED``) and a grant changed in a cache file whose HMAC was made
  to match with the API key (the grant's signature fails: ``GRANT_INVALID``), and never allows
  from either. With ``screen_locally``, the kept registry snapshot likewise: damaged
  (``CACHE_CORRUPTED``), or a name taken out of a page with the file's HMAC made to match
  (``SNAPSHOT_INVALID``): a prompt
  is denied with that reason, never screened with it, and nothing raises.

The quota of a grant spent from leases by two backends through two servers is in
``test_offline_quota_processes.py``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import charter
import pytest
from charter.offline.cache import (
    FILE_NAME,
    SNAPSHOT_FILE_NAME,
    STATE_FILE_NAME,
    CacheKey,
    load_bundle,
    load_snapshot,
    save_bundle,
    save_snapshot,
)
from charter.offline.snapshot import pack, unpack
from charter.v1 import grant_pb2
from charter_server.storage.database import Database
from sqlalchemy import text

from ._backends import FEE, BackendProcess, Deployment, World, backend_config, dead_target, make_world, spawn_backend
from ._support import prepare_database

pytestmark = pytest.mark.slow

HEARTBEAT = 1.0  # the servers' revocation heartbeat (`Deployment`)
MAX_STALENESS = 4.0


@pytest.fixture
def deployment(fresh_postgres_url: str, tmp_path: Path) -> Iterator[Deployment]:
    made = Deployment(fresh_postgres_url, tmp_path)
    try:
        yield made
    finally:
        made.close()


def _first_denied(outcomes: list[dict[str, Any]]) -> int:
    return next(n for n, outcome in enumerate(outcomes) if not outcome["allowed"])


@pytest.mark.postgres
def test_a_revocation_is_denied_within_the_heartbeat_and_a_dead_server_at_the_staleness_bound(
    deployment: Deployment, tmp_path: Path
) -> None:
    admin = prepare_database(deployment.database_url, "offline processes")
    a, b = deployment.start("a"), deployment.start("b")
    world = make_world(a.target, admin, {"revoked": None, "kept": None}, signers=0)
    backend = spawn_backend(
        backend_config(b.target, world, None, max_staleness=MAX_STALENESS), tmp_path / "backend.log"
    )
    screening = None
    prompt = f"a poster of {world.names['kept']} at dusk"
    try:
        screening = spawn_backend(
            backend_config(b.target, world, None, max_staleness=MAX_STALENESS, screen_locally=True),
            tmp_path / "screening.log",
        )
        screened = screening.call("wait_screen", seconds=20)
        started = backend.call("status")
        # Revoked through server A while the backend, watching server B, decides offline.
        backend.send("loop", character=world.characters["revoked"], seconds=15, interval=0.01, denials=3)
        time.sleep(1.0)
        sent = time.time()
        with charter.Client(a.target, api_key=admin) as staff:
            staff.revoke_grant(world.grants["revoked"], reason="ended")
        returned = time.time()
        revocation = backend.receive()["outcomes"]

        # Server B killed while both backends decide offline, the second screening a prompt.
        backend.send("loop", character=world.characters["kept"], seconds=MAX_STALENESS + 8, interval=0.01, denials=3)
        screening.send(
            "loop",
            character=world.characters["kept"],
            prompt=prompt,
            seconds=MAX_STALENESS + 8,
            interval=0.01,
            denials=3,
        )
        time.sleep(0.5)
        killed = time.time()
        assert b.kill() == -9
        staleness = backend.receive()
        prompts = screening.receive()
    finally:
        backend.kill()
        if screening is not None:
            screening.kill()

    assert started["current"]
    first = _first_denied(revocation)
    before, after = revocation[:first], revocation[first:]
    assert before and all(o["offline"] and o["allowed"] for o in before)
    assert all(o["offline"] and not o["allowed"] and o["reasons"] == ["GRANT_REVOKED"] for o in after)
    assert sent < after[0]["at"] <= returned + HEARTBEAT, after[0]["at"] - returned

    outcomes = staleness["outcomes"]
    first = _first_denied(outcomes)
    allowed, denied = outcomes[:first], outcomes[first:]
    bound = staleness["fresh_as_of"] + MAX_STALENESS  # the last heartbeat before the kill, on its clock
    assert staleness["offset"] == 0
    # Offline decisions went on after the kill, up to the bound, and not one after it.
    assert sum(o["at"] > killed + 1 for o in allowed) >= 20
    assert all(o["offline"] and o["allowed"] for o in allowed)
    assert allowed[-1]["at"] <= bound + 0.05  # it began before the bound (a decision takes microseconds)
    assert all(o["offline"] and o["reasons"] == ["REVOCATIONS_STALE"] for o in denied)
    assert denied[0]["at"] > bound
    # The bound is max_staleness after the last heartbeat, which came at most a heartbeat before the kill.
    assert abs(denied[0]["at"] - (killed + MAX_STALENESS)) <= HEARTBEAT, denied[0]["at"] - killed

    # The prompts were screened here (the character detected in the prompt, decided offline) up
    # to their own backend's bound, then denied. The snapshot is current as of the heartbeats
    # the revocation view is (no registry change came meanwhile), so the bound is one, and the
    # view's staleness is what the denial names.
    assert screened["screening"] and screened["snapshot_version"] > 0
    outcomes = prompts["outcomes"]
    first = _first_denied(outcomes)
    allowed, denied = outcomes[:first], outcomes[first:]
    bound = prompts["fresh_as_of"] + MAX_STALENESS
    assert sum(o["at"] > killed + 1 for o in allowed) >= 20
    assert all(o["offline"] and o["allowed"] and o["detected"] == [world.characters["kept"]] for o in allowed)
    assert allowed[-1]["at"] <= bound + 0.05
    assert all(o["offline"] and not o["allowed"] and o["reasons"] == ["REVOCATIONS_STALE"] for o in denied)
    assert denied[0]["at"] > bound
    assert abs(denied[0]["at"] - (killed + MAX_STALENESS)) <= HEARTBEAT, denied[0]["at"] - killed


def _decided(outcomes: list[dict[str, Any]]) -> list[tuple[object, ...]]:
    return [(o["offline"], o["allowed"], o["receipt"], o["records"], o["reported"]) for o in outcomes]


def _report_on_return(
    backend: BackendProcess, target: str, admin: str, world: World, *, ahead: timedelta
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Once the backend's view is current again: its queued reports flushed, a second flush, and
    the statement of the month the uses happened in (``ahead`` of the system clock's now)."""
    backend.wait_status("current", 20)
    flushed = backend.call("flush")
    again = backend.call("flush")
    with charter.Client(target, api_key=admin) as staff:
        happened = datetime.now(UTC) + ahead
        statement = staff.get_statement(
            rights_holder_id=world.rights_holder_id, period=f"{happened:%Y-%m}", licensee_id=world.licensee_id
        )
    return flushed, again, statement


def test_a_backend_offline_for_an_hour_reports_every_use_once_when_it_comes_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hour.db'}"
    offset = tmp_path / "server-clock-offset"
    offset.write_text("0")
    admin = prepare_database(url, "an hour offline")
    deployment = Deployment(url, tmp_path, offset_file=offset)
    backend = None
    try:
        server = deployment.start("server")
        world = make_world(server.target, admin, {"plain": None, "capped": 1_000}, signers=1)
        plain, capped = world.characters["plain"], world.characters["capped"]
        backend = spawn_backend(
            backend_config(server.target, world, 0, max_staleness=2 * 3600, lease_uses=50, lease_ttl=2 * 3600),
            tmp_path / "backend.log",
        )
        # The capped grant's first use is decided (and counted) by the server; then a lease is held.
        online = backend.call("license", character=capped)["outcomes"]
        backend.wait_status("leases", 15)

        assert server.kill() == -9
        offline: dict[str, list[dict[str, Any]]] = {plain: [], capped: []}
        for step in range(4):  # at 0, 20, 40 and 60 minutes into the outage
            if step:
                backend.call("shift", seconds=20 * 60)
            for character_id, decisions in offline.items():
                decisions.extend(backend.call("license", character=character_id, count=2)["outcomes"])
        queued = backend.call("status")

        offset.write_text("3600")  # the server comes back an hour later
        server = deployment.restart(server, "server", kill=True)
        flushed, again, statement = _report_on_return(backend, server.target, admin, world, ahead=timedelta(hours=1))
        closed = backend.close()
    finally:
        if backend is not None:
            backend.kill()
        deployment.close()
    db = Database(url)
    try:
        with db.engine.connect() as connection:
            stored = connection.execute(
                text("SELECT count(*), count(DISTINCT idempotency_key) FROM usage_records WHERE licensee_id = :l"),
                {"l": world.licensee_id},
            ).one()
            leases = connection.execute(
                text("SELECT uses, reported, state FROM quota_leases WHERE licensee_id = :l"), {"l": world.licensee_id}
            ).all()
    finally:
        db.dispose()

    assert _decided(online) == [(False, True, True, 0, [[True, False, ""]])]
    # Every offline use was decided and signed here, and its report queued (the server was down).
    assert _decided(offline[plain] + offline[capped]) == [(True, True, False, 1, [])] * 16
    assert [o["lease"] for o in offline[plain]] == [""] * 8  # no quota: nothing to lease
    assert all(o["lease"].startswith("ql_") for o in offline[capped])  # spent from the lease
    assert offline[capped][-1]["decided"] - offline[capped][0]["decided"] >= 3600
    assert queued["pending"] == 16
    # An hour later every one is accepted once, and nothing is left to send.
    assert flushed["reported"] == [[True, False, ""]] * 16
    assert (again["reported"], again["pending"], closed["pending"]) == ([], 0, 0)
    lines = {line.character_id: line.uses for line in statement.lines}
    assert lines == {plain: 8, capped: 9}
    [total] = statement.totals
    assert (total.records, total.uses, total.fee_minor_units) == (17, 17, 17 * FEE)
    assert tuple(stored) == (17, 17)
    [(leased, reported, state)] = leases
    assert reported == 8 and leased >= 8  # the lease counted the offline uses it covered
    assert state == "returned"  # given back at close


def test_a_backend_cut_off_past_its_leases_report_deadline_is_paid_for_every_use(tmp_path: Path) -> None:
    # A lease of the default length (5 minutes) and the default report grace (10 minutes): an hour
    # offline outlasts both. The uses spent from the lease before the cut-off are still paid once
    # when the backend is back, and counted again in the cap they had gone back to.
    url = f"sqlite:///{tmp_path / 'late.db'}"
    offset = tmp_path / "server-clock-offset"
    offset.write_text("0")
    admin = prepare_database(url, "past the report deadline")
    deployment = Deployment(url, tmp_path, offset_file=offset)
    backend = None
    try:
        server = deployment.start("server")
        world = make_world(server.target, admin, {"capped": 1_000}, signers=1)
        capped = world.characters["capped"]
        backend = spawn_backend(
            backend_config(server.target, world, 0, max_staleness=2 * 3600, lease_uses=50, lease_ttl=300),
            tmp_path / "backend.log",
        )
        online = backend.call("license", character=capped)["outcomes"]
        backend.wait_status("leases", 15)

        assert server.kill() == -9
        spent = backend.call("license", character=capped, count=3)["outcomes"]
        backend.call("shift", seconds=3600)
        expired = backend.call("license", character=capped)["outcomes"]  # the lease ran out meanwhile
        offset.write_text("3600")  # the server comes back an hour later
        server = deployment.restart(server, "server", kill=True)
        # The uses happened before the outage.
        flushed, again, statement = _report_on_return(backend, server.target, admin, world, ahead=timedelta(0))
        closed = backend.close()
    finally:
        if backend is not None:
            backend.kill()
        deployment.close()
    db = Database(url)
    try:
        with db.engine.connect() as connection:
            used = connection.execute(
                text("SELECT used FROM grant_uses WHERE grant_id = :g"), {"g": world.grants["capped"]}
            ).scalar()
            leases = connection.execute(
                text("SELECT uses, reported, state FROM quota_leases WHERE licensee_id = :l"), {"l": world.licensee_id}
            ).all()
    finally:
        db.dispose()

    assert _decided(online) == [(False, True, True, 0, [[True, False, ""]])]
    assert _decided(spent) == [(True, True, False, 1, [])] * 3
    assert all(o["lease"].startswith("ql_") for o in spent)
    assert [o["allowed"] for o in expired] == [False]  # fail closed: no lease left to spend offline
    # An hour later, well past the lease's report deadline: every use accepted once, marked late.
    assert (flushed["reported"], flushed["late"]) == ([[True, False, ""]] * 3, [True] * 3)
    assert (again["reported"], again["pending"], closed["pending"]) == ([], 0, 0)
    assert [(line.character_id, line.uses) for line in statement.lines] == [(capped, 4)]
    # The lease was reclaimed with nothing reported (its 50 uses went back); the 3 late records
    # were counted again: the cap's counter holds the 4 uses decided.
    assert [tuple(row) for row in leases] == [(50, 3, "reclaimed")]
    assert used == 4


def _tamper_one_byte(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))


def test_tampered_cache_files_are_refused_by_a_restarted_backend(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cache.db'}"
    admin = prepare_database(url, "tampered caches")
    deployment = Deployment(url, tmp_path)
    cache = tmp_path / "cache"
    try:
        server = deployment.start("server")
        world = make_world(server.target, admin, {"kept": None}, signers=0)
        kept = world.characters["kept"]
        settings = {"max_staleness": 300.0, "dead": dead_target(), "screen_locally": True}
        writer = spawn_backend(
            backend_config(server.target, world, None, cache_dir=str(cache), **settings), tmp_path / "writer.log"
        )
        written = writer.call("authorize", character=kept)["outcomes"]
        screened = writer.call("wait_screen", seconds=20)  # the snapshot is kept once screened with
        writer.close()
        assert server.kill() == -9
    finally:
        deployment.close()

    variants = {name: tmp_path / name for name in ("intact", "bundle", "state", "forged", "snapshot", "pages")}
    for directory in variants.values():
        shutil.copytree(cache, directory)
    _tamper_one_byte(variants["snapshot"] / SNAPSHOT_FILE_NAME)
    # The character's name taken out of the kept pages, the file's HMAC computed again to match
    # (with the API key: a writer without it is refused at once, tests/sdk/test_offline_cache.py):
    # only the pages' signatures tell.
    key = CacheKey.of_api_key(world.generator)
    pages = unpack(load_snapshot(variants["pages"], key) or b"")
    name = world.names["kept"].encode()
    assert any(name in page.payload for page in pages)
    for page in pages:
        page.payload = page.payload.replace(name, b"Z" * len(name))
    save_snapshot(variants["pages"], key, world.licensee_id, pack(pages))
    _tamper_one_byte(variants["bundle"] / FILE_NAME)
    state = variants["state"] / STATE_FILE_NAME
    state.write_bytes(state.read_bytes()[:-40])
    # A grant made to last a year longer, in a file whose HMAC was computed again to match.
    found = load_bundle(variants["forged"], key)
    assert found is not None
    licensee_id, bundle = found
    claims = grant_pb2.GrantClaims.FromString(bundle.grants[0].envelope.payload)
    claims.expire_time.seconds += 365 * 86400
    bundle.grants[0].envelope.payload = claims.SerializeToString()
    save_bundle(variants["forged"], key, licensee_id, bundle)

    reader = spawn_backend(
        backend_config(dead_target(), world, None, cache_dir=str(variants["intact"]), start_timeout=0.2, **settings),
        tmp_path / "reader.log",
    )
    try:
        restarted = {
            name: reader.call("from_cache", cache_dir=str(directory), character=kept)["outcomes"]
            for name, directory in variants.items()
        }
        prompt = f"{world.names['kept']} waves"
        screened_from = {
            name: reader.call("from_cache", cache_dir=str(variants[name]), character=kept, prompt=prompt)["outcomes"]
            for name in ("intact", "snapshot", "pages")
        }
    finally:
        reader.kill()

    def seen(name: str) -> tuple[object, ...]:
        [outcome] = restarted[name]
        return outcome["offline"], outcome["allowed"], outcome["reasons"]

    assert [(o["offline"], o["allowed"]) for o in written] == [(True, True)]
    assert seen("intact") == (True, True, [])  # the same cache, untouched, decides
    assert seen("bundle") == (True, False, ["CACHE_CORRUPTED"])
    assert seen("state") == (True, False, ["CACHE_CORRUPTED"])
    assert seen("forged") == (True, False, ["GRANT_INVALID"])
    # The kept registry snapshot: the declared character alone is decided from the grant as
    # before, whatever the snapshot file; a prompt is screened with the intact snapshot only.
    assert screened["screening"]
    assert seen("snapshot") == seen("pages") == (True, True, [])

    def prompted(name: str) -> tuple[object, ...]:
        [outcome] = screened_from[name]
        return outcome["offline"], outcome["allowed"], outcome["reasons"], outcome["detected"]

    assert prompted("intact") == (True, True, [], [kept])
    assert prompted("snapshot") == (True, False, ["CACHE_CORRUPTED"], [])
    assert prompted("pages") == (True, False, ["SNAPSHOT_INVALID"], [])
