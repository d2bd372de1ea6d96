"""Fixtures of the server tests: fresh databases per backend, dedicated servers, two server
processes over one PostgreSQL database, captured logs."""

from __future__ import annotations

import io
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
from charter_server import logs
from charter_server.app import CharterServer, build_server
from charter_server.config import Settings
from charter_server.storage import migrate
from charter_server.storage.database import Database

from ._support import Cluster, prepare_database, spawn_server, wait_serving


@pytest.fixture(autouse=True)
def _restore_logging(restore_logging: None) -> None:
    """Undo whatever a test (or a CLI it invokes) did to the structlog and logging setup."""


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No CHARTER_* variable from the outer environment leaks into settings under test."""
    import os

    for name in list(os.environ):
        if name.startswith("CHARTER_"):
            monkeypatch.delenv(name)
    return monkeypatch


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@contextmanager
def _postgres_database(admin_url: str, template: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database next to ``admin_url``'s, dropped afterwards: empty, or a copy of
    the database ``template`` (which nobody may be connected to)."""
    import psycopg

    name = f"charter_srv_{uuid.uuid4().hex[:12]}"
    copied = "" if template is None else f' TEMPLATE "{template}"'
    with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{copied}')
    try:
        yield f"{admin_url.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database (no schema at all) of the same backend as ``database_url``."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    with _postgres_database(database_url) as url:
        yield url


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    """An empty PostgreSQL database (skips, with the reason, where PostgreSQL is unreachable)."""
    with _postgres_database(postgres_url) as url:
        yield url


def _migrate(url: str) -> str:
    db = Database(url)
    try:
        migrate.upgrade(db.engine)
    finally:
        db.dispose()
    return url


def _copy_sqlite(template: str, path: Path) -> str:
    """A copy of the SQLite database at ``template`` (a URL) in the file ``path``; its URL."""
    source = sqlite3.connect(template.removeprefix("sqlite:///"))
    with closing(source), closing(sqlite3.connect(path)) as copy:
        source.backup(copy)
    return f"sqlite:///{path}"


# The migrations run once per backend (and worker) into a template, and every test that wants a
# migrated database of its own gets a copy: the migrations took 0.6 s on SQLite and 1.6 s on
# PostgreSQL (several under load) for each of over a hundred tests, a copy takes milliseconds on
# SQLite and 0.2 s on PostgreSQL. The migrations themselves are tested on fresh databases.


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite database made by the migrations, to be copied, never used."""
    return _migrate(f"sqlite:///{tmp_path_factory.mktemp('template') / 'migrated.db'}")


@pytest.fixture(scope="session")
def migrated_template(database_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database of the backend of ``database_url`` made by the migrations, to be copied, never
    used (on PostgreSQL, nobody may be connected to a database that is copied)."""
    if database_url.startswith("sqlite"):
        yield str(request.getfixturevalue("sqlite_template"))
        return
    with _postgres_database(database_url) as url:
        yield _migrate(url)


@pytest.fixture
def migrated_database_url(migrated_template: str, database_url: str, tmp_path: Path) -> Iterator[str]:
    """A database of its own made by the migrations (a copy of the template), of the same backend
    as ``database_url``; dropped afterwards."""
    if database_url.startswith("sqlite"):
        yield _copy_sqlite(migrated_template, tmp_path / "migrated.db")
        return
    with _postgres_database(database_url, template=migrated_template.rpartition("/")[2]) as url:
        yield url


@pytest.fixture
def sqlite_url(sqlite_template: str, tmp_path: Path) -> str:
    """A migrated SQLite database file of its own."""
    return _copy_sqlite(sqlite_template, tmp_path / "own.db")


@pytest.fixture
def fresh_db(fresh_database_url: str) -> Iterator[Database]:
    """A database with no schema, disposed afterwards."""
    db = Database(fresh_database_url)
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture
def migrated_db(migrated_database_url: str) -> Iterator[Database]:
    """A fresh database made by the migrations, disposed afterwards."""
    db = Database(migrated_database_url)
    try:
        yield db
    finally:
        db.dispose()


@contextmanager
def _cluster(database_url: str, directory: Path) -> Iterator[Cluster]:
    admin = prepare_database(database_url, "two processes")
    a, b = (spawn_server(database_url, directory / f"{name}.log") for name in "ab")
    try:
        wait_serving(a)
        wait_serving(b)
        yield Cluster(a, b, admin, database_url)
    finally:
        codes = {name: server.stop() for name, server in (("a", a), ("b", b))}
    assert codes == {"a": 0, "b": 0}
    for server in (a, b):
        assert "Traceback" not in server.log
        assert server.events()[-1] == "server.stopped"


@pytest.fixture
def cluster(fresh_postgres_url: str, tmp_path: Path) -> Iterator[Cluster]:
    """Two ``charter_server serve`` processes over one fresh PostgreSQL database; both must stop
    cleanly (exit status 0, no traceback, ``server.stopped`` last)."""
    with _cluster(fresh_postgres_url, tmp_path) as made:
        yield made


@pytest.fixture(scope="module")
def module_cluster(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """`cluster`, shared by the tests of a module that each make the rights holders, licensees,
    characters and grants they use (and read nothing but those), so none sees another's; both
    processes must stop cleanly after the last of them."""
    with _postgres_database(postgres_url) as url, _cluster(url, tmp_path_factory.mktemp("cluster")) as made:
        yield made


ServerFactory = Callable[..., CharterServer]


@pytest.fixture
def server_factory(clock: Any) -> Iterator[ServerFactory]:
    """Build and start dedicated servers (``server_factory(database_url=..., **settings)``); all stop at the end."""
    started: list[CharterServer] = []

    def start(**overrides: Any) -> CharterServer:
        values: dict[str, Any] = {
            "listen": "127.0.0.1:0",
            "migrate": True,
            "log_format": "json",
            "shutdown_grace_seconds": 1.0,
            "authorization_lease_seconds": 0.05,  # revocations wait it out; keep tests quick
            # The log on threads: a log process costs 1-3 s of CPU to start (test_log_process,
            # test_drain and the session's server run it as in production).
            "log_process": False,
        }
        values.update(overrides)
        built = build_server(Settings(**values), clock=clock)
        built.start()
        started.append(built)
        return built

    yield start
    for built in started:
        built.stop(grace=0)


@dataclass
class CapturedLogs:
    """Everything structlog rendered (as JSON lines) while the fixture was active."""

    buffer: io.StringIO

    @property
    def text(self) -> str:
        return self.buffer.getvalue()

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The parsed log lines, optionally only those of one event name."""
        lines = [json.loads(line) for line in self.text.splitlines() if line.strip()]
        return [line for line in lines if name is None or line.get("event") == name]


@pytest.fixture
def captured_logs() -> CapturedLogs:
    """The production JSON log setup, writing into a buffer instead of stderr."""
    buffer = io.StringIO()
    logs.configure("json", "debug")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=buffer))
    return CapturedLogs(buffer)
