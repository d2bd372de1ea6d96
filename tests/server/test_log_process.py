"""The transparency log in a process of its own (`charter_server.log_process`), on each backend.

The server hands its signed receipts to the log process in batches and keeps each batch until the
log process confirms it committed; these tests check that every receipt ends in the log exactly
once when the log process runs normally, is killed, or finds the log damaged, and that a log
process whose server is killed commits what it received and exits.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import charter
import pytest
from charter_server.config import Settings
from charter_server.log_process import LogProcess
from charter_server.services.transparency.receipts import ReceiptLog
from charter_server.services.transparency.sequencer import LogHealth
from charter_server.storage.database import Database
from charter_server.storage.log_tables import LogTileRow
from sqlalchemy import update

from ._serving import CONTEXT, new_party, wait_until
from ._support import prepare_database, services_on, spawn_server, wait_serving
from .test_transparency_log import receipt_payload


@pytest.fixture
def deployment(migrated_database_url: str) -> Iterator[tuple[Settings, Database, ReceiptLog]]:
    """A migrated database with its keys and a first checkpoint, and the server's own receipt log
    (what a `LogProcess` falls back on); the lease left free, as a server leaves it at start."""
    with services_on(migrated_database_url) as (settings, db, services):
        services.sequencer.integrate()
        services.sequencer.release()
        yield settings, db, services.receipt_log


def entries_of(db: Database, payloads: list[bytes]) -> list[int]:
    """How many log entries (integrated) each receipt has."""
    with db.uow() as uow:
        return [len(uow.log.entries_by_receipt(hashlib.sha256(p).digest(), 10)) for p in payloads]


def pending_count(db: Database) -> int:
    with db.uow() as uow:
        return uow.log.pending_count()


def started(settings: Settings, health: LogHealth, fallback: ReceiptLog) -> LogProcess:
    relay = LogProcess(settings, health, fallback, interval=0.02)
    relay.start()
    assert wait_until(lambda: relay.pid is not None, timeout=10)
    return relay


def test_receipts_go_through_the_log_process_into_the_tree_once_each(
    deployment: tuple[Settings, Database, ReceiptLog],
) -> None:
    settings, db, fallback = deployment
    relay = started(settings, LogHealth(), fallback)
    pid = relay.pid
    try:
        payloads = [receipt_payload(f"chr_{n}") for n in range(300)]
        for payload in payloads:
            relay.add(payload, "key_generator")
        settled = relay.settle(30)
        integrated = wait_until(lambda: entries_of(db, payloads) == [1] * 300, timeout=30)
    finally:
        relay.stop()

    assert (settled, integrated, relay.starts) == (True, True, 1)
    assert pid is not None and pid != os.getpid()
    assert relay.pid is None  # stopped and reaped
    with db.uow() as uow:
        head = uow.log.head()
        checkpoint = uow.log.latest_checkpoint()
    assert checkpoint is not None and checkpoint.tree_size == head.tree_size
    assert pending_count(db) == 0


def test_a_killed_log_process_is_replaced_and_gets_the_receipts_it_had_not_confirmed(
    deployment: tuple[Settings, Database, ReceiptLog],
) -> None:
    settings, db, fallback = deployment
    relay = started(settings, LogHealth(), fallback)
    try:
        first = [receipt_payload(f"chr_a{n}") for n in range(50)]
        for payload in first:
            relay.add(payload, "key_generator")
        assert relay.settle(30)
        pid = relay.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # it receives nothing more, confirms nothing more
        second = [receipt_payload(f"chr_b{n}") for n in range(50)]
        for payload in second:
            relay.add(payload, "key_generator")
        held = hashlib.sha256(second[0]).digest()
        sent_unconfirmed = wait_until(lambda: relay.waiting() == 50 and relay.is_buffered(held), timeout=5)
        os.kill(pid, signal.SIGKILL)
        settled = relay.settle(30)
        both = first + second
        integrated = wait_until(lambda: entries_of(db, both) == [1] * 100, timeout=30)
    finally:
        relay.stop()

    assert (sent_unconfirmed, settled, integrated, relay.starts) == (True, True, True, 2)
    assert pending_count(db) == 0


def test_resent_receipts_already_in_the_log_are_left_out(deployment: tuple[Settings, Database, ReceiptLog]) -> None:
    _, db, receipts = deployment
    pending = [receipt_payload(f"chr_p{n}") for n in range(3)]
    fresh = receipt_payload("chr_new")
    receipts.accept([(p, "key_generator") for p in pending])
    receipts.flush()  # in log_pending
    again = [(p, "key_generator") for p in [*pending, fresh]]

    taken = receipts.accept(again, resent=True)
    flushed = receipts.flush()
    not_resent = receipts.accept([(fresh, "key_generator")])

    assert (taken, flushed, not_resent, receipts.committed) == (1, 1, 1, 4)
    assert pending_count(db) == 4


def test_a_log_process_that_finds_the_tree_damaged_stops_the_server_serving_it(
    deployment: tuple[Settings, Database, ReceiptLog],
) -> None:
    settings, db, fallback = deployment
    health = LogHealth()
    relay = started(settings, health, fallback)
    try:
        payloads = [receipt_payload(f"chr_{n}") for n in range(20)]
        for payload in payloads:
            relay.add(payload, "key_generator")
        assert relay.settle(30)
        assert wait_until(lambda: entries_of(db, payloads) == [1] * 20, timeout=30)
        with db.uow(write=True) as uow:
            uow.session.execute(update(LogTileRow).values(hashes=os.urandom(32)))
            uow.commit()
        with db.uow() as uow:
            size = uow.log.head().tree_size
        relay.add(receipt_payload("chr_after"), "key_generator")  # its batch finds the damage
        told = wait_until(lambda: health.problem is not None, timeout=30)
        settled = relay.settle(30)
    finally:
        relay.stop()

    assert (told, settled) == (True, True)
    with db.uow() as uow:
        assert uow.log.head().tree_size == size  # not extended
        assert uow.log.pending_count() == 1  # the receipt is kept, pending


@pytest.mark.slow
def test_a_log_process_whose_server_is_killed_commits_what_it_received_and_exits(
    database_url: str, tmp_path: Path
) -> None:
    url = database_url if not database_url.startswith("sqlite") else f"sqlite:///{tmp_path / 'killed.db'}"
    if not database_url.startswith("sqlite"):
        pytest.skip("one backend is enough for the process kill; the log process itself runs on both above")
    admin = prepare_database(url, "log process kill")
    server = spawn_server(url, tmp_path / "server.log", log_process=True)
    try:
        wait_serving(server)
        assert wait_until(lambda: _children(server.process.pid) != [], timeout=30), server.log
        (log_pid,) = _children(server.process.pid)
        party = new_party(server.target, admin)
        # Stopped, the log process reads nothing: the batches wait in its socket, sent, unconfirmed.
        os.kill(log_pid, signal.SIGSTOP)
        digests = []
        with charter.Client(server.target, api_key=party.generator, timeout=10) as client:
            for _ in range(40):
                decision = client.authorize(
                    character_ids=[party.character_id], use_type=CONTEXT.use_type, content_rating=CONTEXT.content_rating
                )
                digests.append(decision.receipt_digest)
        time.sleep(0.5)  # the server sends every 50 ms
        server.kill()
        os.kill(log_pid, signal.SIGCONT)
        exited = wait_until(lambda: not Path(f"/proc/{log_pid}").exists() or _zombie(log_pid), timeout=30)
    finally:
        server.kill()

    db = Database(url)
    try:
        with db.uow() as uow:
            logged = [len(uow.log.entries_by_receipt(d, 10)) + uow.log.is_pending(receipt_digest=d) for d in digests]
    finally:
        db.dispose()
    assert exited
    assert logged == [1] * 40, server.log


def _children(pid: int) -> list[int]:
    """A process's children, whichever of its threads started them."""
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (FileNotFoundError, IndexError):
        return True
