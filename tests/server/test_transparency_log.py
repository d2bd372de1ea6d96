"""The transparency log's server side on each backend, without the transport: one sequencer per
deployment (a lease in the database), batches, the tiles, and refusing to serve or extend a tree
that no longer recomputes to what was signed.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from charter import transparency
from charter.transparency.tiles import Tile
from charter.v1 import decision_pb2
from charter.v1 import transparency_pb2 as tp
from charter_server.app import Services
from charter_server.config import Settings
from charter_server.domain.clock import SystemClock
from charter_server.domain.errors import DataLoss, NotFound, StorageBusy
from charter_server.domain.models import Principal, Role, SigningKeyPurpose
from charter_server.domain.transparency import PendingEntry
from charter_server.services.transparency import receipts as receipts_module
from charter_server.services.transparency.audit import audit
from charter_server.services.transparency.reader import TransparencyLog
from charter_server.services.transparency.receipts import ReceiptLog
from charter_server.services.transparency.sequencer import LogHealth, Sequencer
from charter_server.storage.database import Database
from charter_server.storage.log_tables import LogEntryRow, LogTileRow
from sqlalchemy import case, delete, update

from ._support import services_on
from .conftest import CapturedLogs

AUDITOR = Principal("key_auditor", Role.AUDITOR)


@dataclass
class Log:
    db: Database
    services: Services
    settings: Settings

    def append(self, count: int) -> list[bytes]:
        written = []
        with self.db.uow(write=True) as uow:
            for i in range(count):
                message = tp.RightsHolderLogged(
                    action=tp.RightsHolderLogged.ACTION_CREATED, rights_holder_id=f"rh_{os.urandom(16).hex()}"
                )
                written.append(self.services.appender.append(uow, "rights_holder", message).entry)
                del i
            uow.commit()
        return written

    def sequencer(self, health: LogHealth | None = None) -> Sequencer:
        """A sequencer of its own (another replica's, as far as the lease goes)."""
        return Sequencer(self.db, self.services.keys, self.settings.origin, health or LogHealth())

    def integrate(self) -> int:
        """Integrate a batch with the deployment's own sequencer."""
        return self.services.sequencer.integrate()

    def reader(self, health: LogHealth | None = None) -> TransparencyLog:
        return TransparencyLog(self.db, health or LogHealth())


@pytest.fixture
def log(migrated_database_url: str) -> Iterator[Log]:
    with services_on(migrated_database_url) as (settings, db, services):
        yield Log(db, services, settings)


def test_one_sequencer_at_a_time_takes_the_lease_and_another_takes_over_when_it_is_released(log: Log) -> None:
    first, second = log.sequencer(), log.sequencer()
    log.append(3)

    integrated = first.integrate()
    log.append(2)
    skipped = second.integrate()
    with log.db.uow(write=True) as uow:
        uow.log.release_lease(first.holder)
        uow.commit()
    taken = second.integrate()
    refused = first.integrate()

    # The first batch also holds the two key activations logged when the keys were made.
    assert (integrated, skipped, taken, refused) == (5, 0, 2, 0)
    with log.db.uow() as uow:
        head = uow.log.head()
    assert (head.tree_size, head.lease_holder) == (7, second.holder)


def test_a_backlog_larger_than_a_batch_is_integrated_in_order_and_every_checkpoint_verifies(log: Log) -> None:
    written = log.append(600)
    sequencer = Sequencer(log.db, log.services.keys, log.settings.origin, LogHealth(), batch_limit=256)

    counts = []
    while count := sequencer.integrate():
        counts.append(count)

    assert counts == [256, 256, 90]
    reader = log.reader()
    latest = reader.checkpoint()
    with log.db.uow() as uow:
        keys = uow.signing_keys.all()
        stored = uow.log.entries(0, latest.tree_size)
    verifiers = [
        transparency.NoteVerifier.from_public_key(log.settings.origin, k.public_key)
        for k in keys
        if k.purpose is SigningKeyPurpose.TRANSPARENCY_LOG
    ]
    signed = transparency.verify_checkpoint(latest.note, origin=log.settings.origin, verifiers=verifiers)
    assert signed.checkpoint.size == 602
    assert [e.entry for e in stored][2:] == written
    compact = transparency.CompactRange()
    compact.extend(transparency.leaf_hash(e.entry) for e in stored)
    assert compact.root() == signed.checkpoint.root_hash


def test_an_entry_waiting_for_its_batch_is_not_integrated_yet(log: Log) -> None:
    log.integrate()
    (entry,) = log.append(1)
    reader = log.reader()

    with pytest.raises(NotFound) as waiting:
        reader.inclusion(AUDITOR, leaf=transparency.leaf_hash(entry))
    log.integrate()
    found = reader.inclusion(AUDITOR, leaf=transparency.leaf_hash(entry))

    assert waiting.value.reason == "LOG_ENTRY_NOT_INTEGRATED"
    assert [shown.entry.entry for shown, _ in found.entries] == [entry]


def _tamper(log: Log, statement: object) -> None:
    with log.db.uow(write=True) as uow:
        uow.session.execute(statement)  # type: ignore[call-overload]
        uow.commit()


DAMAGE = {
    # A complete bottom tile: its parent in the tile above still holds the old root.
    "bottom tile": lambda: (
        update(LogTileRow).where(LogTileRow.level == 0, LogTileRow.idx == 0).values(hashes=os.urandom(32 * 256))
    ),
    # The partial top tile: what the checkpoint's root is computed from.
    "edge tile": lambda: (
        update(LogTileRow).where(LogTileRow.level == 0, LogTileRow.idx == 1).values(hashes=os.urandom(32 * 46))
    ),
    "entry rewritten": lambda: update(LogEntryRow).where(LogEntryRow.idx == 7).values(entry=b"rewritten"),
    "entries swapped": lambda: (
        update(LogEntryRow).where(LogEntryRow.idx.in_([3, 4])).values(idx=case((LogEntryRow.idx == 3, -4), else_=-3))
    ),
    "entry deleted": lambda: delete(LogEntryRow).where(LogEntryRow.idx == 7),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_tree_that_does_not_recompute_is_neither_served_nor_extended(log: Log, damage: str) -> None:
    log.append(300)
    log.integrate()
    _tamper(log, DAMAGE[damage]())
    if damage == "entries swapped":
        _tamper(log, update(LogEntryRow).where(LogEntryRow.idx < 0).values(idx=-LogEntryRow.idx))
    health = LogHealth()

    with pytest.raises(DataLoss) as audited:
        audit(log.db, health)
    reader = log.reader(health)
    with pytest.raises(DataLoss) as later:
        reader.checkpoint()  # once inconsistent, nothing more is served
    log.append(1)

    assert audited.value.reason == later.value.reason == "TRANSPARENCY_LOG_INCONSISTENT"
    assert log.sequencer(health).integrate() == 0
    with log.db.uow() as uow:
        assert uow.log.head().tree_size == 302


@pytest.mark.parametrize("damage", ["edge tile", "entry rewritten", "entry deleted", "entries swapped"])
def test_what_an_answer_touches_is_checked_as_it_is_served(log: Log, damage: str) -> None:
    log.append(300)
    log.integrate()
    _tamper(log, DAMAGE[damage]())
    if damage == "entries swapped":
        _tamper(log, update(LogEntryRow).where(LogEntryRow.idx < 0).values(idx=-LogEntryRow.idx))
    reader = log.reader()

    with pytest.raises(DataLoss) as refused:
        if damage == "edge tile":
            reader.checkpoint()
        else:
            reader.list_entries(AUDITOR, start_index=0, page_size=100, page_token="")

    assert refused.value.reason == "TRANSPARENCY_LOG_INCONSISTENT"


def test_an_intact_log_passes_the_audit(log: Log) -> None:
    log.append(700)
    log.integrate()
    log.append(5)
    log.integrate()

    assert audit(log.db, LogHealth(), chunk=256) == 707


def test_the_sequencer_refuses_to_extend_damaged_tiles(log: Log) -> None:
    log.append(10)
    log.integrate()
    _tamper(
        log, update(LogTileRow).where(LogTileRow.level == 0, LogTileRow.idx == 0).values(hashes=os.urandom(32 * 12))
    )
    log.append(1)

    with pytest.raises(DataLoss):
        log.integrate()

    with log.db.uow() as uow:
        assert (uow.log.head().tree_size, uow.log.pending_count()) == (12, 1)
        assert set(uow.log.read_tiles([Tile(0, 0)])) == {Tile(0, 0)}


def receipt_payload(character_id: str) -> bytes:
    receipt = decision_pb2.DecisionReceipt(
        receipt_id=f"rcp_{os.urandom(16).hex()}",
        licensee_id="lic_1",
        request_digest=os.urandom(32),
        allowed=True,
        characters=[decision_pb2.CharacterDecision(character_id=character_id, allowed=True, rights_holder_id="rh_1")],
    )
    receipt.decide_time.GetCurrentTime()
    return receipt.SerializeToString()


def test_the_sequencer_takes_its_own_replicas_receipts_into_its_batch_without_pending_rows(log: Log) -> None:
    receipts = ReceiptLog(log.db, SystemClock())
    sequencer = Sequencer(log.db, log.services.keys, log.settings.origin, LogHealth(), receipts=receipts)
    sequencer.integrate()  # takes the lease (the keys' entries)
    payloads = [receipt_payload(f"chr_{i}") for i in range(3)]
    for payload in payloads:
        receipts.add(payload, "key_generator")

    with log.db.uow() as uow:
        size_before = uow.log.head().tree_size
    integrated = sequencer.integrate()

    with log.db.uow() as uow:
        entries = uow.log.entries(size_before, size_before + 10)
        pending = uow.log.pending_count()
    digests = [hashlib.sha256(p).digest() for p in payloads]
    assert (integrated, pending, receipts.waiting()) == (3, 0, False)
    assert [tp.LogEntry.FromString(e.entry).decision.receipt_digest for e in entries] == digests
    assert not any(receipts.is_buffered(d) for d in digests)


def test_receipts_stay_buffered_for_the_pending_entries_while_another_replica_sequences(log: Log) -> None:
    receipts = ReceiptLog(log.db, SystemClock())
    ours = Sequencer(log.db, log.services.keys, log.settings.origin, LogHealth(), receipts=receipts)
    other = log.sequencer()
    ours.integrate()  # ours holds the lease, then releases it to the other replica
    with log.db.uow(write=True) as uow:
        uow.log.release_lease(ours.holder)
        uow.commit()
    other.integrate()
    payload = receipt_payload("chr_1")
    receipts.add(payload, "key_generator")

    taken = ours.integrate()  # refused the lease: the receipt stays
    waiting = receipts.waiting()
    flushed = receipts.flush()  # what the buffer's own thread does while the hand-over lapsed
    with log.db.uow() as uow:
        pending = uow.log.pending_count()
    integrated = other.integrate()

    assert (taken, waiting, flushed, pending, integrated) == (0, True, 1, 1, 1)


def test_entries_are_found_by_their_whole_leaf_hash_and_receipt_digest_not_by_the_indexed_prefix(log: Log) -> None:
    # The lookups go through indexes of the hashes' first bytes (migration 0014): entries whose
    # hashes share those bytes must not be mistaken for one another.
    shared = b"\xab\xcd\xef\x01"
    leaves = [shared + bytes([n]) * 28 for n in range(3)]
    receipts = [shared + b"\x01" * 28, shared + b"\x02" * 28]
    rows = [
        PendingEntry(b"entry-0", leaves[0], "rh_1", "lic_1", receipts[0]),
        PendingEntry(b"entry-1", leaves[1], "rh_2", "lic_1", receipts[1]),
        PendingEntry(b"entry-2", leaves[2], "rh_1", "lic_1", receipts[0]),
    ]
    with log.db.uow(write=True) as uow:
        uow.log.add_entries(1_000_000, rows, 0)
        uow.commit()

    with log.db.uow() as uow:
        by_leaf = [[e.index for e in uow.log.entries_by_leaf_hash(leaf)] for leaf in leaves]
        by_receipt = [[e.index for e in uow.log.entries_by_receipt(digest, 10)] for digest in receipts]
        unknown = uow.log.entries_by_leaf_hash(shared + b"\xff" * 28) + uow.log.entries_by_receipt(shared * 8, 10)

    assert by_leaf == [[1_000_000], [1_000_001], [1_000_002]]
    assert by_receipt == [[1_000_000, 1_000_002], [1_000_001]]
    assert unknown == []


def test_a_prune_that_fails_holds_back_no_receipt_is_not_reported_as_their_loss_and_is_tried_again_soon(
    log: Log, captured_logs: CapturedLogs, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seen: the deployment's own import held SQLite's write lock as the log process pruned; the
    # failure was reported as receipts not appended, and the prune put off for an hour.
    receipts = ReceiptLog(log.db, SystemClock(), interval=0.01)
    prunes: list[float] = []
    prune = receipts.prune

    def busy_once() -> int:
        prunes.append(time.monotonic())
        if len(prunes) == 1:
            raise StorageBusy("the database is busy; retry")
        return prune()

    monkeypatch.setattr(receipts, "prune", busy_once)
    monkeypatch.setattr(receipts_module, "_PRUNE_RETRY_SECONDS", 0.05)
    receipts.add(receipt_payload("chr_1"), "key_generator")
    receipts.start()
    try:
        give_up = time.monotonic() + 10
        while (receipts.committed < 1 or len(prunes) < 2) and time.monotonic() < give_up:
            time.sleep(0.01)
    finally:
        receipts.stop()

    failed = captured_logs.events("transparency_log.prune_failed")
    assert (receipts.committed, len(prunes) >= 2) == (1, True)
    assert [event["error_type"] for event in failed] == ["StorageBusy"]
    assert captured_logs.events("transparency_log.receipts_not_appended") == []


def test_receipts_sent_again_while_they_still_wait_here_are_taken_once(log: Log) -> None:
    # A server that lost its connection to the shared log process of its tree, which lives on,
    # sends its unconfirmed batches again to the same process.
    receipts = ReceiptLog(log.db, SystemClock())
    batch = [(receipt_payload("chr_1"), "key_generator"), (receipt_payload("chr_2"), "key_generator")]

    first = receipts.accept(batch)
    while_waiting = receipts.accept(batch, resent=True)
    flushed = receipts.flush()
    once_logged = receipts.accept(batch, resent=True)

    assert (first, while_waiting, flushed, once_logged) == (2, 0, 2, 0)
