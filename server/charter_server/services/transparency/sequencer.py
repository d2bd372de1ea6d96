"""The sequencer: integrates pending entries into the tree in batches and signs checkpoints.

One replica of a deployment sequences at a time: it holds a lease in the ``log_head`` row, timed
by the database's clock and renewed on every batch; the others skip until it lapses (a replica
that stops releases it, so another takes over at once). The row's lock is held for the whole
batch, so even a replica whose lease lapsed mid-batch cannot integrate the same entries twice.

A batch reads the pending entries in the order they were appended (then, on the replica that holds
the lease, the decision receipts its own `ReceiptLog` buffered: they skip ``log_pending``), checks that the stored tiles
still recompute to the head the previous batch recorded (a tree that does not is never extended
nor signed: the log is marked inconsistent and serves ``DATA_LOSS``), appends the leaf hashes to
the tiles (``charter.transparency.tiles.append_leaves``), inserts the entries at their indexes,
signs a C2SP checkpoint of the new tree with the log key, and commits all of it at once.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import structlog
from charter.transparency import Checkpoint, NoteSigner, root_hash, sign_checkpoint
from charter.transparency.tiles import CorruptTiles, Tile, TileHashCache, TileNodeReader, TileReader, append_leaves

from charter_server.domain.errors import DataLoss, DomainError
from charter_server.domain.models import SigningKeyPurpose
from charter_server.domain.transparency import CheckpointRecord
from charter_server.services.keys import KeyService
from charter_server.services.transparency.receipts import Drain, ReceiptLog
from charter_server.storage.database import Database

log = structlog.get_logger(__name__)

BATCH_LIMIT = 5000
"""The most entries one batch integrates (a backlog is worked off batch after batch)."""
LEASE_SECONDS = 3.0
"""How long the sequencer's lease lasts without renewal: another replica takes over after it."""


class LogHealth:
    """Whether the stored log still recomputes to what was signed; once not, it stays so until
    an operator restores the log and restarts the server."""

    def __init__(self) -> None:
        self._problem: str | None = None
        self._lock = threading.Lock()
        self._listeners: list[Callable[[str], None]] = []

    def subscribe(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(problem)`` once, when the log is first found inconsistent (the server
        and its log process tell each other)."""
        self._listeners.append(listener)

    def fail(self, problem: str) -> None:
        """Record that the stored log does not match what was signed."""
        with self._lock:
            if self._problem is not None:
                return
            self._problem = problem
            log.error("transparency_log.inconsistent", problem=problem)
        for listener in self._listeners:
            listener(problem)

    @property
    def problem(self) -> str | None:
        """What is wrong, or None."""
        with self._lock:
            return self._problem

    def check(self) -> None:
        """Raise `DataLoss` if the log is inconsistent."""
        problem = self.problem
        if problem is not None:
            raise DataLoss(
                "the stored transparency log does not recompute to its signed checkpoint; nothing is served over it"
            )


class Sequencer:
    """Integrates pending entries every ``interval`` seconds on a thread of its own."""

    def __init__(
        self,
        db: Database,
        keys: KeyService,
        origin: str,
        health: LogHealth,
        *,
        interval: float = 0.2,
        lease_seconds: float = LEASE_SECONDS,
        batch_limit: int = BATCH_LIMIT,
        receipts: ReceiptLog | None = None,
    ) -> None:
        self._db = db
        self._keys = keys
        self._origin = origin
        self._health = health
        self._interval = interval
        self._lease_seconds = lease_seconds
        self._batch_limit = batch_limit
        self._receipts = receipts
        # The edge tiles' inner hashes, batch after batch: used only for the very bytes they were
        # computed from (a stored tile that differs is hashed again), so the check that the stored
        # tree recomputes to the head still reads and compares every edge tile, while hashing
        # only what was appended since.
        self._hashes = TileHashCache(max_tiles=64)
        self.holder = f"seq-{secrets.token_hex(8)}"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._renewed = -float("inf")  # when this replica last renewed its lease (monotonic)

    def start(self) -> None:
        """Start sequencing in the background."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="charter-log-sequencer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Integrate what is pending one last time, stop, and release the lease."""
        if self._thread is None:
            return
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self._thread = None
        self.release()

    def release(self) -> None:
        """Release the lease if this replica holds it, so another sequencer takes over at once."""
        self._renewed = -float("inf")
        try:
            with self._db.sequencer_uow() as uow:
                uow.log.release_lease(self.holder)
                uow.commit()
        except Exception:  # the database may be gone at shutdown; the lease then lapses by itself
            log.warning("transparency_log.lease_not_released", holder=self.holder)

    def _idle(self) -> bool:
        """Whether there is nothing to do now: nothing pending and our lease renewed recently.

        A read, so an idle log takes no write lock every tick (SQLite has one writer at a time).
        """
        if time.monotonic() - self._renewed > self._lease_seconds / 3:
            return False
        with self._db.uow() as uow:
            return not uow.log.has_pending()

    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            started = time.monotonic()
            try:
                # A backlog is worked off at once, batch after batch, not one batch per tick.
                while self.integrate() >= self._batch_limit and not self._stop.is_set():
                    pass
            except (DomainError, CorruptTiles) as error:
                log.warning("transparency_log.batch_failed", error=str(error))
            except Exception:
                log.exception("transparency_log.batch_failed")
            if stopping:
                return
            self._wake.wait(max(0.0, self._interval - (time.monotonic() - started)))
            self._wake.clear()

    def _renewed_now(self) -> None:
        self._renewed = time.monotonic()
        if self._receipts is not None:
            # This replica's receipts come to its batches while the lease is surely ours.
            self._receipts.hand_over(self._renewed + self._lease_seconds / 3)

    def _holding(self) -> bool:
        """Whether this replica renewed the lease recently (so it most likely still holds it)."""
        return time.monotonic() - self._renewed <= self._lease_seconds / 3

    def integrate(self) -> int:
        """Integrate one batch if this replica holds (or takes) the lease; return how many entries.

        Raises:
            DataLoss: The stored tiles do not recompute to the recorded head.
        """
        if self._health.problem is not None:
            return 0
        receipts = self._receipts
        if receipts is not None and receipts.waiting() and self._holding():
            # The receipts this replica buffered go into the batch itself (see `ReceiptLog`).
            with receipts.draining(self._batch_limit) as drain:
                return self._integrate(drain)
        if self._idle():
            return 0
        return self._integrate(None)

    def _integrate(self, drain: Drain | None) -> int:
        with self._db.sequencer_uow() as uow:
            head = uow.log.take_lease(self.holder, self._lease_seconds)
            if head is None:
                return 0
            batch = uow.log.pending(self._batch_limit)
            latest = uow.log.latest_checkpoint()
            if (
                not batch
                and not (drain and drain.entries)
                and latest is not None
                and latest.tree_size == head.tree_size
            ):
                uow.commit()  # the renewed lease
                self._renewed_now()
                return 0
            # The edge tiles the root is recomputed from are those the append extends: read once.
            read_tiles = _read_once(uow.log.read_tiles)
            reader = TileNodeReader(read_tiles, cache=self._hashes)
            try:
                recomputed = root_hash(head.tree_size, reader)
            except CorruptTiles as error:
                self._health.fail(f"the tiles of the tree of size {head.tree_size} are damaged: {error}")
                raise DataLoss("the stored tree is damaged") from error
            if recomputed != head.root_hash or (latest is not None and latest.root_hash != head.root_hash):
                self._health.fail(f"the stored tree of size {head.tree_size} does not recompute to its root")
                raise DataLoss("the stored tree does not recompute to its root")
            entries = [entry for _, entry in batch]
            if drain is not None:
                entries += drain.entries
                uow.decisions.add(drain.tallies)
            update = append_leaves(head.tree_size, [e.leaf_hash for e in entries], read_tiles, cache=self._hashes)
            now_ms = uow.log.now_ms()
            uow.log.write_tiles(update.tiles)
            uow.log.add_entries(head.tree_size, entries, now_ms)
            uow.log.delete_pending([seq for seq, _ in batch])
            signer = self._keys.signer(uow, SigningKeyPurpose.TRANSPARENCY_LOG)
            note = sign_checkpoint(
                Checkpoint(self._origin, update.size, update.root_hash), NoteSigner(self._origin, signer.signing_key)
            )
            uow.log.add_checkpoint(CheckpointRecord(update.size, update.root_hash, note, signer.key_id, now_ms))
            uow.log.set_head(update.size, update.root_hash)
            uow.commit()
            if drain is not None:
                drain.committed = True
        self._renewed_now()
        if entries:
            log.debug("transparency_log.integrated", entries=len(entries), tree_size=update.size)
        return len(entries)


def _read_once(read_tiles: TileReader) -> TileReader:
    """A tile reader that asks the store only for tiles it has not answered yet (one transaction's
    reads: the tiles cannot change in between)."""
    known: dict[Tile, bytes] = {}

    def read(tiles: Sequence[Tile]) -> Mapping[Tile, bytes]:
        missing = [tile for tile in tiles if tile not in known]
        if missing:
            known.update(read_tiles(missing))
        return {tile: known[tile] for tile in tiles if tile in known}

    return read
