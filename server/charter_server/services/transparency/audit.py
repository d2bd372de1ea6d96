"""Auditing the stored log: recompute everything from the entries and compare with what was signed.

Serving checks only what each answer touches (the top of the tree for a checkpoint, the entries
and their leaves for a listing or a proof). A row changed deep inside the store (an entry nobody
asks for, a complete tile whose parent still holds the old hash) is found by the audit, which
rebuilds the whole tree from the entries' bytes: the server runs it after it starts and then
periodically (`LogAuditor`), and marks the log inconsistent when anything differs.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import NoReturn

import structlog
from charter.transparency import leaf_hash
from charter.transparency.tiles import Tile, append_leaves, edge_tiles

from charter_server.domain.errors import DataLoss
from charter_server.services.transparency.sequencer import LogHealth
from charter_server.storage.database import Database

log = structlog.get_logger(__name__)


_AUDIT_CHUNK = 4096


def audit(db: Database, health: LogHealth, *, chunk: int = _AUDIT_CHUNK, stop: threading.Event | None = None) -> int:
    """Recompute the whole stored log and compare it with what was signed; return the size checked.

    Every entry's bytes are hashed again (never the stored leaf hash), the tiles are rebuilt from
    those hashes and compared with the stored tiles byte for byte, and the rebuilt root with the
    latest checkpoint's. O(n) work in O(log n) memory, in read transactions of ``chunk`` entries;
    any difference marks the log inconsistent (`LogHealth`) and raises.

    Raises:
        DataLoss: An entry, a tile or the root differs from what the signed tree implies.
    """
    with db.uow() as uow:
        latest = uow.log.latest_checkpoint()
    if latest is None:
        return 0
    built: dict[Tile, bytes] = {}

    def read_built(tiles: Sequence[Tile]) -> Mapping[Tile, bytes]:
        return {tile: built[tile] for tile in tiles if tile in built}

    size = 0
    while size < latest.tree_size:
        if stop is not None and stop.is_set():
            return size
        end = min(latest.tree_size, size + chunk)
        with db.uow() as uow:
            entries = uow.log.entries(size, end)
            if [e.index for e in entries] != list(range(size, end)):
                _failed(health, f"entries between {size} and {end} are missing or out of place")
            update = append_leaves(size, [leaf_hash(e.entry) for e in entries], read_built)
            built.update(update.tiles)
            stored = uow.log.read_tiles(sorted(update.tiles))
        for tile, content in update.tiles.items():
            # A tile written by a later append is longer; the part this size covers must match.
            if stored.get(tile, b"")[: len(content)] != content:
                _failed(health, f"tile {tile.level}/{tile.index} differs from the entries")
        # Complete tiles never change again: keep only the partial (right-edge) ones.
        edges = edge_tiles(update.size)
        built = {tile: content for tile, content in built.items() if tile in edges}
        size = update.size
        if size == latest.tree_size and update.root_hash != latest.root_hash:
            _failed(health, f"the entries do not recompute to the checkpoint of size {size}")
    return size


def _failed(health: LogHealth, problem: str) -> NoReturn:
    health.fail(problem)
    raise DataLoss("the stored transparency log does not match its signed checkpoint")


class LogAuditor:
    """Runs `audit` on a thread of its own: soon after start, then every ``interval`` seconds."""

    def __init__(self, db: Database, health: LogHealth, *, interval: float, first_delay: float = 5.0) -> None:
        self._db = db
        self._health = health
        self._interval = interval
        self._first_delay = first_delay
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start auditing in the background (not at all when the interval is 0)."""
        if self._interval > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="charter-log-auditor", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop (an audit under way ends at its next chunk)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        delay = self._first_delay
        while not self._stop.wait(delay):
            delay = self._interval
            if self._health.problem is not None:
                return
            try:
                size = audit(self._db, self._health, stop=self._stop)
                log.info("transparency_log.audited", tree_size=size)
            except DataLoss:
                return
            except Exception:
                log.exception("transparency_log.audit_failed")
