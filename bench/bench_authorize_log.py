"""Benchmark: ``Authorize`` with its receipts logged in the transparency log, next to without.

The same server (SQLite, warm) serves interleaved rounds of ``Authorize`` load from a client
process, alternately with the receipt log on (as in production: each signed receipt is buffered
and appended in batches by a thread of its own, then integrated by the sequencer) and off (the
service's receipt log detached for the round). It prints requests/s per round and the ratio of
the medians (target: on >= 0.95 x off).

In one more round under the same load (not counted in the ratio: its polling is load too), a
probe in this process authorizes every ``--probe-interval`` seconds and polls
``TransparencyService/GetInclusionProof`` with the receipt's digest until it is integrated: the
integration delay, p50 and p99 (target: p99 <= 1 s).

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
from _common import Deadline, TimeLimitExceeded, fresh_database, line, machine
from bench_authorize import AUTHORIZE_METHOD, LoadSpec, build_world, charter_server, client_process, percentile
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import transparency_service_pb2 as ts
from charter.v1 import transparency_service_pb2_grpc as ts_grpc
from charter_server import logs

TARGET_RATIO = 0.95
TARGET_DELAY_SECONDS = 1.0


def probe(
    address: str, request: bytes, metadata: tuple[tuple[str, str], ...], stop: threading.Event, every: float
) -> list[float]:
    """Integration delays (seconds) of receipts signed while ``stop`` is not set."""
    delays: list[float] = []
    with grpc.insecure_channel(address) as channel:
        authorize = channel.unary_unary(AUTHORIZE_METHOD)
        proofs = ts_grpc.TransparencyServiceStub(channel)
        while not stop.wait(every) and len(delays) < 10_000:
            answer = az.AuthorizeResponse.FromString(authorize(request, metadata=metadata, timeout=10))
            signed = time.monotonic()
            digest = hashlib.sha256(answer.receipt.payload).digest()
            while time.monotonic() - signed < 10:
                try:
                    proofs.GetInclusionProof(
                        ts.GetInclusionProofRequest(receipt_digest=digest), metadata=metadata, timeout=10
                    )
                    delays.append(time.monotonic() - signed)
                    break
                except grpc.RpcError as error:
                    if error.code() != grpc.StatusCode.NOT_FOUND:
                        raise
                    time.sleep(0.01)
    return delays


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=6, help="rounds per mode (default 6)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per round (default 5)")
    parser.add_argument("--max-calls", type=int, default=200_000, help="calls per round at most")
    parser.add_argument("--threads", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--probe-interval", type=float, default=0.1, help="seconds between probes (default 0.1)")
    parser.add_argument("--time-limit", type=float, default=600.0, help="hard limit of the whole run in seconds")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = Deadline(args.time_limit)
    logs.configure(log_format="json", level="warning")
    print(f"bench_authorize_log: {args.rounds} rounds x 2 of {args.seconds:g} s, {args.threads} threads; {machine()}")
    client = client_process()
    rates: dict[str, list[float]] = {"off": [], "on": []}
    delays: list[float] = []
    try:
        with fresh_database("sqlite") as url, charter_server(url, "warning") as server:
            world = build_world(server, 1)
            address = f"127.0.0.1:{server.port}"
            authorization = server.services.authorization
            # The service's own receipt log, detached for the "off" rounds (what logging costs).
            receipt_log = authorization._receipt_log

            def measure(mode: str, record: bool, probing: bool = False) -> None:
                deadline.check(f"measuring {mode}")
                authorization._receipt_log = receipt_log if mode == "on" else None
                spec = LoadSpec(
                    address,
                    AUTHORIZE_METHOD,
                    world.declared_request,
                    world.metadata,
                    args.threads,
                    args.max_calls,
                    min(args.seconds, deadline.remaining()),
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
                result = client.run(spec)
                stop.set()
                if prober.is_alive() or prober.ident is not None:
                    prober.join(timeout=30)
                if result.errors:
                    raise AssertionError(f"{mode}: {result.errors} failed calls, the first {result.first_error}")
                if record:
                    rates[mode].append(result.per_second)
                delays.extend(found)

            measure("on", record=False)  # warm up
            measure("off", record=False)
            for number in range(args.rounds):
                for mode in ("off", "on") if number % 2 == 0 else ("on", "off"):
                    measure(mode, record=True)
                print(f"round {number + 1}: off {rates['off'][-1]:,.0f}/s, on {rates['on'][-1]:,.0f}/s", flush=True)
            # The delay under the same load, in a round of its own: the probe's polling is load too.
            measure("on", record=False, probing=True)
            authorization._receipt_log = receipt_log
    except TimeLimitExceeded as error:
        print(f"bench_authorize_log: FAILED: {error}", file=sys.stderr)
        return 2
    finally:
        client.close()
        deadline.cancel()
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    ratio = on / off
    line("authorize, log off", f"{off:,.0f}/s (median of {len(rates['off'])} rounds)")
    line("authorize, log on", f"{on:,.0f}/s (median of {len(rates['on'])} rounds)")
    line("ratio on / off", f"{ratio:.3f} (target >= {TARGET_RATIO})")
    ordered = sorted(delays)
    if ordered:
        p50, p99 = percentile(ordered, 0.5), percentile(ordered, 0.99)
        line(
            "integration delay",
            f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms over {len(ordered)} receipts "
            f"(target p99 <= {TARGET_DELAY_SECONDS:g} s)",
        )
        ok_delay = p99 <= TARGET_DELAY_SECONDS
    else:
        ok_delay = False
    return 0 if ratio >= TARGET_RATIO and ok_delay else 1


if __name__ == "__main__":
    sys.exit(main())
