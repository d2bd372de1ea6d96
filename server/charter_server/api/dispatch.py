"""How every call reaches Charter's code: request ids, logs and metrics, limits, the drain,
authentication and roles, error statuses, and where the call runs; one place for every method.

Charter serves gRPC with ``grpc.aio`` on one event loop (see ``charter_server.api.serving``). Each
method's handler is wrapped here once, when the server is built, so a call pays for one wrapper
instead of a chain of interceptors.

**Unary calls.** A call is refused before any work while the server drains (``UNAVAILABLE``,
``SHUTTING_DOWN``) or when ``max_in_flight`` calls are already running (``RESOURCE_EXHAUSTED``,
``CONCURRENCY_LIMIT_REACHED``). Otherwise authentication, the role check, decoding and the handler
run as one synchronous body. For the methods whose common path reads only memory (``Authorize``,
``ScreenPrompt``, ``GetKeySet``, the health check) the body runs on the event loop itself, which
saves the hand-off to a worker thread and back; any unit of work it asks for raises
``WouldBlock`` there (``charter_server.storage.database.forbid_blocking``), and the body then runs
again from the start on a worker thread. The body has no side effect before its first unit of
work, so running it again is safe. Every other method runs on a worker thread. Either way the call
is counted until its body has finished, even if the client gave up, so the drain waits for it.

**Streams** (``WatchRevocations``, ``Health/Watch``, reflection) are coroutines on the event loop:
an open stream costs no thread. Each is admitted against `StreamLimits` (per API key, for the
unauthenticated callers together, and in total), answered with ``RESOURCE_EXHAUSTED``
(``STREAM_LIMIT_REACHED``) beyond them.

Every answer but an unknown method's carries the request id (the caller's ``x-request-id`` when
it is well formed, else a new one) in the trailing metadata, and every error a
``google.rpc.Status`` with ``ErrorInfo`` (``charter_server.api.status``). One ``rpc.completed``
line and the Prometheus metrics record each call.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
import structlog
from prometheus_client import Counter, Gauge, Histogram

from charter_server import logs
from charter_server.api import policy, status
from charter_server.api.context import principal_var
from charter_server.api.limits import StreamLimits
from charter_server.domain.errors import (
    DomainError,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    ShuttingDown,
    Unauthenticated,
    Unimplemented,
)
from charter_server.domain.models import Principal
from charter_server.services.access import Authenticator
from charter_server.storage.database import WouldBlock

log = structlog.get_logger("charter_server.rpc")

RPC_COUNT = Counter("charter_rpc_total", "RPCs served, by method and status code.", ["method", "code"])
RPC_SECONDS = Histogram("charter_rpc_seconds", "RPC duration in seconds, by method.", ["method"])
STREAMS_OPEN = Gauge("charter_streams_open", "Streams open now, by method.", ["method"], multiprocess_mode="livesum")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
AUTHORIZATION = "authorization"

Handler = Callable[[Any, Any], Any]
"""A servicer's unary method: (request message, context) -> response message."""
StreamHandler = Callable[[Any, Any], AsyncIterator[Any]]
"""A servicer's server-streaming method: (request, context) -> async iterator of messages."""


@dataclass(slots=True)
class CallInfo:
    """What the transport knows about one call (the caller is filled in by authentication)."""

    method: str
    request_id: str
    caller: str = ""


def _new_request_id() -> str:
    # Unique, not secret: a Mersenne Twister draw avoids a system call per call.
    return f"{random.getrandbits(128):032x}"


def _read_metadata(metadata: Iterable[tuple[str, Any]] | None) -> tuple[str, list[str]]:
    """The request id (the caller's if well formed, else a new one) and every authorization value."""
    request_id = ""
    credentials: list[str] = []
    for key, value in metadata or ():
        if key == AUTHORIZATION:
            credentials.append(value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value))
        elif key == status.REQUEST_ID_KEY and not request_id:
            given = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            if _REQUEST_ID.fullmatch(given):
                request_id = given
    return request_id or _new_request_id(), credentials


def _bearer(credentials: list[str]) -> str | None:
    """The API key of the ``authorization`` header; None without one."""
    if not credentials:
        return None
    if len(credentials) > 1:
        # Proxies and clients disagree on which of two values wins; never guess.
        raise Unauthenticated("send exactly one 'authorization' header", reason="CREDENTIALS_INVALID")
    scheme, _, value = credentials[0].strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthenticated("use 'authorization: Bearer <api key>'", reason="CREDENTIALS_INVALID")
    return value.strip()


@dataclass(frozen=True, slots=True)
class Method:
    """One method as the dispatcher serves it."""

    name: str
    parse: Callable[[bytes], Any]
    public: bool
    inline: bool


class Dispatcher:
    """Wraps servicer methods into ``grpc.aio`` handlers; tracks calls in flight for the drain.

    Args:
        authenticator: Turns bearer tokens into principals.
        executor: The worker threads for bodies that may block.
        max_in_flight: Unary calls running at once before new ones are refused.
        max_message_bytes: The largest request or response accepted.
        streams: The stream limits.
        inline_methods: Methods whose body is first tried on the event loop.
    """

    def __init__(
        self,
        *,
        authenticator: Authenticator,
        executor: Executor,
        max_in_flight: int,
        max_message_bytes: int,
        streams: StreamLimits,
        inline_methods: frozenset[str],
    ) -> None:
        self._authenticator = authenticator
        self._executor = executor
        self._max_in_flight = max_in_flight
        self._max_message_bytes = max_message_bytes
        self.streams = streams
        self._inline_methods = inline_methods
        self._in_flight = 0
        self._draining = False
        self._last_refused = 0.0
        self._idle: asyncio.Event | None = None
        self._drain_started: asyncio.Event | None = None
        # Labelled metric children, looked up once: ``labels()`` takes a lock and builds a key.
        self._counts: dict[tuple[str, str], Any] = {}
        self._seconds: dict[str, Any] = {}

    # The drain --------------------------------------------------------------------------------

    @property
    def draining(self) -> bool:
        """Whether new calls are refused."""
        return self._draining

    @property
    def in_flight(self) -> int:
        """Unary calls whose body has not finished."""
        return self._in_flight

    def begin_drain(self) -> None:
        """Refuse every new call (but health and reflection) from now on; on the event loop."""
        self._draining = True
        self._drain_waiters().set()
        self._update_idle()

    async def drained(self, deadline: float, quiet: float, patience: float) -> None:
        """Wait until no call is in flight and none has been refused for ``quiet`` seconds (for at
        most ``patience`` seconds once none is in flight), or until ``deadline`` (event-loop
        time); on the event loop.

        Refused callers whose gRPC retries wait out the pushback the refusal carries stop arriving
        once told; stopping the transport only then means no call is queued inside gRPC when it
        stops, where it would be cancelled unanswered. Callers that keep coming regardless are
        told by gRPC's own GOAWAY when the patience is spent (the SDK repeats a call that was
        cancelled before Charter saw it).
        """
        loop = asyncio.get_running_loop()
        idle = self._idle_event()
        calm_until: float | None = None
        while loop.time() < deadline:
            remaining = deadline - loop.time()
            if self._in_flight:
                try:
                    await asyncio.wait_for(idle.wait(), remaining)
                except TimeoutError:
                    return
                continue
            if calm_until is None:
                calm_until = loop.time() + patience
            calm = self._last_refused + quiet - time.monotonic()
            if calm <= 0 or loop.time() >= calm_until:
                return
            await asyncio.sleep(min(calm, remaining, calm_until - loop.time()))

    async def until_draining(self) -> None:
        """Return once the drain has begun; for streams that must end then."""
        await self._drain_waiters().wait()

    def _drain_waiters(self) -> asyncio.Event:
        if self._drain_started is None:
            self._drain_started = asyncio.Event()
            if self._draining:
                self._drain_started.set()
        return self._drain_started

    def _idle_event(self) -> asyncio.Event:
        if self._idle is None:
            self._idle = asyncio.Event()
        self._update_idle()
        return self._idle

    def _update_idle(self) -> None:
        if self._idle is not None:
            if self._in_flight:
                self._idle.clear()
            else:
                self._idle.set()

    def _release(self, _future: object = None) -> None:
        self._in_flight -= 1
        if not self._in_flight:
            self._update_idle()

    # Handlers -----------------------------------------------------------------------------------

    def unary(self, name: str, handler: Handler, parse: Callable[[bytes], Any]) -> grpc.RpcMethodHandler:
        """The ``grpc.aio`` handler of a unary method (bytes in, bytes out)."""
        method = Method(name, parse, policy.is_public(name), name in self._inline_methods)

        async def serve(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return await self._unary(method, handler, raw, context)

        return grpc.unary_unary_rpc_method_handler(serve)

    def unary_stream(self, name: str, handler: StreamHandler, parse: Callable[[bytes], Any]) -> grpc.RpcMethodHandler:
        """The ``grpc.aio`` handler of a server-streaming method (bytes in, messages out as bytes)."""
        method = Method(name, parse, policy.is_public(name), False)

        # An async generator function, so that grpc.aio iterates it on the event loop.
        async def serve(raw: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
            async for message in self._stream(method, handler, raw, context):
                yield message

        return grpc.unary_stream_rpc_method_handler(serve)

    def stream_stream(
        self,
        name: str,
        handler: Callable[[AsyncIterator[Any], Any], AsyncIterator[Any]],
        parse: Callable[[bytes], Any],
    ) -> grpc.RpcMethodHandler:
        """The ``grpc.aio`` handler of a public bidirectional method (reflection); it ends with
        ``SHUTTING_DOWN`` when the drain begins."""
        method = Method(name, lambda raw: raw, True, False)

        async def serve(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
            async def replies(_request: object, _context: object) -> AsyncIterator[Any]:
                async for reply in handler(self._until_drain(requests), context):
                    yield reply
                if self._draining:
                    raise ShuttingDown("the server is shutting down; reconnect to another replica")

            async for message in self._stream(method, replies, b"", context):
                yield message

        return grpc.stream_stream_rpc_method_handler(serve, request_deserializer=parse)

    def routes(self, methods: dict[str, grpc.RpcMethodHandler]) -> grpc.GenericRpcHandler:
        """A generic handler serving ``methods`` (by full method name), which answers every other
        method with ``UNIMPLEMENTED`` and ``METHOD_NOT_FOUND`` (gRPC's own answer would carry no
        details)."""
        dispatcher = self

        def unknown(name: str) -> grpc.RpcMethodHandler:
            async def serve(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
                started = time.perf_counter()
                request_id, _ = _read_metadata(context.invocation_metadata())
                failure = status.from_domain_error(Unimplemented(f"no method {name}"), request_id)
                dispatcher._finish(CallInfo(name, request_id), failure.code.name, started, failure.reason)
                await _answer(context, failure)

            return grpc.unary_unary_rpc_method_handler(serve)

        class _Routes(grpc.GenericRpcHandler):  # type: ignore[misc]
            def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
                return methods.get(details.method) or unknown(details.method)

        return _Routes()

    # Unary --------------------------------------------------------------------------------------

    async def _unary(self, method: Method, handler: Handler, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        started = time.perf_counter()
        request_id, credentials = _read_metadata(context.invocation_metadata())
        info = CallInfo(method.name, request_id)
        logs.bind_call(request_id, method.name)  # each call is its own task, with its own context
        code = "CANCELLED"
        try:
            outcome = await self._admit(method, handler, raw, context, credentials, info)
            if isinstance(outcome, status.RichStatus):
                code = ""  # recorded here: the call's line is written before its answer leaves
                self._finish(info, outcome.code.name, started, outcome.reason)
                await _answer(context, outcome)
            context.set_trailing_metadata(((status.REQUEST_ID_KEY, request_id),))
            code = "OK"
            return outcome
        finally:
            if code:
                self._finish(info, code, started)

    async def _admit(
        self,
        method: Method,
        handler: Handler,
        raw: bytes,
        context: grpc.aio.ServicerContext,
        credentials: list[str],
        info: CallInfo,
    ) -> bytes | status.RichStatus:
        if self._draining and not method.public:
            self._last_refused = time.monotonic()
            return _shutting_down(info.request_id)
        if self._in_flight >= self._max_in_flight:
            return status.from_domain_error(
                ResourceExhausted(
                    "the server is at its limit of calls in flight; retry shortly",
                    reason="CONCURRENCY_LIMIT_REACHED",
                ),
                info.request_id,
            )
        self._in_flight += 1
        handed_off = False
        try:
            if method.inline:
                try:  # on the event loop, whose thread may not block (see forbid_blocking)
                    return self._body(method, handler, raw, context, credentials, info)
                except WouldBlock:
                    pass
            loop = asyncio.get_running_loop()
            work = loop.run_in_executor(
                self._executor,
                contextvars.copy_context().run,
                self._body,
                method,
                handler,
                raw,
                context,
                credentials,
                info,
            )
            work.add_done_callback(self._release)
            handed_off = True
            # Shielded: a client that gives up cancels this task, never the body on its thread.
            return await asyncio.shield(work)
        finally:
            if not handed_off:
                self._release()

    def _body(
        self,
        method: Method,
        handler: Handler,
        raw: bytes,
        context: grpc.aio.ServicerContext,
        credentials: list[str],
        info: CallInfo,
    ) -> bytes | status.RichStatus:
        """Authenticate, check the role, decode, run the handler, encode: one synchronous body."""
        token = None
        try:
            if not method.public:
                token = principal_var.set(self._authenticate(method.name, credentials, info))
            if len(raw) > self._max_message_bytes:
                raise _too_large("request", self._max_message_bytes)
            request = _decode(method.parse, raw)
            answer = handler(request, context)
            # A handler may answer with the serialized response (Authorize assembles its own).
            reply: bytes = answer if isinstance(answer, bytes) else answer.SerializeToString()
            if len(reply) > self._max_message_bytes:
                raise _too_large("response", self._max_message_bytes)
            return reply
        except DomainError as error:
            return status.from_domain_error(error, info.request_id)
        except Exception as error:
            log.exception("rpc.unexpected_error", error_type=type(error).__name__)
            return status.internal(info.request_id)
        finally:
            if token is not None:
                principal_var.reset(token)

    def _authenticate(self, method: str, credentials: list[str], info: CallInfo) -> Principal:
        principal = self._authenticator.authenticate(_bearer(credentials))
        info.caller = principal.key_id
        allowed = policy.POLICY.get(method)
        if allowed is None or principal.role not in allowed:
            raise PermissionDenied(f"role {principal.role.value} may not call {method}", reason="ROLE_NOT_PERMITTED")
        return principal

    # Streams ------------------------------------------------------------------------------------

    async def _stream(
        self, method: Method, handler: StreamHandler, raw: bytes, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        started = time.perf_counter()
        request_id, credentials = _read_metadata(context.invocation_metadata())
        info = CallInfo(method.name, request_id)
        logs.bind_call(request_id, method.name)
        code = "CANCELLED"
        release: Callable[[], None] | None = None
        gauge = STREAMS_OPEN.labels(method.name)

        async def fail(failure: status.RichStatus) -> NoReturn:
            nonlocal code, release
            code = ""  # recorded here: the call's line is written before its answer leaves
            if release is not None:
                release()
                gauge.dec()
                release = None
            self._finish(info, failure.code.name, started, failure.reason)
            await _answer(context, failure)

        try:
            try:
                if self._draining and not method.public:
                    raise ShuttingDown("the server is shutting down; retry against another replica")
                principal = None if method.public else await self._stream_principal(method, credentials, info)
                release = self.streams.acquire(principal.key_id if principal is not None else None)
                gauge.inc()
                if principal is not None:
                    principal_var.set(principal)
                request = _decode(method.parse, raw)
                context.set_trailing_metadata(((status.REQUEST_ID_KEY, request_id),))
                async for message in handler(request, context):
                    yield message if isinstance(message, bytes) else message.SerializeToString()
                code = "OK"
            except DomainError as error:
                await fail(status.from_domain_error(error, request_id))
            except WouldBlock:  # never expected: stream handlers do their blocking work on threads
                log.exception("rpc.unexpected_error", error_type="WouldBlock")
                await fail(status.internal(request_id))
            except Exception as error:
                log.exception("rpc.unexpected_error", error_type=type(error).__name__)
                await fail(status.internal(request_id))
        finally:
            if release is not None:
                release()
                gauge.dec()
            if code:
                self._finish(info, code, started)

    async def _stream_principal(self, method: Method, credentials: list[str], info: CallInfo) -> Principal:
        """Authenticate a stream's caller: from the key cache on the loop, else on a thread."""
        try:
            return self._authenticate(method.name, credentials, info)
        except WouldBlock:
            pass
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, contextvars.copy_context().run, self._authenticate, method.name, credentials, info
        )

    async def _until_drain(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """The requests of a bidirectional stream, ending early when the drain begins."""
        drain = asyncio.ensure_future(self.until_draining())
        try:
            iterator = aiter(requests)
            while True:
                following = asyncio.ensure_future(anext(iterator))
                done, _ = await asyncio.wait((following, drain), return_when=asyncio.FIRST_COMPLETED)
                if following not in done:
                    following.cancel()
                    return
                try:
                    yield following.result()
                except StopAsyncIteration:
                    return
        finally:
            drain.cancel()

    # Records ------------------------------------------------------------------------------------

    def _finish(self, info: CallInfo, code: str, started: float, reason: str = "") -> None:
        elapsed = time.perf_counter() - started
        count = self._counts.get((info.method, code))
        if count is None:
            count = self._counts.setdefault((info.method, code), RPC_COUNT.labels(info.method, code))
        seconds = self._seconds.get(info.method)
        if seconds is None:
            seconds = self._seconds.setdefault(info.method, RPC_SECONDS.labels(info.method))
        count.inc()
        seconds.observe(elapsed)
        if logs.info_enabled():
            # The reason tells an outage (STORAGE_UNAVAILABLE) from a drain (SHUTTING_DOWN) or a
            # limit, where the code alone (UNAVAILABLE, RESOURCE_EXHAUSTED) cannot.
            extra = {"reason": reason} if reason else {}
            log.info(
                "rpc.completed",
                method=info.method,
                request_id=info.request_id,
                caller=info.caller,
                code=code,
                duration_ms=round(elapsed * 1000, 3),
                **extra,
            )


async def _answer(context: grpc.aio.ServicerContext, failure: status.RichStatus) -> NoReturn:
    """End the call with ``failure`` (its details and request id in the trailing metadata).

    Aborting sends the status alone, a "trailers-only" response, so that a client's gRPC retry
    policy may retry it (``UNAVAILABLE``); a response with a message, even an empty one, commits
    the call and is never retried. Raises grpc.aio's ``AbortError``, which ends the handler.
    """
    await context.abort(failure.code, failure.details, failure.trailing_metadata)
    raise AssertionError("grpc.aio's abort returned")  # pragma: no cover - abort always raises


def _decode(parse: Callable[[bytes], Any], raw: bytes) -> Any:
    try:
        return parse(raw)
    except Exception:  # protobuf's DecodeError, or anything else malformed bytes provoke
        raise InvalidArgument.one("", "the request body is not a valid serialized request message") from None


def _too_large(what: str, limit: int) -> ResourceExhausted:
    return ResourceExhausted(
        f"the {what} is larger than the server's message limit of {limit} bytes",
        reason="MESSAGE_TOO_LARGE",
        metadata={"limit_bytes": str(limit)},
    )


PUSHBACK_MS = 250
"""How long a caller refused during the drain should wait before it retries (gRPC honours it)."""


def _shutting_down(request_id: str) -> status.RichStatus:
    refused = status.from_domain_error(
        ShuttingDown("the server is shutting down; retry against another replica"), request_id
    )
    return status.RichStatus(
        code=refused.code,
        details=refused.details,
        trailing_metadata=(*refused.trailing_metadata, ("grpc-retry-pushback-ms", str(PUSHBACK_MS))),
        reason=refused.reason,
    )
