"""Building typed errors from failed gRPC calls (sync and grpc.aio shapes), from statuses built the way the
server builds them (`charter_server.api.status`)."""

from __future__ import annotations

import pickle

import charter
import grpc
import pytest
from charter.errors import CharterError, FieldViolation, error_class_for, from_rpc_error
from charter_server.api import status as server_status
from charter_server.domain import errors
from grpc.aio import AioRpcError, Metadata

_DETAILS_KEY = "grpc-status-details-bin"


def _details(error: errors.DomainError, request_id: str) -> bytes:
    """The serialized google.rpc.Status the server sends for a domain error."""
    trailers = dict(server_status.from_domain_error(error, request_id).trailing_metadata)
    details: bytes = trailers[_DETAILS_KEY]
    return details


class _SyncError(grpc.RpcError):
    """The shape of a synchronous call's error: grpc.Call methods on the exception."""

    def __init__(self, code: grpc.StatusCode, details: str, trailers: tuple[tuple[str, str | bytes], ...]) -> None:
        super().__init__()
        self._code, self._details, self._trailers = code, details, trailers

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._trailers


def _aio_error(code: grpc.StatusCode, details: str, *trailers: tuple[str, str | bytes]) -> AioRpcError:
    return AioRpcError(code, initial_metadata=Metadata(), trailing_metadata=Metadata(*trailers), details=details)


def test_validation_error_from_an_aio_call_carries_reason_metadata_and_violations() -> None:
    details = _details(
        errors.InvalidArgument(
            [
                errors.FieldViolation("rights_holder.display_name", "is required"),
                errors.FieldViolation("rights_holder.contact_email", "bad"),
            ]
        ),
        "rid-1",
    )
    error = from_rpc_error(
        _aio_error(grpc.StatusCode.INVALID_ARGUMENT, "invalid request", (_DETAILS_KEY, details)),
        request_id="sent-id",
    )

    assert type(error) is charter.InvalidArgumentError
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_FIELD"
    assert error.domain == "charter.v1"
    assert error.metadata == {"request_id": "rid-1"}
    assert error.request_id == "rid-1"  # The server's id wins over the one the client sent.
    assert [v.field for v in error.field_violations] == [
        "rights_holder.display_name",
        "rights_holder.contact_email",
    ]
    assert all(isinstance(v, FieldViolation) for v in error.field_violations)
    assert error.status is not None
    assert error.status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]


def test_not_found_from_a_sync_call() -> None:
    details = _details(errors.NotFound("gone", reason="RIGHTS_HOLDER_NOT_FOUND"), "rid-2")
    error = from_rpc_error(_SyncError(grpc.StatusCode.NOT_FOUND, "gone", ((_DETAILS_KEY, details),)))

    assert type(error) is charter.NotFoundError
    assert error.reason == "RIGHTS_HOLDER_NOT_FOUND"
    assert error.request_id == "rid-2"
    assert error.field_violations == ()


def test_without_status_details_falls_back_to_code_message_and_the_sent_request_id() -> None:
    error = from_rpc_error(_aio_error(grpc.StatusCode.UNAVAILABLE, "failed to connect"), request_id="sent-id")

    assert type(error) is charter.UnavailableError
    assert error.reason is None
    assert error.domain is None
    assert error.metadata == {}
    assert error.message == "failed to connect"
    assert error.request_id == "sent-id"
    assert error.status is None


def test_echoed_request_id_trailer_is_used_when_error_info_is_absent() -> None:
    error = from_rpc_error(
        _SyncError(grpc.StatusCode.INTERNAL, "boom", (("x-request-id", "echoed"),)), request_id="sent"
    )

    assert type(error) is charter.InternalError
    assert error.request_id == "echoed"


def test_garbled_status_details_do_not_hide_the_failure() -> None:
    error = from_rpc_error(
        _SyncError(grpc.StatusCode.PERMISSION_DENIED, "no", ((_DETAILS_KEY, b"\xff\xff\xff"),)),
        request_id="sent",
    )

    assert type(error) is charter.PermissionDeniedError
    assert error.reason is None
    assert error.request_id == "sent"


def test_a_bare_rpc_error_becomes_unknown() -> None:
    error = from_rpc_error(grpc.RpcError(), request_id="sent")

    assert type(error) is charter.UnknownError
    assert error.code is grpc.StatusCode.UNKNOWN
    assert error.request_id == "sent"


@pytest.mark.parametrize("code", [c for c in grpc.StatusCode if c is not grpc.StatusCode.OK], ids=lambda c: c.name)
def test_every_non_ok_code_has_its_own_exported_subclass(code: grpc.StatusCode) -> None:
    cls = error_class_for(code)
    error = from_rpc_error(_aio_error(code, "x"))

    assert cls is not CharterError
    assert issubclass(cls, CharterError)
    assert type(error) is cls
    assert error.code is code
    assert cls(message="m").code is code  # The class knows its own code.
    assert getattr(charter, cls.__name__) is cls


def test_subclasses_are_distinct() -> None:
    classes = {error_class_for(c) for c in grpc.StatusCode if c is not grpc.StatusCode.OK}

    assert len(classes) == len(grpc.StatusCode) - 1


def test_str_names_code_reason_message_and_request_id() -> None:
    error = charter.NotFoundError("no such rights holder", reason="RIGHTS_HOLDER_NOT_FOUND", request_id="abc123")
    without_reason = charter.UnavailableError("down", request_id="r9")
    bare = charter.InternalError("")

    text = str(error)
    assert text.startswith("NOT_FOUND RIGHTS_HOLDER_NOT_FOUND: ")
    assert "no such rights holder" in text
    assert text.endswith("(request id abc123)")
    assert str(without_reason).startswith("UNAVAILABLE: ")
    assert str(without_reason).endswith("(request id r9)")
    assert str(bare) == "INTERNAL"
    assert "RIGHTS_HOLDER_NOT_FOUND" in repr(error)


def test_request_id_defaults_to_error_info_metadata() -> None:
    error = charter.AbortedError("conflict", metadata={"request_id": "from-info"})

    assert error.request_id == "from-info"


def test_errors_survive_pickling() -> None:
    details = _details(errors.InvalidArgument.one("f", "d"), "rid")
    original = from_rpc_error(_aio_error(grpc.StatusCode.INVALID_ARGUMENT, "bad", (_DETAILS_KEY, details)))

    copy = pickle.loads(pickle.dumps(original))

    assert type(copy) is charter.InvalidArgumentError
    assert (copy.code, copy.reason, copy.request_id, copy.field_violations) == (
        original.code,
        original.reason,
        original.request_id,
        original.field_violations,
    )
    assert copy.status == original.status
