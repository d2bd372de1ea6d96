"""Helpers of the in-process gRPC tests: raw calls with credentials, and the rich error contract.

These tests talk to the server through the generated stubs or a raw channel, never through the
SDK, so they pin the wire contract itself: status code, ``google.rpc.ErrorInfo`` reason and
request id, ``google.rpc.BadRequest`` field paths, and the ``x-request-id`` trailer.
"""

from __future__ import annotations

import importlib
import pkgutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import charter.v1
import grpc
from google.protobuf import descriptor, message, message_factory
from google.rpc import error_details_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "charter.v1"
REQUEST_ID_KEY = "x-request-id"
# Codes that no request, however malformed, may produce.
NEVER = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNIMPLEMENTED})

Metadata = tuple[tuple[str, str], ...]


def auth(secret: str | None = None, *, request_id: str | None = None) -> Metadata:
    """Call metadata: ``authorization: Bearer <secret>`` and, optionally, ``x-request-id``."""
    items: list[tuple[str, str]] = []
    if secret is not None:
        items.append(("authorization", f"Bearer {secret}"))
    if request_id is not None:
        items.append((REQUEST_ID_KEY, request_id))
    return tuple(items)


def unique(prefix: str = "t") -> str:
    """A short unique marker for names, so tests never depend on each other's rows."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Failure:
    """What a failed call told the client, parsed from its status details."""

    code: grpc.StatusCode
    reason: str
    domain: str
    metadata: dict[str, str]
    fields: tuple[str, ...]
    trailing_request_id: str | None

    @property
    def request_id(self) -> str:
        """The request id carried by the ErrorInfo metadata ('' when absent)."""
        return self.metadata.get("request_id", "")


def failure(error: BaseException) -> Failure:
    """Parse a ``grpc.RpcError`` into a :class:`Failure` (reason '' when no ErrorInfo came)."""
    assert isinstance(error, grpc.RpcError), f"not an RpcError: {error!r}"
    call: Any = error
    reason, domain, info_metadata = "", "", {}
    fields: list[str] = []
    status = rpc_status.from_call(call)
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, domain, info_metadata = info.reason, info.domain, dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                fields.extend(v.field for v in bad.field_violations)
    return Failure(
        code=call.code(),
        reason=reason,
        domain=domain,
        metadata=info_metadata,
        fields=tuple(fields),
        trailing_request_id=trailer(call.trailing_metadata(), REQUEST_ID_KEY),
    )


def trailer(metadata: Sequence[Any] | None, key: str) -> str | None:
    """The value of ``key`` in (trailing) metadata, or None."""
    for item in metadata or ():
        if item[0] == key:
            value = item[1]
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


@dataclass(frozen=True)
class Method:
    """One RPC of a charter.v1 service, as described by the generated descriptors."""

    service: str
    name: str
    path: str
    request_type: type[message.Message]
    response_type: type[message.Message]
    client_streaming: bool
    server_streaming: bool

    def __str__(self) -> str:
        return f"{self.service.rsplit('.', 1)[-1]}.{self.name}"


def service_modules() -> list[ModuleType]:
    """Every generated ``*_service_pb2`` module of ``charter.v1``."""
    return [
        importlib.import_module(f"charter.v1.{info.name}")
        for info in pkgutil.iter_modules(charter.v1.__path__)
        if info.name.endswith("_service_pb2")
    ]


def contract_methods() -> list[Method]:
    """Every method of every service declared in the charter.v1 descriptors, in a stable order."""
    found: list[Method] = []
    for module in service_modules():
        service: descriptor.ServiceDescriptor
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                found.append(
                    Method(
                        service=service.full_name,
                        name=method.name,
                        path=f"/{service.full_name}/{method.name}",
                        request_type=message_factory.GetMessageClass(method.input_type),
                        response_type=message_factory.GetMessageClass(method.output_type),
                        client_streaming=method.client_streaming,
                        server_streaming=method.server_streaming,
                    )
                )
    return sorted(found, key=lambda m: m.path)


def all_methods() -> list[Method]:
    """Every method the server serves: every method of the contract."""
    return contract_methods()


def invoke(
    channel: grpc.Channel,
    method: Method,
    request: message.Message | bytes,
    metadata: Metadata,
    *,
    timeout: float = 10.0,
) -> list[Any]:
    """Call ``method`` with one request (raw bytes are sent as they are); return the responses.

    Works for every streaming shape: a client stream sends the single request; of a server
    stream only the first message is read (a watch stream never ends, and its first message
    shows the call was accepted). Raises ``grpc.RpcError`` on a failed call.
    """
    serializer = (lambda value: value) if isinstance(request, bytes) else type(request).SerializeToString
    kwargs = {"request_serializer": serializer, "response_deserializer": method.response_type.FromString}
    if method.client_streaming and method.server_streaming:
        return list(channel.stream_stream(method.path, **kwargs)(iter([request]), metadata=metadata, timeout=timeout))
    if method.client_streaming:
        return [channel.stream_unary(method.path, **kwargs)(iter([request]), metadata=metadata, timeout=timeout)]
    if method.server_streaming:
        return _drain(channel.unary_stream(method.path, **kwargs)(request, metadata=metadata, timeout=timeout))
    return [channel.unary_unary(method.path, **kwargs)(request, metadata=metadata, timeout=timeout)]


def _drain(stream: Iterator[Any], limit: int = 1) -> list[Any]:
    """Read the first messages of a server stream, then cancel it (watch streams never end)."""
    received: list[Any] = []
    for item in stream:
        received.append(item)
        if len(received) >= limit:
            stream.cancel()  # type: ignore[attr-defined]
            break
    return received
