"""A transport built on another transport's event loop (``Transport(loop=...)``, which benchmarks
use to run several servers in one process without a second loop) serves on it, and stopping it
leaves the loop, and the server that owns it, serving."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import grpc
from charter_server.api.serving import Transport
from charter_server.app import CharterServer, transport_options
from charter_server.domain.clock import SystemClock
from charter_server.services.revocations import RevocationFeed
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ._support import open_channel
from .conftest import ServerFactory

SERVING = health_pb2.HealthCheckResponse.SERVING


def _check(port: int) -> health_pb2.HealthCheckResponse.ServingStatus.ValueType:
    with open_channel(f"127.0.0.1:{port}") as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status


def test_a_transport_on_a_shared_loop_serves_and_leaves_the_loop_running(
    database_url: str, server_factory: ServerFactory
) -> None:
    server: CharterServer = server_factory(database_url=database_url)
    loop = server.transport.loop
    second = Transport(
        dataclasses.replace(transport_options(server.settings), listen="127.0.0.1:0"),
        authenticator=server.services.authenticator,
        feed=RevocationFeed(server.db, SystemClock()),
        registrations=(),
        service_files=(),
        service_names=(),
        executor=ThreadPoolExecutor(max_workers=2),
        loop=loop,
    )
    second.start()
    assert second.loop is loop
    assert second.port != server.port
    assert _check(second.port) == SERVING
    assert _check(server.port) == SERVING

    second.stop(1.0)
    with open_channel(f"127.0.0.1:{second.port}") as channel:
        try:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.RpcError as error:
            assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        else:
            raise AssertionError("the stopped transport still answered")
    assert loop.is_running()
    assert not loop.is_closed()
    assert _check(server.port) == SERVING
