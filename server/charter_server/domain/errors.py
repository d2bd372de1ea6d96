"""Domain errors. Each carries a machine reason from ``charter.v1.ErrorReason``.

The transport maps each class to a gRPC status code in one table
(``charter_server.api.status``); the domain itself knows nothing of gRPC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid request field: its path (``rights_holder.display_name``) and why."""

    field: str
    description: str


class DomainError(Exception):
    """Base of every expected failure. ``reason`` is an ``ErrorReason`` name without prefix."""

    reason: str = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidArgument(DomainError):
    """One or more request fields are invalid; nothing was changed."""

    reason = "INVALID_FIELD"

    def __init__(self, violations: Sequence[FieldViolation], *, reason: str | None = None) -> None:
        if not violations:
            raise ValueError("InvalidArgument needs at least one violation")
        self.violations = tuple(violations)
        fields = ", ".join(v.field for v in self.violations)
        super().__init__(f"invalid request field(s): {fields}", reason=reason)

    @classmethod
    def one(cls, field: str, description: str, *, reason: str | None = None) -> InvalidArgument:
        """Build the error for a single invalid field (with a more specific reason than INVALID_FIELD if given)."""
        return cls([FieldViolation(field, description)], reason=reason)


class Unauthenticated(DomainError):
    """The caller could not be identified."""

    reason = "CREDENTIALS_INVALID"


class PermissionDenied(DomainError):
    """The caller is known but may not do this."""

    reason = "ROLE_NOT_PERMITTED"


class NotFound(DomainError):
    """The named resource does not exist."""


class AlreadyExists(DomainError):
    """The resource, or the request id, is already taken."""


class FailedPrecondition(DomainError):
    """The system is not in a state that allows this change."""


class StorageBusy(DomainError):
    """The database is momentarily busy; the call changed nothing and may be retried."""

    reason = "STORAGE_BUSY"


class StorageUnavailable(DomainError):
    """The database cannot be reached; the call changed nothing and may be retried."""

    reason = "STORAGE_UNAVAILABLE"


class ShuttingDown(DomainError):
    """The server is draining and accepts no new calls."""

    reason = "SHUTTING_DOWN"


class ResourceExhausted(DomainError):
    """A limit of the server is reached (calls or streams in flight, message size); retry later."""


class Aborted(DomainError):
    """The call conflicted with a concurrent one (the same request id, say); retry it."""


class Unimplemented(DomainError):
    """The server has no such method."""

    reason = "METHOD_NOT_FOUND"


class DataLoss(DomainError):
    """Stored data no longer matches what the server signed; it serves nothing built on it."""

    reason = "TRANSPARENCY_LOG_INCONSISTENT"
