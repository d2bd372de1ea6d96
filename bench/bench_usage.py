"""Benchmark: durable ``UsageService/ReportUsage`` throughput over gRPC, next to an empty handler, same run.

Targets (issue 6): with batches of 100 records, at least 2,000 records/s on SQLite and 1,000
records/s on PostgreSQL, every record really inserted and acknowledged only after its commit.

Per backend (``--backend``; PostgreSQL at ``CHARTER_BENCH_POSTGRES_URL``, default
``postgresql://postgres@127.0.0.1:5432/test``, in a fresh database created and dropped by the
run, skipped with the reason when unreachable; SQLite in a temporary file with the server's own
settings, WAL and ``synchronous=FULL``), a Charter server built in this process by
``charter_server.app.build_server`` on ``127.0.0.1:0`` and, through the real services: ``--holders``
rights holders, ``--characters`` opted-in characters spread over them (terms with a revenue share
and a per-use fee, no quota), a licensee with a generator key and a grant per character.

Usage records need receipts, and a receipt covers one use of each character it allowed. So before
each timed measurement, and outside it, the run calls ``AuthorizationService.authorize`` in
process once per ``--per-receipt`` records (each call declares that many characters, a window
sliding over the catalogue) and builds the ``ReportUsageRequest`` bytes: ``--batch-size``
records per request (default 100: ten receipts of ten characters), each record its own receipt
and character, with a fresh idempotency key, one use, a duration and a revenue in USD.

The load runs in a child process (client and server each have an interpreter, as in production):
``--threads`` gives the concurrency levels (default 1 and 4 client threads over one channel),
synchronous unary calls of pre-serialized requests; every response is parsed and every record
must come back accepted and not a duplicate. A call answered UNAVAILABLE (on SQLite: the busy
timeout ran out waiting for the write lock; nothing was recorded) is sent again, as a client
would, and counted in the ``busy`` column; any other failure ends the run. A measurement ends
after ``--seconds`` or when its ``--max-batches`` batches are sent; afterwards the rows of
``usage_records`` are counted, and must be exactly the records acknowledged so far.

The baselines, with the same client threads: ``empty``, an empty unary handler (a
``grpc.server`` built like Charter's: thread pool, concurrency limit, options) called with an
empty request, measured before and after every usage measurement; and ``empty (same bytes)``,
the same handler sent the same request bytes as the usage calls (what moving a batch costs by
itself). Printed per backend and concurrency: records/s and batches/s (median of ``--rounds``),
client-side p50 and p99 per batch, the server process's CPU time per record, the busy retries,
the baselines' calls/s, the cost of one record in empty round trips (empty calls/s ÷ records/s)
and the target's verdict; then a ``SUMMARY`` line.

The daily roll-ups that usage series read (issue 15: per character and licensee, per character,
per licensee) are kept by ``ReportUsage`` in the same transaction. To hold them to "within 10 % of
the throughput without them", every round also measures the same load with the roll-ups switched
off in the server (``UsageRepository.roll_up`` replaced by a no-op for that measurement only: the
code as it was before them) and prints the ratio of the medians, ``roll-up``, and the ratio of the
Charter server's CPU time per record with them to without them, ``CPU`` (steadier on a shared
machine, but without PostgreSQL's own CPU). Loops are bounded in count and time, and so
is the run (``--time-limit``). ``profile_usage.py`` shows where the server's time goes.

    .venv/bin/python bench/bench_usage.py                          # both backends, about 90 s
    .venv/bin/python bench/bench_usage.py --backend sqlite --threads 1,2,4
    .venv/bin/python bench/bench_usage.py --quick                  # a smoke run
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection

import grpc
from _common import (
    POSTGRES_ADMIN_URL,
    ClientProcess,
    Deadline,
    TimeLimitExceeded,
    fresh_database,
    line,
    machine,
    serve_loads,
    today,
)
from bench_authorize import (
    EMPTY_METHOD,
    EMPTY_SERVICE,
    charter_server,
    grpc_server_like_charter,
    percentile,
    server_cpu_seconds,
)
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import decision_pb2, terms_pb2, usage_pb2
from charter.v1 import usage_service_pb2 as us
from charter_server import logs
from charter_server.api.authorization import authorize_command
from charter_server.app import CharterServer
from charter_server.domain.models import Principal, Role, UsageEntry
from charter_server.services.access import ApiKeyInput
from charter_server.services.catalog import LicenseeInput, RightsHolderInput
from charter_server.services.characters import CharacterInput
from charter_server.services.grants import IssueInput
from charter_server.storage.database import Database
from charter_server.storage.repositories import UsageRepository
from google.protobuf import duration_pb2, timestamp_pb2
from sqlalchemy import text

TARGETS = {"sqlite": 2_000.0, "postgresql": 1_000.0}
"""The issue's targets, records per second with batches of 100."""
REPORT_METHOD = "/charter.v1.UsageService/ReportUsage"
CALL_TIMEOUT = 30.0
BUSY_RETRIES = 20
"""How often one batch is sent again after UNAVAILABLE (SQLite's busy timeout ran out)."""
ACCEPTED = usage_pb2.USAGE_STATUS_ACCEPTED
REVENUE_SHARE_BPS = 1_000
FEE = terms_pb2.Money(currency_code="USD", minor_units=5)


# The client process ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """One bounded load: thread ``n`` sends ``requests[n]`` in order until they or the time run out."""

    address: str
    method: str
    requests: list[list[bytes]]
    metadata: tuple[tuple[str, str], ...]
    max_seconds: float
    usage: bool  # parse every response as a ReportUsageResponse and count the records accepted


@dataclass
class LoadResult:
    """``calls`` answered calls carrying ``records`` accepted records, in ``seconds`` of wall time."""

    calls: int
    records: int
    seconds: float
    client_cpu: float
    busy: int  # calls answered UNAVAILABLE (nothing recorded) and sent again
    latencies: array[float] = field(default_factory=lambda: array("d"))
    problem: str = ""

    @property
    def calls_per_second(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else 0.0

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def run_load(load: Load, channel: grpc.Channel) -> LoadResult:
    """Run ``load``; the first failed call or refused record stops its thread and is reported."""
    call = channel.unary_unary(load.method)
    threads = len(load.requests)
    gate = threading.Barrier(threads + 1)
    samples = [array("d") for _ in range(threads)]
    accepted = [0] * threads
    busy = [0] * threads
    problems: list[str] = []
    stop_at = [0.0]

    def worker(number: int) -> None:
        mine, clock, metadata = samples[number], time.perf_counter, load.metadata
        gate.wait()
        end = stop_at[0]
        for request in load.requests[number]:
            began = clock()
            if began >= end:
                break
            answer = None
            for attempt in range(BUSY_RETRIES + 1):
                try:
                    answer = call(request, metadata=metadata, timeout=CALL_TIMEOUT)
                    break
                except grpc.RpcError as error:
                    if error.code() != grpc.StatusCode.UNAVAILABLE or attempt == BUSY_RETRIES:
                        problems.append(f"{error.code()}: {error.details()}")
                        break
                    # Nothing of the batch was recorded ("the database is busy; retry"): send it
                    # again, as a client would, while the measurement lasts.
                    busy[number] += 1
                    if clock() >= end:
                        break
                    time.sleep(0.01)
            if answer is None:
                break
            mine.append(clock() - began)
            if not load.usage:
                continue
            results = us.ReportUsageResponse.FromString(answer).results
            fresh = sum(1 for r in results if r.status == ACCEPTED and not r.duplicate)
            accepted[number] += fresh
            if fresh != len(results):
                refused = next(r for r in results if r.status != ACCEPTED or r.duplicate)
                problems.append(f"record not freshly accepted: {refused}")
                break

    workers = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(threads)]
    for worker_thread in workers:
        worker_thread.start()
    cpu_before = time.process_time()
    started = time.perf_counter()
    stop_at[0] = started + load.max_seconds
    gate.wait()
    for worker_thread in workers:
        worker_thread.join(load.max_seconds + CALL_TIMEOUT + 5)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    if any(worker_thread.is_alive() for worker_thread in workers):
        raise TimeLimitExceeded("a client thread outlived its load's time limit")
    latencies = array("d")
    for part in samples:
        latencies.extend(part)
    records = sum(accepted) if load.usage else len(latencies)
    return LoadResult(len(latencies), records, elapsed, cpu, sum(busy), latencies, problems[0] if problems else "")


def _client_main(conn: Connection) -> None:
    """The client process: run each ``Load`` received and answer with its ``LoadResult``; stop on None."""
    serve_loads(conn, run_load, (("grpc.max_send_message_length", 16 * 1024 * 1024),))


# The world and the records ----------------------------------------------------------------------


@dataclass
class World:
    """The generator key, its licensee and the characters; hands out fresh records."""

    server: CharterServer
    generator_secret: str
    principal: Principal
    character_ids: tuple[str, ...]
    rng: random.Random
    next_key: int = 0
    next_window: int = 0

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.generator_secret}"),)

    def batches(self, count: int, batch_size: int, per_receipt: int) -> list[bytes]:
        """``count`` serialized ReportUsageRequests of ``batch_size`` records never reported before.

        One in-process Authorize per ``per_receipt`` records, declaring that many characters; the
        records of one receipt go into one batch, as a backend reports one rendering.
        """
        authorize = self.server.services.authorization.authorize
        context = decision_pb2.UseContext(
            use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION, content_rating=terms_pb2.CONTENT_RATING_TEEN
        )
        records: list[usage_pb2.UsageRecord] = []
        happened = timestamp_pb2.Timestamp()
        happened.FromDatetime(datetime.now(UTC))
        while len(records) < count * batch_size:
            start = self.next_window % len(self.character_ids)
            self.next_window += 1
            window = [self.character_ids[(start + i) % len(self.character_ids)] for i in range(per_receipt)]
            request = az.AuthorizeRequest(character_ids=window, context=context)
            decided = authorize(self.principal, authorize_command(request))
            if not decided.decision.allowed:
                raise AssertionError(f"Authorize did not allow the window: {decided.decision}")
            for character_id in window:
                self.next_key += 1
                records.append(
                    usage_pb2.UsageRecord(
                        idempotency_key=f"bench.{self.next_key:08d}",
                        receipt=decided.receipt,
                        character_id=character_id,
                        uses=1,
                        duration=duration_pb2.Duration(seconds=self.rng.randrange(1, 60)),
                        attributed_revenue=terms_pb2.Money(currency_code="USD", minor_units=self.rng.randrange(10**5)),
                        happen_time=happened,
                    )
                )
        return [
            us.ReportUsageRequest(records=records[i : i + batch_size]).SerializeToString()
            for i in range(0, count * batch_size, batch_size)
        ]


def build_world(server: CharterServer, *, holders: int, characters: int, seed: int) -> World:
    """Rights holders, characters with terms (revenue share and a per-use fee, no quota), a licensee
    with a generator key and a grant per character, all through the real services."""
    services = server.services
    admin = services.access.create_bootstrap_admin("bench admin")
    staff = Principal(admin.api_key.id, Role.ADMIN)
    holder_ids = [
        services.catalog.create_rights_holder(
            staff, RightsHolderInput(display_name=f"Bench Studio {n}", contact_email=f"rights{n}@bench.example")
        ).id
        for n in range(holders)
    ]
    licensee = services.catalog.create_licensee(
        staff, LicenseeInput(display_name="Bench App", contact_email="ops@bench.example", platform="bench.example")
    )
    generator = services.access.create_api_key(
        staff, ApiKeyInput("bench generator", Role.GENERATOR, licensee_id=licensee.id)
    )
    terms = terms_pb2.Terms(
        permitted_use_types=[terms_pb2.USE_TYPE_IMAGE_GENERATION],
        max_content_rating=terms_pb2.CONTENT_RATING_TEEN,
        commercial_use_allowed=True,
        revenue_share_bps=REVENUE_SHARE_BPS,
        per_use_fee=FEE,
    )
    expire = datetime.now(UTC) + timedelta(days=30)
    ids = []
    for number in range(characters):
        created = services.characters.create_character(
            staff,
            CharacterInput(rights_holder_id=holder_ids[number % holders], canonical_name=f"Metered Bench {number}"),
        )
        services.characters.opt_in(staff, created.id, terms)
        services.grants.issue(staff, IssueInput(created.id, licensee.id, expire_time=expire))
        ids.append(created.id)
    principal = Principal(generator.api_key.id, Role.GENERATOR, licensee_id=licensee.id)
    return World(server, generator.secret, principal, tuple(ids), random.Random(seed))


def stored_records(database_url: str) -> int:
    """The rows of ``usage_records``, counted straight from the database."""
    db = Database(database_url)
    try:
        with db.engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM usage_records")).scalar_one())
    finally:
        db.dispose()


def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used, or None when it can."""
    try:
        import psycopg

        with psycopg.connect(POSTGRES_ADMIN_URL.replace("+psycopg", ""), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as error:  # any failure means "not reachable"
        return f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {error}"
    return None


# Measuring --------------------------------------------------------------------------------------


@dataclass
class Level:
    """Every measurement of one backend at one concurrency."""

    backend: str
    threads: int
    record_rates: list[float] = field(default_factory=list)
    batch_rates: list[float] = field(default_factory=list)
    empty_rates: list[float] = field(default_factory=list)
    same_bytes_rates: list[float] = field(default_factory=list)
    without_roll_up_rates: list[float] = field(default_factory=list)
    latencies: array[float] = field(default_factory=lambda: array("d"))
    records: int = 0
    busy: int = 0
    server_cpu: float = 0.0
    records_without: int = 0
    server_cpu_without: float = 0.0

    @property
    def records_per_second(self) -> float:
        return statistics.median(self.record_rates)

    @property
    def roll_up_ratio(self) -> float:
        """Records/s with the daily roll-up over records/s without it (1.0: it costs nothing)."""
        return self.records_per_second / statistics.median(self.without_roll_up_rates)

    @property
    def roll_up_cpu_ratio(self) -> float:
        """The Charter server's CPU per record with the daily roll-up over without it (1.0: it costs
        nothing): steadier than the throughput ratio on a shared machine, but without the database
        server's own CPU on PostgreSQL."""
        with_it = self.server_cpu / max(1, self.records)
        return with_it / (self.server_cpu_without / max(1, self.records_without))

    @property
    def empty_per_second(self) -> float:
        return statistics.mean(self.empty_rates)

    @property
    def met(self) -> bool:
        return self.records_per_second >= TARGETS[self.backend]


@contextmanager
def roll_up_switched_off() -> Iterator[None]:
    """ReportUsage without the daily roll-up (as before it existed), for the measurement inside."""
    kept = UsageRepository.roll_up

    def skip(self: UsageRepository, entries: Sequence[UsageEntry]) -> None:
        del self, entries

    UsageRepository.roll_up = skip  # type: ignore[method-assign]
    try:
        yield
    finally:
        UsageRepository.roll_up = kept  # type: ignore[method-assign]


def split(requests: Sequence[bytes], threads: int) -> list[list[bytes]]:
    """Round-robin over the threads, so each thread's share is in the order generated."""
    return [list(requests[n::threads]) for n in range(threads)]


def measure_backend(
    backend: str, args: argparse.Namespace, client: ClientProcess[LoadResult], deadline: Deadline
) -> list[Level]:
    """Every concurrency level on a fresh database of ``backend``."""
    levels = [Level(backend, threads) for threads in args.threads]
    with (
        fresh_database(backend) as url,
        charter_server(url, args.log_level) as server,
        grpc_server_like_charter(server.settings, EMPTY_SERVICE, "Call") as empty_address,
    ):
        world = build_world(server, holders=args.holders, characters=args.characters, seed=args.seed)
        address = f"127.0.0.1:{server.port}"
        acknowledged = 0

        def load(requests: list[list[bytes]], *, usage: bool, to_empty: bool = False, seconds: float) -> LoadResult:
            deadline.check(f"{backend}: a measurement")
            target, method = (empty_address, EMPTY_METHOD) if to_empty else (address, REPORT_METHOD)
            spec = Load(target, method, requests, world.metadata, min(seconds, deadline.remaining()), usage)
            result = client.run(spec)
            if result.problem:
                raise AssertionError(f"{backend}: {result.problem}")
            return result

        def empty(threads: int) -> float:
            calls = [[b""] * args.baseline_calls for _ in range(threads)]
            return load(calls, usage=False, to_empty=True, seconds=args.baseline_seconds).calls_per_second

        # Warm up: the connection, the worker threads, the key ring and the API-key cache.
        warm = world.batches(2 * max(args.threads), args.batch_size, args.per_receipt)
        acknowledged += load(split(warm, max(args.threads)), usage=True, seconds=30).records
        empty(max(args.threads))
        sample = warm[0]
        line(
            f"{backend}: world",
            f"{args.characters} characters over {args.holders} rights holders; a batch of {args.batch_size} "
            f"records is {len(sample) / 1024:,.0f} KiB ({len(sample) / args.batch_size:,.0f} B per record, "
            "each with its receipt)",
        )
        for number in range(args.rounds):
            for level in levels:
                requests = world.batches(args.max_batches, args.batch_size, args.per_receipt)  # not timed
                level.empty_rates.append(empty(level.threads))
                cpu_before = server_cpu_seconds()[0]
                result = load(split(requests, level.threads), usage=True, seconds=args.seconds)
                level.server_cpu += server_cpu_seconds()[0] - cpu_before
                acknowledged += result.records
                stored = stored_records(url)
                if stored != acknowledged:
                    raise AssertionError(f"{backend}: {acknowledged} records acknowledged but {stored} stored")
                level.record_rates.append(result.records_per_second)
                level.batch_rates.append(result.calls_per_second)
                level.latencies.extend(result.latencies)
                level.records += result.records
                level.busy += result.busy
                without = world.batches(args.max_batches, args.batch_size, args.per_receipt)  # not timed
                cpu_before = server_cpu_seconds()[0]
                with roll_up_switched_off():
                    plain = load(split(without, level.threads), usage=True, seconds=args.seconds)
                level.server_cpu_without += server_cpu_seconds()[0] - cpu_before
                level.records_without += plain.records
                acknowledged += plain.records
                level.without_roll_up_rates.append(plain.records_per_second)
                level.empty_rates.append(empty(level.threads))
                same = [[requests[0]] * args.baseline_calls for _ in range(level.threads)]
                level.same_bytes_rates.append(
                    load(same, usage=False, to_empty=True, seconds=args.baseline_seconds).calls_per_second
                )
                line(
                    f"{backend} round {number + 1}, {level.threads} thread(s)",
                    f"{result.records_per_second:8,.0f} records/s ({result.records} records in "
                    f"{result.seconds:.2f} s, {result.busy} busy); without the roll-up "
                    f"{plain.records_per_second:,.0f} records/s; empty {level.empty_rates[-2]:,.0f} / "
                    f"{level.empty_rates[-1]:,.0f} "
                    f"calls/s; empty (same bytes) {level.same_bytes_rates[-1]:,.0f} calls/s",
                )
    return levels


def report(levels: list[Level], args: argparse.Namespace, skipped: dict[str, str]) -> None:
    """Print the table, the verdicts and the SUMMARY line."""
    print(
        f"\n{'backend':<11} {'threads':>7} {'records/s':>10} {'batches/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'srv CPU µs/rec':>14} {'busy':>5} {'empty/s':>8} {'same bytes/s':>12} {'cost':>6} {'roll-up':>7} "
        f"{'CPU':>5}  target",
        flush=True,
    )
    summary: list[str] = []
    for level in levels:
        ordered = sorted(level.latencies)
        rate = level.records_per_second
        cost = level.empty_per_second / rate if rate else float("inf")
        target = TARGETS[level.backend]
        verdict = f">= {target:,.0f}: {'met' if level.met else 'MISSED'}"
        print(
            f"{level.backend:<11} {level.threads:>7} {rate:>10,.0f} {statistics.median(level.batch_rates):>9,.1f} "
            f"{percentile(ordered, 0.5) * 1e3:>7.1f} {percentile(ordered, 0.99) * 1e3:>7.1f} "
            f"{level.server_cpu / max(1, level.records) * 1e6:>14.0f} {level.busy:>5} {level.empty_per_second:>8,.0f} "
            f"{statistics.median(level.same_bytes_rates):>12,.0f} {cost:>6.2f} {level.roll_up_ratio:>7.3f} "
            f"{level.roll_up_cpu_ratio:>5.2f}  {verdict}",
            flush=True,
        )
        key = f"{level.backend}_t{level.threads}"
        summary += [
            f"{key}_records_per_s={rate:.0f}",
            f"{key}_empty_per_s={level.empty_per_second:.0f}",
            f"{key}_cost={cost:.3f}",
            f"{key}_roll_up_ratio={level.roll_up_ratio:.3f}",
            f"{key}_roll_up_cpu_ratio={level.roll_up_cpu_ratio:.3f}",
            f"{key}_busy={level.busy}",
            f"{key}_target={'met' if level.met else 'missed'}",
        ]
    print(
        "(cost: empty calls/s ÷ records/s, the empty round trips one record costs; busy: batches answered "
        "UNAVAILABLE, nothing recorded, and sent again; roll-up: records/s with the daily roll-ups ÷ without them, "
        "target >= 0.90; CPU: the Charter server's CPU per record with them ÷ without them, target <= 1.11)"
    )
    for backend, reason in skipped.items():
        print(f"{backend}: SKIPPED: {reason}")
        summary.append(f"{backend}=skipped")
    print(
        f"SUMMARY bench_usage date={today()} batch={args.batch_size} per_receipt={args.per_receipt} "
        f"rounds={args.rounds} " + " ".join(summary) + f" {machine()}",
        flush=True,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both", help="default both")
    parser.add_argument("--threads", default="1,4", help="client thread counts, comma-separated (default 1,4)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per concurrency (default 3)")
    parser.add_argument("--seconds", type=float, default=3.0, help="longest usage measurement in seconds (default 3)")
    parser.add_argument("--max-batches", type=int, default=120, help="batches made per measurement (default 120)")
    parser.add_argument("--batch-size", type=int, default=100, help="records per ReportUsage call (default 100)")
    parser.add_argument("--per-receipt", type=int, default=10, help="characters per Authorize (default 10)")
    parser.add_argument("--characters", type=int, default=40, help="opted-in characters (default 40)")
    parser.add_argument("--holders", type=int, default=4, help="rights holders owning them (default 4)")
    parser.add_argument("--baseline-seconds", type=float, default=1.0, help="longest baseline in seconds (default 1)")
    parser.add_argument("--baseline-calls", type=int, default=20_000, help="most baseline calls per thread")
    parser.add_argument("--seed", type=int, default=6, help="seed of the durations and revenues")
    parser.add_argument(
        "--log-level", default="warning", choices=("debug", "info", "warning", "error"), help="server log level"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 round of at most 1 s")
    parser.add_argument("--time-limit", type=float, default=300.0, help="hard limit of the whole run in seconds")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.max_batches, args.baseline_seconds = 1, 1.0, 30, 0.5
    try:
        args.threads = sorted({int(part) for part in args.threads.split(",")})
    except ValueError:
        parser.error("--threads must be comma-separated integers")
    if not all(1 <= n <= 32 for n in args.threads):
        parser.error("--threads must be 1 to 32")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be 1 to 20")
    if not 0 < args.seconds <= 60 or not 0 < args.baseline_seconds <= 60:
        parser.error("--seconds and --baseline-seconds must be more than 0 and at most 60")
    if not 1 <= args.batch_size <= 1000:
        parser.error("--batch-size must be 1 to 1000 (the RPC's limit)")
    if not 1 <= args.per_receipt <= min(64, args.characters):
        parser.error("--per-receipt must be 1 to 64 and at most --characters")
    if args.batch_size % args.per_receipt:
        parser.error("--batch-size must be a multiple of --per-receipt")
    if not 1 <= args.holders <= args.characters <= 10_000:
        parser.error("need 1 <= --holders <= --characters <= 10000")
    if not max(args.threads) <= args.max_batches <= 10_000:
        parser.error("--max-batches must be at least the most threads and at most 10000")
    if not 1 <= args.baseline_calls <= 1_000_000:
        parser.error("--baseline-calls must be 1 to 1000000")
    if args.time_limit <= 0:
        parser.error("--time-limit must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = Deadline(args.time_limit)
    logs.configure(log_format="json", level=args.log_level)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(
        f"bench_usage: ReportUsage, batches of {args.batch_size} records ({args.per_receipt} per receipt), "
        f"client threads {','.join(map(str, args.threads))} in a child process, {args.rounds} round(s) of at most "
        f"{args.seconds:g} s / {args.max_batches} batches; {', '.join(backends)}; limit {args.time_limit:g} s; "
        f"{machine()}",
        flush=True,
    )
    skipped: dict[str, str] = {}
    if "postgresql" in backends:
        problem = postgres_problem()
        if problem is not None:
            print(f"bench_usage: skipping PostgreSQL: {problem}", flush=True)
            skipped["postgresql"] = problem
            backends.remove("postgresql")
    levels: list[Level] = []
    client = ClientProcess(_client_main, LoadResult, call_timeout=CALL_TIMEOUT)
    try:
        for backend in backends:
            levels += measure_backend(backend, args, client, deadline)
    except TimeLimitExceeded as error:
        print(f"bench_usage: FAILED: {error}", file=sys.stderr)
        return 2
    except AssertionError as error:  # a refused record, a failed call, or stored != acknowledged
        print(f"bench_usage: FAILED: {error}", file=sys.stderr)
        return 1
    finally:
        client.close()
        deadline.cancel()
    report(levels, args, skipped)
    return 0


if __name__ == "__main__":
    sys.exit(main())
