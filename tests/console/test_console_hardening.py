"""The console and the server's logs under hostile or odd input: tracebacks in the logs without local
variables (so without the caller's key), bounded sessions, bounded bodies, field errors instead of
500s, security headers on every response, an exact sign-in throttle, refused roles and HSTS."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest
import structlog
from charter_server import logs


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo what `logs.configure` does to structlog and the root logger."""
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)


SECRET = "key_0123456789abcdef.S3cr3tS3cr3tS3cr3tS3cr3tS3cr3t"


def _handler_that_fails() -> None:
    credentials = [f"Bearer {SECRET}"]
    raise RuntimeError(f"failed with {len(credentials)} credentials")


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_a_logged_traceback_never_shows_local_variables(
    log_format: str, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # pytest's capture handlers sit on the root logger, and configure() leaves a root logger with
    # handlers alone: without them it installs its own, so that the library path is checked too.
    logging.getLogger().handlers[:] = []
    logs.configure(log_format, "info")
    ours = structlog.get_logger("charter_server.api.dispatch")
    library = logging.getLogger("some.library")
    try:
        _handler_that_fails()
    except RuntimeError:
        ours.exception("rpc.unexpected_error", error_type="RuntimeError")
    try:
        _handler_that_fails()
    except RuntimeError:
        library.exception("library.failed")
    written = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().err)  # without the terminal's colours

    assert "rpc.unexpected_error" in written
    assert "library.failed" in written
    # Both tracebacks are there, the library's too (as text, not a tuple's repr, in JSON):
    assert written.count("RuntimeError: failed with 1 credentials") == 2
    assert SECRET.partition(".")[2][:8] not in written
    assert "Bearer key_" not in written
