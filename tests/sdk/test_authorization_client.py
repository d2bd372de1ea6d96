"""Client.authorize, license(), screen_prompt and watch_revocations against the real server.

Each test makes its own rights holder, licensee and generator key (`Scene`), and characters with
names no other test uses, so the server's screening and decisions see only what the test made.
The receipts are signed by the server's own key and verified here for real.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from charter import (
    Client,
    DeadlineExceededError,
    Decision,
    Detection,
    InvalidArgumentError,
    License,
    LicenseDenied,
    PermissionDeniedError,
    RetryPolicy,
    UnauthenticatedError,
    UnavailableError,
)
from charter import envelope as dsse
from charter.client import RevocationWatch
from charter.decisions import CharacterDecision
from charter.envelope import MalformedEnvelope
from charter.grants import KeyRing
from charter.receipts import verify_receipt
from charter.terms import DenyReason
from charter.v1 import (
    authorization_service_pb2,
    character_pb2,
    decision_pb2,
    grant_pb2,
    terms_pb2,
)
from charter_server.domain import errors
from google.protobuf import timestamp_pb2

from ._live import Live, unique, unique_kana
from ._scene import ADULT, HATE, IMAGE, OWED, SEXUAL, TEEN, VIDEO, Scene
from ._tap import Tap

_HEX32 = re.compile(r"[0-9a-f]{32}")


def _ask(client: Client, *character_ids: str, **changes: Any) -> Decision:
    arguments: dict[str, Any] = {"character_ids": character_ids, "use_type": IMAGE, "content_rating": TEEN}
    arguments.update(changes)
    return client.authorize(**arguments)


def _last_request(tap: Tap) -> authorization_service_pb2.AuthorizeRequest:
    request: authorization_service_pb2.AuthorizeRequest = tap.calls_of("Authorize")[-1].request
    return request


# -- request building ---------------------------------------------------------------------------


def test_authorize_sends_every_field(generator: Client, tap: Tap, scene: Scene) -> None:
    character, other = scene.character(), scene.character(opted_in=False)
    grant = next(scene.staff.list_grants(character_id=character.id)).envelope

    _ask(
        generator,
        character.id,
        other.id,
        prompt="Hatsune Miku on stage",
        use_type=VIDEO,
        content_rating=ADULT,
        categories=[HATE, SEXUAL],
        territory="JP",
        commercial=True,
        duration=dt.timedelta(seconds=90, milliseconds=500),
        grants=[grant, dsse.to_json(grant)],
        request_id=unique("render-"),
    )

    request = _last_request(tap)
    assert list(request.character_ids) == [character.id, other.id]
    assert request.prompt == "Hatsune Miku on stage"
    assert request.context.use_type == VIDEO
    assert request.context.content_rating == ADULT
    assert list(request.context.categories) == [HATE, SEXUAL]
    assert request.context.territory == "JP"
    assert request.context.commercial is True
    assert request.context.duration.ToTimedelta() == dt.timedelta(seconds=90, milliseconds=500)
    assert list(request.grants) == [grant, grant]  # the JSON form decodes to the same envelope
    assert request.request_id.startswith("render-")


def test_authorize_leaves_optional_fields_unset(generator: Client, tap: Tap) -> None:
    _ask(generator, prompt="nobody in particular")

    request = _last_request(tap)
    assert list(request.character_ids) == []
    assert not request.context.HasField("duration")
    assert list(request.context.categories) == []
    assert request.context.territory == ""
    assert request.context.commercial is False
    assert list(request.grants) == []


def test_authorize_fills_a_fresh_request_id_per_call(generator: Client, tap: Tap) -> None:
    _ask(generator, prompt="first")
    _ask(generator, prompt="second")

    first, second = (call.request.request_id for call in tap.calls_of("Authorize"))
    assert _HEX32.fullmatch(first)
    assert _HEX32.fullmatch(second)
    assert first != second


def test_a_retried_authorize_resends_its_request_id_and_is_counted_once(
    generator: Client, tap: Tap, scene: Scene
) -> None:
    character = scene.character(max_uses=2)
    # The server decides and counts a use, but its answer is lost: gRPC retries the same call.
    tap.fail("Authorize", errors.StorageBusy("connection lost"), answer_lost=True)

    decision = _ask(generator, character.id)
    second = _ask(generator, character.id)
    third = _ask(generator, character.id)

    first, retry, *_ = tap.calls_of("Authorize")
    assert decision.allowed
    assert _HEX32.fullmatch(first.request.request_id)
    assert retry.request.request_id == first.request.request_id
    assert second.allowed  # the retry was answered from the first decision, counting nothing
    assert third.characters[0].reasons == (DenyReason.QUOTA_EXHAUSTED,)


def test_an_explicit_request_id_returns_the_first_decision(generator: Client, scene: Scene) -> None:
    character = scene.character(max_uses=2)
    request_id = unique("render-")

    first = _ask(generator, character.id, request_id=request_id)
    again = _ask(generator, character.id, request_id=request_id)
    fresh = _ask(generator, character.id)
    over = _ask(generator, character.id)

    assert again.receipt_id == first.receipt_id
    assert fresh.allowed
    assert over.characters[0].reasons == (DenyReason.QUOTA_EXHAUSTED,)


def test_a_malformed_json_grant_raises_before_any_call(generator: Client, tap: Tap) -> None:
    with pytest.raises(MalformedEnvelope):
        _ask(generator, "chr_1", grants=['{"payload": "not base64!"}'])

    assert tap.calls_of("Authorize") == []


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"use_type": 99}, ValueError),
        ({"content_rating": 99}, ValueError),
        ({"categories": [99]}, ValueError),
        ({"categories": "sexual"}, TypeError),
        ({"character_ids": "chr_1"}, TypeError),
        ({"grants": "{}"}, TypeError),
        ({"grants": [b"{}"]}, TypeError),
        ({"duration": 90}, TypeError),
        ({"commercial": "yes"}, TypeError),
        ({"prompt": None}, TypeError),
    ],
)
def test_bad_arguments_raise_before_any_call(
    generator: Client, tap: Tap, changes: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        _ask(generator, **changes)

    assert tap.calls_of("Authorize") == []


def test_an_invalid_request_is_an_invalid_argument_error(generator: Client, scene: Scene) -> None:
    character = scene.character()

    with pytest.raises(InvalidArgumentError) as raised:
        _ask(generator, character.id, use_type=terms_pb2.USE_TYPE_UNSPECIFIED)

    assert raised.value.reason == "INVALID_FIELD"
    assert [v.field for v in raised.value.field_violations] == ["context.use_type"]


# -- decisions ----------------------------------------------------------------------------------


def test_an_allowed_decision_has_obligations_detections_and_a_receipt_that_verifies(
    generator: Client, scene: Scene, sdk_live: Live
) -> None:
    short = unique_kana()
    alias = character_pb2.Alias(value=short, language="ja", kind=character_pb2.Alias.KIND_SHORT_NAME)
    character = scene.character(aliases=(alias,))
    grant = next(scene.staff.list_grants(character_id=character.id))

    decision = _ask(generator, prompt=f"{short} sings", territory="JP")

    assert decision.allowed
    assert not decision.offline
    assert decision.reasons == ()
    assert decision.denied == ()
    assert decision.licensee_id == scene.licensee_id
    assert decision.decide_time.tzinfo is not None
    assert decision.characters == (
        CharacterDecision(
            character_id=character.id,
            allowed=True,
            reasons=(),
            grant_id=grant.id,
            terms_version=1,
            obligations=OWED,
            rights_holder_id=character.rights_holder_id,
            declared=False,
            detected=True,
        ),
    )
    assert decision.obligations == {character.id: OWED}
    assert decision.detections == (Detection(character.id, short, 0, len(short), short, False),)
    assert decision.receipt is not None
    assert decision.receipt.payload_type == dsse.RECEIPT_PAYLOAD_TYPE
    verified = verify_receipt(
        decision.receipt, keys=KeyRing.from_key_set(generator.get_key_set()), licensee_id=scene.licensee_id
    )
    assert verified.valid
    assert verified.receipt is not None
    assert verified.receipt.receipt_id == decision.receipt_id
    assert verified.receipt.issuer == sdk_live.server.settings.issuer
    assert verified.receipt.context.territory == "JP"


def test_a_denied_decision_reports_every_failed_term_in_order(generator: Client, scene: Scene) -> None:
    character = scene.character()

    decision = _ask(generator, character.id, use_type=VIDEO, content_rating=ADULT, categories=[SEXUAL], commercial=True)

    (denied,) = decision.characters
    assert not decision.allowed
    assert denied.reasons == (
        DenyReason.USE_TYPE_NOT_PERMITTED,
        DenyReason.RATING_EXCEEDS_TERMS,
        DenyReason.CATEGORY_PROHIBITED,
        DenyReason.COMMERCIAL_USE_NOT_PERMITTED,
    )
    assert denied.obligations is None
    assert denied.declared and not denied.detected
    assert decision.denied == (denied,)
    assert decision.obligations == {}
    assert decision.receipt is not None  # a denial is signed too


def test_declared_characters_come_first_then_detected_ones(generator: Client, scene: Scene) -> None:
    rin, luka = unique("Kagamine "), unique("Megurine ")
    opted_out = scene.character(opted_in=False)
    detected = scene.character(name=rin)
    without_grant = scene.character(name=luka, granted=False)

    decision = _ask(generator, opted_out.id, without_grant.id, prompt=f"{rin} meets {luka}")

    assert [(c.character_id, c.declared, c.detected) for c in decision.characters] == [
        (opted_out.id, True, False),
        (without_grant.id, True, True),
        (detected.id, False, True),
    ]
    assert [c.reasons for c in decision.characters] == [
        (DenyReason.CHARACTER_NOT_OPTED_IN,),
        (DenyReason.NO_GRANT,),
        (),
    ]
    assert decision.reasons == (DenyReason.CHARACTER_NOT_OPTED_IN, DenyReason.NO_GRANT)
    assert not decision.allowed


def test_a_presented_grant_of_another_licensee_is_invalid(generator: Client, scene: Scene) -> None:
    character = scene.character(granted=False)
    other = scene.staff.create_licensee(display_name="Other App", contact_email="ops@other.example", platform="other")
    foreign = scene.grant(character.id, licensee_id=other.id)

    decision = _ask(generator, character.id, grants=[dsse.to_json(foreign.envelope)])

    assert decision.characters[0].reasons == (DenyReason.GRANT_INVALID,)


def test_a_revoked_grant_denies(generator: Client, scene: Scene) -> None:
    character = scene.character()
    grant = next(scene.staff.list_grants(character_id=character.id))
    scene.staff.revoke_grant(grant.id, reason="test")

    decision = _ask(generator, character.id)

    assert decision.characters[0].reasons == (DenyReason.GRANT_REVOKED,)
    assert decision.characters[0].grant_id == grant.id


def test_decision_from_response_parses_every_field() -> None:
    stamp = timestamp_pb2.Timestamp(seconds=1_780_000_000)
    response = authorization_service_pb2.AuthorizeResponse(
        decision=decision_pb2.DecisionReceipt(
            receipt_id="rcp_1",
            licensee_id="lic_1",
            allowed=False,
            decide_time=stamp,
            characters=[
                decision_pb2.CharacterDecision(
                    character_id="chr_1",
                    allowed=False,
                    reasons=[decision_pb2.DENY_REASON_GRANT_EXPIRED, decision_pb2.DENY_REASON_QUOTA_EXHAUSTED],
                    grant_id="grt_1",
                    terms_version=3,
                    rights_holder_id="rh_1",
                    declared=True,
                )
            ],
        ),
        detections=[authorization_service_pb2.Detection(character_id="chr_1", matched_alias="Rin", end=3, text="rin")],
    )

    decision = Decision.from_response(response)

    assert decision.allowed is False
    assert decision.receipt is None
    assert decision.receipt_id == "rcp_1"
    assert decision.decide_time == dt.datetime.fromtimestamp(1_780_000_000, dt.UTC)
    assert decision.reasons == (DenyReason.QUOTA_EXHAUSTED, DenyReason.GRANT_EXPIRED)
    assert decision.characters[0].terms_version == 3
    assert decision.detections == (Detection("chr_1", "Rin", 0, 3, "rin", False),)


# -- license() ----------------------------------------------------------------------------------


def test_license_runs_the_body_and_records_the_use_once(generator: Client, tap: Tap, scene: Scene) -> None:
    character = scene.character()
    ran: list[License] = []

    with generator.license(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN) as granted:
        ran.append(granted)
        used_inside = granted.used

    assert ran == [granted]
    assert used_inside is False
    assert granted.used is True
    assert granted.obligations == {character.id: OWED}
    assert granted.receipt is not None
    assert granted.receipt == granted.decision.receipt
    assert len(generator.receipts) == 1
    assert generator.receipts.drain() == [granted]
    assert len(generator.receipts) == 0
    assert len(tap.calls_of("Authorize")) == 1


def test_license_denied_raises_with_reasons_and_never_runs_the_body(generator: Client, scene: Scene) -> None:
    character = scene.character(granted=False)
    ran = []

    with (
        pytest.raises(LicenseDenied) as raised,
        generator.license(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN),
    ):
        ran.append(True)

    assert ran == []
    assert raised.value.reasons == (DenyReason.NO_GRANT,)
    assert raised.value.decision.allowed is False
    assert raised.value.decision.receipt is not None
    assert len(generator.receipts) == 0


def test_license_body_errors_propagate_unchanged_and_record_nothing(generator: Client, scene: Scene) -> None:
    character = scene.character()
    failure = RuntimeError("render failed")
    seen: list[License] = []

    with (
        pytest.raises(RuntimeError) as raised,
        generator.license(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN) as granted,
    ):
        seen.append(granted)
        raise failure

    assert raised.value is failure
    assert seen[0].used is False
    assert len(generator.receipts) == 0


def test_license_failures_of_the_call_propagate(client: Client, scene: Scene) -> None:
    character = scene.character()

    with (  # an admin key may not authorize: only a generator's may
        pytest.raises(PermissionDeniedError) as raised,
        client.license(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN),
    ):
        pass

    assert raised.value.reason == "ROLE_NOT_PERMITTED"
    assert len(client.receipts) == 0


# -- screen_prompt ------------------------------------------------------------------------------


def test_screen_prompt_returns_detections_with_spans(generator: Client, tap: Tap, scene: Scene) -> None:
    rin_name, miku_name = unique("Kagamine "), unique("Hatsune ")
    rin_short = rin_name.split()[1]
    ambiguous = character_pb2.Alias(
        value=rin_short, language="en", kind=character_pb2.Alias.KIND_SHORT_NAME, ambiguous=True
    )
    rin = scene.character(name=rin_name, aliases=(ambiguous,), granted=False)
    miku = scene.character(name=miku_name, granted=False)
    prompt = f"{miku_name.upper()} and {rin_name}, then {rin_short} alone"
    rin_at = prompt.index(rin_name)
    short_at = prompt.index(f" {rin_short} ") + 1

    detections = generator.screen_prompt(prompt)

    assert detections == [  # the ambiguous alias inside the full name is not a match of its own
        Detection(miku.id, miku_name, 0, len(miku_name), miku_name.upper(), False),
        Detection(rin.id, rin_name, rin_at, rin_at + len(rin_name), rin_name, False),
        Detection(rin.id, rin_short, short_at, short_at + len(rin_short), rin_short, True),
    ]
    assert tap.calls_of("ScreenPrompt")[0].request.prompt == prompt


def test_screen_prompt_errors(generator: Client) -> None:
    with pytest.raises(TypeError):
        generator.screen_prompt(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError) as raised:
        generator.screen_prompt("")

    assert raised.value.reason == "INVALID_FIELD"
    assert [v.field for v in raised.value.field_violations] == ["prompt"]


# -- watch_revocations --------------------------------------------------------------------------

Event = grant_pb2.RevocationEvent
Heartbeat = authorization_service_pb2.Heartbeat


def _take(watch: Iterator[Any], count: int) -> list[Any]:
    return [next(watch) for _ in range(count)]


def _seen(messages: list[Any]) -> list[tuple[int, str]]:
    return [(message.sequence, message.grant_id) for message in messages]


def test_watch_yields_the_backlog_then_a_heartbeat_then_ends_quietly_on_cancel(
    client: Client, tap: Tap, scene: Scene, sdk_live: Live
) -> None:
    events = scene.revoke(2)

    watch = client.watch_revocations(since_sequence=events[0][0] - 1)
    first, second, beat = _take(watch, 3)
    watch.cancel()
    rest = list(watch)

    assert isinstance(watch, RevocationWatch)
    assert _seen([first, second]) == events
    assert (first.kind, first.reason) == (Event.KIND_REVOKED, "test")
    assert isinstance(beat, Heartbeat)
    assert beat.sequence == events[1][0]
    assert beat.server_time.seconds > 0
    assert rest == []
    assert watch.cancelled
    request = tap.calls_of("WatchRevocations")[0]
    assert request.request.since_sequence == events[0][0] - 1
    assert request.metadata["authorization"] == f"Bearer {sdk_live.admin}"
    assert request.metadata["x-request-id"] == watch.request_id


def test_watch_starts_after_since_sequence_and_follows_live_events(client: Client, scene: Scene) -> None:
    events = scene.revoke(3)

    with client.watch_revocations(since_sequence=events[1][0]) as watch:
        third, beat = _take(watch, 2)
        live = scene.revoke(1)
        following = next(message for message in watch if isinstance(message, Event))

    assert _seen([third]) == events[2:]
    assert beat.sequence == events[2][0]
    assert _seen([following]) == live
    assert watch.cancelled
    assert list(watch) == []


def test_watch_cancel_from_another_thread_ends_a_blocked_iteration(quiet_live: Live) -> None:
    with Client(quiet_live.target, api_key=quiet_live.admin) as client:
        watch = client.watch_revocations(since_sequence=quiet_live.revocation_head())
        received = []
        timer = threading.Timer(0.3, watch.cancel)
        timer.start()
        started = time.monotonic()

        for message in watch:
            received.append(message)

        timer.join()
    assert [type(m) for m in received] == [Heartbeat]  # one heartbeat, then blocked until the cancel
    assert time.monotonic() - started < 5


def test_watch_errors_are_typed_and_carry_the_request_id(client: Client, tap: Tap) -> None:
    tap.fail("WatchRevocations", errors.PermissionDenied("not for this key"))
    watch = client.watch_revocations()

    with pytest.raises(PermissionDeniedError) as raised:
        next(watch)

    assert raised.value.reason == "ROLE_NOT_PERMITTED"
    assert raised.value.request_id == watch.request_id


def test_watch_without_a_key_is_unauthenticated(tap: Tap) -> None:
    with (
        Client(tap.target) as anonymous,
        anonymous.watch_revocations() as watch,
        pytest.raises(UnauthenticatedError) as raised,
    ):
        next(watch)

    assert raised.value.reason == "CREDENTIALS_MISSING"


def test_watch_retries_unavailable_before_the_first_message_without_replaying(
    client: Client, tap: Tap, scene: Scene
) -> None:
    events = scene.revoke(2)
    tap.fail("WatchRevocations", errors.StorageBusy("busy"))

    with client.watch_revocations(since_sequence=events[0][0] - 1) as watch:
        received = _take(watch, 3)

    assert _seen(received[:2]) == events
    assert isinstance(received[2], Heartbeat)
    assert len(tap.calls_of("WatchRevocations")) == 2


def test_watch_is_opened_at_most_the_policys_attempts_then_fails(tap: Tap, sdk_live: Live, scene: Scene) -> None:
    events = scene.revoke(1)
    tap.fail("WatchRevocations", errors.StorageBusy("busy"), times=3)
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)

    with Client(tap.target, api_key=sdk_live.admin, retry=policy) as client:
        with (
            client.watch_revocations(since_sequence=events[0][0] - 1) as watch,
            pytest.raises(UnavailableError) as raised,
        ):
            next(watch)
        with client.watch_revocations(since_sequence=events[0][0] - 1) as watch:
            received = _take(watch, 1)

    assert raised.value.reason == "STORAGE_BUSY"
    assert _seen(received) == events
    # Three attempts for the first stream, one for the second.
    assert len(tap.calls_of("WatchRevocations")) == 4


def test_watch_is_not_reopened_past_its_deadline(
    tap: Tap, sdk_live: Live, scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = scene.revoke(1)
    tap.fail("WatchRevocations", errors.StorageBusy("busy"))
    monkeypatch.setattr(random, "uniform", lambda low, high: high)  # no jitter: every pause is 5 s
    policy = RetryPolicy(max_attempts=4, initial_backoff=5.0, max_backoff=5.0)

    with Client(tap.target, api_key=sdk_live.admin, retry=policy) as client:
        watch = client.watch_revocations(since_sequence=events[0][0] - 1, timeout=0.5)
        with watch, pytest.raises(UnavailableError) as raised:
            next(watch)

    assert raised.value.reason == "STORAGE_BUSY"
    assert len(tap.calls_of("WatchRevocations")) == 1


def test_watch_is_not_retried_once_messages_arrived(client: Client, tap: Tap, scene: Scene) -> None:
    events = scene.revoke(3)
    tap.break_stream("WatchRevocations", errors.StorageBusy("busy"), after_messages=2)
    watch = client.watch_revocations(since_sequence=events[0][0] - 1)
    received = _take(watch, 2)

    with pytest.raises(UnavailableError) as raised:
        next(watch)

    assert _seen(received) == events[:2]
    assert raised.value.reason == "STORAGE_BUSY"
    assert len(tap.calls_of("WatchRevocations")) == 1


def test_watch_has_no_deadline_by_default_but_honours_an_explicit_one(sdk_live: Live, scene: Scene) -> None:
    ((head, _),) = scene.revoke(1)

    with Client(sdk_live.target, api_key=sdk_live.admin, timeout=0.2) as short:
        with short.watch_revocations(since_sequence=head) as watch:
            started = time.monotonic()
            beats = [message for message, _ in zip(watch, range(12), strict=False)]
            lasted = time.monotonic() - started
        bounded = short.watch_revocations(since_sequence=head, timeout=0.3)
        with pytest.raises(DeadlineExceededError):
            list(bounded)

    assert [type(beat) for beat in beats] == [Heartbeat] * 12
    assert lasted > 0.2


@pytest.mark.parametrize(
    ("since", "timeout", "error"),
    [(-1, None, ValueError), ("1", None, TypeError), (True, None, TypeError), (0, 0, ValueError)],
)
def test_watch_rejects_bad_arguments_at_once(
    client: Client, tap: Tap, since: Any, timeout: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        client.watch_revocations(since, timeout=timeout)

    assert tap.calls_of("WatchRevocations") == []
