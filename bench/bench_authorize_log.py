"""Benchmark: ``Authorize`` with its receipts logged in the transparency log, next to without.

The same server (SQLite, warm, in this process) serves interleaved rounds of ``Authorize`` load
from a client process, alternately with the receipt log on (as in production: each signed receipt
is buffered; the sequencer takes the buffer into its batches, or a thread of its own appends it to
the pending entries when another replica sequences) and off (the service's receipt log detached
for the round). It prints requests/s per round and the ratio of the medians (target: on >= 0.95 x
off), the median of the per-round ratios, and the server's CPU time per call in each mode (this
process's CPU time over the round, divided by the calls: steadier than throughput on a shared
machine, and what the log costs per decision is the difference).

The server runs its log as ``charter-server serve`` does, in a process of its own
(``charter_server.log_process``); ``--log-threads`` runs it on two threads of the server's process
instead (``log_process`` off), as before that process existed. It also prints the CPU time of the
log's own work (the log process, from ``/proc/PID/stat``; or the sequencer and the receipt thread,
from ``/proc/self/task``) per call: what the log costs by itself, apart from what its threads cost
the others (the GIL, the caches). After each "on" round the measurement waits for the log to
confirm the last receipts, so their work is not charged to the next "off" round.

The integration delay (target: p99 <= 1 s) is measured twice:

* for every receipt signed in the "on" rounds, from the entries the log holds afterwards: its
  ``event_time`` (the receipt's ``decide_time``) to the integration time the sequencer recorded
  with it (the batch's time, just before its commit);
* end to end in one more round under the same load (not counted in the ratio: its polling is load
  too): a probe in this process authorizes every ``--probe-interval`` seconds and polls
  ``TransparencyService/GetInclusionProof`` with each receipt's digest until it is proved.

The load average is printed at the start and the end. Every loop is bounded in count and time.

    .venv/bin/python bench/bench_authorize_log.py
    .venv/bin/python bench/bench_authorize_log.py --rounds 3 --seconds 3
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import threading
import time
from collections.abc import Sequence

import grpc
from _common import Deadline, TimeLimitExceeded, fresh_database, line, load_average, machine, today
from bench_authorize import (
    AUTHORIZE_METHOD,
    LoadSpec,
    build_world,
    charter_server,
    client_process,
    percentile,
    process_cpu_seconds,
    thread_cpu_seconds,
)
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import transparency_pb2 as tp
from charter.v1 import transparency_service_pb2 as ts
from charter.v1 import transparency_service_pb2_grpc as ts_grpc
from charter_server import logs
from charter_server.app import CharterServer
from charter_server.log_process import LogProcess
from charter_server.services.transparency.receipts import ReceiptLog

TARGET_RATIO = 0.95
TARGET_DELAY_SECONDS = 1.0
LOG_THREADS = ("charter-log-sequencer", "charter-receipt-log")
"""The threads that do the log's work for the receipts (`thread_cpu_seconds` names)."""


def probe(
    address: str, request: bytes, metadata: tuple[tuple[str, str], ...], stop: threading.Event, every: float
) -> list[float]:
    """End-to-end integration delays (seconds) of receipts signed while ``stop`` is not set.

    A receipt is signed every ``every`` seconds whatever the delays, and every receipt not proved
    yet is polled every 10 ms; each is given up after 10 s (counted as 10 s)."""
    delays: list[float] = []
    waiting: list[tuple[bytes, float]] = []  # digest, when the answer came
    next_at = time.monotonic()
    with grpc.insecure_channel(address) as channel:
        authorize = channel.unary_unary(AUTHORIZE_METHOD)
        proofs = ts_grpc.TransparencyServiceStub(channel)
        for _ in range(1_000_000):  # 10 ms per turn: bounded by the stop event and 10 s per receipt
            now = time.monotonic()
            if stop.is_set() and not waiting:
                break
            if not stop.is_set() and now >= next_at and len(delays) + len(waiting) < 10_000:
                answer = az.AuthorizeResponse.FromString(authorize(request, metadata=metadata, timeout=10))
                waiting.append((hashlib.sha256(answer.receipt.payload).digest(), time.monotonic()))
                next_at = now + every
            still: list[tuple[bytes, float]] = []
            for digest, signed in waiting:
                try:
                    proofs.GetInclusionProof(
                        ts.GetInclusionProofRequest(receipt_digest=digest), metadata=metadata, timeout=10
                    )
                    delays.append(time.monotonic() - signed)
                except grpc.RpcError as error:
                    if error.code() != grpc.StatusCode.NOT_FOUND:
                        raise
                    if time.monotonic() - signed >= 10:
                        delays.append(10.0)
                    else:
                        still.append((digest, signed))
            waiting = still
            time.sleep(0.01)
    return delays


def logged_delays(server: CharterServer, sink: ReceiptLog | LogProcess, deadline: Deadline) -> tuple[list[float], str]:
    """Seconds from each decision entry's ``event_time`` to its recorded integration time, for
    every decision entry in the log (at most 2 million), once the buffer and the pending entries
    are integrated (waiting at most 10 s); and, for the receipts that took over 1 s, how many and
    over how long their decisions were spread (one stall or delays all along the run)."""
    until = time.monotonic() + min(10.0, deadline.remaining())
    while time.monotonic() < until:
        with server.db.uow() as uow:
            if not sink.waiting() and not uow.log.has_pending():
                break
        time.sleep(0.05)
    time.sleep(0.5)  # the batch under way
    delays: list[float] = []
    late: list[float] = []  # decision times (ms) of the receipts integrated over 1 s later
    with server.db.uow() as uow:
        size = uow.log.head().tree_size
    for start in range(0, min(size, 2_000_000), 10_000):
        deadline.check("reading the log's entries")
        with server.db.uow() as uow:
            rows = uow.log.entries(start, min(size, start + 10_000))
        for row in rows:
            entry = tp.LogEntry.FromString(row.entry)
            if entry.WhichOneof("change") == "decision":
                decided_ms = entry.event_time.seconds * 1000 + entry.event_time.nanos / 1e6
                delays.append((row.integrate_ms - decided_ms) / 1000)
                if delays[-1] > TARGET_DELAY_SECONDS:
                    late.append(decided_ms)
    spread = f"{len(late):,} receipts over {TARGET_DELAY_SECONDS:g} s"
    if late:
        spread += f", decided within {(max(late) - min(late)) / 1000:.1f} s of each other"
    return delays, spread


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=6, help="rounds per mode (default 6)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per round (default 5)")
    parser.add_argument("--max-calls", type=int, default=200_000, help="calls per round at most")
    parser.add_argument("--threads", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--probe-interval", type=float, default=0.1, help="seconds between probes (default 0.1)")
    parser.add_argument("--probe-seconds", type=float, default=15.0, help="length of the probe's round (default 15)")
    parser.add_argument("--time-limit", type=float, default=600.0, help="hard limit of the whole run in seconds")
    parser.add_argument(
        "--log-threads", action="store_true", help="the log on the server's threads, not in a process of its own"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = Deadline(args.time_limit)
    logs.configure(log_format="json", level="warning")
    print(
        f"bench_authorize_log: {today()}, {args.rounds} rounds x 2 of {args.seconds:g} s, {args.threads} threads, "
        f"the log {'on threads of the server' if args.log_threads else 'in a process of its own'}; "
        f"{machine()}; {load_average()}",
        flush=True,
    )
    client = client_process()
    rates: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}  # server CPU seconds per call
    log_cpu: dict[str, list[float]] = {"off": [], "on": []}  # the log's CPU seconds per call
    probed: list[float] = []
    logged: list[float] = []
    late = ""
    try:
        with (
            fresh_database("sqlite") as url,
            charter_server(url, "warning", log_process=not args.log_threads) as server,
        ):
            world = build_world(server, 1)
            address = f"127.0.0.1:{server.port}"
            authorization = server.services.authorization
            # The service's own receipt log, detached for the "off" rounds (what logging costs).
            receipt_log = authorization._receipt_log
            assert isinstance(receipt_log, ReceiptLog | LogProcess)

            def measure(mode: str, record: bool, probing: bool = False) -> None:
                deadline.check(f"measuring {mode}")
                authorization._receipt_log = receipt_log if mode == "on" else None
                seconds = args.probe_seconds if probing else args.seconds
                spec = LoadSpec(
                    address,
                    AUTHORIZE_METHOD,
                    world.declared_request,
                    world.metadata,
                    args.threads,
                    args.max_calls,
                    min(seconds, deadline.remaining()),
                )
                stop = threading.Event()
                found: list[float] = []
                prober = threading.Thread(
                    target=lambda: found.extend(
                        probe(address, world.declared_request, world.metadata, stop, args.probe_interval)
                    )
                )
                if probing:
                    prober.start()
                started, threads = time.process_time(), thread_cpu_seconds()
                log_pid = receipt_log.pid if isinstance(receipt_log, LogProcess) else None
                in_process = process_cpu_seconds(log_pid)
                result = client.run(spec)
                if mode == "on":
                    # The log's work for this round's last receipts is done in this round, not the next
                    # (the buffer is empty once the sequencer's batch that took it has committed).
                    settle = time.monotonic() + 2.0
                    while receipt_log.waiting() and time.monotonic() < settle:
                        time.sleep(0.01)
                used = time.process_time() - started
                after = thread_cpu_seconds()
                in_log = sum(after.get(name, 0.0) - threads.get(name, 0.0) for name in LOG_THREADS)
                in_log += process_cpu_seconds(log_pid) - in_process
                stop.set()
                if prober.ident is not None:
                    prober.join(timeout=30)
                if result.errors:
                    raise AssertionError(f"{mode}: {result.errors} failed calls, the first {result.first_error}")
                if record:
                    rates[mode].append(result.per_second)
                    cpu[mode].append(used / max(1, result.calls))
                    log_cpu[mode].append(in_log / max(1, result.calls))
                probed.extend(found)

            measure("on", record=False)  # warm up
            measure("off", record=False)
            for number in range(args.rounds):
                for mode in ("off", "on") if number % 2 == 0 else ("on", "off"):
                    measure(mode, record=True)
                print(
                    f"round {number + 1}: off {rates['off'][-1]:,.0f}/s ({cpu['off'][-1] * 1e6:.0f} us CPU per call), "
                    f"on {rates['on'][-1]:,.0f}/s ({cpu['on'][-1] * 1e6:.0f} us; the log's own "
                    f"{log_cpu['on'][-1] * 1e6:.0f}); {load_average()}",
                    flush=True,
                )
            # The delay under the same load, in a round of its own: the probe's polling is load too.
            measure("on", record=False, probing=True)
            authorization._receipt_log = receipt_log
            logged, late = logged_delays(server, receipt_log, deadline)
    except TimeLimitExceeded as error:
        print(f"bench_authorize_log: FAILED: {error}", file=sys.stderr)
        return 2
    finally:
        client.close()
        deadline.cancel()
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    ratio = on / off
    paired = statistics.median(a / b for a, b in zip(rates["on"], rates["off"], strict=True))
    cpu_off, cpu_on = statistics.median(cpu["off"]), statistics.median(cpu["on"])
    line("authorize, log off", f"{off:,.0f}/s (median of {len(rates['off'])} rounds), {cpu_off * 1e6:.0f} us CPU/call")
    line("authorize, log on", f"{on:,.0f}/s (median of {len(rates['on'])} rounds), {cpu_on * 1e6:.0f} us CPU/call")
    line("ratio on / off", f"{ratio:.3f} (target >= {TARGET_RATIO}); median of the per-round ratios {paired:.3f}")
    line("server CPU per call on / off", f"{cpu_on / cpu_off:.3f} (+{(cpu_on - cpu_off) * 1e6:.0f} us per decision)")
    if not args.log_threads:
        both = cpu_on + statistics.median(log_cpu["on"])
        line(
            "with the log process's CPU",
            f"{both / cpu_off:.3f} (+{(both - cpu_off) * 1e6:.0f} us per decision, in either process)",
        )
    line(
        "the log's own CPU per call",
        f"on {statistics.median(log_cpu['on']) * 1e6:.0f} us, off {statistics.median(log_cpu['off']) * 1e6:.0f} us "
        f"(median of the rounds; {'its threads' if args.log_threads else 'its process'}; 10 ms ticks)",
    )
    ok_delay = True
    for label, values in (("integration delay, logged", logged), ("integration delay, end to end", probed)):
        ordered = sorted(values)
        if not ordered:
            line(label, "no receipts")
            ok_delay = False
            continue
        p50, p99 = percentile(ordered, 0.5), percentile(ordered, 0.99)
        line(
            label,
            f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms "
            f"over {len(ordered):,} receipts (target p99 <= {TARGET_DELAY_SECONDS:g} s)",
        )
        ok_delay = ok_delay and p99 <= TARGET_DELAY_SECONDS
    line("late receipts", late)
    line("load", load_average())
    return 0 if ratio >= TARGET_RATIO and ok_delay else 1


if __name__ == "__main__":
    sys.exit(main())
