"""Fixtures of the CLI tests: the SDK tests' fake Charter server, the real server of `sdk._live`, and a
runner that runs every command at 80 and at 200 columns and fails it when a table cannot be read."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._readable import ReadableRunner

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
