"""A tap on the wire between a client and the real server: it records calls and injects failures.

The SDK tests run against the real server (`_live`); what they need to see is what the client
put on the wire (metadata, request ids, the requests of each page) and how it copes with failures
a real network or a busy server produces (`UNAVAILABLE` then success, a call that outlives its
deadline, a stream broken after some messages). A `Tap` is a gRPC hop on 127.0.0.1 in front of
the server, like a proxy or load balancer: every call is forwarded unchanged (bytes, metadata,
deadline) and the server's answer comes back unchanged, errors with their details included. It
records each call, and can be told to fail the next calls of a method before they reach the
server, with the status the server itself builds for a domain error
(`charter_server.api.status.from_domain_error`), or with a bare code as gRPC or a proxy sends it.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from types import TracebackType
from typing import Any, Self

import grpc
from charter.v1 import (  # noqa: F401  (each import adds its service to the descriptor pool)
    access_service_pb2,
    authorization_service_pb2,
    catalog_service_pb2,
    grant_service_pb2,
    key_service_pb2,
    usage_service_pb2,
)
from charter_server.api import status
from charter_server.domain import errors
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message

# The metadata gRPC sets itself on each hop; the tap forwards everything else.
_OWN_METADATA = ("user-agent", "grpc-")
_MAX_STREAMS = 32
# A call without a deadline has one about 292 billion years away; forwarding that overflows.
_NO_DEADLINE = 1e9


@dataclasses.dataclass(frozen=True)
class Call:
    """One call that went through the tap."""

    method: str
    """The method's short name, for example ``CreateRightsHolder``."""
    request: Any
    metadata: dict[str, str]


@dataclasses.dataclass
class _Fault:
    error: errors.DomainError | grpc.StatusCode
    remaining: int
    answer_lost: bool = False
    after_messages: int = 0
    with_request_id: bool = False


class Tap:
    """A recording, fault-injecting hop in front of a server on 127.0.0.1 (use as a context manager).

    Args:
        upstream: The server's address.
    """

    def __init__(self, upstream: str) -> None:
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._faults: dict[str, _Fault] = {}
        self._delays: dict[str, float] = {}
        self._answers: dict[str, Callable[[Any], Message]] = {}
        self._upstream = grpc.insecure_channel(upstream)
        self._workers = futures.ThreadPoolExecutor(max_workers=_MAX_STREAMS, thread_name_prefix="tap")
        self._server = grpc.server(self._workers, handlers=[_Forwarder(self)])
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    @property
    def target(self) -> str:
        """The address clients connect to instead of the server's."""
        return f"127.0.0.1:{self.port}"

    def calls_of(self, method: str) -> list[Call]:
        """The recorded calls of one method (its short name), oldest first."""
        with self._lock:
            return [call for call in self.calls if call.method == method]

    def clear(self) -> None:
        """Forgets the calls recorded so far."""
        with self._lock:
            self.calls.clear()

    def reset(self) -> None:
        """Forgets the calls, the failures still to inject and the delays: as good as a new tap."""
        with self._lock:
            self.calls.clear()
            self._faults.clear()
            self._delays.clear()
            self._answers.clear()

    def fail(
        self,
        method: str,
        error: errors.DomainError | grpc.StatusCode,
        *,
        times: int = 1,
        answer_lost: bool = False,
        with_request_id: bool = False,
    ) -> None:
        """Answers the next `times` calls of a method with an error instead of forwarding them.

        Args:
            method: The method's short name.
            error: A domain error, answered with the status the server builds for it (its code,
                reason and the call's request id); or a bare status code, with no details.
            times: How many calls fail.
            answer_lost: Forward the call all the same and drop the server's answer, as when a
                connection breaks after the server did the work.
            with_request_id: With a bare status code, send the call's request id in the trailers,
                as Charter's code does on every call it saw.
        """
        with self._lock:
            self._faults[method] = _Fault(error, times, answer_lost, with_request_id=with_request_id)

    def break_stream(self, method: str, error: errors.DomainError, *, after_messages: int) -> None:
        """Ends the next stream of a method with an error once it has passed `after_messages` messages."""
        with self._lock:
            self._faults[method] = _Fault(error, 1, after_messages=after_messages)

    def answer(self, method: str, answer: Callable[[Any], Message]) -> None:
        """Answers every call of a unary method with ``answer(request)`` instead of forwarding it:
        what a misbehaving server (or something in its place) sends."""
        with self._lock:
            self._answers[method] = answer

    def delay(self, method: str, seconds: float) -> None:
        """Holds every call of a method this long before forwarding it."""
        with self._lock:
            self._delays[method] = seconds

    def close(self) -> None:
        """Stops the tap (calls in flight are cancelled) and closes its channel to the server."""
        self._server.stop(grace=None).wait()
        self._workers.shutdown(wait=True)
        self._upstream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # -- forwarding ---------------------------------------------------------------------------

    def _arrive(
        self, method: str, request_class: type[Message], raw: bytes, context: grpc.ServicerContext
    ) -> _Fault | None:
        """Records a call, waits out its delay, and returns the fault to inject, if any."""
        short = method.rsplit("/", 1)[-1]
        metadata = {key: value for key, value in context.invocation_metadata() if isinstance(value, str)}
        with self._lock:
            self.calls.append(Call(short, request_class.FromString(raw), metadata))
            delay = self._delays.get(short, 0.0)
            fault = self._faults.get(short)
            if fault is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del self._faults[short]
        if delay:
            time.sleep(delay)
        return fault

    def unary(self, method: str, request_class: type[Message], raw: bytes, context: grpc.ServicerContext) -> bytes:
        fault = self._arrive(method, request_class, raw, context)
        if fault is not None and not fault.answer_lost:
            _abort(context, fault)
        with self._lock:
            answering = self._answers.get(method.rsplit("/", 1)[-1])
        if answering is not None:
            return answering(request_class.FromString(raw)).SerializeToString()
        forward = self._upstream.unary_unary(method)
        try:
            answer: bytes = forward(raw, timeout=_timeout(context), metadata=_forwarded(context))
        except grpc.RpcError as error:
            _relay(context, error)
        if fault is not None:
            _abort(context, fault)
        return answer

    def stream(
        self, method: str, request_class: type[Message], raw: bytes, context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        fault = self._arrive(method, request_class, raw, context)
        if fault is not None and not fault.after_messages:
            _abort(context, fault)
        upstream = self._upstream.unary_stream(method)(raw, timeout=_timeout(context), metadata=_forwarded(context))
        context.add_callback(upstream.cancel)  # the client went away: so does the forwarded call
        try:
            for sent, message in enumerate(upstream):
                if fault is not None and sent == fault.after_messages:
                    upstream.cancel()
                    _abort(context, fault)
                yield message
        except grpc.RpcError as error:
            if context.is_active():
                _relay(context, error)


class _Forwarder(grpc.GenericRpcHandler):
    """Serves every method of the charter.v1 contract by forwarding it through the tap."""

    def __init__(self, tap: Tap) -> None:
        self._tap = tap

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        descriptor = descriptor_pool.Default().FindMethodByName(method.lstrip("/").replace("/", "."))
        request_class = message_factory.GetMessageClass(descriptor.input_type)
        if descriptor.server_streaming:
            return grpc.unary_stream_rpc_method_handler(functools.partial(self._tap.stream, method, request_class))
        return grpc.unary_unary_rpc_method_handler(functools.partial(self._tap.unary, method, request_class))


def _timeout(context: grpc.ServicerContext) -> float | None:
    """The time the call has left, for the forwarded call; None when it has no deadline."""
    remaining: float = context.time_remaining()
    return None if remaining > _NO_DEADLINE else remaining


def _forwarded(context: grpc.ServicerContext) -> tuple[tuple[str, str | bytes], ...]:
    return tuple((key, value) for key, value in context.invocation_metadata() if not key.startswith(_OWN_METADATA))


def _abort(context: grpc.ServicerContext, fault: _Fault) -> None:
    error = fault.error
    request_id = dict(context.invocation_metadata()).get(status.REQUEST_ID_KEY, "")
    if isinstance(error, grpc.StatusCode):
        if fault.with_request_id:
            context.set_trailing_metadata(((status.REQUEST_ID_KEY, str(request_id)),))
        context.abort(error, f"injected {error.name}")
    context.abort_with_status(status.from_domain_error(error, str(request_id)))


def _relay(context: grpc.ServicerContext, error: grpc.RpcError) -> None:
    """Answers with the server's error exactly as it came: code, message and trailing metadata."""
    context.set_trailing_metadata(tuple(error.trailing_metadata() or ()))  # type: ignore[attr-defined]
    context.abort(error.code(), error.details() or "")  # type: ignore[attr-defined]


def follows_pages(calls: list[Call], pages: int) -> bool:
    """Whether these list calls fetched `pages` pages: the first without a token, each next one with
    a new token (the server's tokens are opaque, so that is all a client can be held to)."""
    tokens = [call.request.page_token for call in calls]
    return len(tokens) == pages and tokens[0] == "" and all(tokens[1:]) and len(set(tokens)) == pages
