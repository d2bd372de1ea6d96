"""Storage of the transparency log: pending entries, integrated entries, tiles, checkpoints, head.

Every read a proof needs is one query: the tiles of `read_tiles` (at most two per tile level), or
those tiles with the latest checkpoint (`latest_checkpoint_and_tiles`).
Tiles are written whole (insert or replace); a tile's content only ever grows at its end, so a
tree of an earlier size is still readable from the current tiles.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from charter.transparency.tiles import Tile
from sqlalchemy import Table, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from charter_server.domain.transparency import CheckpointRecord, LogHead, PendingEntry, StoredEntry
from charter_server.storage.dialect import Dialect
from charter_server.storage.log_tables import (
    LOOKUP_PREFIX_BYTES,
    LogCheckpointRow,
    LogEntryRow,
    LogHeadRow,
    LogPendingRow,
    LogTileRow,
    lookup_prefix,
)

_HEAD_ID = 1
# Receipts reach the log at the rate of decisions and every proof reads tiles, so what the
# sequencer and the proofs run goes through Core statements built once (no ORM objects, no
# statement built per call: building one costs more than running it).
_PENDING = cast(Table, LogPendingRow.__table__)
_ENTRIES = cast(Table, LogEntryRow.__table__)
_TILES = cast(Table, LogTileRow.__table__)
_CHECKPOINTS = cast(Table, LogCheckpointRow.__table__)
_HEADS = cast(Table, LogHeadRow.__table__)
_ADD_PENDING = insert(_PENDING)
_ADD_CHECKPOINT = insert(_CHECKPOINTS)
_ANY_PENDING = select(_PENDING.c.seq).limit(1)
_ENTRY = select(
    _ENTRIES.c.idx,
    _ENTRIES.c.entry,
    _ENTRIES.c.leaf_hash,
    _ENTRIES.c.rights_holder_id,
    _ENTRIES.c.licensee_id,
    _ENTRIES.c.integrate_ms,
)
_ENTRY_AT = _ENTRY.where(_ENTRIES.c.idx == bindparam("idx"))
# Through the indexes of the hashes' first bytes (migration 0014), keeping the whole-hash matches.
_ENTRIES_BY_LEAF_HASH = (
    _ENTRY.where(lookup_prefix(_ENTRIES.c.leaf_hash) == bindparam("prefix"), _ENTRIES.c.leaf_hash == bindparam("hash"))
    .order_by(_ENTRIES.c.idx)
    .limit(10)
)
_ENTRIES_BY_RECEIPT = (
    _ENTRY.where(
        lookup_prefix(_ENTRIES.c.receipt_digest) == bindparam("prefix"),
        _ENTRIES.c.receipt_digest == bindparam("hash"),
    )
    .order_by(_ENTRIES.c.idx)
    .limit(bindparam("limit"))
)
_DELETE_PENDING = delete(_PENDING).where(_PENDING.c.seq.in_(bindparam("seqs", expanding=True)))
_HEAD = select(_HEADS.c.tree_size, _HEADS.c.root_hash, _HEADS.c.lease_holder, _HEADS.c.lease_until_ms).where(
    _HEADS.c.id == _HEAD_ID
)
_HEAD_FOR_UPDATE = _HEAD.with_for_update()
_SET_LEASE = (
    update(_HEADS)
    .where(_HEADS.c.id == _HEAD_ID)
    .values(lease_holder=bindparam("holder"), lease_until_ms=bindparam("until"))
)
_SET_HEAD = (
    update(_HEADS).where(_HEADS.c.id == _HEAD_ID).values(tree_size=bindparam("size"), root_hash=bindparam("root"))
)
_CHECKPOINT_COLUMNS = (
    _CHECKPOINTS.c.tree_size,
    _CHECKPOINTS.c.root_hash,
    _CHECKPOINTS.c.note,
    _CHECKPOINTS.c.key_id,
    _CHECKPOINTS.c.sign_ms,
)
_LATEST_CHECKPOINT = select(*_CHECKPOINT_COLUMNS).order_by(_CHECKPOINTS.c.tree_size.desc()).limit(1)
_OLDEST_PENDING = (
    select(
        _PENDING.c.seq,
        _PENDING.c.entry,
        _PENDING.c.leaf_hash,
        _PENDING.c.rights_holder_id,
        _PENDING.c.licensee_id,
        _PENDING.c.receipt_digest,
    )
    .order_by(_PENDING.c.seq)
    .limit(bindparam("limit"))
)
_UNIX_EPOCH_JULIAN_DAY = 2440587.5
_MS_PER_DAY = 86_400_000.0


@functools.lru_cache(maxsize=64)
def _read_tiles_statement(count: int) -> Any:
    """The query of ``count`` tiles by key (``level = :l<i> AND idx = :i<i>`` OR'ed, which both
    databases answer from the primary key), built once per count."""
    return select(_TILES.c.level, _TILES.c.idx, _TILES.c.hashes).where(
        or_(*(and_(_TILES.c.level == bindparam(f"l{i}"), _TILES.c.idx == bindparam(f"i{i}")) for i in range(count)))
    )


@functools.lru_cache(maxsize=64)
def _checkpoint_and_tiles_statement(count: int) -> Any:
    """The latest checkpoint with ``count`` tiles by key, one row per tile found (the checkpoint's
    columns repeated; one row with null tile columns when none is), built once per count."""
    latest = _LATEST_CHECKPOINT.subquery("latest")
    if count == 0:
        return select(latest)
    found = or_(*(and_(_TILES.c.level == bindparam(f"l{i}"), _TILES.c.idx == bindparam(f"i{i}")) for i in range(count)))
    return select(latest, _TILES.c.level, _TILES.c.idx, _TILES.c.hashes).select_from(latest.outerjoin(_TILES, found))


def _tile_parameters(tiles: Sequence[Tile]) -> dict[str, int]:
    """The parameters of `_read_tiles_statement` / `_checkpoint_and_tiles_statement` for ``tiles``
    (each tile once, in key order)."""
    parameters: dict[str, int] = {}
    for number, (level, index) in enumerate(sorted({(t.level, t.index) for t in tiles})):
        parameters[f"l{number}"] = level
        parameters[f"i{number}"] = index
    return parameters


ENTRIES_PER_INSERT = 128
"""The most entries one ``INSERT`` statement carries (7 parameters each: under the 999 that
every SQLite build accepts)."""
_ENTRY_COLUMNS = ("idx", "entry", "leaf_hash", "receipt_digest", "rights_holder_id", "licensee_id", "integrate_ms")


@functools.cache
def _dialect_statements(dialect: Dialect) -> tuple[Any, Any]:
    """The statements that differ by database, built once per dialect: the clock and the tiles'
    upsert."""
    upsert = dialect.insert(_TILES)
    write_tiles = upsert.on_conflict_do_update(index_elements=["level", "idx"], set_={"hashes": upsert.excluded.hashes})
    return select(dialect.now_ms()), write_tiles


@functools.lru_cache(maxsize=2 * ENTRIES_PER_INSERT)
def _add_entries_statement(dialect: Dialect, rows: int) -> str:
    """The insert of ``rows`` entries as the driver's own SQL, one ``VALUES`` row per entry.

    One statement of many rows, not an ``executemany``: the driver steps each row of an
    ``executemany`` separately, releasing and retaking the GIL every time, so the sequencer's
    thread trades the GIL with the threads serving calls hundreds of times per batch (and
    SQLAlchemy's work per row would double its cost)."""
    row = "(" + ", ".join([dialect.placeholder] * len(_ENTRY_COLUMNS)) + ")"
    values = ", ".join([row] * rows)
    return f"INSERT INTO {_ENTRIES.name} ({', '.join(_ENTRY_COLUMNS)}) VALUES {values}"  # noqa: S608 - fixed SQL


def _stored(row: Any) -> StoredEntry:
    """An entry from its ORM row or a row of its columns."""
    return StoredEntry(
        row.idx, bytes(row.entry), bytes(row.leaf_hash), row.rights_holder_id, row.licensee_id, row.integrate_ms
    )


def _checkpoint(row: Any) -> CheckpointRecord:
    """A checkpoint from its ORM row or a row of its columns."""
    return CheckpointRecord(row.tree_size, bytes(row.root_hash), bytes(row.note), row.key_id, row.sign_ms)


class TransparencyRepository:
    """The log's rows."""

    def __init__(self, session: Session, dialect: Dialect) -> None:
        self._session = session
        self._dialect = dialect
        self._now_ms, self._write_tiles = _dialect_statements(dialect)

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch by the database's clock: the lease is timed by it, so
        replicas whose clocks disagree still agree on who sequences."""
        return int(self._session.scalar(self._now_ms) or 0)

    # Pending entries.

    def add_pending(self, entries: Sequence[PendingEntry]) -> None:
        """Append entries to be integrated (in the caller's transaction)."""
        if not entries:
            return
        self._session.execute(
            _ADD_PENDING,
            [
                {
                    "entry": e.entry,
                    "leaf_hash": e.leaf_hash,
                    "receipt_digest": e.receipt_digest,
                    "rights_holder_id": e.rights_holder_id,
                    "licensee_id": e.licensee_id,
                }
                for e in entries
            ],
        )

    def pending(self, limit: int) -> list[tuple[int, PendingEntry]]:
        """The oldest pending entries, in the order they were appended."""
        rows = self._session.execute(_OLDEST_PENDING, {"limit": limit})
        return [
            (
                seq,
                PendingEntry(
                    bytes(entry),
                    bytes(leaf_hash),
                    rights_holder_id,
                    licensee_id,
                    None if receipt_digest is None else bytes(receipt_digest),
                ),
            )
            for seq, entry, leaf_hash, rights_holder_id, licensee_id, receipt_digest in rows
        ]

    def delete_pending(self, seqs: Sequence[int]) -> None:
        """Remove integrated entries from the pending ones."""
        for start in range(0, len(seqs), 500):
            self._session.execute(_DELETE_PENDING, {"seqs": list(seqs[start : start + 500])})

    def is_pending(self, *, leaf_hash: bytes | None = None, receipt_digest: bytes | None = None) -> bool:
        """Whether an entry with this leaf hash (or of this receipt) waits for integration."""
        condition = (
            LogPendingRow.leaf_hash == leaf_hash
            if leaf_hash is not None
            else LogPendingRow.receipt_digest == receipt_digest
        )
        return self._session.scalar(select(LogPendingRow.seq).where(condition).limit(1)) is not None

    def has_pending(self) -> bool:
        """Whether any entry waits (one index probe, not a count)."""
        return self._session.scalar(_ANY_PENDING) is not None

    def pending_count(self) -> int:
        """How many entries wait."""
        return int(self._session.scalar(select(func.count()).select_from(LogPendingRow)) or 0)

    # The head and the sequencer's lease.

    def head(self, *, for_update: bool = False) -> LogHead:
        """The integrated tree and the lease (locked until commit with ``for_update``)."""
        row = self._session.execute(_HEAD_FOR_UPDATE if for_update else _HEAD).one()
        return LogHead(row.tree_size, bytes(row.root_hash), row.lease_holder, row.lease_until_ms)

    def take_lease(self, holder: str, seconds: float) -> LogHead | None:
        """Hold (or renew) the sequencer's lease if it is free, expired or already ours; return the
        head with the lease taken, or None when another holder keeps it.

        Runs under the head row's lock, which the caller's transaction keeps until it commits.
        """
        head = self.head(for_update=True)
        now = self.now_ms()
        if head.lease_holder not in ("", holder) and head.lease_until_ms > now:
            return None
        until = now + round(seconds * 1000)
        self._session.execute(_SET_LEASE, {"holder": holder, "until": until})
        return LogHead(head.tree_size, head.root_hash, holder, until)

    def release_lease(self, holder: str) -> None:
        """Give the lease up (at shutdown) so another replica takes over at once."""
        self._session.execute(
            update(LogHeadRow)
            .where(LogHeadRow.id == _HEAD_ID, LogHeadRow.lease_holder == holder)
            .values(lease_holder="", lease_until_ms=0)
        )

    def set_head(self, tree_size: int, root_hash: bytes) -> None:
        """Record the integrated tree."""
        self._session.execute(_SET_HEAD, {"size": tree_size, "root": root_hash})

    # Entries.

    def add_entries(self, start: int, entries: Sequence[PendingEntry], integrate_ms: int) -> None:
        """Insert integrated entries at indexes ``start``, ``start + 1``, ..."""
        if not entries:
            return
        connection = self._session.connection()
        for first in range(0, len(entries), ENTRIES_PER_INSERT):
            chunk = entries[first : first + ENTRIES_PER_INSERT]
            parameters: list[object] = []
            for index, e in enumerate(chunk, start + first):
                parameters += (
                    index,
                    e.entry,
                    e.leaf_hash,
                    e.receipt_digest,
                    e.rights_holder_id,
                    e.licensee_id,
                    integrate_ms,
                )
            connection.exec_driver_sql(_add_entries_statement(self._dialect, len(chunk)), tuple(parameters))

    def entries(self, start: int, end: int) -> list[StoredEntry]:
        """The entries of indexes ``[start, end)`` that are stored, in index order."""
        rows = self._session.scalars(
            select(LogEntryRow).where(LogEntryRow.idx >= start, LogEntryRow.idx < end).order_by(LogEntryRow.idx)
        )
        return [_stored(row) for row in rows]

    def entry_at(self, index: int) -> StoredEntry | None:
        """The entry at an index."""
        row = self._session.execute(_ENTRY_AT, {"idx": index}).first()
        return None if row is None else _stored(row)

    def entries_by_leaf_hash(self, leaf_hash: bytes) -> list[StoredEntry]:
        """The entries with a leaf hash (one, but for a salted duplicate nobody can make)."""
        rows = self._session.execute(
            _ENTRIES_BY_LEAF_HASH, {"prefix": leaf_hash[:LOOKUP_PREFIX_BYTES], "hash": leaf_hash}
        )
        return [_stored(row) for row in rows]

    def entries_by_receipt(self, receipt_digest: bytes, limit: int) -> list[StoredEntry]:
        """The entries of a decision receipt (one per character decided) or of its usage records."""
        rows = self._session.execute(
            _ENTRIES_BY_RECEIPT,
            {"prefix": receipt_digest[:LOOKUP_PREFIX_BYTES], "hash": receipt_digest, "limit": limit},
        )
        return [_stored(row) for row in rows]

    # Tiles.

    def read_tiles(self, tiles: Sequence[Tile]) -> dict[Tile, bytes]:
        """The stored content of tiles, in one query; a tile not stored is left out."""
        if not tiles:
            return {}
        parameters = _tile_parameters(tiles)
        rows = self._session.execute(_read_tiles_statement(len(parameters) // 2), parameters)
        return {Tile(level, index): bytes(hashes) for level, index, hashes in rows}

    def latest_checkpoint_and_tiles(self, tiles: Sequence[Tile]) -> tuple[CheckpointRecord | None, dict[Tile, bytes]]:
        """The checkpoint of the largest tree and the stored content of ``tiles``, in one query (so
        in one round trip, and in one snapshot even outside a transaction); a tile not stored is
        left out, and no checkpoint means no tiles either."""
        parameters = _tile_parameters(tiles)
        rows = self._session.execute(_checkpoint_and_tiles_statement(len(parameters) // 2), parameters).all()
        if not rows:
            return None, {}
        found = {Tile(row.level, row.idx): bytes(row.hashes) for row in rows if tiles and row.hashes is not None}
        return _checkpoint(rows[0]), found

    def write_tiles(self, tiles: Mapping[Tile, bytes]) -> None:
        """Insert or replace tiles."""
        values = [{"level": t.level, "idx": t.index, "hashes": content} for t, content in tiles.items()]
        if not values:
            return
        self._session.execute(self._write_tiles, values)

    # Checkpoints.

    def add_checkpoint(self, checkpoint: CheckpointRecord) -> None:
        """Keep a signed checkpoint."""
        self._session.execute(
            _ADD_CHECKPOINT,
            {
                "tree_size": checkpoint.tree_size,
                "root_hash": checkpoint.root_hash,
                "note": checkpoint.note,
                "key_id": checkpoint.key_id,
                "sign_ms": checkpoint.sign_ms,
            },
        )

    def latest_checkpoint(self) -> CheckpointRecord | None:
        """The checkpoint of the largest tree."""
        row = self._session.execute(_LATEST_CHECKPOINT).first()
        return None if row is None else _checkpoint(row)

    def checkpoint(self, tree_size: int) -> CheckpointRecord | None:
        """The checkpoint of a tree size, if one was signed."""
        row = self._session.get(LogCheckpointRow, tree_size)
        return None if row is None else _checkpoint(row)

    def sizes(self) -> Iterable[int]:
        """Every checkpointed size, ascending."""
        return list(self._session.scalars(select(LogCheckpointRow.tree_size).order_by(LogCheckpointRow.tree_size)))
