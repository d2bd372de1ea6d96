"""The console and the server's logs under hostile or odd input: tracebacks in the logs without local
variables (so without the caller's key), bounded sessions, bounded bodies, field errors instead of
500s, security headers on every response, an exact sign-in throttle, refused roles and HSTS."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
import structlog
from charter_server import logs
from charter_server.console.serve import ConsoleServer
from charter_server.console.web import MAX_BODY, ConsoleSettings

from .conftest import Web, csrf_of
from .scene import Scene, unique


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


# Sessions -----------------------------------------------------------------------------------------


class HeldClock:
    """A console's own clock: stands still until moved (the API server's clock is not moved)."""

    def __init__(self, start: datetime) -> None:
        self.at = start

    def now(self) -> datetime:
        return self.at


@contextmanager
def own_console(keys: Any, clock: Any, **settings: Any) -> Iterator[tuple[ConsoleServer, HeldClock]]:
    held = HeldClock(clock.now())
    server = ConsoleServer(ConsoleSettings(server=keys.target, **settings), "127.0.0.1:0", clock=held.now)
    server.start()
    try:
        yield server, held
    finally:
        server.stop()


@contextmanager
def browsers(url: str, count: int) -> Iterator[list[Web]]:
    opened = [Web(url) for _ in range(count)]
    try:
        yield opened
    finally:
        for web in opened:
            web.close()


def test_signing_in_again_ends_the_previous_session(web: Web, scene: Scene, console: ConsoleServer) -> None:
    web.sign_in(scene.holder_key)
    old_cookie = web.http.cookies.get("charter_console") or ""
    before = len(console.state.sessions)
    again = web.sign_in(scene.holder_key)
    after = len(console.state.sessions)
    with browsers(console.url, 1) as (kept,):
        kept.http.cookies.set("charter_console", old_cookie)
        old = kept.get("/catalogue")
    new = web.get("/catalogue")

    assert again.status_code == 303
    assert web.http.cookies.get("charter_console") != old_cookie
    assert after == before  # one ended, one began
    assert old.status_code == 303
    assert old.headers["location"] == "/sign-in?ended=1"
    assert new.status_code == 200


def test_a_keys_sessions_are_capped_and_the_oldest_ends_first(keys: Any, clock: Any, scene: Scene) -> None:
    with own_console(keys, clock, max_sessions_per_key=3) as (own, held), browsers(own.url, 4) as people:
        for person in people:
            held.at += timedelta(seconds=1)
            assert person.sign_in(scene.holder_key).status_code == 303
        answers = [person.get("/catalogue").status_code for person in people]
        live = len(own.state.sessions)

    assert answers == [303, 200, 200, 200]  # the first ended when the fourth signed in
    assert live == 3


def test_sessions_in_all_are_capped_and_the_longest_idle_ends_first(keys: Any, clock: Any, scene: Scene) -> None:
    with own_console(keys, clock, max_sessions=3) as (own, held), browsers(own.url, 4) as people:
        first, second, third, fourth = people
        for person, key in ((first, scene.holder_key), (second, keys.admin), (third, keys.auditor)):
            held.at += timedelta(seconds=1)
            person.sign_in(key)
        held.at += timedelta(seconds=1)
        first.get("/catalogue")  # now the second is the one idle longest
        held.at += timedelta(seconds=1)
        fourth.sign_in(keys.admin)
        answers = [person.get("/grants").status_code for person in people]
        live = len(own.state.sessions)

    assert answers == [200, 303, 200, 200]
    assert live == 3


def test_a_session_in_use_still_ends_after_its_lifetime(keys: Any, clock: Any, scene: Scene) -> None:
    limits = {"idle": timedelta(minutes=30), "lifetime": timedelta(hours=2)}
    with own_console(keys, clock, **limits) as (own, held), browsers(own.url, 1) as (person,):
        person.sign_in(scene.holder_key)
        answers = []
        for _ in range(7):  # a request every 20 minutes: never idle
            held.at += timedelta(minutes=20)
            answers.append(person.get("/catalogue").status_code)

    assert answers == [200, 200, 200, 200, 200, 200, 303]  # 140 minutes after sign-in


# Bodies -------------------------------------------------------------------------------------------


def _chunked_sign_in(token: str, api_key: str, padding: int) -> Iterator[bytes]:
    """A sign-in form sent in chunks (so without a Content-Length), padded by ``padding`` bytes."""
    yield f"csrf_token={token}&api_key={api_key}".encode()
    for index in range(0, padding, 60_000):
        yield f"&f{index}=".encode() + b"a" * min(60_000, padding - index)


@pytest.mark.parametrize(("padding", "expected"), [(1000, 401), (MAX_BODY, 413), (20 * MAX_BODY, 413)])
def test_a_chunked_body_is_counted_against_the_limit(keys: Any, clock: Any, padding: int, expected: int) -> None:
    with own_console(keys, clock) as (own, _), browsers(own.url, 1) as (person,):
        token = csrf_of(person.get("/sign-in").text)
        answer = person.http.post(
            "/sign-in",
            content=_chunked_sign_in(token, f"key_{'0' * 32}.{unique()}", padding),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )

    assert "content-length" not in answer.request.headers
    assert answer.status_code == expected  # 401: read and the key tried; 413: refused unread
