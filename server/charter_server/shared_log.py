"""The one transparency-log process of ``charter-server serve --processes N``, shared by every
server process of the tree.

A log process per server (`charter_server.log_process`) would give the tree N sequencers of which
one holds the lease at a time: the others would write their receipts as pending rows for it to read
back, delete and integrate, doubling the log's work per receipt, and N processes would poll the
database. Instead the supervisor starts one (`SharedLogProcess`) listening on a Unix socket in a
directory only its user may enter, and tells the servers where (``log_socket``); each server's
`LogProcess` connects to it and speaks to it exactly as to a log process of its own: batches sent,
confirmed once committed, sent again after a loss (the log leaves out what it already holds). One
receipt log and one sequencer take every server's receipts in the order they arrive. If it dies,
the supervisor starts another a second later; the servers keep their receipts meanwhile and
reconnect. When the tree stops, the servers hand over their last receipts first, then the
supervisor stops it. Whose supervisor is gone (even by ``kill -9``) goes on until no server is
connected, then commits what it holds and exits.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing import Pipe
from multiprocessing.connection import Connection, Listener, wait
from typing import Any, cast

import structlog

from charter_server.config import Settings
from charter_server.log_process import (
    POLL_SECONDS,
    RESTART_DELAY_SECONDS,
    STOP_SECONDS,
    LogWorker,
    end,
    worker_settings,
)

log = structlog.get_logger(__name__)


@dataclass
class _Peer:
    """A server of the tree, as the shared log process sees it: its batches received and not yet
    confirmed (batch, how many receipts received in all up to its end), and whether it stops."""

    batches: deque[tuple[int, int]] = field(default_factory=deque)
    stopping: bool = False


class SharedLogWorker(LogWorker):
    """The log process of ``serve --processes N``, shared by every server of the tree: each connects
    to ``listener`` and speaks to it as to a log process of its own; ``conn`` is the supervisor's,
    which says when to stop. One receipt log and one sequencer take every server's receipts in the
    order they arrive, so a batch is confirmed once as many receipts are committed as had arrived
    by its end. Whose supervisor is gone (even by ``kill -9``) stops once no server is connected."""

    def __init__(self, settings: Settings, conn: Connection, listener: Listener) -> None:
        super().__init__(settings, conn)
        self._listener = listener
        self._arrivals: deque[Connection] = deque()  # accepted on a thread, taken by `run`
        self._peers: dict[Connection, _Peer] = {}

    def _accept(self) -> None:
        while True:
            try:
                self._arrivals.append(self._listener.accept())
            except OSError:
                return  # the listener is closed: the process stops

    def _tell_health(self, problem: str) -> None:
        for peer in list(self._peers):
            self._send_to(peer, ("health", problem))

    def _send_to(self, peer: Connection, message: tuple[Any, ...]) -> None:
        with self._send_lock, contextlib.suppress(OSError):
            peer.send(message)

    def run(self) -> int:
        """Serve the tree's servers until the supervisor says stop (or is gone and no server is
        connected); commit everything received first."""
        self._receipts.start()
        self._sequencer.start()
        self._auditor.start()
        threading.Thread(target=self._accept, name="charter-log-accept", daemon=True).start()
        received = 0
        supervisor: Connection | None = self._conn
        stop = False
        try:
            self._send(("ready",))
            while not stop and (supervisor is not None or self._peers or self._arrivals):
                while self._arrivals:
                    peer = self._arrivals.popleft()
                    self._peers[peer] = _Peer()
                    self._send_to(peer, ("ready",))
                    if self._health.problem is not None:
                        self._send_to(peer, ("health", self._health.problem))
                watched = [*self._peers] if supervisor is None else [supervisor, *self._peers]
                for ready in cast("list[Connection]", wait(watched, POLL_SECONDS)):
                    try:
                        message: tuple[Any, ...] = ready.recv()
                    except (EOFError, OSError):
                        if ready is supervisor:
                            supervisor = None
                            log.warning("transparency_log.supervisor_gone", servers=len(self._peers))
                        else:
                            self._drop(ready)
                        continue
                    if ready is supervisor:
                        stop = message[0] == "stop"
                    elif message[0] == "receipts":
                        _, batch, receipts, resent = message
                        received += self._receipts.accept(receipts, resent=resent)
                        self._peers[ready].batches.append((batch, received))
                    elif message[0] == "health":
                        self._health.fail(message[1])
                    elif message[0] == "stop":
                        self._peers[ready].stopping = True
                self._confirm_peers()
        except Exception:
            log.exception("transparency_log.shared_process_failed")
        return self._stop_all()

    def _stop_all(self) -> int:
        self._listener.close()
        self._auditor.stop()
        self._receipts.stop()  # appends what is buffered; then the sequencer's last batch
        self._sequencer.stop()
        self._confirm_peers()
        for peer in list(self._peers):
            self._send_to(peer, ("stopped",))
            self._drop(peer)
        self._send(("stopped",))
        self._db.dispose()
        return 0

    def _confirm_peers(self) -> None:
        committed = self._receipts.committed
        for peer, state in list(self._peers.items()):
            last = None
            while state.batches and state.batches[0][1] <= committed:
                last = state.batches.popleft()[0]
            if last is not None:
                self._send_to(peer, ("committed", last))
            if state.stopping and not state.batches:
                self._send_to(peer, ("stopped",))
                self._drop(peer)

    def _drop(self, peer: Connection) -> None:
        self._peers.pop(peer, None)
        with contextlib.suppress(OSError):
            peer.close()


class SharedLogProcess:
    """The supervisor's side of the log process its servers share (``serve --processes N``): starts
    it on a Unix socket in a directory only this user can enter, starts it again if it dies (the
    servers reconnect and resend what it did not confirm), and stops it once the servers have."""

    def __init__(self, env: dict[str, str]) -> None:
        self._env = env
        self._directory = tempfile.mkdtemp(prefix="charter-log-")
        self.socket = os.path.join(self._directory, "log.sock")
        """The socket the servers connect to (``log_socket``)."""
        self._child: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._restart_at = 0.0
        self.starts = 0

    def start(self, timeout: float = 30.0) -> None:
        """Start the log process; wait at most ``timeout`` seconds until it listens."""
        parent, child_end = Pipe()
        fd = child_end.fileno()
        command = [sys.executable, "-m", "charter_server.shared_log", "--fd", str(fd), "--listen", self.socket]
        try:
            self._child = subprocess.Popen(  # noqa: S603 - this very program, fixed arguments
                command, env=self._env, pass_fds=(child_end.fileno(),), stdin=subprocess.DEVNULL
            )
        finally:
            child_end.close()
        self._conn = parent
        self.starts += 1
        log.info("transparency_log.shared_process_started", pid=self._child.pid)
        with contextlib.suppress(EOFError, OSError):
            if parent.poll(timeout):
                parent.recv()  # ("ready",): it listens

    def check(self, stopping: bool) -> None:
        """From the supervisor's loop: notice a log process that died and start another."""
        child, conn = self._child, self._conn
        if child is None:
            if not stopping and time.monotonic() >= self._restart_at:
                self.start(timeout=0)
            return
        with contextlib.suppress(EOFError, OSError):
            while conn is not None and conn.poll():
                conn.recv()
        code = child.poll()
        if code is not None:
            log.error("transparency_log.shared_process_died", pid=child.pid, exit_code=code)
            self._close()
            self._restart_at = time.monotonic() + RESTART_DELAY_SECONDS

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Let the log process commit what it holds and exit (the servers have stopped)."""
        child, conn = self._child, self._conn
        if child is not None and conn is not None:
            with contextlib.suppress(OSError):
                conn.send(("stop",))
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout)
        self._close()
        shutil.rmtree(self._directory, ignore_errors=True)

    def _close(self) -> None:
        child, conn = self._child, self._conn
        self._child = self._conn = None
        end(conn, child)


def main(argv: Sequence[str] | None = None) -> int:
    """The shared log process: ``python -m charter_server.shared_log --fd N --listen PATH`` (started
    by `SharedLogProcess`)."""
    parser = argparse.ArgumentParser(prog="charter_server.shared_log")
    parser.add_argument("--fd", type=int, required=True, help="the socket to the supervisor")
    parser.add_argument("--listen", required=True, help="the Unix socket the servers of the tree connect to")
    args = parser.parse_args(argv)
    settings = worker_settings()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(args.listen)  # left by a log process that died
    return SharedLogWorker(settings, Connection(args.fd), Listener(args.listen, family="AF_UNIX")).run()


if __name__ == "__main__":
    sys.exit(main())
