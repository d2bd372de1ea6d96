"""Replicas that agree: two real server processes over one PostgreSQL database, started with
different settings. Seen: with a lease of 0.2 s on one replica and 5 s on another, a revocation
returned after 0.23 s and the other replica allowed the grant 800 more times; a revoked API key
kept working on other replicas for the auth cache's 5 s. The lease is now the deployment's (kept
in the database), and API-key revocation waits it out like a grant's.

Skipped, with the reason, where PostgreSQL is unreachable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import charter
import grpc
import pytest
from charter.v1 import access_service_pb2 as access_pb
from charter.v1 import api_key_pb2
from charter.v1 import authorization_service_pb2_grpc as az_grpc

from ._serving import Party, authorize_request, bearer, new_party
from ._support import ServerProcess, open_channel, prepare_database, reason, spawn_server, wait_serving

pytestmark = pytest.mark.postgres


@pytest.fixture
def processes(fresh_postgres_url: str, tmp_path: Path) -> Iterator[Callable[[str, float], ServerProcess]]:
    """Start server processes over one fresh database, each with its own lease flag; all must
    stop cleanly."""
    started: list[ServerProcess] = []

    def start(name: str, lease: float) -> ServerProcess:
        process = spawn_server(
            fresh_postgres_url, tmp_path / f"{name}.log", options=("--authorization-lease-seconds", str(lease))
        )
        started.append(process)
        wait_serving(process)
        return process

    prepare_database(fresh_postgres_url, "replicas")
    yield start
    codes = [process.stop() for process in started]
    assert codes == [0] * len(started)
    for process in started:
        assert "Traceback" not in process.log


def _admin(database_url: str) -> str:
    return prepare_database(database_url, "replicas admin")


def _hammer_then_revoke(targets: list[str], party: Party, revoke: Callable[[], None]) -> tuple[list[int], int, float]:
    """Authorize the party's character on every target in threads; revoke midway. Returns the
    targets (indexes) of decisions begun after the revocation returned that still allowed, how
    many began after it, and how long the revocation took."""
    returned = threading.Event()
    stale: list[int] = []
    after = [0]
    lock = threading.Lock()
    channels = [grpc.insecure_channel(target) for target in targets]
    stubs = [az_grpc.AuthorizationServiceStub(channel) for channel in channels]

    def loop(index: int) -> None:
        stub = stubs[index % len(stubs)]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            began_after = returned.is_set()
            decision = stub.Authorize(authorize_request(party), metadata=bearer(party.generator), timeout=10).decision
            if began_after:
                with lock:
                    after[0] += 1
                    if decision.allowed:
                        stale.append(index % len(stubs))
                    if after[0] >= 150:
                        return

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            loops = [pool.submit(loop, n) for n in range(4)]
            time.sleep(0.5)  # every replica decides from memory by now
            began = time.monotonic()
            revoke()
            took = time.monotonic() - began
            returned.set()
            for done in loops:
                done.result(timeout=40)
    finally:
        for channel in channels:
            channel.close()
    return stale, after[0], took


def test_replicas_with_different_lease_flags_never_allow_a_returned_revocation(
    processes: Callable[[str, float], ServerProcess], fresh_postgres_url: str
) -> None:
    a = processes("a", 0.2)
    b = processes("b", 2.0)  # started last: the deployment's lease is now 2 s, for A too
    admin = _admin(fresh_postgres_url)
    party = new_party(a.target, admin)
    with charter.Client(a.target, api_key=admin) as client:
        stale, after, took = _hammer_then_revoke(
            [b.target, a.target], party, lambda: client.revoke_grant(party.grant_id, reason="ended")
        )

    assert stale == []
    assert after >= 150
    assert took >= 2.0  # the deployment's lease, not A's own flag


def test_a_shorter_lease_set_later_still_waits_for_the_old_one_while_it_may_be_trusted(
    processes: Callable[[str, float], ServerProcess], fresh_postgres_url: str
) -> None:
    b = processes("b", 2.0)
    admin = _admin(fresh_postgres_url)
    party = new_party(b.target, admin)
    a = processes("a", 0.2)  # lowers the deployment's lease; B may trust its memory for 2 s still
    lowered = time.monotonic()
    with charter.Client(a.target, api_key=admin) as client:
        stale, after, took = _hammer_then_revoke(
            [b.target, a.target], party, lambda: client.revoke_grant(party.grant_id, reason="ended")
        )
        second = new_party(a.target, admin)  # its set-up is not timed: it took over 2 s on a loaded machine
        time.sleep(max(0.0, lowered + 2.0 - time.monotonic()))
        later = time.monotonic()
        client.revoke_grant(second.grant_id, reason="ended")
        later_took = time.monotonic() - later

    assert stale == []
    assert after >= 150
    assert took >= 0.2
    assert later_took < 1.5  # once the old lease is up, the new one applies


def test_a_revoked_api_key_works_on_no_replica_once_revocation_returns(
    processes: Callable[[str, float], ServerProcess], fresh_postgres_url: str
) -> None:
    a = processes("a", 0.2)
    b = processes("b", 0.2)
    admin = _admin(fresh_postgres_url)
    with charter.Client(a.target, api_key=admin) as client:
        key = client.create_api_key(display_name="to revoke", role=api_key_pb2.ROLE_AUDITOR)
        returned = threading.Event()
        outcomes: list[tuple[bool, str | None]] = []
        lock = threading.Lock()

        def loop(target: str) -> None:
            with open_channel(target) as channel:
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    began_after = returned.is_set()
                    try:
                        channel.unary_unary("/charter.v1.AccessService/GetCaller")(
                            access_pb.GetCallerRequest().SerializeToString(), metadata=bearer(key.secret), timeout=5
                        )
                        result: tuple[bool, str | None] = (True, None)
                    except grpc.RpcError as error:
                        result = (False, reason(error))
                    if began_after:
                        with lock:
                            outcomes.append(result)
                            if len(outcomes) >= 100:
                                return

        with ThreadPoolExecutor(max_workers=2) as pool:
            loops = [pool.submit(loop, target) for target in (b.target, a.target)]
            time.sleep(0.5)  # both replicas have the key cached
            client.revoke_api_key(key.api_key.id)
            returned.set()
            for done in loops:
                done.result(timeout=30)

    assert len(outcomes) >= 100
    assert set(outcomes) == {(False, "API_KEY_REVOKED")}
