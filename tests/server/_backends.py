"""Helpers of the offline process tests: generation backends (``_backend.py``, an
`OfflineAuthorizer` each in a process of its own) driven from the test, and the licensed world
they decide for, made through the SDK as staff."""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import charter
from charter.decision_records import generate_key
from charter.v1 import api_key_pb2, terms_pb2

from ._support import ServerProcess, child_env, free_port, spawn_server, wait_serving

BACKEND = Path(__file__).with_name("_backend.py")
CLOCKED_SERVER = Path(__file__).with_name("_clocked_server.py")
FEE = 7  # minor units of USD per use
TERMS = terms_pb2.Terms(
    permitted_use_types=[terms_pb2.USE_TYPE_IMAGE_GENERATION],
    max_content_rating=terms_pb2.CONTENT_RATING_TEEN,
    revenue_share_bps=1_000,
    per_use_fee=terms_pb2.Money(currency_code="USD", minor_units=FEE),
)


@dataclass(frozen=True)
class World:
    """A rights holder's characters granted to a licensee; its generator key and the licensee keys
    (key id, seed in hex) that sign the backends' decision records."""

    rights_holder_id: str
    licensee_id: str
    generator: str
    characters: dict[str, str]  # name -> character id
    grants: dict[str, str]  # name -> grant id
    signers: list[tuple[str, str]]
    names: dict[str, str] = field(default_factory=dict)  # name -> the character's canonical name


def make_world(target: str, admin: str, caps: dict[str, int | None], *, signers: int) -> World:
    """One character per name in ``caps``, each with a 30-day grant capped at that many uses (None:
    no cap), and ``signers`` licensee keys registered by the licensee's own admin key."""
    marker = uuid.uuid4().hex[:8]
    with charter.Client(target, api_key=admin) as staff:
        holder = staff.create_rights_holder(display_name=f"Studio {marker}", contact_email="rights@studio.example")
        licensee = staff.create_licensee(
            display_name=f"Edge {marker}", contact_email="ops@edge.example", platform="edge"
        )
        characters, grants, names = {}, {}, {}
        for name, cap in caps.items():
            names[name] = f"Offline {name} {marker}"
            character = staff.create_character(rights_holder_id=holder.id, canonical_name=names[name])
            staff.opt_in(character.id, TERMS)
            grant = staff.issue_grant(
                character_id=character.id,
                licensee_id=licensee.id,
                expire_time=dt.datetime.now(dt.UTC) + dt.timedelta(days=30),
                max_uses=cap,
            )
            characters[name], grants[name] = character.id, grant.id
        generator = staff.create_api_key(
            display_name="renderer", role=api_key_pb2.ROLE_GENERATOR, licensee_id=licensee.id
        ).secret
        licensee_admin = staff.create_api_key(
            display_name="edge admin", role=api_key_pb2.ROLE_LICENSEE_ADMIN, licensee_id=licensee.id
        ).secret
    keys = []
    with charter.Client(target, api_key=licensee_admin) as own:
        for number in range(signers):
            seed, public = generate_key()
            key_id = own.register_licensee_key(public, display_name=f"backend {number}").key.key_id
            keys.append((key_id, seed.hex()))
    return World(holder.id, licensee.id, generator, characters, grants, keys, names)


def dead_target() -> str:
    """A loopback address nothing listens on (a moment ago)."""
    return f"127.0.0.1:{free_port()}"


@dataclass
class BackendProcess:
    """A running ``_backend.py`` and the answers it wrote."""

    process: subprocess.Popen[bytes]
    log_path: Path
    answers: queue.Queue[dict[str, Any] | None] = field(default_factory=queue.Queue)

    def _read(self, stdout: IO[bytes]) -> None:
        for line in stdout:
            self.answers.put(json.loads(line))
        self.answers.put(None)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def send(self, op: str, **fields: Any) -> None:
        """Send a command; `receive` its answer."""
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"op": op, **fields}) + "\n").encode())
        self.process.stdin.flush()

    def receive(self, timeout: float = 30) -> dict[str, Any]:
        """The next answer; fails with the backend's log when there is none in time or it failed."""
        try:
            answer = self.answers.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no answer from the backend within {timeout} s:\n{self.log}") from None
        assert answer is not None, f"the backend exited:\n{self.log}"
        assert "error" not in answer, f"{answer['error']}\n{self.log}"
        return answer

    def call(self, op: str, *, timeout: float = 30, **fields: Any) -> dict[str, Any]:
        self.send(op, **fields)
        return self.receive(timeout)

    def wait_status(self, key: str, seconds: float) -> dict[str, Any]:
        """Ask for the status until its ``key`` is truthy or ``seconds`` pass; the last status."""
        deadline = time.monotonic() + seconds
        status = self.call("status")
        while not status[key] and time.monotonic() < deadline:
            time.sleep(0.1)
            status = self.call("status")
        return status

    def kill(self) -> int:
        """SIGKILL: no lease returned, nothing flushed, nothing saved."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        return self.process.wait(timeout=10)

    def close(self) -> dict[str, Any]:
        """Close the authorizer (its leases go back) and wait for the process to exit."""
        answer = self.call("close")
        assert self.process.wait(timeout=10) == 0, self.log
        return answer


def spawn_backend(config: dict[str, Any], log_path: Path, *, timeout: float = 60) -> BackendProcess:
    """Start ``_backend.py`` with ``config`` and wait until its authorizer started."""
    with log_path.open("wb") as log_file:
        child = subprocess.Popen(
            [sys.executable, str(BACKEND)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            env=child_env(),
        )
    backend = BackendProcess(child, log_path)
    assert child.stdout is not None
    threading.Thread(target=backend._read, args=(child.stdout,), daemon=True).start()
    backend.send("config", **config)  # the first line: read as the configuration
    ready = backend.receive(timeout)
    assert ready.get("ready"), ready
    return backend


def backend_config(target: str, world: World, signer: int | None, **settings: Any) -> dict[str, Any]:
    """A backend's configuration: the world's generator key, the licensee key ``signer`` (None:
    no decision records, so no leases), and ``settings`` (max_staleness, lease_uses, lease_ttl,
    cache_dir, dead, start_timeout, screen_locally)."""
    return {
        "target": target,
        "api_key": world.generator,
        "licensee_id": world.licensee_id,
        "signer": None if signer is None else list(world.signers[signer]),
        **settings,
    }


@dataclass
class Deployment:
    """Server processes over one database, started and restarted on ports they keep, with a
    1-second revocation heartbeat; ``offset_file`` set: each runs ``_clocked_server.py``, its clock
    that many seconds ahead."""

    database_url: str
    directory: Path
    options: tuple[str, ...] = ()
    offset_file: Path | None = None
    started: list[ServerProcess] = field(default_factory=list)

    def start(self, name: str, port: int | None = None) -> ServerProcess:
        launcher: tuple[str, ...] = ("-m", "charter_server")
        if self.offset_file is not None:
            launcher = (str(CLOCKED_SERVER), str(self.offset_file))
        server = spawn_server(
            self.database_url,
            self.directory / f"{name}-{len(self.started)}.log",
            port=port,
            options=("--revocation-heartbeat-seconds", "1", "--authorization-lease-seconds", "0.05", *self.options),
            launcher=launcher,
        )
        self.started.append(server)
        wait_serving(server)
        return server

    def restart(self, server: ServerProcess, name: str, *, kill: bool) -> ServerProcess:
        """Stop (SIGKILL, or SIGTERM and its drain) and start again on the same port."""
        code = server.kill() if kill else server.stop()
        assert code == (-9 if kill else 0), server.log
        return self.start(name, port=int(server.target.rpartition(":")[2]))

    def close(self) -> None:
        for server in self.started:
            server.kill()  # a no-op for those already gone
        for server in self.started:
            assert "Traceback" not in server.log, server.log
