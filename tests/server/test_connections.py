"""Connections that stall cost the server a bounded amount, in gRPC itself (below Charter's own
limits, which count only calls whose request has arrived): a connection that never finishes its
handshake is closed, one connection has at most ``max_streams_per_connection`` calls open, even
from a client that ignores the limit and never finishes its requests, and a connection whose client
went silent (no FIN, no RST) is found by pings and closed, freeing what its streams held.

Driven with raw sockets and h2, an HTTP/2 client that does what gRPC's own never does."""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
from charter_server.app import CharterServer
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ._relay import Relay
from ._support import open_channel
from .conftest import ServerFactory

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113 3.4: the client's first bytes


def _serve(server_factory: ServerFactory, tmp_path: Path, **settings: object) -> CharterServer:
    return server_factory(database_url=f"sqlite:///{tmp_path / 'connections.db'}", **settings)


def _closed_after(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed ``sock`` (whatever it sent first), or None within ``seconds``."""
    sock.settimeout(0.1)
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - started
    return None


def _check(channel: grpc.Channel) -> int:
    return int(health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status)


def test_a_connection_that_never_finishes_its_handshake_is_closed(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = _serve(server_factory, tmp_path, handshake_timeout_seconds=0.5)
    address = ("127.0.0.1", server.port)
    with socket.create_connection(address) as silent, socket.create_connection(address) as preface_only:
        preface_only.sendall(PREFACE)  # and never its SETTINGS
        silent_closed = _closed_after(silent, 10)
        preface_closed = _closed_after(preface_only, 10)
    with open_channel(f"127.0.0.1:{server.port}") as channel:
        status = _check(channel)

    assert silent_closed is not None  # gRPC's own default keeps it two minutes
    assert preface_closed is not None
    assert status == health_pb2.HealthCheckResponse.SERVING


def test_one_connection_has_at_most_its_limit_of_calls_open_even_when_the_client_ignores_it(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    limit, sent = 4, 20
    server = _serve(server_factory, tmp_path, max_streams_per_connection=limit)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        opened = []
        # All sent before the server's SETTINGS are read, so h2 does not hold any back: each an
        # Authorize whose message says 1,000 bytes and never comes whole.
        for _ in range(sent):
            stream_id = conn.get_next_available_stream_id()
            conn.send_headers(
                stream_id,
                [
                    (":method", "POST"),
                    (":scheme", "http"),
                    (":path", "/charter.v1.AuthorizationService/Authorize"),
                    (":authority", f"127.0.0.1:{server.port}"),
                    ("content-type", "application/grpc"),
                    ("te", "trailers"),
                ],
            )
            conn.send_data(stream_id, struct.pack(">BI", 0, 1000) + b"\x0a" * 10)
            opened.append(stream_id)
        sock.sendall(conn.data_to_send())
        resets: dict[int, int] = {}
        sock.settimeout(0.2)
        deadline = time.monotonic() + 10
        while len(resets) < sent - limit and time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.StreamReset):
                    resets[event.stream_id] = event.error_code
            sock.sendall(conn.data_to_send())
        advertised = conn.remote_settings.max_concurrent_streams
        with open_channel(f"127.0.0.1:{server.port}") as channel:
            status = _check(channel)  # another connection is served meanwhile

    assert advertised == limit
    assert sorted(resets) == opened[limit:]  # the first four stay open, waiting; the rest are refused
    assert set(resets.values()) <= {h2.errors.ErrorCodes.REFUSED_STREAM, h2.errors.ErrorCodes.ENHANCE_YOUR_CALM}
    assert status == health_pb2.HealthCheckResponse.SERVING


def test_the_streams_of_a_client_gone_silent_are_ended_and_free_their_slots(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    # One health watch is all this server takes without a key. Without pings of its own the server
    # kept a silent client's stream (and the slot) for as long as the kernel kept the connection:
    # for good here, where the relay keeps reading.
    server = _serve(
        server_factory, tmp_path, max_unauthenticated_streams=1, keepalive_seconds=1, keepalive_timeout_seconds=1
    )
    request = health_pb2.HealthCheckRequest()
    with (
        Relay(("127.0.0.1", server.port)) as relay,
        open_channel(relay.target) as far,
        open_channel(f"127.0.0.1:{server.port}") as near,
    ):
        silent = health_pb2_grpc.HealthStub(far).Watch(request)
        first = next(silent).status
        relay.silence()
        refused: list[grpc.StatusCode] = []
        started, watching = time.monotonic(), None
        while watching is None and time.monotonic() - started < 15:
            attempt = health_pb2_grpc.HealthStub(near).Watch(request, timeout=10)
            try:
                watching = next(attempt).status
            except grpc.RpcError as error:
                refused.append(error.code())
                time.sleep(0.2)
            attempt.cancel()
        silent.cancel()

    assert first == watching == health_pb2.HealthCheckResponse.SERVING
    assert refused  # the slot was held until the server found the client gone
    assert set(refused) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert time.monotonic() - started < 15
