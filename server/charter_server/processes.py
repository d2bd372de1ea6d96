"""``charter-server serve --processes N``: N server processes on one port, under one supervisor.

Python runs one thread of Python at a time per process, so a machine with more cores serves more
with more processes. Each child is a whole server (``charter-server serve``) started afresh (never
forked: gRPC does not survive a fork), listening on the same address with ``SO_REUSEPORT``, so the
kernel spreads new connections over them. They share only the database, which is what replicas
share too: the deployment's lease, the authorization epoch, quotas and the revocation log keep
every guarantee across them.

The supervisor migrates the database, creates the first signing key and applies the lease setting
once, before any child starts (so children never race to do it), reserves the port when it was
``0``, forwards ``SIGTERM``/``SIGINT`` to every child (each drains as a single server does), and
restarts a child that dies unexpectedly. With ``--metrics-listen`` it serves the children's
metrics together (``prometheus_client`` multiprocess mode), from one endpoint. With ``log_process``
(the default) it starts the one transparency-log process the children share
(``charter_server.shared_log``) before them, and stops it after them.
"""

from __future__ import annotations

import dataclasses
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

import structlog
from prometheus_client import multiprocess

from charter_server.config import ENV_PREFIX, Settings, child_environment
from charter_server.shared_log import SharedLogProcess

log = structlog.get_logger(__name__)

RESTART_DELAY_SECONDS = 1.0
"""How long the supervisor waits before restarting a child that died."""
_POLL_SECONDS = 0.1


def _reserve(settings: Settings) -> tuple[Settings, socket.socket | None]:
    """A concrete port for ``port 0``: bound (not listening) with ``SO_REUSEPORT`` while the
    supervisor lives, so the children can share it and nobody else takes it."""
    if settings.port != 0:
        return settings, None
    host = settings.listen.rpartition(":")[0]
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    reserved = socket.socket(family, socket.SOCK_STREAM)
    reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reserved.bind((host.strip("[]"), 0))
    port = reserved.getsockname()[1]
    return dataclasses.replace(settings, listen=f"{host}:{port}"), reserved


def _start_metrics(settings: Settings, metrics_dir: str) -> object:
    """The one metrics endpoint, adding up every child's metrics."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=metrics_dir)  # type: ignore[no-untyped-call]
    host, _, port = settings.metrics_listen.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host, registry=registry)
    return server


class Supervisor:
    """Runs ``count`` children serving ``settings`` until a signal, restarting any that die."""

    def __init__(self, settings: Settings, count: int) -> None:
        self._settings = settings
        self._count = count
        self._stopping = False
        self._children: list[subprocess.Popen[bytes] | None] = [None] * count
        self._restart_at: list[float] = [0.0] * count

    def _spawn(self, index: int, env: dict[str, str]) -> None:
        command = [sys.executable, "-m", "charter_server", "serve", "--reuse-port"]
        child = subprocess.Popen(command, env=env)  # noqa: S603 - this very program, fixed arguments
        self._children[index] = child
        log.info("processes.child_started", index=index, pid=child.pid)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if not self._stopping:
            self._stopping = True
            log.info("processes.stopping", signal=signal.Signals(signum).name, children=self._count)
        for child in self._children:
            if child is not None and child.poll() is None:
                child.send_signal(signum)

    def _tend(self, env: dict[str, str], metrics_dir: str | None, codes: dict[int, int]) -> int:
        """Restart the children that died (unless stopping), note the exit codes of those that
        stopped; how many are alive or due to restart."""
        alive = 0
        for index, child in enumerate(self._children):
            if child is None:
                if not self._stopping and time.monotonic() >= self._restart_at[index]:
                    self._spawn(index, env)
                    alive += 1
                continue
            code = child.poll()
            if code is None:
                alive += 1
                continue
            if metrics_dir is not None:  # its live gauges (open streams) no longer count
                multiprocess.mark_process_dead(child.pid, metrics_dir)  # type: ignore[no-untyped-call]
            self._children[index] = None
            if self._stopping:
                codes[index] = code
            else:
                log.error("processes.child_died", index=index, pid=child.pid, exit_code=code)
                self._restart_at[index] = time.monotonic() + RESTART_DELAY_SECONDS
                alive += 1
        return alive

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT; the exit code is 0 when every child drained cleanly."""
        settings, reserved = _reserve(self._settings)
        metrics_dir = tempfile.mkdtemp(prefix="charter-metrics-") if settings.metrics_listen else None
        metrics = _start_metrics(settings, metrics_dir) if metrics_dir is not None else None
        env = child_environment(settings, metrics_dir)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        log.info("processes.started", listen=settings.listen, processes=self._count)
        codes: dict[int, int] = {}
        # One log process for the tree: one sequencer takes every child's receipts straight into the
        # log (a log process per child would have all but the lease holder's go through pending rows).
        shared_log = SharedLogProcess(child_environment(settings)) if settings.log_process else None
        try:
            if shared_log is not None:
                shared_log.start()
                env[f"{ENV_PREFIX}LOG_SOCKET"] = shared_log.socket
            for index in range(self._count):
                if self._stopping:  # a signal while the log process started: no child would get it
                    break
                self._spawn(index, env)
            while True:
                alive = self._tend(env, metrics_dir, codes)
                if self._stopping and not alive:
                    break
                if shared_log is not None:
                    shared_log.check(self._stopping)
                time.sleep(_POLL_SECONDS)
        finally:
            if shared_log is not None:  # after the children: each hands its last receipts over first
                shared_log.stop()
            if metrics is not None:
                metrics.shutdown()  # type: ignore[attr-defined]
            if reserved is not None:
                reserved.close()
            if metrics_dir is not None:
                for path in Path(metrics_dir).glob("*"):
                    path.unlink(missing_ok=True)
                Path(metrics_dir).rmdir()
        log.info("processes.stopped", exit_codes=[codes.get(i) for i in range(self._count)])
        return 0 if all(code == 0 for code in codes.values()) else 1
