"""Tampering with the stored transparency log is detected, for every row of a generated log of
thousands of entries, on each backend.

The log is written by the real appender and sequencer, and an auditor keeps its checkpoint (the
"earlier checkpoint"). Then, one row at a time, an entry row is deleted, altered, swapped with the
next one, or a row is inserted before it (the rows after it shifted):

* in the database (each change inside a transaction that is rolled back afterwards), the server
  refuses to serve the page that holds the row (``DATA_LOSS``, ``TRANSPARENCY_LOG_INCONSISTENT``):
  it checks every entry it serves against the leaf the tree holds at its index;
* as an export (what a server that did not check would hand out), `verify_export`'s core does not
  rebuild the signed root, and a witness holding the earlier checkpoint sees the rewritten tree as
  a rollback (fewer entries), a fork (the same size, another root) or a tree whose consistency
  proof from the earlier checkpoint fails (more entries);

and every tile row altered or deleted is found by the audit and, for the tiles a checkpoint is
computed from, by the checkpoint check itself. 100 % of the cases must be detected.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import pytest
from charter import transparency
from charter.transparency import merkle
from charter.transparency.tiles import Tile
from charter.v1 import transparency_pb2 as tp
from charter_server.app import build_services, open_database
from charter_server.config import Settings
from charter_server.domain.clock import SystemClock
from charter_server.domain.errors import DataLoss
from charter_server.domain.models import Principal, Role, SigningKeyPurpose
from charter_server.services.transparency.audit import audit
from charter_server.services.transparency.reader import TransparencyLog
from charter_server.services.transparency.sequencer import LogHealth
from charter_server.storage.database import Database
from charter_server.storage.log_tables import LogEntryRow, LogTileRow
from charter_server.storage.uow import UnitOfWork
from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

ENTRIES = 2048  # plus the log key's activation, which the log starts with
PAGE = 64
EXPORTED = ENTRIES // 2 + 1  # the size after the second of the four batches
AUDITOR = Principal("key_auditor", Role.AUDITOR)
KINDS = ("delete", "alter", "reorder", "insert")

# Thousands of cases each: slow, and given room beyond the default per-test timeout.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@dataclass(frozen=True)
class Row:
    index: int
    entry: bytes
    leaf: bytes


@dataclass
class Built:
    db: Database
    checkpoint: transparency.SignedCheckpoint
    rows: list[Row]
    exported: transparency.SignedCheckpoint
    """The checkpoint of the second batch (1,025 entries), which the export tests check against."""


class Bound:
    """The database as the reader sees it, but every unit of work is the test's open one: the
    server's checks then read the tampered rows without anything being committed."""

    def __init__(self, db: Database, uow: UnitOfWork) -> None:
        self._db, self._uow = db, uow

    @contextmanager
    def uow(self, *, write: bool = False) -> Iterator[UnitOfWork]:
        yield self._uow

    def page_token_key(self) -> bytes:
        return self._db.page_token_key()


def _entry() -> tp.RightsHolderLogged:
    return tp.RightsHolderLogged(
        action=tp.RightsHolderLogged.ACTION_CREATED, rights_holder_id=f"rh_{os.urandom(16).hex()}"
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Built]:
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path_factory.mktemp('tamper') / 'log.db'}"
        yield from _build(url)
        return
    import uuid

    import psycopg

    admin = database_url.replace("postgresql+psycopg://", "postgresql://")
    name = f"charter_tamper_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield from _build(f"{database_url.rpartition('/')[0]}/{name}")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _build(url: str) -> Iterator[Built]:
    settings = Settings(database_url=url, migrate=True)
    db = open_database(settings)
    try:
        services = build_services(settings, db, SystemClock())
        services.keys.ensure_active_key(SigningKeyPurpose.TRANSPARENCY_LOG)
        for _ in range(4):  # four batches, four checkpoints: the auditor keeps the last
            with db.uow(write=True) as uow:
                for _ in range(ENTRIES // 4):
                    services.appender.append(uow, "rights_holder", _entry())
                uow.commit()
            while services.sequencer.integrate():
                pass
        with db.uow() as uow:
            latest = uow.log.latest_checkpoint()
            earlier = uow.log.checkpoint(EXPORTED)
            keys = uow.signing_keys.all()
            assert latest is not None and earlier is not None
            rows = [Row(e.index, e.entry, e.leaf_hash) for e in uow.log.entries(0, latest.tree_size)]
        verifiers = [
            transparency.NoteVerifier.from_public_key(settings.origin, k.public_key)
            for k in keys
            if k.purpose is SigningKeyPurpose.TRANSPARENCY_LOG
        ]
        signed = transparency.verify_checkpoint(latest.note, origin=settings.origin, verifiers=verifiers)
        exported = transparency.verify_checkpoint(earlier.note, origin=settings.origin, verifiers=verifiers)
        assert len(rows) == signed.checkpoint.size == ENTRIES + 1  # and the log key's activation
        yield Built(db, signed, rows, exported)
    finally:
        db.dispose()


# -- in the database ------------------------------------------------------------------------------


def _tamper(session: Session, kind: str, indexes: list[int], rows: list[Row]) -> None:
    """Tamper with the row at each of ``indexes`` (at most one per page). The rows of every page
    are changed by the same few statements, each executed once for all pages (one round trip
    each instead of one per page and statement: the 19,000 statements per backend took over half
    of this test's time); what the pages hold afterwards is what one page at a time made."""
    entries = cast(Table, LogEntryRow.__table__)
    idx = entries.c.idx
    size = len(rows)
    if kind == "delete":
        session.execute(delete(entries).where(idx.in_(indexes)))
    elif kind == "alter":
        # One byte more: still a plausible LogEntry to a reader that does not check.
        altered = [{"at": index, "changed": rows[index].entry + b"\x00"} for index in indexes]
        session.execute(update(entries).where(idx == bindparam("at")).values(entry=bindparam("changed")), altered)
    elif kind == "reorder":  # with the next row of its page (the previous one at a page's end)
        others = [index + 1 if (index + 1) % PAGE and index + 1 < size else index - 1 for index in indexes]
        move = update(entries).where(idx == bindparam("at")).values(idx=bindparam("to"))
        # Each row out of the way at a negative index of its own, the other row into its place,
        # then the row into the other's.
        session.execute(move, [{"at": index, "to": -index - 1} for index in indexes])
        session.execute(move, [{"at": other, "to": index} for index, other in zip(indexes, others, strict=True)])
        session.execute(move, [{"at": -index - 1, "to": other} for index, other in zip(indexes, others, strict=True)])
    else:
        # The rows of each page from its ``index`` on move on by one, and the page's last row is
        # pushed out (into the next page, which a check of its own would find changed as well).
        lasts = [min(size, (index // PAGE + 1) * PAGE) - 1 for index in indexes]
        session.execute(delete(entries).where(idx.in_(lasts)))
        shift = update(entries).where(idx >= bindparam("first"), idx < bindparam("last")).values(idx=-idx - 1)
        session.execute(shift, [{"first": index, "last": last} for index, last in zip(indexes, lasts, strict=True)])
        session.execute(update(entries).where(idx < 0).values(idx=-idx))
        added = []
        for index in indexes:
            entry = tp.LogEntry(rights_holder=_entry()).SerializeToString()
            added.append(
                {
                    "idx": index,
                    "entry": entry,
                    "leaf_hash": transparency.leaf_hash(entry),
                    "receipt_digest": None,
                    "rights_holder_id": "",
                    "licensee_id": "",
                    "integrate_ms": 0,
                }
            )
        session.execute(insert(entries), added)


def test_every_entry_row_tampered_in_the_database_is_refused_by_the_server(built: Built) -> None:
    """Each row of each page is tampered with in turn; the pages are independent (the server checks
    a page against the tree alone), so one transaction tampers with the row at the same offset of
    every page at once, and every page must then be refused."""
    size = built.checkpoint.checkpoint.size
    pages = range(0, size, PAGE)
    missed = []
    for kind in KINDS:
        for offset in range(PAGE):
            tampered = [start + offset for start in pages if start + offset < size]
            with built.db.uow(write=True) as uow:
                _tamper(uow.session, kind, tampered, built.rows)
                reader = TransparencyLog(Bound(built.db, uow), LogHealth())  # type: ignore[arg-type]
                for index in tampered:
                    try:
                        reader.list_entries(AUDITOR, start_index=index - offset, page_size=PAGE, page_token="")
                        missed.append((kind, index))
                    except DataLoss as error:
                        assert error.reason == "TRANSPARENCY_LOG_INCONSISTENT"
                # Leaving the block rolls every change back.
    assert missed == []
    with built.db.uow() as uow:
        assert [e.entry for e in uow.log.entries(0, size)] == [r.entry for r in built.rows]


def test_every_tile_row_altered_or_deleted_is_found_by_the_audit(built: Built) -> None:
    with built.db.uow() as uow:
        tiles = list(uow.session.execute(select(LogTileRow.level, LogTileRow.idx)))
    size = built.checkpoint.checkpoint.size
    assert len(tiles) == size // 256 + 1 + 1  # level 0, and level 1's partial tile
    missed = []
    for level, index in tiles:
        for change in ("alter", "delete"):
            where = (LogTileRow.level == level, LogTileRow.idx == index)
            with built.db.uow(write=True) as uow:
                if change == "delete":
                    uow.session.execute(delete(LogTileRow).where(*where))
                else:  # one bit of the tile's first hash flipped
                    (old,) = uow.log.read_tiles([Tile(level, index)]).values()
                    uow.session.execute(update(LogTileRow).where(*where).values(hashes=bytes([old[0] ^ 1]) + old[1:]))
                try:
                    audit(Bound(built.db, uow), LogHealth())  # type: ignore[arg-type]
                    missed.append((change, level, index))
                except DataLoss as error:
                    assert error.reason == "TRANSPARENCY_LOG_INCONSISTENT"
    assert missed == []


# -- as an export, and to a witness -----------------------------------------------------------------


def _tampered(rows: list[Row], kind: str, index: int) -> tuple[list[Row], int, int]:
    """The rows a rewriting server would list, and the positions ``[first, after)`` that differ
    from the original's (when the size is the same, the rows from ``after`` on are the original's)."""
    first, after = index, index + 1
    if kind == "delete":
        changed = rows[:index] + rows[index + 1 :]
    elif kind == "alter":
        entry = rows[index].entry + b"\x00"
        changed = [*rows[:index], Row(index, entry, transparency.leaf_hash(entry)), *rows[index + 1 :]]
    elif kind == "reorder":
        other = index + 1 if index + 1 < len(rows) else index - 1
        swapped = list(rows)
        swapped[index], swapped[other] = rows[other], rows[index]
        changed = swapped
        first, after = min(index, other), max(index, other) + 1
    else:
        extra = tp.LogEntry(rights_holder=_entry()).SerializeToString()
        changed = [*rows[:index], Row(index, extra, transparency.leaf_hash(extra)), *rows[index:]]
    # Renumbered as a rewriting server would list them: indexes stay 0, 1, 2, ...; each row's
    # leaf is the hash of its bytes (the original rows' are checked to be, once).
    return [Row(position, row.entry, row.leaf) for position, row in enumerate(changed)], first, after


def _split(width: int) -> int:
    """The largest power of two smaller than ``width`` (RFC 9162's ``k``)."""
    return 1 << ((width - 1).bit_length() - 1)


class _Tree:
    """The RFC 9162 subtree hashes of a list of leaves, each hashed once.

    A tampered copy takes every subtree the tampering did not touch (``same``) from the original
    tree, so each case hashes only the subtrees over the changed rows instead of the whole tree
    again; the test checks this against a full rebuild (`merkle.CompactRange`) on sampled rows.
    """

    def __init__(
        self, leaves: Sequence[bytes], original: _Tree | None = None, same: Callable[[int, int], bool] | None = None
    ) -> None:
        self.leaves = leaves
        self._original, self._same = original, same
        self._memo: dict[tuple[int, int], bytes] = {}

    def hash(self, start: int, end: int) -> bytes:
        found = self._memo.get((start, end))
        if found is None:
            if self._original is not None and self._same is not None and self._same(start, end):
                found = self._original.hash(start, end)
            elif end - start == 1:
                found = self.leaves[start]
            else:
                middle = start + _split(end - start)
                found = merkle.node_hash(self.hash(start, middle), self.hash(middle, end))
            self._memo[(start, end)] = found
        return found

    def root(self) -> bytes:
        return self.hash(0, len(self.leaves))

    def read(self, wanted: Sequence[merkle.Node]) -> list[bytes]:
        return [self.hash(node.start, node.end) for node in wanted]


def _rewritten(original: _Tree, rows: list[Row], first: int, after: int) -> _Tree:
    """The tree a rewriting server would sign now, over ``rows``."""
    size = len(rows)

    def same(start: int, end: int) -> bool:
        return end <= first or (size == len(original.leaves) and start >= after)

    return _Tree([row.leaf for row in rows], original, same)


def _witness_detects(earlier: transparency.Checkpoint, tree: _Tree) -> bool:
    """What `charter audit watch` checks, given the tree a rewriting server would sign now."""
    size = len(tree.leaves)
    if size < earlier.size:
        return True  # a rollback
    if size == earlier.size:
        return tree.root() != earlier.root_hash  # a fork
    proof = merkle.consistency_proof(earlier.size, size, tree.read)
    try:
        merkle.verify_consistency(earlier.size, size, proof, earlier.root_hash, tree.root())
    except merkle.InvalidProof:
        return True
    return False


def _rebuilt_root(rows: list[Row]) -> bytes:
    """The root of ``rows`` rebuilt from every entry's bytes, as `verify-export` does."""
    compact = merkle.CompactRange()
    compact.extend(transparency.leaf_hash(row.entry) for row in rows)
    return compact.root()


@pytest.mark.parametrize("kind", KINDS)
def test_every_row_tampered_in_an_export_fails_verification_and_the_witness(built: Built, kind: str) -> None:
    """Every row of the tree of the second checkpoint (1,025 entries): each case runs the whole
    export through `verify_entries` (the core of `verify-export`), and the witness's consistency
    check against the rewritten tree."""
    if not built.db.url.startswith("sqlite"):
        pytest.skip("the export and the witness are the same on every backend (checked on SQLite)")
    earlier = built.exported.checkpoint
    rows = built.rows[: earlier.size]
    assert all(row.leaf == transparency.leaf_hash(row.entry) for row in rows)
    assert (
        transparency.verify_entries([(r.index, r.leaf, r.entry) for r in rows], built.exported).entries == earlier.size
    )
    original = _Tree([row.leaf for row in rows])
    assert original.root() == earlier.root_hash == _rebuilt_root(rows)
    undetected: list[tuple[str, int, str]] = []
    for index in range(len(rows)):
        changed, first, after = _tampered(rows, kind, index)
        # A rewriting server lists the bytes as it stores them, and leaf hashes that agree.
        try:
            transparency.verify_entries(((r.index, r.leaf, r.entry) for r in changed), built.exported)
            undetected.append((kind, index, "verify-export"))
        except transparency.ExportMismatch:
            pass
        tree = _rewritten(original, changed, first, after)
        if not _witness_detects(earlier, tree):
            undetected.append((kind, index, "witness"))
        if index % 64 == 0 or index == len(rows) - 1:  # the shortcut against a full rebuild
            assert tree.root() == _rebuilt_root(changed), (kind, index)
    assert undetected == []
