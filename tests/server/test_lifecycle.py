"""Start, serve, drain and stop: health, reflection, graceful shutdown (in process and as a real
process on SIGTERM/SIGINT), metrics, and the errors that keep a server from starting."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest
from charter.v1 import catalog_service_pb2 as pb
from charter.v1 import rights_holder_pb2
from charter_server.app import CharterServer, StartupError, build_server
from charter_server.config import Settings
from charter_server.domain.models import LifecycleState
from charter_server.storage import migrate
from charter_server.storage.database import Database
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from ._support import bearer, catalog_stub, free_port, open_channel, run_cli_process
from .conftest import ServerFactory

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
CHARTER_SERVICES = {"charter.v1.CatalogService", "charter.v1.AccessService"}


def _health(channel: grpc.Channel, service: str = "", timeout: float = 5) -> int:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    return int(reply.status)


def test_health_answers_serving_after_start(server: CharterServer) -> None:
    with open_channel(f"127.0.0.1:{server.port}") as channel:
        statuses = {name: _health(channel, name) for name in ("", *sorted(CHARTER_SERVICES))}
        with pytest.raises(grpc.RpcError) as unknown:
            _health(channel, "charter.v1.NoSuchService")

    assert statuses == dict.fromkeys(statuses, SERVING)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_and_describes_the_charter_services(server: CharterServer) -> None:
    with open_channel(f"127.0.0.1:{server.port}") as channel:
        replies = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        listed = {s.name for reply in replies for s in reply.list_services_response.service}
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        catalog = pool.FindServiceByName("charter.v1.CatalogService")

    assert listed >= CHARTER_SERVICES | {"grpc.health.v1.Health"}
    assert "ListRightsHolders" in catalog.methods_by_name


def test_reflection_v1_is_served_beside_v1alpha(server: CharterServer) -> None:
    """Seen: only grpc.reflection.v1alpha was served, so tools that speak only v1 failed."""
    v1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
    with open_channel(f"127.0.0.1:{server.port}") as channel:
        call = channel.stream_stream(
            v1,
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        replies = list(
            call(
                iter(
                    [
                        reflection_pb2.ServerReflectionRequest(list_services=""),
                        reflection_pb2.ServerReflectionRequest(file_containing_symbol="charter.v1.CatalogService"),
                        reflection_pb2.ServerReflectionRequest(
                            file_containing_symbol="grpc.reflection.v1.ServerReflection"
                        ),
                    ]
                ),
                timeout=5,
            )
        )
    listed = {s.name for s in replies[0].list_services_response.service}
    catalog_file = descriptor_pb2.FileDescriptorProto.FromString(
        replies[1].file_descriptor_response.file_descriptor_proto[0]
    )
    v1_file = descriptor_pb2.FileDescriptorProto.FromString(
        replies[2].file_descriptor_response.file_descriptor_proto[0]
    )

    assert listed >= CHARTER_SERVICES | {
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    assert catalog_file.package == "charter.v1"
    assert any(service.name == "CatalogService" for service in catalog_file.service)
    assert (v1_file.name, v1_file.package) == ("grpc/reflection/v1/reflection.proto", "grpc.reflection.v1")
    assert [m.name for m in v1_file.service[0].method] == ["ServerReflectionInfo"]


def test_metrics_are_served_when_asked(database_url: str, server_factory: ServerFactory) -> None:
    port = free_port()
    srv = server_factory(database_url=database_url, metrics_listen=f"127.0.0.1:{port}")
    with open_channel(f"127.0.0.1:{srv.port}") as channel:
        _health(channel)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        body = reply.read().decode()

    assert "charter_rpc_total{" in body
    assert "charter_rpc_seconds_bucket{" in body


def test_graceful_shutdown_drains_in_flight_calls(
    database_url: str, server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = server_factory(database_url=database_url, shutdown_grace_seconds=5.0)
    admin = srv.services.access.create_bootstrap_admin("shutdown test").secret
    entered = threading.Event()
    original = srv.services.catalog.list_rights_holders

    def slow(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        time.sleep(1.0)
        return original(*args, **kwargs)

    monkeypatch.setattr(srv.services.catalog, "list_rights_holders", slow)
    stopper = threading.Thread(target=srv.stop, kwargs={"grace": 5.0})
    late_name = f"Late Studio {uuid.uuid4().hex}"
    late = pb.CreateRightsHolderRequest(
        rights_holder=rights_holder_pb2.RightsHolder(display_name=late_name, contact_email="late@studio.example")
    )
    with open_channel(f"127.0.0.1:{srv.port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
        before = next(watch).status
        in_flight = catalog_stub(channel).ListRightsHolders.future(
            pb.ListRightsHoldersRequest(), metadata=bearer(admin), timeout=10
        )
        assert entered.wait(5)
        began = time.monotonic()
        stopper.start()
        during = next(watch).status
        watch.cancel()
        # A new call is refused and does nothing: UNAVAILABLE (SHUTTING_DOWN while the held call
        # keeps the server draining), never CANCELLED.
        with open_channel(f"127.0.0.1:{srv.port}") as newcomer, pytest.raises(grpc.RpcError) as refused:
            catalog_stub(newcomer).CreateRightsHolder(late, metadata=bearer(admin), timeout=5)
        in_flight.result(timeout=10)
        stopper.join(10)
        took = time.monotonic() - began
        with pytest.raises(grpc.RpcError) as after:
            _health(channel, timeout=2)

    assert (before, during) == (SERVING, NOT_SERVING)
    assert in_flight.code() == grpc.StatusCode.OK
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert _rights_holders_named(database_url, late_name) == 0
    assert not stopper.is_alive()
    assert took < 4.0  # drained when the call finished, not at the end of the grace period
    assert srv.draining
    assert after.value.code() == grpc.StatusCode.UNAVAILABLE


def _rights_holders_named(url: str, name: str) -> int:
    db = Database(url)
    try:
        with db.uow() as uow:
            found, _ = uow.rights_holders.list(state=LifecycleState.ACTIVE, query=name, only_id=None, after=0, limit=10)
    finally:
        db.dispose()
    return len(found)


def test_stop_twice_is_harmless(database_url: str, server_factory: ServerFactory) -> None:
    srv = server_factory(database_url=database_url)

    srv.stop(grace=0)
    srv.stop(grace=0)

    assert srv.draining


def _child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CHARTER_")} | {"CHARTER_LOG_FORMAT": "json"}


def _wait_serving(target: str, process: subprocess.Popen[bytes], deadline_seconds: float = 30) -> None:
    deadline = time.monotonic() + deadline_seconds
    with open_channel(target) as channel:
        while time.monotonic() < deadline:
            assert process.poll() is None, "the server exited before it served"
            try:
                if _health(channel, timeout=0.5) == SERVING:
                    return
            except grpc.RpcError:
                time.sleep(0.1)
    pytest.fail(f"no SERVING from {target} within {deadline_seconds} s")


def _signal_another_thread(pid: int, signum: int) -> None:
    """Send ``signum`` to a thread of ``pid`` other than its main thread (one that does not block
    it), as the kernel may when it delivers a process's signal: glibc's ``tgkill``."""
    for tid in sorted(int(name) for name in os.listdir(f"/proc/{pid}/task")):
        status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        blocked = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:")), 16)
        if tid != pid and not blocked & (1 << (signum - 1)):
            libc = ctypes.CDLL(None, use_errno=True)
            assert libc.tgkill(pid, tid, signum) == 0, ctypes.get_errno()
            return
    pytest.fail("no thread but the main one takes the signal")


@pytest.mark.parametrize(
    ("signum", "to_another_thread"),
    [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGTERM, True)],
    ids=["SIGTERM", "SIGINT", "SIGTERM-to-another-thread"],
)
def test_a_real_server_process_stops_cleanly_on_a_signal(tmp_path: Path, signum: int, to_another_thread: bool) -> None:
    port = free_port()
    log_path = tmp_path / "server.log"
    command = [
        sys.executable,
        "-m",
        "charter_server",
        "--database-url",
        f"sqlite:///{tmp_path / 'proc.db'}",
        "--listen",
        f"127.0.0.1:{port}",
        "serve",
        "--migrate",
    ]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=_child_env())
        try:
            _wait_serving(f"127.0.0.1:{port}", process)
            if to_another_thread:  # a main thread blocked in an untimed wait never ran the handler
                _signal_another_thread(process.pid, signum)
            else:
                process.send_signal(signum)
            try:
                # The grace period (10 s) bounds calls in flight, and there are none: a loaded
                # machine still needs a margin for the threads' stops and the interpreter's exit.
                code = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log_file.flush()
                pytest.fail(f"still running 30 s after the signal; its log:\n{log_path.read_text()[-4000:]}")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(5)

    events = [json.loads(line)["event"] for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert code == 0
    assert "server.started" in events
    assert events[-1] == "server.stopped"
    assert "Traceback" not in log_path.read_text()


# Startup errors -----------------------------------------------------------------------------


def test_an_unmigrated_database_refuses_to_start(fresh_database_url: str) -> None:
    with pytest.raises(StartupError):
        build_server(Settings(listen="127.0.0.1:0", database_url=fresh_database_url))

    db = Database(fresh_database_url)
    try:
        still_empty = not migrate.is_current(db.engine)
    finally:
        db.dispose()
    assert still_empty


def test_the_cli_refuses_an_unmigrated_database_in_one_line(
    fresh_database_url: str, clean_env: pytest.MonkeyPatch
) -> None:
    result = run_cli_process(
        ["--database-url", fresh_database_url, "--listen", "127.0.0.1:0", "--log-format", "json", "serve"]
    )

    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1
    assert len(lines) == 1
    assert lines[0].startswith("error:")
    assert "Traceback" not in result.stdout + result.stderr


def test_an_unreachable_postgresql_refuses_to_start_without_showing_the_password(
    clean_env: pytest.MonkeyPatch,
) -> None:
    url = f"postgresql://charter:hunter2-secret@127.0.0.1:{free_port()}/charter"

    with pytest.raises(StartupError) as caught:
        build_server(Settings(listen="127.0.0.1:0", database_url=url, migrate=True))
    result = run_cli_process(["--database-url", url, "--log-format", "json", "create-admin-key"])

    assert "hunter2-secret" not in str(caught.value)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "hunter2-secret" not in result.stdout + result.stderr


def test_a_busy_port_refuses_to_start(server: CharterServer, database_url: str) -> None:
    with pytest.raises(StartupError):
        build_server(Settings(listen=f"127.0.0.1:{server.port}", database_url=database_url))
