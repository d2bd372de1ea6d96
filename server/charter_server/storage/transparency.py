"""Storage of the transparency log: pending entries, integrated entries, tiles, checkpoints, head.

Every read a proof needs is one query: the tiles of `read_tiles` (at most two per tile level).
Tiles are written whole (insert or replace); a tile's content only ever grows at its end, so a
tree of an earlier size is still readable from the current tiles.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from charter.transparency.tiles import Tile
from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from charter_server.domain.transparency import CheckpointRecord, LogHead, PendingEntry, StoredEntry
from charter_server.storage.dialect import Dialect
from charter_server.storage.log_tables import LogCheckpointRow, LogEntryRow, LogHeadRow, LogPendingRow, LogTileRow

_HEAD_ID = 1
_UNIX_EPOCH_JULIAN_DAY = 2440587.5
_MS_PER_DAY = 86_400_000.0


def _stored(row: LogEntryRow) -> StoredEntry:
    return StoredEntry(
        row.idx, bytes(row.entry), bytes(row.leaf_hash), row.rights_holder_id, row.licensee_id, row.integrate_ms
    )


def _checkpoint(row: LogCheckpointRow) -> CheckpointRecord:
    return CheckpointRecord(row.tree_size, bytes(row.root_hash), bytes(row.note), row.key_id, row.sign_ms)


class TransparencyRepository:
    """The log's rows."""

    def __init__(self, session: Session, dialect: Dialect) -> None:
        self._session = session
        self._dialect = dialect

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch by the database's clock: the lease is timed by it, so
        replicas whose clocks disagree still agree on who sequences."""
        return int(self._session.scalar(select(self._dialect.now_ms())) or 0)

    # Pending entries.

    def add_pending(self, entries: Sequence[PendingEntry]) -> None:
        """Append entries to be integrated (in the caller's transaction)."""
        if not entries:
            return
        self._session.execute(
            insert(LogPendingRow),
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
        rows = self._session.scalars(select(LogPendingRow).order_by(LogPendingRow.seq).limit(limit))
        return [
            (
                row.seq,
                PendingEntry(
                    bytes(row.entry),
                    bytes(row.leaf_hash),
                    row.rights_holder_id,
                    row.licensee_id,
                    None if row.receipt_digest is None else bytes(row.receipt_digest),
                ),
            )
            for row in rows
        ]

    def delete_pending(self, seqs: Sequence[int]) -> None:
        """Remove integrated entries from the pending ones."""
        for start in range(0, len(seqs), 500):
            self._session.execute(delete(LogPendingRow).where(LogPendingRow.seq.in_(seqs[start : start + 500])))

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
        return self._session.scalar(select(LogPendingRow.seq).limit(1)) is not None

    def pending_count(self) -> int:
        """How many entries wait."""
        return int(self._session.scalar(select(func.count()).select_from(LogPendingRow)) or 0)

    # The head and the sequencer's lease.

    def head(self, *, for_update: bool = False) -> LogHead:
        """The integrated tree and the lease (locked until commit with ``for_update``)."""
        statement = select(LogHeadRow).where(LogHeadRow.id == _HEAD_ID)
        if for_update:
            statement = statement.with_for_update()
        row = self._session.scalars(statement).one()
        return LogHead(row.tree_size, bytes(row.root_hash), row.lease_holder, row.lease_until_ms)

    def take_lease(self, holder: str, seconds: float) -> bool:
        """Hold (or renew) the sequencer's lease if it is free, expired or already ours.

        Runs under the head row's lock, which the caller's transaction keeps until it commits.
        """
        head = self.head(for_update=True)
        now = self.now_ms()
        if head.lease_holder not in ("", holder) and head.lease_until_ms > now:
            return False
        self._session.execute(
            update(LogHeadRow)
            .where(LogHeadRow.id == _HEAD_ID)
            .values(lease_holder=holder, lease_until_ms=now + round(seconds * 1000))
        )
        return True

    def release_lease(self, holder: str) -> None:
        """Give the lease up (at shutdown) so another replica takes over at once."""
        self._session.execute(
            update(LogHeadRow)
            .where(LogHeadRow.id == _HEAD_ID, LogHeadRow.lease_holder == holder)
            .values(lease_holder="", lease_until_ms=0)
        )

    def set_head(self, tree_size: int, root_hash: bytes) -> None:
        """Record the integrated tree."""
        self._session.execute(
            update(LogHeadRow).where(LogHeadRow.id == _HEAD_ID).values(tree_size=tree_size, root_hash=root_hash)
        )

    # Entries.

    def add_entries(self, start: int, entries: Sequence[PendingEntry], integrate_ms: int) -> None:
        """Insert integrated entries at indexes ``start``, ``start + 1``, ..."""
        if not entries:
            return
        self._session.execute(
            insert(LogEntryRow),
            [
                {
                    "idx": start + i,
                    "entry": e.entry,
                    "leaf_hash": e.leaf_hash,
                    "receipt_digest": e.receipt_digest,
                    "rights_holder_id": e.rights_holder_id,
                    "licensee_id": e.licensee_id,
                    "integrate_ms": integrate_ms,
                }
                for i, e in enumerate(entries)
            ],
        )

    def entries(self, start: int, end: int) -> list[StoredEntry]:
        """The entries of indexes ``[start, end)`` that are stored, in index order."""
        rows = self._session.scalars(
            select(LogEntryRow).where(LogEntryRow.idx >= start, LogEntryRow.idx < end).order_by(LogEntryRow.idx)
        )
        return [_stored(row) for row in rows]

    def entry_at(self, index: int) -> StoredEntry | None:
        """The entry at an index."""
        row = self._session.get(LogEntryRow, index)
        return None if row is None else _stored(row)

    def entries_by_leaf_hash(self, leaf_hash: bytes) -> list[StoredEntry]:
        """The entries with a leaf hash (one, but for a salted duplicate nobody can make)."""
        rows = self._session.scalars(
            select(LogEntryRow).where(LogEntryRow.leaf_hash == leaf_hash).order_by(LogEntryRow.idx).limit(10)
        )
        return [_stored(row) for row in rows]

    def entries_by_receipt(self, receipt_digest: bytes, limit: int) -> list[StoredEntry]:
        """The entries of a decision receipt (one per character decided) or of its usage records."""
        rows = self._session.scalars(
            select(LogEntryRow)
            .where(LogEntryRow.receipt_digest == receipt_digest)
            .order_by(LogEntryRow.idx)
            .limit(limit)
        )
        return [_stored(row) for row in rows]

    # Tiles.

    def read_tiles(self, tiles: Sequence[Tile]) -> dict[Tile, bytes]:
        """The stored content of tiles, in one query; a tile not stored is left out."""
        if not tiles:
            return {}
        wanted = set(tiles)
        condition = or_(*(and_(LogTileRow.level == t.level, LogTileRow.idx == t.index) for t in wanted))
        rows = self._session.execute(select(LogTileRow.level, LogTileRow.idx, LogTileRow.hashes).where(condition))
        return {Tile(level, index): bytes(hashes) for level, index, hashes in rows}

    def write_tiles(self, tiles: Mapping[Tile, bytes]) -> None:
        """Insert or replace tiles."""
        values = [{"level": t.level, "idx": t.index, "hashes": content} for t, content in tiles.items()]
        if not values:
            return
        upsert = self._dialect.insert(LogTileRow)
        self._session.execute(
            upsert.on_conflict_do_update(index_elements=["level", "idx"], set_={"hashes": upsert.excluded.hashes}),
            values,
        )

    def tiles_in(self, level: int, start: int, end: int) -> dict[int, bytes]:
        """The tiles of one level with indexes in ``[start, end)``."""
        rows = self._session.execute(
            select(LogTileRow.idx, LogTileRow.hashes).where(
                LogTileRow.level == level, LogTileRow.idx >= start, LogTileRow.idx < end
            )
        )
        return {index: bytes(hashes) for index, hashes in rows}

    # Checkpoints.

    def add_checkpoint(self, checkpoint: CheckpointRecord) -> None:
        """Keep a signed checkpoint."""
        self._session.add(
            LogCheckpointRow(
                tree_size=checkpoint.tree_size,
                root_hash=checkpoint.root_hash,
                note=checkpoint.note,
                key_id=checkpoint.key_id,
                sign_ms=checkpoint.sign_ms,
            )
        )
        self._session.flush()

    def latest_checkpoint(self) -> CheckpointRecord | None:
        """The checkpoint of the largest tree."""
        row = self._session.scalars(
            select(LogCheckpointRow).order_by(LogCheckpointRow.tree_size.desc()).limit(1)
        ).first()
        return None if row is None else _checkpoint(row)

    def checkpoint(self, tree_size: int) -> CheckpointRecord | None:
        """The checkpoint of a tree size, if one was signed."""
        row = self._session.get(LogCheckpointRow, tree_size)
        return None if row is None else _checkpoint(row)

    def sizes(self) -> Iterable[int]:
        """Every checkpointed size, ascending."""
        return list(self._session.scalars(select(LogCheckpointRow.tree_size).order_by(LogCheckpointRow.tree_size)))
