"""Every RPC x every kind of caller, driven by the generated descriptors and the policy table.

New RPCs join the matrix on their own: the methods come from ``DESCRIPTOR.services_by_name`` of
every ``charter.v1`` ``*_service_pb2`` module, and a test pins that the policy lists exactly those.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
import pytest
from charter.v1 import catalog_service_pb2 as catalog_pb
from charter.v1 import rights_holder_pb2
from charter_server.api.policy import POLICY
from charter_server.domain import ids
from charter_server.domain.models import Principal, Role
from charter_server.services.access import ApiKeyInput
from google.protobuf import field_mask_pb2, message

from .helpers import (
    ERROR_DOMAIN,
    NEVER,
    Method,
    all_methods,
    auth,
    contract_methods,
    failure,
    invoke,
    unique,
)

METHODS = all_methods()
ROLES = list(Role)
# Callers whose credentials fail authentication, and the reason each must get.
REJECTED = {
    "no_credentials": "CREDENTIALS_MISSING",
    "revoked_key": "API_KEY_REVOKED",
    "expired_key": "API_KEY_EXPIRED",
    "malformed_scheme": "CREDENTIALS_INVALID",
    "malformed_token": "CREDENTIALS_INVALID",
    "empty_bearer": "CREDENTIALS_INVALID",
    "unknown_key": "CREDENTIALS_INVALID",
    "wrong_secret": "CREDENTIALS_INVALID",
}


@dataclass(frozen=True)
class Special:
    """Keys that must not authenticate: one revoked, one about to expire (both admin keys)."""

    revoked: str
    expiring: str
    expiring_lifetime: timedelta


@pytest.fixture(scope="module")
def special(server: Any, keys: Any, clock: Any) -> Special:
    access = server.services.access
    staff = Principal(keys.admin_key_id, Role.ADMIN)
    revoked = access.create_api_key(staff, ApiKeyInput(f"revoked {unique()}", Role.ADMIN))
    access.revoke_api_key(staff, revoked.api_key.id)
    lifetime = timedelta(hours=1)
    expiring = access.create_api_key(
        staff, ApiKeyInput(f"expiring {unique()}", Role.ADMIN, expire_time=clock.now() + lifetime)
    )
    return Special(revoked=revoked.secret, expiring=expiring.secret, expiring_lifetime=lifetime)


def rejected_metadata(kind: str, keys: Any, special: Special) -> tuple[tuple[str, str], ...]:
    """The call metadata of a caller whose credentials must be rejected."""
    metadata: dict[str, Callable[[], tuple[tuple[str, str], ...]]] = {
        "no_credentials": lambda: (),
        "revoked_key": lambda: auth(special.revoked),
        "expired_key": lambda: auth(special.expiring),
        "malformed_scheme": lambda: (("authorization", f"Basic {keys.admin}"),),
        "malformed_token": lambda: auth("not-an-api-key"),
        "empty_bearer": lambda: (("authorization", "Bearer "),),
        "unknown_key": lambda: auth(f"{ids.new_id('api_key')}.{uuid.uuid4().hex}"),
        "wrong_secret": lambda: auth(f"{keys.admin_key_id}.{uuid.uuid4().hex}"),
    }
    return metadata[kind]()


def call_error(
    channel: grpc.Channel, method: Method, request: message.Message | bytes, metadata: tuple[tuple[str, str], ...]
) -> grpc.RpcError | None:
    """The error of a call, or None when it succeeded."""
    try:
        invoke(channel, method, request, metadata)
    except grpc.RpcError as error:
        return error
    return None


def test_policy_lists_exactly_the_methods_of_the_contract() -> None:
    assert METHODS, "no charter.v1 methods found in the generated descriptors"
    assert set(POLICY) == {m.path for m in contract_methods()}
    assert all(roles and roles <= set(Role) for roles in POLICY.values())


@pytest.mark.parametrize("role", ROLES, ids=[r.value for r in ROLES])
@pytest.mark.parametrize("method", METHODS, ids=str)
def test_role_is_admitted_exactly_when_the_policy_allows_it(
    channel: grpc.Channel, keys: Any, method: Method, role: Role
) -> None:
    error = call_error(channel, method, method.request_type(), auth(keys.secret(role)))

    if role in POLICY[method.path]:
        if error is None:
            return
        got = failure(error)
        assert got.code not in NEVER | {grpc.StatusCode.UNAUTHENTICATED}, got
        assert got.reason != "ROLE_NOT_PERMITTED", got
        assert got.domain == ERROR_DOMAIN and got.reason and got.request_id, got
    else:
        assert error is not None, f"{role.value} may not call {method}, but the call succeeded"
        got = failure(error)
        assert (got.code, got.reason, got.domain) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "ROLE_NOT_PERMITTED",
            ERROR_DOMAIN,
        )


def request_naming_missing_resources(method: Method) -> message.Message:
    """A request whose ids are well formed but name nothing (the ids' kind follows the method name)."""
    request = method.request_type()
    kind = next(
        (
            k
            for word, k in (("RightsHolder", "rights_holder"), ("Licensee", "licensee"), ("ApiKey", "api_key"))
            if word in method.name
        ),
        None,
    )
    if kind is None:
        return request
    for field in request.DESCRIPTOR.fields:
        if field.name == "id" and field.type == field.TYPE_STRING:
            request.id = ids.new_id(kind)
        elif field.message_type is not None and "id" in field.message_type.fields_by_name:
            getattr(request, field.name).id = ids.new_id(kind)
    return request


DENIED = [(m, r) for m in METHODS for r in ROLES if r not in POLICY.get(m.path, ())]


@pytest.mark.parametrize(("method", "role"), DENIED, ids=[f"{m}-{r.value}" for m, r in DENIED])
def test_role_is_checked_before_the_resource_exists(
    channel: grpc.Channel, keys: Any, method: Method, role: Role
) -> None:
    error = call_error(channel, method, request_naming_missing_resources(method), auth(keys.secret(role)))

    assert error is not None
    got = failure(error)
    assert (got.code, got.reason) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_PERMITTED")


@pytest.mark.parametrize("kind", list(REJECTED))
@pytest.mark.parametrize("method", METHODS, ids=str)
def test_rejected_credentials_are_unauthenticated(
    channel: grpc.Channel, keys: Any, special: Special, moved_clock: Any, method: Method, kind: str
) -> None:
    if kind == "expired_key":
        moved_clock.advance(special.expiring_lifetime + timedelta(minutes=1))

    error = call_error(channel, method, method.request_type(), rejected_metadata(kind, keys, special))

    assert error is not None, f"{kind} was admitted to {method}"
    got = failure(error)
    assert (got.code, got.reason, got.domain) == (grpc.StatusCode.UNAUTHENTICATED, REJECTED[kind], ERROR_DOMAIN)
    assert got.request_id and got.request_id == got.trailing_request_id


def test_the_expiring_key_worked_before_its_expiry(channel: grpc.Channel, special: Special) -> None:
    """The expired-key rows above fail because of the clock, not because the key never worked."""
    get_caller = next(m for m in METHODS if m.name == "GetCaller")

    (response,) = invoke(channel, get_caller, get_caller.request_type(), auth(special.expiring))

    assert response.api_key.role == 1  # ROLE_ADMIN


# Ownership: a scoped key on someone else's resource, existing or not, gets one and the same answer.


@pytest.fixture(scope="module")
def other(channel: grpc.Channel, keys: Any, catalog: Any) -> tuple[str, str]:
    """A rights holder and a licensee that the scoped session keys are not bound to."""
    marker = unique()
    holder = catalog.CreateRightsHolder(
        catalog_pb.CreateRightsHolderRequest(
            rights_holder=rights_holder_pb2.RightsHolder(
                display_name=f"Other {marker}", contact_email="other@studio.example"
            )
        ),
        metadata=auth(keys.admin),
    ).rights_holder
    licensee = catalog.CreateLicensee(
        catalog_pb.CreateLicenseeRequest(
            licensee={"display_name": f"Other {marker}", "contact_email": "other@app.example", "platform": "other-app"}
        ),
        metadata=auth(keys.admin),
    ).licensee
    return holder.id, licensee.id


@pytest.mark.parametrize("exists", [True, False], ids=["existing", "missing"])
def test_rights_holder_key_cannot_read_another_rights_holder(
    catalog: Any, keys: Any, other: tuple[str, str], exists: bool
) -> None:
    target = other[0] if exists else ids.new_id("rights_holder")

    with pytest.raises(grpc.RpcError) as raised:
        catalog.GetRightsHolder(catalog_pb.GetRightsHolderRequest(id=target), metadata=auth(keys.rights_holder))

    got = failure(raised.value)
    assert (got.code, got.reason) == (grpc.StatusCode.PERMISSION_DENIED, "RESOURCE_NOT_OWNED")


@pytest.mark.parametrize("exists", [True, False], ids=["existing", "missing"])
def test_rights_holder_key_cannot_update_another_rights_holder(
    catalog: Any, keys: Any, other: tuple[str, str], exists: bool
) -> None:
    target = other[0] if exists else ids.new_id("rights_holder")
    before = catalog.GetRightsHolder(catalog_pb.GetRightsHolderRequest(id=other[0]), metadata=auth(keys.admin))
    request = catalog_pb.UpdateRightsHolderRequest(
        rights_holder=rights_holder_pb2.RightsHolder(id=target, display_name="Hijacked"),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
    )

    with pytest.raises(grpc.RpcError) as raised:
        catalog.UpdateRightsHolder(request, metadata=auth(keys.rights_holder))

    got = failure(raised.value)
    assert (got.code, got.reason) == (grpc.StatusCode.PERMISSION_DENIED, "RESOURCE_NOT_OWNED")
    after = catalog.GetRightsHolder(catalog_pb.GetRightsHolderRequest(id=other[0]), metadata=auth(keys.admin))
    assert after == before


@pytest.mark.parametrize("exists", [True, False], ids=["existing", "missing"])
def test_generator_key_cannot_read_another_licensee(
    catalog: Any, keys: Any, other: tuple[str, str], exists: bool
) -> None:
    target = other[1] if exists else ids.new_id("licensee")

    with pytest.raises(grpc.RpcError) as raised:
        catalog.GetLicensee(catalog_pb.GetLicenseeRequest(id=target), metadata=auth(keys.generator))

    got = failure(raised.value)
    assert (got.code, got.reason) == (grpc.StatusCode.PERMISSION_DENIED, "RESOURCE_NOT_OWNED")


def test_scoped_keys_read_their_own_resources(catalog: Any, keys: Any) -> None:
    holder = catalog.GetRightsHolder(
        catalog_pb.GetRightsHolderRequest(id=keys.rights_holder_id), metadata=auth(keys.rights_holder)
    ).rights_holder
    licensee = catalog.GetLicensee(
        catalog_pb.GetLicenseeRequest(id=keys.licensee_id), metadata=auth(keys.generator)
    ).licensee

    assert holder.id == keys.rights_holder_id
    assert licensee.id == keys.licensee_id
