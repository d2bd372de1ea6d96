"""``charter-server serve --processes N``: N server processes on one port (SO_REUSEPORT) under a
supervisor that migrates once, restarts a child that dies, and forwards SIGTERM so every child
drains; every child is a whole server over the shared database."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from pathlib import Path

import charter
import pytest
from charter.v1 import api_key_pb2
from charter_server.app import build_services, open_database
from charter_server.config import Settings
from charter_server.domain.clock import SystemClock

from ._serving import CONTEXT, Party, new_party
from ._support import ServerProcess, spawn_server, wait_serving


def _lines(server: ServerProcess, event: str) -> list[dict[str, object]]:
    return [
        line
        for line in (json.loads(text) for text in server.log.splitlines() if text.startswith("{"))
        if line["event"] == event
    ]


def _wait_for(server: ServerProcess, event: str, count: int, timeout: float = 60) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _lines(server, event)
        if len(found) >= count:
            return found
        assert server.process.poll() is None, server.log
        time.sleep(0.1)
    pytest.fail(f"fewer than {count} {event} lines within {timeout} s:\n{server.log}")


def _admin(database_url: str) -> str:
    settings = Settings(database_url=database_url)
    db = open_database(settings)
    try:
        return build_services(settings, db, SystemClock()).access.create_bootstrap_admin("processes").secret
    finally:
        db.dispose()


@pytest.mark.slow
def test_two_processes_serve_one_port_and_stop_together(tmp_path: Path) -> None:
    server = spawn_server(
        f"sqlite:///{tmp_path / 'processes.db'}",
        tmp_path / "processes.log",
        serve_options=("--processes", "2"),
        log_process=True,
    )
    try:
        started = _wait_for(server, "server.started", 2)
        wait_serving(server)
        pids = {line["pid"] for line in started}
        ports = {line["port"] for line in started}
        admin = _admin(f"sqlite:///{tmp_path / 'processes.db'}")
        # New connections land on either child; every call works whichever answers.
        made = []
        for number in range(12):
            with charter.Client(server.target, api_key=admin) as client:
                made.append(client.create_api_key(display_name=f"key {number}", role=api_key_pb2.ROLE_AUDITOR))
        victim = int(next(iter(pids)))  # type: ignore[call-overload]
        os.kill(victim, signal.SIGKILL)
        died = _wait_for(server, "processes.child_died", 1)
        _wait_for(server, "server.started", 3)
        with charter.Client(server.target, api_key=admin) as client:
            after_restart = [client.get_caller() for _ in range(5)]
    finally:
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(timeout=30)

    assert len(pids) == 2
    assert len(ports) == 1
    assert len({key.api_key.id for key in made}) == 12
    assert died[0]["pid"] == victim
    assert all(caller.display_name == "processes" for caller in after_restart)
    assert code == 0
    assert len(_lines(server, "server.stopped")) == 2  # the two children alive at the end drained
    assert _lines(server, "processes.stopped")[0]["exit_codes"] == [0, 0]
    assert "Traceback" not in server.log


def _decide(target: str, party: Party, count: int) -> list[bytes]:
    """``count`` allowed decisions, a connection each (so that both children decide); the digests
    of their receipts."""
    digests = []
    for _ in range(count):
        with charter.Client(target, api_key=party.generator) as client:
            decision = client.authorize(
                character_ids=[party.character_id], use_type=CONTEXT.use_type, content_rating=CONTEXT.content_rating
            )
        digests.append(decision.receipt_digest)
    return digests


def _logged(database_url: str, digests: list[bytes], timeout: float = 30) -> tuple[list[int], int]:
    """How many log entries each receipt has, and how many entries are pending: once every receipt
    has one, or after ``timeout`` seconds."""
    db = open_database(Settings(database_url=database_url))
    try:
        deadline = time.monotonic() + timeout
        while True:
            with db.uow() as uow:
                counts = [len(uow.log.entries_by_receipt(digest, 10)) for digest in digests]
                pending = uow.log.pending_count()
            if all(counts) or time.monotonic() > deadline:
                return counts, pending
            time.sleep(0.2)
    finally:
        db.dispose()


@pytest.mark.slow
def test_the_processes_share_one_log_process_whose_death_loses_and_doubles_no_receipt(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'shared.db'}"
    server = spawn_server(database_url, tmp_path / "shared.log", serve_options=("--processes", "2"), log_process=True)
    digests: list[bytes] = []
    try:
        _wait_for(server, "server.started", 2)
        wait_serving(server)
        party = new_party(server.target, _admin(database_url))
        digests += _decide(server.target, party, 10)
        socket = str(_wait_for(server, "transparency_log.connected", 2)[0]["socket"])
        assert stat.S_IMODE(os.stat(os.path.dirname(socket)).st_mode) == 0o700  # only its user may connect
        first = _wait_for(server, "transparency_log.shared_process_started", 1)[0]
        os.kill(int(first["pid"]), signal.SIGKILL)  # type: ignore[call-overload]
        digests += _decide(server.target, party, 10)  # kept by the servers while it is gone, resent after
        _wait_for(server, "transparency_log.shared_process_started", 2)
        _wait_for(server, "transparency_log.connected", 4)  # both servers, twice
        digests += _decide(server.target, party, 5)
        # The dead process held the sequencer's lease: the new one integrates once it lapses.
        logged, pending = _logged(database_url, digests)
    finally:
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(timeout=60)

    assert code == 0
    assert (len(digests), len(set(digests))) == (25, 25)
    assert logged == [1] * 25  # every receipt in the log once: none lost, none twice
    assert pending == 0
    assert len(_lines(server, "transparency_log.shared_process_died")) == 1
    assert _lines(server, "transparency_log.process_started") == []  # no log process per server
    assert len(_lines(server, "server.stopped")) == 2
    assert "Traceback" not in server.log


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.slow
def test_a_tree_whose_supervisor_is_killed_drains_and_logs_every_receipt(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'orphans.db'}"
    server = spawn_server(database_url, tmp_path / "orphans.log", serve_options=("--processes", "2"), log_process=True)
    children: list[int] = []
    try:
        children = [int(line["pid"]) for line in _wait_for(server, "server.started", 2)]  # type: ignore[call-overload]
        wait_serving(server)
        party = new_party(server.target, _admin(database_url))
        shared = int(_wait_for(server, "transparency_log.shared_process_started", 1)[0]["pid"])  # type: ignore[call-overload]
        digests = _decide(server.target, party, 10)  # some still on their way to the log
        server.process.kill()  # the supervisor: nobody would restart or stop its children
        server.process.wait(timeout=10)
        deadline = time.monotonic() + 60
        while not all(_gone(pid) for pid in (*children, shared)) and time.monotonic() < deadline:
            time.sleep(0.1)
        gone = [_gone(pid) for pid in (*children, shared)]
        logged, pending = _logged(database_url, digests, timeout=5)
    finally:
        for pid in children:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)

    noticed = sorted(int(line["supervisor_pid"]) for line in _lines(server, "server.supervisor_gone"))  # type: ignore[call-overload]
    assert gone == [True, True, True]  # each child drained by itself, then the log process ended
    assert noticed == [server.process.pid] * 2
    assert len(_lines(server, "server.stopped")) == 2
    assert len(_lines(server, "transparency_log.supervisor_gone")) == 1
    assert logged == [1] * 10  # what the children decided reached the log before they ended
    assert pending == 0
    assert "Traceback" not in server.log
