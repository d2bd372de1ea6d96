"""``charter-server serve --processes N``: N server processes on one port (SO_REUSEPORT) under a
supervisor that migrates once, restarts a child that dies, and forwards SIGTERM so every child
drains; every child is a whole server over the shared database."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import charter
import pytest
from charter.v1 import api_key_pb2
from charter_server.app import build_services, open_database
from charter_server.config import Settings
from charter_server.domain.clock import SystemClock

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
        settings = Settings(database_url=f"sqlite:///{tmp_path / 'processes.db'}")
        db = open_database(settings)
        try:
            admin = build_services(settings, db, SystemClock()).access.create_bootstrap_admin("processes").secret
        finally:
            db.dispose()
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
