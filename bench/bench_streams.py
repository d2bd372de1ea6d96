"""Benchmark: ``Authorize`` while 1,000 ``WatchRevocations`` and 100 ``Health/Watch`` streams are
open, and how fast a revocation reaches every watcher.

Targets: with 1,000 open ``WatchRevocations`` streams (from at least two client processes) and 100
``Health/Watch`` streams, ``Authorize`` keeps at least 90 % of its throughput without them, and a
revocation reaches all 1,000 watchers within 1 s.

The world is ``bench_authorize.py``'s (a fresh SQLite server, one generator key, opted-in
characters with a grant each). ``--watch-processes`` client processes (default 2) each open their
share of the streams with ``grpc.aio`` on several channels (the generator's key, so every watcher
may see the revocation), wait until every stream has had its first heartbeat, and report. The
Authorize load is ``bench_authorize.py``'s (``--threads`` threads in another process). Authorize is
measured without streams (half the rounds), with them open (``--rounds``), and without them again
after they were closed (the other half); the ratio is the median with streams over the median
without.
Then a grant is revoked in the server's process and each watcher notes when the event arrived
(wall clock, one machine); the latency of the slowest watcher is the figure.

    .venv/bin/python bench/bench_streams.py                 # about 60 s
    .venv/bin/python bench/bench_streams.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

import grpc
from _common import Deadline, TimeLimitExceeded, fresh_database, line, machine, today
from bench_authorize import AUTHORIZE_METHOD, LoadSpec, build_world, charter_server, client_process
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import authorization_service_pb2_grpc as az_grpc
from charter_server import logs
from charter_server.domain.models import Principal, Role
from charter_server.services.grants import IssueInput
from grpc_health.v1 import health_pb2, health_pb2_grpc

TARGET_RATIO = 0.90
TARGET_FANOUT_SECONDS = 1.0
STREAMS_PER_CHANNEL = 50


@dataclass(frozen=True)
class WatchSpec:
    """What one stream process opens."""

    address: str
    secret: str
    watchers: int
    health_watchers: int
    since: int
    grant_id: str


def _watch_main(conn: Connection, spec: WatchSpec) -> None:
    """A client process: open the streams, report when all are live, then report arrival times."""
    asyncio.run(_watch(conn, spec))


async def _watch(conn: Connection, spec: WatchSpec) -> None:
    loop = asyncio.get_running_loop()
    total = spec.watchers + spec.health_watchers
    channels = [grpc.aio.insecure_channel(spec.address) for _ in range(max(1, -(-total // STREAMS_PER_CHANNEL)))]
    live = 0
    all_live = asyncio.Event()
    arrivals: list[float] = []
    metadata = (("authorization", f"Bearer {spec.secret}"),)

    def first() -> None:
        nonlocal live
        live += 1
        if live == total:
            all_live.set()

    async def revocations(number: int) -> None:
        stub = az_grpc.AuthorizationServiceStub(channels[number % len(channels)])
        call = stub.WatchRevocations(az.WatchRevocationsRequest(since_sequence=spec.since), metadata=metadata)
        seen = False
        async for message in call:
            if not seen:
                seen = True
                first()
            if message.WhichOneof("message") == "event" and message.event.grant_id == spec.grant_id:
                arrivals.append(time.time())
                return

    async def health(number: int) -> None:
        stub = health_pb2_grpc.HealthStub(channels[number % len(channels)])
        seen = False
        async for _ in stub.Watch(health_pb2.HealthCheckRequest()):
            if not seen:
                seen = True
                first()

    tasks = [asyncio.create_task(revocations(n), name=f"WatchRevocations {n}") for n in range(spec.watchers)]
    tasks += [
        asyncio.create_task(health(spec.watchers + n), name=f"Health/Watch {n}") for n in range(spec.health_watchers)
    ]
    try:
        failed = await _until_live(all_live, tasks, 120)
        if failed:
            conn.send(("failed", failed))
            return
        conn.send(("live", live))
        await loop.run_in_executor(None, conn.recv)  # the revocation was made
        deadline = time.monotonic() + 10
        while len(arrivals) < spec.watchers and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        conn.send(("arrivals", arrivals))
        await loop.run_in_executor(None, conn.recv)  # close
    finally:
        for task in tasks:
            task.cancel()
        for channel in channels:
            await channel.close()
        conn.close()


async def _until_live(all_live: asyncio.Event, tasks: list[asyncio.Task[None]], seconds: float) -> str:
    """Wait until every stream has had its first message; the first stream that ended before
    then (with its status) as text, or "" when all are live."""
    waiter = asyncio.create_task(all_live.wait())
    pending: set[asyncio.Future[Any]] = {waiter, *tasks}
    stop = time.monotonic() + seconds
    try:
        while not waiter.done():
            remaining = stop - time.monotonic()
            done, pending = await asyncio.wait(pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                return f"not every stream was live within {seconds:g} s"
            for task in done - {waiter}:
                error = task.exception()
                if isinstance(error, grpc.aio.AioRpcError):
                    error_text = f"{error.code().name} {error.details()!r} {error.debug_error_string()}"
                else:
                    error_text = repr(error)
                return f"{task.get_name()} ended before every stream was live: {error_text}"
        return ""
    finally:
        waiter.cancel()


class StreamProcess:
    """A spawned process holding streams open."""

    def __init__(self, spec: WatchSpec) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_watch_main, args=(child, spec), daemon=True)
        self._process.start()
        child.close()

    def receive(self, timeout: float) -> tuple[str, object]:
        if not self._conn.poll(timeout):
            raise TimeLimitExceeded("a stream process did not answer in time")
        kind, value = self._conn.recv()
        return kind, value

    def send(self, value: object) -> None:
        self._conn.send(value)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send("close")
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--watchers", type=int, default=1000, help="WatchRevocations streams (default 1000)")
    parser.add_argument("--health-watchers", type=int, default=100, help="Health/Watch streams (default 100)")
    parser.add_argument("--watch-processes", type=int, default=2, help="client processes holding them (default 2)")
    parser.add_argument("--threads", type=int, default=8, help="Authorize client threads (default 8)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds with and without streams (default 4)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per measurement (default 3)")
    parser.add_argument("--quick", action="store_true", help="a smoke run (2 rounds of 1 s)")
    parser.add_argument("--time-limit", type=float, default=300.0, help="hard limit of the whole run in seconds")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 2, 1.0
    if not 2 <= args.watch_processes <= 16:
        parser.error("--watch-processes must be 2 to 16")
    if not 1 <= args.watchers <= 20_000 or not 0 <= args.health_watchers <= 5_000:
        parser.error("--watchers must be 1 to 20000, --health-watchers 0 to 5000")
    if not 1 <= args.rounds <= 50 or not 0 < args.seconds <= 60:
        parser.error("--rounds must be 1 to 50 and --seconds more than 0 and at most 60")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = Deadline(args.time_limit)
    logs.configure(log_format="json", level="error")
    print(
        f"bench_streams: {args.watchers} WatchRevocations + {args.health_watchers} Health/Watch streams from "
        f"{args.watch_processes} processes; Authorize from {args.threads} threads; SQLite; {machine()}",
        flush=True,
    )
    client = client_process()
    holders: list[StreamProcess] = []
    without: list[float] = []
    with_streams: list[float] = []
    try:
        with fresh_database("sqlite") as url, charter_server(url, "error") as server:
            world = build_world(server, 1)
            address = f"127.0.0.1:{server.port}"
            services = server.services
            staff = Principal(services.access.create_bootstrap_admin("bench streams").api_key.id, Role.ADMIN)
            victim = services.grants.issue(
                staff,
                IssueInput(
                    world.character_ids[0], world.licensee_id, expire_time=datetime.now(UTC) + timedelta(days=1)
                ),
            )
            with server.db.uow() as uow:
                since = uow.revocations.head()

            def measure() -> float:
                deadline.check("measuring Authorize")
                spec = LoadSpec(
                    address,
                    AUTHORIZE_METHOD,
                    world.declared_request,
                    world.metadata,
                    args.threads,
                    10_000_000,
                    min(args.seconds, deadline.remaining()),
                )
                result = client.run(spec)
                if result.errors:
                    raise AssertionError(f"{result.errors} failed calls, the first {result.first_error}")
                return result.per_second

            client.run(
                LoadSpec(address, AUTHORIZE_METHOD, world.declared_request, world.metadata, args.threads, 1000, 10)
            )
            for _ in range(max(1, args.rounds // 2)):
                without.append(measure())
            share, health_share = args.watchers // args.watch_processes, args.health_watchers // args.watch_processes
            opened = time.monotonic()
            for number in range(args.watch_processes):
                extra = args.watchers % args.watch_processes if number == 0 else 0
                extra_health = args.health_watchers % args.watch_processes if number == 0 else 0
                holders.append(
                    StreamProcess(
                        WatchSpec(
                            address,
                            world.generator_secret,
                            share + extra,
                            health_share + extra_health,
                            since,
                            victim.id,
                        )
                    )
                )
            live = 0
            for holder in holders:
                kind, value = holder.receive(180)
                if kind == "failed":
                    raise AssertionError(f"a stream process: {value}")
                live += int(value)  # type: ignore[call-overload]
            line(
                "streams open", f"{live} in {time.monotonic() - opened:.1f} s; server watchers {services.feed.watchers}"
            )
            for _ in range(args.rounds):
                with_streams.append(measure())
            revoked_at = time.time()
            services.grants.revoke(staff, victim.id, "bench")
            returned_at = time.time()
            for holder in holders:
                holder.send("revoked")
            arrivals: list[float] = []
            for holder in holders:
                _, value = holder.receive(30)
                arrivals.extend(value)  # type: ignore[arg-type]
            for holder in holders:
                holder.close()
            holders.clear()
            closing = time.monotonic()
            while services.feed.watchers and time.monotonic() - closing < 30:
                time.sleep(0.1)
            for _ in range(max(1, args.rounds - args.rounds // 2)):
                without.append(measure())
    except TimeLimitExceeded as error:
        print(f"bench_streams: FAILED: {error}", file=sys.stderr)
        return 2
    finally:
        for holder in holders:
            holder.close()
        client.close()
        deadline.cancel()

    ratio = statistics.median(with_streams) / statistics.median(without)
    slowest = max(arrivals) - revoked_at if arrivals else float("inf")
    line(
        "Authorize without streams",
        f"{statistics.median(without):,.0f} req/s ({', '.join(f'{r:,.0f}' for r in without)})",
    )
    line(
        "Authorize with streams",
        f"{statistics.median(with_streams):,.0f} req/s ({', '.join(f'{r:,.0f}' for r in with_streams)})",
    )
    line("with / without", f"{ratio:.3f}  target >= {TARGET_RATIO:.2f}  {'OK' if ratio >= TARGET_RATIO else 'MISSED'}")
    line("revocation reached", f"{len(arrivals)} of {args.watchers} watchers")
    reached = slowest <= TARGET_FANOUT_SECONDS and len(arrivals) == args.watchers
    line(
        "slowest watcher after the commit",
        f"{slowest:.3f} s (RevokeGrant returned after {returned_at - revoked_at:.3f} s, its lease wait included)  "
        f"target <= {TARGET_FANOUT_SECONDS:.1f} s  {'OK' if reached else 'MISSED'}",
    )
    print(
        f"SUMMARY bench_streams date={today()} watchers={args.watchers} health_watchers={args.health_watchers} "
        f"processes={args.watch_processes} ratio={ratio:.3f} fanout_s={slowest:.3f} reached={len(arrivals)} "
        f"{machine()}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
