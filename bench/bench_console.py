"""Benchmark: the web console's pages and the usage series behind them, at the scale of issue 15.

Targets (issue 15): with 10,000 characters and 1 million usage records, the catalogue and
character pages answer within 150 ms (p95) and a 365-day usage series within 200 ms.

Per backend (``--backend``, default sqlite; PostgreSQL as in ``_common.fresh_database``), a Charter
server built in this process on ``127.0.0.1:0`` and a console (``charter_server.console``) on
another loopback port, calling it as a rights holder's key, as in production. The world:

* ``--characters`` characters (default 10,000), the generated catalogue of ``bench_import.py``
  (romanised and kana names, a quarter of them opted in), imported through ``ImportCharacters``;
* ``--records`` usage records (default 1,000,000) of those characters by ``--licensees`` licensees
  over the last 365 days, the characters drawn from a Pareto distribution (a few busy ones, a long
  tail). They are written straight into ``usage_records`` (in chunks of 20,000 with the same
  columns ``ReportUsage`` writes: COPY on PostgreSQL, one prepared INSERT on SQLite) and rolled up
  into ``usage_daily``, ``usage_daily_characters`` and ``usage_daily_licensees`` with the
  statements of migrations 0009 and 0013: generating a million receipts and reports through the
  API would take the better part of an hour on this machine, and what is measured here is reading
  them. (That ``ReportUsage`` keeps the roll-ups, and what that costs, is ``bench_usage.py``'s.)

Then, signed in through the sign-in form like a person, each page is requested ``--requests``
times one after another by an HTTP client in this process, and the p50/p95 of the console's own
time for it is printed (from its ``Server-Timing`` header: the page's calls to the gRPC server,
the database and the rendering, without the HTTP client's share): the catalogue searched for a
kana name, the catalogue's first page, a character page (names, terms history, grants), the usage
page over 365 days; and ``GetUsageSeries`` over 365 days (20 series, per character and per
licensee) through the SDK directly, timed by the Charter server's own ``charter_rpc_seconds``
histogram (from the call's arrival to its serialized answer). Beside each: the client's wall p95,
this process's CPU time per call (client, console and server together: steadier than times on a
shared machine) and the 1-minute load average after it. The baseline, measured in the same run:
the sign-in page, which calls nothing, so each page's ratio to it is what the page's own work
costs. Loops are bounded in count and time, and so is the run (``--time-limit``).

This is run by hand (3-4 minutes per backend on a 2-core machine, most of it building the
world), not in the test suite:

    .venv/bin/python bench/bench_console.py
    .venv/bin/python bench/bench_console.py --characters 1000 --records 50000    # a smoke run
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import charter
import grpc
import httpx
from _common import Deadline, TimeLimitExceeded, fresh_database, line, machine, rights_holder_key, today
from bench_authorize import charter_server
from bench_import import catalogue
from charter.v1 import catalog_service_pb2 as pb
from charter.v1 import catalog_service_pb2_grpc
from charter_server import logs
from charter_server.console.serve import ConsoleServer
from charter_server.console.web import ConsoleSettings
from charter_server.domain import ids
from charter_server.storage.database import Database
from prometheus_client import REGISTRY
from sqlalchemy import text

TARGETS_MS = {"catalogue search": 150.0, "catalogue": 150.0, "character": 150.0, "series 365 d": 200.0}
SERIES_METHOD = "GetUsageSeries"
CHUNK = 20_000


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def build_catalogue(target: str, holder_id: str, secret: str, count: int) -> list[str]:
    """Import the generated catalogue; the character ids."""
    rows = catalogue(count)
    with grpc.insecure_channel(target) as channel:
        stub = catalog_service_pb2_grpc.CatalogServiceStub(channel)
        for start in range(0, len(rows), 500):
            request = pb.ImportCharactersRequest(rights_holder_id=holder_id, rows=rows[start : start + 500])
            stub.ImportCharacters(request, metadata=(("authorization", f"Bearer {secret}"),), timeout=300)
    with charter.Client(target, api_key=secret, timeout=120) as client:
        return [c.id for c in client.list_characters(rights_holder_id=holder_id, page_size=1000)]


USAGE_COLUMNS = (
    "id",
    "licensee_id",
    "idempotency_key",
    "fingerprint",
    "receipt_id",
    "character_id",
    "rights_holder_id",
    "grant_id",
    "uses",
    "duration_ms",
    "currency",
    "revenue_minor",
    "revenue_share_bps",
    "fee_minor",
    "happen_time",
    "happen_period",
    "statement_period",
    "accept_time",
)


def usage_rows(
    holder_id: str, characters: Sequence[str], licensee_ids: Sequence[str], first: int, last: int, rng: random.Random
) -> list[tuple[object, ...]]:
    """Records ``first`` to ``last`` (exclusive) as tuples in ``USAGE_COLUMNS``' order: over the
    last 365 days, characters drawn from a Pareto distribution (a few busy, a long tail)."""
    now = datetime.now(UTC)
    rows: list[tuple[object, ...]] = []
    for number in range(first, last):
        when = now - timedelta(seconds=rng.randrange(365 * 86_400))
        month = f"{when:%Y-%m}"
        rows.append(
            (
                f"use_{number:032x}",
                licensee_ids[number % len(licensee_ids)],
                f"bench-{number}",
                "0" * 64,
                f"rcp_{number:032x}",
                characters[int(rng.paretovariate(1.2)) % len(characters)],
                holder_id,
                "grt_bench",
                1,
                rng.randrange(60_000),
                "USD",
                rng.randrange(1_000),
                1_000,
                25,
                when,
                month,
                month,
                when,
            )
        )
    return rows


def sqlite_time(value: object) -> str:
    """A UTC time as SQLAlchemy's DateTime stores it on SQLite."""
    assert isinstance(value, datetime)
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f}"


def fill_usage(url: str, holder_id: str, characters: Sequence[str], licensees: int, records: int, seed: int) -> None:
    """``records`` usage rows over the last 365 days, then the daily roll-ups of them.

    Written with the driver's fastest bulk path, the same values ``ReportUsage`` would store:
    PostgreSQL's COPY; on SQLite one prepared INSERT run over every row, times as SQLAlchemy stores
    them there (naive UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``).
    """
    rng = random.Random(seed)
    licensee_ids = [ids.new_id("licensee") for _ in range(licensees)]
    postgresql = url.startswith("postgresql")
    db = Database(url)
    try:
        for start in range(0, records, CHUNK):
            rows = usage_rows(holder_id, characters, licensee_ids, start, min(records, start + CHUNK), rng)
            with db.engine.begin() as connection:
                driver: Any = connection.connection.driver_connection
                if postgresql:
                    with driver.cursor().copy(f"COPY usage_records ({', '.join(USAGE_COLUMNS)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                else:
                    stored = [(*row[:14], sqlite_time(row[14]), *row[15:17], sqlite_time(row[17])) for row in rows]
                    marks = ", ".join("?" * len(USAGE_COLUMNS))
                    driver.executemany(
                        f"INSERT INTO usage_records ({', '.join(USAGE_COLUMNS)}) VALUES ({marks})", stored
                    )
        day = (
            "to_char(happen_time AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
            if url.startswith("postgresql")
            else "substr(happen_time, 1, 10)"
        )
        groups = f"rights_holder_id, {day}, character_id, licensee_id"
        with db.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO usage_daily (rights_holder_id, day, character_id, licensee_id, records, uses, "
                    f"duration_ms) SELECT {groups}, count(*), sum(uses), sum(duration_ms) FROM usage_records "
                    f"GROUP BY {groups}"
                )
            )
            # And the roll-ups per character and per licensee, as migration 0013 fills them.
            for table, key in (("usage_daily_characters", "character_id"), ("usage_daily_licensees", "licensee_id")):
                keys = f"rights_holder_id, day, {key}"
                connection.execute(
                    text(
                        f"INSERT INTO {table} ({keys}, records, uses, duration_ms) SELECT {keys}, sum(records), "
                        f"sum(uses), sum(duration_ms) FROM usage_daily GROUP BY {keys}"
                    )
                )
            if url.startswith("postgresql"):
                connection.execute(text("ANALYZE"))
    finally:
        db.dispose()


def rpc_server_seconds(method: str) -> float:
    """The seconds the in-process Charter server has spent serving ``method`` (every call so far):
    the sum of its ``charter_rpc_seconds`` histogram, which times each call from its arrival to
    its serialized answer (authentication, decoding, the service, encoding)."""
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == "charter_rpc_seconds":
            for sample in metric.samples:
                if sample.name.endswith("_sum") and sample.labels.get("method", "").endswith(f"/{method}"):
                    total += sample.value
    return total


@dataclass(frozen=True)
class Timing:
    """Milliseconds per call: the server's own (``server``), the caller's wall time, and the CPU
    time of this whole process (client, console and Charter server: steady under load)."""

    server: list[float]
    wall: list[float]
    cpu: list[float]


def timed(call: Callable[[], object], count: int, deadline: Deadline, *, rpc: str = "") -> Timing:
    """``count`` calls, one after another (after one untimed warm-up call), each with its server
    time: the console's own from its Server-Timing header for pages, or for an ``rpc`` called
    directly the Charter server's own (``rpc_server_seconds``); and the caller's wall time."""
    call()
    server, wall, cpu = [], [], []
    for _ in range(count):
        deadline.check("a measurement")
        before = rpc_server_seconds(rpc) if rpc else 0.0
        started, cpu_started = time.perf_counter(), time.process_time()
        answer = call()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
        if isinstance(answer, httpx.Response):
            server.append(float(answer.headers["server-timing"].split("dur=", 1)[1]))
        else:
            server.append((rpc_server_seconds(rpc) - before) * 1000)
    return Timing(server, wall, cpu)


def measure(backend: str, args: argparse.Namespace, deadline: Deadline) -> dict[str, tuple[Timing, float]]:
    with fresh_database(backend) as url, charter_server(url, args.log_level) as server:
        target = f"127.0.0.1:{server.port}"
        key = rights_holder_key(server)
        started = time.perf_counter()
        characters = build_catalogue(target, key.rights_holder_id, key.secret, args.characters)
        line(
            f"{backend}: catalogue", f"{len(characters):,} characters imported in {time.perf_counter() - started:.0f} s"
        )
        started = time.perf_counter()
        fill_usage(url, key.rights_holder_id, characters, args.licensees, args.records, args.seed)
        line(
            f"{backend}: usage",
            f"{args.records:,} records and their roll-up written in {time.perf_counter() - started:.0f} s",
        )
        deadline.check("building the world")
        web = ConsoleServer(ConsoleSettings(server=target, call_timeout=60), "127.0.0.1:0")
        web.start()
        try:
            end = datetime.now(UTC).date()
            start = end - timedelta(days=364)
            with (
                httpx.Client(base_url=web.url, timeout=60) as http,
                charter.Client(target, api_key=key.secret, timeout=60) as client,
            ):
                form = http.get("/sign-in").text
                token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
                http.post("/sign-in", data={"csrf_token": token, "api_key": key.secret})
                search = catalogue(3)[2].character.aliases[2].value  # a kana short name

                def page(path: str, **params: str) -> Callable[[], object]:
                    def get() -> object:
                        response = http.get(path, params=params)
                        if response.status_code != 200:
                            raise AssertionError(f"{path}: HTTP {response.status_code}")
                        return response

                    return get

                def series() -> object:
                    return client.get_usage_series(key.rights_holder_id, start_date=start, end_date=end)

                def by_licensee() -> object:
                    return client.get_usage_series(
                        key.rights_holder_id, start_date=start, end_date=end, by_licensee=True
                    )

                busiest = series().series[0].character_id  # type: ignore[attr-defined]
                measured: dict[str, Callable[[], Timing]] = {
                    "baseline (sign-in page)": lambda: timed(page("/sign-in"), args.requests, deadline),
                    "catalogue search": lambda: timed(page("/catalogue", q=search), args.requests, deadline),
                    "catalogue": lambda: timed(page("/catalogue"), args.requests, deadline),
                    "character": lambda: timed(page(f"/characters/{busiest}"), args.requests, deadline),
                    "series 365 d": lambda: timed(series, args.requests, deadline, rpc=SERIES_METHOD),
                    "series 365 d by licensee": lambda: timed(by_licensee, args.requests, deadline, rpc=SERIES_METHOD),
                    "usage page 365 d": lambda: timed(
                        page("/usage", start=start.isoformat(), end=end.isoformat()), args.requests, deadline
                    ),
                }
                # Each with the load average (1 minute) at its end: the machine may be shared.
                results = {name: (run(), os.getloadavg()[0]) for name, run in measured.items()}
        finally:
            web.stop()
    return results


def report(backend: str, results: dict[str, tuple[Timing, float]]) -> list[str]:
    baseline = statistics.median(results["baseline (sign-in page)"][0].server)
    print(
        f"\n{backend:<10} {'page or call':<26} {'p50 ms':>8} {'p95 ms':>8} {'x baseline':>10} "
        f"{'wall p95':>9} {'CPU p50':>8} {'load':>5}  target (server time p95)"
    )
    summary = []
    for name, (timing, load) in results.items():
        p50, p95 = statistics.median(timing.server), percentile(timing.server, 0.95)
        target = TARGETS_MS.get(name)
        verdict = "" if target is None else f"<= {target:.0f} ms: {'met' if p95 <= target else 'MISSED'}"
        print(
            f"{backend:<10} {name:<26} {p50:>8.1f} {p95:>8.1f} {p50 / baseline:>10.1f} "
            f"{percentile(timing.wall, 0.95):>9.1f} {statistics.median(timing.cpu):>8.1f} {load:>5.1f}  {verdict}",
            flush=True,
        )
        key = name.split(" (")[0].replace(" ", "_")
        summary += [
            f"{backend}_{key}_p95_ms={p95:.1f}",
            f"{backend}_{key}_cpu_p50_ms={statistics.median(timing.cpu):.1f}",
            f"{backend}_{key}_load={load:.1f}",
        ]
    print(
        "(p50, p95: server time: the console's own for pages, from its Server-Timing header; the Charter "
        "server's own for GetUsageSeries, from its charter_rpc_seconds histogram; x baseline: p50 over the "
        "sign-in page's p50; wall p95: the HTTP or SDK client's; CPU p50: this process's CPU time per call, "
        "client, console and Charter server together; load: the 1-minute load average after it)"
    )
    return summary


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--characters", type=int, default=10_000, help="characters imported (default 10000)")
    parser.add_argument("--records", type=int, default=1_000_000, help="usage records (default 1000000)")
    parser.add_argument("--licensees", type=int, default=20, help="licensees using them (default 20)")
    parser.add_argument("--requests", type=int, default=40, help="timed requests per page (default 40)")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    parser.add_argument("--time-limit", type=float, default=1800.0, help="hard limit of the run in seconds")
    args = parser.parse_args(argv)
    if not 10 <= args.characters <= 100_000 or not 1 <= args.records <= 10_000_000:
        parser.error("need 10 <= --characters <= 100000 and 1 <= --records <= 10000000")
    if not 1 <= args.licensees <= 1_000 or not 5 <= args.requests <= 1_000:
        parser.error("need 1 <= --licensees <= 1000 and 5 <= --requests <= 1000")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = Deadline(args.time_limit)
    logs.configure(log_format="json", level=args.log_level)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(
        f"bench_console: {args.characters:,} characters, {args.records:,} usage records by {args.licensees} "
        f"licensees over 365 days; {args.requests} requests per page; {', '.join(backends)}; {machine()}",
        flush=True,
    )
    summary: list[str] = []
    try:
        for backend in backends:
            summary += report(backend, measure(backend, args, deadline))
    except (TimeLimitExceeded, AssertionError) as error:
        print(f"bench_console: FAILED: {error}", file=sys.stderr)
        return 1
    finally:
        deadline.cancel()
    print(f"SUMMARY bench_console date={today()} " + " ".join(summary) + f" {machine()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
