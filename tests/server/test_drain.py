"""A drain with no casualties, counted over 30 SIGTERMs to real server processes under load.

Seen: on most SIGTERMs under load, 1-4 calls that arrived within a few milliseconds of the signal
got CANCELLED with no request id and no log line, so the SDK's ``license()`` blocks failed; and one
exit took the whole grace period with nothing in flight. Here SDK clients keep calling (Authorize,
answered on the event loop, and GetCaller, answered on a worker thread) while the server is
stopped, again and again: no call ends CANCELLED (nor in any error but UNAVAILABLE), the server
logs no CANCELLED call, and every process exits cleanly within its grace period.
"""

from __future__ import annotations

import collections
import functools
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import charter
import pytest

from ._serving import CONTEXT, Party, new_party
from ._support import ServerProcess, free_port, prepare_database, spawn_server, wait_serving

pytestmark = pytest.mark.slow

SIGTERMS = int(__import__("os").environ.get("CHARTER_TEST_SIGTERMS", "30"))
LANES = 2  # servers stopped side by side, each over its own database, to keep the test short
GRACE_SECONDS = 3.0
CLIENT_THREADS = 4


class _Load:
    """SDK clients calling until stopped, counting the outcomes: OK, or the error's code and reason.

    Instead of fixed sleeps, the test waits on what they were for: calls flowing on both paths
    before the signal, and every client having made a call after the exit."""

    FLOWING = 5  # OK calls per client before the signal: more than 10 per drain in all
    LOADED = 0.4  # seconds of load before the signal (the signal's timing is part of the scenario)

    def __init__(self, target: str, party: Party, admin: str) -> None:
        self.outcomes: collections.Counter[str] = collections.Counter()
        self._target, self._party, self._admin = target, party, admin
        self._lock = threading.Lock()
        self._ok = [0] * CLIENT_THREADS
        self._after_exit = [0] * CLIENT_THREADS
        self._exited = threading.Event()
        self._stop = threading.Event()
        self._changed = threading.Condition(self._lock)

    def run(self) -> collections.Counter[str]:
        with ThreadPoolExecutor(max_workers=CLIENT_THREADS) as pool:
            for done in [pool.submit(self._loop, n) for n in range(CLIENT_THREADS)]:
                done.result(timeout=60)
        return self.outcomes

    def _loop(self, number: int) -> None:
        party = self._party
        secret = party.generator if number % 2 == 0 else self._admin
        with charter.Client(self._target, api_key=secret, timeout=5) as client:
            while not self._stop.is_set():
                after_exit = self._exited.is_set()
                try:
                    if number % 2 == 0:
                        client.authorize(
                            character_ids=[party.character_id],
                            use_type=CONTEXT.use_type,
                            content_rating=CONTEXT.content_rating,
                        )
                    else:
                        client.get_caller()
                    outcome = "OK"
                except charter.CharterError as error:
                    outcome = f"{error.code.name}:{error.reason}"
                with self._changed:
                    self.outcomes[outcome] += 1
                    self._ok[number] += outcome == "OK"
                    self._after_exit[number] += after_exit
                    self._changed.notify_all()

    def _wait(self, ready: Callable[[], bool], what: str) -> None:
        with self._changed:
            assert self._changed.wait_for(ready, timeout=30), f"{what}: {dict(self.outcomes)}"

    def wait_flowing(self) -> None:
        """Until every client has had OK answers (calls are flowing on both paths), and the load
        has run for ``LOADED`` seconds, as it always has before a signal."""
        began = time.monotonic()
        self._wait(
            lambda: min(self._ok) >= self.FLOWING and time.monotonic() - began >= self.LOADED, "calls did not flow"
        )

    def exited(self) -> None:
        """The process has exited: wait until every client has made a call since, then stop."""
        self._exited.set()
        try:
            self._wait(lambda: min(self._after_exit) >= 1, "no call after the exit")
        finally:
            self._stop.set()


Drain = tuple[float, int, collections.Counter[str], ServerProcess]
"""How long the exit took, the exit code, the clients' outcomes, the process."""


def _one_drain(
    server: ServerProcess, party: Party | None, admin: str, exited: Callable[[], None]
) -> tuple[Drain, Party]:
    """Wait for a started server, load it, SIGTERM it. Without a party (a lane's first server), the
    party is made on this server first, through the SDK. ``exited`` runs once the process has
    exited, while the clients make their calls after the exit (each waits out the SDK's retries of
    UNAVAILABLE, about 2 s): the lane starts its next server there instead of after them."""
    try:
        wait_serving(server)
        party = party if party is not None else new_party(server.target, admin)
        load = _Load(server.target, party, admin)
        with ThreadPoolExecutor(max_workers=1) as pool:
            running = pool.submit(load.run)
            try:
                load.wait_flowing()  # calls are flowing on both paths
                began = time.monotonic()
                server.process.send_signal(signal.SIGTERM)
                code = server.process.wait(timeout=GRACE_SECONDS + 10)
                took = time.monotonic() - began
                exited()
            finally:
                load.exited()  # calls made after the exit fail to connect (UNAVAILABLE)
            outcomes = running.result(timeout=60)
    finally:
        if server.process.poll() is None:  # the test failed before the signal: leave nothing behind
            server.kill()
    return (took, code, outcomes, server), party


def _database(index: int, tmp_path: Path) -> tuple[str, str]:
    """A lane's database, migrated before any process starts, and its admin secret."""
    database_url = f"sqlite:///{tmp_path / f'lane{index}.db'}"
    return database_url, prepare_database(database_url, f"drain lane {index}")


_PORTS_LOCK = threading.Lock()
_PORTS_TAKEN: set[int] = set()


def _new_port() -> int:
    """A free loopback port that no server of this test has had. Never the port of a server that
    just exited (its clients are still calling it), and never one the other lane picked: a port
    picked but not yet bound can be picked again, and a lane then called the other lane's server
    (its keys refused there as ``CREDENTIALS_INVALID``), its own having failed to bind."""
    with _PORTS_LOCK:
        for _ in range(100):
            port = free_port()
            if port not in _PORTS_TAKEN:
                _PORTS_TAKEN.add(port)
                return port
    raise AssertionError("no free port that this test has not used")


def _lane(index: int, tmp_path: Path, database: tuple[str, str], rounds: int) -> list[Drain]:
    """``rounds`` servers over the lane's database in turn; the first makes the party."""
    database_url, admin = database
    servers: list[ServerProcess] = []

    def start(number: int) -> None:
        options = ("--shutdown-grace-seconds", str(GRACE_SECONDS), "--log-format", "json")
        # The log in a process of its own, as in production: the drain ends with the log process's.
        log_path = tmp_path / f"lane{index}-{number}.log"
        servers.append(spawn_server(database_url, log_path, pick_port=_new_port, options=options, log_process=True))

    drains: list[Drain] = []
    party: Party | None = None
    try:
        start(0)
        for n in range(rounds):
            following = functools.partial(start, n + 1) if n + 1 < rounds else lambda: None
            drain, party = _one_drain(servers[n], party, admin, following)
            drains.append(drain)
    finally:
        for server in servers:  # a failed round leaves the next server started: stop it
            if server.process.poll() is None:
                server.kill()
    return drains


@pytest.mark.timeout(600)
def test_thirty_sigterms_under_load_cancel_nothing_and_exit_within_the_grace_period(tmp_path: Path) -> None:
    databases = [_database(n, tmp_path) for n in range(LANES)]  # one at a time: Alembic is not thread-safe
    with ThreadPoolExecutor(max_workers=LANES) as pool:
        lanes = [pool.submit(_lane, n, tmp_path, databases[n], SIGTERMS // LANES) for n in range(LANES)]
        drains = [drain for lane in lanes for drain in lane.result(timeout=560)]

    outcomes: collections.Counter[str] = collections.Counter()
    for _, _, counted, _ in drains:
        outcomes.update(counted)
    logged_codes: collections.Counter[str] = collections.Counter()
    for _, _, _, server in drains:
        for line in server.log.splitlines():
            if '"rpc.completed"' in line:
                logged_codes[line.split('"code": "')[1].split('"')[0]] += 1
    report = f"outcomes {dict(outcomes)}; logged {dict(logged_codes)}; exits {[round(d[0], 2) for d in drains]}"
    print(report)  # the counts, shown with -rP

    assert len(drains) == SIGTERMS
    assert [code for _, code, _, _ in drains] == [0] * SIGTERMS, report
    assert max(took for took, _, _, _ in drains) < GRACE_SECONDS, report
    assert outcomes["OK"] > 10 * SIGTERMS, report  # calls flowed on every server
    assert not [o for o in outcomes if o.startswith("CANCELLED")], report
    assert set(outcomes) <= {"OK", "UNAVAILABLE:SHUTTING_DOWN", "UNAVAILABLE:None"}, report
    assert set(logged_codes) <= {"OK", "UNAVAILABLE"}, report
    for _, _, _, server in drains:
        assert "Traceback" not in server.log
        assert server.events()[-1] == "server.stopped"
