"""The console's ASGI application: routes, sign-in and sign-out, security headers, error pages.

Built by `build_console(settings)`; served by `charter_server.console.serve`. See
`charter_server.console` for what it is and how it keeps keys and sessions.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from typing import Any

import structlog
from charter.errors import CharterError, UnauthenticatedError, UnavailableError
from charter.v1 import api_key_pb2
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from charter_server.console import pages, reports, staff
from charter_server.console.sessions import CONSOLE_ROLES, ROLE_NAMES, Caller
from charter_server.console.web import (
    COOKIE,
    HERE,
    PRE_COOKIE,
    BadForm,
    ConsoleSettings,
    ConsoleState,
    CsrfRefused,
    NotAllowed,
    SignedOut,
    close_later,
    error_page,
    message_page,
    page,
    read_form,
    redirect,
    session_of,
    state,
)

log = structlog.get_logger(__name__)

MAX_KEY = 200
"""The longest API key the sign-in form passes on."""

# Only this console's own files; no inline script or style, so injected markup cannot run.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


HSTS = "max-age=31536000"
"""Strict-Transport-Security over HTTPS: a year, this host only (not its subdomains, which the
console does not know)."""


class SecurityHeaders:
    """Headers on every response: CSP, no sniffing, no framing, no referrer, no caching of pages,
    HSTS over HTTPS, and the time the page took on the server.

    A plain ASGI wrapper around the whole application, outside Starlette's ServerErrorMiddleware,
    so that the page of an unexpected error carries them too.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        static = str(scope.get("path", "")).startswith("/static/")
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                # The console's own time for the page (API calls included), for the browser's
                # developer tools and bench/bench_console.py.
                headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
                headers.setdefault("Content-Security-Policy", CSP)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                # The one-time sign-in link must never leave in a Referer header.
                headers["Referrer-Policy"] = "no-referrer"
                if not static:
                    headers["Cache-Control"] = "no-store"
                if https:
                    # Served over TLS (by the console, or by a trusted proxy that says so): the
                    # browser must never come back over plain HTTP, where the cookie is exposed.
                    headers["Strict-Transport-Security"] = HSTS
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _Console(Starlette):
    """Starlette with `SecurityHeaders` outermost, around its ServerErrorMiddleware."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack())


def _cookie(response: Response, settings: ConsoleSettings, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
        path="/",
    )


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def home(request: Request) -> Response:
    session = session_of(request)
    if session.caller.is_staff:
        return redirect("/staff")
    return redirect("/catalogue")


async def sign_in_form(request: Request, *, status: int = 200, problem: str = "", wait: int = 0) -> Response:
    token = secrets.token_urlsafe(24)
    ended = request.query_params.get("ended") == "1"
    response = page(
        request,
        "sign_in.html",
        {"pre_csrf": token, "problem": problem, "ended": ended, "wait": wait},
        status=status,
    )
    _cookie(response, state(request).settings, PRE_COOKIE, token, 3600)
    return response


async def sign_in_page(request: Request) -> Response:
    return await sign_in_form(request)


async def _start_session(request: Request, api_key: str) -> tuple[Response, bool]:
    """Ask the API who the key is; on success a new session and its cookie.

    A session this browser still has ends first, whatever the outcome: signing in again (as the
    same key or another) never leaves the old session usable by whoever kept its cookie.
    """
    console = state(request)
    with contextlib.suppress(SignedOut):
        previous = session_of(request)
        console.sessions.end(previous)
        close_later([previous])
    client = console.new_client(api_key)
    try:
        key = await client.get_caller()
        holder_name = ""
        if key.role == api_key_pb2.ROLE_RIGHTS_HOLDER and key.rights_holder_id:
            holder_name = (await client.get_rights_holder(key.rights_holder_id)).display_name
    except BaseException:
        await client.close()
        raise
    if key.role not in CONSOLE_ROLES:
        await client.close()
        refused = await sign_in_form(
            request,
            status=403,
            problem="The console is for rights holders, Charter's staff and auditors. Keys of this role "
            f"({ROLE_NAMES.get(key.role, 'unknown')}) work through the API and the charter CLI.",
        )
        log.info("console.sign_in_refused", key_id=key.id, role=ROLE_NAMES.get(key.role, "unknown"))
        return refused, False
    caller = Caller(key.id, key.display_name, key.role, key.rights_holder_id, holder_name)
    session_id, _, pushed_out = console.sessions.create(caller, client)
    close_later(pushed_out)
    log.info("console.signed_in", key_id=key.id, role=caller.role_name)
    response = redirect("/staff" if caller.is_staff else "/catalogue")
    _cookie(response, console.settings, COOKIE, session_id, int(console.settings.lifetime.total_seconds()))
    response.delete_cookie(PRE_COOKIE, path="/")
    return response, True


async def _key_refused(request: Request) -> Response:
    problem = "This API key is not accepted (unknown, revoked or expired)."
    return await sign_in_form(request, status=401, problem=problem)


async def sign_in(request: Request) -> Response:
    """Check the pasted key against the API; slowed down after repeated failures per address."""
    console = state(request)
    address = _address(request)
    form = await read_form(request)
    token = form.get("csrf_token")
    cookie = request.cookies.get(PRE_COOKIE, "")
    if not isinstance(token, str) or not cookie or not secrets.compare_digest(token.encode(), cookie.encode()):
        raise CsrfRefused()
    # The attempt is counted before the key is tried, so parallel guesses cannot overtake the count.
    wait = console.throttle.reserve(address)
    if wait.total_seconds() > 0:
        seconds = int(wait.total_seconds()) + 1
        return await sign_in_form(
            request,
            status=429,
            problem=f"Too many failed sign-ins from here. Wait {seconds} seconds, then try again.",
            wait=seconds,
        )
    api_key = form.get("api_key")
    key = api_key.strip() if isinstance(api_key, str) else ""
    if not key or len(key) > MAX_KEY or not key.isprintable():
        return await sign_in_form(request, status=400, problem="Paste an API key (it starts with chk_).")
    if not key.isascii():
        # No API key has other characters, and gRPC metadata cannot carry them: refused like any
        # key the server does not know.
        return await _key_refused(request)
    try:
        response, signed_in = await _start_session(request, key)
    except UnauthenticatedError:
        return await _key_refused(request)
    except UnavailableError:
        console.throttle.release(address)
        return await sign_in_form(request, status=503, problem="The Charter server does not answer; try again soon.")
    if signed_in:
        # Only a session clears the count: a valid key of a refused role (a generator's) must not
        # reset it between guesses.
        console.throttle.succeeded(address)
    return response


async def sign_in_once(request: Request) -> Response:
    """A one-time sign-in link (printed by the demo): works once, then never again."""
    console = state(request)
    api_key = console.links.redeem(request.path_params["token"][:100])
    if api_key is None:
        return message_page(
            request,
            "This sign-in link is used up",
            "One-time sign-in links work once and for an hour. Sign in with your API key instead.",
            status=410,
        )
    response, _ = await _start_session(request, api_key)
    return response


async def sign_out(request: Request) -> Response:
    from charter_server.console.web import checked_form

    session = session_of(request)
    await checked_form(request, session)
    state(request).sessions.end(session)
    close_later([session])
    log.info("console.signed_out", key_id=session.caller.key_id)
    response = redirect("/sign-in")
    response.delete_cookie(COOKIE, path="/")
    return response


async def _error(request: Request, error: Exception) -> Response:
    return error_page(request, error)


async def _not_found(request: Request, error: Exception) -> Response:
    session = None
    with contextlib.suppress(SignedOut):
        session = session_of(request)
    return message_page(request, "Not found", "There is no page at this address.", status=404, session=session)


def build_console(settings: ConsoleSettings, *, clock: Any = None) -> Starlette:
    """The console application for ``settings``; ``clock`` (a callable returning an aware
    datetime) lets tests move time."""
    console = ConsoleState(settings, clock=clock) if clock is not None else ConsoleState(settings)
    routes = [
        Route("/", home),
        Route("/sign-in", sign_in_page, methods=["GET"]),
        Route("/sign-in", sign_in, methods=["POST"]),
        Route("/sign-in/once/{token}", sign_in_once, methods=["GET"]),
        Route("/sign-out", sign_out, methods=["POST"]),
        Route("/catalogue", pages.catalogue),
        Route("/characters/{character_id}", pages.character),
        Route("/characters/{character_id}/terms", pages.edit_terms, methods=["GET"]),
        Route("/characters/{character_id}/terms", pages.save_terms, methods=["POST"]),
        Route("/characters/{character_id}/opt-out", pages.confirm_opt_out, methods=["GET"]),
        Route("/characters/{character_id}/opt-out", pages.opt_out, methods=["POST"]),
        Route("/grants", reports.grants, methods=["GET"]),
        Route("/grants", staff.issue_grant, methods=["POST"]),
        Route("/grants/{grant_id}/{action}", staff.change_grant, methods=["POST"]),
        Route("/usage", reports.usage),
        Route("/statements", reports.statements, methods=["GET"]),
        Route("/statements", staff.close_month, methods=["POST"]),
        Route("/statements/{rights_holder_id}/{period}.csv", reports.statement_csv),
        Route("/statements/{rights_holder_id}/{period}", reports.statement),
        Route("/staff", staff.overview),
        Route("/staff/rights-holders", staff.rights_holders, methods=["GET", "POST"]),
        Route("/staff/licensees", staff.licensees, methods=["GET", "POST"]),
        Route("/staff/api-keys", staff.api_keys, methods=["GET", "POST"]),
        Route("/staff/api-keys/{key_id}/revoke", staff.revoke_api_key, methods=["POST"]),
        Route("/staff/signing-keys", staff.signing_keys, methods=["GET", "POST"]),
        Route("/staff/alias-collisions", staff.alias_collisions),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    handlers: dict[Any, Any] = {
        SignedOut: _error,
        CsrfRefused: _error,
        BadForm: _error,
        NotAllowed: _error,
        CharterError: _error,
        404: _not_found,
        Exception: _error,
    }
    app = _Console(routes=routes, exception_handlers=handlers)
    app.state.console = console
    return app
