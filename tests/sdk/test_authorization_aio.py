"""AsyncClient.authorize, license(), screen_prompt and watch_revocations against the real server, driven with
asyncio.run inside sync tests (the scenes of `test_authorization_client`)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from charter import (
    AsyncClient,
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
from charter_server.domain import errors

from ._live import Live, run_async, unique
from ._scene import IMAGE, OWED, TEEN, Scene
from ._tap import Tap

_T = TypeVar("_T")

Event = grant_pb2.RevocationEvent
Heartbeat = authorization_service_pb2.Heartbeat
Run = Callable[..., Any]


@pytest.fixture
def as_generator(tap: Tap, scene: Scene) -> Run:
    """Runs a scenario as the scene's generator, through the tap."""
    return lambda scenario, **options: run_async(tap.target, scene.generator_key, scenario, **options)


async def _take(watch: AsyncRevocationWatch, count: int) -> list[Any]:
    return [await anext(watch) for _ in range(count)]


def _seen(messages: list[Any]) -> list[tuple[int, str]]:
    return [(message.sequence, message.grant_id) for message in messages]


# -- authorize ----------------------------------------------------------------------------------


def test_authorize_sends_the_request_and_returns_a_decision_with_a_valid_receipt(
    as_generator: Run, tap: Tap, scene: Scene
) -> None:
    name = unique("Hatsune ")
    character = scene.character(name=name)
    grant = next(scene.staff.list_grants(character_id=character.id)).envelope

    async def scenario(aclient: AsyncClient) -> Decision:
        return await aclient.authorize(
            character_ids=[character.id],
            prompt=name,
            use_type=IMAGE,
            content_rating=TEEN,
            territory="JP",
            duration=dt.timedelta(seconds=30),
            grants=[dsse.to_json(grant)],
        )

    decision = as_generator(scenario)

    request = tap.calls_of("Authorize")[0].request
    assert list(request.character_ids) == [character.id]
    assert list(request.grants) == [grant]
    assert request.context.duration.seconds == 30
    assert len(request.request_id) == 32
    assert decision.allowed
    assert decision.characters[0].declared and decision.characters[0].detected
    assert decision.obligations == {character.id: OWED}
    assert decision.detections == (Detection(character.id, name, 0, len(name), name, False),)
    assert decision.receipt is not None
    verified = verify_receipt(
        decision.receipt, keys=KeyRing.from_key_set(scene.staff.get_key_set()), licensee_id=scene.licensee_id
    )
    assert verified.valid


def test_a_retried_authorize_resends_its_request_id_and_is_counted_once(
    as_generator: Run, tap: Tap, scene: Scene
) -> None:
    character = scene.character(max_uses=2)
    tap.fail("Authorize", errors.StorageBusy("connection lost"), answer_lost=True)

    async def scenario(aclient: AsyncClient) -> list[Decision]:
        return [
            await aclient.authorize(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN) for _ in range(3)
        ]

    decision, second, third = as_generator(scenario)

    first, retry, *_ = tap.calls_of("Authorize")
    assert decision.allowed
    assert retry.request.request_id == first.request.request_id
    assert second.allowed
    assert third.characters[0].reasons == (DenyReason.QUOTA_EXHAUSTED,)


def test_a_malformed_json_grant_raises_before_any_call(as_generator: Run, tap: Tap) -> None:
    async def scenario(aclient: AsyncClient) -> Decision:
        return await aclient.authorize(prompt="x", use_type=IMAGE, content_rating=TEEN, grants=["not json"])

    with pytest.raises(MalformedEnvelope):
        as_generator(scenario)

    assert tap.calls_of("Authorize") == []


# -- license() ----------------------------------------------------------------------------------


def test_license_runs_the_body_and_records_the_use_once(as_generator: Run, tap: Tap, scene: Scene) -> None:
    character = scene.character()

    async def scenario(aclient: AsyncClient) -> tuple[License, bool, list[License]]:
        async with aclient.license(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN) as granted:
            used_inside = granted.used
        return granted, used_inside, aclient.receipts.drain()

    granted, used_inside, recorded = as_generator(scenario)

    assert used_inside is False
    assert granted.used is True
    assert recorded == [granted]
    assert granted.obligations == {character.id: OWED}
    assert len(tap.calls_of("Authorize")) == 1
    assert [result.accepted for result in granted.usage_results] == [True]


def test_license_denied_raises_and_never_runs_the_body(as_generator: Run, scene: Scene) -> None:
    character = scene.character(granted=False)
    ran: list[bool] = []
    recorded: list[int] = []

    async def scenario(aclient: AsyncClient) -> None:
        try:
            async with aclient.license(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN):
                ran.append(True)
        finally:
            recorded.append(len(aclient.receipts))

    with pytest.raises(LicenseDenied) as raised:
        as_generator(scenario)

    assert ran == []
    assert recorded == [0]
    assert raised.value.reasons == (DenyReason.NO_GRANT,)
    assert raised.value.decision.characters[0].character_id == character.id


def test_license_body_errors_propagate_unchanged_and_record_nothing(as_generator: Run, scene: Scene) -> None:
    character = scene.character()
    failure = RuntimeError("render failed")
    recorded: list[int] = []

    async def scenario(aclient: AsyncClient) -> None:
        try:
            async with aclient.license(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN):
                raise failure
        finally:
            recorded.append(len(aclient.receipts))

    with pytest.raises(RuntimeError) as raised:
        as_generator(scenario)

    assert raised.value is failure
    assert recorded == [0]


# -- screen_prompt ------------------------------------------------------------------------------


def test_screen_prompt_returns_detections(as_generator: Run, scene: Scene) -> None:
    name = unique("Hatsune ")
    miku = scene.character(name=name, granted=False)

    async def scenario(aclient: AsyncClient) -> list[Detection]:
        return await aclient.screen_prompt(f"I like {name.lower()}")

    detections = as_generator(scenario)

    assert detections == [Detection(miku.id, name, 7, 7 + len(name), name.lower(), False)]


# -- watch_revocations --------------------------------------------------------------------------


def test_watch_yields_the_backlog_then_a_heartbeat_then_ends_quietly_on_cancel(
    as_admin: Run, tap: Tap, scene: Scene
) -> None:
    events = scene.revoke(2)

    async def scenario(aclient: AsyncClient) -> tuple[list[Any], list[Any], AsyncRevocationWatch]:
        watch = aclient.watch_revocations(since_sequence=events[0][0] - 1)
        received = await _take(watch, 3)
        watch.cancel()
        rest = [message async for message in watch]
        return received, rest, watch

    received, rest, watch = as_admin(scenario)

    assert _seen(received[:2]) == events
    assert isinstance(received[2], Heartbeat)
    assert received[2].sequence == events[1][0]
    assert rest == []
    assert watch.cancelled
    assert tap.calls_of("WatchRevocations")[0].metadata["x-request-id"] == watch.request_id


def test_watch_as_a_context_manager_follows_live_events_and_cancels_on_exit(as_admin: Run, scene: Scene) -> None:
    ((head, _),) = scene.revoke(1)
    live: list[tuple[int, str]] = []

    async def scenario(aclient: AsyncClient) -> tuple[Any, Any, list[Any], AsyncRevocationWatch]:
        async with aclient.watch_revocations(since_sequence=head) as watch:
            first = await anext(watch)
            live.extend(await asyncio.to_thread(scene.revoke, 1))
            following = None
            async for message in watch:
                if isinstance(message, Event):
                    following = message
                    break
        rest = [message async for message in watch]
        return first, following, rest, watch

    first, following, rest, watch = as_admin(scenario)

    assert isinstance(first, Heartbeat)  # nothing after the head yet
    assert first.sequence == head
    assert _seen([following]) == live
    assert rest == []
    assert watch.cancelled


def test_watch_cancel_from_another_task_ends_a_blocked_iteration(quiet_live: Live) -> None:
    head = quiet_live.revocation_head()

    async def scenario(aclient: AsyncClient) -> list[Any]:
        watch = aclient.watch_revocations(since_sequence=head)
        asyncio.get_running_loop().call_later(0.3, watch.cancel)
        return [message async for message in watch]

    received = run_async(quiet_live.target, quiet_live.admin, scenario)

    assert [type(m) for m in received] == [Heartbeat]


def test_cancelling_the_task_still_cancels_it(quiet_live: Live) -> None:
    head = quiet_live.revocation_head()

    async def scenario(aclient: AsyncClient) -> bool:
        watch = aclient.watch_revocations(since_sequence=head)

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

    assert run_async(quiet_live.target, quiet_live.admin, scenario) is True


def test_watch_errors_are_typed(as_admin: Run, tap: Tap) -> None:
    tap.fail("WatchRevocations", errors.PermissionDenied("not for this key"))
    opened: list[AsyncRevocationWatch] = []

    async def scenario(aclient: AsyncClient) -> Any:
        opened.append(aclient.watch_revocations())
        return await anext(opened[0])

    with pytest.raises(PermissionDeniedError) as raised:
        as_admin(scenario)

    assert raised.value.reason == "ROLE_NOT_PERMITTED"
    assert raised.value.request_id == opened[0].request_id


def test_watch_is_not_retried_once_messages_arrived(as_admin: Run, tap: Tap, scene: Scene) -> None:
    events = scene.revoke(3)
    tap.break_stream("WatchRevocations", errors.StorageBusy("busy"), after_messages=2)
    received: list[Any] = []

    async def scenario(aclient: AsyncClient) -> None:
        async for message in aclient.watch_revocations(since_sequence=events[0][0] - 1):
            received.append(message)

    with pytest.raises(UnavailableError) as raised:
        as_admin(scenario)

    assert _seen(received) == events[:2]
    assert raised.value.reason == "STORAGE_BUSY"
    assert len(tap.calls_of("WatchRevocations")) == 1


def test_watch_has_no_deadline_by_default_but_honours_an_explicit_one(as_admin: Run, scene: Scene) -> None:
    ((head, _),) = scene.revoke(1)

    async def scenario(aclient: AsyncClient) -> tuple[list[Any], BaseException | None]:
        async with aclient.watch_revocations(since_sequence=head) as watch:
            beats = await _take(watch, 12)  # about 0.55 s of heartbeats, past the client's 0.2 s default
        try:
            async for _ in aclient.watch_revocations(since_sequence=head, timeout=0.3):
                pass
        except DeadlineExceededError as exc:
            return beats, exc
        return beats, None

    beats, error = as_admin(scenario, timeout=0.2)

    assert [type(beat) for beat in beats] == [Heartbeat] * 12
    assert isinstance(error, DeadlineExceededError)


def test_watch_rejects_bad_arguments_at_once(as_admin: Run, tap: Tap) -> None:
    async def scenario(aclient: AsyncClient) -> None:
        aclient.watch_revocations(-1)

    with pytest.raises(ValueError):
        as_admin(scenario)

    assert tap.calls_of("WatchRevocations") == []
