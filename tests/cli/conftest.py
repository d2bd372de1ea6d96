"""Fixtures of the CLI tests: real Charter servers, a tap in front of one, and a runner that runs every
command at 80 and at 200 columns and fails it when a table cannot be read.

Each test module gets a server built by the production composition root (`sdk._live.serve`) over a
SQLite database of the CLI tests' own; the statement and people tests use `sdk._live`'s `live`
instead, over SQLite and PostgreSQL. Tests make what they need with fresh names (`sdk._live.unique`),
so they never depend on each other's rows; a test that changes what every test sees (rotating or
revoking signing keys) gets a server of its own (`own_live`). A command that must be seen on the wire
(what it sent, how many pages it fetched, that a usage error sent nothing) runs via the `tap`
(`sdk._tap`), a hop in front of the module's server that records each call; every other command
talks to the server itself. The failures the tests need are real ones (a key without the role, a
key the server never issued, another rights holder's catalogue), so none is injected.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from charter import Client

# tests/ is on sys.path: pytest's rootdir-relative layout.
from sdk._live import Live, admin, live, party, serve  # noqa: F401  (admin, live, party: fixtures)
from sdk._scene import Scene, make_scene
from sdk._tap import Tap

from ._readable import ReadableRunner


@pytest.fixture(scope="session")
def cli_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of the CLI tests' SQLite database (the first server to start migrates it)."""
    path: Path = tmp_path_factory.mktemp("cli") / "charter.db"
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def cli_live(cli_database: str, clock: Any) -> Iterator[Live]:
    """The real server of this module's CLI tests; its log on its own threads, which the tests
    integrate at once (``test_audit_cli.append``) rather than wait for another process to."""
    yield from serve(cli_database, clock, log_process=False)


@pytest.fixture
def own_live(tmp_path: Path, clock: Any) -> Iterator[Live]:
    """A real server over a database of this test alone."""
    yield from serve(f"sqlite:///{tmp_path / 'charter.db'}", clock, log_process=False)


@pytest.fixture(scope="module")
def _tap(cli_live: Live) -> Iterator[Tap]:
    with Tap(cli_live.target) as tap:
        yield tap


@pytest.fixture
def tap(_tap: Tap) -> Tap:
    """The tap in front of `cli_live`, reset for each test."""
    _tap.reset()
    return _tap


@pytest.fixture(scope="module")
def staff(cli_live: Live) -> Iterator[Client]:
    """An admin client of `cli_live`, for setting up what a test needs."""
    with Client(cli_live.target, api_key=cli_live.admin) as client:
        yield client


@pytest.fixture
def scene(cli_live: Live, staff: Client) -> Scene:
    """A fresh rights holder, licensee and generator key on `cli_live` (see `sdk._scene`)."""
    return make_scene(cli_live, staff)


WIDTHS = (80, 200)
"""The terminal widths every CLI test runs at: the classic terminal and a wide one."""


@pytest.fixture(params=WIDTHS, ids=[f"{w}-columns" for w in WIDTHS])
def runner(request: pytest.FixtureRequest) -> ReadableRunner:
    """A runner at each terminal width, with no CHARTER_* settings from outside; every table a command
    prints is checked (see `_readable`)."""
    return ReadableRunner(
        request.param,
        env={
            "CHARTER_TARGET": None,
            "CHARTER_API_KEY": None,
            "CHARTER_TLS_CA": None,
            "CHARTER_TIMEOUT": None,
            # Amounts are formatted for the locale; the tests read them as in en_US.
            "LC_ALL": "en_US.UTF-8",
        },
    )
