"""Scoping rules: a rights-holder key sees its own rights holder, a generator key its own licensee.

Roles are checked per RPC before anything else (``charter_server.api.policy``); these
checks come next and run before any lookup, so a caller learns nothing about resources
it does not own, not even whether they exist.
"""

from __future__ import annotations

from charter_server.domain.errors import PermissionDenied
from charter_server.domain.models import Principal, Role

_NOT_OWNED = "RESOURCE_NOT_OWNED"


def require_rights_holder(principal: Principal, rights_holder_id: str) -> None:
    """Allow staff and auditors; a rights-holder key only for its own rights holder."""
    if principal.role is Role.RIGHTS_HOLDER and principal.rights_holder_id != rights_holder_id:
        raise not_owned()
    if principal.role is Role.GENERATOR:
        raise PermissionDenied("generator keys may not access rights holders", reason="ROLE_NOT_PERMITTED")


def require_licensee(principal: Principal, licensee_id: str) -> None:
    """Allow staff and auditors; a generator or licensee-admin key only for its own licensee."""
    if principal.role in (Role.GENERATOR, Role.LICENSEE_ADMIN) and principal.licensee_id != licensee_id:
        raise PermissionDenied("this key may act only for its own licensee", reason=_NOT_OWNED)
    if principal.role is Role.RIGHTS_HOLDER:
        raise PermissionDenied("rights-holder keys may not access licensees", reason="ROLE_NOT_PERMITTED")


def not_owned() -> PermissionDenied:
    """The error for a resource the caller does not own (or that does not exist: the same answer)."""
    return PermissionDenied("this key may act only for its own rights holder", reason=_NOT_OWNED)


def require_generator_licensee(principal: Principal, licensee_id: str) -> None:
    """A generator (or licensee-admin) key acts only for its own licensee; other roles are not limited here."""
    if principal.role in (Role.GENERATOR, Role.LICENSEE_ADMIN) and principal.licensee_id != licensee_id:
        raise PermissionDenied("this key may act only for its own licensee", reason=_NOT_OWNED)


def scoped_rights_holder(principal: Principal, rights_holder_id: str) -> str:
    """The rights holder a listing is limited to: a rights-holder key's own (naming another is not
    owned), else the filter as given ('' for none)."""
    if principal.role is not Role.RIGHTS_HOLDER:
        return rights_holder_id
    if rights_holder_id and rights_holder_id != principal.rights_holder_id:
        raise not_owned()
    return principal.rights_holder_id or ""
