"""CatalogService end to end through gRPC: rights holders and licensees.

Create, get, list (pagination, filters, archived hidden by default), update by field mask,
archive, idempotent create, and what a rights-holder key may do with its own rights holder.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import grpc
import pytest
from charter.v1 import access_service_pb2 as access_pb
from charter.v1 import api_key_pb2, licensee_pb2, rights_holder_pb2
from charter.v1 import catalog_service_pb2 as catalog_pb
from charter_server.domain import ids
from google.protobuf import field_mask_pb2

from .helpers import auth, failure, unique

ACTIVE = rights_holder_pb2.RightsHolder.STATE_ACTIVE
ARCHIVED = rights_holder_pb2.RightsHolder.STATE_ARCHIVED


def new_holder(catalog: Any, secret: str, **fields: str) -> rights_holder_pb2.RightsHolder:
    given = {"display_name": f"Studio {unique()}", "contact_email": "rights@studio.example", **fields}
    request = catalog_pb.CreateRightsHolderRequest(rights_holder=given)
    return catalog.CreateRightsHolder(request, metadata=auth(secret)).rights_holder


def new_licensee(catalog: Any, secret: str, **fields: str) -> licensee_pb2.Licensee:
    given = {"display_name": f"App {unique()}", "contact_email": "ops@app.example", "platform": "video-app", **fields}
    return catalog.CreateLicensee(catalog_pb.CreateLicenseeRequest(licensee=given), metadata=auth(secret)).licensee


def list_all(call: Callable[..., Any], request: Any, items: str, secret: str) -> tuple[list[Any], int]:
    """Every item of a list, page by page; also the number of pages."""
    found: list[Any] = []
    pages = 0
    while True:
        response = call(request, metadata=auth(secret))
        pages += 1
        found.extend(getattr(response, items))
        if not response.next_page_token:
            return found, pages
        request.page_token = response.next_page_token


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


# Rights holders -------------------------------------------------------------------------------


def test_create_and_get_a_rights_holder(catalog: Any, keys: Any) -> None:
    name = f"Crypton {unique()}"
    request = catalog_pb.CreateRightsHolderRequest(
        rights_holder={
            "id": ids.new_id("rights_holder"),
            "display_name": f"  {name}  ",
            "legal_name": "Crypton Future Media, Inc.",
            "contact_email": "licensing@crypton.example",
            "revenue_share_account": "LEDGER-42",
            "state": ARCHIVED,
            "create_time": {"seconds": 1},
        }
    )

    created = catalog.CreateRightsHolder(request, metadata=auth(keys.admin)).rights_holder
    fetched = catalog.GetRightsHolder(
        catalog_pb.GetRightsHolderRequest(id=created.id), metadata=auth(keys.auditor)
    ).rights_holder

    assert ids.is_valid("rights_holder", created.id) and created.id != request.rights_holder.id
    assert (created.display_name, created.legal_name, created.contact_email, created.revenue_share_account) == (
        name,
        "Crypton Future Media, Inc.",
        "licensing@crypton.example",
        "LEDGER-42",
    )
    assert created.state == ACTIVE
    assert created.create_time == created.update_time and created.create_time.seconds > 1
    assert not created.HasField("archive_time")
    assert fetched == created


def test_get_a_missing_rights_holder_is_not_found(catalog: Any, keys: Any) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        catalog.GetRightsHolder(
            catalog_pb.GetRightsHolderRequest(id=ids.new_id("rights_holder")), metadata=auth(keys.admin)
        )

    got = failure(raised.value)
    assert (got.code, got.reason) == (grpc.StatusCode.NOT_FOUND, "RIGHTS_HOLDER_NOT_FOUND")


def test_list_pages_through_every_match_in_creation_order(catalog: Any, keys: Any) -> None:
    marker = unique()
    created = [new_holder(catalog, keys.admin, display_name=f"Studio {marker} {n}") for n in range(5)]

    request = catalog_pb.ListRightsHoldersRequest(query=marker, page_size=2)
    found, pages = list_all(catalog.ListRightsHolders, request, "rights_holders", keys.admin)

    assert [h.id for h in found] == [h.id for h in created]
    assert pages == 3


def test_list_default_page_size_is_fifty(catalog: Any, keys: Any) -> None:
    marker = unique()
    for n in range(51):
        new_licensee(catalog, keys.admin, display_name=f"App {marker} {n}")

    first = catalog.ListLicensees(catalog_pb.ListLicenseesRequest(query=marker), metadata=auth(keys.admin))
    rest = catalog.ListLicensees(
        catalog_pb.ListLicenseesRequest(query=marker, page_token=first.next_page_token), metadata=auth(keys.admin)
    )

    assert (len(first.licensees), len(rest.licensees), rest.next_page_token) == (50, 1, "")


def test_list_query_matches_display_or_legal_name_ignoring_case(catalog: Any, keys: Any) -> None:
    marker = unique()
    by_display = new_holder(catalog, keys.admin, display_name=f"Studio {marker.upper()}")
    by_legal = new_holder(catalog, keys.admin, legal_name=f"Legal {marker} KK")
    new_holder(catalog, keys.admin)

    found, _ = list_all(
        catalog.ListRightsHolders,
        catalog_pb.ListRightsHoldersRequest(query=marker.lower()),
        "rights_holders",
        keys.admin,
    )

    assert {h.id for h in found} == {by_display.id, by_legal.id}


@pytest.mark.parametrize("wildcard", ["%", "_"])
def test_list_query_treats_sql_wildcards_literally(catalog: Any, keys: Any, wildcard: str) -> None:
    marker = unique()
    literal = new_holder(catalog, keys.admin, display_name=f"Deal {marker}{wildcard}off")
    new_holder(catalog, keys.admin, display_name=f"Deal {marker}xoff")

    found, _ = list_all(
        catalog.ListRightsHolders,
        catalog_pb.ListRightsHoldersRequest(query=f"{marker}{wildcard}"),
        "rights_holders",
        keys.admin,
    )

    assert [h.id for h in found] == [literal.id]


def test_archived_rights_holders_are_listed_only_when_asked_for(catalog: Any, keys: Any) -> None:
    marker = unique()
    active = new_holder(catalog, keys.admin, display_name=f"Active {marker}")
    archived = new_holder(catalog, keys.admin, display_name=f"Archived {marker}")
    catalog.ArchiveRightsHolder(catalog_pb.ArchiveRightsHolderRequest(id=archived.id), metadata=auth(keys.admin))

    def listed(state: int) -> list[str]:
        request = catalog_pb.ListRightsHoldersRequest(query=marker, state=state)
        return [h.id for h in list_all(catalog.ListRightsHolders, request, "rights_holders", keys.admin)[0]]

    assert listed(0) == [active.id]
    assert listed(ACTIVE) == [active.id]
    assert listed(ARCHIVED) == [archived.id]


def test_update_changes_only_the_fields_in_the_mask(catalog: Any, keys: Any, moved_clock: Any) -> None:
    holder = new_holder(catalog, keys.admin, legal_name="Old Legal", revenue_share_account="ACC-1")
    moved_clock.advance(timedelta(seconds=5))
    request = catalog_pb.UpdateRightsHolderRequest(
        rights_holder={
            "id": holder.id,
            "display_name": "  New Name ",
            "legal_name": "Ignored",
            "contact_email": "ignored@studio.example",
            "state": ARCHIVED,
        },
        update_mask=mask("display_name", "display_name"),
    )

    updated = catalog.UpdateRightsHolder(request, metadata=auth(keys.admin)).rights_holder
    fetched = catalog.GetRightsHolder(
        catalog_pb.GetRightsHolderRequest(id=holder.id), metadata=auth(keys.admin)
    ).rights_holder

    assert updated == fetched
    assert (updated.display_name, updated.legal_name, updated.contact_email, updated.revenue_share_account) == (
        "New Name",
        "Old Legal",
        holder.contact_email,
        "ACC-1",
    )
    assert updated.state == ACTIVE
    assert updated.create_time == holder.create_time
    assert updated.update_time.ToDatetime() > holder.update_time.ToDatetime()


def test_update_with_a_mask_clears_an_optional_field(catalog: Any, keys: Any) -> None:
    holder = new_holder(catalog, keys.admin, legal_name="Old Legal", revenue_share_account="ACC-1")
    request = catalog_pb.UpdateRightsHolderRequest(rights_holder={"id": holder.id}, update_mask=mask("legal_name"))

    updated = catalog.UpdateRightsHolder(request, metadata=auth(keys.admin)).rights_holder

    assert (updated.legal_name, updated.revenue_share_account, updated.display_name) == (
        "",
        "ACC-1",
        holder.display_name,
    )


def test_update_with_an_empty_mask_sets_every_non_empty_field(catalog: Any, keys: Any) -> None:
    """The documented empty-mask semantics: non-empty fields are written, empty ones left alone."""
    holder = new_holder(catalog, keys.admin, legal_name="Old Legal", revenue_share_account="ACC-1")
    request = catalog_pb.UpdateRightsHolderRequest(
        rights_holder={"id": holder.id, "contact_email": "new@studio.example", "revenue_share_account": "ACC-2"}
    )

    updated = catalog.UpdateRightsHolder(request, metadata=auth(keys.admin)).rights_holder

    assert (updated.display_name, updated.legal_name, updated.contact_email, updated.revenue_share_account) == (
        holder.display_name,
        "Old Legal",
        "new@studio.example",
        "ACC-2",
    )


def test_update_of_a_missing_rights_holder_is_not_found(catalog: Any, keys: Any) -> None:
    request = catalog_pb.UpdateRightsHolderRequest(
        rights_holder={"id": ids.new_id("rights_holder"), "display_name": "X"}, update_mask=mask("display_name")
    )

    with pytest.raises(grpc.RpcError) as raised:
        catalog.UpdateRightsHolder(request, metadata=auth(keys.admin))

    got = failure(raised.value)
    assert (got.code, got.reason) == (grpc.StatusCode.NOT_FOUND, "RIGHTS_HOLDER_NOT_FOUND")


def test_archive_is_idempotent_and_freezes_the_rights_holder(catalog: Any, keys: Any) -> None:
    holder = new_holder(catalog, keys.admin)
    archive = catalog_pb.ArchiveRightsHolderRequest(id=holder.id)

    first = catalog.ArchiveRightsHolder(archive, metadata=auth(keys.admin)).rights_holder
    second = catalog.ArchiveRightsHolder(archive, metadata=auth(keys.admin)).rights_holder
    with pytest.raises(grpc.RpcError) as raised:
        catalog.UpdateRightsHolder(
            catalog_pb.UpdateRightsHolderRequest(
                rights_holder={"id": holder.id, "display_name": "Too late"}, update_mask=mask("display_name")
            ),
            metadata=auth(keys.admin),
        )
    fetched = catalog.GetRightsHolder(
        catalog_pb.GetRightsHolderRequest(id=holder.id), metadata=auth(keys.admin)
    ).rights_holder

    assert first.state == ARCHIVED and first.HasField("archive_time")
    assert second == first == fetched
    got = failure(raised.value)
    assert (got.code, got.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "RIGHTS_HOLDER_ARCHIVED")


def test_archive_of_a_missing_rights_holder_is_not_found(catalog: Any, keys: Any) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        catalog.ArchiveRightsHolder(
            catalog_pb.ArchiveRightsHolderRequest(id=ids.new_id("rights_holder")), metadata=auth(keys.admin)
        )

    got = failure(raised.value)
    assert (got.code, got.reason) == (grpc.StatusCode.NOT_FOUND, "RIGHTS_HOLDER_NOT_FOUND")


# Idempotent creates ---------------------------------------------------------------------------


def count_named(catalog: Any, keys: Any, marker: str) -> int:
    request = catalog_pb.ListRightsHoldersRequest(query=marker, page_size=1000)
    return len(list_all(catalog.ListRightsHolders, request, "rights_holders", keys.admin)[0])


def test_create_with_the_same_request_id_twice_creates_one_rights_holder(catalog: Any, keys: Any) -> None:
    marker = unique()
    request = catalog_pb.CreateRightsHolderRequest(
        rights_holder={"display_name": f"Studio {marker}", "contact_email": "rights@studio.example"},
        request_id=f"req-{marker}",
    )

    first = catalog.CreateRightsHolder(request, metadata=auth(keys.admin)).rights_holder
    again = catalog.CreateRightsHolder(request, metadata=auth(keys.admin)).rights_holder

    assert again == first
    assert count_named(catalog, keys, marker) == 1


def test_reusing_a_request_id_for_another_body_is_refused(catalog: Any, keys: Any) -> None:
    marker = unique()
    request_id = f"req-{marker}"
    catalog.CreateRightsHolder(
        catalog_pb.CreateRightsHolderRequest(
            rights_holder={"display_name": f"Studio {marker}", "contact_email": "rights@studio.example"},
            request_id=request_id,
        ),
        metadata=auth(keys.admin),
    )

    with pytest.raises(grpc.RpcError) as raised:
        catalog.CreateRightsHolder(
            catalog_pb.CreateRightsHolderRequest(
                rights_holder={"display_name": f"Other {marker}", "contact_email": "rights@studio.example"},
                request_id=request_id,
            ),
            metadata=auth(keys.admin),
        )

    got = failure(raised.value)
    assert (got.code, got.reason) == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")
    assert count_named(catalog, keys, marker) == 1


def test_request_ids_are_scoped_to_the_method(catalog: Any, keys: Any) -> None:
    marker = unique()
    holder = catalog.CreateRightsHolder(
        catalog_pb.CreateRightsHolderRequest(
            rights_holder={"display_name": f"Studio {marker}", "contact_email": "a@b.example"}, request_id=marker
        ),
        metadata=auth(keys.admin),
    ).rights_holder
    licensee = catalog.CreateLicensee(
        catalog_pb.CreateLicenseeRequest(
            licensee={"display_name": f"App {marker}", "contact_email": "a@b.example", "platform": "app"},
            request_id=marker,
        ),
        metadata=auth(keys.admin),
    ).licensee

    assert ids.is_valid("rights_holder", holder.id) and ids.is_valid("licensee", licensee.id)


def test_concurrent_retries_with_one_request_id_create_exactly_one(
    channel: grpc.Channel, catalog: Any, keys: Any
) -> None:
    marker = unique()
    request = catalog_pb.CreateRightsHolderRequest(
        rights_holder={"display_name": f"Studio {marker}", "contact_email": "rights@studio.example"},
        request_id=f"req-{marker}",
    )
    start = threading.Barrier(8)
    results: list[str] = []
    errors: list[BaseException] = []

    def retry() -> None:
        start.wait()
        try:
            results.append(catalog.CreateRightsHolder(request, metadata=auth(keys.admin)).rights_holder.id)
        except grpc.RpcError as error:
            errors.append(error)

    threads = [threading.Thread(target=retry) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert [failure(e) for e in errors] == []
    assert len(results) == 8 and len(set(results)) == 1
    assert count_named(catalog, keys, marker) == 1


# What a rights-holder key may do ------------------------------------------------------------


@pytest.fixture
def own(catalog: Any, access: Any, keys: Any) -> tuple[rights_holder_pb2.RightsHolder, str]:
    """A fresh rights holder and a rights-holder key bound to it, made through the API."""
    holder = new_holder(catalog, keys.admin, legal_name="Own Legal")
    secret = access.CreateApiKey(
        access_pb.CreateApiKeyRequest(
            display_name=f"studio key {unique()}", role=api_key_pb2.ROLE_RIGHTS_HOLDER, rights_holder_id=holder.id
        ),
        metadata=auth(keys.admin),
    ).secret
    return holder, secret


def test_rights_holder_key_updates_its_own_rights_holder(
    catalog: Any, own: tuple[rights_holder_pb2.RightsHolder, str]
) -> None:
    holder, secret = own
    request = catalog_pb.UpdateRightsHolderRequest(
        rights_holder={"id": holder.id, "contact_email": "new@studio.example"}, update_mask=mask("contact_email")
    )

    updated = catalog.UpdateRightsHolder(request, metadata=auth(secret)).rights_holder

    assert (updated.contact_email, updated.legal_name) == ("new@studio.example", "Own Legal")


def test_rights_holder_key_lists_only_itself(
    catalog: Any, keys: Any, own: tuple[rights_holder_pb2.RightsHolder, str]
) -> None:
    holder, secret = own
    new_holder(catalog, keys.admin)

    everything, _ = list_all(
        catalog.ListRightsHolders, catalog_pb.ListRightsHoldersRequest(page_size=1), "rights_holders", secret
    )
    by_other_name, _ = list_all(
        catalog.ListRightsHolders, catalog_pb.ListRightsHoldersRequest(query="Studio"), "rights_holders", secret
    )
    archived, _ = list_all(
        catalog.ListRightsHolders, catalog_pb.ListRightsHoldersRequest(state=ARCHIVED), "rights_holders", secret
    )

    assert [h.id for h in everything] == [holder.id]
    assert [h.id for h in by_other_name] == [holder.id]
    assert archived == []


# Licensees ------------------------------------------------------------------------------------


def test_create_get_update_and_archive_a_licensee(catalog: Any, keys: Any) -> None:
    created = new_licensee(catalog, keys.admin, legal_name="Render Co.", platform="render.app_v2")
    fetched = catalog.GetLicensee(catalog_pb.GetLicenseeRequest(id=created.id), metadata=auth(keys.auditor)).licensee
    updated = catalog.UpdateLicensee(
        catalog_pb.UpdateLicenseeRequest(
            licensee={"id": created.id, "platform": "render-app-v3", "display_name": "Ignored"},
            update_mask=mask("platform"),
        ),
        metadata=auth(keys.admin),
    ).licensee
    archived = catalog.ArchiveLicensee(
        catalog_pb.ArchiveLicenseeRequest(id=created.id), metadata=auth(keys.admin)
    ).licensee
    again = catalog.ArchiveLicensee(
        catalog_pb.ArchiveLicenseeRequest(id=created.id), metadata=auth(keys.admin)
    ).licensee
    with pytest.raises(grpc.RpcError) as raised:
        catalog.UpdateLicensee(
            catalog_pb.UpdateLicenseeRequest(
                licensee={"id": created.id, "platform": "other"}, update_mask=mask("platform")
            ),
            metadata=auth(keys.admin),
        )

    assert ids.is_valid("licensee", created.id)
    assert (created.legal_name, created.platform, created.state) == ("Render Co.", "render.app_v2", 1)
    assert fetched == created
    assert (updated.platform, updated.display_name) == ("render-app-v3", created.display_name)
    assert archived.state == licensee_pb2.Licensee.STATE_ARCHIVED and archived.HasField("archive_time")
    assert again == archived
    got = failure(raised.value)
    assert (got.code, got.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "LICENSEE_ARCHIVED")


@pytest.mark.parametrize("rpc", ["GetLicensee", "ArchiveLicensee"])
def test_a_missing_licensee_is_not_found(catalog: Any, keys: Any, rpc: str) -> None:
    request_type = getattr(catalog_pb, f"{rpc}Request")

    with pytest.raises(grpc.RpcError) as raised:
        getattr(catalog, rpc)(request_type(id=ids.new_id("licensee")), metadata=auth(keys.admin))

    got = failure(raised.value)
    assert (got.code, got.reason) == (grpc.StatusCode.NOT_FOUND, "LICENSEE_NOT_FOUND")


def test_list_licensees_filters_by_platform_query_and_state(catalog: Any, keys: Any) -> None:
    marker = unique()
    platform = f"plat-{marker}"
    on_platform = [
        new_licensee(catalog, keys.admin, platform=platform, display_name=f"App {marker} {n}") for n in range(3)
    ]
    new_licensee(catalog, keys.admin, display_name=f"App {marker} elsewhere")
    catalog.ArchiveLicensee(catalog_pb.ArchiveLicenseeRequest(id=on_platform[2].id), metadata=auth(keys.admin))

    def listed(**filters: Any) -> list[str]:
        request = catalog_pb.ListLicenseesRequest(page_size=1, **filters)
        return [item.id for item in list_all(catalog.ListLicensees, request, "licensees", keys.admin)[0]]

    assert listed(platform=platform) == [on_platform[0].id, on_platform[1].id]
    assert listed(platform=platform, query=f"{marker} 1") == [on_platform[1].id]
    assert listed(platform=platform, state=licensee_pb2.Licensee.STATE_ARCHIVED) == [on_platform[2].id]
    assert len(listed(query=marker)) == 3


def test_generator_key_reads_its_own_licensee(catalog: Any, keys: Any) -> None:
    licensee = catalog.GetLicensee(
        catalog_pb.GetLicenseeRequest(id=keys.licensee_id), metadata=auth(keys.generator)
    ).licensee

    assert licensee.id == keys.licensee_id


def test_request_ids_are_scoped_to_the_caller(catalog: Any, access: Any, keys: Any) -> None:
    other_admin = access.CreateApiKey(
        access_pb.CreateApiKeyRequest(display_name=f"second admin {unique()}", role=api_key_pb2.ROLE_ADMIN),
        metadata=auth(keys.admin),
    ).secret
    marker = unique()
    request = catalog_pb.CreateRightsHolderRequest(
        rights_holder={"display_name": f"Studio {marker}", "contact_email": "rights@studio.example"},
        request_id=f"req-{marker}",
    )

    first = catalog.CreateRightsHolder(request, metadata=auth(keys.admin)).rights_holder
    second = catalog.CreateRightsHolder(request, metadata=auth(other_admin)).rights_holder

    assert first.id != second.id
    assert count_named(catalog, keys, marker) == 2
