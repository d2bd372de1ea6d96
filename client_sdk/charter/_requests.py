"""Request building shared by `Client` and `AsyncClient`.

Pure functions from the clients' Python arguments to request messages: enum
parsing, timestamps, field masks and the create/list/update requests. A new
resource adds its builders here and thin methods to both clients.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeVar

from google.protobuf import field_mask_pb2, timestamp_pb2
from google.protobuf.message import Message

from charter._options import new_request_id
from charter.v1 import (
    access_service_pb2,
    api_key_pb2,
    catalog_service_pb2,
    licensee_pb2,
    rights_holder_pb2,
)

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

_V = TypeVar("_V", bound=int)


def parse_enum(wrapper: _EnumTypeWrapper[_V], value: int | str, *, prefix: str, what: str) -> _V:
    """Returns the enum number for a value given as a number or a name.

    Names are case-insensitive, may omit the prefix and may use `-` for `_`, so
    `"admin"`, `"ROLE_ADMIN"` and `"Role_Admin"` all name ROLE_ADMIN, and
    `"rights-holder"` names ROLE_RIGHTS_HOLDER.

    Raises:
        ValueError: If the value names no member of the enum.
        TypeError: If the value is neither an int nor a str.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"{what} must be an enum value or its name, not {type(value).__name__}")
    if isinstance(value, int):
        for number in wrapper.values():
            if number == value:
                return number
        raise ValueError(f"unknown {what} {value!r}; expected one of {enum_choices(wrapper, prefix)}")
    name = value.strip().upper().replace("-", "_")
    if not name.startswith(prefix):
        name = prefix + name
    if name not in wrapper.DESCRIPTOR.values_by_name:
        raise ValueError(f"unknown {what} {value!r}; expected one of {enum_choices(wrapper, prefix)}")
    return wrapper.Value(name)


def enum_choices(wrapper: _EnumTypeWrapper[_V], prefix: str) -> str:
    """Returns the accepted short names of an enum, lowercase, comma-separated."""
    return ", ".join(
        value.name.removeprefix(prefix).lower()
        for value in wrapper.DESCRIPTOR.values
        if value.name != f"{prefix}UNSPECIFIED"
    )


def parse_role(value: int | str) -> api_key_pb2.Role.ValueType:
    """Returns the Role for `Role.ROLE_ADMIN`, `"admin"`, `"ROLE_ADMIN"` and the like."""
    return parse_enum(api_key_pb2.Role, value, prefix="ROLE_", what="role")


def parse_rights_holder_state(value: int | str) -> rights_holder_pb2.RightsHolder.State.ValueType:
    """Returns the RightsHolder.State for `"active"`, `"STATE_ARCHIVED"` and the like."""
    return parse_enum(rights_holder_pb2.RightsHolder.State, value, prefix="STATE_", what="state")


def parse_licensee_state(value: int | str) -> licensee_pb2.Licensee.State.ValueType:
    """Returns the Licensee.State for `"active"`, `"STATE_ARCHIVED"` and the like."""
    return parse_enum(licensee_pb2.Licensee.State, value, prefix="STATE_", what="state")


def timestamp(value: dt.datetime, *, what: str) -> timestamp_pb2.Timestamp:
    """Returns a Timestamp for an aware datetime.

    Raises:
        ValueError: If the datetime is naive; guessing its zone would silently
            shift an expiry by hours.
    """
    if not isinstance(value, dt.datetime):
        raise TypeError(f"{what} must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, for example datetime.now(UTC)")
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(value.astimezone(dt.UTC))
    return result


def apply_changes(resource: Message, changes: Mapping[str, str | None]) -> field_mask_pb2.FieldMask:
    """Sets the non-None changes on a resource and returns the mask naming them.

    An explicit mask lets a caller clear an optional field by passing `""`,
    which an empty mask (update every non-empty field) could not express.

    Raises:
        ValueError: If every change is None, since an update must change something.
    """
    paths: list[str] = []
    for name, value in changes.items():
        if value is None:
            continue
        setattr(resource, name, value)
        paths.append(name)
    if not paths:
        raise ValueError(f"nothing to update: give at least one of {', '.join(changes)}")
    return field_mask_pb2.FieldMask(paths=paths)


# -- rights holders ---------------------------------------------------------------------------


def create_rights_holder(
    *,
    display_name: str,
    contact_email: str,
    legal_name: str,
    revenue_share_account: str,
    request_id: str | None,
) -> catalog_service_pb2.CreateRightsHolderRequest:
    """Builds a CreateRightsHolderRequest, with a fresh request id when none is given."""
    return catalog_service_pb2.CreateRightsHolderRequest(
        rights_holder=rights_holder_pb2.RightsHolder(
            display_name=display_name,
            contact_email=contact_email,
            legal_name=legal_name,
            revenue_share_account=revenue_share_account,
        ),
        request_id=request_id or new_request_id(),
    )


def list_rights_holders(
    *, state: int | str | None, query: str, page_size: int
) -> catalog_service_pb2.ListRightsHoldersRequest:
    """Builds the first ListRightsHoldersRequest of a listing."""
    request = catalog_service_pb2.ListRightsHoldersRequest(query=query, page_size=page_size)
    if state is not None:
        request.state = parse_rights_holder_state(state)
    return request


def update_rights_holder(id: str, changes: Mapping[str, str | None]) -> catalog_service_pb2.UpdateRightsHolderRequest:
    """Builds an UpdateRightsHolderRequest whose mask names the non-None changes."""
    resource = rights_holder_pb2.RightsHolder(id=id)
    mask = apply_changes(resource, changes)
    return catalog_service_pb2.UpdateRightsHolderRequest(rights_holder=resource, update_mask=mask)


# -- licensees --------------------------------------------------------------------------------


def create_licensee(
    *,
    display_name: str,
    contact_email: str,
    platform: str,
    legal_name: str,
    request_id: str | None,
) -> catalog_service_pb2.CreateLicenseeRequest:
    """Builds a CreateLicenseeRequest, with a fresh request id when none is given."""
    return catalog_service_pb2.CreateLicenseeRequest(
        licensee=licensee_pb2.Licensee(
            display_name=display_name,
            contact_email=contact_email,
            platform=platform,
            legal_name=legal_name,
        ),
        request_id=request_id or new_request_id(),
    )


def list_licensees(
    *, state: int | str | None, query: str, platform: str, page_size: int
) -> catalog_service_pb2.ListLicenseesRequest:
    """Builds the first ListLicenseesRequest of a listing."""
    request = catalog_service_pb2.ListLicenseesRequest(query=query, platform=platform, page_size=page_size)
    if state is not None:
        request.state = parse_licensee_state(state)
    return request


def update_licensee(id: str, changes: Mapping[str, str | None]) -> catalog_service_pb2.UpdateLicenseeRequest:
    """Builds an UpdateLicenseeRequest whose mask names the non-None changes."""
    resource = licensee_pb2.Licensee(id=id)
    mask = apply_changes(resource, changes)
    return catalog_service_pb2.UpdateLicenseeRequest(licensee=resource, update_mask=mask)


# -- API keys ---------------------------------------------------------------------------------


def create_api_key(
    *,
    display_name: str,
    role: int | str,
    rights_holder_id: str,
    licensee_id: str,
    expire_time: dt.datetime | None,
    request_id: str | None,
) -> access_service_pb2.CreateApiKeyRequest:
    """Builds a CreateApiKeyRequest, with a fresh request id when none is given."""
    return access_service_pb2.CreateApiKeyRequest(
        display_name=display_name,
        role=parse_role(role),
        rights_holder_id=rights_holder_id,
        licensee_id=licensee_id,
        expire_time=None if expire_time is None else timestamp(expire_time, what="expire_time"),
        request_id=request_id or new_request_id(),
    )


def list_api_keys(
    *, role: int | str | None, show_inactive: bool, page_size: int
) -> access_service_pb2.ListApiKeysRequest:
    """Builds the first ListApiKeysRequest of a listing."""
    request = access_service_pb2.ListApiKeysRequest(show_inactive=show_inactive, page_size=page_size)
    if role is not None:
        request.role = parse_role(role)
    return request
