"""Benchmark: transparency log proofs and checkpoints (no server), next to raw SHA-256 and Ed25519.

Builds a log of ``--entries`` random leaf hashes (default 10 million) as C2SP tiles in memory,
batch by batch as the sequencer will (``charter.transparency.tiles.append_leaves``), then
measures, interleaved round by round so that a noisy machine affects every candidate alike:

* the references: one RFC 9162 node hash (SHA-256 of 65 bytes) and one raw Ed25519 verify;
* proof generation from the tiles (``inclusion_proof``, ``consistency_proof``, ``root_hash``
  through ``TileNodeReader``) for random indexes and sizes near the top of the tree: the
  compute part of what the server does per proof request (the storage part is one query
  for at most two tiles per tile level, three levels at 10 million entries);
* proof verification (``verify_inclusion``, ``verify_consistency``);
* signing and verifying a checkpoint note;
* appending batches of 1,000 leaves to the big tree (the sequencer's tree work per batch).

It prints µs per operation (median over the rounds, and the p99 of single operations for proof
generation), each ratio to its reference (node hashes per operation, or Ed25519 verifies per
checkpoint verification), and the tile storage per entry. Every loop is bounded in count, and
the whole run by ``--time-limit``.

    .venv/bin/python bench/bench_transparency.py
    .venv/bin/python bench/bench_transparency.py --entries 1000000 --rounds 10
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence

import nacl.signing
from _common import Deadline, Stopwatch, TimeLimitExceeded, line, machine, today
from charter.transparency import merkle
from charter.transparency.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from charter.transparency.note import NoteSigner
from charter.transparency.tiles import Tile, TileHashCache, TileNodeReader, append_leaves

Operation = Callable[[], object]
ORIGIN = "charter.bench.example/log"
BUILD_BATCH = 100_000


class MemoryTiles:
    """Tiles in a dict: the store `append_leaves` writes and `TileNodeReader` reads."""

    def __init__(self) -> None:
        self.tiles: dict[Tile, bytes] = {}
        self.size = 0
        self.root = merkle.EMPTY_ROOT

    def read(self, wanted: Sequence[Tile]) -> Mapping[Tile, bytes]:
        return {tile: self.tiles[tile] for tile in wanted if tile in self.tiles}

    def append(self, leaves: Sequence[bytes]) -> None:
        update = append_leaves(self.size, leaves, self.read)
        self.tiles.update(update.tiles)
        self.size, self.root = update.size, update.root_hash


def random_leaves(rng: random.Random, count: int) -> list[bytes]:
    raw = rng.randbytes(32 * count)
    return [raw[i : i + 32] for i in range(0, len(raw), 32)]


def per_op_micros(operation: Operation, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        operation()
    return (time.perf_counter() - start) / count * 1e6


def single_micros(operation: Operation) -> float:
    start = time.perf_counter()
    operation()
    return (time.perf_counter() - start) * 1e6


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=10_000_000, help="log size (default 10,000,000)")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds (default 20)")
    parser.add_argument("--batch", type=int, default=200, help="operations per candidate per round (default 200)")
    parser.add_argument("--time-limit", type=float, default=600.0, help="hard limit of the whole run in seconds")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not 2 <= args.entries < 1 << 40 or args.rounds < 1 or args.batch < 1:
        print("bench_transparency: --entries from 2, --rounds and --batch from 1", file=sys.stderr)
        return 2
    deadline = Deadline(args.time_limit)
    print(machine(), flush=True)
    rng = random.Random(14)
    store = MemoryTiles()
    print(f"bench_transparency: building {args.entries:,} entries; limit {args.time_limit:g} s", flush=True)
    try:
        with Stopwatch() as build:
            while store.size < args.entries:
                deadline.check(f"building, at {store.size:,} entries")
                store.append(random_leaves(rng, min(BUILD_BATCH, args.entries - store.size)))
        tile_bytes = sum(len(content) for content in store.tiles.values())
        line("build", f"{build.seconds:.1f} s ({args.entries / build.seconds:,.0f} leaves/s)")
        line("tiles", f"{len(store.tiles):,} tiles, {tile_bytes / args.entries:.2f} B of hashes per entry")

        reader = TileNodeReader(store.read)
        # The server shares one cache per process: the top tiles of the tree are then computed once.
        cached = TileNodeReader(store.read, cache=TileHashCache())
        size = store.size
        seed = rng.randbytes(32)
        signer = NoteSigner(ORIGIN, seed)
        note = sign_checkpoint(Checkpoint(ORIGIN, size, store.root), signer)
        verifier = signer.verifier
        raw_key = nacl.signing.VerifyKey(verifier.public_key)
        note_text = note[: note.rindex(b"\n\n") + 1]
        raw_signature = nacl.signing.SigningKey(seed).sign(note_text).signature
        left, right = rng.randbytes(32), rng.randbytes(32)

        def pick() -> tuple[int, int, int]:
            """A tree size near the top (any checkpoint a client may hold), an index, an older size."""
            tree = rng.randrange(size - size // 10, size + 1)
            return tree, rng.randrange(tree), rng.randrange(1, tree)

        def inclusion(nodes: merkle.NodeReader) -> Operation:
            def run() -> object:
                tree, index, _ = pick()
                return merkle.inclusion_proof(index, tree, nodes)

            return run

        def consistency(nodes: merkle.NodeReader) -> Operation:
            def run() -> object:
                tree, _, older = pick()
                return merkle.consistency_proof(older, tree, nodes)

            return run

        proofs = []
        for _ in range(args.batch):
            tree, index, older = pick()
            proofs.append(
                (
                    tree,
                    index,
                    older,
                    merkle.root_hash(tree, reader),
                    merkle.root_hash(older, reader),
                    merkle.inclusion_proof(index, tree, reader),
                    merkle.consistency_proof(older, tree, reader),
                )
            )
        leaf_hashes = {index: reader([merkle.Node(0, index)])[0] for _, index, *_ in proofs}
        cursor = {"next": 0}

        def next_proof() -> tuple[int, int, int, bytes, bytes, list[bytes], list[bytes]]:
            cursor["next"] = (cursor["next"] + 1) % len(proofs)
            return proofs[cursor["next"]]

        def verify_inclusion() -> None:
            tree, index, _, root, _, audit, _ = next_proof()
            merkle.verify_inclusion(leaf_hashes[index], index, tree, audit, root)

        def verify_consistency() -> None:
            tree, _, older, root, older_root, _, path = next_proof()
            merkle.verify_consistency(older, tree, path, older_root, root)

        candidates: dict[str, Operation] = {
            "SHA-256 node hash (reference)": lambda: hashlib.sha256(b"\x01" + left + right).digest(),
            "Ed25519 verify (reference)": lambda: raw_key.verify(note_text, raw_signature),
            "inclusion proof": inclusion(reader),
            "inclusion proof, shared cache": inclusion(cached),
            "consistency proof": consistency(reader),
            "consistency proof, shared cache": consistency(cached),
            "root hash": lambda: merkle.root_hash(pick()[0], reader),
            "verify inclusion": verify_inclusion,
            "verify consistency": verify_consistency,
            "sign checkpoint": lambda: sign_checkpoint(Checkpoint(ORIGIN, size, store.root), signer),
            "verify checkpoint": lambda: verify_checkpoint(note, origin=ORIGIN, verifiers=[verifier]),
        }
        samples: dict[str, list[float]] = {name: [] for name in candidates}
        singles: dict[str, list[float]] = {
            name: [] for name in ("inclusion proof", "inclusion proof, shared cache", "consistency proof")
        }
        appends: list[float] = []
        for number in range(args.rounds):
            for name, operation in candidates.items():
                deadline.check(f"round {number + 1}, {name}")
                samples[name].append(per_op_micros(operation, args.batch))
            for name, values in singles.items():
                values.extend(single_micros(candidates[name]) for _ in range(args.batch))
            batch = random_leaves(rng, 1000)
            appends.append(single_micros(lambda b=batch: store.append(b)))  # type: ignore[misc]
    except TimeLimitExceeded as error:
        print(f"bench_transparency: FAILED: {error}", file=sys.stderr)
        return 2
    finally:
        deadline.cancel()

    medians = {name: statistics.median(values) for name, values in samples.items()}
    sha, ed = medians["SHA-256 node hash (reference)"], medians["Ed25519 verify (reference)"]
    p99 = {name: sorted(values)[int(len(values) * 0.99) - 1] for name, values in singles.items()}
    for name, micros in medians.items():
        reference, unit = (ed, "Ed25519 verifies") if "checkpoint" in name else (sha, "node hashes")
        extra = f", p99 {p99[name]:.0f} µs" if name in p99 else ""
        line(name, f"{micros:9.2f} µs/op  = {micros / reference:7.1f} {unit}{extra}")
    append_us = statistics.median(appends)
    line("append 1,000 leaves", f"{append_us / 1000:9.2f} ms/batch = {append_us / sha:,.0f} node hashes")
    print(
        f"SUMMARY bench_transparency date={today()} entries={args.entries} "
        f"bytes_per_entry={tile_bytes / args.entries:.2f} sha_us={sha:.3f} ed25519_us={ed:.1f} "
        f"inclusion_us={medians['inclusion proof']:.0f} inclusion_p99_us={p99['inclusion proof']:.0f} "
        f"consistency_us={medians['consistency proof']:.0f} consistency_p99_us={p99['consistency proof']:.0f} "
        f"inclusion_cached_p99_us={p99['inclusion proof, shared cache']:.0f} "
        f"verify_inclusion_us={medians['verify inclusion']:.1f} "
        f"verify_checkpoint_ratio={medians['verify checkpoint'] / ed:.2f} "
        f"append_1000_ms={append_us / 1000:.1f} {machine()}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
