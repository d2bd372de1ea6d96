"""Benchmark: server CPU per ``Authorize`` with ``serve --processes 1`` and ``--processes 2``.

Target: the server's CPU time per ``Authorize`` (all its processes together) stays within 10 %
between one process and two: the processes share nothing but the database, which this path does
not touch, so a second process costs no extra work per call. The throughput of each is printed
too (on a 2-core machine the client shares the cores, so two processes cannot double it).

The world is ``bench_authorize.py``'s, made in a fresh SQLite database before any server starts
and copied (SQLite's backup API) into a second one. Both configurations run at once, each a real
``charter-server serve`` process tree on its own database and free loopback port, and are measured
by turns, the order swapped every round, so a machine that slows down during the run weighs on
both alike (measured one after the other, the difference moved from -13 % to +33 % between three
runs). The load comes from a client process whose ``--threads`` threads each have a connection of
their own (``SO_REUSEPORT`` spreads connections, not calls, over the processes): first as fast as
they can (the target's figure), then at ``--paced-share`` (half) of the lower throughput on a fixed
schedule, printed for information: below saturation each process of two wakes for half the calls,
and a wake costs the same for one call as for several. CPU time is read from ``/proc`` for the
server's processes (the supervisor, its children and the log process) before and after each
measurement, so Linux only. The difference is the median of the rounds' ratios.

    .venv/bin/python bench/bench_processes.py
    .venv/bin/python bench/bench_processes.py --quick
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from types import SimpleNamespace

import grpc
from _common import ClientProcess, Deadline, TimeLimitExceeded, fresh_database, line, machine, serve_loads, today
from bench_authorize import AUTHORIZE_METHOD, CALL_TIMEOUT, World, build_world
from charter_server import logs
from charter_server.app import build_services, open_database
from charter_server.config import Settings
from charter_server.domain.clock import SystemClock
from grpc_health.v1 import health_pb2, health_pb2_grpc

TARGET_CPU_DIFFERENCE = 0.10
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Spread:
    """``threads`` threads, each on a connection of its own, calling for ``max_seconds``: as fast
    as they can when ``rate`` is 0, else ``rate`` calls per second in all, on a fixed schedule."""

    address: str
    request: bytes
    metadata: tuple[tuple[str, str], ...]
    threads: int
    max_seconds: float
    rate: float = 0.0


@dataclass(frozen=True)
class Done:
    calls: int
    errors: int
    seconds: float
    first_error: str


def run_spread(spec: Spread, _shared: grpc.Channel) -> Done:
    counts = [0] * spec.threads
    errors: list[str] = []
    start = threading.Barrier(spec.threads + 1)
    stop_at = [0.0]

    def worker(number: int) -> None:
        # A local subchannel pool: a connection of its own, not one shared by every channel.
        options = [("grpc.use_local_subchannel_pool", 1)]
        with grpc.insecure_channel(spec.address, options=options) as channel:
            call = channel.unary_unary(AUTHORIZE_METHOD)
            call(spec.request, metadata=spec.metadata, timeout=CALL_TIMEOUT)  # connect
            start.wait()
            interval = spec.threads / spec.rate if spec.rate else 0.0
            due = time.perf_counter() + interval * number / spec.threads
            while time.perf_counter() < stop_at[0]:
                if interval:
                    # A schedule, not a pause after each call: a late call does not slow the rate.
                    time.sleep(max(0.0, due - time.perf_counter()))
                    due += interval
                try:
                    call(spec.request, metadata=spec.metadata, timeout=CALL_TIMEOUT)
                except grpc.RpcError as error:
                    errors.append(f"{error.code()}: {error.details()}")
                    return
                counts[number] += 1

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(spec.threads)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.perf_counter() + 3600
    start.wait()
    began = time.perf_counter()
    stop_at[0] = began + spec.max_seconds
    for thread in threads:
        thread.join(spec.max_seconds + CALL_TIMEOUT + 5)
    return Done(sum(counts), len(errors), time.perf_counter() - began, errors[0] if errors else "")


def _client_main(conn: Connection) -> None:
    serve_loads(conn, run_spread)


def _cpu_seconds(root: int) -> float:
    """User + system CPU seconds of ``root`` and all its descendants (the servers of
    ``--processes`` and each server's log process), from /proc."""
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        used[pid] = (int(fields[11]) + int(fields[12])) / _TICKS
    total = 0.0
    for pid, seconds in used.items():
        ancestor = pid
        while ancestor not in (root, 0, 1) and ancestor in parents:
            ancestor = parents[ancestor]
        if ancestor == root:
            total += seconds
    return total


def _wait_idle(root: int, *, step: float = 0.5, idle: float = 0.05, limit: float = 90.0) -> None:
    """Wait until the tree under ``root`` uses less than ``idle`` of a core over ``step`` seconds:
    each server process loads its Japanese and Chinese analysers in the background once it serves
    (several seconds of CPU), which would otherwise be charged to the first measurements."""
    deadline = time.monotonic() + limit
    used = _cpu_seconds(root)
    while time.monotonic() < deadline:
        time.sleep(step)
        now = _cpu_seconds(root)
        if now - used < idle * step:
            return
        used = now
    raise TimeLimitExceeded(f"the server tree was still busy {limit:g} s after it started serving")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def server_tree(url: str, processes: int) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARTER_")}
    command = [
        sys.executable, "-m", "charter_server", "--database-url", url, "--listen", f"127.0.0.1:{port}",
        "--log-level", "error", "--log-format", "json", "serve", "--processes", str(processes),
    ]  # fmt: skip
    tree = subprocess.Popen(command, env=env)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if tree.poll() is not None or time.monotonic() > deadline:
                raise TimeLimitExceeded(f"--processes {processes} did not serve")
            with grpc.insecure_channel(address) as channel:
                try:
                    health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
                    break
                except grpc.RpcError:
                    time.sleep(0.2)
        time.sleep(1.0 if processes > 1 else 0.0)  # every child is up, not just the first
        _wait_idle(tree.pid)
        yield tree, address
    finally:
        tree.terminate()
        tree.wait(30)


def prepare(url: str) -> World:
    settings = Settings(database_url=url, migrate=True, log_format="json", log_level="error")
    db = open_database(settings)
    try:
        services = build_services(settings, db, SystemClock())
        services.keys.ensure_active_key()
        return build_world(SimpleNamespace(services=services), 1)  # type: ignore[arg-type]
    finally:
        db.dispose()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--threads", type=int, default=8, help="client threads, a connection each (default 8)")
    parser.add_argument("--rounds", type=int, default=4, help="measurements per configuration (default 4)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per measurement (default 3)")
    parser.add_argument(
        "--paced-share",
        type=float,
        default=0.5,
        help="the paced load as a share of the lower saturated throughput (default 0.5)",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run (2 rounds of 1 s)")
    parser.add_argument("--time-limit", type=float, default=240.0, help="hard limit of the whole run in seconds")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 2, 1.0
    if not 2 <= args.threads <= 64 or not 1 <= args.rounds <= 50 or not 0 < args.seconds <= 60:
        parser.error("--threads 2-64, --rounds 1-50, --seconds (0, 60]")
    if not 0 < args.paced_share <= 0.9:
        parser.error("--paced-share (0, 0.9]")
    return args


@dataclass
class Measured:
    """The rounds of one configuration at one load: requests per second and server CPU per call."""

    rates: list[float]
    cpu_per_call: list[float]

    def line(self) -> str:
        return (
            f"{statistics.median(self.rates):,.0f} req/s, server CPU {statistics.median(self.cpu_per_call):.0f} µs/req"
            f" (rounds {min(self.cpu_per_call):.0f}-{max(self.cpu_per_call):.0f})"
        )


def copy_database(url: str, folder: Path) -> str:
    """A second SQLite database with the same world (keys, API keys, grants), through SQLite's own
    backup API: each tree gets a database, and so a sequencer lease, of its own."""
    import sqlite3
    from contextlib import closing

    target_path = folder / "charter-2.db"
    source_path = url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(source_path)) as source, closing(sqlite3.connect(target_path)) as target:
        source.backup(target)
    return f"sqlite:///{target_path}"


def measure_interleaved(
    client: ClientProcess[Done],
    trees: dict[int, tuple[subprocess.Popen[bytes], str]],
    world: World,
    args: argparse.Namespace,
    deadline: Deadline,
    rate: float,
) -> dict[int, Measured]:
    """``args.rounds`` rounds of each tree by turns, the order swapped every round, so a machine
    that slows down or speeds up during the run weighs on both configurations alike."""
    results = {n: Measured([], []) for n in trees}
    for round_number in range(args.rounds):
        order = sorted(trees) if round_number % 2 == 0 else sorted(trees, reverse=True)
        for processes in order:
            deadline.check(f"--processes {processes}")
            tree, address = trees[processes]
            before = _cpu_seconds(tree.pid)
            done = client.run(Spread(address, world.declared_request, world.metadata, args.threads, args.seconds, rate))
            cpu = _cpu_seconds(tree.pid) - before
            if done.errors:
                raise AssertionError(f"{done.errors} failed calls, the first {done.first_error}")
            results[processes].rates.append(done.calls / done.seconds)
            results[processes].cpu_per_call.append(cpu / max(1, done.calls) * 1e6)
    return results


def difference(results: dict[int, Measured]) -> float:
    """The median over rounds of (CPU per call with two processes ÷ with one) - 1: each round's
    pair was measured seconds apart."""
    pairs = zip(results[2].cpu_per_call, results[1].cpu_per_call, strict=True)
    return statistics.median(two / one for two, one in pairs) - 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = Deadline(args.time_limit)
    logs.configure(log_format="json", level="error")
    print(f"bench_processes: {args.threads} client threads and connections; SQLite; {machine()}", flush=True)
    client: ClientProcess[Done] = ClientProcess(_client_main, Done, call_timeout=CALL_TIMEOUT)
    try:
        with fresh_database("sqlite") as url:
            world = prepare(url)
            second_url = copy_database(url, Path(url.removeprefix("sqlite:///")).parent)
            with server_tree(url, 1) as one, server_tree(second_url, 2) as two:
                trees = {1: one, 2: two}
                for _, address in trees.values():
                    client.run(Spread(address, world.declared_request, world.metadata, args.threads, 1.0))  # warm
                saturated = measure_interleaved(client, trees, world, args, deadline, 0.0)
                rate = args.paced_share * min(statistics.median(m.rates) for m in saturated.values())
                paced = measure_interleaved(client, trees, world, args, deadline, rate)
    except TimeLimitExceeded as error:
        print(f"bench_processes: FAILED: {error}", file=sys.stderr)
        return 2
    finally:
        client.close()
        deadline.cancel()

    for n in (1, 2):
        line(f"--processes {n}, saturated", saturated[n].line())
    for n in (1, 2):
        line(f"--processes {n}, {rate:,.0f} req/s", paced[n].line())
    at_saturation, at_rate = difference(saturated), difference(paced)
    verdict = "OK" if abs(at_saturation) <= TARGET_CPU_DIFFERENCE else "MISSED"
    line(
        "CPU per call 2 vs 1, saturated",
        f"{at_saturation:+.1%}  target within ±{TARGET_CPU_DIFFERENCE:.0%}  {verdict}",
    )
    line(f"CPU per call 2 vs 1, {rate:,.0f} req/s", f"{at_rate:+.1%}  (each process wakes for half the calls)")
    print(
        f"SUMMARY bench_processes date={today()} p1_per_s={statistics.median(saturated[1].rates):.0f} "
        f"p2_per_s={statistics.median(saturated[2].rates):.0f} "
        f"p1_cpu_us={statistics.median(saturated[1].cpu_per_call):.0f} "
        f"p2_cpu_us={statistics.median(saturated[2].cpu_per_call):.0f} difference={at_saturation:+.3f} "
        f"paced_per_s={rate:.0f} paced_difference={at_rate:+.3f} {machine()}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
