"""The gRPC transport: ``grpc.aio`` on an event loop (uvloop's) of its own thread, unary bodies on
worker threads (or inline, see ``charter_server.api.dispatch``), streams as coroutines; start,
drain, stop.

**The drain** (`Transport.stop`): health goes ``NOT_SERVING`` and health watches end; new calls
are refused with ``UNAVAILABLE`` (``SHUTTING_DOWN``, with a retry pushback that gRPC clients
honour); revocation streams and reflection streams end with the same status; calls in flight
finish. Only when none is left and no refused caller has come back for a moment is gRPC itself
stopped: at that point nothing is queued inside gRPC, where a call would be cancelled without an
answer. All of it is bounded by the grace period: at its end whatever is left is cancelled and the
process may exit.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
import uvloop
from grpc_health.v1 import health_pb2

from charter_server.api import reflection
from charter_server.api.dispatch import Dispatcher
from charter_server.api.health import Health
from charter_server.api.limits import StreamLimits
from charter_server.services.access import Authenticator
from charter_server.services.revocations import RevocationFeed
from charter_server.storage.database import allow_blocking, forbid_blocking

log = structlog.get_logger(__name__)

HEALTH_SERVICE = "grpc.health.v1.Health"
QUIET_SECONDS = 0.05
"""How long no refused caller may have come back before gRPC is stopped during a drain."""
PATIENCE_SECONDS = 1.0
"""How long a drain waits for that quiet at most, once no call is in flight."""
_MESSAGE_HEADROOM = 1024 * 1024


class StartupFailed(RuntimeError):
    """The transport could not be built (a port that cannot be bound, say)."""


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """What the transport needs from the settings."""

    listen: str
    credentials: grpc.ServerCredentials | None
    max_workers: int
    max_concurrent_rpcs: int
    max_message_bytes: int
    max_streams_per_key: int
    max_unauthenticated_streams: int
    max_streams: int
    max_streams_per_connection: int
    handshake_timeout_seconds: float
    keepalive_seconds: float
    keepalive_timeout_seconds: float
    min_client_ping_seconds: float
    inline_methods: frozenset[str]
    reuse_port: bool = False


class _Recorder:
    """Stands in for a server to the generated ``add_*Servicer_to_server`` functions: keeps the
    method handlers they register, so the transport can wrap each one."""

    def __init__(self) -> None:
        self.services: list[tuple[str, dict[str, grpc.RpcMethodHandler]]] = []

    def add_generic_rpc_handlers(self, _handlers: object) -> None:
        pass  # the same handlers come through add_registered_method_handlers

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self.services.append((service, handlers))


Registration = Callable[[Any], None]
"""Registers one servicer on a (recording) server: ``lambda server: add_X_to_server(servicer, server)``."""


class Transport:
    """The running gRPC server of one process.

    Args:
        options: Listen address, credentials and limits.
        authenticator: For the dispatcher's authentication.
        feed: The revocation feed; stopped when the drain begins.
        registrations: The Charter servicers.
        service_files: The descriptors of the served ``.proto`` files, for reflection.
        service_names: The served services, for health and reflection.
        executor: The worker threads.
        loop: An event loop already running on a thread of its own (which must not block, see
            ``forbid_blocking``) to serve on instead of a new one; it is left running when the
            transport stops. For benchmarks that run several servers in one process: grpc.aio
            wakes every event loop of the process for every completion of any of them (the loops
            share one poller), a cost that one server per process, as in production, never pays.
    """

    def __init__(
        self,
        options: TransportOptions,
        *,
        authenticator: Authenticator,
        feed: RevocationFeed,
        registrations: Sequence[Registration],
        service_files: Iterable[Any],
        service_names: Sequence[str],
        executor: ThreadPoolExecutor,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.executor = executor
        self.dispatcher = Dispatcher(
            authenticator=authenticator,
            executor=executor,
            max_in_flight=options.max_concurrent_rpcs,
            max_message_bytes=options.max_message_bytes,
            streams=StreamLimits(
                per_key=options.max_streams_per_key,
                unauthenticated=options.max_unauthenticated_streams,
                total=options.max_streams,
            ),
            inline_methods=options.inline_methods | {f"/{HEALTH_SERVICE}/Check"},
        )
        self.health = Health((*service_names, HEALTH_SERVICE))
        self._feed = feed
        self._options = options
        self._stop_lock = threading.Lock()
        self._stopping = False
        self._stopped = threading.Event()
        self._owns_loop = loop is None
        # uvloop: grpc.aio's per-call work on the loop (its tasks, futures and wake-ups) costs the
        # server 8-15 % less CPU than on asyncio's own loop, measured (bench/README.md).
        self._loop = uvloop.new_event_loop() if loop is None else loop
        self._thread = threading.Thread(target=self._serve_forever, name="charter-grpc", daemon=True)
        if self._owns_loop:
            self._thread.start()
        try:
            self._server, self.port = self._run(self._build(registrations, service_files, service_names), 30)
        except BaseException:
            self._close()
            raise

    def _serve_forever(self) -> None:
        forbid_blocking()  # a unit of work asked for on the event loop raises WouldBlock
        try:
            self._loop.run_forever()
        finally:
            allow_blocking()

    def _run(self, coroutine: Any, timeout: float | None) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _build(
        self, registrations: Sequence[Registration], service_files: Iterable[Any], service_names: Sequence[str]
    ) -> tuple[grpc.aio.Server, int]:
        options = self._options
        # gRPC refuses a message far over the limit itself (without details); the dispatcher
        # answers one that is just over it with MESSAGE_TOO_LARGE and its ErrorInfo.
        transport_limit = options.max_message_bytes + _MESSAGE_HEADROOM
        # What a stalling client holds is bounded here, in gRPC itself: a handshake never finished,
        # and (only when max_streams_per_connection is set, off by default: README "Connections")
        # calls opened but never sent whole, which never reach the dispatcher's limits. Not
        # grpc.max_connection_idle_ms: with it, a stream among hundreds opened at once on one
        # connection was cancelled in 3 of 7 runs of bench_streams.py (1 in 8 without).
        transport: list[tuple[str, int]] = [
            ("grpc.max_receive_message_length", transport_limit),
            ("grpc.max_send_message_length", transport_limit),
            ("grpc.so_reuseport", 1 if options.reuse_port else 0),
            ("grpc.server_handshake_timeout_ms", round(options.handshake_timeout_seconds * 1000)),
            # A peer gone without a word (no FIN, no RST) is found by pings; gRPC's defaults (two
            # hours, and client pings refused more often than every five minutes) would let a dead
            # watcher hold its stream, and a stream limit's slot, for hours.
            ("grpc.keepalive_time_ms", round(options.keepalive_seconds * 1000)),
            # grpcio 1.85 waits grpc.http2.ping_timeout_ms (one minute by default) for a ping's
            # answer, whatever grpc.keepalive_timeout_ms says: both are set.
            ("grpc.keepalive_timeout_ms", round(options.keepalive_timeout_seconds * 1000)),
            ("grpc.http2.ping_timeout_ms", round(options.keepalive_timeout_seconds * 1000)),
            ("grpc.http2.max_pings_without_data", 0),
            # The shortest interval between a client's pings that the server accepts (gRPC's name for it
            # says neither "client" nor "accepts").
            ("grpc.http2.min_ping_interval_without_data_ms", round(options.min_client_ping_seconds * 1000)),
        ]
        if options.max_streams_per_connection:
            transport.append(("grpc.max_concurrent_streams", options.max_streams_per_connection))
        server = grpc.aio.server(options=transport)
        dispatcher = self.dispatcher
        recorder = _Recorder()
        for register in registrations:
            register(recorder)
        methods: dict[str, grpc.RpcMethodHandler] = {}
        for service, handlers in recorder.services:
            for name, handler in handlers.items():
                full = f"/{service}/{name}"
                if handler.unary_unary is not None:
                    methods[full] = dispatcher.unary(full, handler.unary_unary, handler.request_deserializer)
                elif handler.unary_stream is not None:
                    methods[full] = dispatcher.unary_stream(full, handler.unary_stream, handler.request_deserializer)
                else:
                    raise StartupFailed(f"{full}: client-streaming methods are not served")
        health = self.health
        check, watch = f"/{HEALTH_SERVICE}/Check", f"/{HEALTH_SERVICE}/Watch"
        methods[check] = dispatcher.unary(check, health.Check, health_pb2.HealthCheckRequest.FromString)
        methods[watch] = dispatcher.unary_stream(watch, health.Watch, health_pb2.HealthCheckRequest.FromString)
        answer = reflection.handler(reflection.servicer(service_files, (*service_names, HEALTH_SERVICE)))
        for method in reflection.METHODS:
            methods[method] = dispatcher.stream_stream(method, answer, reflection.parse)
        # One generic handler (a dict lookup) rather than gRPC's registered methods: grpc.aio waits
        # on one pending future per registered method for every call it accepts, which costs more
        # per call than the lookup, the more so the more methods there are.
        server.add_generic_rpc_handlers((dispatcher.routes(methods),))
        try:
            if options.credentials is None:
                port = server.add_insecure_port(options.listen)
            else:
                port = server.add_secure_port(options.listen, options.credentials)
        except RuntimeError as error:
            raise StartupFailed(f"cannot listen on {options.listen}: {error}") from error
        if port == 0:
            raise StartupFailed(f"cannot listen on {options.listen}")
        return server, port

    def start(self) -> None:
        """Serve, and report ``SERVING``."""

        async def start() -> None:
            await self._server.start()
            self.health.serve()

        self._run(start(), 30)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the transport serves on."""
        return self._loop

    @property
    def draining(self) -> bool:
        """Whether the drain has begun."""
        return self._stopping

    def stop(self, grace: float) -> None:
        """Drain (see the module docstring) within ``grace`` seconds, then stop. A second call
        waits for the first to finish."""
        with self._stop_lock:
            first = not self._stopping
            self._stopping = True
        if not first:
            self._stopped.wait()
            return
        try:
            self._run(self._drain(grace), grace + 10)
        except Exception as error:  # never leave the process half stopped
            log.error("server.drain_failed", error_type=type(error).__name__, error=str(error))
        finally:
            self._close()

    async def _drain(self, grace: float) -> None:
        loop = asyncio.get_running_loop()
        # Keep a little of the grace period for the rest of the shutdown, so the process is gone
        # before an orchestrator's patience ends.
        deadline = loop.time() + grace - min(0.5, grace / 5)
        self.dispatcher.begin_drain()
        self.health.shut_down()
        # Open revocation streams never end by themselves; end them so the drain is not held up
        # (on a thread: stopping waits briefly for the poller, and the loop must not wait).
        await asyncio.to_thread(self._feed.stop)
        await self.dispatcher.drained(deadline, QUIET_SECONDS, min(PATIENCE_SECONDS, grace / 3))
        left = self.dispatcher.in_flight
        if left:
            log.warning("server.drain_timeout", calls_in_flight=left)
        await self._server.stop(max(0.0, deadline - loop.time()))

    def _close(self) -> None:
        if self._owns_loop and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            if not self._thread.is_alive():
                self._loop.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self._stopped.set()

    @property
    def unfinished(self) -> int:
        """Calls whose bodies were still running on worker threads when the transport stopped."""
        return self.dispatcher.in_flight

    def wait(self) -> None:
        """Block until the transport has stopped."""
        self._stopped.wait()
