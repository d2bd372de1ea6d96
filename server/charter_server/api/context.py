"""Per-call context: the authenticated caller, set by the dispatcher (``api.dispatch``).

A call's body runs on the event loop or on a worker thread in a copy of the call's context; the
dispatcher sets the caller at the start of the body and resets it at the end, so nothing leaks
into the next call served by the same thread.
"""

from __future__ import annotations

from contextvars import ContextVar

from charter_server.domain.context import principal_var
from charter_server.domain.errors import Unauthenticated
from charter_server.domain.models import Principal

request_id_var: ContextVar[str] = ContextVar("charter_request_id", default="")


__all__ = ["current_principal", "principal_var", "request_id_var"]


def current_principal() -> Principal:
    """The caller of the current RPC (set by the dispatcher once it has authenticated it)."""
    principal = principal_var.get()
    if principal is None:  # only reachable for a method missing from the policy table
        raise Unauthenticated("no authenticated caller", reason="CREDENTIALS_MISSING")
    return principal
