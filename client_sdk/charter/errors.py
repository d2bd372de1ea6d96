"""Typed errors raised by the Charter clients.

Every failed call raises a subclass of `CharterError`, chosen by the gRPC status
code. Branch on the class and on `CharterError.reason` (the `ErrorReason` value
name without its prefix, for example `RIGHTS_HOLDER_NOT_FOUND`, see
`protos/charter/v1/errors.proto`); never on the human-readable message.

Example:
    ```python
    try:
        client.get_rights_holder("rh_0123")
    except charter.NotFoundError as exc:
        if exc.reason == "RIGHTS_HOLDER_NOT_FOUND":
            ...
    ```
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

__all__ = [
    "ERROR_DOMAIN",
    "AbortedError",
    "AlreadyExistsError",
    "CancelledError",
    "CharterError",
    "DataLossError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "FieldViolation",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "OutOfRangeError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "UnknownError",
    "error_class_for",
    "from_rpc_error",
    "never_reached_charter",
]

ERROR_DOMAIN = "charter.v1"
"""The `google.rpc.ErrorInfo.domain` of every error Charter sends."""

# The trailing-metadata key under which gRPC carries a serialized google.rpc.Status.
_STATUS_DETAILS_KEY = "grpc-status-details-bin"
# The metadata key the server echoes the request id under (and clients send it under).
_REQUEST_ID_HEADER = "x-request-id"
# The ErrorInfo metadata key that carries the request id.
_REQUEST_ID_INFO_KEY = "request_id"


@dataclasses.dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid request field, from a `google.rpc.BadRequest` detail.

    Attributes:
        field: The path of the offending field, for example `rights_holder.contact_email`.
        description: Why the value was rejected, for people to read.
    """

    field: str
    description: str


class CharterError(Exception):
    """A call to Charter failed.

    Subclasses exist for every non-OK gRPC status code; catch the subclass for the
    kind of failure and branch on `reason` for the exact cause.

    Attributes:
        code: The gRPC status code of the failure.
        reason: The machine-readable reason (`google.rpc.ErrorInfo.reason`), for
            example `RIGHTS_HOLDER_NOT_FOUND`; None when the failure did not come
            from the Charter server (for example an unreachable server); one of the
            SDK's own (`EMPTY_PAGE`, `PAGE_TOKEN_REPEATED`, `PAGE_LIMIT_REACHED`)
            when the SDK ended a listing that would not end.
        domain: The `google.rpc.ErrorInfo.domain`, `charter.v1` for Charter errors.
        metadata: The `google.rpc.ErrorInfo.metadata`; always holds `request_id`
            for errors sent by the Charter server.
        request_id: The id of the request, for finding it in the server's log: the
            one the server reported, or else the one the client sent.
        field_violations: The invalid fields of an `INVALID_ARGUMENT` error.
        message: The human-readable message; do not parse it.
        status: The full `google.rpc.Status`, when the server sent one, for details
            this class does not surface.
    """

    # The status code an instance gets when none is given; each subclass sets its own.
    _default_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str | None = None,
        domain: str | None = None,
        metadata: Mapping[str, str] | None = None,
        request_id: str | None = None,
        field_violations: Iterable[FieldViolation] = (),
        status: status_pb2.Status | None = None,
    ) -> None:
        """Creates an error.

        Args:
            message: The human-readable message.
            code: The gRPC status code; defaults to the one of the class.
            reason: The machine-readable reason, without the `ERROR_REASON_` prefix.
            domain: The error domain.
            metadata: The ErrorInfo metadata.
            request_id: The request id; defaults to `metadata["request_id"]`.
            field_violations: The invalid fields.
            status: The `google.rpc.Status` the error was built from.
        """
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self._default_code
        self.reason = reason or None
        self.domain = domain or None
        self.metadata: dict[str, str] = dict(metadata or {})
        self.request_id = request_id or self.metadata.get(_REQUEST_ID_INFO_KEY) or None
        self.field_violations = tuple(field_violations)
        self.status = status

    def __str__(self) -> str:
        head = self.code.name if self.reason is None else f"{self.code.name} {self.reason}"
        text = f"{head}: {self.message}" if self.message else head
        if self.request_id:
            text += f" (request id {self.request_id})"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code.name}, reason={self.reason!r}, "
            f"message={self.message!r}, request_id={self.request_id!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructor arguments are not in self.args, so the default
        # Exception pickling would lose them (and fail); errors cross process pools.
        state = {
            "code": self.code,
            "reason": self.reason,
            "domain": self.domain,
            "metadata": self.metadata,
            "request_id": self.request_id,
            "field_violations": self.field_violations,
            "status": self.status,
        }
        return (_rebuild, (type(self), self.message, state))


def _rebuild(cls: type[CharterError], message: str, state: dict[str, Any]) -> CharterError:
    return cls(message, **state)


class CancelledError(CharterError):
    """The call was cancelled, usually by the caller (status `CANCELLED`)."""

    _default_code = grpc.StatusCode.CANCELLED


class UnknownError(CharterError):
    """The call failed for a reason gRPC could not classify (status `UNKNOWN`)."""

    _default_code = grpc.StatusCode.UNKNOWN


class InvalidArgumentError(CharterError):
    """A request field is invalid (status `INVALID_ARGUMENT`); see `field_violations`."""

    _default_code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceededError(CharterError):
    """The call did not finish before its deadline (status `DEADLINE_EXCEEDED`).

    The call may or may not have taken effect on the server.
    """

    _default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFoundError(CharterError):
    """The named resource does not exist (status `NOT_FOUND`)."""

    _default_code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(CharterError):
    """The resource or request id already exists (status `ALREADY_EXISTS`)."""

    _default_code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDeniedError(CharterError):
    """The caller may not do this (status `PERMISSION_DENIED`)."""

    _default_code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhaustedError(CharterError):
    """A quota or limit is exhausted (status `RESOURCE_EXHAUSTED`)."""

    _default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPreconditionError(CharterError):
    """The resource is not in a state that allows the call (status `FAILED_PRECONDITION`)."""

    _default_code = grpc.StatusCode.FAILED_PRECONDITION


class AbortedError(CharterError):
    """The call was aborted, typically by a concurrency conflict (status `ABORTED`)."""

    _default_code = grpc.StatusCode.ABORTED


class OutOfRangeError(CharterError):
    """A value is outside its valid range (status `OUT_OF_RANGE`)."""

    _default_code = grpc.StatusCode.OUT_OF_RANGE


class UnimplementedError(CharterError):
    """The server does not implement the method (status `UNIMPLEMENTED`)."""

    _default_code = grpc.StatusCode.UNIMPLEMENTED


class InternalError(CharterError):
    """The server failed unexpectedly (status `INTERNAL`); quote `request_id` when reporting it."""

    _default_code = grpc.StatusCode.INTERNAL


class UnavailableError(CharterError):
    """The server is unreachable or momentarily busy (status `UNAVAILABLE`); retrying may succeed."""

    _default_code = grpc.StatusCode.UNAVAILABLE


class DataLossError(CharterError):
    """Unrecoverable data loss or corruption (status `DATA_LOSS`)."""

    _default_code = grpc.StatusCode.DATA_LOSS


class UnauthenticatedError(CharterError):
    """The call carried no valid credentials (status `UNAUTHENTICATED`)."""

    _default_code = grpc.StatusCode.UNAUTHENTICATED


_CLASS_BY_CODE: dict[grpc.StatusCode, type[CharterError]] = {
    cls._default_code: cls
    for cls in (
        CancelledError,
        UnknownError,
        InvalidArgumentError,
        DeadlineExceededError,
        NotFoundError,
        AlreadyExistsError,
        PermissionDeniedError,
        ResourceExhaustedError,
        FailedPreconditionError,
        AbortedError,
        OutOfRangeError,
        UnimplementedError,
        InternalError,
        UnavailableError,
        DataLossError,
        UnauthenticatedError,
    )
}


def error_class_for(code: grpc.StatusCode) -> type[CharterError]:
    """Returns the `CharterError` subclass raised for a gRPC status code.

    Args:
        code: A non-OK gRPC status code.

    Returns:
        The subclass for the code; `CharterError` itself for codes without one
        (only `OK`, which is never an error).
    """
    return _CLASS_BY_CODE.get(code, CharterError)


def from_rpc_error(error: grpc.RpcError, *, request_id: str | None = None) -> CharterError:
    """Builds the typed error for a failed gRPC call.

    Works for the errors of synchronous calls (which are also `grpc.Call`s) and
    for `grpc.aio.AioRpcError`: both expose `code()`, `details()` and
    `trailing_metadata()` as plain methods. The reason, metadata and field
    violations come from the `google.rpc.Status` in the `grpc-status-details-bin`
    trailer; without one (for example when the server is unreachable) only the
    code and message are set.

    Args:
        error: The error raised by grpc.
        request_id: The `x-request-id` the client sent, used when the server did
            not report one (for example when it was never reached).

    Returns:
        An instance of the `CharterError` subclass for the status code.
    """
    code = _call_or_none(error, "code")
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    details = _call_or_none(error, "details")
    message = details if isinstance(details, str) else ""
    trailers = _metadata_pairs(_call_or_none(error, "trailing_metadata"))

    status = _status_from_trailers(trailers)
    reason: str | None = None
    domain: str | None = None
    info_metadata: dict[str, str] = {}
    violations: list[FieldViolation] = []
    if status is not None:
        message = status.message or message
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR) and reason is None:
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, domain, info_metadata = info.reason, info.domain, dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
                violations.extend(
                    FieldViolation(field=v.field, description=v.description) for v in bad_request.field_violations
                )

    echoed = next((str(value) for key, value in trailers if key == _REQUEST_ID_HEADER), None)
    return error_class_for(code)(
        message,
        code=code,
        reason=reason,
        domain=domain,
        metadata=info_metadata,
        request_id=info_metadata.get(_REQUEST_ID_INFO_KEY) or echoed or request_id,
        field_violations=violations,
        status=status,
    )


def _call_or_none(error: object, name: str) -> object:
    # A bare grpc.RpcError (raised by some interceptors or test doubles) has none of
    # the grpc.Call methods; it still deserves a typed error rather than an AttributeError.
    method = getattr(error, name, None)
    if not callable(method):
        return None
    try:
        return method()
    except Exception:  # An error object that cannot describe itself must not hide the failure.
        return None


def never_reached_charter(error: grpc.RpcError) -> bool:
    """Tells whether a failed call certainly never reached Charter's own code, so repeating it is safe.

    Charter answers every call that its code saw with the request id in the trailing metadata
    (`x-request-id`). A call that ends `CANCELLED` without one was cancelled by the gRPC transport
    before any handler ran: typically a call that arrived in the instant a draining server stopped.
    (`UNAVAILABLE` needs no such test: gRPC's retry policy repeats it.)

    Args:
        error: The error raised by grpc.

    Returns:
        True when the status is `CANCELLED` and the server sent no request id.
    """
    if _call_or_none(error, "code") is not grpc.StatusCode.CANCELLED:
        return False
    trailers = _metadata_pairs(_call_or_none(error, "trailing_metadata"))
    return not any(key == _REQUEST_ID_HEADER for key, _ in trailers)


def _metadata_pairs(metadata: object) -> list[tuple[str, Any]]:
    # Sync calls return a tuple of (key, value) named tuples, grpc.aio returns a
    # Metadata object that iterates as (key, value) pairs; both fit this shape.
    if metadata is None or not isinstance(metadata, Iterable):
        return []
    pairs: list[tuple[str, Any]] = []
    for item in metadata:
        try:
            key, value = item
        except (TypeError, ValueError):
            continue
        pairs.append((str(key), value))
    return pairs


def _status_from_trailers(trailers: list[tuple[str, Any]]) -> status_pb2.Status | None:
    for key, value in trailers:
        if key != _STATUS_DETAILS_KEY or not isinstance(value, bytes | bytearray):
            continue
        try:
            return status_pb2.Status.FromString(bytes(value))
        except DecodeError:
            # A garbled trailer must not replace the real failure with a parse error.
            return None
    return None
