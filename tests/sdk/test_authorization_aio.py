"""AsyncClient.authorize, license(), screen_prompt and watch_revocations, driven with asyncio.run."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import pytest
from charter import (
    AsyncClient,
    Client,
    DeadlineExceededError,
    Decision,
    Detection,
    License,
    LicenseDenied,
    PermissionDeniedError,
    UnavailableError,
)
from charter import envelope as dsse
from charter.aio import AsyncRevocationWatch
from charter.envelope import MalformedEnvelope
from charter.grants import KeyRing
from charter.receipts import verify_receipt
from charter.terms import DenyReason
from charter.v1 import authorization_service_pb2, grant_pb2

from ._fakes import API_KEY, LICENSEE_ID, RunningFake
from .test_authorization_client import IMAGE, OWED, TEEN, TERMS, granted_character

_T = TypeVar("_T")

Event = grant_pb2.RevocationEvent
Heartbeat = authorization_service_pb2.Heartbeat


def _run(server: RunningFake, scenario: Callable[[AsyncClient], Awaitable[_T]], **options: Any) -> _T:
    """Runs a scenario with a client created inside the event loop (grpc.aio channels belong to one loop)."""

    async def main() -> _T:
        async with AsyncClient(server.target, api_key=API_KEY, **options) as client:
            return await scenario(client)

    return asyncio.run(main())


def _events(server: RunningFake, count: int) -> list[Event]:
    return [server.fake.record_revocation(f"grt_{i}", Event.KIND_REVOKED, "test") for i in range(count)]


async def _take(watch: AsyncRevocationWatch, count: int) -> list[Any]:
    return [await anext(watch) for _ in range(count)]


# -- authorize ----------------------------------------------------------------------------------


def test_authorize_sends_the_request_and_returns_a_decision_with_a_valid_receipt(
    client: Client, server: RunningFake
) -> None:
    character = granted_character(client, server)
    grant = next(client.list_grants(character_id=character.id)).envelope

    async def scenario(aclient: AsyncClient) -> Decision:
        return await aclient.authorize(
            character_ids=[character.id],
            prompt="Hatsune Miku",
            use_type=IMAGE,
            content_rating=TEEN,
            territory="JP",
            duration=dt.timedelta(seconds=30),
            grants=[dsse.to_json(grant)],
        )

    decision = _run(server, scenario)

    request = server.fake.calls_of("Authorize")[0].request
    assert list(request.character_ids) == [character.id]
    assert list(request.grants) == [grant]
    assert request.context.duration.seconds == 30
    assert len(request.request_id) == 32
    assert decision.allowed
    assert decision.characters[0].declared and decision.characters[0].detected
    assert decision.obligations == {character.id: OWED}
    assert decision.detections == (Detection(character.id, "Hatsune Miku", 0, 12, "Hatsune Miku", False),)
    assert decision.receipt is not None
    verified = verify_receipt(
        decision.receipt, keys=KeyRing.from_key_set(client.get_key_set()), licensee_id=LICENSEE_ID
    )
    assert verified.valid


def test_a_retried_authorize_resends_its_request_id(client: Client, server: RunningFake) -> None:
    character = granted_character(client, server)
    server.fake.fail("Authorize", grpc.StatusCode.UNAVAILABLE, "STORAGE_BUSY")

    async def scenario(aclient: AsyncClient) -> Decision:
        return await aclient.authorize(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN)

    decision = _run(server, scenario)

    first, retry = server.fake.calls_of("Authorize")
    assert decision.allowed
    assert retry.request.request_id == first.request.request_id
    assert server.fake.decided == 1


def test_a_malformed_json_grant_raises_before_any_call(server: RunningFake) -> None:
    async def scenario(aclient: AsyncClient) -> Decision:
        return await aclient.authorize(prompt="x", use_type=IMAGE, content_rating=TEEN, grants=["not json"])

    with pytest.raises(MalformedEnvelope):
        _run(server, scenario)

    assert server.fake.calls_of("Authorize") == []


# -- license() ----------------------------------------------------------------------------------


def test_license_runs_the_body_and_records_the_use_once(client: Client, server: RunningFake) -> None:
    character = granted_character(client, server)

    async def scenario(aclient: AsyncClient) -> tuple[License, bool, list[License]]:
        async with aclient.license(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN) as granted:
            used_inside = granted.used
        return granted, used_inside, aclient.receipts.drain()

    granted, used_inside, recorded = _run(server, scenario)

    assert used_inside is False
    assert granted.used is True
    assert recorded == [granted]
    assert granted.obligations == {character.id: OWED}
    assert len(server.fake.calls_of("Authorize")) == 1


def test_license_denied_raises_and_never_runs_the_body(server: RunningFake) -> None:
    character = server.fake.add_character(terms=TERMS)  # no grant
    ran: list[bool] = []
    recorded: list[int] = []

    async def scenario(aclient: AsyncClient) -> None:
        try:
            async with aclient.license(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN):
                ran.append(True)
        finally:
            recorded.append(len(aclient.receipts))

    with pytest.raises(LicenseDenied) as raised:
        _run(server, scenario)

    assert ran == []
    assert recorded == [0]
    assert raised.value.reasons == (DenyReason.NO_GRANT,)
    assert raised.value.decision.characters[0].character_id == character.id


def test_license_body_errors_propagate_unchanged_and_record_nothing(client: Client, server: RunningFake) -> None:
    character = granted_character(client, server)
    failure = RuntimeError("render failed")
    recorded: list[int] = []

    async def scenario(aclient: AsyncClient) -> None:
        try:
            async with aclient.license(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN):
                raise failure
        finally:
            recorded.append(len(aclient.receipts))

    with pytest.raises(RuntimeError) as raised:
        _run(server, scenario)

    assert raised.value is failure
    assert recorded == [0]


# -- screen_prompt ------------------------------------------------------------------------------


def test_screen_prompt_returns_detections(server: RunningFake) -> None:
    miku = server.fake.add_character(canonical_name="Hatsune Miku")

    async def scenario(aclient: AsyncClient) -> list[Detection]:
        return await aclient.screen_prompt("I like hatsune miku")

    detections = _run(server, scenario)

    assert detections == [Detection(miku.id, "Hatsune Miku", 7, 19, "hatsune miku", False)]


# -- watch_revocations --------------------------------------------------------------------------


def test_watch_yields_the_backlog_then_a_heartbeat_then_ends_quietly_on_cancel(server: RunningFake) -> None:
    events = _events(server, 2)

    async def scenario(aclient: AsyncClient) -> tuple[list[Any], list[Any], AsyncRevocationWatch]:
        watch = aclient.watch_revocations(since_sequence=0)
        received = await _take(watch, 3)
        watch.cancel()
        rest = [message async for message in watch]
        return received, rest, watch

    received, rest, watch = _run(server, scenario)

    assert received[:2] == events
    assert isinstance(received[2], Heartbeat)
    assert received[2].sequence == 2
    assert rest == []
    assert watch.cancelled
    assert server.fake.calls_of("WatchRevocations")[0].metadata["x-request-id"] == watch.request_id


def test_watch_as_a_context_manager_follows_live_events_and_cancels_on_exit(server: RunningFake) -> None:
    _events(server, 1)

    async def scenario(aclient: AsyncClient) -> tuple[Any, Event, Any, list[Any], AsyncRevocationWatch]:
        async with aclient.watch_revocations(since_sequence=1) as watch:
            first = await anext(watch)
            live = server.fake.record_revocation("grt_live", Event.KIND_REINSTATED)
            following = None
            async for message in watch:
                if isinstance(message, Event):
                    following = message
                    break
        rest = [message async for message in watch]
        return first, live, following, rest, watch

    first, live, following, rest, watch = _run(server, scenario)

    assert isinstance(first, Heartbeat)  # nothing after sequence 1 yet
    assert first.sequence == 1
    assert following == live
    assert rest == []
    assert watch.cancelled


def test_watch_cancel_from_another_task_ends_a_blocked_iteration(server: RunningFake) -> None:
    server.fake.heartbeat_seconds = 1.0

    async def scenario(aclient: AsyncClient) -> list[Any]:
        watch = aclient.watch_revocations()
        asyncio.get_running_loop().call_later(0.3, watch.cancel)
        return [message async for message in watch]

    received = _run(server, scenario)

    assert [type(m) for m in received] == [Heartbeat]


def test_cancelling_the_task_still_cancels_it(server: RunningFake) -> None:
    server.fake.heartbeat_seconds = 1.0

    async def scenario(aclient: AsyncClient) -> bool:
        watch = aclient.watch_revocations()

        async def consume() -> None:
            async for _ in watch:
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.2)
        watch.cancel()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelled()

    assert _run(server, scenario) is True


def test_watch_errors_are_typed(server: RunningFake) -> None:
    server.fake.fail("WatchRevocations", grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED")
    opened: list[AsyncRevocationWatch] = []

    async def scenario(aclient: AsyncClient) -> Any:
        opened.append(aclient.watch_revocations())
        return await anext(opened[0])

    with pytest.raises(PermissionDeniedError) as raised:
        _run(server, scenario)

    assert raised.value.reason == "ROLE_NOT_ALLOWED"
    assert raised.value.request_id == opened[0].request_id


def test_watch_is_not_retried_once_messages_arrived(server: RunningFake) -> None:
    events = _events(server, 3)
    server.fake.break_watch_after = 2
    received: list[Any] = []

    async def scenario(aclient: AsyncClient) -> None:
        async for message in aclient.watch_revocations():
            received.append(message)

    with pytest.raises(UnavailableError) as raised:
        _run(server, scenario)

    assert received == events[:2]
    assert raised.value.reason == "STORAGE_BUSY"
    assert len(server.fake.calls_of("WatchRevocations")) == 1


def test_watch_has_no_deadline_by_default_but_honours_an_explicit_one(server: RunningFake) -> None:
    async def scenario(aclient: AsyncClient) -> tuple[int, BaseException | None]:
        async with aclient.watch_revocations() as watch:
            beats = await _take(watch, 12)  # about 0.55 s of heartbeats, past the client's 0.2 s default
        try:
            async for _ in aclient.watch_revocations(timeout=0.3):
                pass
        except DeadlineExceededError as exc:
            return len(beats), exc
        return len(beats), None

    count, error = _run(server, scenario, timeout=0.2)

    assert count == 12
    assert isinstance(error, DeadlineExceededError)


def test_watch_rejects_bad_arguments_at_once(server: RunningFake) -> None:
    async def scenario(aclient: AsyncClient) -> None:
        aclient.watch_revocations(-1)

    with pytest.raises(ValueError):
        _run(server, scenario)

    assert server.fake.calls_of("WatchRevocations") == []
