"""AccessService end to end through gRPC: API keys, the caller, and request ids.

A created key's secret is shown once and authenticates with its role; revocation and expiry
take effect at once; every response, failed or not, carries the request id.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import grpc
import pytest
from charter.v1 import access_service_pb2 as access_pb
from charter.v1 import api_key_pb2
from charter.v1 import catalog_service_pb2 as catalog_pb
from charter_server.domain import ids
from charter_server.domain.models import Role
from google.protobuf import timestamp_pb2

from .helpers import REQUEST_ID_KEY, auth, failure, trailer, unique

KEY = api_key_pb2.ApiKey
ROLE_OF = {
    Role.ADMIN: api_key_pb2.ROLE_ADMIN,
    Role.RIGHTS_HOLDER: api_key_pb2.ROLE_RIGHTS_HOLDER,
    Role.GENERATOR: api_key_pb2.ROLE_GENERATOR,
    Role.AUDITOR: api_key_pb2.ROLE_AUDITOR,
    Role.LICENSEE_ADMIN: api_key_pb2.ROLE_LICENSEE_ADMIN,
}


def create_key(access: Any, admin: str, **fields: Any) -> access_pb.CreateApiKeyResponse:
    given = {"display_name": f"key {unique()}", "role": api_key_pb2.ROLE_AUDITOR, **fields}
    return access.CreateApiKey(access_pb.CreateApiKeyRequest(**given), metadata=auth(admin))


def caller_of(access: Any, secret: str) -> api_key_pb2.ApiKey:
    return access.GetCaller(access_pb.GetCallerRequest(), metadata=auth(secret)).api_key


def all_keys(access: Any, admin: str, **filters: Any) -> list[api_key_pb2.ApiKey]:
    request = access_pb.ListApiKeysRequest(page_size=3, **filters)
    found: list[api_key_pb2.ApiKey] = []
    while True:
        response = access.ListApiKeys(request, metadata=auth(admin))
        found.extend(response.api_keys)
        if not response.next_page_token:
            return found
        request.page_token = response.next_page_token


def in_the_future(clock: Any, delta: timedelta) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(clock.now() + delta)
    return stamp


# Creating keys ----------------------------------------------------------------------------------


def test_create_shows_the_secret_once_and_the_key_authenticates_with_its_role(access: Any, keys: Any) -> None:
    name = f"render farm {unique()}"
    created = create_key(access, keys.admin, display_name=name, role=api_key_pb2.ROLE_AUDITOR)
    fetched = access.GetApiKey(access_pb.GetApiKeyRequest(id=created.api_key.id), metadata=auth(keys.admin))
    caller = caller_of(access, created.secret)

    key = created.api_key
    assert ids.is_valid("api_key", key.id)
    assert created.secret.startswith(f"{key.id}.") and len(created.secret) > len(key.id) + 32
    assert (key.display_name, key.role, key.state) == (name, api_key_pb2.ROLE_AUDITOR, KEY.STATE_ACTIVE)
    assert key.creator_key_id == keys.admin_key_id
    assert key.HasField("create_time") and not key.HasField("revoke_time") and not key.HasField("expire_time")
    assert fetched.api_key == key
    assert created.secret not in str(fetched)
    assert caller == key


def test_a_new_key_gets_exactly_its_role(catalog: Any, access: Any, keys: Any) -> None:
    secret = create_key(access, keys.admin, role=api_key_pb2.ROLE_AUDITOR).secret

    listed = catalog.ListRightsHolders(catalog_pb.ListRightsHoldersRequest(page_size=1), metadata=auth(secret))
    with pytest.raises(grpc.RpcError) as raised:
        catalog.CreateRightsHolder(
            catalog_pb.CreateRightsHolderRequest(
                rights_holder={"display_name": "Nope", "contact_email": "a@b.example"}
            ),
            metadata=auth(secret),
        )

    assert len(listed.rights_holders) == 1
    got = failure(raised.value)
    assert (got.code, got.reason) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_PERMITTED")


def test_scoped_keys_carry_their_binding(access: Any, keys: Any) -> None:
    studio = create_key(access, keys.admin, role=api_key_pb2.ROLE_RIGHTS_HOLDER, rights_holder_id=keys.rights_holder_id)
    app = create_key(access, keys.admin, role=api_key_pb2.ROLE_GENERATOR, licensee_id=keys.licensee_id)

    studio_caller, app_caller = caller_of(access, studio.secret), caller_of(access, app.secret)

    assert (studio_caller.role, studio_caller.rights_holder_id, studio_caller.licensee_id) == (
        api_key_pb2.ROLE_RIGHTS_HOLDER,
        keys.rights_holder_id,
        "",
    )
    assert (app_caller.role, app_caller.licensee_id, app_caller.rights_holder_id) == (
        api_key_pb2.ROLE_GENERATOR,
        keys.licensee_id,
        "",
    )


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
def test_get_caller_answers_for_every_role(access: Any, keys: Any, role: Role) -> None:
    caller = caller_of(access, keys.secret(role))

    assert caller.role == ROLE_OF[role]
    assert caller.state == KEY.STATE_ACTIVE
    assert keys.secret(role).startswith(f"{caller.id}.")


def test_retrying_a_create_returns_the_key_without_its_secret(access: Any, keys: Any) -> None:
    request_id = f"req-{unique()}"
    first = create_key(access, keys.admin, display_name=f"retried {request_id}", request_id=request_id)
    again = create_key(access, keys.admin, display_name=f"retried {request_id}", request_id=request_id)

    assert first.secret and again.secret == ""
    assert again.api_key == first.api_key
    assert [k.id for k in all_keys(access, keys.admin) if k.display_name == f"retried {request_id}"] == [
        first.api_key.id
    ]


def test_reusing_a_request_id_for_another_key_is_refused(access: Any, keys: Any) -> None:
    request_id = f"req-{unique()}"
    create_key(access, keys.admin, request_id=request_id, role=api_key_pb2.ROLE_AUDITOR)
    before = all_keys(access, keys.admin, show_inactive=True)

    with pytest.raises(grpc.RpcError) as raised:
        create_key(access, keys.admin, request_id=request_id, role=api_key_pb2.ROLE_ADMIN)

    got = failure(raised.value)
    assert (got.code, got.reason) == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")
    assert all_keys(access, keys.admin, show_inactive=True) == before


@pytest.mark.parametrize(
    ("field", "reason", "code"),
    [
        ("rights_holder_id", "RIGHTS_HOLDER_NOT_FOUND", grpc.StatusCode.NOT_FOUND),
        ("licensee_id", "LICENSEE_NOT_FOUND", grpc.StatusCode.NOT_FOUND),
    ],
)
def test_a_key_bound_to_a_missing_resource_is_refused(
    access: Any, keys: Any, field: str, reason: str, code: grpc.StatusCode
) -> None:
    role = api_key_pb2.ROLE_RIGHTS_HOLDER if field == "rights_holder_id" else api_key_pb2.ROLE_GENERATOR
    kind = "rights_holder" if field == "rights_holder_id" else "licensee"
    before = all_keys(access, keys.admin, show_inactive=True)

    with pytest.raises(grpc.RpcError) as raised:
        create_key(access, keys.admin, role=role, **{field: ids.new_id(kind)})

    got = failure(raised.value)
    assert (got.code, got.reason) == (code, reason)
    assert all_keys(access, keys.admin, show_inactive=True) == before


def test_a_key_bound_to_an_archived_resource_is_refused(catalog: Any, access: Any, keys: Any) -> None:
    holder = catalog.CreateRightsHolder(
        catalog_pb.CreateRightsHolderRequest(
            rights_holder={"display_name": f"Gone {unique()}", "contact_email": "a@b.example"}
        ),
        metadata=auth(keys.admin),
    ).rights_holder
    licensee = catalog.CreateLicensee(
        catalog_pb.CreateLicenseeRequest(
            licensee={"display_name": f"Gone {unique()}", "contact_email": "a@b.example", "platform": "gone"}
        ),
        metadata=auth(keys.admin),
    ).licensee
    catalog.ArchiveRightsHolder(catalog_pb.ArchiveRightsHolderRequest(id=holder.id), metadata=auth(keys.admin))
    catalog.ArchiveLicensee(catalog_pb.ArchiveLicenseeRequest(id=licensee.id), metadata=auth(keys.admin))

    with pytest.raises(grpc.RpcError) as for_holder:
        create_key(access, keys.admin, role=api_key_pb2.ROLE_RIGHTS_HOLDER, rights_holder_id=holder.id)
    with pytest.raises(grpc.RpcError) as for_licensee:
        create_key(access, keys.admin, role=api_key_pb2.ROLE_GENERATOR, licensee_id=licensee.id)

    got_holder, got_licensee = failure(for_holder.value), failure(for_licensee.value)
    assert (got_holder.code, got_holder.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "RIGHTS_HOLDER_ARCHIVED")
    assert (got_licensee.code, got_licensee.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "LICENSEE_ARCHIVED")


# Listing ----------------------------------------------------------------------------------------


def test_list_pages_through_keys_in_creation_order_and_filters_by_role(access: Any, keys: Any) -> None:
    made = [create_key(access, keys.admin, role=api_key_pb2.ROLE_AUDITOR).api_key for _ in range(4)]

    everything = all_keys(access, keys.admin)
    auditors = all_keys(access, keys.admin, role=api_key_pb2.ROLE_AUDITOR)

    ids_in_order = [k.id for k in everything]
    assert len(ids_in_order) == len(set(ids_in_order))
    positions = [ids_in_order.index(k.id) for k in made]
    assert positions == sorted(positions)
    assert {k.id for k in made} <= {k.id for k in auditors}
    assert {k.role for k in auditors} == {api_key_pb2.ROLE_AUDITOR}
    assert all(k.state == KEY.STATE_ACTIVE for k in everything)


# Revocation and expiry --------------------------------------------------------------------------


def test_revoke_stops_the_key_at_once(access: Any, keys: Any) -> None:
    created = create_key(access, keys.admin)
    caller_of(access, created.secret)  # authenticated once, so the server may have it cached

    revoked = access.RevokeApiKey(
        access_pb.RevokeApiKeyRequest(id=created.api_key.id), metadata=auth(keys.admin)
    ).api_key
    with pytest.raises(grpc.RpcError) as raised:
        caller_of(access, created.secret)
    with pytest.raises(grpc.RpcError) as twice:
        access.RevokeApiKey(access_pb.RevokeApiKeyRequest(id=created.api_key.id), metadata=auth(keys.admin))

    assert revoked.state == KEY.STATE_REVOKED and revoked.HasField("revoke_time")
    got = failure(raised.value)
    assert (got.code, got.reason) == (grpc.StatusCode.UNAUTHENTICATED, "API_KEY_REVOKED")
    again = failure(twice.value)
    assert (again.code, again.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "API_KEY_ALREADY_REVOKED")
    assert created.api_key.id not in {k.id for k in all_keys(access, keys.admin)}
    listed = {k.id: k for k in all_keys(access, keys.admin, show_inactive=True)}
    assert listed[created.api_key.id] == revoked


@pytest.mark.parametrize("rpc", ["GetApiKey", "RevokeApiKey"])
def test_a_missing_key_is_not_found(access: Any, keys: Any, rpc: str) -> None:
    request_type = getattr(access_pb, f"{rpc}Request")

    with pytest.raises(grpc.RpcError) as raised:
        getattr(access, rpc)(request_type(id=ids.new_id("api_key")), metadata=auth(keys.admin))

    got = failure(raised.value)
    assert (got.code, got.reason) == (grpc.StatusCode.NOT_FOUND, "API_KEY_NOT_FOUND")


def test_a_key_stops_at_its_expiry_time(access: Any, keys: Any, moved_clock: Any) -> None:
    created = create_key(access, keys.admin, expire_time=in_the_future(moved_clock, timedelta(hours=2)))
    before = caller_of(access, created.secret)

    moved_clock.advance(timedelta(hours=2, seconds=1))
    with pytest.raises(grpc.RpcError) as raised:
        caller_of(access, created.secret)
    active = {k.id for k in all_keys(access, keys.admin)}
    inactive = {k.id: k for k in all_keys(access, keys.admin, show_inactive=True)}

    assert before.state == KEY.STATE_ACTIVE and before.expire_time == created.api_key.expire_time
    got = failure(raised.value)
    assert (got.code, got.reason) == (grpc.StatusCode.UNAUTHENTICATED, "API_KEY_EXPIRED")
    assert created.api_key.id not in active
    assert inactive[created.api_key.id].state == KEY.STATE_EXPIRED


# Request ids ------------------------------------------------------------------------------------

GENERATED = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def test_the_client_request_id_is_echoed_on_success(access: Any, keys: Any) -> None:
    request_id = f"client-{unique()}"

    _, call = access.GetCaller.with_call(
        access_pb.GetCallerRequest(), metadata=auth(keys.auditor, request_id=request_id)
    )

    assert trailer(call.trailing_metadata(), REQUEST_ID_KEY) == request_id


def test_the_client_request_id_is_echoed_on_failure(access: Any, keys: Any) -> None:
    request_id = f"client-{unique()}"

    with pytest.raises(grpc.RpcError) as raised:
        access.GetApiKey(
            access_pb.GetApiKeyRequest(id=ids.new_id("api_key")), metadata=auth(keys.admin, request_id=request_id)
        )

    got = failure(raised.value)
    assert got.code == grpc.StatusCode.NOT_FOUND
    assert got.request_id == request_id
    assert got.trailing_request_id == request_id


def test_an_unauthenticated_call_still_gets_the_request_id(access: Any) -> None:
    request_id = f"client-{unique()}"

    with pytest.raises(grpc.RpcError) as raised:
        access.GetCaller(access_pb.GetCallerRequest(), metadata=auth(request_id=request_id))

    got = failure(raised.value)
    assert (got.code, got.reason) == (grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_MISSING")
    assert got.request_id == got.trailing_request_id == request_id


@pytest.mark.parametrize("given", [None, "has spaces", "x" * 129, "a/b", "semi;colon", ""])
def test_a_missing_or_invalid_request_id_is_replaced_by_a_generated_one(
    access: Any, keys: Any, given: str | None
) -> None:
    metadata = auth(keys.auditor, request_id=given)

    _, first = access.GetCaller.with_call(access_pb.GetCallerRequest(), metadata=metadata)
    _, second = access.GetCaller.with_call(access_pb.GetCallerRequest(), metadata=metadata)
    with pytest.raises(grpc.RpcError) as raised:
        access.GetApiKey(access_pb.GetApiKeyRequest(id="bad"), metadata=metadata)

    generated = [trailer(call.trailing_metadata(), REQUEST_ID_KEY) for call in (first, second)]
    assert all(value and GENERATED.match(value) and value != given for value in generated), generated
    assert generated[0] != generated[1]
    got = failure(raised.value)
    assert got.request_id and got.request_id != given and got.request_id == got.trailing_request_id
