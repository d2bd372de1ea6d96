"""Who the current call acts for: the authenticated caller, set by the transport for the body of
each call (``api.dispatch``) and read where a record must say who made a change (the transparency
log's ``actor_key_id``). Services take the caller as an argument; this is only for what the
services do not pass along, such as the entries the log writes from domain events."""

from __future__ import annotations

from contextvars import ContextVar

from charter_server.domain.models import Principal

principal_var: ContextVar[Principal | None] = ContextVar("charter_principal", default=None)


def acting_key_id() -> str:
    """The API key id of the current call's caller; '' outside a call (the server's own work)."""
    principal = principal_var.get()
    return principal.key_id if principal is not None else ""
