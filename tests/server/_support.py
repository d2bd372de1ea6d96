"""Helpers of the server tests: raw generated stubs, bearer metadata, status details, free ports,
and ``charter_server serve`` child processes (started, killed, restarted) over one database."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import structlog
from charter.v1 import access_service_pb2_grpc, catalog_service_pb2_grpc
from charter_server.app import Services, build_services, open_database
from charter_server.config import Settings
from charter_server.domain.clock import SystemClock
from charter_server.domain.models import SigningKeyPurpose
from charter_server.storage.database import Database
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from typer.testing import CliRunner, Result

REQUEST_ID_KEY = "x-request-id"


def bearer(secret: str) -> tuple[tuple[str, str], ...]:
    """Call metadata that authenticates with ``secret``."""
    return (("authorization", f"Bearer {secret}"),)


@contextmanager
def services_on(database_url: str) -> Iterator[tuple[Settings, Database, Services]]:
    """The server's services over a migrated database, without gRPC, with a grant signing key
    and a log key active (as the server makes them at start); the database is disposed after."""
    settings = Settings(database_url=database_url, migrate=True)
    db = open_database(settings)
    try:
        services = build_services(settings, db, SystemClock())
        services.keys.ensure_active_key()
        services.keys.ensure_active_key(SigningKeyPurpose.TRANSPARENCY_LOG)
        yield settings, db, services
    finally:
        db.dispose()


@contextmanager
def open_channel(
    target: str, credentials: grpc.ChannelCredentials | None = None, options: list[tuple[str, object]] | None = None
) -> Iterator[grpc.Channel]:
    """An insecure (or, given credentials, secure) channel, closed afterwards."""
    if credentials is None:
        channel = grpc.insecure_channel(target, options=options)
    else:
        channel = grpc.secure_channel(target, credentials, options=options)
    try:
        yield channel
    finally:
        channel.close()


def catalog_stub(channel: grpc.Channel) -> catalog_service_pb2_grpc.CatalogServiceStub:
    """The raw generated CatalogService stub."""
    return catalog_service_pb2_grpc.CatalogServiceStub(channel)


def access_stub(channel: grpc.Channel) -> access_service_pb2_grpc.AccessServiceStub:
    """The raw generated AccessService stub."""
    return access_service_pb2_grpc.AccessServiceStub(channel)


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """The ``google.rpc.ErrorInfo`` detail of a failed call, if it has one."""
    status = rpc_status.from_call(error)
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


def reason(error: grpc.RpcError) -> str | None:
    """The machine reason of a failed call."""
    info = error_info(error)
    return None if info is None else info.reason


def trailing(call: grpc.Call | grpc.RpcError, key: str) -> str | None:
    """One trailing metadata value of a finished call (or of the error it raised)."""
    for item in call.trailing_metadata() or ():
        if item.key == key:
            value = item.value
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out for port 0 and for the local end of a connection."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


_PICKED = random.Random()


def free_port() -> int:
    """A loopback port that was free a moment ago, below the kernel's ephemeral range.

    Every server a test binds to port 0, and the local end of every connection, takes a port from
    that range: a port picked there could be taken by one of them before the server picked for it
    binds it, or while a test restarts its server on the same port. Below it, only another pick
    could take it, one in thousands."""
    low = _ephemeral_low()
    for _ in range(200):
        port = _PICKED.randrange(max(1024, low - 12_000), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free loopback port below the ephemeral range")


def run_cli(args: list[str], env: dict[str, str] | None = None) -> Result:
    """Invoke ``charter-server`` in process.

    The command configures structlog and the root logger onto the runner's captured stderr,
    which is closed afterwards; the previous setup is put back so later log lines have
    somewhere to go.
    """
    from charter_server.cli import app

    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return CliRunner(env=env).invoke(app, args)
    finally:
        structlog.configure(**config)
        root.handlers[:] = handlers
        root.setLevel(level)


# Server processes ---------------------------------------------------------------------------------


@dataclass
class ServerProcess:
    """A ``charter_server serve`` child process and where it listens."""

    process: subprocess.Popen[bytes]
    target: str
    log_path: Path
    respawn: Callable[[], tuple[subprocess.Popen[bytes], str]] | None = None
    """Start the same server again on a port picked anew (only when `spawn_server` picked the port)."""

    def stop(self) -> int:
        """SIGTERM, then wait for the graceful stop (kill after 10 s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise

    def kill(self) -> int:
        """SIGKILL (no chance to finish anything), and reap the process."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        return self.process.wait(timeout=10)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self) -> list[str]:
        """The event names of its JSON log lines, in order."""
        return [json.loads(line)["event"] for line in self.log.splitlines() if line.startswith("{")]


def child_env() -> dict[str, str]:
    """The environment of a server child: no CHARTER_* setting leaks in; JSON logs; no preload of
    the screening analysers (1-4 s of CPU per process start that these tests of processes, drains
    and kills never use; the preload has tests of its own); the transparency log on the server's
    threads, not in a process of its own (1-3 s of CPU more per start; `spawn_server` turns it on
    where the tests are about stopping, killing and spreading server processes)."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("CHARTER_")}
    return kept | {"CHARTER_LOG_FORMAT": "json", "CHARTER_PRELOAD": "false", "CHARTER_LOG_PROCESS": "false"}


def run_cli_process(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``charter-server`` in a process of its own, for tests of exactly what it prints.

    In the test process other tests' servers (the session's among them) may log from their
    background threads onto whatever standard error is at the time, which `run_cli` captures.
    """
    return subprocess.run(
        [sys.executable, "-m", "charter_server", *args],
        env=child_env() | (env or {}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def spawn_server(
    database_url: str,
    log_path: Path,
    *,
    port: int | None = None,
    pick_port: Callable[[], int] = free_port,
    options: tuple[str, ...] = (),
    serve_options: tuple[str, ...] = (),
    launcher: tuple[str, ...] = ("-m", "charter_server"),
    log_process: bool = False,
) -> ServerProcess:
    """Start ``charter_server [options] serve --migrate [serve_options]`` on ``127.0.0.1:port`` (by
    default a port ``pick_port`` picks), writing its output to ``log_path``; ``wait_serving`` waits
    until it answers. ``launcher``: how the interpreter runs the command (``_clocked_server.py``
    moves its clock). ``log_process``: the transparency log in a process of its own, as in
    production."""

    def start(chosen: int) -> tuple[subprocess.Popen[bytes], str]:
        command = [
            sys.executable,
            *launcher,
            "--database-url",
            database_url,
            "--listen",
            f"127.0.0.1:{chosen}",
            *options,
            "serve",
            "--migrate",
            *serve_options,
        ]
        with log_path.open("wb") as log_file:
            env = child_env() | {"CHARTER_LOG_PROCESS": str(log_process).lower()}
            child = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        return child, f"127.0.0.1:{chosen}"

    child, target = start(pick_port() if port is None else port)
    return ServerProcess(child, target, log_path, None if port is not None else lambda: start(pick_port()))


def wait_serving(server: ServerProcess, deadline_seconds: float = 60) -> None:
    """Wait until the process's health service says SERVING; fail with its log otherwise.

    Each try uses a new channel: a channel that failed to connect backs off for seconds before
    it tries again, which on a busy machine outlasts a slow start.
    """
    deadline = time.monotonic() + deadline_seconds
    respawned = 0
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            # A port free when it was picked can be bound by another test's server before this one
            # binds it (seen in CI: the clients then called that server, whose keys differ).
            if server.respawn is not None and respawned < 3 and "Address already in use" in server.log:
                server.process, server.target = server.respawn()
                respawned += 1
                continue
            pytest.fail(f"the server exited before it served:\n{server.log}")
        # Only once it has bound its port is the server answering there this one.
        if '"event": "server.started"' in server.log:
            with open_channel(server.target) as channel:
                try:
                    status = (
                        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    )
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
        time.sleep(0.1)
    pytest.fail(f"no SERVING from {server.target} within {deadline_seconds} s:\n{server.log}")


def prepare_database(database_url: str, label: str) -> str:
    """Migrate, make the first signing key and a bootstrap admin key; the admin secret.

    Done before any process starts, so processes started side by side never race to create the
    schema.
    """
    db = open_database(Settings(database_url=database_url, migrate=True))
    try:
        services = build_services(Settings(database_url=database_url), db, SystemClock())
        services.keys.ensure_active_key()
        return services.access.create_bootstrap_admin(label).secret
    finally:
        db.dispose()


@dataclass(frozen=True)
class Cluster:
    """Two server processes over one database, and an admin key."""

    a: ServerProcess
    b: ServerProcess
    admin: str
    database_url: str
