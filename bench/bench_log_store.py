"""Benchmark: the transparency log's proofs served from storage, on SQLite and PostgreSQL.

Builds a log of ``--entries`` leaves (default 10 million) straight into the database's tiles
(``log_tiles``, the layout the sequencer writes: C2SP tiles of 256 hashes, every level), with a
signed checkpoint and the head, through the migrations' schema. The leaves are the leaf hashes of
small entries ``entry <i>``; only the entries the benchmark proves are stored as rows (so building
stays quick), each checked by the server against its leaf in the tiles as in production. Then it
times, interleaved round by round, the server's own calls (``TransparencyLog``, as the servicer
calls them, minus the gRPC framing):

* ``inclusion``: the inclusion proof of an entry by index in the latest tree (the entry row, its
  tiles, the proof), a different random entry every call, so its level-0 tile is never in the
  server's tile cache (the worst case: a proof of a recent receipt finds its tiles cached);
* ``consistency``: the consistency proof between a random older size and the latest one;
* ``checkpoint``: the latest checkpoint with its root recomputed from the stored tiles;

and, as the references of the same run, one primary-key read of a tile row (the cheapest query
the store answers) and one RFC 9162 node hash (SHA-256 of 65 bytes; a cold proof computes about
500 inside its tiles). The server's time of a call is its wall time here (what a caller waits);
on a shared machine that is mostly waiting for a CPU, so the thread's CPU time of each call is
printed too, and the load average with every backend's figures. It prints p50 and p99 of both per
call and the ratio to the tile read, against the target of 5 ms at p99; the tile bytes per entry
(the tree) and, from a second, small log of real decision entries written by the real sequencer,
the bytes per entry of the entry rows and their indexes. Every loop is bounded in count and the
whole run by ``--time-limit``.

    .venv/bin/python bench/bench_log_store.py --backend both
    .venv/bin/python bench/bench_log_store.py --backend sqlite --entries 1000000
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence

from _common import (
    Deadline,
    Stopwatch,
    TimeLimitExceeded,
    fresh_database,
    line,
    load_average,
    machine,
    quiet_logs,
    today,
)
from charter import transparency
from charter.transparency.tiles import Tile, append_leaves
from charter.v1 import transparency_pb2 as tp
from charter_server.app import build_services, open_database
from charter_server.config import Settings
from charter_server.domain.clock import SystemClock
from charter_server.domain.models import Principal, Role, SigningKeyPurpose
from charter_server.domain.transparency import CheckpointRecord, PendingEntry
from charter_server.services.transparency.appender import build_entry, pending
from charter_server.services.transparency.reader import TransparencyLog
from charter_server.services.transparency.sequencer import LogHealth
from charter_server.storage.database import Database
from sqlalchemy import text

ORIGIN = "charter.bench.example/log"
BUILD_BATCH = 65_536
AUDITOR = Principal("key_bench", Role.AUDITOR)
TARGET_MS = 5.0
WARM_CALLS = 20


def entry_bytes(index: int) -> bytes:
    return b"entry %d" % index


class TileBuilder:
    """Appends leaves into in-memory edge tiles and hands completed tiles to the database."""

    def __init__(self) -> None:
        self.edges: dict[Tile, bytes] = {}
        self.size = 0
        self.root = transparency.EMPTY_ROOT

    def read(self, wanted: Sequence[Tile]) -> Mapping[Tile, bytes]:
        return {tile: self.edges[tile] for tile in wanted if tile in self.edges}

    def append(self, leaves: Sequence[bytes]) -> dict[Tile, bytes]:
        update = append_leaves(self.size, leaves, self.read)
        self.edges.update(update.tiles)
        self.size, self.root = update.size, update.root_hash
        # Keep only the partial tiles: the full ones never change again.
        full = {tile: content for tile, content in update.tiles.items() if len(content) == 256 * 32}
        for tile in full:
            self.edges.pop(tile, None)
        return update.tiles


def build(db: Database, entries: int, proved: set[int], deadline: Deadline) -> None:
    """Write the tiles of ``entries`` leaves, the rows of the ``proved`` entries, a checkpoint, the head."""
    settings = Settings(database_url=db.url, log_origin=ORIGIN)
    services = build_services(settings, db, SystemClock())
    services.keys.ensure_active_key(SigningKeyPurpose.TRANSPARENCY_LOG)
    builder = TileBuilder()
    written: dict[Tile, bytes] = {}
    while builder.size < entries:
        deadline.check(f"building, at {builder.size:,} entries")
        start = builder.size
        count = min(BUILD_BATCH, entries - start)
        leaves = [transparency.leaf_hash(entry_bytes(i)) for i in range(start, start + count)]
        written.update(builder.append(leaves))
        complete = {tile: content for tile, content in written.items() if len(content) == 256 * 32}
        with db.uow(write=True) as uow:
            uow.log.write_tiles(complete)
            rows = [i for i in range(start, start + count) if i in proved]
            for index in rows:
                uow.log.add_entries(index, [PendingEntry(entry_bytes(index), leaves[index - start])], 0)
            uow.commit()
        written = {tile: content for tile, content in written.items() if tile not in complete}
    with db.uow(write=True) as uow:
        uow.log.write_tiles(builder.edges)
        signer = services.keys.signer(uow, SigningKeyPurpose.TRANSPARENCY_LOG)
        note = transparency.sign_checkpoint(
            transparency.Checkpoint(ORIGIN, builder.size, builder.root),
            transparency.NoteSigner(ORIGIN, signer.signing_key),
        )
        uow.log.add_checkpoint(CheckpointRecord(builder.size, builder.root, note, signer.key_id, 0))
        uow.log.set_head(builder.size, builder.root)
        uow.commit()


def relation_bytes(db: Database, table: str) -> int:
    """The bytes a table takes with its indexes."""
    with db.uow() as uow:
        if db.dialect.name == "postgresql":
            return int(uow.session.execute(text("SELECT pg_total_relation_size(:t)"), {"t": table}).scalar_one())
        names = [
            table,
            *uow.session.execute(
                text("SELECT name FROM sqlite_master WHERE tbl_name = :t AND type = 'index'"), {"t": table}
            ).scalars(),
        ]
        total = 0
        for name in names:
            found = uow.session.execute(text("SELECT SUM(pgsize) FROM dbstat WHERE name = :n"), {"n": name}).scalar()
            total += int(found or 0)
        return total


def entry_overhead(backend: str, count: int) -> float:
    """Bytes per entry of the entry rows and their indexes, for real decision entries."""
    with fresh_database(backend) as url:
        db = open_database(Settings(database_url=url, migrate=True))
        try:
            services = build_services(Settings(database_url=url), db, SystemClock())
            services.keys.ensure_active_key(SigningKeyPurpose.TRANSPARENCY_LOG)
            with db.uow(write=True) as uow:
                for start in range(0, count, 5000):
                    batch = []
                    for _ in range(min(5000, count - start)):
                        digest = os.urandom(32)
                        message = tp.DecisionLogged(
                            receipt_id="rcp_" + os.urandom(16).hex(),
                            receipt_digest=digest,
                            licensee_id="lic_" + os.urandom(16).hex(),
                            character_id="chr_" + os.urandom(16).hex(),
                            rights_holder_id="rh_" + os.urandom(16).hex(),
                            allowed=True,
                            grant_id="grt_" + os.urandom(16).hex(),
                            terms_version=3,
                        )
                        entry = build_entry(
                            "decision", message, when=SystemClock().now(), actor_key_id="key_" + os.urandom(16).hex()
                        )
                        batch.append(
                            pending(
                                entry,
                                rights_holder_id=message.rights_holder_id,
                                licensee_id=message.licensee_id,
                                receipt_digest=digest,
                            )
                        )
                    uow.log.add_pending(batch)
                uow.commit()
            while services.sequencer.integrate():
                pass
            if db.dialect.name == "postgresql":
                with db.engine.connect() as conn:
                    conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE log_entries"))
            return relation_bytes(db, "log_entries") / count
        finally:
            db.dispose()


def node_hash_us(rounds: int = 20, batch: int = 20_000) -> float:
    """Microseconds of one RFC 9162 node hash (SHA-256 of 65 bytes), the fastest of ``rounds``."""
    sha256, pair = hashlib.sha256, os.urandom(64)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(batch):
            sha256(b"\x01" + pair).digest()
        best = min(best, (time.perf_counter() - start) / batch)
    return best * 1e6


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_backend(backend: str, args: argparse.Namespace, deadline: Deadline) -> bool:
    rng = random.Random(14)
    proved = set(rng.sample(range(args.entries), args.proved))
    with fresh_database(backend) as url:
        db = open_database(Settings(database_url=url, migrate=True))
        try:
            with Stopwatch() as watch:
                build(db, args.entries, proved, deadline)
            line(f"{backend}: build", f"{watch.seconds:.1f} s for {args.entries:,} entries")
            tiles = relation_bytes(db, "log_tiles")
            line(f"{backend}: tiles", f"{tiles / args.entries:.1f} B per entry (table and index)")
            log = TransparencyLog(db, LogHealth())
            size = args.entries
            # Each proved once (a different level-0 tile every call, never cached).
            indexes = sorted(proved)
            rng.shuffle(indexes)

            def inclusion() -> object:
                return log.inclusion(AUDITOR, index=indexes.pop())

            def consistency() -> object:
                return log.consistency(rng.randrange(1, size), size)

            def checkpoint() -> object:
                return log.checkpoint()

            def reference() -> object:
                with db.uow() as uow:
                    return uow.log.read_tiles([Tile(0, rng.randrange(size // 256))])

            candidates: dict[str, Callable[[], object]] = {
                "tile read (reference)": reference,
                "inclusion": inclusion,
                "consistency": consistency,
                "checkpoint": checkpoint,
            }
            timings: dict[str, list[float]] = {name: [] for name in candidates}
            cpu: dict[str, list[float]] = {name: [] for name in candidates}
            for call in candidates.values():  # warm: connections, the tile cache's top tiles
                for _ in range(WARM_CALLS):
                    call()
            line(f"{backend}: measuring", load_average())
            for _ in range(args.rounds):
                deadline.check("measuring")
                for name, call in candidates.items():
                    for _ in range(args.batch):
                        start, start_cpu = time.perf_counter(), time.thread_time()
                        call()
                        cpu[name].append((time.thread_time() - start_cpu) * 1000)
                        timings[name].append((time.perf_counter() - start) * 1000)
            reference_p50 = statistics.median(timings["tile read (reference)"])
            ok = True
            for name, values in timings.items():
                p50, p99 = statistics.median(values), percentile(values, 0.99)
                cpu_p50, cpu_p99 = statistics.median(cpu[name]), percentile(cpu[name], 0.99)
                verdict = ""
                if name != "tile read (reference)":
                    within = "<=" if p99 <= TARGET_MS else ">"
                    verdict = f"  x{p50 / reference_p50:.1f} the reference; p99 {within} {TARGET_MS:g} ms"
                    ok = ok and p99 <= TARGET_MS
                line(
                    f"{backend}: {name}",
                    f"p50 {p50:.2f} ms, p99 {p99:.2f} ms (CPU p50 {cpu_p50:.2f} ms, p99 {cpu_p99:.2f} ms) "
                    f"over {len(values)} calls{verdict}",
                )
            line(f"{backend}: node hash (reference)", f"{node_hash_us():.2f} us; {load_average()}")
        finally:
            db.dispose()
    per_entry = entry_overhead(backend, args.overhead_entries)
    line(f"{backend}: entry rows", f"{per_entry:.0f} B per entry (a decision entry, its row and indexes)")
    return ok


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--entries", type=int, default=10_000_000, help="log size (default 10,000,000)")
    parser.add_argument("--proved", type=int, default=2000, help="entries stored as rows and proved (default 2,000)")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds (default 10)")
    parser.add_argument("--batch", type=int, default=100, help="calls per candidate per round (default 100)")
    parser.add_argument("--overhead-entries", type=int, default=20_000, help="entries of the overhead log")
    parser.add_argument("--time-limit", type=float, default=1500.0, help="hard limit of the whole run in seconds")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.entries < 512 or args.rounds < 1 or args.batch < 1:
        print("bench_log_store: --entries from 512, --rounds and --batch from 1", file=sys.stderr)
        return 2
    if args.proved < args.rounds * args.batch + WARM_CALLS or args.proved > args.entries // 2:
        print("bench_log_store: --proved from rounds x batch + 20 to half the entries", file=sys.stderr)
        return 2
    quiet_logs()
    deadline = Deadline(args.time_limit)
    print(
        f"bench_log_store: {today()}, {args.entries:,} entries; limit {args.time_limit:g} s; {machine()}; "
        f"{load_average()}",
        flush=True,
    )
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    try:
        results = [run_backend(backend, args, deadline) for backend in backends]
    except TimeLimitExceeded as error:
        print(f"bench_log_store: FAILED: {error}", file=sys.stderr)
        return 2
    finally:
        deadline.cancel()
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
