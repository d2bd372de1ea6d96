"""Shared helpers of the benchmarks: a fresh Charter server, an empty gRPC baseline, timing.

Every benchmark measures its own baseline in the same run (the throughput of an empty unary gRPC
handler on the same machine, in the same process) and prints its figures as a ratio to it, so
results stay comparable on a noisy or shared machine. Everything listens on loopback only, and
every loop is bounded both in count and in time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import faulthandler
import multiprocessing
import os
import platform
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

import grpc
import uvloop
from charter_server import logs
from charter_server.app import CharterServer, build_server
from charter_server.config import Settings
from charter_server.domain.models import Principal, Role
from charter_server.services.access import ApiKeyInput
from charter_server.services.catalog import RightsHolderInput

POSTGRES_ADMIN_URL = os.environ.get("CHARTER_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
BACKENDS = ("sqlite", "postgresql")

# The empty baseline: a generic handler that answers every call with an empty message. Without
# serializers gRPC passes bytes through, so the baseline is the transport and the Python gRPC
# machinery alone.
_EMPTY_SERVICE = "charter.bench.Empty"
_EMPTY_METHOD = f"/{_EMPTY_SERVICE}/Call"


class TimeLimitExceeded(RuntimeError):
    """The benchmark ran past its time limit."""


class Deadline:
    """A hard time limit for a whole run.

    ``check()`` between steps raises ``TimeLimitExceeded``; ``remaining()`` bounds each RPC's
    timeout. As a last resort, if the process is stuck inside one call, ``faulthandler`` dumps
    every thread's stack and exits a little after the limit.
    """

    def __init__(self, seconds: float, *, backstop_margin: float = 30.0) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds
        faulthandler.dump_traceback_later(seconds + backstop_margin, exit=True)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self._end - time.monotonic())

    def check(self, what: str) -> None:
        """Raise ``TimeLimitExceeded`` naming ``what`` when the time is up."""
        if self.remaining() <= 0:
            raise TimeLimitExceeded(f"time limit of {self.seconds:g} s reached during {what}")

    def cancel(self) -> None:
        """Disarm the backstop at the end of the run."""
        faulthandler.cancel_dump_traceback_later()


@dataclass(frozen=True)
class Measurement:
    """``count`` operations in ``seconds`` of wall time."""

    count: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("inf")


class Stopwatch:
    """Wall time of a block: ``with Stopwatch() as sw: ...`` then ``sw.seconds``."""

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


def quiet_logs() -> None:
    """Only warnings and errors from the server, so the benchmark's own lines stay readable."""
    logs.configure(log_format="json", level="warning")


def machine() -> str:
    """A short description of where the run happened, with the load average when it is asked
    for (the machine may be shared: figures taken under load are read with it)."""
    one, five, fifteen = os.getloadavg()
    return (
        f"nproc={os.cpu_count()} python={platform.python_version()} "
        f"{platform.system().lower()}-{platform.machine()} grpc={grpc.__version__} "
        f"load={one:.2f}/{five:.2f}/{fifteen:.2f}"
    )


def load_average() -> str:
    """The load average now, for a line of its own (figures taken under load are read with it)."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def today() -> str:
    """The UTC date of the run, ISO 8601."""
    return dt.datetime.now(dt.UTC).date().isoformat()


def line(label: str, value: str) -> None:
    """Print one aligned result line."""
    print(f"{label:<34} {value}", flush=True)


# A Charter server on a fresh database ---------------------------------------------------------


def _require_loopback(url: str) -> None:
    host = urlsplit(url.replace("postgresql+psycopg://", "postgresql://")).hostname or ""
    if host not in LOOPBACK_HOSTS:
        sys.exit(f"benchmarks use loopback only; {POSTGRES_ADMIN_URL!r} names host {host!r}")


@contextmanager
def fresh_database(backend: str) -> Iterator[str]:
    """A database URL of an empty database of ``backend``, removed afterwards.

    SQLite: a file in a temporary directory. PostgreSQL: a new database created on the server of
    ``CHARTER_BENCH_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``) and
    dropped at the end, so concurrent runs never collide.
    """
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="charter-bench-") as folder:
            yield f"sqlite:///{folder}/charter.db"
        return
    if backend != "postgresql":
        raise ValueError(f"unknown backend {backend!r}")
    _require_loopback(POSTGRES_ADMIN_URL)
    import psycopg

    admin = POSTGRES_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    name = f"charter_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def charter_server(database_url: str) -> Iterator[CharterServer]:
    """A running Charter server on a free loopback port, built by the production composition root."""
    settings = Settings(
        listen="127.0.0.1:0",
        database_url=database_url,
        migrate=True,
        log_format="json",
        log_level="warning",
        shutdown_grace_seconds=1.0,
    )
    server = build_server(settings)
    server.start()
    try:
        yield server
    finally:
        server.stop(grace=1.0)


@dataclass(frozen=True)
class RightsHolderKey:
    """A rights holder and the secret of an API key bound to it."""

    rights_holder_id: str
    secret: str

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The call metadata that authenticates as this key."""
        return (("authorization", f"Bearer {self.secret}"),)


def rights_holder_key(server: CharterServer) -> RightsHolderKey:
    """Create a rights holder and a key of it through the real services (as the tests do)."""
    services = server.services
    admin = services.access.create_bootstrap_admin("bench admin")
    staff = Principal(admin.api_key.id, Role.ADMIN)
    holder = services.catalog.create_rights_holder(
        staff, RightsHolderInput(display_name="Bench Studio", contact_email="rights@bench.example")
    )
    key = services.access.create_api_key(
        staff, ApiKeyInput("bench importer", Role.RIGHTS_HOLDER, rights_holder_id=holder.id)
    )
    return RightsHolderKey(holder.id, key.secret)


# The empty unary baseline ---------------------------------------------------------------------


def _empty(_request: bytes, _context: grpc.ServicerContext) -> bytes:
    return b""


@contextmanager
def empty_server(max_workers: int) -> Iterator[str]:
    """A gRPC server on a free loopback port whose one unary method returns an empty message.

    It uses as many worker threads as the Charter server, so the two differ only in what the
    handler does (and in Charter's transport, which is part of what is measured).
    """
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="bench-empty"))
    handler = grpc.unary_unary_rpc_method_handler(_empty)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_EMPTY_SERVICE, {"Call": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=1.0).wait()


async def _empty_async(_request: bytes, _context: grpc.aio.ServicerContext) -> bytes:
    return b""


@contextmanager
def aio_empty_server(
    service: str = _EMPTY_SERVICE, method: str = "Call", *, loop: asyncio.AbstractEventLoop | None = None
) -> Iterator[str]:
    """A ``grpc.aio`` server on an event loop of its own thread (or on ``loop``, already running,
    which is then left running), whose one unary method is a coroutine returning an empty message
    (no thread hand-off at all); yields its loopback address.

    With the handler on the event loop this measured the fastest grpcio setup on these machines
    (the synchronous server is close; ``grpc.aio`` with synchronous handlers on its thread pool is
    far slower), so it is the baseline the serving benchmarks judge against. A benchmark that runs
    a Charter server in the same process passes its transport's loop: grpc.aio wakes every event
    loop of a process for every completion of any of them, so a second loop would cost each call
    of either server tens of µs that one server per process never pays.
    """
    owned = loop is None
    if loop is None:
        loop = uvloop.new_event_loop()  # the loop Charter serves on, the fastest measured
        thread = threading.Thread(target=loop.run_forever, name="bench-aio-empty", daemon=True)
        thread.start()

    async def start() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server()
        handler = grpc.unary_unary_rpc_method_handler(_empty_async)
        server.add_registered_method_handlers(service, {method: handler})
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(1.0), loop).result(30)
        if owned:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            loop.close()


def measure_empty_calls(max_workers: int, *, calls: int, max_seconds: float, deadline: Deadline) -> Measurement:
    """Throughput of sequential empty unary calls: at most ``calls`` calls and ``max_seconds``."""
    with empty_server(max_workers) as target, grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(_EMPTY_METHOD)
        for _ in range(min(50, calls)):  # warm up: connect, allocate the first worker threads
            call(b"", timeout=10)
        budget = min(max_seconds, deadline.remaining())
        done = 0
        start = time.perf_counter()
        while done < calls and time.perf_counter() - start < budget:
            call(b"", timeout=10)
            done += 1
        elapsed = time.perf_counter() - start
    return Measurement(done, elapsed)


# A load generator in a child process -------------------------------------------------------------


class Load(Protocol):
    """What a client process needs of a load: where to send it and how long it may run."""

    @property
    def address(self) -> str: ...

    @property
    def max_seconds(self) -> float: ...


R = TypeVar("R")


def serve_loads(
    conn: Connection, run_load: Callable[[Any, grpc.Channel], object], options: tuple[tuple[str, Any], ...] = ()
) -> None:
    """The client process's loop: run each load received on a channel per address, answer with its
    result (or the time-limit error's text); stop on None."""
    channels: dict[str, grpc.Channel] = {}
    try:
        while True:
            load = conn.recv()
            if load is None:
                return
            channel = channels.get(load.address)
            if channel is None:
                channel = channels[load.address] = grpc.insecure_channel(load.address, options=list(options))
            try:
                conn.send(run_load(load, channel))
            except TimeLimitExceeded as error:
                conn.send(str(error))
    finally:
        for channel in channels.values():
            channel.close()
        conn.close()


class ClientProcess(Generic[R]):
    """A child process (spawned, so no gRPC state is forked) that runs loads on request.

    ``main`` is the child's entry point, a module-level function that calls `serve_loads`.
    """

    def __init__(self, main: Callable[[Connection], None], result_type: type[R], *, call_timeout: float) -> None:
        self._result_type = result_type
        self._call_timeout = call_timeout
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(target=main, args=(child_conn,), name="bench-client", daemon=True)
        self._process.start()
        child_conn.close()

    def run(self, load: Load) -> R:
        try:
            self._conn.send(load)
            # Starting the child (its imports) takes a few seconds the first time on a busy machine.
            if not self._conn.poll(load.max_seconds + self._call_timeout + 30):
                raise TimeLimitExceeded("the client process did not answer in time")
            answer = self._conn.recv()
        except (EOFError, OSError) as error:
            raise RuntimeError(f"the client process ended (exit code {self._process.exitcode})") from error
        if isinstance(answer, str):
            raise TimeLimitExceeded(answer)
        assert isinstance(answer, self._result_type)
        return answer

    def close(self) -> None:
        """Ask the child to stop; end it (by its own pid) if it does not within a few seconds."""
        with suppress(OSError):
            self._conn.send(None)
        self._process.join(5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)
        self._conn.close()
