"""Fixtures of the SDK tests: the real server, a tap in front of it, and clients of both.

Each test module gets a server built by the production composition root over a SQLite database
of the SDK tests' own (the usage tests use `_live`'s servers over the session's databases
instead); a server lives only as long as its module, so its background threads cost the other
tests nothing. Tests make what they need with fresh names (see `_live.unique`), so they never
depend on each other's rows; the few that change what every test sees (rotating signing keys)
get a server of their own (`own_live`). The `Tap`, reset for each test, records what the client
sent and injects failures; a `Scene` (`_scene`) is a fresh rights holder, licensee and generator
key for generation-time tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from charter import Client

from ._live import Live, admin, live, party, run_async, serve  # noqa: F401  (admin, live, party: fixtures)
from ._scene import Scene, make_scene
from ._tap import Tap

HEARTBEAT_SECONDS = 0.05
"""How often `sdk_live` sends a heartbeat on a revocation stream, so the watch tests run fast."""


@pytest.fixture(scope="session")
def sdk_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of the SDK tests' SQLite database (the first server to start migrates it)."""
    path: Path = tmp_path_factory.mktemp("sdk") / "charter.db"
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def sdk_live(sdk_database: str, clock: Any) -> Iterator[Live]:
    """The real server of this module's SDK tests, with fast heartbeats."""
    yield from serve(sdk_database, clock, revocation_heartbeat_seconds=HEARTBEAT_SECONDS)


@pytest.fixture
def own_live(tmp_path: Path, clock: Any) -> Iterator[Live]:
    """A real server over a database of this test alone."""
    yield from serve(f"sqlite:///{tmp_path / 'charter.db'}", clock, revocation_heartbeat_seconds=HEARTBEAT_SECONDS)


@pytest.fixture(scope="module")
def _tap(sdk_live: Live) -> Iterator[Tap]:
    with Tap(sdk_live.target) as tap:
        yield tap


@pytest.fixture
def tap(_tap: Tap) -> Tap:
    """The tap in front of `sdk_live`, reset for each test."""
    _tap.reset()
    return _tap


@pytest.fixture(scope="module")
def staff(sdk_live: Live) -> Iterator[Client]:
    """An admin client of `sdk_live` that bypasses the tap, for setting up what a test needs."""
    with Client(sdk_live.target, api_key=sdk_live.admin) as client:
        yield client


@pytest.fixture
def client(tap: Tap, sdk_live: Live) -> Iterator[Client]:
    """An admin client of `sdk_live` through the tap."""
    with Client(tap.target, api_key=sdk_live.admin) as client:
        yield client


@pytest.fixture(scope="module")
def quiet_live(sdk_database: str, clock: Any) -> Iterator[Live]:
    """A second real server of this module that sends a heartbeat only every 5 s (the default), so a
    watch stays quiet."""
    yield from serve(sdk_database, clock)


@pytest.fixture
def scene(sdk_live: Live, staff: Client) -> Scene:
    """A fresh `Scene` on the SDK tests' server."""
    return make_scene(sdk_live, staff)


@pytest.fixture
def generator(tap: Tap, scene: Scene) -> Iterator[Client]:
    """A client of the scene's generator key, through the tap."""
    with Client(tap.target, api_key=scene.generator_key) as client:
        yield client


@pytest.fixture
def as_admin(tap: Tap, sdk_live: Live) -> Callable[..., Any]:
    """Runs an asyncio scenario with an admin `AsyncClient` of `sdk_live` through the tap (see `run_async`)."""
    return lambda scenario, **options: run_async(tap.target, sdk_live.admin, scenario, **options)
