"""The console and the server's logs under hostile or odd input: tracebacks in the logs without local
variables (so without the caller's key), bounded sessions, bounded bodies, field errors instead of
500s, security headers on every response, an exact sign-in throttle, refused roles and HSTS."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import charter
import httpx
import pytest
import structlog
from charter.v1 import api_key_pb2
from charter_server import logs
from charter_server.console.serve import ConsoleServer
from charter_server.console.web import MAX_BODY, ConsoleSettings
from server._pki import LOOPBACK_SANS, issue  # tests/ is on sys.path: pytest's rootdir-relative layout
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .conftest import Web, csrf_of
from .scene import Scene, unique

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


# Odd input: field errors, never a 500; security headers on every response ------------------------

SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "x-frame-options", "referrer-policy")


def _has_security_headers(answer: httpx.Response) -> bool:
    return all(name in answer.headers for name in SECURITY_HEADERS) and answer.headers["cache-control"] == "no-store"


def test_the_page_of_an_unexpected_error_carries_the_security_headers(keys: Any, clock: Any) -> None:
    async def fails(request: Request) -> Response:
        raise RuntimeError(f"failed holding {SECRET}")

    with own_console(keys, clock) as (own, _), browsers(own.url, 1) as (person,):
        # A route of this console only, for a failure no input of the real pages causes (any more).
        own.app.router.routes.insert(0, Route("/fails", fails))
        answer = person.get("/fails")

    assert answer.status_code == 500
    assert _has_security_headers(answer)
    assert SECRET not in answer.text
    assert "Traceback" not in answer.text


@pytest.mark.parametrize(
    "params",
    [{"end": "0001-01-01"}, {"end": "0001-01-29"}, {"start": "0001-01-01", "end": "0001-01-02"}],
)
def test_a_usage_range_before_1970_is_refused_on_the_page(web: Web, scene: Scene, params: dict[str, str]) -> None:
    web.sign_in(scene.holder_key)
    answer = web.get("/usage", params=params)

    assert answer.status_code == 400
    assert 'class="problem" role="alert"' in answer.text
    assert _has_security_headers(answer)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("daily_quota", "\u00b2"),  # superscript two: str.isdigit() says yes, int() says no
        ("monthly_quota", "--5"),
        ("daily_quota", "\u0665"),  # ARABIC-INDIC DIGIT FIVE: int() takes it, nobody means it
        ("daily_quota", "9999999999999999999"),  # 19 digits, past int64
        ("monthly_quota", "-9223372036854775809"),
        ("max_content_rating", "\u00b9"),
        ("permitted_use_types", "\u00b3"),
        ("revenue_share_percent", "\u0665"),
    ],
)
def test_odd_digits_in_the_terms_form_are_shown_next_to_their_field(
    web: Web, scene: Scene, field: str, value: str
) -> None:
    web.sign_in(scene.holder_key)
    form_page = f"/characters/{scene.first_id}/terms"
    data = {"permitted_use_types": "2", field: value} if field != "permitted_use_types" else {field: value}
    answer = web.post_form(form_page, form_page, data)
    with charter.Client(scene.target, api_key=scene.holder_key) as client:
        after = client.get_character(scene.first_id)

    assert answer.status_code == 400
    assert f'id="{field}-error"' in answer.text
    assert after.terms_version == 1


def test_a_quota_at_the_int64_bound_is_accepted_by_the_form(web: Web, scene: Scene) -> None:
    web.sign_in(scene.holder_key)
    form_page = f"/characters/{scene.second_id}/terms"
    answer = web.post_form(form_page, form_page, {"permitted_use_types": "2", "daily_quota": str(2**63 - 1)})

    assert 'id="daily_quota-error"' not in answer.text


def test_a_non_ascii_key_is_refused_like_an_unknown_key_and_counted(keys: Any, clock: Any) -> None:
    with own_console(keys, clock) as (own, _), browsers(own.url, 1) as (person,):
        answers = [person.sign_in("chk_" + "\u00e9" * 20) for _ in range(4)]

    assert [answer.status_code for answer in answers] == [401, 401, 401, 429]
    assert all(_has_security_headers(answer) for answer in answers)


# The sign-in throttle -----------------------------------------------------------------------------


def _wrong_key() -> str:
    return f"key_{'0' * 32}.{unique()}"


def test_a_burst_of_parallel_wrong_keys_gets_no_more_tries_than_one_after_another(keys: Any, clock: Any) -> None:
    async def burst(url: str) -> list[int]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            token = csrf_of((await http.get("/sign-in")).text)

            async def one() -> int:
                answer = await http.post("/sign-in", data={"csrf_token": token, "api_key": _wrong_key()})
                return answer.status_code

            return list(await asyncio.gather(*(one() for _ in range(30))))

    with own_console(keys, clock) as (own, _):
        answers = asyncio.run(burst(own.url))

    assert sorted(answers) == [401] * 3 + [429] * 27


@pytest.mark.parametrize(
    ("trusted", "expected"),
    [
        ((), [401, 401, 401, 429, 429]),  # the default: the header is nobody's to set
        (("10.0.0.0/8",), [401, 401, 401, 429, 429]),  # a proxy elsewhere: loopback is not it
        (("127.0.0.1",), [401] * 5),  # loopback is the proxy: each forwarded address counts alone
    ],
)
def test_x_forwarded_for_is_believed_only_from_the_configured_proxies(
    keys: Any, clock: Any, trusted: tuple[str, ...], expected: list[int]
) -> None:
    with own_console(keys, clock, trusted_proxies=trusted) as (own, _), browsers(own.url, 1) as (person,):
        answers = [
            person.http.post(
                "/sign-in",
                data={"csrf_token": csrf_of(person.get("/sign-in").text), "api_key": _wrong_key()},
                headers={"x-forwarded-for": f"10.9.0.{n}"},
            ).status_code
            for n in range(5)
        ]

    assert answers == expected


def test_a_valid_key_of_a_refused_role_does_not_reset_the_throttle(keys: Any, clock: Any) -> None:
    with own_console(keys, clock) as (own, _), browsers(own.url, 1) as (person,):
        answers = [person.sign_in(key).status_code for key in (_wrong_key(), _wrong_key(), keys.generator)]
        answers.append(person.sign_in(_wrong_key()).status_code)

    assert answers == [401, 401, 403, 429]


def test_attempts_the_server_could_not_judge_are_not_counted(keys: Any, clock: Any) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        dead = f"127.0.0.1:{unused.getsockname()[1]}"
        held = HeldClock(clock.now())
        own = ConsoleServer(ConsoleSettings(server=dead, call_timeout=3), "127.0.0.1:0", clock=held.now)
        own.start()
        try:
            with browsers(own.url, 1) as (person,):
                answers = [person.sign_in(keys.rights_holder).status_code for _ in range(5)]
        finally:
            own.stop()

    assert answers == [503] * 5


# Roles --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["generator", "licensee_admin"])
def test_keys_of_roles_without_console_pages_cannot_sign_in(web: Web, keys: Any, role: str) -> None:
    refused = web.sign_in(getattr(keys, role))
    after = web.get("/usage")

    assert refused.status_code == 403
    assert "charter_console=" not in refused.headers.get("set-cookie", "")
    assert after.status_code == 303
    assert after.headers["location"] == "/sign-in"


def test_staff_create_a_licensee_admin_key_and_the_list_names_its_role(web: Web, scene: Scene, keys: Any) -> None:
    web.sign_in(keys.admin)
    name = f"licensee admin {unique()}"
    form = {"display_name": name, "role": "licensee_admin", "licensee_id": scene.licensee_id}
    created = web.post_form("/staff/api-keys", "/staff/api-keys", form)
    with charter.Client(scene.target, api_key=keys.admin) as client:
        made = [key for key in client.list_api_keys(page_size=1000) if key.display_name == name]
    listed = web.get("/staff/api-keys")

    assert created.status_code == 200
    assert 'id="new-secret"' in created.text
    assert [(key.role, key.licensee_id) for key in made] == [(api_key_pb2.ROLE_LICENSEE_ADMIN, scene.licensee_id)]
    assert '<option value="licensee_admin"' in listed.text
    # Every key on the list's first page names its role (a licensee-admin key's cell was empty).
    # Which keys the first page holds depends on the database's history (PostgreSQL's outlives a run).
    roles = re.findall(r"<td><code>key_[0-9a-f]+</code></td><td>([^<]*)</td>", listed.text)
    assert roles
    assert "" not in roles


# HSTS ---------------------------------------------------------------------------------------------


def test_strict_transport_security_is_sent_over_tls_only(keys: Any, clock: Any, tmp_path: Path) -> None:
    ca, ca_cert, ca_key = issue(tmp_path, "ca", "console test CA")
    served, _, _ = issue(tmp_path, "console", "localhost", issuer=(ca_cert, ca_key), sans=LOOPBACK_SANS)
    tls = ConsoleServer(
        ConsoleSettings(server=keys.target, secure_cookies=True),
        "127.0.0.1:0",
        clock=clock.now,
        certfile=served.cert_file,
        keyfile=served.key_file,
    )
    tls.start()
    try:
        with httpx.Client(base_url=tls.url, verify=ssl.create_default_context(cafile=ca.cert_file)) as http:
            over_tls = [http.get("/sign-in"), http.get("/static/console.css"), http.get("/nowhere")]
    finally:
        tls.stop()
    with own_console(keys, clock) as (plain, _), browsers(plain.url, 1) as (person,):
        over_http = person.get("/sign-in")

    assert tls.url.startswith("https://")
    assert [answer.headers.get("strict-transport-security") for answer in over_tls] == ["max-age=31536000"] * 3
    assert "strict-transport-security" not in over_http.headers
