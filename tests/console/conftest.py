"""Fixtures of the console tests: a real console served by uvicorn on 127.0.0.1:0, calling the
session's real gRPC server, and an HTTP client that signs in as a person would (sign-in form,
cookies, CSRF tokens taken from the pages)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from charter_server.console.serve import ConsoleServer
from charter_server.console.web import ConsoleSettings

from .scene import Scene, make_scene

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


class Web:
    """A browser-like HTTP client of the console: cookies kept, redirects not followed."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, follow_redirects=False, timeout=30)

    def sign_in(self, api_key: str) -> httpx.Response:
        form = self.http.get("/sign-in")
        return self.http.post("/sign-in", data={"csrf_token": csrf_of(form.text), "api_key": api_key})

    def get(self, path: str, **options: Any) -> httpx.Response:
        return self.http.get(path, **options)

    def post_form(self, page: str, action: str, data: dict[str, Any]) -> httpx.Response:
        """Post a form the way the page at ``page`` would: with the page's CSRF token."""
        token = csrf_of(self.http.get(page).text)
        return self.http.post(action, data={"csrf_token": token, **data})

    def close(self) -> None:
        self.http.close()


def start_console(target: str, clock: Any) -> ConsoleServer:
    server = ConsoleServer(ConsoleSettings(server=target), "127.0.0.1:0", clock=clock.now)
    server.start()
    return server


@pytest.fixture(scope="session")
def console(keys: Any, clock: Any) -> Iterator[ConsoleServer]:
    """The console of the session's server (one per backend)."""
    server = start_console(keys.target, clock)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def web(console: ConsoleServer) -> Iterator[Web]:
    client = Web(console.url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def scene(keys: Any) -> Scene:
    return make_scene(keys.target, keys.admin)
