"""Benchmark: throughput of ``AuthorizationService/Authorize`` over gRPC, next to empty handlers, same run.

Targets: ``Authorize`` over gRPC on SQLite with warm caches serves at least 70 % of the throughput of
an empty unary handler measured in the same run, with p50 and p99 printed; and ``Authorize`` with a
300-character prompt screened serves at least 85 % of ``Authorize`` without it, same run.

The world, made through the real services on a fresh SQLite database: a rights holder, a licensee
(platform ``bench.example``) with a generator API key, ``--characters`` opted-in characters (fan
terms without a quota, so the common path needs no write) and one grant per character, and
``--catalogue`` more characters (10,000 by default, three aliases each, imported) so that the
prompt is screened against a registry of realistic size. Five targets, all on ``127.0.0.1``:

* ``empty``: an empty unary handler with nothing around it (bytes in, empty bytes out) on a
  synchronous ``grpc.server`` with the Charter server's thread pool size,
  ``maximum_concurrent_rpcs`` and message options;
* ``empty-aio``: the same on ``grpc.aio``, the handler a coroutine. The 70 % target is judged
  against the faster of the two in each round (the issue's "empty unary handler on the fastest
  grpcio server setup");
* ``empty+stack``: an empty ``Authorize`` behind Charter's own transport (the dispatcher: request
  id, log and metrics, limits, error mapping, authentication with the real API-key cache and the
  role check), a second ``Transport``, called with the generator key and the same request bytes
  as ``authorize``. ``Authorize``'s ratio to it is what the handler itself costs.
  ``empty-aio`` and ``empty+stack`` run on the Charter server's own event loop: grpc.aio wakes
  every event loop of a process for every completion of any of them (they share one poller), so
  each extra loop cost every call of the others tens of µs that a server alone in its process,
  as in production, never pays;
* ``authorize``: the real server, the declared characters only;
* ``authorize+prompt``: the same, plus a 300-character prompt (English with Japanese in it)
  naming the first character twice, in Latin letters and in katakana, so prompt screening runs.

The load: ``--threads`` client threads (default 8, enough to saturate the server here) in a
child process, so client and server each have their own interpreter, as in production, and share
the machine's cores; one shared channel; synchronous unary calls with pre-serialized requests (the
responses are not parsed); each measurement bounded by ``--seconds`` and ``--max-calls``. Every
target is warmed up first (connections, worker threads, the authorization view, the API-key
cache, the grant terms, the signer) and each ``Authorize`` response checked once through the
generated stub (every character allowed, the prompt's character detected). The targets then take
turns in ``--rounds`` rounds, followed by one more ``empty`` and ``empty+stack``; a ratio is the
median over the rounds of the target's rate divided by the mean of the baseline's rate just
before and just after it.

It prints, per target: requests/s (the median of the rounds, and their range); p50 and p99
latency as the client sees it (every call of every round; at saturation, so mostly queueing;
``--threads 1`` shows the unloaded latency); the CPU time per request of the server process
(every server lives in it; user + system, system in brackets) and of the client process; and the
mean wall time inside Charter's transport per request (the ``charter_rpc_seconds`` histogram:
error mapping, authentication and the handler, including waits for the GIL). Then the ratios,
against ``empty`` (the target) and against ``empty+stack``, and a ``SUMMARY`` line. The whole run
is bounded by ``--time-limit``; ``--quick`` is a smoke run of about ten seconds. ``--in-process``
runs the client threads in the server's process instead (one GIL for both; only the sum of the
CPU times is known then). ``profile_authorize.py`` shows where the server's time goes.

    .venv/bin/python bench/bench_authorize.py                 # about 50 s
    .venv/bin/python bench/bench_authorize.py --quick         # about 10 s
    .venv/bin/python bench/bench_authorize.py --threads 1 --rounds 8
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import sys
import threading
import time
import uuid
from array import array
from collections.abc import Iterator, Sequence
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection

import grpc
from _common import (
    ClientProcess,
    Deadline,
    TimeLimitExceeded,
    aio_empty_server,
    fresh_database,
    line,
    machine,
    serve_loads,
    today,
)
from bench_screening import names_of as generated_names
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import authorization_service_pb2_grpc as az_grpc
from charter.v1 import decision_pb2, terms_pb2
from charter_server import logs
from charter_server.api.serving import Transport
from charter_server.app import CharterServer, build_server, transport_options
from charter_server.config import Settings
from charter_server.domain.clock import SystemClock
from charter_server.domain.models import AliasKind, Principal, Role
from charter_server.services.access import ApiKeyInput
from charter_server.services.catalog import LicenseeInput, RightsHolderInput
from charter_server.services.characters import MAX_IMPORT_ROWS, AliasInput, CharacterInput, ImportRowInput
from charter_server.services.grants import IssueInput
from charter_server.services.revocations import RevocationFeed
from prometheus_client import REGISTRY

TARGET_RATIO = 0.70
PROMPT_LENGTH = 300
PLATFORM = "bench.example"
EMPTY_SERVICE = "charter.bench.Empty"
EMPTY_METHOD = f"/{EMPTY_SERVICE}/Call"
AUTHORIZE_SERVICE = "charter.v1.AuthorizationService"
AUTHORIZE_METHOD = f"/{AUTHORIZE_SERVICE}/Authorize"
CALL_TIMEOUT = 10.0
TARGETS = ("empty", "empty-aio", "empty+stack", "authorize", "authorize+prompt")
BASELINES = ("empty", "empty-aio")
TARGET_PROMPT_RATIO = 0.85  # Authorize with the prompt screened, against Authorize without it


# What a client process is asked to do, and what it answers -----------------------------------


@dataclass(frozen=True)
class LoadSpec:
    """One bounded load: ``threads`` threads calling ``method`` at ``address`` with ``request``."""

    address: str
    method: str
    request: bytes
    metadata: tuple[tuple[str, str], ...]
    threads: int
    max_calls: int
    max_seconds: float


@dataclass
class LoadResult:
    """``calls`` calls in ``seconds`` of wall time; latencies in seconds; the client's CPU time."""

    calls: int
    errors: int
    seconds: float
    client_cpu: float
    latencies: array[float] = field(default_factory=lambda: array("d"))
    first_error: str = ""

    @property
    def per_second(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else 0.0


def run_load(spec: LoadSpec, channel: grpc.Channel) -> LoadResult:
    """Run ``spec`` on ``channel``: every thread stops at its share of the calls or at the time."""
    call = channel.unary_unary(spec.method)
    per_thread = max(1, math.ceil(spec.max_calls / spec.threads))
    start_gate = threading.Barrier(spec.threads + 1)
    samples: list[array[float]] = [array("d") for _ in range(spec.threads)]
    errors = [0] * spec.threads
    first_error: list[str] = []
    stop_at = [0.0]

    def worker(number: int) -> None:
        mine = samples[number]
        clock = time.perf_counter
        request, metadata = spec.request, spec.metadata
        start_gate.wait()
        end = stop_at[0]
        for _ in range(per_thread):
            began = clock()
            if began >= end:
                break
            try:
                call(request, metadata=metadata, timeout=CALL_TIMEOUT)
            except grpc.RpcError as error:
                errors[number] += 1
                if not first_error:
                    first_error.append(f"{error.code()}: {error.details()}")
                break
            mine.append(clock() - began)

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(spec.threads)]
    for thread in threads:
        thread.start()
    cpu_before = time.process_time()
    started = time.perf_counter()
    stop_at[0] = started + spec.max_seconds
    start_gate.wait()
    for thread in threads:
        thread.join(spec.max_seconds + CALL_TIMEOUT + 5)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    if any(thread.is_alive() for thread in threads):
        raise TimeLimitExceeded("a client thread outlived its load's time limit")
    latencies = array("d")
    for part in samples:
        latencies.extend(part)
    return LoadResult(len(latencies), sum(errors), elapsed, cpu, latencies, first_error[0] if first_error else "")


def _client_main(conn: Connection) -> None:
    """The client process: run each ``LoadSpec`` received, answer with its ``LoadResult``; stop on None."""
    serve_loads(conn, run_load)


def client_process() -> ClientProcess[LoadResult]:
    """A client process that runs ``LoadSpec`` loads."""
    return ClientProcess(_client_main, LoadResult, call_timeout=CALL_TIMEOUT)


class InProcessClient:
    """The load in threads of this process (``--in-process``): client and server share one GIL."""

    def __init__(self) -> None:
        self._channels: dict[str, grpc.Channel] = {}

    def run(self, spec: LoadSpec) -> LoadResult:
        channel = self._channels.get(spec.address)
        if channel is None:
            channel = self._channels[spec.address] = grpc.insecure_channel(spec.address)
        return run_load(spec, channel)

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()


# The servers ------------------------------------------------------------------------------------


def _empty(_request: bytes, _context: grpc.ServicerContext) -> bytes:
    return b""


@contextmanager
def grpc_server_like_charter(settings: Settings, service: str, method: str) -> Iterator[str]:
    """A synchronous ``grpc.server`` (a thread pool of the Charter server's size, its concurrency
    limit and message options) serving one empty unary method; yields its loopback address."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix="bench-empty"),
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    handler = grpc.unary_unary_rpc_method_handler(_empty)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {method: handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=1.0).wait()


def _empty_authorize(_request: az.AuthorizeRequest, _context: object) -> az.AuthorizeResponse:
    return az.AuthorizeResponse()


@contextmanager
def stack_server(server: CharterServer) -> Iterator[str]:
    """Charter's own transport (``charter_server.api.serving``: the dispatcher with the request id,
    log and metrics, limits, authentication with the real API-key cache and the role check)
    around an empty ``Authorize``, run on the event loop as the real one is; yields its address."""
    settings = server.settings
    executor = futures.ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix="bench-stack")
    handler = grpc.unary_unary_rpc_method_handler(_empty_authorize, request_deserializer=az.AuthorizeRequest.FromString)
    transport = Transport(
        dataclasses.replace(
            transport_options(settings), listen="127.0.0.1:0", inline_methods=frozenset({AUTHORIZE_METHOD})
        ),
        authenticator=server.services.authenticator,
        feed=RevocationFeed(server.db, SystemClock()),
        registrations=(
            lambda recorder: recorder.add_registered_method_handlers(AUTHORIZE_SERVICE, {"Authorize": handler}),
        ),
        service_files=(az.DESCRIPTOR,),
        service_names=(AUTHORIZE_SERVICE,),
        executor=executor,
        # The Charter server's loop: a second loop in this process would be woken for every
        # completion of either server (see ``_common.aio_empty_server``).
        loop=server.transport.loop,
    )
    transport.start()
    try:
        yield f"127.0.0.1:{transport.port}"
    finally:
        transport.stop(1.0)


@contextmanager
def charter_server(database_url: str, log_level: str, *, log_process: bool = True) -> Iterator[CharterServer]:
    """A running Charter server on a free loopback port (as ``_common.charter_server``, quieter);
    its transparency log in a process of its own, as ``charter-server serve`` runs it, unless
    ``log_process`` is off."""
    settings = Settings(
        listen="127.0.0.1:0",
        database_url=database_url,
        migrate=True,
        log_format="json",
        log_level=log_level,
        shutdown_grace_seconds=1.0,
        log_process=log_process,
    )
    server = build_server(settings)
    server.start()
    try:
        yield server
    finally:
        server.stop(grace=1.0)


# The world --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """What the load needs: the generator key, its licensee, the characters and the requests."""

    generator_secret: str
    generator_key_id: str
    licensee_id: str
    character_ids: tuple[str, ...]
    prompt: str
    declared_request: bytes
    prompt_request: bytes

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.generator_secret}"),)


def fan_terms() -> terms_pb2.Terms:
    """Fan, non-commercial terms without a quota (a quota would make every allowed call write)."""
    return terms_pb2.Terms(
        permitted_use_types=[terms_pb2.USE_TYPE_IMAGE_GENERATION, terms_pb2.USE_TYPE_VIDEO_GENERATION],
        max_content_rating=terms_pb2.CONTENT_RATING_TEEN,
        prohibited_categories=[terms_pb2.CONTENT_CATEGORY_SEXUAL, terms_pb2.CONTENT_CATEGORY_CHARACTER_DAMAGING],
        excluded_territories=["KP"],
        allowed_platforms=[PLATFORM],
        attribution_text="© Bench Studio",
        watermark_required=True,
    )


def make_prompt(canonical: str, kana: str) -> str:
    """300 characters of English with Japanese in it, naming a character in Latin and in katakana."""
    text = (
        f"A watercolour poster of {canonical} walking through Akihabara at dusk; {kana}さん waves from a "
        "café window. Soft light, ＨＤ, ﾈｵﾝ signs, rain on the street, cinematic framing, muted palette, "  # noqa: RUF001
        "gentle film grain, and a small cat asleep on the step."
    )
    filler = " Wide shot, morning haze, quiet streets."
    while len(text) < PROMPT_LENGTH:
        text += filler
    return text[:PROMPT_LENGTH]


def add_catalogue(server: CharterServer, staff: Principal, holder_id: str, count: int) -> None:
    """``count`` more characters (opted out, never declared) with three aliases each, imported in
    batches, so that prompt screening runs against a registry of realistic size."""
    kinds = (AliasKind.ROMANIZATION, AliasKind.OFFICIAL_NAME, AliasKind.SHORT_NAME)
    languages = ("ja-Latn", "ja", "ja")
    for first in range(0, count, MAX_IMPORT_ROWS):
        rows = []
        for number in range(first, min(count, first + MAX_IMPORT_ROWS)):
            canonical, aliases = generated_names(20_000 + number)
            rows.append(
                ImportRowInput(
                    CharacterInput(
                        rights_holder_id=holder_id,
                        canonical_name=canonical,
                        external_id=f"registry-{number}",
                        aliases=tuple(
                            AliasInput(value, languages[i], kinds[i], ambiguous=ambiguous)
                            for i, (value, ambiguous) in enumerate(aliases)
                        ),
                    )
                )
            )
        server.services.characters.import_characters(staff, holder_id, rows)


def build_world(server: CharterServer, characters: int, catalogue: int = 0) -> World:
    """Create the rights holder, licensee, generator key, characters, terms and grants in-process."""
    services = server.services
    admin = services.access.create_bootstrap_admin("bench admin")
    staff = Principal(admin.api_key.id, Role.ADMIN)
    holder = services.catalog.create_rights_holder(
        staff, RightsHolderInput(display_name="Bench Studio", contact_email="rights@bench.example")
    )
    licensee = services.catalog.create_licensee(
        staff, LicenseeInput(display_name="Bench App", contact_email="ops@bench.example", platform=PLATFORM)
    )
    generator = services.access.create_api_key(
        staff, ApiKeyInput("bench generator", Role.GENERATOR, licensee_id=licensee.id)
    )
    expire = datetime.now(UTC) + timedelta(days=30)
    kinds = {0: AliasKind.ROMANIZATION, 1: AliasKind.OFFICIAL_NAME, 2: AliasKind.SHORT_NAME}
    languages = {0: "ja-Latn", 1: "ja", 2: "ja"}
    ids: list[str] = []
    names: list[tuple[str, str]] = []
    for number in range(characters):
        canonical, aliases = generated_names(1000 + number)
        created = services.characters.create_character(
            staff,
            CharacterInput(
                rights_holder_id=holder.id,
                canonical_name=canonical,
                franchise="Bench Franchise",
                external_id=f"bench-{number}",
                aliases=tuple(
                    AliasInput(value, languages[i], kinds[i], ambiguous=ambiguous)
                    for i, (value, ambiguous) in enumerate(aliases)
                ),
            ),
        )
        services.characters.opt_in(staff, created.id, fan_terms())
        services.grants.issue(staff, IssueInput(created.id, licensee.id, expire_time=expire))
        ids.append(created.id)
        names.append((canonical, aliases[1][0]))  # the katakana full name is not ambiguous
    add_catalogue(server, staff, holder.id, catalogue)
    services.screen.refresh_now()  # the screen's own refresh would see the new names within a second
    context = decision_pb2.UseContext(
        use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION, content_rating=terms_pb2.CONTENT_RATING_ALL_AGES, territory="JP"
    )
    request_id = uuid.uuid4().hex  # the SDK sends one with every call
    prompt = make_prompt(*names[0])
    declared = az.AuthorizeRequest(character_ids=ids, context=context, request_id=request_id)
    with_prompt = az.AuthorizeRequest(character_ids=ids, prompt=prompt, context=context, request_id=request_id)
    return World(
        generator_secret=generator.secret,
        generator_key_id=generator.api_key.id,
        licensee_id=licensee.id,
        character_ids=tuple(ids),
        prompt=prompt,
        declared_request=declared.SerializeToString(),
        prompt_request=with_prompt.SerializeToString(),
    )


def check_response(address: str, world: World, request: bytes, *, prompt: bool) -> str:
    """One real call with the stub; the decision must allow every character (and detect the named one)."""
    with grpc.insecure_channel(address) as channel:
        stub = az_grpc.AuthorizationServiceStub(channel)
        response = stub.Authorize(az.AuthorizeRequest.FromString(request), metadata=world.metadata, timeout=30)
    decided = [c.character_id for c in response.decision.characters]
    if not response.decision.allowed or decided != list(world.character_ids):
        raise AssertionError(f"Authorize did not allow every declared character: {response.decision}")
    detected = {d.character_id for d in response.detections}
    if prompt and (world.character_ids[0] not in detected or len(response.detections) < 2):
        raise AssertionError(f"the prompt's character was not detected twice: {list(response.detections)}")
    return f"allowed, {len(decided)} characters, {len(response.detections)} detections, {response.ByteSize()} B"


# Measuring --------------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class Series:
    """Every measurement of one target."""

    rates: list[float] = field(default_factory=list)
    latencies: array[float] = field(default_factory=lambda: array("d"))
    calls: int = 0
    server_cpu: float = 0.0
    server_sys: float = 0.0
    client_cpu: float = 0.0
    handler_seconds: float = 0.0  # inside the transport's metrics, summed; 0 without them
    handler_calls: int = 0
    threads: dict[str, float] = field(default_factory=dict)  # server CPU seconds by thread group


def handler_time() -> tuple[float, float]:
    """The ``charter_rpc_seconds`` histogram of ``Authorize``: (sum of seconds, count) so far.

    ``ObservabilityInterceptor`` times everything inside it (error mapping, authentication and the
    handler) for the real server and for ``empty+stack`` alike, under the same method name; the
    measurements run one at a time, so the difference over one belongs to its target.
    """
    labels = {"method": AUTHORIZE_METHOD}
    total = REGISTRY.get_sample_value("charter_rpc_seconds_sum", labels) or 0.0
    count = REGISTRY.get_sample_value("charter_rpc_seconds_count", labels) or 0.0
    return total, count


def process_cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system) of another process so far (0 when there is none, or off Linux)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as file:
            stat = file.read()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds() -> dict[str, float]:
    """CPU time (user + system) of this process's threads so far, by thread name with a pool
    worker's number left out; gRPC's own threads by their native name. Linux only (``/proc``);
    elsewhere empty."""
    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    totals: dict[str, float] = {}
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return totals
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/stat") as file:
                stat = file.read()
        except OSError:  # the thread ended meanwhile
            continue
        native = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        name = names.get(int(task), native)
        name = "grpc.aio poller" if "_poll_wrapper" in name else name.rstrip("0123456789").rstrip("_-")
        totals[name] = totals.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return totals


def settle_log(server: CharterServer, max_batches: int = 100) -> None:
    """Append the buffered receipts and integrate every pending log entry now (in this thread), so
    that the transparency log's work for one target's receipts (its receipt thread and sequencer
    run up to a few hundred ms behind) is not done, and charged, during the next target's
    measurement, where it lowered the empty baseline that follows ``authorize+prompt``."""
    services = server.services
    for _ in range(max_batches):
        if services.sequencer.integrate():
            continue
        if not len(services.receipt_log):
            return
        # Receipts still buffered that the sequencer did not take itself: appended as pending
        # entries, which its next batch integrates.
        services.receipt_log.flush()


def server_cpu_seconds() -> tuple[float, float]:
    """CPU time of this process (every server lives in it), all threads: (user + system, system)."""
    times = os.times()
    return times.user + times.system, times.system


def report(args: argparse.Namespace, series: dict[str, Series]) -> None:
    """Print the table of the targets, the ratios and the SUMMARY line."""

    def ratio(name: str, baseline: str) -> float:
        # Round i's baseline ran just before the target, round i + 1's (or the last one) just after.
        # "fastest" is the faster of the two empty servers in each round.
        rates = series[name].rates[: args.rounds]
        if baseline == "fastest":
            reference = [max(pair) for pair in zip(*(series[b].rates for b in BASELINES), strict=True)]
        else:
            reference = series[baseline].rates
        return statistics.median(rate / ((reference[i] + reference[i + 1]) / 2) for i, rate in enumerate(rates))

    cpu_header = "CPU µs/req, both" if args.in_process else "server CPU µs/req (sys)  client CPU"
    print(
        f"\n{'target':<17} {'req/s':>6}  {'p50 ms':>6}  {'p99 ms':>6}  {cpu_header}  in stack µs  req/s range",
        flush=True,
    )
    summary: dict[str, float] = {}
    for name in TARGETS:
        entry = series[name]
        rate = statistics.median(entry.rates)
        ordered = sorted(entry.latencies)
        p50, p99 = percentile(ordered, 0.50) * 1e3, percentile(ordered, 0.99) * 1e3
        summary |= {f"{name}_per_s": rate, f"{name}_p50_ms": p50, f"{name}_p99_ms": p99}
        per_call = 1e6 / entry.calls
        if args.in_process:  # the client's CPU time is this process's too: only the sum is known
            cpu = f"{entry.server_cpu * per_call:16.0f}"
        else:
            server = f"{entry.server_cpu * per_call:.0f} ({entry.server_sys * per_call:.0f})"
            cpu = f"{server:>23}  {entry.client_cpu * per_call:10.0f}"
        inside = f"{entry.handler_seconds / entry.handler_calls * 1e6:11.0f}" if entry.handler_calls else f"{'-':>11}"
        print(
            f"{name:<17} {rate:6,.0f}  {p50:6.2f}  {p99:6.2f}  {cpu}  {inside}  "
            f"{min(entry.rates):,.0f}-{max(entry.rates):,.0f}",
            flush=True,
        )
    if not args.in_process:
        print(
            "\nserver CPU µs/req by thread (10 ms ticks; charter-grpc is the one event loop of every grpc.aio target)"
        )
        for name in TARGETS:
            entry = series[name]
            busiest = sorted(entry.threads.items(), key=lambda item: item[1], reverse=True)
            shown = [f"{thread} {seconds / entry.calls * 1e6:.0f}" for thread, seconds in busiest if seconds > 0]
            print(f"  {name:<17} " + ", ".join(shown[:8]), flush=True)
    print()
    line("empty-aio / empty", f"{ratio('empty-aio', 'empty'):.3f}  (grpc.aio on the loop / synchronous server)")
    line("empty+stack / fastest empty", f"{ratio('empty+stack', 'fastest'):.3f}  (Charter's transport alone)")
    for name in ("authorize", "authorize+prompt"):
        against_empty = ratio(name, "fastest")
        against_stack = ratio(name, "empty+stack")
        summary |= {f"{name}_ratio": against_empty, f"{name}_ratio_stack": against_stack}
        verdict = "OK" if against_empty >= TARGET_RATIO else "MISSED"
        line(f"{name} / fastest empty", f"{against_empty:.3f}  target >= {TARGET_RATIO:.2f}  {verdict}")
        line(f"{name} / empty+stack", f"{against_stack:.3f}  (what the handler costs)")
    # Same round, one right after the other: the prompt's cost against Authorize without it.
    pairs = zip(series["authorize+prompt"].rates, series["authorize"].rates, strict=False)
    with_prompt = statistics.median(prompt / plain for prompt, plain in pairs)
    summary["prompt_ratio"] = with_prompt
    verdict = "OK" if with_prompt >= TARGET_PROMPT_RATIO else "MISSED"
    line("authorize+prompt / authorize", f"{with_prompt:.3f}  target >= {TARGET_PROMPT_RATIO:.2f}  {verdict}")
    print(
        f"SUMMARY bench_authorize date={today()} threads={args.threads} rounds={args.rounds} "
        f"client={'in-process' if args.in_process else 'process'} "
        + " ".join(
            f"{key}={value:.3f}" if "ratio" in key or "_ms" in key else f"{key}={value:.0f}"
            for key, value in summary.items()
        )
        + f" {machine()}",
        flush=True,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--threads", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every target (default 5)")
    parser.add_argument("--seconds", type=float, default=2.0, help="longest measurement in seconds (default 2)")
    parser.add_argument("--max-calls", type=int, default=100_000, help="most calls per measurement (default 100000)")
    parser.add_argument("--warmup-calls", type=int, default=1_000, help="calls per target before timing (default 1000)")
    parser.add_argument("--characters", type=int, default=1, help="declared characters per request (default 1)")
    parser.add_argument(
        "--catalogue", type=int, default=10_000, help="more characters in the registry, 3 aliases each (default 10000)"
    )
    parser.add_argument(
        "--in-process", action="store_true", help="run the client threads in the server's process (one GIL)"
    )
    parser.add_argument(
        "--log-level",
        default="error",
        choices=("debug", "info", "warning", "error"),
        help="server log level (default error; info writes one JSON line per RPC to stderr)",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run of about 10 s (2 rounds of 0.5 s)")
    parser.add_argument("--time-limit", type=float, default=180.0, help="hard limit of the whole run in seconds")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.warmup_calls = 2, 0.5, 200
    if not 1 <= args.threads <= 64:
        parser.error("--threads must be 1 to 64")
    if not 1 <= args.rounds <= 100:
        parser.error("--rounds must be 1 to 100")
    if not 0 < args.seconds <= 60:
        parser.error("--seconds must be more than 0 and at most 60")
    if not 1 <= args.max_calls <= 10_000_000:
        parser.error("--max-calls must be 1 to 10000000")
    if not 0 <= args.warmup_calls <= 100_000:
        parser.error("--warmup-calls must be 0 to 100000")
    if not 1 <= args.characters <= 64:
        parser.error("--characters must be 1 to 64")
    if args.time_limit <= 0:
        parser.error("--time-limit must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = Deadline(args.time_limit)
    logs.configure(log_format="json", level=args.log_level)
    client_kind = "in-process threads" if args.in_process else "a child process"
    print(
        f"bench_authorize: {args.threads} client threads in {client_kind}, {args.rounds} rounds of at most "
        f"{args.seconds:g} s / {args.max_calls} calls per target, {args.characters} declared character(s), "
        f"SQLite; limit {args.time_limit:g} s; {machine()}",
        flush=True,
    )
    client: ClientProcess[LoadResult] | InProcessClient = InProcessClient() if args.in_process else client_process()
    series = {name: Series() for name in TARGETS}
    try:
        with (
            fresh_database("sqlite") as url,
            charter_server(url, args.log_level) as server,
            grpc_server_like_charter(server.settings, EMPTY_SERVICE, "Call") as empty_address,
            aio_empty_server(EMPTY_SERVICE, "Call", loop=server.transport.loop) as aio_address,
            stack_server(server) as stack_address,
        ):
            world = build_world(server, args.characters, args.catalogue)
            charter_address = f"127.0.0.1:{server.port}"
            line("authorize", check_response(charter_address, world, world.declared_request, prompt=False))
            line("authorize+prompt", check_response(charter_address, world, world.prompt_request, prompt=True))
            loads = {
                "empty": (empty_address, EMPTY_METHOD, b"", ()),
                "empty-aio": (aio_address, EMPTY_METHOD, b"", ()),
                "empty+stack": (stack_address, AUTHORIZE_METHOD, world.declared_request, world.metadata),
                "authorize": (charter_address, AUTHORIZE_METHOD, world.declared_request, world.metadata),
                "authorize+prompt": (charter_address, AUTHORIZE_METHOD, world.prompt_request, world.metadata),
            }

            def measure(name: str, *, calls: int, seconds: float, record: bool) -> LoadResult:
                deadline.check(f"measuring {name}")
                settle_log(server)
                address, method, request, metadata = loads[name]
                spec = LoadSpec(
                    address, method, request, metadata, args.threads, calls, min(seconds, deadline.remaining())
                )
                cpu_before, handler_before, threads_before = server_cpu_seconds(), handler_time(), thread_cpu_seconds()
                result = client.run(spec)
                # The log's work for this target's receipts that is still behind, charged to its
                # CPU time but not to its rate (at most a few hundred ms of the log's threads).
                settle_log(server)
                cpu_after, handler_after, threads_after = server_cpu_seconds(), handler_time(), thread_cpu_seconds()
                if result.errors:
                    raise AssertionError(f"{name}: {result.errors} failed calls, the first {result.first_error}")
                if record:
                    entry = series[name]
                    entry.rates.append(result.per_second)
                    entry.latencies.extend(result.latencies)
                    entry.calls += result.calls
                    # In-process, the client's CPU time is this process's: only the total is known.
                    entry.client_cpu += 0.0 if args.in_process else result.client_cpu
                    entry.server_cpu += cpu_after[0] - cpu_before[0]
                    entry.server_sys += cpu_after[1] - cpu_before[1]
                    entry.handler_seconds += handler_after[0] - handler_before[0]
                    entry.handler_calls += int(handler_after[1] - handler_before[1])
                    for thread, used in threads_after.items():
                        entry.threads[thread] = entry.threads.get(thread, 0.0) + used - threads_before.get(thread, 0.0)
                return result

            for name in TARGETS:  # warm up: connections, worker threads, every cache on the path
                measure(name, calls=args.warmup_calls, seconds=10.0, record=False)
            for number in range(args.rounds):
                for name in TARGETS:
                    measure(name, calls=args.max_calls, seconds=args.seconds, record=True)
                print(
                    f"round {number + 1}: " + ", ".join(f"{name} {series[name].rates[-1]:,.0f}/s" for name in TARGETS),
                    flush=True,
                )
            for name in (*BASELINES, "empty+stack"):  # the baselines once more, "after" the last round
                measure(name, calls=args.max_calls, seconds=args.seconds, record=True)
    except TimeLimitExceeded as error:
        print(f"bench_authorize: FAILED: {error}", file=sys.stderr)
        return 2
    finally:
        client.close()
        deadline.cancel()

    report(args, series)
    return 0


if __name__ == "__main__":
    sys.exit(main())
