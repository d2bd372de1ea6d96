"""The AsyncClient against the real server through a tap, driven with asyncio.run inside sync tests."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any, TypeVar

import charter
import grpc
import pytest
from charter import AsyncClient, Client, RetryPolicy
from charter.v1 import api_key_pb2, catalog_service_pb2, character_pb2, licensee_pb2, rights_holder_pb2, terms_pb2
from charter_server.domain import errors

from ._live import Live, unique
from ._tap import Tap

_HEX32 = re.compile(r"[0-9a-f]{32}")
_T = TypeVar("_T")


_MISSING = "0" * 32


def test_calls_send_the_key_and_a_fresh_request_id(as_admin: Callable[..., Any], tap: Tap, sdk_live: Live) -> None:
    async def scenario(client: AsyncClient) -> tuple[rights_holder_pb2.RightsHolder, rights_holder_pb2.RightsHolder]:
        created = await client.create_rights_holder(display_name="Studio", contact_email="s@example.com")
        return created, await client.get_rights_holder(created.id)

    created, fetched = as_admin(scenario)

    first, second = tap.calls
    assert fetched == created
    assert first.metadata["authorization"] == f"Bearer {sdk_live.admin}"
    assert _HEX32.fullmatch(first.metadata["x-request-id"])
    assert first.metadata["x-request-id"] != second.metadata["x-request-id"]
    assert _HEX32.fullmatch(first.request.request_id)


def test_list_is_an_async_iterator_following_page_tokens(as_admin: Callable[..., Any], tap: Tap) -> None:
    marker = unique()

    async def scenario(client: AsyncClient) -> tuple[list[str], list[str], int]:
        created = [
            (
                await client.create_licensee(
                    display_name=f"{marker} {i}", contact_email="l@example.com", platform="app"
                )
            ).id
            for i in range(5)
        ]
        tap.clear()
        pager = client.list_licensees(query=marker, page_size=2)
        calls_before_iterating = len(tap.calls)
        listed = [lic.id async for lic in pager]
        return created, listed, calls_before_iterating

    created, listed, calls_before_iterating = as_admin(scenario)

    assert calls_before_iterating == 0
    tokens = [c.request.page_token for c in tap.calls_of("ListLicensees")]
    assert listed == created
    assert len(tokens) == 3
    assert tokens[0] == ""
    assert all(tokens[1:]) and tokens[1] != tokens[2]


def test_update_archive_and_api_keys(as_admin: Callable[..., Any], tap: Tap) -> None:
    async def scenario(client: AsyncClient) -> tuple[licensee_pb2.Licensee, api_key_pb2.ApiKey, list[str]]:
        lic = await client.create_licensee(display_name="A", contact_email="a@example.com", platform="app")
        await client.update_licensee(lic.id, display_name="B")
        archived = await client.archive_licensee(lic.id)
        created = await client.create_api_key(display_name="k", role="ROLE_AUDITOR")
        await client.get_api_key(created.api_key.id)
        revoked = await client.revoke_api_key(created.api_key.id)
        keys = [k.id async for k in client.list_api_keys(role="auditor", show_inactive=True)]
        await client.update_rights_holder(
            (await client.create_rights_holder(display_name="S", contact_email="s@example.com")).id,
            contact_email="t@example.com",
        )
        return archived, revoked, keys

    archived, revoked, keys = as_admin(scenario)

    assert list(tap.calls_of("UpdateLicensee")[0].request.update_mask.paths) == ["display_name"]
    assert list(tap.calls_of("UpdateRightsHolder")[0].request.update_mask.paths) == ["contact_email"]
    assert archived.display_name == "B"
    assert archived.state == licensee_pb2.Licensee.STATE_ARCHIVED
    assert revoked.state == api_key_pb2.ApiKey.STATE_REVOKED
    assert keys == [revoked.id]


def test_errors_are_typed_with_reason_and_request_id(as_admin: Callable[..., Any], tap: Tap) -> None:
    async def scenario(client: AsyncClient) -> charter.CharterError:
        try:
            await client.get_licensee("lic_" + _MISSING)
        except charter.CharterError as exc:
            return exc
        raise AssertionError("no error raised")

    error = as_admin(scenario)

    (call,) = tap.calls
    assert type(error) is charter.NotFoundError
    assert error.reason == "LICENSEE_NOT_FOUND"
    assert error.request_id == call.metadata["x-request-id"]


def test_validation_errors_carry_field_violations(as_admin: Callable[..., Any], tap: Tap) -> None:
    async def scenario(client: AsyncClient) -> None:
        await client.create_rights_holder(display_name="", contact_email="")

    with pytest.raises(charter.InvalidArgumentError) as exc:
        as_admin(scenario)

    assert exc.value.reason == "INVALID_FIELD"
    assert {v.field for v in exc.value.field_violations} == {
        "rights_holder.display_name",
        "rights_holder.contact_email",
    }


def test_unavailable_is_retried(as_admin: Callable[..., Any], tap: Tap, sdk_live: Live) -> None:
    tap.fail("GetCaller", errors.StorageBusy("busy"), times=2)

    async def scenario(client: AsyncClient) -> api_key_pb2.ApiKey:
        return await client.get_caller()

    caller = as_admin(scenario, retry=RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02))

    assert caller.id == sdk_live.admin_key_id
    assert len(tap.calls_of("GetCaller")) == 3


def test_a_call_cancelled_before_charter_saw_it_is_repeated(
    as_admin: Callable[..., Any], tap: Tap, sdk_live: Live
) -> None:
    tap.fail("GetCaller", grpc.StatusCode.CANCELLED, times=2)

    async def scenario(client: AsyncClient) -> api_key_pb2.ApiKey:
        return await client.get_caller()

    caller = as_admin(scenario, retry=RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02))

    assert caller.id == sdk_live.admin_key_id
    assert len(tap.calls_of("GetCaller")) == 3


def test_no_retry_policy_means_one_attempt(as_admin: Callable[..., Any], tap: Tap) -> None:
    tap.fail("GetCaller", errors.StorageBusy("busy"), times=1)

    async def scenario(client: AsyncClient) -> api_key_pb2.ApiKey:
        return await client.get_caller()

    with pytest.raises(charter.UnavailableError) as exc:
        as_admin(scenario, retry=None)

    assert exc.value.reason == "STORAGE_BUSY"
    assert len(tap.calls_of("GetCaller")) == 1


def test_deadlines_default_and_per_call(as_admin: Callable[..., Any], tap: Tap) -> None:
    tap.delay("GetCaller", 0.5)

    async def per_call(client: AsyncClient) -> api_key_pb2.ApiKey:
        return await client.get_caller(timeout=0.05)

    async def by_default(client: AsyncClient) -> api_key_pb2.ApiKey:
        return await client.get_caller()

    with pytest.raises(charter.DeadlineExceededError) as first:
        as_admin(per_call)
    with pytest.raises(charter.DeadlineExceededError) as second:
        as_admin(by_default, timeout=0.05)

    assert first.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert second.value.code is grpc.StatusCode.DEADLINE_EXCEEDED


def test_pager_errors_surface_during_iteration(as_admin: Callable[..., Any], tap: Tap) -> None:
    async def scenario(client: AsyncClient) -> list[str]:
        return [k.id async for k in client.list_api_keys(page_size=-1)]

    with pytest.raises(charter.InvalidArgumentError) as exc:
        as_admin(scenario)

    assert [v.field for v in exc.value.field_violations] == ["page_size"]


def test_bad_arguments_fail_before_any_call(as_admin: Callable[..., Any], tap: Tap) -> None:
    async def scenario(client: AsyncClient) -> None:
        client.list_rights_holders(state="gone")

    with pytest.raises(ValueError) as exc:
        as_admin(scenario)

    assert exc.type is ValueError
    assert tap.calls == []


def test_close_is_idempotent(tap: Tap, sdk_live: Live) -> None:
    async def main() -> str:
        client = AsyncClient(tap.target, api_key=sdk_live.admin)
        await client.close()
        await client.close()
        return repr(client)

    text = asyncio.run(main())

    assert sdk_live.admin not in text
    assert text == f"AsyncClient(target={tap.target!r})"


def test_characters_terms_and_import(as_admin: Callable[..., Any], tap: Tap, staff: Client) -> None:
    holder = staff.create_rights_holder(display_name="Studio", contact_email="rights@studio.example")
    name = unique("Hatsune ")

    async def scenario(
        client: AsyncClient,
    ) -> tuple[
        character_pb2.Character,
        list[str],
        catalog_service_pb2.OptInResponse,
        list[int],
        list[terms_pb2.TermsTemplate],
        list[catalog_service_pb2.ImportRowResult],
        catalog_service_pb2.OptOutResponse,
    ]:
        created = await client.create_character(
            rights_holder_id=holder.id, canonical_name=name, aliases=[charter.alias(name.upper(), "en", "short_name")]
        )
        await client.update_character(created.id, franchise="Vocaloid")
        fetched = await client.get_character(created.id)
        listed = [
            c.id async for c in client.list_characters(rights_holder_id=holder.id, state="opted_out", page_size=1)
        ]
        terms = terms_pb2.Terms(
            permitted_use_types=[terms_pb2.USE_TYPE_CAMEO], max_content_rating=terms_pb2.CONTENT_RATING_ALL_AGES
        )
        opted_in = await client.opt_in(created.id, terms)
        await client.update_terms(created.id, terms)
        await client.get_terms(created.id, version=1)
        versions = [t.version async for t in client.list_terms_versions(created.id)]
        templates = await client.list_terms_templates()
        results = await client.import_characters(
            holder.id,
            [catalog_service_pb2.ImportRow(character=character_pb2.Character(external_id="x", canonical_name="X"))],
        )
        collisions = [c async for c in client.list_alias_collisions(page_size=1)]
        await client.suspend_character(created.id, reason="review")
        await client.reinstate_character(created.id)
        opted_out = await client.opt_out(created.id)
        await client.archive_character(created.id)
        assert all(fetched.id not in c.character_ids for c in collisions)
        return fetched, listed, opted_in, versions, templates, results, opted_out

    fetched, listed, opted_in, versions, templates, results, opted_out = as_admin(scenario)

    assert list(tap.calls_of("UpdateCharacter")[0].request.update_mask.paths) == ["franchise"]
    assert _HEX32.fullmatch(tap.calls_of("CreateCharacter")[0].request.request_id)
    assert fetched.franchise == "Vocaloid"
    assert listed == [fetched.id]
    assert tap.calls_of("ListCharacters")[0].request.state == character_pb2.Character.STATE_OPTED_OUT
    assert opted_in.terms.version == 1
    assert versions == [2, 1]
    assert [t.name for t in templates] == ["fan-noncommercial", "commercial-partner", "promotional-cameo"]
    assert [r.outcome for r in results] == [catalog_service_pb2.ImportRowResult.OUTCOME_CREATED]
    assert opted_out.character.state == character_pb2.Character.STATE_OPTED_OUT


def test_character_errors_are_typed(as_admin: Callable[..., Any], tap: Tap) -> None:
    async def scenario(client: AsyncClient) -> None:
        await client.get_terms("chr_" + _MISSING)

    with pytest.raises(charter.NotFoundError) as exc:
        as_admin(scenario)

    assert exc.value.reason == "CHARACTER_NOT_FOUND"
