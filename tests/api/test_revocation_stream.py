"""WatchRevocations through gRPC: the backlog after a sequence number (in pages), then live events
(from RevokeGrant at once, from an opt-out within a poll), heartbeats carrying the head of the log,
no gaps and no repeats under a concurrent burst, and the stream's end: a cancelled client, a
graceful stop, a database that cannot be read.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, timedelta
from typing import Any

import grpc
import pytest
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import authorization_service_pb2_grpc as az_grpc
from charter.v1 import catalog_service_pb2 as catalog_pb
from charter.v1 import grant_pb2
from charter.v1 import grant_service_pb2 as gs
from charter_server.app import CharterServer, build_server
from charter_server.config import Settings
from charter_server.domain.errors import StorageUnavailable
from charter_server.services import revocations
from charter_server.storage.repositories import RevocationLogRepository

from .grant_helpers import Stubs, World, issue, new_world, revocation_head, stubs
from .helpers import auth, failure

Event = grant_pb2.RevocationEvent
KIND_REVOKED = Event.KIND_REVOKED
KIND_SUSPENDED = Event.KIND_SUSPENDED
KIND_REINSTATED = Event.KIND_REINSTATED


@pytest.fixture(scope="module")
def api(channel: grpc.Channel) -> Stubs:
    return stubs(channel)


@pytest.fixture
def world(api: Stubs, keys: Any) -> World:
    return new_world(api, keys.admin)


class Watch:
    """A WatchRevocations call read by a background thread, so a test can wait with a timeout."""

    END = object()

    def __init__(
        self, channel: grpc.Channel, secret: str, since: int, *, timeout: float = 30, registry: bool = False
    ) -> None:
        request = az.WatchRevocationsRequest(since_sequence=since, registry=registry)
        self.call: Any = az_grpc.AuthorizationServiceStub(channel).WatchRevocations(
            request, metadata=auth(secret), timeout=timeout
        )
        self._items: queue.Queue[Any] = queue.Queue()
        self.error: grpc.RpcError | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for item in self.call:
                self._items.put((time.monotonic(), item))
        except grpc.RpcError as error:
            self.error = error
        self._items.put((time.monotonic(), self.END))

    def next(self, timeout: float = 5) -> tuple[float, az.WatchRevocationsResponse]:
        """The next message and when it arrived; fails the test when none comes in time."""
        try:
            arrived, item = self._items.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no message within {timeout} s")
        assert item is not self.END, f"the stream ended: {self.error!r}"
        return arrived, item

    def heartbeat(self, timeout: float = 5) -> az.Heartbeat:
        """Skip to the next heartbeat (there must be no event before it)."""
        _, item = self.next(timeout)
        assert item.WhichOneof("message") == "heartbeat", item
        return item.heartbeat

    def events_through(self, sequence: int, timeout: float = 5) -> list[Event]:
        """Every event up to ``sequence``, heartbeats skipped."""
        deadline = time.monotonic() + timeout
        found: list[Event] = []
        while not found or found[-1].sequence < sequence:
            _, item = self.next(max(0.01, deadline - time.monotonic()))
            if item.WhichOneof("message") == "event":
                found.append(item.event)
        return found

    def ended(self, timeout: float = 5) -> grpc.RpcError | None:
        """Wait for the end of the stream, skipping what is left; return its error (None when OK)."""
        self._reader.join(timeout)
        assert not self._reader.is_alive(), f"the stream did not end within {timeout} s"
        return self.error

    def close(self) -> None:
        self.call.cancel()
        self._reader.join(5)


@pytest.fixture
def watches(channel: grpc.Channel, keys: Any) -> Iterator[list[Watch]]:
    """Open watches, cancelled after the test however it ended."""
    opened: list[Watch] = []
    yield opened
    for watch in opened:
        watch.close()


def open_watch(channel: grpc.Channel, secret: str, since: int, opened: list[Watch], *, registry: bool = False) -> Watch:
    watch = Watch(channel, secret, since, registry=registry)
    opened.append(watch)
    return watch


def revoke(api: Stubs, keys: Any, grant_id: str, reason: str = "licence ended") -> int:
    request = gs.RevokeGrantRequest(id=grant_id, reason=reason)
    return int(api.grants.RevokeGrant(request, metadata=auth(keys.admin)).sequence)


def wait_until(condition: Any, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


# The backlog ----------------------------------------------------------------------------------


def test_the_backlog_after_since_comes_in_order_then_a_heartbeat_with_the_head(
    api: Stubs, channel: grpc.Channel, server: CharterServer, keys: Any, clock: Any, world: World, watches: list[Watch]
) -> None:
    grants = [issue(api, keys.admin, clock, world.character_id, world.licensee_id) for _ in range(2)]
    since = revocation_head(server)
    api.grants.SuspendGrant(gs.SuspendGrantRequest(id=grants[0].id, reason="review"), metadata=auth(keys.admin))
    api.grants.ReinstateGrant(gs.ReinstateGrantRequest(id=grants[0].id), metadata=auth(keys.admin))
    revoke(api, keys, grants[1].id, reason="breach")

    watch = open_watch(channel, keys.auditor, since, watches)
    backlog = [watch.next()[1] for _ in range(3)]
    beat = watch.heartbeat()

    assert [m.WhichOneof("message") for m in backlog] == ["event"] * 3
    assert [(m.event.sequence, m.event.grant_id, m.event.kind, m.event.reason) for m in backlog] == [
        (since + 1, grants[0].id, KIND_SUSPENDED, "review"),
        (since + 2, grants[0].id, KIND_REINSTATED, ""),
        (since + 3, grants[1].id, KIND_REVOKED, "breach"),
    ]
    assert beat.sequence == since + 3 == revocation_head(server)
    assert abs(beat.server_time.ToDatetime(UTC) - clock.now()) < timedelta(seconds=5)


def test_the_whole_log_from_zero_is_contiguous_from_one(
    channel: grpc.Channel, server: CharterServer, keys: Any, watches: list[Watch]
) -> None:
    head = revocation_head(server)
    watch = open_watch(channel, keys.auditor, 0, watches, registry=True)  # registry events too

    events = watch.events_through(head) if head else []
    beat = watch.heartbeat()

    assert [e.sequence for e in events] == list(range(1, head + 1))
    assert beat.sequence == head


def test_a_backlog_longer_than_a_page_comes_whole_in_pages(
    api: Stubs,
    channel: grpc.Channel,
    server: CharterServer,
    keys: Any,
    clock: Any,
    world: World,
    watches: list[Watch],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    grants = [issue(api, keys.admin, clock, world.character_id, world.licensee_id) for _ in range(7)]
    since = revocation_head(server)
    sequences = [revoke(api, keys, g.id) for g in grants]
    reads: list[tuple[int, int]] = []
    original = RevocationLogRepository.since

    def recorded(self: RevocationLogRepository, sequence: int, limit: int) -> list[Any]:
        if threading.current_thread().name != "charter-revocations":  # not the shared poller
            reads.append((sequence, limit))
        return original(self, sequence, limit)

    monkeypatch.setattr(revocations, "PAGE_SIZE", 2)
    monkeypatch.setattr(RevocationLogRepository, "since", recorded)

    watch = open_watch(channel, keys.auditor, since, watches)
    events = watch.events_through(sequences[-1])
    watch.heartbeat()

    assert [e.sequence for e in events] == sequences == list(range(since + 1, since + 8))
    assert [e.grant_id for e in events] == [g.id for g in grants]
    # Read from the log two at a time, up to the head the watcher started at.
    assert reads == [(since, 2), (since + 2, 2), (since + 4, 2), (since + 6, 1)]


def test_a_since_beyond_the_head_is_refused_naming_the_field(
    channel: grpc.Channel, server: CharterServer, keys: Any
) -> None:
    request = az.WatchRevocationsRequest(since_sequence=revocation_head(server) + 1000)

    with pytest.raises(grpc.RpcError) as raised:
        list(az_grpc.AuthorizationServiceStub(channel).WatchRevocations(request, metadata=auth(keys.admin), timeout=5))

    got = failure(raised.value)
    assert (got.code, got.reason, got.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_FIELD",
        ("since_sequence",),
    )


# Live events ----------------------------------------------------------------------------------


def test_a_revocation_reaches_a_watcher_at_once(
    api: Stubs, channel: grpc.Channel, server: CharterServer, keys: Any, clock: Any, world: World, watches: list[Watch]
) -> None:
    grant = issue(api, keys.admin, clock, world.character_id, world.licensee_id)
    watch = open_watch(channel, keys.auditor, revocation_head(server), watches)
    watch.heartbeat()

    sequence = revoke(api, keys, grant.id, reason="chargeback")
    returned = time.monotonic()
    arrived, item = watch.next(timeout=5)

    assert item.WhichOneof("message") == "event"
    assert (item.event.sequence, item.event.grant_id, item.event.kind, item.event.reason) == (
        sequence,
        grant.id,
        KIND_REVOKED,
        "chargeback",
    )
    assert arrived - returned < 1.0


def test_an_opt_out_reaches_a_watcher_within_a_poll(
    api: Stubs, channel: grpc.Channel, server: CharterServer, keys: Any, clock: Any, world: World, watches: list[Watch]
) -> None:
    """The opt-out hook revokes inside the catalogue's own transaction, without a notification:
    the poller finds its events."""
    grants = [issue(api, keys.admin, clock, world.character_id, world.licensee_id) for _ in range(2)]
    head = revocation_head(server)
    watch = open_watch(channel, keys.auditor, head, watches)
    watch.heartbeat()

    api.catalog.OptOut(
        catalog_pb.OptOutRequest(character_id=world.character_id, reason="we leave"), metadata=auth(world.holder.secret)
    )
    returned = time.monotonic()
    events = watch.events_through(head + 2, timeout=5)
    took = time.monotonic() - returned

    assert [e.sequence for e in events] == [head + 1, head + 2]
    assert sorted(e.grant_id for e in events) == sorted(g.id for g in grants)
    assert {(e.kind, e.reason) for e in events} == {(KIND_REVOKED, "we leave")}
    assert took < 1.5


def test_a_concurrent_burst_arrives_in_order_with_no_gap_and_no_repeat(
    api: Stubs, channel: grpc.Channel, server: CharterServer, keys: Any, clock: Any, world: World, watches: list[Watch]
) -> None:
    grants = [issue(api, keys.admin, clock, world.character_id, world.licensee_id) for _ in range(16)]
    head = revocation_head(server)
    early = open_watch(channel, keys.auditor, head, watches)
    early.heartbeat()
    start = threading.Barrier(len(grants))
    late: list[Watch] = []

    def change(index: int) -> int:
        start.wait(timeout=10)
        if index == len(grants) // 2:  # a second watcher joins in the middle of the burst
            late.append(open_watch(channel, keys.auditor, head, watches))
        request = gs.SuspendGrantRequest(id=grants[index].id, reason="burst")
        if index % 3:
            return revoke(api, keys, grants[index].id, reason="burst")
        return int(api.grants.SuspendGrant(request, metadata=auth(keys.admin)).sequence)

    with ThreadPoolExecutor(max_workers=len(grants)) as pool:
        sequences = list(pool.map(change, range(len(grants))))
    expected = list(range(head + 1, head + 1 + len(grants)))
    seen_early = [e.sequence for e in early.events_through(expected[-1], timeout=10)]
    seen_late = [e.sequence for e in late[0].events_through(expected[-1], timeout=10)]

    assert sorted(sequences) == expected
    assert seen_early == expected
    assert seen_late == expected


# Heartbeats and the end of a stream -----------------------------------------------------------


@pytest.fixture
def quick_server(database_url: str, clock: Any) -> Iterator[CharterServer]:
    """A second server over the session's database, with a heartbeat every 0.2 s."""
    settings = Settings(
        listen="127.0.0.1:0",
        database_url=database_url,
        migrate=True,
        log_format="json",
        shutdown_grace_seconds=5.0,
        revocation_heartbeat_seconds=0.2,
        authorization_lease_seconds=0.05,  # as the session server: replicas share one lease
    )
    built = build_server(settings, clock=clock)
    built.start()
    try:
        yield built
    finally:
        built.stop(grace=0)


@pytest.fixture
def quick_channel(quick_server: CharterServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{quick_server.port}") as opened:
        yield opened


def test_heartbeats_come_every_interval_and_carry_the_head(
    api: Stubs,
    quick_channel: grpc.Channel,
    server: CharterServer,
    keys: Any,
    clock: Any,
    world: World,
    watches: list[Watch],
) -> None:
    grant = issue(api, keys.admin, clock, world.character_id, world.licensee_id)
    head = revocation_head(server)
    watch = open_watch(quick_channel, keys.auditor, head, watches)
    watch.heartbeat()
    quiet = [watch.next() for _ in range(5)]
    sequence = revoke(api, keys, grant.id)  # through the other server: found by polling
    before = [watch.next()[1]]
    while before[-1].WhichOneof("message") != "event" and len(before) < 10:
        before.append(watch.next()[1])
    position = len(before) - 1
    after = [watch.next()[1] for _ in range(2)]

    gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(quiet)]
    assert [item.WhichOneof("message") for _, item in quiet] == ["heartbeat"] * 5
    assert {item.heartbeat.sequence for _, item in quiet} == {head}
    # Paced, not a burst and no stall. Each gap is measured where the client receives, so one late
    # delivery shortens the next gap on a loaded machine: the span of four intervals of 0.2 s is
    # what the server's pacing fixes.
    assert 0.4 < quiet[-1][0] - quiet[0][0] < 2.4, gaps
    assert all(gap < 1.0 for gap in gaps), gaps
    assert all(
        abs(item.heartbeat.server_time.ToDatetime(UTC) - clock.now()) < timedelta(seconds=5) for _, item in quiet
    )
    # The event comes before any heartbeat that counts it, and the heartbeats then carry it.
    assert before[position].event.sequence == sequence
    assert {item.heartbeat.sequence for item in before[:position]} <= {head}
    assert [item.WhichOneof("message") for item in after] == ["heartbeat"] * 2
    assert {item.heartbeat.sequence for item in after} == {sequence}


def test_a_cancelled_client_ends_the_stream_on_the_server(
    quick_channel: grpc.Channel, quick_server: CharterServer, keys: Any, watches: list[Watch]
) -> None:
    feed = quick_server.services.feed
    watch = open_watch(quick_channel, keys.generator, revocation_head(quick_server), watches)
    watch.heartbeat()
    opened = feed.watchers

    watch.close()

    assert opened == 1
    assert wait_until(lambda: feed.watchers == 0, timeout=3)


def test_a_graceful_stop_ends_open_streams_promptly(
    quick_channel: grpc.Channel, quick_server: CharterServer, keys: Any, watches: list[Watch]
) -> None:
    opened = [open_watch(quick_channel, keys.generator, revocation_head(quick_server), watches) for _ in range(3)]
    for watch in opened:
        watch.heartbeat()

    began = time.monotonic()
    quick_server.stop(grace=5.0)
    took = time.monotonic() - began
    errors = [watch.ended() for watch in opened]

    assert took < 2.0
    assert all(error is not None for error in errors)
    got = [failure(error) for error in errors if error is not None]
    assert {(g.code, g.reason) for g in got} == {(grpc.StatusCode.UNAVAILABLE, "SHUTTING_DOWN")}
    assert quick_server.services.feed.watchers == 0


@pytest.fixture
def live_watch(quick_channel: grpc.Channel, quick_server: CharterServer, keys: Any, watches: list[Watch]) -> Watch:
    """A generator's watch from the log's head, past its first heartbeat."""
    watch = open_watch(quick_channel, keys.generator, revocation_head(quick_server), watches)
    watch.heartbeat()
    return watch


def test_a_stream_ends_retryably_rather_than_vouch_for_a_log_it_cannot_read(
    quick_server: CharterServer, live_watch: Watch, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed = quick_server.services.feed
    watch = live_watch

    def unreachable(self: Any) -> bool:
        raise StorageUnavailable("the database is unavailable; retry")

    monkeypatch.setattr(revocations.RevocationFeed, "_poll", unreachable)
    error = watch.ended()

    assert error is not None
    assert (failure(error).code, failure(error).reason) == (grpc.StatusCode.UNAVAILABLE, "STORAGE_UNAVAILABLE")
    assert wait_until(lambda: feed.watchers == 0)


def test_a_poll_that_comes_late_delays_a_heartbeat_rather_than_end_the_stream(
    quick_server: CharterServer, live_watch: Watch, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As when the whole process stalls (a long garbage collection, a starved machine): the latest
    # confirmation goes stale before the poller runs again. Seen in a suite run on a loaded
    # machine: a stream with a 0.2 s heartbeat ended UNAVAILABLE 1.3 s after it opened.
    feed = quick_server.services.feed
    watch = live_watch
    poll = revocations.RevocationFeed._poll
    stalled: list[float] = []

    def late_once(self: revocations.RevocationFeed) -> bool:
        confirmed = self.confirmation()
        if not stalled and confirmed is not None:
            # Past the point where a heartbeat finds the confirmation stale, well inside the
            # poll margin a stream then waits.
            until = confirmed.at + self.stale_after + 0.5
            stalled.append(until - confirmed.at)
            time.sleep(max(0.0, until - time.monotonic()))
        return poll(self)

    monkeypatch.setattr(revocations.RevocationFeed, "_poll", late_once)
    beats = [watch.next() for _ in range(10)]

    assert stalled == [pytest.approx(feed.stale_after + 0.5)]
    assert [item.WhichOneof("message") for _, item in beats] == ["heartbeat"] * 10
    assert feed.watchers == 1


def test_a_watch_resumed_ahead_of_this_replicas_poller_gets_no_heartbeat_behind_where_it_resumed(
    api: Stubs,
    keys: Any,
    clock: Any,
    world: World,
    quick_server: CharterServer,
    quick_channel: grpc.Channel,
    live_watch: Watch,
    watches: list[Watch],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A watcher that saw an event through another replica resumes here before this replica's
    # poller has read it. A heartbeat behind its view would say the log went backwards (and an
    # offline authorizer then reads the whole log again): the first heartbeat waits for a poll.
    feed = quick_server.services.feed
    grant = issue(api, keys.admin, clock, world.character_id, world.licensee_id)
    monkeypatch.setattr(feed, "_poll_seconds", 30.0)  # the poller polls only when woken now
    live_watch.heartbeat()
    live_watch.heartbeat()  # past the poller's last short wait
    confirmed = feed.confirmation()
    sequence = revoke(api, keys, grant.id)  # through the session's server: this one is not told
    resumed = open_watch(quick_channel, keys.generator, sequence, watches)
    first = resumed.heartbeat(timeout=10)
    key_set = api.authz.GetKeySet(az.GetKeySetRequest(), metadata=auth(keys.generator))

    assert confirmed is not None and confirmed.head < sequence
    assert first.sequence == sequence
    assert first.key_set_version == key_set.key_set.version
