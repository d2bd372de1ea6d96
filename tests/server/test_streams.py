"""Streams that cost no worker: many open WatchRevocations and Health/Watch streams leave every
unary call answering, one poll per process feeds every watcher, the stream limits (per API key,
unauthenticated, in total) answer RESOURCE_EXHAUSTED with STREAM_LIMIT_REACHED, and a drain ends
every kind of stream at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import charter
import grpc
import pytest
from charter.v1 import access_service_pb2 as access_pb
from charter.v1 import authorization_service_pb2_grpc as az_grpc
from charter_server.app import CharterServer
from charter_server.storage.repositories import RevocationLogRepository
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from ._serving import Stream, authorize_request, bearer, new_party, wait_until, watch
from ._support import access_stub, open_channel, reason
from .conftest import ServerFactory

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def few_workers(database_url: str, server_factory: ServerFactory) -> CharterServer:
    """A server with only four worker threads (16 by default)."""
    return server_factory(database_url=database_url, max_workers=4, revocation_heartbeat_seconds=0.5)


@pytest.fixture
def streams() -> Iterator[list[Stream]]:
    opened: list[Stream] = []
    yield opened
    for stream in opened:
        stream.close()


def _health_watch(channel: grpc.Channel, timeout: float = 60) -> Stream:
    return Stream(health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=timeout))


def test_many_open_streams_leave_every_unary_call_answering(few_workers: CharterServer, streams: list[Stream]) -> None:
    """Seen: sixteen open streams (one per worker thread) made Authorize, GetCaller and
    Health/Check time out. Here ten times the workers are open, of both kinds."""
    target = f"127.0.0.1:{few_workers.port}"
    admin = few_workers.services.access.create_bootstrap_admin("streams").secret
    party = new_party(target, admin)
    with open_channel(target) as channel:
        for _ in range(20):
            streams.append(watch(channel, party.generator))
            streams.append(_health_watch(channel))
        first = [stream.next(timeout=10) for stream in streams]
        started = time.monotonic()
        caller = access_stub(channel).GetCaller(access_pb.GetCallerRequest(), metadata=bearer(admin), timeout=3)
        decision = az_grpc.AuthorizationServiceStub(channel).Authorize(
            authorize_request(party), metadata=bearer(party.generator), timeout=3
        )
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
        took = time.monotonic() - started
        watchers = few_workers.services.feed.watchers

    assert all(item is not Stream.END for item in first)
    assert caller.api_key.display_name == "streams"
    assert decision.decision.allowed
    assert health.status == SERVING
    assert took < 3.0
    assert watchers == 20


def test_one_poll_per_process_feeds_every_watcher(
    few_workers: CharterServer, streams: list[Stream], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = f"127.0.0.1:{few_workers.port}"
    admin = few_workers.services.access.create_bootstrap_admin("fan out").secret
    party = new_party(target, admin)
    reads: list[str] = []
    original = RevocationLogRepository.since

    def counted(self: RevocationLogRepository, sequence: int, limit: int) -> list[Any]:
        reads.append(threading.current_thread().name)
        return original(self, sequence, limit)

    with open_channel(target) as channel:
        for _ in range(40):
            streams.append(watch(channel, party.generator))
        for stream in streams:
            stream.next(timeout=10)  # the backlog's heartbeat: every stream is current
        monkeypatch.setattr(RevocationLogRepository, "since", counted)
        time.sleep(2.0)
        with charter.Client(target, api_key=admin) as client:
            client.revoke_grant(party.grant_id, reason="over")
        delivered = [_first_event(stream) for stream in streams]

    # The poller reads the log every 0.25 s or so; forty watchers do not multiply that.
    assert all(event is not None and event.grant_id == party.grant_id for event in delivered)
    assert set(reads) == {"charter-revocations"}
    assert len(reads) <= 16


def _first_event(stream: Stream) -> Any:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        item = stream.next(timeout=5)
        if item is Stream.END:
            return None
        if item.WhichOneof("message") == "event":
            return item.event
    return None


def test_streams_per_api_key_are_limited(
    database_url: str, server_factory: ServerFactory, streams: list[Stream]
) -> None:
    srv = server_factory(database_url=database_url, max_streams_per_key=3)
    target = f"127.0.0.1:{srv.port}"
    admin = srv.services.access.create_bootstrap_admin("limits").secret
    party = new_party(target, admin)
    with open_channel(target) as channel:
        mine = [watch(channel, party.generator) for _ in range(3)]
        streams.extend(mine)
        for stream in mine:
            stream.next(timeout=10)
        refused = watch(channel, party.generator)
        refusal = refused.ended(timeout=5)
        other_key = watch(channel, admin)  # another key has a limit of its own
        streams.append(other_key)
        other_first = other_key.next(timeout=10)
        mine[0].close()
        assert wait_until(lambda: srv.transport.dispatcher.streams.open == 3)
        again = watch(channel, party.generator)
        streams.append(again)
        again_first = again.next(timeout=10)

    assert refusal is not None
    assert refusal.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason(refusal) == "STREAM_LIMIT_REACHED"
    assert other_first is not Stream.END
    assert again_first is not Stream.END


def test_unauthenticated_streams_are_limited_together(
    database_url: str, server_factory: ServerFactory, streams: list[Stream]
) -> None:
    srv = server_factory(database_url=database_url, max_unauthenticated_streams=2)
    with open_channel(f"127.0.0.1:{srv.port}") as channel:
        for _ in range(2):
            streams.append(_health_watch(channel))
        first = [stream.next(timeout=10) for stream in streams]
        refusal = _health_watch(channel).ended(timeout=5)
        check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)

    assert [item.status for item in first] == [SERVING, SERVING]
    assert refusal is not None
    assert (refusal.code(), reason(refusal)) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "STREAM_LIMIT_REACHED")
    assert check.status == SERVING  # a unary check is never limited by the streams


def test_the_total_of_streams_is_limited(
    database_url: str, server_factory: ServerFactory, streams: list[Stream]
) -> None:
    srv = server_factory(database_url=database_url, max_streams=2)
    admin = srv.services.access.create_bootstrap_admin("total").secret
    with open_channel(f"127.0.0.1:{srv.port}") as channel:
        streams.append(watch(channel, admin))
        streams.append(_health_watch(channel))
        first = [stream.next(timeout=10) for stream in streams]
        refusal = watch(channel, admin).ended(timeout=5)

    assert all(item is not Stream.END for item in first)
    assert refusal is not None
    assert (refusal.code(), reason(refusal)) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "STREAM_LIMIT_REACHED")


def test_a_drain_ends_every_kind_of_stream_at_once(
    database_url: str, server_factory: ServerFactory, streams: list[Stream]
) -> None:
    """Seen: one exit took the whole grace period with nothing in flight."""
    srv = server_factory(database_url=database_url, shutdown_grace_seconds=10.0)
    admin = srv.services.access.create_bootstrap_admin("drain").secret
    with open_channel(f"127.0.0.1:{srv.port}") as channel:
        revocations = watch(channel, admin)
        health = _health_watch(channel)
        reflection_call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter_until(threading.Event(), reflection_pb2.ServerReflectionRequest(list_services="")), timeout=60
        )
        reflection = Stream(reflection_call)
        streams.extend((revocations, health, reflection))
        opened = [revocations.next(timeout=10), health.next(timeout=10), reflection.next(timeout=10)]
        began = time.monotonic()
        srv.stop(grace=10.0)
        took = time.monotonic() - began
        health_after = [health.next(timeout=5) for _ in range(2)]
        ends = [stream.ended(timeout=5) for stream in (revocations, health, reflection)]

    assert all(item is not Stream.END for item in opened)
    assert took < 2.0
    assert health_after[0].status == NOT_SERVING
    assert health_after[1] is Stream.END
    assert all(end is not None for end in ends)
    assert {(end.code(), reason(end)) for end in ends if end is not None} == {
        (grpc.StatusCode.UNAVAILABLE, "SHUTTING_DOWN")
    }


def iter_until(stop: threading.Event, first: Any) -> Iterator[Any]:
    """A request iterator that sends ``first`` and then stays open until ``stop`` is set."""
    yield first
    stop.wait(60)


def test_a_stream_of_another_party_is_not_served_before_its_key_is_known(
    few_workers: CharterServer, streams: list[Stream]
) -> None:
    """A stream needs a valid key like any call: a bad one is refused before it counts."""
    with open_channel(f"127.0.0.1:{few_workers.port}") as channel:
        refusal = watch(channel, "key_00000000000000000000000000000000.nope").ended(timeout=5)

    assert refusal is not None
    assert (refusal.code(), reason(refusal)) == (grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_INVALID")
    assert few_workers.transport.dispatcher.streams.open == 0
