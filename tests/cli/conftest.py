"""Fixtures of the CLI tests: the SDK tests' fake Charter server and a runner aimed at it, and the real
server of `sdk._live` for the usage tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

try:  # When tests/ is itself a package.
    from ..sdk._fakes import RunningFake, serve
    from ..sdk._live import admin, live, party
except ImportError:  # pytest's default rootdir-relative layout: tests/ is on sys.path.
    from sdk._fakes import RunningFake, serve
    from sdk._live import admin, live, party  # noqa: F401


@pytest.fixture
def server() -> Iterator[RunningFake]:
    """A fresh fake server per test."""
    yield from serve()


@pytest.fixture
def runner() -> CliRunner:
    """A runner with a wide terminal, so tables are not cut, and no CHARTER_* settings from outside."""
    return CliRunner(
        env={
            "COLUMNS": "250",
            "CHARTER_TARGET": None,
            "CHARTER_API_KEY": None,
            "CHARTER_TLS_CA": None,
            "CHARTER_TIMEOUT": None,
        }
    )
