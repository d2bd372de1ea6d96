"""Client.authorize, license(), screen_prompt and watch_revocations against the in-process fake server.

The fake decides with the SDK's terms evaluator and signs its receipts with a key generated for
the test, so the receipts here verify for real.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
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
    UnauthenticatedError,
    UnavailableError,
)
from charter import envelope as dsse
from charter.client import RevocationWatch
from charter.decisions import CharacterDecision
from charter.envelope import MalformedEnvelope
from charter.grants import KeyRing
from charter.receipts import verify_receipt
from charter.terms import DenyReason, Obligations
from charter.v1 import (
    authorization_service_pb2,
    character_pb2,
    decision_pb2,
    grant_pb2,
    terms_pb2,
)
from google.protobuf import timestamp_pb2

from ._fakes import API_KEY, ISSUER, LICENSEE_ID, RunningFake

_HEX32 = re.compile(r"[0-9a-f]{32}")

IMAGE = terms_pb2.USE_TYPE_IMAGE_GENERATION
VIDEO = terms_pb2.USE_TYPE_VIDEO_GENERATION
TEEN = terms_pb2.CONTENT_RATING_TEEN
ADULT = terms_pb2.CONTENT_RATING_ADULT
SEXUAL = terms_pb2.CONTENT_CATEGORY_SEXUAL
HATE = terms_pb2.CONTENT_CATEGORY_HATE

TERMS = terms_pb2.Terms(
    permitted_use_types=[IMAGE],
    max_content_rating=TEEN,
    prohibited_categories=[SEXUAL],
    attribution_text="© Example Studio",
    watermark_required=True,
    revenue_share_bps=1500,
    per_use_fee=terms_pb2.Money(currency_code="JPY", minor_units=100),
)
OWED = Obligations(
    attribution_text="© Example Studio",
    watermark_required=True,
    revenue_share_bps=1500,
    per_use_fee_minor_units=100,
    per_use_fee_currency="JPY",
)


def granted_character(client: Client, server: RunningFake, **options: Any) -> character_pb2.Character:
    """An opted-in character under TERMS with a 30-day grant for the fake's licensee."""
    character = server.fake.add_character(terms=TERMS, **options)
    client.issue_grant(
        character_id=character.id,
        licensee_id=LICENSEE_ID,
        expire_time=dt.datetime.now(dt.UTC) + dt.timedelta(days=30),
    )
    return character


def _ask(client: Client, *character_ids: str, **changes: Any) -> Decision:
    arguments: dict[str, Any] = {"character_ids": character_ids, "use_type": IMAGE, "content_rating": TEEN}
    arguments.update(changes)
    return client.authorize(**arguments)


def _last_request(server: RunningFake) -> authorization_service_pb2.AuthorizeRequest:
    request: authorization_service_pb2.AuthorizeRequest = server.fake.calls_of("Authorize")[-1].request
    return request


# -- request building ---------------------------------------------------------------------------


def test_authorize_sends_every_field(client: Client, server: RunningFake) -> None:
    character = granted_character(client, server)
    grant = client.list_grants(character_id=character.id).__next__().envelope

    _ask(
        client,
        character.id,
        "chr_other",
        prompt="Hatsune Miku on stage",
        use_type=VIDEO,
        content_rating=ADULT,
        categories=[HATE, SEXUAL],
        territory="JP",
        commercial=True,
        duration=dt.timedelta(seconds=90, milliseconds=500),
        grants=[grant, dsse.to_json(grant)],
        request_id="render-42",
    )

    request = _last_request(server)
    assert list(request.character_ids) == [character.id, "chr_other"]
    assert request.prompt == "Hatsune Miku on stage"
    assert request.context.use_type == VIDEO
    assert request.context.content_rating == ADULT
    assert list(request.context.categories) == [HATE, SEXUAL]
    assert request.context.territory == "JP"
    assert request.context.commercial is True
    assert request.context.duration.ToTimedelta() == dt.timedelta(seconds=90, milliseconds=500)
    assert list(request.grants) == [grant, grant]  # the JSON form decodes to the same envelope
    assert request.request_id == "render-42"


def test_authorize_leaves_optional_fields_unset(client: Client, server: RunningFake) -> None:
    _ask(client, prompt="nobody in particular")

    request = _last_request(server)
    assert list(request.character_ids) == []
    assert not request.context.HasField("duration")
    assert list(request.context.categories) == []
    assert request.context.territory == ""
    assert request.context.commercial is False
    assert list(request.grants) == []


def test_authorize_fills_a_fresh_request_id_per_call(client: Client, server: RunningFake) -> None:
    _ask(client, prompt="first")
    _ask(client, prompt="second")

    first, second = (call.request.request_id for call in server.fake.calls_of("Authorize"))
    assert _HEX32.fullmatch(first)
    assert _HEX32.fullmatch(second)
    assert first != second


def test_a_retried_authorize_resends_its_request_id_and_is_decided_once(client: Client, server: RunningFake) -> None:
    character = granted_character(client, server)
    server.fake.fail("Authorize", grpc.StatusCode.UNAVAILABLE, "STORAGE_BUSY")

    decision = _ask(client, character.id)

    first, retry = server.fake.calls_of("Authorize")
    assert decision.allowed
    assert _HEX32.fullmatch(first.request.request_id)
    assert retry.request.request_id == first.request.request_id
    assert server.fake.decided == 1


def test_an_explicit_request_id_returns_the_first_decision(client: Client, server: RunningFake) -> None:
    character = granted_character(client, server)

    first = _ask(client, character.id, request_id="render-1")
    again = _ask(client, character.id, request_id="render-1")

    assert again.receipt_id == first.receipt_id
    assert server.fake.decided == 1


def test_a_malformed_json_grant_raises_before_any_call(client: Client, server: RunningFake) -> None:
    with pytest.raises(MalformedEnvelope):
        _ask(client, "chr_1", grants=['{"payload": "not base64!"}'])

    assert server.fake.calls_of("Authorize") == []


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
    client: Client, server: RunningFake, changes: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        _ask(client, **changes)

    assert server.fake.calls_of("Authorize") == []


def test_an_invalid_request_is_an_invalid_argument_error(client: Client, server: RunningFake) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        _ask(client, "chr_1", use_type=terms_pb2.USE_TYPE_UNSPECIFIED)

    assert raised.value.reason == "INVALID_FIELD"
    assert [v.field for v in raised.value.field_violations] == ["context.use_type"]


# -- decisions ----------------------------------------------------------------------------------


def test_an_allowed_decision_has_obligations_detections_and_a_receipt_that_verifies(
    client: Client, server: RunningFake
) -> None:
    alias = character_pb2.Alias(value="ミク", language="ja", kind=character_pb2.Alias.KIND_SHORT_NAME)
    character = granted_character(client, server, aliases=(alias,))
    grant = next(client.list_grants(character_id=character.id))

    decision = _ask(client, prompt="ミク sings", territory="JP")

    assert decision.allowed
    assert not decision.offline
    assert decision.reasons == ()
    assert decision.denied == ()
    assert decision.licensee_id == LICENSEE_ID
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
    assert decision.detections == (Detection(character.id, "ミク", 0, 2, "ミク", False),)
    assert decision.receipt is not None
    assert decision.receipt.payload_type == dsse.RECEIPT_PAYLOAD_TYPE
    verified = verify_receipt(
        decision.receipt, keys=KeyRing.from_key_set(client.get_key_set()), licensee_id=LICENSEE_ID
    )
    assert verified.valid
    assert verified.receipt is not None
    assert verified.receipt.receipt_id == decision.receipt_id
    assert verified.receipt.issuer == ISSUER
    assert verified.receipt.context.territory == "JP"


def test_a_denied_decision_reports_every_failed_term_in_order(client: Client, server: RunningFake) -> None:
    character = granted_character(client, server)

    decision = _ask(client, character.id, use_type=VIDEO, content_rating=ADULT, categories=[SEXUAL], commercial=True)

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


def test_declared_characters_come_first_then_detected_ones(client: Client, server: RunningFake) -> None:
    detected = granted_character(client, server, canonical_name="Kagamine Rin")
    without_grant = server.fake.add_character(canonical_name="Megurine Luka")

    decision = _ask(client, "chr_unknown", without_grant.id, prompt="Kagamine Rin meets Megurine Luka")

    assert [(c.character_id, c.declared, c.detected) for c in decision.characters] == [
        ("chr_unknown", True, False),
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


def test_a_presented_grant_of_another_licensee_is_invalid(client: Client, server: RunningFake) -> None:
    character = server.fake.add_character(terms=TERMS)
    foreign = client.issue_grant(
        character_id=character.id,
        licensee_id="lic_someone_else",
        expire_time=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
    )

    decision = _ask(client, character.id, grants=[dsse.to_json(foreign.envelope)])

    assert decision.characters[0].reasons == (DenyReason.GRANT_INVALID,)


def test_a_revoked_grant_denies(client: Client, server: RunningFake) -> None:
    character = granted_character(client, server)
    grant = next(client.list_grants(character_id=character.id))
    client.revoke_grant(grant.id, reason="test")

    decision = _ask(client, character.id)

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


def test_license_runs_the_body_and_records_the_use_once(client: Client, server: RunningFake) -> None:
    character = granted_character(client, server)
    ran: list[License] = []

    with client.license(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN) as granted:
        ran.append(granted)
        used_inside = granted.used

    assert ran == [granted]
    assert used_inside is False
    assert granted.used is True
    assert granted.obligations == {character.id: OWED}
    assert granted.receipt is not None
    assert granted.receipt == granted.decision.receipt
    assert len(client.receipts) == 1
    assert client.receipts.drain() == [granted]
    assert len(client.receipts) == 0
    assert len(server.fake.calls_of("Authorize")) == 1


def test_license_denied_raises_with_reasons_and_never_runs_the_body(client: Client, server: RunningFake) -> None:
    character = server.fake.add_character(terms=TERMS)  # no grant
    ran = []

    with (
        pytest.raises(LicenseDenied) as raised,
        client.license(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN),
    ):
        ran.append(True)

    assert ran == []
    assert raised.value.reasons == (DenyReason.NO_GRANT,)
    assert raised.value.decision.allowed is False
    assert raised.value.decision.receipt is not None
    assert len(client.receipts) == 0


def test_license_body_errors_propagate_unchanged_and_record_nothing(client: Client, server: RunningFake) -> None:
    character = granted_character(client, server)
    failure = RuntimeError("render failed")
    seen: list[License] = []

    with (
        pytest.raises(RuntimeError) as raised,
        client.license(character_ids=[character.id], use_type=IMAGE, content_rating=TEEN) as granted,
    ):
        seen.append(granted)
        raise failure

    assert raised.value is failure
    assert seen[0].used is False
    assert len(client.receipts) == 0


def test_license_failures_of_the_call_propagate(client: Client, server: RunningFake) -> None:
    server.fake.fail("Authorize", grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED")

    with (
        pytest.raises(PermissionDeniedError) as raised,
        client.license(character_ids=["chr_1"], use_type=IMAGE, content_rating=TEEN),
    ):
        pass

    assert raised.value.reason == "ROLE_NOT_ALLOWED"
    assert len(client.receipts) == 0


# -- screen_prompt ------------------------------------------------------------------------------


def test_screen_prompt_returns_detections_with_spans(client: Client, server: RunningFake) -> None:
    ambiguous = character_pb2.Alias(
        value="Rin", language="en", kind=character_pb2.Alias.KIND_SHORT_NAME, ambiguous=True
    )
    rin = server.fake.add_character(canonical_name="Kagamine Rin", aliases=(ambiguous,))
    miku = server.fake.add_character(canonical_name="Hatsune Miku")

    detections = client.screen_prompt("HATSUNE MIKU and Kagamine Rin")

    assert detections == [
        Detection(miku.id, "Hatsune Miku", 0, 12, "HATSUNE MIKU", False),
        Detection(rin.id, "Kagamine Rin", 17, 29, "Kagamine Rin", False),
        Detection(rin.id, "Rin", 26, 29, "Rin", True),
    ]
    assert server.fake.calls_of("ScreenPrompt")[0].request.prompt == "HATSUNE MIKU and Kagamine Rin"


def test_screen_prompt_errors(client: Client, server: RunningFake) -> None:
    with pytest.raises(TypeError):
        client.screen_prompt(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError) as raised:
        client.screen_prompt("")

    assert raised.value.reason == "INVALID_FIELD"
    assert [v.field for v in raised.value.field_violations] == ["prompt"]


# -- watch_revocations --------------------------------------------------------------------------

Event = grant_pb2.RevocationEvent
Heartbeat = authorization_service_pb2.Heartbeat


def _events(server: RunningFake, count: int) -> list[Event]:
    return [server.fake.record_revocation(f"grt_{i}", Event.KIND_REVOKED, "test") for i in range(count)]


def _take(watch: Iterator[Any], count: int) -> list[Any]:
    return [next(watch) for _ in range(count)]


def test_watch_yields_the_backlog_then_a_heartbeat_then_ends_quietly_on_cancel(
    client: Client, server: RunningFake
) -> None:
    events = _events(server, 2)

    watch = client.watch_revocations()
    first, second, beat = _take(watch, 3)
    watch.cancel()
    rest = list(watch)

    assert isinstance(watch, RevocationWatch)
    assert [first, second] == events
    assert isinstance(beat, Heartbeat)
    assert beat.sequence == 2
    assert beat.server_time.seconds > 0
    assert rest == []
    assert watch.cancelled
    request = server.fake.calls_of("WatchRevocations")[0]
    assert request.request.since_sequence == 0
    assert request.metadata["authorization"] == f"Bearer {API_KEY}"
    assert request.metadata["x-request-id"] == watch.request_id


def test_watch_starts_after_since_sequence_and_follows_live_events(client: Client, server: RunningFake) -> None:
    _events(server, 3)

    with client.watch_revocations(since_sequence=2) as watch:
        third, beat = _take(watch, 2)
        live = server.fake.record_revocation("grt_live", Event.KIND_SUSPENDED, "checking")
        following = next(message for message in watch if isinstance(message, Event))

    assert third.sequence == 3
    assert beat.sequence == 3
    assert following == live
    assert watch.cancelled
    assert list(watch) == []


def test_watch_cancel_from_another_thread_ends_a_blocked_iteration(client: Client, server: RunningFake) -> None:
    server.fake.heartbeat_seconds = 1.0
    watch = client.watch_revocations()
    received = []
    timer = threading.Timer(0.3, watch.cancel)
    timer.start()
    started = time.monotonic()

    for message in watch:
        received.append(message)

    timer.join()
    assert [type(m) for m in received] == [Heartbeat]  # one heartbeat, then blocked until the cancel
    assert time.monotonic() - started < 5


def test_watch_errors_are_typed_and_carry_the_request_id(client: Client, server: RunningFake) -> None:
    server.fake.fail("WatchRevocations", grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED")
    watch = client.watch_revocations()

    with pytest.raises(PermissionDeniedError) as raised:
        next(watch)

    assert raised.value.reason == "ROLE_NOT_ALLOWED"
    assert raised.value.request_id == watch.request_id


def test_watch_without_a_key_is_unauthenticated(server: RunningFake) -> None:
    with (
        Client(server.target) as anonymous,
        anonymous.watch_revocations() as watch,
        pytest.raises(UnauthenticatedError) as raised,
    ):
        next(watch)

    assert raised.value.reason == "CREDENTIALS_MISSING"


def test_watch_retries_unavailable_before_the_first_message_without_replaying(
    client: Client, server: RunningFake
) -> None:
    events = _events(server, 2)
    server.fake.fail("WatchRevocations", grpc.StatusCode.UNAVAILABLE, "STORAGE_BUSY")

    with client.watch_revocations() as watch:
        received = _take(watch, 3)

    assert received[:2] == events
    assert isinstance(received[2], Heartbeat)
    assert len(server.fake.calls_of("WatchRevocations")) == 2


def test_watch_is_not_retried_once_messages_arrived(client: Client, server: RunningFake) -> None:
    events = _events(server, 3)
    server.fake.break_watch_after = 2
    watch = client.watch_revocations()
    received = _take(watch, 2)

    with pytest.raises(UnavailableError) as raised:
        next(watch)

    assert received == events[:2]
    assert raised.value.reason == "STORAGE_BUSY"
    assert len(server.fake.calls_of("WatchRevocations")) == 1


def test_watch_has_no_deadline_by_default_but_honours_an_explicit_one(server: RunningFake) -> None:
    with Client(server.target, api_key=API_KEY, timeout=0.2) as short:
        with short.watch_revocations() as watch:
            started = time.monotonic()
            beats = [message for message, _ in zip(watch, range(12), strict=False)]
            lasted = time.monotonic() - started
        bounded = short.watch_revocations(timeout=0.3)
        with pytest.raises(DeadlineExceededError):
            list(bounded)

    assert len(beats) == 12
    assert lasted > 0.2


@pytest.mark.parametrize(
    ("since", "timeout", "error"),
    [(-1, None, ValueError), ("1", None, TypeError), (True, None, TypeError), (0, 0, ValueError)],
)
def test_watch_rejects_bad_arguments_at_once(
    client: Client, server: RunningFake, since: Any, timeout: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        client.watch_revocations(since, timeout=timeout)

    assert server.fake.calls_of("WatchRevocations") == []
