"""The transparency log's own process: a server hands its decision receipts to it in batches.

Why a process: the log's work per receipt (its entries and tallies built in Python, its batch's
statements, its checkpoint signed) holds the interpreter's lock for about 18 µs per ``Authorize``
and stalls the event loop that serves calls; in a process of its own it runs on another core.
``charter-server serve`` starts one per server process (``log_process``, on by default; the servers
of ``serve --processes N`` share one instead, see ``charter_server.shared_log``); a server built in
a test or embedded in-process with ``log_process`` off runs the same `ReceiptLog` and `Sequencer`
on two threads of its own instead.

The server's side (`LogProcess`) keeps what ``Authorize`` signed in a buffer (bounded: a full one
fails ``Authorize`` closed, retryable) and every ``interval`` sends it to the log process over a
socket pair as one batch, which it keeps until the log process confirms that the batch's receipts
are committed (in ``log_pending``, or integrated by its sequencer). The log process runs the
`ReceiptLog`, the `Sequencer` and the `LogAuditor` on its own connections to the same database.
A log process that dies is started again and given every unconfirmed batch once more, marked
resent: it leaves out the receipts whose entries the log already holds, so nothing is lost and
nothing logged or counted twice. On stop the server sends what is left and waits for the log
process to commit it and exit; receipts it could not confirm are appended by the server itself.
A log process whose server is gone (even by ``kill -9``) commits what it holds and exits.

Messages, each a pickled tuple (multiprocessing's `Connection`)::

    server -> log: ("receipts", batch, [(payload, actor_key_id), ...], resent) | ("health", problem) | ("stop",)
    log -> server: ("ready",) | ("committed", batch) every batch up to it | ("health", problem) | ("stopped",)
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from multiprocessing import Pipe
from multiprocessing.connection import Client, Connection
from typing import Any

import structlog

from charter_server import logs
from charter_server.config import Settings, child_environment
from charter_server.domain.clock import SystemClock
from charter_server.domain.errors import StorageBusy
from charter_server.services.keys import DEVELOPMENT_KEK, KeyService
from charter_server.services.transparency.appender import LogAppender
from charter_server.services.transparency.audit import LogAuditor
from charter_server.services.transparency.receipts import MAX_PENDING, ReceiptLog, holds, take
from charter_server.services.transparency.sequencer import LogHealth, Sequencer
from charter_server.storage.database import Database

log = structlog.get_logger(__name__)

Receipt = tuple[bytes, str]

SEND_SECONDS = 0.05
"""How often the server sends its buffered receipts to the log process."""
RESTART_DELAY_SECONDS = 1.0
"""How long the server waits before starting a log process again after one died."""
STOP_SECONDS = 10.0
"""How long the server waits, when it stops, for its log process to commit the last receipts."""
POLL_SECONDS = 0.02
"""How soon the log process confirms a commit to its server."""


class LogProcess:
    """The server's side: the buffer of signed receipts, sent to the log process in batches."""

    def __init__(
        self,
        settings: Settings,
        health: LogHealth,
        fallback: ReceiptLog,
        *,
        interval: float = SEND_SECONDS,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self._settings = settings
        self._health = health
        # This process's own receipt log: appends what the log process never confirmed, at stop.
        self._fallback = fallback
        self._interval = interval
        self._max = max_pending
        # deque.append and popleft are atomic: the hot path takes no lock.
        self._buffer: deque[Receipt] = deque()
        self._unconfirmed: deque[tuple[int, list[Receipt]]] = deque()
        self._unconfirmed_count = 0
        self._batch = 0
        self._conn: Connection | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._send_lock = threading.Lock()
        self._next_start = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = False  # the log process has started its threads
        self._stopped = False
        self._stop_timeout = STOP_SECONDS
        self.starts = 0
        """How many log processes this server has started (more than one: one died)."""
        health.subscribe(self._tell_health)

    @property
    def pid(self) -> int | None:
        """The log process's id, while one runs."""
        child = self._child
        return None if child is None else child.pid

    def add(self, payload: bytes, actor_key_id: str) -> None:
        """Log a signed receipt (its payload exactly as signed) soon.

        Raises:
            StorageBusy: The buffer is full because the log has not taken receipts for a while.
        """
        if len(self._buffer) + self._unconfirmed_count >= self._max:
            raise StorageBusy("the transparency log is behind; retry")
        self._buffer.append((payload, actor_key_id))

    def is_buffered(self, receipt_digest: bytes) -> bool:
        """Whether a receipt with this digest is signed but not yet confirmed in the log."""
        return holds([*self._buffer, *(r for _, batch in list(self._unconfirmed) for r in batch)], receipt_digest)

    def waiting(self) -> int:
        """How many receipts are signed but not yet confirmed in the log."""
        return len(self._buffer) + self._unconfirmed_count

    def settle(self, timeout: float) -> bool:
        """Wait until every receipt added so far is confirmed in the log; whether it was in time."""
        deadline = time.monotonic() + timeout
        while self.waiting():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def start(self) -> None:
        """Start the log process and the thread that feeds it (the process starts in the background:
        receipts wait in the buffer until it is up)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="charter-log-relay", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Send what is left and let the log process commit it and exit, waiting at most
        ``timeout`` seconds; then end it and append what it did not confirm from here."""
        self._stop_timeout = timeout
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout + 30)
            self._thread = None

    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            try:
                self._pump()
            except (EOFError, OSError) as error:
                self._lost(f"{type(error).__name__}: {error}")
            except Exception:
                log.exception("transparency_log.relay_failed")
                self._lost("relay failed")
            if stopping:
                break
            self._stop.wait(self._interval)
        self._finish()

    def _pump(self) -> None:
        if self._conn is None:
            if time.monotonic() < self._next_start:
                return
            self._start_process()
        conn = self._conn
        assert conn is not None
        child = self._child
        if child is not None and child.poll() is not None:
            raise EOFError(f"the log process exited with status {child.returncode}")
        while conn.poll():
            self._receive(conn.recv())
        taken = take(self._buffer, len(self._buffer))
        if taken:
            self._batch += 1
            self._unconfirmed.append((self._batch, taken))
            self._unconfirmed_count += len(taken)
            self._send(("receipts", self._batch, taken, False))
            log.debug("transparency_log.receipts_sent", batch=self._batch, receipts=len(taken))

    def _start_process(self) -> None:
        if self._settings.log_socket:  # the log process of ``serve --processes N``, shared
            self._conn = Client(self._settings.log_socket, family="AF_UNIX")
            self._ready = False
            self.starts += 1
            log.info("transparency_log.connected", socket=self._settings.log_socket)
            self._resend()
            return
        parent, child_end = Pipe()  # duplex: a socket pair
        command = [sys.executable, "-m", "charter_server.log_process", "--fd", str(child_end.fileno())]
        try:
            self._child = subprocess.Popen(  # noqa: S603 - this very program, fixed arguments
                command,
                env=child_environment(self._settings),
                pass_fds=(child_end.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        finally:
            child_end.close()
        self._conn = parent
        self._ready = False
        self.starts += 1
        log.info("transparency_log.process_started", pid=self._child.pid)
        self._resend()

    def _resend(self) -> None:
        # A batch the previous process did not confirm may or may not be in the log: resent, the
        # new process appends only the receipts the log does not hold.
        for batch, receipts in list(self._unconfirmed):
            self._send(("receipts", batch, receipts, True))
        if self._health.problem is not None:
            self._send(("health", self._health.problem))

    def _receive(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "committed":
            upto = message[1]
            while self._unconfirmed and self._unconfirmed[0][0] <= upto:
                _, receipts = self._unconfirmed.popleft()
                self._unconfirmed_count -= len(receipts)
        elif kind == "health":
            self._health.fail(message[1])
        elif kind == "ready":
            self._ready = True
        elif kind == "stopped":
            self._stopped = True

    def _send(self, message: tuple[Any, ...]) -> None:
        conn = self._conn
        if conn is None:
            return
        with self._send_lock:
            conn.send(message)

    def _tell_health(self, problem: str) -> None:
        # A log process started later is told when it starts.
        with contextlib.suppress(EOFError, OSError):
            self._send(("health", problem))

    def _lost(self, why: str) -> None:
        """The log process is gone or unusable: end it, and start another after a delay."""
        log.error("transparency_log.process_lost", reason=why, unconfirmed=self._unconfirmed_count)
        self._close()
        self._next_start = time.monotonic() + RESTART_DELAY_SECONDS

    def _close(self) -> None:
        conn, child = self._conn, self._child
        self._conn = self._child = None
        end(conn, child)

    def _finish(self) -> None:
        conn = self._conn
        deadline = time.monotonic() + self._stop_timeout
        if conn is not None:
            try:
                self._pump()
                # A log process still starting (seconds on a busy machine) is not waited for:
                # ended, it leaves its receipts to this process.
                if self._ready:
                    self._send(("stop",))
                while self._ready and not self._stopped and time.monotonic() < deadline:
                    if conn.poll(0.02):
                        self._receive(conn.recv())
            except (EOFError, OSError) as error:
                log.error("transparency_log.process_lost", reason=str(error), unconfirmed=self._unconfirmed_count)
            child = self._child
            if child is not None and self._stopped:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
            self._close()
        left = [r for _, batch in self._unconfirmed for r in batch] + take(self._buffer, len(self._buffer))
        if not left:
            return
        try:
            self._fallback.accept(left, resent=True)
            self._fallback.flush()
            self._unconfirmed.clear()
            self._unconfirmed_count = 0
            log.warning("transparency_log.receipts_appended_by_server", receipts=len(left))
        except Exception:
            log.exception("transparency_log.receipts_lost", receipts=len(left))


def end(conn: Connection | None, child: subprocess.Popen[bytes] | None) -> None:
    """Close the connection to a log process and end the process (if it still runs), reaped."""
    if conn is not None:
        conn.close()
    if child is not None:
        if child.poll() is None:
            child.kill()
        child.wait()


class LogWorker:
    """The log process's side: the receipt log, the sequencer and the auditor, fed by the server."""

    def __init__(self, settings: Settings, conn: Connection) -> None:
        self._conn = conn
        self._send_lock = threading.Lock()
        clock = SystemClock()
        self._db = Database(settings.database_url, busy_timeout_ms=settings.db_busy_timeout_ms, pool_size=2)
        keys = KeyService(
            self._db, clock, settings.kek() or DEVELOPMENT_KEK, log_origin=settings.origin, log=LogAppender(clock)
        )
        self._health = LogHealth()
        self._health.subscribe(self._tell_health)
        self._receipts = ReceiptLog(self._db, clock)
        self._sequencer = Sequencer(
            self._db,
            keys,
            settings.origin,
            self._health,
            interval=settings.log_interval_seconds,
            receipts=self._receipts,
        )
        self._auditor = LogAuditor(self._db, self._health, interval=settings.log_audit_interval_seconds)

    def _send(self, message: tuple[Any, ...]) -> None:
        # A server that is gone reads nothing more, but what it sent before is still to be read
        # (and committed): its end of the socket closed is noticed by reading, not by writing.
        with self._send_lock, contextlib.suppress(OSError):
            self._conn.send(message)

    def _tell_health(self, problem: str) -> None:
        self._send(("health", problem))

    def run(self) -> int:
        """Serve the server until it says stop or goes away; commit everything received first."""
        self._receipts.start()
        self._sequencer.start()
        self._auditor.start()
        batches: deque[tuple[int, int]] = deque()  # (batch, how many receipts received up to its end)
        received = 0
        server_gone = False
        try:
            self._send(("ready",))
            while True:
                if self._conn.poll(POLL_SECONDS):
                    message = self._conn.recv()
                    if message[0] == "receipts":
                        _, batch, receipts, resent = message
                        received += self._receipts.accept(receipts, resent=resent)
                        log.debug("transparency_log.receipts_received", batch=batch, receipts=len(receipts))
                        batches.append((batch, received))
                    elif message[0] == "health":
                        self._health.fail(message[1])
                    elif message[0] == "stop":
                        break
                self._confirm(batches)
        except (EOFError, OSError):
            server_gone = True
            log.warning("transparency_log.server_gone", receipts=received - self._receipts.committed)
        finally:
            self._auditor.stop()
            self._receipts.stop()  # appends what is buffered; then the sequencer's last batch
            self._sequencer.stop()
        if not server_gone:
            self._confirm(batches)
            self._send(("stopped",))
        self._db.dispose()
        return 0

    def _confirm(self, batches: deque[tuple[int, int]]) -> None:
        committed = self._receipts.committed
        last = None
        while batches and batches[0][1] <= committed:
            last = batches.popleft()[0]
        if last is not None:
            self._send(("committed", last))


def main(argv: Sequence[str] | None = None) -> int:
    """The log process: ``python -m charter_server.log_process --fd N`` (started by `LogProcess`)."""
    parser = argparse.ArgumentParser(prog="charter_server.log_process")
    parser.add_argument("--fd", type=int, required=True, help="the socket to the server")
    args = parser.parse_args(argv)
    return LogWorker(worker_settings(), Connection(args.fd)).run()


def worker_settings() -> Settings:
    """The log process's settings, from the environment its starter gave it; signals ignored: its
    starter stops it when everything is handed over, and a terminal's Ctrl-C or a signal to the
    process group must not end it first."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    settings = Settings.from_env()
    logs.configure(settings.log_format, settings.log_level)
    return settings


if __name__ == "__main__":
    sys.exit(main())
