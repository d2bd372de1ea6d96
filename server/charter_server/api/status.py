"""The one table from domain errors to gRPC status, and the rich status built from it.

Every error carries ``google.rpc.ErrorInfo`` (domain ``charter.v1``, the reason, the
request id); validation errors also carry ``google.rpc.BadRequest``. Unexpected
exceptions become INTERNAL with nothing but the request id.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from charter_server.domain import errors

ERROR_DOMAIN = "charter.v1"
REQUEST_ID_KEY = "x-request-id"
_DETAILS_KEY = "grpc-status-details-bin"
# The whole status travels in trailers, and gRPC clients drop trailers over 8 KiB by default (the
# call then fails with RESOURCE_EXHAUSTED and no details at all). So the status is bounded: the
# violations in order up to a budget (at least one), each text cut, and the message cut.
MAX_VIOLATION_BYTES = 2048
MAX_TEXT = 200
MAX_MESSAGE = 1000
OMITTED_KEY = "violations_omitted"

# Most specific class first; the first match wins.
STATUS_TABLE: tuple[tuple[type[errors.DomainError], grpc.StatusCode], ...] = (
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.StorageBusy, grpc.StatusCode.UNAVAILABLE),
    (errors.StorageUnavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.ShuttingDown, grpc.StatusCode.UNAVAILABLE),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Aborted, grpc.StatusCode.ABORTED),
    (errors.Unimplemented, grpc.StatusCode.UNIMPLEMENTED),
    (errors.DataLoss, grpc.StatusCode.DATA_LOSS),
)


@dataclass(frozen=True)
class RichStatus(grpc.Status):  # type: ignore[misc]
    """A ``grpc.Status`` whose trailing metadata holds the ``google.rpc.Status`` and the request id."""

    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]
    reason: str = ""  # the ErrorInfo's, for the call's log line


def status_code_for(error: errors.DomainError) -> grpc.StatusCode:
    """The gRPC status code of a domain error."""
    for error_type, code in STATUS_TABLE:
        if isinstance(error, error_type):
            return code
    return grpc.StatusCode.INTERNAL


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bounded(
    violations: tuple[errors.FieldViolation, ...],
) -> list[error_details_pb2.BadRequest.FieldViolation]:
    kept: list[error_details_pb2.BadRequest.FieldViolation] = []
    size = 0
    for violation in violations:
        item = error_details_pb2.BadRequest.FieldViolation(
            field=_cut(violation.field, MAX_TEXT), description=_cut(violation.description, MAX_TEXT)
        )
        size += item.ByteSize() + 4  # the tag and length of each entry
        if kept and size > MAX_VIOLATION_BYTES:
            break
        kept.append(item)
    return kept


def _build(
    code: grpc.StatusCode,
    message: str,
    reason: str,
    metadata: dict[str, str],
    violations: tuple[errors.FieldViolation, ...],
    request_id: str,
) -> RichStatus:
    kept = _bounded(violations)
    extra = {OMITTED_KEY: str(len(violations) - len(kept))} if len(kept) < len(violations) else {}
    info = error_details_pb2.ErrorInfo(
        reason=reason,
        domain=ERROR_DOMAIN,
        metadata={key: _cut(value, MAX_TEXT * 2) for key, value in metadata.items()}
        | extra
        | {"request_id": request_id},
    )
    message = _cut(message, MAX_MESSAGE)
    details = [_pack(info)]
    if kept:
        details.append(_pack(error_details_pb2.BadRequest(field_violations=kept)))
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=details)
    return RichStatus(
        code=code,
        details=message,
        trailing_metadata=((_DETAILS_KEY, status.SerializeToString()), (REQUEST_ID_KEY, request_id)),
        reason=reason,
    )


def from_domain_error(error: errors.DomainError, request_id: str) -> RichStatus:
    """The status of an expected failure."""
    violations = error.violations if isinstance(error, errors.InvalidArgument) else ()
    return _build(status_code_for(error), error.message, error.reason, error.metadata, violations, request_id)


def internal(request_id: str) -> RichStatus:
    """The status of an unexpected failure: the request id only, never the exception."""
    return _build(
        grpc.StatusCode.INTERNAL,
        f"internal error; quote request id {request_id} to the operators",
        "INTERNAL",
        {},
        (),
        request_id,
    )
