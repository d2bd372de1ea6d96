"""Where ``UsageService.report`` (``ReportUsage``) spends its time, in process, per backend.

Not a benchmark: it builds the world of ``bench_usage.py`` (the same rights holders, characters,
terms, grants and generator key, through the real services) on a fresh database of ``--backend``,
makes ``--batches`` batches of ``--batch-size`` records (``--per-receipt`` records per receipt)
before anything is timed, then calls ``UsageService.report`` directly, without gRPC: a few
batches to warm up, ``--timed`` batches timed plainly, and the rest under cProfile. It prints
records/s in process, the cumulative time of the steps that matter per batch (receipt checks,
each database statement, the commit) and the top functions by own and by cumulative time.

    .venv/bin/python bench/profile_usage.py                       # SQLite, about 20 s
    .venv/bin/python bench/profile_usage.py --backend postgresql
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from collections.abc import Sequence

from _common import Deadline, TimeLimitExceeded, fresh_database, line, machine
from bench_authorize import charter_server
from bench_usage import build_world
from charter.v1 import usage_service_pb2 as us
from charter_server import logs
from charter_server.api.convert_usage import usage_records
from charter_server.domain.models import Principal

# (label, file suffix, function name) of the steps reported per batch, by cumulative time.
STEPS = (
    ("report (the whole call)", "usage.py", "report"),
    ("  check records (_entry, per record)", "usage.py", "_entry"),
    ("    verify_receipt (per record)", "receipts.py", "verify_receipt"),
    ("  the transaction (_record)", "usage.py", "_record"),
    ("    lock_rights_holders", "repositories/statements.py", "lock_rights_holders"),
    ("    closed_periods", "repositories/statements.py", "closed_periods"),
    ("    accepted (read the keys)", "repositories/usage.py", "accepted"),
    ("    add_new (insert the records)", "repositories/usage.py", "add_new"),
    ("    consume_receipt (per record)", "repositories/usage.py", "consume_receipt"),
    ("    remove", "repositories/usage.py", "remove"),
    ("    roll_up (the three daily roll-ups)", "repositories/usage.py", "roll_up"),
    ("    commit", "uow.py", "commit"),
)


def steps(stats: pstats.Stats, batches: int) -> None:
    """Print the cumulative time of each step in ``STEPS``, per batch."""
    table = stats.stats  # type: ignore[attr-defined]
    for label, suffix, name in STEPS:
        calls, cumulative = 0, 0.0
        for (filename, _line, function), (_cc, primitive, _tt, ct, _callers) in table.items():
            if function == name and filename.endswith(suffix):
                calls += primitive
                cumulative += ct
        line(label, f"{cumulative / batches * 1e3:8.2f} ms per batch  ({calls / batches:6.1f} calls per batch)")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite", help="default sqlite")
    parser.add_argument("--batches", type=int, default=60, help="batches made (default 60)")
    parser.add_argument("--timed", type=int, default=20, help="of which timed without the profiler (default 20)")
    parser.add_argument("--batch-size", type=int, default=100, help="records per batch (default 100)")
    parser.add_argument("--per-receipt", type=int, default=10, help="characters per Authorize (default 10)")
    parser.add_argument("--top", type=int, default=25, help="functions printed per listing (default 25)")
    parser.add_argument("--time-limit", type=float, default=180.0, help="hard limit of the whole run in seconds")
    args = parser.parse_args(argv)
    if not 10 <= args.batches <= 2_000 or not 1 <= args.timed <= args.batches - 6:
        parser.error("need 10 <= --batches <= 2000 and 1 <= --timed <= --batches - 6")
    if not 1 <= args.batch_size <= 1000 or not 1 <= args.per_receipt <= 40 or args.batch_size % args.per_receipt:
        parser.error("--batch-size (1-1000) must be a multiple of --per-receipt (1-40)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = Deadline(args.time_limit)
    logs.configure(log_format="json", level="warning")
    print(f"profile_usage: {args.backend}, batches of {args.batch_size} records; {machine()}", flush=True)
    try:
        with fresh_database(args.backend) as url, charter_server(url, "warning") as server:
            world = build_world(server, holders=4, characters=40, seed=6)
            made = world.batches(args.batches, args.batch_size, args.per_receipt)
            batches = [us.ReportUsageRequest.FromString(request) for request in made]
            service = server.services.usage

            def report(principal: Principal, request: us.ReportUsageRequest) -> None:
                # The conversion from the wire is timed with the service, as the servicer runs them.
                service.report(principal, usage_records(request))

            warm, timed, profiled = batches[:5], batches[5 : 5 + args.timed], batches[5 + args.timed :]
            for batch in warm:
                report(world.principal, batch)
            deadline.check("timing")
            start = time.perf_counter()
            for batch in timed:
                report(world.principal, batch)
            seconds = time.perf_counter() - start
            line(
                "in process, no profiler",
                f"{len(timed) * args.batch_size / seconds:8,.0f} records/s, "
                f"{seconds / len(timed) * 1e3:.1f} ms per batch",
            )
            deadline.check("profiling")
            profiler = cProfile.Profile()
            profiler.enable()
            for batch in profiled:
                report(world.principal, batch)
            profiler.disable()
    except TimeLimitExceeded as error:
        print(f"profile_usage: FAILED: {error}", file=sys.stderr)
        return 2
    finally:
        deadline.cancel()
    stats = pstats.Stats(profiler)
    print(f"\n== under cProfile, {len(profiled)} batches: cumulative time per batch (cProfile inflates it)")
    steps(stats, len(profiled))
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(args.top)
        print(f"\n== cProfile, by {order}")
        print(out.getvalue().split("\n\n", 1)[-1].rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
