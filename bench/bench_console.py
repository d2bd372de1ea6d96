"""Benchmark: the web console's pages and the usage series behind them, at the scale of issue 15.

Targets (issue 15): with 10,000 characters and 1 million usage records, the catalogue and
character pages answer within 150 ms (p95) and a 365-day usage series within 200 ms.

Per backend (``--backend``, default sqlite; PostgreSQL as in ``_common.fresh_database``), a Charter
server built in this process on ``127.0.0.1:0`` and a console (``charter_server.console``) on
another loopback port, calling it as a rights holder's key, as in production. The world:

* ``--characters`` characters (default 10,000), the generated catalogue of ``bench_import.py``
  (romanised and kana names, a quarter of them opted in), imported through ``ImportCharacters``;
* ``--records`` usage records (default 1,000,000) of those characters by ``--licensees`` licensees
  over the last 365 days. They are written straight into ``usage_records`` (in chunks, with the
  same columns ``ReportUsage`` writes) and rolled up into ``usage_daily`` with the same statement
  the migration uses: generating a million receipts and reports through the API would take the
  better part of an hour on this machine, and what is measured here is reading them. (That
  ``ReportUsage`` keeps the roll-up, and what that costs, is ``bench_usage.py``'s.)

Then, signed in through the sign-in form like a person, each page is requested ``--requests``
times one after another by an HTTP client in this process, and the p50/p95 of the console's own
time for it is printed (from its ``Server-Timing`` header: the page's calls to the gRPC server,
the database and the rendering, without the HTTP client's share): the catalogue searched for a
kana name, the catalogue's first page, a character page (names, terms history, grants), the usage
page over 365 days; and ``GetUsageSeries`` over 365 days through the SDK directly (the client's
wall time). The baseline, measured in the same run: the sign-in page, which calls
nothing, so each page's ratio to it is what the page's own work costs. Loops are bounded in count
and time, and so is the run (``--time-limit``).

This is run by hand (about 3-5 minutes on SQLite on a 2-core machine, most of it building the
world), not in the test suite:

    .venv/bin/python bench/bench_console.py
    .venv/bin/python bench/bench_console.py --characters 1000 --records 50000    # a smoke run
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

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
from charter_server.storage.tables import UsageRecordRow
from sqlalchemy import insert, text

TARGETS_MS = {"catalogue search": 150.0, "catalogue": 150.0, "character": 150.0, "series 365 d": 200.0}
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


def fill_usage(url: str, holder_id: str, characters: Sequence[str], licensees: int, records: int, seed: int) -> None:
    """``records`` usage rows over the last 365 days, then the daily roll-up of them."""
    rng = random.Random(seed)
    licensee_ids = [ids.new_id("licensee") for _ in range(licensees)]
    now = datetime.now(UTC)
    db = Database(url)
    try:
        for start in range(0, records, CHUNK):
            rows = []
            for number in range(start, min(records, start + CHUNK)):
                when = now - timedelta(seconds=rng.randrange(365 * 86_400))
                rows.append(
                    {
                        "id": f"use_{number:032x}",
                        "licensee_id": licensee_ids[number % licensees],
                        "idempotency_key": f"bench-{number}",
                        "fingerprint": "0" * 64,
                        "receipt_id": f"rcp_{number:032x}",
                        "character_id": characters[int(rng.paretovariate(1.2)) % len(characters)],
                        "rights_holder_id": holder_id,
                        "grant_id": "grt_bench",
                        "uses": 1,
                        "duration_ms": rng.randrange(60_000),
                        "currency": "USD",
                        "revenue_minor": rng.randrange(1_000),
                        "revenue_share_bps": 1_000,
                        "fee_minor": 25,
                        "happen_time": when,
                        "happen_period": f"{when:%Y-%m}",
                        "statement_period": f"{when:%Y-%m}",
                        "accept_time": when,
                    }
                )
            with db.engine.begin() as connection:
                connection.execute(insert(UsageRecordRow.__table__), rows)
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
            if url.startswith("postgresql"):
                connection.execute(text("ANALYZE"))
    finally:
        db.dispose()


def timed(call: Callable[[], object], count: int, deadline: Deadline) -> list[float]:
    """Milliseconds of ``count`` calls, one after another (after one untimed warm-up call): the
    console's own time from its Server-Timing header for pages, the client's wall time otherwise."""
    call()
    times = []
    for _ in range(count):
        deadline.check("a measurement")
        started = time.perf_counter()
        answer = call()
        elapsed = (time.perf_counter() - started) * 1000
        if isinstance(answer, httpx.Response):
            elapsed = float(answer.headers["server-timing"].split("dur=", 1)[1])
        times.append(elapsed)
    return times


def measure(backend: str, args: argparse.Namespace, deadline: Deadline) -> dict[str, list[float]]:
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

                busiest = series().series[0].character_id  # type: ignore[attr-defined]
                results = {
                    "baseline (sign-in page)": timed(page("/sign-in"), args.requests, deadline),
                    "catalogue search": timed(page("/catalogue", q=search), args.requests, deadline),
                    "catalogue": timed(page("/catalogue"), args.requests, deadline),
                    "character": timed(page(f"/characters/{busiest}"), args.requests, deadline),
                    "series 365 d": timed(series, args.requests, deadline),
                    "usage page 365 d": timed(
                        page("/usage", start=start.isoformat(), end=end.isoformat()), args.requests, deadline
                    ),
                }
        finally:
            web.stop()
    return results


def report(backend: str, results: dict[str, list[float]]) -> list[str]:
    baseline = statistics.median(results["baseline (sign-in page)"])
    print(f"\n{backend:<10} {'page':<26} {'p50 ms':>8} {'p95 ms':>8} {'x baseline':>10}  target")
    summary = []
    for name, times in results.items():
        p50, p95 = statistics.median(times), percentile(times, 0.95)
        target = TARGETS_MS.get(name)
        verdict = "" if target is None else f"p95 <= {target:.0f} ms: {'met' if p95 <= target else 'MISSED'}"
        print(f"{backend:<10} {name:<26} {p50:>8.1f} {p95:>8.1f} {p50 / baseline:>10.1f}  {verdict}", flush=True)
        key = name.split(" (")[0].replace(" ", "_")
        summary.append(f"{backend}_{key}_p95_ms={p95:.1f}")
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
