"""The ``charter-server`` command: migrate, create-admin-key and healthcheck."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from charter.v1 import access_service_pb2 as access_pb
from charter.v1 import api_key_pb2
from charter_server.app import CharterServer
from charter_server.storage import migrate
from charter_server.storage.database import Database
from cryptography.x509.oid import ExtendedKeyUsageOID
from sqlalchemy import text
from typer.testing import Result

from ._pki import LOOPBACK_SANS, issue
from ._support import access_stub, bearer, free_port, open_channel, run_cli
from .conftest import ServerFactory

Run = Callable[..., Result]


@pytest.fixture
def cli(clean_env: pytest.MonkeyPatch) -> Run:
    """``charter-server`` in process, seeing no CHARTER_* variable of the outer environment."""

    def run(*args: str) -> Result:
        return run_cli(["--log-format", "json", *args])

    return run


def _is_current(url: str) -> bool:
    db = Database(url)
    try:
        return migrate.is_current(db.engine)
    finally:
        db.dispose()


def test_migrate_makes_the_schema_and_is_repeatable(cli: Run, fresh_database_url: str) -> None:
    first = cli("--database-url", fresh_database_url, "migrate")
    current_after_first = _is_current(fresh_database_url)
    second = cli("--database-url", fresh_database_url, "migrate")

    assert first.exit_code == 0, first.output
    assert current_after_first
    assert second.exit_code == 0, second.output
    assert _is_current(fresh_database_url)


def test_migrate_against_nothing_fails_in_one_line(cli: Run) -> None:
    result = cli("--database-url", f"postgresql://charter@127.0.0.1:{free_port()}/charter", "migrate")

    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_create_admin_key_prints_a_working_secret_once(
    cli: Run, fresh_database_url: str, server_factory: ServerFactory
) -> None:
    migrated = cli("--database-url", fresh_database_url, "migrate")
    result = cli("--database-url", fresh_database_url, "create-admin-key", "--display-name", "ops lead")
    secret = result.stdout.strip()
    srv = server_factory(database_url=fresh_database_url, migrate=False)
    with open_channel(f"127.0.0.1:{srv.port}") as channel:
        caller = access_stub(channel).GetCaller(access_pb.GetCallerRequest(), metadata=bearer(secret), timeout=5)
    with srv.db.engine.connect() as connection:
        stored = [str(value) for row in connection.execute(text("SELECT * FROM api_keys")) for value in row]

    assert migrated.exit_code == 0
    assert result.exit_code == 0, result.output
    assert len(result.stdout.strip().splitlines()) == 1  # the secret alone, for scripts
    assert caller.api_key.role == api_key_pb2.ROLE_ADMIN
    assert caller.api_key.display_name == "ops lead"
    assert secret.startswith(caller.api_key.id + ".")
    assert caller.api_key.id in result.stderr
    assert stored
    assert not any(secret.partition(".")[2] in value for value in stored)  # only a hash is kept


def test_create_admin_key_refuses_an_unmigrated_database(cli: Run, fresh_database_url: str) -> None:
    result = cli("--database-url", fresh_database_url, "create-admin-key")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1


def test_healthcheck_against_a_running_server(cli: Run, server: CharterServer) -> None:
    by_target = cli("healthcheck", "--target", f"127.0.0.1:{server.port}")
    by_listen = cli("--listen", f"127.0.0.1:{server.port}", "healthcheck")

    assert by_target.exit_code == 0, by_target.output
    assert by_target.stdout.strip() == "SERVING"
    assert by_listen.exit_code == 0, by_listen.output
    assert by_listen.stdout.strip() == "SERVING"


def test_healthcheck_against_nothing_fails(cli: Run) -> None:
    result = cli("healthcheck", "--target", f"127.0.0.1:{free_port()}", "--timeout", "1")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1


def test_healthcheck_of_a_server_that_is_not_serving_fails(
    cli: Run, sqlite_url: str, server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = server_factory(database_url=sqlite_url, shutdown_grace_seconds=10.0)
    admin = srv.services.access.create_bootstrap_admin("draining").secret
    entered, release = threading.Event(), threading.Event()
    original = srv.services.access.get_caller

    def held(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(10)
        return original(*args, **kwargs)

    monkeypatch.setattr(srv.services.access, "get_caller", held)
    with open_channel(f"127.0.0.1:{srv.port}") as channel:
        in_flight = access_stub(channel).GetCaller.future(
            access_pb.GetCallerRequest(), metadata=bearer(admin), timeout=10
        )
        assert entered.wait(5)
        stopper = threading.Thread(target=srv.stop)
        stopper.start()  # draining: the held call keeps the server up, not serving
        try:
            while not srv.draining:
                time.sleep(0.01)
            result = cli("healthcheck", "--target", f"127.0.0.1:{srv.port}")
        finally:
            release.set()
            stopper.join(10)
        in_flight.result(timeout=10)

    assert result.exit_code == 1
    assert result.stdout.strip() == "NOT_SERVING"


def test_healthcheck_speaks_tls_with_the_server_settings(
    cli: Run, sqlite_url: str, tmp_path: Path, server_factory: ServerFactory
) -> None:
    _, ca_cert, ca_key = issue(tmp_path, "ca", "Health CA")
    pem, _, _ = issue(
        tmp_path,
        "server",
        "charter.test",
        issuer=(ca_cert, ca_key),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        sans=LOOPBACK_SANS,
    )
    srv = server_factory(database_url=sqlite_url, tls_cert_file=pem.cert_file, tls_key_file=pem.key_file)

    result = cli(
        "--tls-cert-file",
        pem.cert_file,
        "--tls-key-file",
        pem.key_file,
        "--listen",
        f"127.0.0.1:{srv.port}",
        "healthcheck",
    )
    with open_channel(f"127.0.0.1:{srv.port}") as plaintext, pytest.raises(grpc.RpcError) as refused:
        access_stub(plaintext).GetCaller(access_pb.GetCallerRequest(), timeout=5)

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "SERVING"
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_deployment_settings_are_shown_and_set_in_the_database(cli: Run, sqlite_url: str) -> None:
    db = Database(sqlite_url)
    migrate.upgrade(db.engine)
    db.dispose()

    shown = cli("--database-url", sqlite_url, "settings", "show")
    changed = cli("--database-url", sqlite_url, "settings", "set", "--authorization-lease-seconds", "0.25")
    after = cli("--database-url", sqlite_url, "settings", "show")
    cli("--database-url", sqlite_url, "settings", "set", "--authorization-lease-seconds", "30")
    shortened = cli("--database-url", sqlite_url, "settings", "set", "--authorization-lease-seconds", "0.5")
    shortened_shown = cli("--database-url", sqlite_url, "settings", "show")
    refused = cli("--database-url", sqlite_url, "settings", "set", "--authorization-lease-seconds", "90")

    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[0] == "authorization_lease_seconds 1"
    assert changed.exit_code == 0, changed.output
    assert changed.stdout.strip() == "authorization_lease_seconds 0.25 (was 1)"
    assert after.stdout.splitlines()[0] == "authorization_lease_seconds 0.25"
    assert shortened.stdout.strip() == "authorization_lease_seconds 0.5 (was 30)"
    assert shortened_shown.stdout.splitlines()[0] == "authorization_lease_seconds 0.5"
    # A lease granted under the longer setting may still be held: it counts for its 30 s.
    assert "previous lease, 30 s" in shortened_shown.stdout
    assert refused.exit_code == 2
    assert len(refused.stderr.strip().splitlines()) == 1
