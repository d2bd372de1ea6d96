"""Two real server processes over one PostgreSQL database: a revocation made through one reaches a
watcher of the other within a bounded time, in order and without gaps, and once RevokeGrant has
returned on one, VerifyGrant on the other answers REVOKED, under concurrent requests.

Skipped, with the reason, where PostgreSQL is unreachable.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import charter
import grpc
import pytest
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import authorization_service_pb2_grpc as az_grpc
from charter.v1 import decision_pb2, grant_pb2, terms_pb2

from ._support import Cluster, bearer, open_channel

pytestmark = pytest.mark.postgres

REVOKED = grant_pb2.GrantVerdict.GRANT_VERDICT_REVOKED
VALID = grant_pb2.GrantVerdict.GRANT_VERDICT_VALID


def _grants(client: charter.Client, count: int) -> tuple[str, list[grant_pb2.Grant]]:
    """``count`` grants of a new opted-in character to a new licensee."""
    holder = client.create_rights_holder(display_name="Studio", contact_email="rights@studio.example")
    licensee = client.create_licensee(display_name="App", contact_email="ops@app.example", platform="test-app")
    # Names are unique across rights holders: each test's own, as the module's tests share a cluster.
    character = client.create_character(rights_holder_id=holder.id, canonical_name=f"Chara {uuid.uuid4().hex[:12]}")
    client.opt_in(
        character.id,
        terms_pb2.Terms(
            permitted_use_types=[terms_pb2.USE_TYPE_IMAGE_GENERATION], max_content_rating=terms_pb2.CONTENT_RATING_TEEN
        ),
    )
    expire = datetime.now(UTC) + timedelta(days=30)
    grants = [
        client.issue_grant(character_id=character.id, licensee_id=licensee.id, expire_time=expire) for _ in range(count)
    ]
    return licensee.id, grants


class Watch:
    """A WatchRevocations call read by a background thread into a queue."""

    def __init__(self, target: str, secret: str, since: int) -> None:
        self._channel = grpc.insecure_channel(target)
        self.call: Any = az_grpc.AuthorizationServiceStub(self._channel).WatchRevocations(
            az.WatchRevocationsRequest(since_sequence=since), metadata=bearer(secret), timeout=60
        )
        self.items: queue.Queue[tuple[float, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for item in self.call:
                self.items.put((time.monotonic(), item))
        except grpc.RpcError as error:
            self.items.put((time.monotonic(), error))

    def next(self, timeout: float) -> tuple[float, Any]:
        arrived, item = self.items.get(timeout=timeout)
        assert not isinstance(item, grpc.RpcError), f"the stream ended: {item!r}"
        return arrived, item

    def close(self) -> None:
        self.call.cancel()
        self._reader.join(5)
        self._channel.close()


def test_a_revocation_through_one_process_reaches_a_watcher_of_the_other(cluster: Cluster) -> None:
    with charter.Client(cluster.a.target, api_key=cluster.admin) as on_a:
        _, grants = _grants(on_a, 6)
        watch = Watch(cluster.b.target, cluster.admin, since=0)
        try:
            _, first = watch.next(timeout=5)
            # The log holds only the registry's events of the characters made (left out: a skip),
            # then the first heartbeat, at once.
            while first.WhichOneof("message") == "skip":
                _, first = watch.next(timeout=5)
            returned: dict[int, float] = {}
            for grant in grants:
                returned[on_a.revoke_grant(grant.id, reason="ended").sequence] = time.monotonic()
            received: list[tuple[float, grant_pb2.RevocationEvent]] = []
            while len(received) < len(grants):
                arrived, item = watch.next(timeout=5)
                if item.WhichOneof("message") == "event":
                    received.append((arrived, item.event))
        finally:
            watch.close()

    head = first.heartbeat.sequence
    assert first.WhichOneof("message") == "heartbeat"
    assert (
        [event.sequence for _, event in received] == sorted(returned) == list(range(head + 1, head + len(grants) + 1))
    )
    assert [event.grant_id for _, event in received] == [g.id for g in grants]
    delays = [arrived - returned[event.sequence] for arrived, event in received]
    assert max(delays) < 2.0, delays  # found by B's poller, not told by A


def test_after_revoke_returns_on_one_process_verify_on_the_other_says_revoked(module_cluster: Cluster) -> None:
    with (
        charter.Client(module_cluster.a.target, api_key=module_cluster.admin) as on_a,
        charter.Client(module_cluster.b.target, api_key=module_cluster.admin) as on_b,
    ):
        licensee_id, grants = _grants(on_a, 16)
        revoked_at: dict[str, float] = {}
        lock = threading.Lock()
        stale: list[tuple[str, int]] = []
        done = threading.Event()

        def verdict(grant: grant_pb2.Grant) -> int:
            answer = on_b.verify_grant(grant.envelope, licensee_id=licensee_id, character_id=grant.character_id)
            return int(answer.verdict)

        def revoke_then_verify(grant: grant_pb2.Grant) -> int:
            on_a.revoke_grant(grant.id, reason="ended")
            with lock:
                revoked_at[grant.id] = time.monotonic()
            return verdict(grant)

        def keep_verifying(offset: int) -> int:
            """Verify on B all along; any call that began after the revoke returned must say REVOKED."""
            calls = 0
            while not done.is_set():
                grant = grants[(offset + calls) % len(grants)]
                with lock:
                    began_after_revoke = grant.id in revoked_at
                answer = verdict(grant)
                calls += 1
                if began_after_revoke and answer != REVOKED:
                    with lock:
                        stale.append((grant.id, answer))
            return calls

        before = {verdict(g) for g in grants}
        with ThreadPoolExecutor(max_workers=7) as pool:
            checkers = [pool.submit(keep_verifying, n * 5) for n in range(3)]
            verdicts = list(pool.map(revoke_then_verify, grants))
            done.set()
            checked = sum(c.result(timeout=20) for c in checkers)

    assert before == {VALID}
    assert verdicts == [REVOKED] * len(grants)
    assert stale == []
    assert checked > 0


def _generator_key(client: charter.Client, licensee_id: str) -> str:
    return client.create_api_key(display_name="generator", role="generator", licensee_id=licensee_id).secret


def _authorize(stub: az_grpc.AuthorizationServiceStub, secret: str, character_id: str) -> Any:
    request = az.AuthorizeRequest(
        character_ids=[character_id],
        context=decision_pb2.UseContext(
            use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION, content_rating=terms_pb2.CONTENT_RATING_TEEN
        ),
    )
    return stub.Authorize(request, metadata=bearer(secret), timeout=10).decision.characters[0]


def test_after_revoke_returns_on_one_process_no_process_authorizes_the_grant(module_cluster: Cluster) -> None:
    """The authorization lease at work: Authorize decides from memory on both processes, yet once
    RevokeGrant has returned through A, no Authorize begun afterwards on A or B allows the grant."""
    with (
        charter.Client(module_cluster.a.target, api_key=module_cluster.admin) as on_a,
        open_channel(module_cluster.a.target) as channel_a,
        open_channel(module_cluster.b.target) as channel_b,
    ):
        licensee_id, grants = _grants(on_a, 1)
        grant = grants[0]
        generator = _generator_key(on_a, licensee_id)
        stubs = [az_grpc.AuthorizationServiceStub(channel) for channel in (channel_a, channel_b)]
        before = [_authorize(stub, generator, grant.character_id) for stub in stubs]
        revoked = threading.Event()
        stale: list[tuple[int, list[int]]] = []
        counted = {"after": 0}
        lock = threading.Lock()

        def keep_authorizing(index: int) -> int:
            stub, calls = stubs[index % 2], 0
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                began_after = revoked.is_set()
                decision = _authorize(stub, generator, grant.character_id)
                calls += 1
                if began_after:
                    with lock:
                        counted["after"] += 1
                        if decision.allowed:
                            stale.append((index % 2, list(decision.reasons)))
                    if counted["after"] >= 200:
                        return calls
            return calls

        with ThreadPoolExecutor(max_workers=4) as pool:
            loops = [pool.submit(keep_authorizing, n) for n in range(4)]
            time.sleep(0.5)  # both processes are deciding from memory by now
            on_a.revoke_grant(grant.id, reason="ended")
            revoked.set()
            calls = sum(loop.result(timeout=30) for loop in loops)

    assert [d.allowed for d in before] == [True, True]
    assert stale == []
    assert counted["after"] >= 200
    assert calls > counted["after"]


def test_a_daily_quota_is_exact_across_two_processes(module_cluster: Cluster) -> None:
    quota = 25
    with (
        charter.Client(module_cluster.a.target, api_key=module_cluster.admin) as admin,
        open_channel(module_cluster.a.target) as channel_a,
        open_channel(module_cluster.b.target) as channel_b,
    ):
        holder = admin.create_rights_holder(display_name="Studio", contact_email="rights@studio.example")
        licensee = admin.create_licensee(display_name="App", contact_email="ops@app.example", platform="test-app")
        character = admin.create_character(rights_holder_id=holder.id, canonical_name="Quota Chara")
        terms = terms_pb2.Terms(
            permitted_use_types=[terms_pb2.USE_TYPE_IMAGE_GENERATION],
            max_content_rating=terms_pb2.CONTENT_RATING_TEEN,
            daily_quota=quota,
        )
        admin.opt_in(character.id, terms)
        admin.issue_grant(
            character_id=character.id, licensee_id=licensee.id, expire_time=datetime.now(UTC) + timedelta(days=3)
        )
        generator = _generator_key(admin, licensee.id)
        stubs = [az_grpc.AuthorizationServiceStub(channel) for channel in (channel_a, channel_b)]

        def attempt(number: int) -> tuple[bool, list[int]]:
            decision = _authorize(stubs[number % 2], generator, character.id)
            return decision.allowed, list(decision.reasons)

        with ThreadPoolExecutor(max_workers=8) as pool:
            outcomes = list(pool.map(attempt, range(4 * quota)))

    allowed = [outcome for outcome in outcomes if outcome[0]]
    denied_reasons = {tuple(reasons) for ok, reasons in outcomes if not ok}
    assert len(allowed) == quota
    assert denied_reasons == {(decision_pb2.DENY_REASON_QUOTA_EXHAUSTED,)}
