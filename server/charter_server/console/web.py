"""What every console page shares: the console's state, the signed-in session, checked forms, page
rendering, and turning the API's errors into pages that say what happened and that nothing changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from babel import Locale
from charter.errors import (
    CharterError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
    UnavailableError,
)
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates
from starlette.types import Message

from charter_server.console import formatting
from charter_server.console.sessions import OneTimeLinks, Session, SessionStore, SignInThrottle

log = structlog.get_logger(__name__)

HERE = Path(__file__).resolve().parent
COOKIE = "charter_console"
PRE_COOKIE = "charter_console_signin"  # the sign-in form's own CSRF token, before any session
MAX_BODY = 256 * 1024
"""The largest request body accepted; the longest form is far below it."""
MAX_FIELD = 64 * 1024
"""The largest single form field accepted."""


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    """How a console runs.

    Attributes:
        server: The gRPC address of the Charter server the console calls.
        server_root_certificates: PEM roots to verify the server's TLS certificate; None for a
            plaintext channel (loopback).
        secure_cookies: Mark the session cookie Secure (set when the console serves TLS itself or
            sits behind a TLS proxy).
        idle: A session ends after this long without a request.
        lifetime: A session ends after this long in any case.
        call_timeout: The deadline of each API call, in seconds.
        max_sessions_per_key: Live sessions of one API key; a new sign-in past it ends the key's
            oldest session.
        max_sessions: Live sessions in all; a new sign-in past it ends the session idle longest.
        trusted_proxies: IP addresses or networks of reverse proxies whose X-Forwarded-For and
            X-Forwarded-Proto are believed (see `charter_server.config.console_trusted_proxies`);
            empty believes none, so the sign-in throttle counts the connection's own address.
    """

    server: str
    server_root_certificates: bytes | None = None
    secure_cookies: bool = False
    idle: timedelta = timedelta(minutes=30)
    lifetime: timedelta = timedelta(hours=12)
    call_timeout: float = 15.0
    max_sessions_per_key: int = 10
    max_sessions: int = 10_000
    trusted_proxies: tuple[str, ...] = ()


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ConsoleState:
    """The console's state, one per process: settings, sessions, throttle, links, templates."""

    settings: ConsoleSettings
    clock: Callable[[], datetime] = _now
    sessions: SessionStore = field(init=False)
    throttle: SignInThrottle = field(init=False)
    links: OneTimeLinks = field(init=False)
    templates: Jinja2Templates = field(init=False)

    def __post_init__(self) -> None:
        self.sessions = SessionStore(
            self.clock,
            idle=self.settings.idle,
            lifetime=self.settings.lifetime,
            max_per_key=self.settings.max_sessions_per_key,
            max_sessions=self.settings.max_sessions,
        )
        self.throttle = SignInThrottle(self.clock)
        self.links = OneTimeLinks(self.clock)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        env = self.templates.env
        env.autoescape = True  # every template, whatever its name: names and terms come from users
        env.globals.update(
            when=formatting.when,
            day=formatting.day,
            duration=formatting.duration,
            CHARACTER_STATES=formatting.CHARACTER_STATES,
            GRANT_STATES=formatting.GRANT_STATES,
            ALIAS_KINDS=formatting.ALIAS_KINDS,
            USE_TYPES=formatting.USE_TYPES,
            RATINGS=formatting.RATINGS,
            CATEGORIES=formatting.CATEGORIES,
            DENY_REASONS=formatting.DENY_REASONS,
        )

    def new_client(self, api_key: str) -> Any:
        """An AsyncClient calling as ``api_key`` (made inside the serving event loop)."""
        import charter

        return charter.AsyncClient(
            self.settings.server,
            api_key=api_key,
            root_certificates=self.settings.server_root_certificates,
            timeout=self.settings.call_timeout,
        )


def state(request: Request) -> ConsoleState:
    found: ConsoleState = request.app.state.console
    return found


class SignedOut(Exception):
    """No live session: the request goes to the sign-in page (or, for a form, an ended-session page)."""

    def __init__(self, *, ended: bool) -> None:
        super().__init__("not signed in")
        self.ended = ended


class CsrfRefused(Exception):
    """A form came without this session's CSRF token."""


class NotAllowed(Exception):
    """A page that the signed-in key's role has no use for (staff pages for a rights holder)."""


class BadForm(Exception):
    """A form too large or malformed to read."""


def close_later(sessions: list[Session]) -> None:
    """Close the clients of ended sessions without holding up the request."""
    for session in sessions:
        asyncio.get_running_loop().create_task(session.client.close())


def session_of(request: Request) -> Session:
    """The request's live session, or `SignedOut`."""
    console = state(request)
    cookie = request.cookies.get(COOKIE, "")
    found, expired = console.sessions.find(cookie[:100])
    close_later(expired)
    if found is None:
        raise SignedOut(ended=bool(cookie))
    return found


async def read_form(request: Request) -> FormData:
    """The request's form, bounded in size and field count.

    The body is read and counted here, whatever Content-Length says (a chunked body has none),
    and refused as soon as it passes `MAX_BODY`; only then is it parsed.
    """
    length = request.headers.get("content-length", "")
    if length and (len(length) > 18 or not (length.isascii() and length.isdigit()) or int(length) > MAX_BODY):
        raise BadForm("the form is too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise BadForm("the form is too large")
    read = bytes(body)

    async def replay() -> Message:
        return {"type": "http.request", "body": read, "more_body": False}

    try:
        return await Request(request.scope, replay).form(max_files=0, max_fields=300, max_part_size=MAX_FIELD)
    except Exception as error:  # the multipart parser's errors differ by version; all mean a bad form
        raise BadForm("the form could not be read") from error


async def checked_form(request: Request, session: Session) -> FormData:
    """The form of a POST whose CSRF token is the session's, or `CsrfRefused`."""
    form = await read_form(request)
    token = form.get("csrf_token")
    if not isinstance(token, str) or not session.check_csrf(token):
        raise CsrfRefused()
    return form


def locale(request: Request) -> Locale:
    return formatting.locale_for(request.headers.get("accept-language", "")[:200])


def page(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    session: Session | None = None,
) -> Response:
    """Render a page with what every page shows: who is signed in, the navigation, the CSRF token."""
    loc = locale(request)
    values: dict[str, Any] = {
        "session": session,
        "caller": session.caller if session else None,
        "csrf": session.csrf_token if session else "",
        "flash": list(session.flash) if session else [],
        "money": lambda minor, currency: formatting.money(minor, currency, loc),
        "number": lambda value: formatting.number(value, loc),
        "path": request.url.path,
    }
    if session is not None:
        session.flash.clear()
    values.update(context or {})
    return state(request).templates.TemplateResponse(request, template, values, status_code=status)


def message_page(
    request: Request, title: str, message: str, *, status: int, session: Session | None = None, **extra: Any
) -> Response:
    return page(request, "message.html", {"title": title, "message": message, **extra}, status=status, session=session)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


Handler = Callable[[Request], Awaitable[Response]]


def error_page(request: Request, error: Exception) -> Response:  # noqa: PLR0911 - one page per outcome
    """The page for an outcome that is not the one asked for: never a stack trace."""
    session: Session | None = None
    try:
        session = session_of(request)
    except SignedOut:
        session = None
    if isinstance(error, SignedOut):
        if request.method == "GET":
            return redirect("/sign-in?ended=1" if error.ended else "/sign-in")
        return message_page(
            request,
            "Your session has ended",
            "You were signed out (sessions end after a while without use). Nothing was changed. "
            "Sign in again and repeat what you were doing.",
            status=401,
        )
    if isinstance(error, CsrfRefused):
        return message_page(
            request,
            "This form was not accepted",
            "The form did not carry this session's security token (it may be from an older page or from "
            "another site). Nothing was changed. Go back, reload the page and try again.",
            status=403,
            session=session,
        )
    if isinstance(error, BadForm):
        return message_page(
            request, "This form was not accepted", f"{error} Nothing was changed.", status=413, session=session
        )
    if isinstance(error, UnauthenticatedError):
        if session is not None:
            state(request).sessions.end(session)
            close_later([session])
        return message_page(
            request,
            "Your API key is no longer accepted",
            "The server refused the key this session signed in with (revoked or expired). Sign in with a valid key.",
            status=401,
        )
    if isinstance(error, PermissionDeniedError | NotAllowed):
        return message_page(
            request,
            "Not yours to see or change",
            "This belongs to another rights holder, or your key's role does not allow it. Nothing was changed.",
            status=403,
            session=session,
            reason=getattr(error, "reason", "") or "",
        )
    if isinstance(error, NotFoundError):
        return message_page(
            request,
            "Not found",
            "There is nothing at this address, or it was removed.",
            status=404,
            session=session,
            reason=error.reason or "",
        )
    if isinstance(error, InvalidArgumentError):
        return message_page(
            request,
            "The request was not accepted",
            "Some values were not valid. Nothing was changed.",
            status=400,
            session=session,
            reason=error.reason or "",
            violations=[(v.field, v.description) for v in error.field_violations],
        )
    if isinstance(error, FailedPreconditionError):
        return message_page(
            request,
            "Not possible now",
            f"{error.message} Nothing was changed.",
            status=409,
            session=session,
            reason=error.reason or "",
        )
    if isinstance(error, UnavailableError | DeadlineExceededError):
        return message_page(
            request,
            "The Charter server does not answer",
            "The console could not reach the licensing server in time. Try again in a moment.",
            status=503,
            session=session,
        )
    if isinstance(error, CharterError):
        log.warning("console.api_error", code=error.code.name, reason=error.reason)
        return message_page(
            request,
            "Something went wrong",
            "The server could not do this. Nothing was changed.",
            status=502,
            session=session,
        )
    log.error("console.unexpected_error", path=request.url.path, error_type=type(error).__name__)
    return message_page(
        request, "Something went wrong", "The console hit an unexpected problem; it is logged.", status=500
    )
