"""Server interceptors, outermost first: request id, observability (log + metrics), error mapping,
authentication.

Each wraps the method handler's behaviour, for unary and streaming responses alike.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from prometheus_client import Counter, Histogram

from charter_server.api import policy, status
from charter_server.api.context import principal_var
from charter_server.domain.errors import (
    DomainError,
    InvalidArgument,
    PermissionDenied,
    ShuttingDown,
    Unauthenticated,
)
from charter_server.services.access import Authenticator

log = structlog.get_logger("charter_server.rpc")

Behavior = Callable[[Any, grpc.ServicerContext], Any]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

RPC_COUNT = Counter("charter_rpc_total", "RPCs served, by method and status code.", ["method", "code"])
RPC_SECONDS = Histogram("charter_rpc_seconds", "RPC duration in seconds, by method.", ["method"])


@dataclass(slots=True)
class CallInfo:
    """What the outer interceptors learn about one call (the caller is filled in by authentication)."""

    method: str
    request_id: str
    caller: str = ""


_info_var: ContextVar[CallInfo | None] = ContextVar("charter_call_info", default=None)


def _metadata(context: grpc.ServicerContext, key: str) -> str | None:
    for item in context.invocation_metadata() or ():
        if item.key == key:
            value = item.value
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return None


class _Undecodable:
    """Stands in for a request whose bytes did not parse.

    grpc answers a failing request deserializer with a bare INTERNAL; passing this marker on
    instead lets the call be authenticated first and then refused as INVALID_ARGUMENT.
    """


_UNDECODABLE = _Undecodable()


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """``deserializer``, returning ``_UNDECODABLE`` instead of raising (wrapped once only)."""
    if deserializer is None or getattr(deserializer, "charter_tolerant", False):
        return deserializer

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:  # protobuf's DecodeError, or anything else malformed bytes provoke
            return _UNDECODABLE

    deserialize.charter_tolerant = True  # type: ignore[attr-defined]
    return deserialize


def _refuse_undecodable(request: Any) -> None:
    if request is _UNDECODABLE:
        raise InvalidArgument.one("", "the request body is not a valid serialized request message")


class _Around(grpc.ServerInterceptor):  # type: ignore[misc]
    """Base: subclasses implement ``unary`` and ``stream`` around the next behaviour.

    grpc asks every interceptor for a handler on every call; the wrapped handler is made once per
    method and reused while the handler it wraps is the same object (it is, for registered
    services), which saves rebuilding four handlers and their closures per call.
    """

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        serial = {
            "request_deserializer": handler.request_deserializer
            if handler.request_streaming
            else _tolerant(handler.request_deserializer),
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            inner = handler.unary_unary
            return grpc.unary_unary_rpc_method_handler(
                lambda request, context: self.unary(method, inner, request, context), **serial
            )
        if handler.unary_stream is not None:
            inner_s = handler.unary_stream
            return grpc.unary_stream_rpc_method_handler(
                lambda request, context: self.stream(method, inner_s, request, context), **serial
            )
        if handler.stream_unary is not None:
            inner_su = handler.stream_unary
            return grpc.stream_unary_rpc_method_handler(
                lambda request, context: self.unary(method, inner_su, request, context), **serial
            )
        inner_ss = handler.stream_stream
        return grpc.stream_stream_rpc_method_handler(
            lambda request, context: self.stream(method, inner_ss, request, context), **serial
        )

    def unary(self, method: str, call_next: Behavior, request: Any, context: grpc.ServicerContext) -> Any:
        raise NotImplementedError

    def stream(self, method: str, call_next: Behavior, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        raise NotImplementedError


class RequestIdInterceptor(_Around):
    """Takes ``x-request-id`` from the caller (or makes one), binds it to logs and echoes it back."""

    def _begin(self, method: str, context: grpc.ServicerContext) -> tuple[CallInfo, Any]:
        given = _metadata(context, status.REQUEST_ID_KEY)
        # Unique, not secret: a Mersenne Twister draw avoids a system call (a GIL hand-off) per call.
        request_id = given if given and _REQUEST_ID.fullmatch(given) else f"{random.getrandbits(128):032x}"
        info = CallInfo(method=method, request_id=request_id)
        token = _info_var.set(info)
        structlog.contextvars.bind_contextvars(request_id=request_id, method=method)
        context.set_trailing_metadata(((status.REQUEST_ID_KEY, request_id),))
        return info, token

    @staticmethod
    def _end(token: Any) -> None:
        structlog.contextvars.unbind_contextvars("request_id", "method")
        _info_var.reset(token)

    def unary(self, method: str, call_next: Behavior, request: Any, context: grpc.ServicerContext) -> Any:
        _, token = self._begin(method, context)
        try:
            return call_next(request, context)
        finally:
            self._end(token)

    def stream(self, method: str, call_next: Behavior, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        _, token = self._begin(method, context)
        try:
            yield from call_next(request, context)
        finally:
            self._end(token)


def current_call() -> CallInfo | None:
    """The current call's info (request id, method, caller), if inside an RPC."""
    return _info_var.get()


class ObservabilityInterceptor(_Around):
    """One ``rpc.completed`` log line and the Prometheus metrics per RPC."""

    def __init__(self) -> None:
        super().__init__()
        # The labelled children, looked up once: ``labels()`` takes a lock and builds a key per call.
        self._counts: dict[tuple[str, str], Any] = {}
        self._seconds: dict[str, Any] = {}

    def _finish(self, method: str, context: grpc.ServicerContext, started: float) -> None:
        elapsed = time.perf_counter() - started
        code = context.code() or grpc.StatusCode.OK
        info = _info_var.get()
        count = self._counts.get((method, code.name))
        if count is None:
            count = self._counts.setdefault((method, code.name), RPC_COUNT.labels(method, code.name))
        seconds = self._seconds.get(method)
        if seconds is None:
            seconds = self._seconds.setdefault(method, RPC_SECONDS.labels(method))
        count.inc()
        seconds.observe(elapsed)
        log.info(
            "rpc.completed",
            caller=info.caller if info else "",
            code=code.name,
            duration_ms=round(elapsed * 1000, 3),
        )

    def unary(self, method: str, call_next: Behavior, request: Any, context: grpc.ServicerContext) -> Any:
        started = time.perf_counter()
        try:
            return call_next(request, context)
        finally:
            self._finish(method, context, started)

    def stream(self, method: str, call_next: Behavior, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        started = time.perf_counter()
        try:
            yield from call_next(request, context)
        finally:
            self._finish(method, context, started)


class ErrorMappingInterceptor(_Around):
    """Domain errors become rich statuses; anything unexpected becomes INTERNAL with the request id."""

    def _abort(self, context: grpc.ServicerContext, error: Exception) -> None:
        info = _info_var.get()
        request_id = info.request_id if info else ""
        if isinstance(error, DomainError):
            context.abort_with_status(status.from_domain_error(error, request_id))
        log.exception("rpc.unexpected_error", error_type=type(error).__name__)
        context.abort_with_status(status.internal(request_id))

    def unary(self, method: str, call_next: Behavior, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return call_next(request, context)
        except Exception as error:
            if _aborted(context):
                raise
            self._abort(context, error)
            raise  # unreachable: abort raises

    def stream(self, method: str, call_next: Behavior, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from call_next(request, context)
        except Exception as error:
            if _aborted(context):
                raise
            self._abort(context, error)
            raise


def _aborted(context: grpc.ServicerContext) -> bool:
    """Whether the call was already aborted (grpc raises a bare Exception from abort())."""
    return context.code() is not None and context.code() is not grpc.StatusCode.OK


class AuthenticationInterceptor(_Around):
    """Authenticates the bearer API key and checks the method's roles before the handler runs."""

    def __init__(self, authenticator: Authenticator, is_draining: Callable[[], bool]) -> None:
        super().__init__()
        self._authenticator = authenticator
        self._is_draining = is_draining

    def _admit(self, method: str, context: grpc.ServicerContext) -> Any:
        if policy.is_public(method):
            return None
        if self._is_draining():
            raise ShuttingDown("the server is shutting down; retry against another replica")
        header = _metadata(context, "authorization")
        token: str | None = None
        if header is not None:
            scheme, _, value = header.strip().partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise Unauthenticated("use 'authorization: Bearer <api key>'", reason="CREDENTIALS_INVALID")
            token = value.strip()
        principal = self._authenticator.authenticate(token)
        info = _info_var.get()
        if info is not None:
            info.caller = principal.key_id
        allowed = policy.POLICY.get(method)
        if allowed is None or principal.role not in allowed:
            raise PermissionDenied(f"role {principal.role.value} may not call {method}", reason="ROLE_NOT_PERMITTED")
        return principal_var.set(principal)

    def unary(self, method: str, call_next: Behavior, request: Any, context: grpc.ServicerContext) -> Any:
        token = self._admit(method, context)
        try:
            _refuse_undecodable(request)
            return call_next(request, context)
        finally:
            if token is not None:
                principal_var.reset(token)

    def stream(self, method: str, call_next: Behavior, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        token = self._admit(method, context)
        try:
            _refuse_undecodable(request)
            yield from call_next(request, context)
        finally:
            if token is not None:
                principal_var.reset(token)
