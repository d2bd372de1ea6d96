"""Serving the log: the latest checkpoint, inclusion and consistency proofs, entries by tenancy.

Nothing is served over a tree that does not recompute to what was signed: the checkpoint's root
is recomputed from the stored tiles before it is returned (a few tiles, O(log n)), every entry
served is checked against the leaf hash the tiles hold for its index, and an entry missing from
its index is noticed. Any mismatch marks the log inconsistent (`LogHealth`) and the log answers
``DATA_LOSS`` from then on.

Proofs read at most two tiles per tile level in one query, and the hashes inside tiles computed
for one proof are kept for the next (`TileHashCache`, for the same bytes only): the top of the
tree costs nothing after the first proof, and its right edge only what was appended since.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import NoReturn

from charter.transparency import (
    HASH_SIZE,
    MAX_RECEIPT_ENTRIES,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_hash,
)
from charter.transparency.tiles import TILE_HEIGHT, CorruptTiles, Tile, TileHashCache, TileNodeReader

from charter_server.domain.errors import DataLoss, InvalidArgument, NotFound, StorageUnavailable
from charter_server.domain.models import Principal, Role
from charter_server.domain.transparency import CheckpointRecord, StoredEntry
from charter_server.services import pagination
from charter_server.services.transparency.sequencer import LogHealth
from charter_server.storage.database import Database
from charter_server.storage.uow import UnitOfWork

_TILE = 1 << TILE_HEIGHT


@dataclass(frozen=True, slots=True)
class ShownEntry:
    """An entry as one caller sees it: the body only if the caller may read it."""

    entry: StoredEntry
    withheld: bool


@dataclass(frozen=True, slots=True)
class Inclusion:
    """Entries with their audit paths in the tree of ``tree_size``."""

    tree_size: int
    entries: list[tuple[ShownEntry, list[bytes]]]
    checkpoint: bytes


@dataclass(frozen=True, slots=True)
class EntryPage:
    """A page of `TransparencyLog.list_entries`."""

    entries: list[ShownEntry]
    next_page_token: str
    tree_size: int


def may_read(principal: Principal, entry: StoredEntry) -> bool:
    """Whether a caller may read an entry's body: admins and auditors every entry, a rights holder
    those about itself, a generator those about its licensee."""
    if principal.role in (Role.ADMIN, Role.AUDITOR):
        return True
    if principal.role is Role.RIGHTS_HOLDER:
        return bool(principal.rights_holder_id) and entry.rights_holder_id == principal.rights_holder_id
    if principal.role is Role.GENERATOR:
        return bool(principal.licensee_id) and entry.licensee_id == principal.licensee_id
    return False


class TransparencyLog:
    """The read side of the log."""

    def __init__(
        self,
        db: Database,
        health: LogHealth,
        *,
        is_buffered: Callable[[bytes], bool] = lambda digest: False,
        cache: TileHashCache | None = None,
    ) -> None:
        self._db = db
        self._health = health
        # Receipts signed but still in this replica's buffer (see services.transparency.receipts).
        self._is_buffered = is_buffered
        self._cache = cache if cache is not None else TileHashCache()
        # The latest tree size this log saw: a guess of which tiles to read (see `checkpoint`).
        self._size_hint = 0

    def _fail(self, problem: str) -> NoReturn:
        self._health.fail(problem)
        raise DataLoss("the stored transparency log does not match its signed checkpoint")

    def _latest(self, uow: UnitOfWork) -> CheckpointRecord:
        self._health.check()
        latest = uow.log.latest_checkpoint()
        if latest is None:
            raise StorageUnavailable("the log has no checkpoint yet; retry in a second")
        return latest

    def _latest_and_tiles(self, uow: UnitOfWork, wanted: Sequence[Tile]) -> tuple[CheckpointRecord, dict[Tile, bytes]]:
        """The latest checkpoint and the tiles ``wanted`` (as stored now), in one query."""
        self._health.check()
        latest, tiles = uow.log.latest_checkpoint_and_tiles(wanted)
        if latest is None:
            raise StorageUnavailable("the log has no checkpoint yet; retry in a second")
        self._size_hint = latest.tree_size
        return latest, tiles

    # Proofs and the checkpoint read through `Database.read_snapshot`: each statement sees its own
    # committed state, with no transaction around them (on PostgreSQL no BEGIN, no ROLLBACK, no
    # pre-ping: those were most of a proof's round trips). That is enough because the log is only
    # appended to, in one transaction per batch (entries, tiles, checkpoint and head together):
    # nothing is ever deleted or rewritten, and a tile's content only grows at its end. So whatever
    # a later statement reads is at least the tree of the checkpoint read before it: the entries
    # below its size exist and do not change, and the tiles hold every hash of that tree (and
    # perhaps more after it), and a proof or root for size N computed from the tiles of a later,
    # larger tree is the same as from the tiles of tree N. A tampered tile or entry is still seen,
    # as before (the root is recomputed, entries are checked against their leaves).
    #
    # The tiles a proof will read are known from its sizes before anything is read, so on
    # PostgreSQL they come in the same query as the checkpoint. Where the size is "the latest", the latest size this
    # log saw (`_size_hint`) guesses it: if the log grew meanwhile, the few tiles of the new right
    # edge are read in a second query. The guess only chooses what to read; nothing read is kept.

    def checkpoint(self) -> CheckpointRecord:
        """The latest checkpoint, after recomputing its root from the stored tiles.

        Raises:
            DataLoss: The stored tree does not recompute to it.
            StorageUnavailable: No checkpoint was signed yet (the server just started).
        """
        return self._db.read_snapshot(self._checkpoint)

    def _checkpoint(self, uow: UnitOfWork) -> CheckpointRecord:
        latest, prefetched = self._latest_and_tiles(uow, self._tiles_read(partial(root_hash, self._size_hint)))
        # The tiles as stored now are what must recompute to the signed root: the cache holds
        # hashes only for the very bytes they were computed from, so a changed tile is hashed again.
        try:
            recomputed = root_hash(latest.tree_size, self._reader(uow, {}, prefetched))
        except CorruptTiles as error:
            self._fail(f"the tiles of the tree of size {latest.tree_size} are damaged: {error}")
        if recomputed != latest.root_hash:
            self._fail(f"the stored tree of size {latest.tree_size} does not recompute to its checkpoint")
        return latest

    def _tiles_read(self, proof: Callable[[TileNodeReader], object]) -> list[Tile]:
        """The tiles to read with the checkpoint: those ``proof`` reads where a query is a round
        trip to a server; none on SQLite, where finding them (the node-to-tile mapping of the proof,
        run twice) would cost more than the query it saves."""
        return _tiles_read(proof) if self._db.dialect.remote else []

    @staticmethod
    def _sized(latest: CheckpointRecord, tree_size: int, field: str) -> int:
        if tree_size < 0:
            raise InvalidArgument.one(field, "must not be negative")
        if tree_size > latest.tree_size:
            raise InvalidArgument.one(field, f"must be at most the latest checkpoint's size, {latest.tree_size}")
        return tree_size or latest.tree_size

    def _reader(
        self, uow: UnitOfWork, seen: dict[Tile, bytes], prefetched: Mapping[Tile, bytes] | None = None
    ) -> TileNodeReader:
        """A node reader over the stored tiles: those ``prefetched`` in this read, the others (if
        any) in one query; every tile it answers is added to ``seen``."""
        known = prefetched or {}

        def read(tiles: Sequence[Tile]) -> Mapping[Tile, bytes]:
            missing = [t for t in tiles if t not in known]
            answered = {t: known[t] for t in tiles if t in known}
            if missing:
                answered.update(uow.log.read_tiles(missing))
            seen.update(answered)
            return answered

        return TileNodeReader(read, cache=self._cache)

    def _check_entries(self, uow: UnitOfWork, entries: Sequence[StoredEntry], seen: dict[Tile, bytes]) -> None:
        """Every entry's bytes hash to the leaf hash the tiles hold at its index."""
        wanted = {Tile(0, e.index // _TILE) for e in entries} - set(seen)
        if wanted:
            seen.update(uow.log.read_tiles(sorted(wanted)))
        for entry in entries:
            content = seen.get(Tile(0, entry.index // _TILE), b"")
            offset = (entry.index % _TILE) * HASH_SIZE
            stored = content[offset : offset + HASH_SIZE]
            if leaf_hash(entry.entry) != stored or entry.leaf_hash != stored:
                self._fail(f"entry {entry.index} does not hash to the tree's leaf at its index")

    def inclusion(
        self,
        principal: Principal,
        *,
        index: int | None = None,
        leaf: bytes | None = None,
        receipt_digest: bytes | None = None,
        tree_size: int = 0,
    ) -> Inclusion:
        """The inclusion proofs of one entry (by index or leaf hash) or of a receipt's entries.

        Raises:
            InvalidArgument: No entry chosen, a size or index out of range, a hash not 32 bytes.
            NotFound: No such entry in the tree of that size (``LOG_ENTRY_NOT_INTEGRATED`` while
                it waits for its batch).
            DataLoss: The stored log does not match what was signed.
        """
        if index is None and leaf is None and receipt_digest is None:
            raise InvalidArgument.one("entry", "choose an entry by index, leaf_hash or receipt_digest")
        for field, value in (("leaf_hash", leaf), ("receipt_digest", receipt_digest)):
            if value is not None and len(value) != HASH_SIZE:
                raise InvalidArgument.one(field, "must be 32 bytes")

        def read(uow: UnitOfWork) -> tuple[int, CheckpointRecord, list[StoredEntry], list[list[bytes]]]:
            guess = tree_size or self._size_hint
            wanted: list[Tile] = []
            if index is not None and 0 <= index < guess and self._db.dialect.remote:
                wanted = [*self._tiles_read(partial(inclusion_proof, index, guess)), Tile(0, index // _TILE)]
            latest, prefetched = self._latest_and_tiles(uow, wanted)
            size = self._sized(latest, tree_size, "tree_size")
            if index is not None:
                if index < 0:
                    raise InvalidArgument.one("index", "must not be negative")
                if index >= size:
                    raise InvalidArgument.one("index", f"must be below the tree size, {size}")
                found = uow.log.entry_at(index)
                if found is None:
                    self._fail(f"entry {index} is missing")
                entries = [found]
            else:
                if leaf is not None:
                    entries = uow.log.entries_by_leaf_hash(leaf)
                else:
                    assert receipt_digest is not None
                    entries = uow.log.entries_by_receipt(receipt_digest, MAX_RECEIPT_ENTRIES)
                entries = [e for e in entries if e.index < size]
                if not entries:
                    self._not_found(leaf, receipt_digest, latest.tree_size > size)
            seen: dict[Tile, bytes] = {}
            reader = self._reader(uow, seen, prefetched)
            proofs = [inclusion_proof(e.index, size, reader) for e in entries]
            self._check_entries(uow, entries, {**prefetched, **seen})
            return size, latest, entries, proofs

        size, latest, entries, proofs = self._db.read_snapshot(read)
        shown = [ShownEntry(e, not may_read(principal, e)) for e in entries]
        return Inclusion(size, list(zip(shown, proofs, strict=True)), latest.note if tree_size == 0 else b"")

    def _not_found(self, leaf: bytes | None, receipt_digest: bytes | None, smaller: bool) -> NoReturn:
        if not smaller and self._waiting(leaf, receipt_digest):
            raise NotFound("the entry is not integrated yet; retry in a second", reason="LOG_ENTRY_NOT_INTEGRATED")
        raise NotFound("no entry of the log has this hash in the tree of that size", reason="LOG_ENTRY_NOT_FOUND")

    def _waiting(self, leaf: bytes | None, receipt_digest: bytes | None) -> bool:
        """Whether the entry is on its way into the tree. Its stages are looked at from the first
        to the last (the receipt buffer, the pending entries, the entries), each in a new read, so
        an entry that moves on meanwhile is still seen at one of them."""
        if receipt_digest is not None and self._is_buffered(receipt_digest):
            return True
        with self._db.uow() as uow:
            if uow.log.is_pending(leaf_hash=leaf, receipt_digest=receipt_digest):
                return True
        with self._db.uow() as uow:
            if leaf is not None:
                return bool(uow.log.entries_by_leaf_hash(leaf))
            assert receipt_digest is not None
            return bool(uow.log.entries_by_receipt(receipt_digest, 1))

    def consistency(self, from_size: int, to_size: int) -> list[bytes]:
        """The consistency proof from ``from_size`` to ``to_size``.

        Raises:
            InvalidArgument: A size out of range or inverted.
        """
        # In order, the sizes give the proof's tiles, read with the checkpoint in one query.
        wanted = self._tiles_read(partial(consistency_proof, from_size, to_size)) if 1 <= from_size <= to_size else []

        def read(uow: UnitOfWork) -> list[bytes]:
            latest, tiles = self._latest_and_tiles(uow, wanted)
            if from_size < 1:
                raise InvalidArgument.one("from_tree_size", "must be at least 1")
            if to_size < 1:
                raise InvalidArgument.one("to_tree_size", "must be at least 1")
            if to_size > latest.tree_size:
                raise InvalidArgument.one(
                    "to_tree_size", f"must be at most the latest checkpoint's size, {latest.tree_size}"
                )
            if from_size > to_size:
                raise InvalidArgument.one("from_tree_size", "must be at most to_tree_size")
            return consistency_proof(from_size, to_size, self._reader(uow, {}, tiles))

        return self._db.read_snapshot(read)

    def list_entries(self, principal: Principal, *, start_index: int, page_size: int, page_token: str) -> EntryPage:
        """A page of entries from ``start_index``, bounded by the checkpoint of the first page.

        Raises:
            InvalidArgument: A negative page size or start, a start beyond the tree, a bad token.
            DataLoss: An entry is missing or does not hash to its leaf.
        """
        size_wanted = pagination.page_size(page_size)
        if start_index < 0:
            raise InvalidArgument.one("start_index", "must not be negative")
        filters = f"log-entries|{start_index}"
        key = self._db.page_token_key()
        with self._db.uow() as uow:
            latest = self._latest(uow)
            if page_token:
                position, bound = _cursor(pagination.decode_text(key, page_token, filters))
                if bound > latest.tree_size or not start_index <= position <= bound:
                    raise InvalidArgument.one("page_token", "is not a token returned by this list")
            else:
                if start_index > latest.tree_size:
                    raise InvalidArgument.one(
                        "start_index", f"must be at most the latest checkpoint's size, {latest.tree_size}"
                    )
                position, bound = start_index, latest.tree_size
            end = min(bound, position + size_wanted)
            entries = uow.log.entries(position, end)
            if [e.index for e in entries] != list(range(position, end)):
                missing = sorted(set(range(position, end)) - {e.index for e in entries})
                self._fail(f"entries {missing[:5]} are missing")
            self._check_entries(uow, entries, {})
        token = pagination.encode_text(key, f"{end}:{bound}" if end < bound else None, filters)
        return EntryPage([ShownEntry(e, not may_read(principal, e)) for e in entries], token, bound)


class _Wanted(Exception):
    def __init__(self, tiles: list[Tile]) -> None:
        super().__init__()
        self.tiles = tiles


def _tiles_read(proof: Callable[[TileNodeReader], object]) -> list[Tile]:
    """The tiles ``proof(reader)`` reads (it reads them all in one call; nothing is computed)."""

    def record(tiles: Sequence[Tile]) -> Mapping[Tile, bytes]:
        raise _Wanted(list(tiles))

    try:
        proof(TileNodeReader(record))
    except _Wanted as wanted:
        return wanted.tiles
    except ValueError:  # sizes out of range: the caller's checks answer that
        return []
    return []  # nothing to read (an empty proof, an empty tree)


def _cursor(text: str) -> tuple[int, int]:
    position, _, bound = text.partition(":")
    if not position.isdigit() or not bound.isdigit():
        raise InvalidArgument.one("page_token", "is not a token returned by this list")
    return int(position), int(bound)
