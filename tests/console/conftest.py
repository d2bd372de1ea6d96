"""Fixtures of the console tests: a real console served by uvicorn on 127.0.0.1:0, calling the
session's real gRPC server, and an HTTP client that signs in as a person would (sign-in form,
cookies, CSRF tokens taken from the pages)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from charter_server.console.serve import ConsoleServer
from charter_server.console.web import ConsoleSettings

from . import browser
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


# Browser tests -----------------------------------------------------------------------------------

ARTIFACTS = Path(os.environ.get("CHARTER_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """Keep each phase's report on the item, so the page fixture knows whether its test failed."""
    report: pytest.TestReport = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def chromium_path() -> str:
    found = browser.find_chromium()
    if found is None:
        message = "no Chromium: `python3 .ci/dev.py browser` installs Debian's chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def chromium(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def sqlite_only(database_url: str) -> None:
    """Browser tests run once: the console calls the API, whose backends the HTTP tests cover."""
    if not database_url.startswith("sqlite"):
        pytest.skip("browser tests run on the SQLite server only (the HTTP tests cover both backends)")


@pytest.fixture
def tab(
    sqlite_only: None, chromium: Any, console: ConsoleServer, request: pytest.FixtureRequest
) -> Iterator[browser.Tab]:
    """A fresh browser context and page; a screenshot of the page is kept when the test fails."""
    context = chromium.new_context(viewport={"width": browser.WIDTHS[0], "height": 900}, accept_downloads=True)
    opened = context.new_page()
    found = browser.Tab(opened, console.url)
    try:
        yield found
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-150:]
            opened.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            (ARTIFACTS / f"{name}.html").write_text(opened.content(), encoding="utf-8")
        context.close()
