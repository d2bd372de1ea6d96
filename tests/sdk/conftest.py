"""Fixtures of the SDK tests: a fake Charter server on 127.0.0.1 and clients of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from charter import Client

from ._fakes import API_KEY, RunningFake, serve
from ._live import admin, live, party  # noqa: F401  (a real server, for the modules that need one)


@pytest.fixture
def server() -> Iterator[RunningFake]:
    """A fresh fake server per test, so recorded calls and stored resources never leak between tests."""
    yield from serve()


@pytest.fixture
def client(server: RunningFake) -> Iterator[Client]:
    """A synchronous client of the fake server with the fake's API key."""
    with Client(server.target, api_key=API_KEY) as client:
        yield client
