"""Where the time of one ``Authorize`` goes, server side, without gRPC: stages and a cProfile.

Builds the same world as ``bench_authorize.py`` (a fresh SQLite server, one generator key, opted-in
characters with quota-free terms and a grant each), warms every cache, then, in this process:

1. times ``AuthorizationService.authorize`` called directly (declared only, and with the prompt),
   next to the work gRPC adds around it (parsing the request, serializing the response);
2. times each stage of the hot path on its own, by calling the same functions the method calls
   (validation, screening, the view, the decision, the receipt, its signature, the response), and
   the transport's own pieces (the API-key check through the cache, the ``rpc.completed`` log
   call at the level used, the Prometheus metrics, a uuid4 request id); then the CPU time per
   call when 1, 4 or 16 threads call ``authorize`` at once (``os.times``, 10 ms resolution: use
   enough ``--calls``);
3. runs ``--profile-calls`` calls under cProfile and prints the functions by own time and by
   cumulative time;
4. serves the load of ``bench_authorize.py`` (``--threads`` client threads in a child process,
   ``--served-seconds`` per target) with cProfile running in every server thread (installed with
   ``threading.setprofile`` before the servers start), and prints, per target, the wall time per
   request of the server's threads in total and by function (own time), idle waits left out, so
   the gRPC machinery, Charter's transport and the handler show up as they run in the server. cProfile
   times wall clock: a C function that releases the GIL (libsodium through cffi, ``os.urandom``,
   gRPC's own calls) is charged the wait to get the GIL back, which is how GIL handoffs show up.
   cProfile slows everything down (calls most), so read the shares, not the absolute µs.

Loops are bounded in count (``--calls``, ``--profile-calls``) and the whole run by
``--time-limit``. µs figures are the best of ``--repeats`` repeats.

    .venv/bin/python bench/profile_authorize.py
    .venv/bin/python bench/profile_authorize.py --calls 5000 --profile-calls 5000 --log-level info 2>/dev/null
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from functools import partial
from types import FrameType
from typing import Any

import structlog
from _common import Deadline, TimeLimitExceeded, fresh_database, line, machine
from bench_authorize import (
    AUTHORIZE_METHOD,
    LoadSpec,
    World,
    build_world,
    charter_server,
    client_process,
    stack_server,
)


class ThreadProfiles:
    """A cProfile profiler in every thread started after ``install()``; read from any thread.

    Each new thread enables its own profiler on its first profiled event. ``snapshot()`` sums
    every profiler's per-function counts and times (``getstats`` reads without stopping them), so
    the difference of two snapshots is what the threads did in between.
    """

    def __init__(self) -> None:
        self._profilers: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def install(self) -> None:
        threading.setprofile(self._start)

    def uninstall(self) -> None:
        threading.setprofile(None)

    def _start(self, _frame: FrameType, _event: str, _arg: object) -> None:
        sys.setprofile(None)
        profiler = cProfile.Profile()
        with self._lock:
            self._profilers.append(profiler)
        profiler.enable()

    def snapshot(self) -> dict[str, tuple[int, float]]:
        """Per function: (calls, own seconds), summed over every thread's profiler."""
        totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        with self._lock:
            profilers = list(self._profilers)
        for profiler in profilers:
            for entry in profiler.getstats():
                code = entry.code
                key = (
                    code
                    if isinstance(code, str)
                    else f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}({code.co_name})"
                )
                totals[key][0] += entry.callcount
                totals[key][1] += entry.inlinetime
        return {key: (int(calls), seconds) for key, (calls, seconds) in totals.items()}


def difference(
    after: dict[str, tuple[int, float]], before: dict[str, tuple[int, float]]
) -> dict[str, tuple[int, float]]:
    """``after`` minus ``before``, function by function (only what moved)."""
    result = {}
    for key, (calls, seconds) in after.items():
        calls_before, seconds_before = before.get(key, (0, 0.0))
        if calls != calls_before or seconds != seconds_before:
            result[key] = (calls - calls_before, seconds - seconds_before)
    return result


def best_us(operation: Callable[[], object], calls: int, repeats: int, deadline: Deadline) -> float:
    """The best µs per call over ``repeats`` runs of ``calls`` calls."""
    best = float("inf")
    for _ in range(repeats):
        deadline.check("timing")
        start = time.perf_counter()
        for _ in range(calls):
            operation()
        best = min(best, (time.perf_counter() - start) / calls * 1e6)
    return best


def concurrent_cost(
    operation: Callable[[], object], threads: int, calls: int, deadline: Deadline
) -> tuple[float, float, float]:
    """``calls`` calls split over ``threads`` threads at once: µs per call of CPU, of system CPU, of wall.

    One thread is the hot loop; several show what the GIL handoffs cost when calls overlap, as in
    the server's worker threads (every C call that releases the GIL hands it to another thread).
    """
    deadline.check("the concurrent timing")
    share = max(1, calls // threads)

    def work() -> None:
        for _ in range(share):
            operation()

    workers = [threading.Thread(target=work, name=f"concurrent-{n}") for n in range(threads)]
    before, start = os.times(), time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(max(1.0, deadline.remaining()))
    wall, after = time.perf_counter() - start, os.times()
    done = share * threads
    cpu = (after.user + after.system) - (before.user + before.system)
    return cpu / done * 1e6, (after.system - before.system) / done * 1e6, wall / done * 1e6


def stages(server: Any, world: World, request: Any) -> dict[str, Callable[[], object]]:
    """The hot path of ``AuthorizationService.authorize`` cut into its stages, each callable alone."""
    from charter.v1 import authorization_service_pb2 as az
    from charter_server.api import convert
    from charter_server.api.authorization import authorize_command
    from charter_server.api.dispatch import RPC_COUNT, RPC_SECONDS
    from charter_server.domain.models import Principal, Role
    from charter_server.services.authorization import receipt as receipts
    from charter_server.services.authorization.service import stated as state
    from charter_server.services.authorization.validation import validate

    service = server.services.authorization
    view = server.services.view
    screen = server.services.screen
    clock = service._clock
    principal = Principal(world.generator_key_id, Role.GENERATOR, licensee_id=world.licensee_id)
    licensee_id = world.licensee_id
    wire = request.SerializeToString()
    command = authorize_command(request)
    use = command.use
    assert use is not None
    presented = validate(command)
    detections = screen.screen(request.prompt) if request.prompt.strip() else []
    order = dict.fromkeys(request.character_ids, True)
    for detection in detections:
        if not detection.ambiguous and detection.character_id not in order:
            order[detection.character_id] = False
    detected = {d.character_id for d in detections}
    now = clock.now()
    generation = view.current()
    decider = service._decider
    outcomes = decider.decide(generation, licensee_id, order, detected, presented, use, now)
    digest = command.request_digest
    context = receipts.attested_context(use)
    stated = [state(outcome) for outcome in outcomes]
    signer = service._keys.signer()
    writer = service._receipts

    def payload() -> bytes:
        return writer.payload(
            receipt_id="rcp_0123456789abcdef0123456789abcdef",
            licensee_id=licensee_id,
            digest=digest,
            outcomes=stated,
            context=context,
            decide_time=now,
        )

    written = payload()

    def sign() -> receipts.SignedReceipt:
        return writer.sign(
            written, receipt_id="rcp_0", digest=digest, key_id=signer.key_id, signing_key=signer.signing_key
        )

    signed = sign()

    def respond() -> bytes:  # as the servicer builds it
        return signed.response(convert.detection(d).SerializeToString() for d in detections)

    response = az.AuthorizeResponse.FromString(respond())
    authenticator = server.services.authenticator
    token = world.generator_secret
    log = structlog.get_logger("charter_server.rpc")
    method = "/charter.v1.AuthorizationService/Authorize"

    def view_stage() -> None:
        current = view.current()
        view.load(current, licensee_id, list(order), clock.now())
        view.is_fresh(current)

    def log_stage() -> None:
        log.info("rpc.completed", caller=principal.key_id, code="OK", duration_ms=0.123)

    def metrics_stage() -> None:
        RPC_COUNT.labels(method, "OK").inc()
        RPC_SECONDS.labels(method).observe(0.000123)

    return {
        "authorize (whole method)": lambda: service.authorize(principal, authorize_command(request)),
        "  convert the request (api) and its digest": lambda: authorize_command(request),
        "  validate": lambda: validate(command),
        "  screen the prompt": (lambda: screen.screen(request.prompt)) if request.prompt else (lambda: None),
        "  clock.now()": clock.now,
        "  view: current + load + is_fresh": view_stage,
        "  decide": lambda: decider.decide(generation, licensee_id, order, detected, presented, use, now),
        "  attested use context": lambda: receipts.attested_context(use),
        "  receipt (write DecisionReceipt bytes)": payload,
        "  sign (Ed25519 + envelope bytes)": sign,
        "  response (AuthorizeResponse bytes)": respond,
        "gRPC: parse the request": lambda: az.AuthorizeRequest.FromString(wire),
        "gRPC: serialize the response": response.SerializeToString,
        "transport: authenticate (cached key)": lambda: authenticator.authenticate(token),
        "transport: rpc.completed log call": log_stage,
        "transport: metrics": metrics_stage,
        "transport: uuid4 request id": lambda: uuid.uuid4().hex,
    }


# Where idle threads wait (pool workers for work, the server loop for events): time, not work.
WAITS = ("<method 'acquire' of '_thread.lock' objects>", "<method 'get' of '_queue.SimpleQueue' objects>")


def served(
    args: argparse.Namespace,
    profiles: ThreadProfiles,
    world: World,
    charter_address: str,
    stack_address: str,
    deadline: Deadline,
) -> None:
    """Profile every server thread while the client process loads each target in turn."""
    targets = {
        "empty+stack": (stack_address, world.declared_request),
        "authorize": (charter_address, world.declared_request),
        "authorize+prompt": (charter_address, world.prompt_request),
    }
    client = client_process()
    try:
        for label, (address, request) in targets.items():
            spec = LoadSpec(address, AUTHORIZE_METHOD, request, world.metadata, args.threads, 200, 10.0)
            client.run(spec)  # warm up (and start the client process the first time)
            deadline.check(f"the served profile of {label}")
            before = profiles.snapshot()
            result = client.run(
                LoadSpec(
                    address,
                    AUTHORIZE_METHOD,
                    request,
                    world.metadata,
                    args.threads,
                    1_000_000,
                    min(args.served_seconds, deadline.remaining()),
                )
            )
            moved = difference(profiles.snapshot(), before)
            calls = max(1, result.calls)
            waits = {name: moved.pop(name) for name in WAITS if name in moved}
            total = sum(seconds for _, seconds in moved.values())
            print(
                f"\n== served under cProfile, {label}: {result.per_second:,.0f} req/s, {result.calls} calls; "
                f"wall time in server threads {total / calls * 1e6:.0f} µs/req besides idle waits ("
                + ", ".join(f"{name} {seconds / calls * 1e6:.0f} µs/req" for name, (_, seconds) in waits.items())
                + "); by own wall time per request (a C call that releases the GIL includes the wait to get "
                "it back)"
            )
            ranked = sorted(moved.items(), key=lambda item: item[1][1], reverse=True)[: args.top]
            for name, (count, seconds) in ranked:
                print(f"  {seconds / calls * 1e6:8.1f} µs  {seconds / total:6.1%}  {count / calls:6.2f}/req  {name}")
    finally:
        client.close()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2_000, help="calls per timing (default 2000)")
    parser.add_argument("--repeats", type=int, default=5, help="timings per stage; the best counts (default 5)")
    parser.add_argument("--profile-calls", type=int, default=3_000, help="calls under cProfile (default 3000)")
    parser.add_argument("--characters", type=int, default=1, help="declared characters per request (default 1)")
    parser.add_argument("--top", type=int, default=30, help="functions printed per listing (default 30)")
    parser.add_argument("--threads", type=int, default=4, help="client threads of the served profile (default 4)")
    parser.add_argument(
        "--served-seconds", type=float, default=3.0, help="served load per target under cProfile (default 3 s; 0: skip)"
    )
    parser.add_argument(
        "--log-level", default="error", choices=("debug", "info", "warning", "error"), help="log level (default error)"
    )
    parser.add_argument("--time-limit", type=float, default=180.0, help="hard limit of the whole run in seconds")
    args = parser.parse_args(argv)
    for name in ("calls", "repeats", "profile_calls"):
        if not 1 <= getattr(args, name) <= 1_000_000:
            parser.error(f"--{name.replace('_', '-')} must be 1 to 1000000")
    if not 1 <= args.characters <= 64:
        parser.error("--characters must be 1 to 64")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = Deadline(args.time_limit)
    from charter.v1 import authorization_service_pb2 as az
    from charter_server import logs
    from charter_server.api.authorization import authorize_command
    from charter_server.domain.models import Principal, Role

    def authorize(principal: Principal, request: az.AuthorizeRequest) -> Any:
        """As the servicer calls the service: the request converted (and digested) first."""
        return service.authorize(principal, authorize_command(request))

    logs.configure(log_format="json", level=args.log_level)
    print(f"profile_authorize: {args.characters} declared character(s), SQLite; {machine()}", flush=True)
    profiles = ThreadProfiles()
    if args.served_seconds > 0:
        profiles.install()  # before any server thread starts
    try:
        with (
            fresh_database("sqlite") as url,
            charter_server(url, args.log_level) as server,
            stack_server(server) as stack_address,
        ):
            # Left installed: the servers' pool threads start on their first calls.
            world = build_world(server, args.characters)
            service = server.services.authorization
            principal = Principal(world.generator_key_id, Role.GENERATOR, licensee_id=world.licensee_id)
            requests = {
                "declared": az.AuthorizeRequest.FromString(world.declared_request),
                "declared + prompt": az.AuthorizeRequest.FromString(world.prompt_request),
            }
            for label, request in requests.items():
                for _ in range(200):  # warm: the view, the terms, the signer
                    response = authorize(principal, request)
                assert response.decision.allowed, response
                print(f"\n== {label}: µs per call, best of {args.repeats} x {args.calls} (in process, no gRPC)")
                for stage, operation in stages(server, world, request).items():
                    line(stage, f"{best_us(operation, args.calls, args.repeats, deadline):8.1f} µs")
                profiles.uninstall()  # plain threads here, not profiled ones
                for threads in (1, 4, 16):
                    cpu, system, wall = concurrent_cost(
                        partial(authorize, principal, request), threads, args.calls, deadline
                    )
                    line(
                        f"authorize from {threads} thread(s) at once",
                        f"{cpu:8.1f} µs CPU per call (sys {system:.1f}), {wall:.1f} µs wall per call",
                    )
                if args.served_seconds > 0:
                    profiles.install()
            for label, request in requests.items():
                deadline.check("profiling")
                profiler = cProfile.Profile()
                profiler.enable()
                for _ in range(args.profile_calls):
                    authorize(principal, request)
                profiler.disable()
                for order in ("tottime", "cumulative"):
                    out = io.StringIO()
                    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(args.top)
                    print(f"\n== cProfile, {label}, {args.profile_calls} calls, by {order}")
                    print(out.getvalue().split("\n\n", 1)[-1].rstrip())
            if args.served_seconds > 0:
                served(args, profiles, world, f"127.0.0.1:{server.port}", stack_address, deadline)
    except TimeLimitExceeded as error:
        print(f"profile_authorize: FAILED: {error}", file=sys.stderr)
        return 2
    finally:
        deadline.cancel()
    return 0


if __name__ == "__main__":
    sys.exit(main())
