"""UsageService end to end: usage records (idempotent forever, duplicate deliveries counted once,
one use per receipt and character), every reason a record is refused, who may report and read,
and statements checked against an independent computation in plain integers, before and after
their month is closed.

Every test builds its own rights holder, characters and grants (the session's licensee is shared,
but idempotency keys are fresh and statements are per rights holder), so no test depends on
another's rows. Tests that move the server clock use ``moved_clock``, which puts it back
afterwards; they move it forward into months of their own, never backwards. The one test whose
rows would break the statements of the shared database (sums beyond 64 bits) runs on a server and
database of its own.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from math import floor
from pathlib import Path
from typing import Any

import grpc
import nacl.signing
import pytest
from charter import envelope as dsse
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import decision_pb2, envelope_pb2, terms_pb2, usage_pb2, usage_service_pb2_grpc
from charter.v1 import usage_service_pb2 as us
from charter_server.app import CharterServer, build_server
from charter_server.domain import ids
from google.protobuf import duration_pb2, message

from .character_helpers import Holder, new_holder, refused, terms
from .grant_helpers import Grant, Stubs, generator_key, issue, new_licensee, opted_in_character, stamp, stubs
from .helpers import auth, unique
from .log_helpers import logged_since, verified_checkpoint

Envelope = envelope_pb2.Envelope
Money = terms_pb2.Money
Record = usage_pb2.UsageRecord
Result = usage_pb2.UsageResult
Line = usage_pb2.StatementLine
Total = usage_pb2.StatementTotal
Statement = usage_pb2.Statement
UsageStub = usage_service_pb2_grpc.UsageServiceStub

ACCEPTED = usage_pb2.USAGE_STATUS_ACCEPTED
REJECTED = usage_pb2.USAGE_STATUS_REJECTED
OPEN = usage_pb2.STATEMENT_STATE_OPEN
CLOSED = usage_pb2.STATEMENT_STATE_CLOSED
RANGE = usage_pb2.STATEMENT_STATE_RANGE
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
NOT_FOUND = grpc.StatusCode.NOT_FOUND

USD_FEE = Money(currency_code="USD", minor_units=25)


# Fixtures and helpers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(channel: grpc.Channel) -> Stubs:
    return stubs(channel)


@pytest.fixture(scope="module")
def usage(channel: grpc.Channel) -> UsageStub:
    return UsageStub(channel)


def character(api: Stubs, keys: Any, clock: Any, holder: Holder, given: Any = None, *licensee_ids: str) -> str:
    """A new opted-in character of ``holder``, granted to each licensee (the session's by default)."""
    character_id = opted_in_character(api, holder, given)
    for licensee_id in licensee_ids or (keys.licensee_id,):
        issue(api, keys.admin, clock, character_id, licensee_id)
    return character_id


def authorize(api: Stubs, secret: str, *character_ids: str) -> az.AuthorizeResponse:
    context = decision_pb2.UseContext(
        use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION, content_rating=terms_pb2.CONTENT_RATING_ALL_AGES
    )
    request = az.AuthorizeRequest(character_ids=list(character_ids), context=context)
    response: az.AuthorizeResponse = api.authz.Authorize(request, metadata=auth(secret))
    return response


def receipt(api: Stubs, secret: str, *character_ids: str) -> Envelope:
    """The receipt of a decision that allowed every one of ``character_ids``."""
    response = authorize(api, secret, *character_ids)
    assert response.decision.allowed, response.decision
    return response.receipt


def decide_time(envelope: Envelope) -> datetime:
    decided: datetime = decision_pb2.DecisionReceipt.FromString(envelope.payload).decide_time.ToDatetime(tzinfo=UTC)
    return decided


def record(
    envelope: Envelope,
    character_id: str,
    happen: datetime,
    *,
    key: str = "",
    uses: int = 1,
    duration: duration_pb2.Duration | None = None,
    revenue: tuple[str, int] | None = None,
) -> Record:
    """A usage record (under a fresh idempotency key unless one is given)."""
    built = Record(
        idempotency_key=key or unique("key-"),
        receipt=envelope,
        character_id=character_id,
        uses=uses,
        happen_time=stamp(happen),
    )
    if duration is not None:
        built.duration.CopyFrom(duration)
    if revenue is not None:
        built.attributed_revenue.CopyFrom(Money(currency_code=revenue[0], minor_units=revenue[1]))
    return built


def seconds(value: int, nanos: int = 0) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=value, nanos=nanos)


def report(usage: UsageStub, secret: str, *records: Record) -> list[Result]:
    response = usage.ReportUsage(us.ReportUsageRequest(records=list(records)), metadata=auth(secret))
    return list(response.results)


def deliver_concurrently(usage: UsageStub, secret: str, batches: Sequence[Sequence[Record]]) -> list[list[Result]]:
    """Each batch in its own ReportUsage call, all released at once; the results in batch order."""
    start = threading.Barrier(len(batches))

    def send(batch: Sequence[Record]) -> list[Result]:
        start.wait(timeout=10)
        return report(usage, secret, *batch)

    with ThreadPoolExecutor(max_workers=len(batches)) as pool:
        return list(pool.map(send, batches, timeout=30))


def rejection(result: Result) -> tuple[int, str, str, tuple[str, ...]]:
    """(status, error code, error reason, field paths) of a result."""
    return result.status, result.error_code, result.error_reason, tuple(v.field for v in result.field_violations)


def statement(
    usage: UsageStub,
    secret: str,
    holder_id: str,
    period: str = "",
    *,
    start: date | None = None,
    end: date | None = None,
    licensee_id: str = "",
) -> Statement:
    request = us.GetStatementRequest(
        rights_holder_id=holder_id,
        period=period,
        start_date=start.isoformat() if start else "",
        end_date=end.isoformat() if end else "",
        licensee_id=licensee_id,
    )
    found: Statement = usage.GetStatement(request, metadata=auth(secret)).statement
    return found


def everything(usage: UsageStub, admin: str, holder_id: str, clock: Any) -> Statement:
    """Every record of a rights holder that happened in the usage window, or up to a day ahead."""
    today = clock.now().date()
    return statement(usage, admin, holder_id, start=today - timedelta(days=80), end=today + timedelta(days=1))


def close(usage: UsageStub, admin: str, holder_id: str, period: str) -> Statement:
    request = us.CloseStatementPeriodRequest(rights_holder_id=holder_id, period=period)
    closed: Statement = usage.CloseStatementPeriod(request, metadata=auth(admin)).statement
    return closed


def list_pages(usage: UsageStub, secret: str, **filters: Any) -> list[us.ListStatementsResponse]:
    """Every page of ListStatements with ``filters`` (page_size among them)."""
    pages = []
    request = us.ListStatementsRequest(**filters)
    while True:
        page = usage.ListStatements(request, metadata=auth(secret))
        pages.append(page)
        if not page.next_page_token:
            return pages
        request.page_token = page.next_page_token


def month_of(when: datetime) -> str:
    return f"{when:%Y-%m}"


def first_of_month(when: datetime, months_ahead: int = 0) -> datetime:
    """Midnight (UTC) of the first day of the month ``months_ahead`` after the month of ``when``."""
    index = when.year * 12 + when.month - 1 + months_ahead
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def move_to(moved_clock: Any, target: datetime) -> None:
    moved_clock.advance(target - moved_clock.now())


def serialized(found: message.Message) -> bytes:
    return found.SerializeToString(deterministic=True)


# The independent computation: plain integers from the records as sent ----------------------------


@dataclass(frozen=True)
class Sent:
    """An accepted record as the test sent it, with the terms it was allowed under."""

    character_id: str
    licensee_id: str
    currency: str
    uses: int
    duration_ms: int
    revenue: int
    bps: int
    fee: int
    happen: datetime


def sent(sent_record: Record, licensee_id: str, bps: int, fee: Money | None) -> Sent:
    """What a statement line adds up of one record: the revenue's currency, else the fee's, else none."""
    has_revenue = sent_record.HasField("attributed_revenue")
    fee_currency = fee.currency_code if fee is not None else ""
    duration = sent_record.duration
    return Sent(
        character_id=sent_record.character_id,
        licensee_id=licensee_id,
        currency=sent_record.attributed_revenue.currency_code.upper() if has_revenue else fee_currency,
        uses=sent_record.uses,
        duration_ms=duration.seconds * 1000 + duration.nanos // 1_000_000,
        revenue=sent_record.attributed_revenue.minor_units if has_revenue else 0,
        bps=bps,
        fee=fee.minor_units if fee is not None else 0,
        happen=sent_record.happen_time.ToDatetime(tzinfo=UTC),
    )


def half_up(value: Fraction) -> int:
    """The nearest integer, halves rounded up (never to even)."""
    return floor(value + Fraction(1, 2))


def expected_lines(records: Iterable[Sent], adjustment_for_period: str = "") -> list[Line]:
    """One line per character, licensee and currency, in that order; one rounding per line."""
    groups: dict[tuple[str, str, str], list[Sent]] = defaultdict(list)
    for item in records:
        groups[(item.character_id, item.licensee_id, item.currency)].append(item)
    lines = []
    for (character_id, licensee_id, currency), members in sorted(groups.items()):
        share = half_up(sum((Fraction(m.revenue * m.bps, 10_000) for m in members), Fraction(0)))
        fees = sum(m.fee * m.uses for m in members)
        lines.append(
            Line(
                character_id=character_id,
                licensee_id=licensee_id,
                currency_code=currency,
                adjustment_for_period=adjustment_for_period,
                records=len(members),
                uses=sum(m.uses for m in members),
                duration_milliseconds=sum(m.duration_ms for m in members),
                revenue_minor_units=sum(m.revenue for m in members),
                revenue_share_minor_units=share,
                fee_minor_units=fees,
                owed_minor_units=share + fees,
            )
        )
    return lines


def sums(lines: Iterable[Line]) -> list[Line]:
    """Statement lines without the names they carry for people (test_names_api tests those): the numbers."""
    result = []
    for line in lines:
        numbers = Line()
        numbers.CopyFrom(line)
        numbers.ClearField("character_name")
        numbers.ClearField("licensee_display_name")
        result.append(numbers)
    return result


def expected_totals(lines: Iterable[Line]) -> list[Total]:
    """Per currency, in currency order: the plain sums of the lines."""
    totals: dict[str, Total] = {}
    for line in lines:
        total = totals.setdefault(line.currency_code, Total(currency_code=line.currency_code))
        total.records += line.records
        total.uses += line.uses
        total.duration_milliseconds += line.duration_milliseconds
        total.revenue_minor_units += line.revenue_minor_units
        total.revenue_share_minor_units += line.revenue_share_minor_units
        total.fee_minor_units += line.fee_minor_units
        total.owed_minor_units += line.owed_minor_units
    return [totals[currency] for currency in sorted(totals)]


def test_the_independent_computation_rounds_once_per_line_and_half_up() -> None:
    """The oracle itself: two revenues of 5 at 25 % are 1.25 each, 2.5 for the line, rounded once and
    half up to 3 (rounding each record would give 2, and rounding half to even 2 as well)."""
    when = datetime(2030, 1, 1, tzinfo=UTC)
    at_quarter = [Sent("chr_a", "lic_a", "USD", 1, 0, 5, 2_500, 0, when) for _ in range(2)]
    at_half = [Sent("chr_a", "lic_a", "USD", 1, 0, 5, 5_000, 7, when)]

    (quarter,) = expected_lines(at_quarter)
    (half,) = expected_lines(at_half)

    assert quarter.revenue_share_minor_units == 3  # 2.5 rounds up, not to the even 2
    assert (half.revenue_share_minor_units, half.fee_minor_units, half.owed_minor_units) == (3, 7, 10)
    assert half_up(Fraction(5, 2)) == 3 and half_up(Fraction(7, 2)) == 4 and half_up(Fraction(249, 100)) == 2


# Accepted once; duplicates answered as the first time --------------------------------------------


def test_a_record_is_accepted_once_and_resent_it_is_answered_as_the_first_time(
    api: Stubs, usage: UsageStub, keys: Any, clock: Any
) -> None:
    holder = new_holder(api.catalog, api.access, keys.admin)
    character_id = character(api, keys, clock, holder, terms(revenue_share_bps=1_500, per_use_fee=USD_FEE))
    first_receipt, second_receipt = (
        receipt(api, keys.generator, character_id),
        receipt(api, keys.generator, character_id),
    )
    happen = clock.now()
    one = record(first_receipt, character_id, happen, duration=seconds(12, 345_678_901), revenue=("USD", 1_999))
    other = record(second_receipt, character_id, happen, revenue=("usd", 1))

    before = clock.now()
    (first,) = report(usage, keys.generator, one)
    after = clock.now()
    (again,) = report(usage, keys.generator, one)
    repeated_in_a_batch = report(usage, keys.generator, one, one)
    new_twice_in_a_batch = report(usage, keys.generator, other, other)
    got = statement(usage, keys.admin, holder.id, month_of(happen))

    assert (first.index, first.idempotency_key, first.status, first.duplicate) == (
        0,
        one.idempotency_key,
        ACCEPTED,
        False,
    )
    assert ids.is_valid("usage", first.usage_id)
    assert first.statement_period == month_of(happen)
    assert before <= first.accept_time.ToDatetime(tzinfo=UTC) <= after
    assert (first.error_code, first.error_reason, first.error_message, list(first.field_violations)) == ("", "", "", [])
    resent = [again, *repeated_in_a_batch]
    assert [(r.index, r.status, r.duplicate) for r in resent] == [
        (0, ACCEPTED, True),
        (0, ACCEPTED, True),
        (1, ACCEPTED, True),
    ]
    for answer in resent:
        assert (answer.idempotency_key, answer.usage_id, answer.statement_period, answer.accept_time) == (
            first.idempotency_key,
            first.usage_id,
            first.statement_period,
            first.accept_time,
        )
    new, its_repeat = new_twice_in_a_batch
    assert [(r.index, r.status, r.duplicate) for r in new_twice_in_a_batch] == [
        (0, ACCEPTED, False),
        (1, ACCEPTED, True),
    ]
    assert (its_repeat.usage_id, its_repeat.accept_time) == (new.usage_id, new.accept_time)
    assert new.usage_id != first.usage_id
    # 1,999 x 15 % = 299.85 and 1 x 15 % = 0.15: 300 exactly, once per line; a fee of 25 per use.
    assert sums(got.lines) == [
        Line(
            character_id=character_id,
            licensee_id=keys.licensee_id,
            currency_code="USD",
            records=2,
            uses=2,
            duration_milliseconds=12_345,
            revenue_minor_units=2_000,
            revenue_share_minor_units=300,
            fee_minor_units=50,
            owed_minor_units=350,
        )
    ]
    assert list(got.totals) == [
        Total(
            currency_code="USD",
            records=2,
            uses=2,
            duration_milliseconds=12_345,
            revenue_minor_units=2_000,
            revenue_share_minor_units=300,
            fee_minor_units=50,
            owed_minor_units=350,
        )
    ]
    assert (got.rights_holder_id, got.period, got.state, got.HasField("close_time"), got.licensee_id) == (
        holder.id,
        month_of(happen),
        OPEN,
        False,
        "",
    )
    assert (got.start_date, got.end_date) == (
        first_of_month(happen).date().isoformat(),
        (first_of_month(happen, 1).date() - timedelta(days=1)).isoformat(),
    )


def test_an_accepted_record_sent_again_after_the_usage_window_is_a_duplicate(
    api: Stubs, usage: UsageStub, keys: Any, moved_clock: Any
) -> None:
    """A retry that arrives after its record aged out of the window is still the record accepted."""
    holder = new_holder(api.catalog, api.access, keys.admin)
    character_id = character(api, keys, moved_clock, holder)
    happen = moved_clock.now()
    one = record(receipt(api, keys.generator, character_id), character_id, happen)
    (first,) = report(usage, keys.generator, one)
    moved_clock.advance(timedelta(days=61))

    (again,) = report(usage, keys.generator, one)

    assert first.status == ACCEPTED and not first.duplicate
    assert (again.status, again.duplicate, again.usage_id) == (ACCEPTED, True, first.usage_id)


def test_the_same_batch_delivered_three_times_at_once_is_counted_once(
    api: Stubs, usage: UsageStub, keys: Any, clock: Any
) -> None:
    holder = new_holder(api.catalog, api.access, keys.admin)
    shares = {character(api, keys, clock, holder, terms(revenue_share_bps=bps)): bps for bps in (700, 2_500)}
    rng = random.Random(6)
    counted: list[Sent] = []

    for _ in range(3):
        batch = []
        for _ in range(5):
            envelope = receipt(api, keys.generator, *shares)
            for character_id in shares:
                for uses in (0, 1):  # parts without the use first: after it, the receipt is consumed
                    batch.append(
                        record(
                            envelope,
                            character_id,
                            clock.now(),
                            uses=uses,
                            duration=seconds(rng.randint(0, 600), rng.randrange(10**9)),
                            revenue=("JPY", rng.randint(0, 10**6)),
                        )
                    )
        assert len(batch) == 20

        responses = deliver_concurrently(usage, keys.generator, [batch] * 3)
        got = statement(usage, keys.admin, holder.id, month_of(batch[0].happen_time.ToDatetime(tzinfo=UTC)))

        for results in responses:
            assert [(r.index, r.idempotency_key, r.status) for r in results] == [
                (i, sent_record.idempotency_key, ACCEPTED) for i, sent_record in enumerate(batch)
            ]
        for answers in zip(*responses, strict=True):
            assert len({(a.usage_id, a.statement_period, serialized(a.accept_time)) for a in answers}) == 1
            assert sorted(a.duplicate for a in answers) == [False, True, True]
        counted += [sent(r, keys.licensee_id, shares[r.character_id], None) for r in batch]
        assert sums(got.lines) == expected_lines(counted)
        assert list(got.totals) == expected_totals(expected_lines(counted))
        (total,) = got.totals
        assert (total.records, total.uses, total.revenue_minor_units) == (
            len(counted),
            sum(s.uses for s in counted),
            sum(s.revenue for s in counted),
        )


def test_the_same_key_for_a_different_record_is_refused_and_changes_nothing(
    api: Stubs, usage: UsageStub, keys: Any, clock: Any
) -> None:
    holder = new_holder(api.catalog, api.access, keys.admin)
    character_id = character(api, keys, clock, holder, terms(revenue_share_bps=1_000))
    envelope = receipt(api, keys.generator, character_id)
    now = clock.now()
    first = record(envelope, character_id, now, uses=0, revenue=("EUR", 500))
    variants = [
        record(envelope, character_id, now, key=first.idempotency_key, uses=0, revenue=("EUR", 501)),
        record(envelope, character_id, now, key=first.idempotency_key, uses=1, revenue=("EUR", 500)),
        record(envelope, character_id, now + timedelta(seconds=1), key=first.idempotency_key, revenue=("EUR", 500)),
        record(envelope, character_id, now, key=first.idempotency_key, uses=0),
    ]
    in_one_batch = record(envelope, character_id, now, uses=0, revenue=("EUR", 7))
    its_variant = record(envelope, character_id, now, key=in_one_batch.idempotency_key, uses=0)
    # A refused record is not stored: its key stays free for a correct record.
    in_the_future = record(envelope, character_id, now + timedelta(hours=1), uses=0)
    corrected = record(envelope, character_id, now, key=in_the_future.idempotency_key, uses=0, revenue=("EUR", 3))

    (accepted,) = report(usage, keys.generator, first)
    before = statement(usage, keys.admin, holder.id, month_of(now))
    reused = [result for variant in variants for result in report(usage, keys.generator, variant)]
    unchanged = statement(usage, keys.admin, holder.id, month_of(now))
    batch = report(usage, keys.generator, in_one_batch, its_variant)
    (too_far_ahead,) = report(usage, keys.generator, in_the_future)
    (then_right,) = report(usage, keys.generator, corrected)
    (still_first,) = report(usage, keys.generator, first)
    after = statement(usage, keys.admin, holder.id, month_of(now))

    assert accepted.status == ACCEPTED
    reuse = (REJECTED, "ALREADY_EXISTS", "IDEMPOTENCY_KEY_REUSED", ())
    assert [rejection(r) for r in reused] == [reuse] * len(variants)
    assert all(r.error_message and not r.usage_id and not r.HasField("accept_time") for r in reused)
    assert serialized(unchanged) == serialized(before)
    assert [(r.status, r.duplicate) for r in batch] == [(ACCEPTED, False), (REJECTED, False)]
    assert rejection(batch[1]) == reuse
    assert rejection(too_far_ahead) == (REJECTED, "INVALID_ARGUMENT", "USAGE_TIME_INVALID", ("happen_time",))
    assert (then_right.status, then_right.duplicate) == (ACCEPTED, False)
    assert (still_first.status, still_first.duplicate, still_first.usage_id) == (ACCEPTED, True, accepted.usage_id)
    (line,) = after.lines
    assert (line.records, line.uses, line.revenue_minor_units, line.revenue_share_minor_units) == (3, 0, 510, 51)


# Bad records: each refused alone, with its own reason, and nothing of it recorded -----------------


@dataclass(frozen=True)
class Scene:
    """A fresh rights holder with a character (a fee of USD 0.25 and a 10 % share) granted to the
    session licensee, and a receipt that allowed it."""

    api: Stubs
    keys: Any
    clock: Any
    holder: Holder
    character_id: str
    grant: Grant
    receipt: Envelope


def new_scene(api: Stubs, keys: Any, clock: Any) -> Scene:
    holder = new_holder(api.catalog, api.access, keys.admin)
    character_id = opted_in_character(api, holder, terms(revenue_share_bps=1_000, per_use_fee=USD_FEE))
    grant = issue(api, keys.admin, clock, character_id, keys.licensee_id)
    return Scene(api, keys, clock, holder, character_id, grant, receipt(api, keys.generator, character_id))


Make = Callable[[Scene, Record], Record]


def changed(**fields: Any) -> Make:
    """The good record with ``fields`` replaced (None clears one; a callable receives the Scene)."""

    def make(scene: Scene, good: Record) -> Record:
        bad = Record()
        bad.CopyFrom(good)
        for name, given in fields.items():
            value = given(scene) if callable(given) else given
            if value is None:
                bad.ClearField(name)  # type: ignore[arg-type]
            elif isinstance(value, message.Message):
                getattr(bad, name).CopyFrom(value)
            else:
                setattr(bad, name, value)
        return bad

    return make


def happening(delta: timedelta, *, since_decision: bool = False) -> Callable[[Scene], Any]:
    """A happen time ``delta`` from now (or from the receipt's decision)."""

    def at(scene: Scene) -> Any:
        return stamp((decide_time(scene.receipt) if since_decision else scene.clock.now()) + delta)

    return at


def another_licensees_receipt(scene: Scene, good: Record) -> Record:
    licensee_id = new_licensee(scene.api, scene.keys.admin)
    issue(scene.api, scene.keys.admin, scene.clock, scene.character_id, licensee_id)
    theirs = receipt(scene.api, generator_key(scene.api, scene.keys.admin, licensee_id), scene.character_id)
    return changed(receipt=theirs)(scene, good)


def altered_receipt(scene: Scene, good: Record) -> Record:
    payload = bytearray(scene.receipt.payload)
    payload[len(payload) // 2] ^= 0x01
    altered = Envelope()
    altered.CopyFrom(scene.receipt)
    altered.payload = bytes(payload)
    return changed(receipt=altered)(scene, good)


def resigned_receipt(key_id: Callable[[Scene], str]) -> Make:
    """The very payload, signed by a fresh key claiming ``key_id``."""

    def make(scene: Scene, good: Record) -> Record:
        forged = dsse.sign(
            scene.receipt.payload,
            dsse.RECEIPT_PAYLOAD_TYPE,
            key_id=key_id(scene),
            private_key=nacl.signing.SigningKey.generate(),
        )
        return changed(receipt=forged)(scene, good)

    return make


def denied_characters_receipt(scene: Scene, good: Record) -> Record:
    never_granted = opted_in_character(scene.api, scene.holder)
    response = authorize(scene.api, scene.keys.generator, never_granted)
    assert not response.decision.allowed
    return changed(receipt=response.receipt, character_id=never_granted)(scene, good)


def character_not_in_the_receipt(scene: Scene, good: Record) -> Record:
    other = character(scene.api, scene.keys, scene.clock, scene.holder)
    return changed(character_id=other)(scene, good)


def receipt_of_a_denied_request(scene: Scene, good: Record) -> Record:
    """The character was allowed, but another of the same request was not: the decision as a whole denied."""
    never_granted = opted_in_character(scene.api, scene.holder)
    response = authorize(scene.api, scene.keys.generator, scene.character_id, never_granted)
    assert not response.decision.allowed and response.decision.characters[0].allowed
    return changed(receipt=response.receipt)(scene, good)


@dataclass(frozen=True)
class BadRecord:
    """A record made bad from a good one, and the code, reason and field paths it must be refused with."""

    name: str
    make: Make
    code: str
    reason: str
    fields: tuple[str, ...]

    def __str__(self) -> str:
        return self.name


def invalid(name: str, make: Make, *fields: str, reason: str = "INVALID_FIELD") -> BadRecord:
    return BadRecord(name, make, "INVALID_ARGUMENT", reason, fields)


CURRENCY = "attributed_revenue.currency_code"
BAD_RECORDS = [
    invalid("idempotency_key-missing", changed(idempotency_key=""), "idempotency_key"),
    invalid("idempotency_key-not_allowed_characters", changed(idempotency_key="a b/c"), "idempotency_key"),
    invalid("uses-negative", changed(uses=-1), "uses"),
    invalid("uses-two", changed(uses=2), "uses"),
    invalid("currency-unknown", changed(attributed_revenue=Money(currency_code="XXY", minor_units=1)), CURRENCY),
    invalid("currency-punctuation", changed(attributed_revenue=Money(currency_code="usd?", minor_units=1)), CURRENCY),
    invalid(
        "revenue-negative",
        changed(attributed_revenue=Money(currency_code="USD", minor_units=-1)),
        "attributed_revenue.minor_units",
    ),
    invalid("duration-over_a_day", changed(duration=seconds(24 * 3600, 1)), "duration"),
    invalid("happen_time-missing", changed(happen_time=None), "happen_time"),
    invalid("receipt-missing", changed(receipt=None), "receipt"),
    invalid("receipt-a_grant", changed(receipt=lambda scene: scene.grant.envelope), "receipt.payload_type"),
    invalid("character_id-missing", changed(character_id=""), "character_id"),
    BadRecord(
        "receipt-another_licensees", another_licensees_receipt, "PERMISSION_DENIED", "RECEIPT_WRONG_LICENSEE", ()
    ),
    invalid("receipt-altered_payload", altered_receipt, "receipt", reason="RECEIPT_INVALID"),
    invalid(
        "receipt-signed_by_another_key_under_the_real_id",
        resigned_receipt(lambda scene: scene.receipt.signatures[0].keyid),
        "receipt",
        reason="RECEIPT_INVALID",
    ),
    invalid(
        "receipt-signed_by_an_unknown_key",
        resigned_receipt(lambda scene: f"sk_{unique('')[:16]:0>16}"),
        "receipt",
        reason="RECEIPT_INVALID",
    ),
    BadRecord(
        "character-denied",
        denied_characters_receipt,
        "FAILED_PRECONDITION",
        "RECEIPT_DOES_NOT_ALLOW_CHARACTER",
        (),
    ),
    BadRecord(
        "character-not_in_the_receipt",
        character_not_in_the_receipt,
        "FAILED_PRECONDITION",
        "RECEIPT_DOES_NOT_ALLOW_CHARACTER",
        (),
    ),
    BadRecord(
        "character-allowed_in_a_denied_request",
        receipt_of_a_denied_request,
        "FAILED_PRECONDITION",
        "RECEIPT_DOES_NOT_ALLOW_CHARACTER",
        (),
    ),
    invalid(
        "currency-not_the_fees",
        changed(attributed_revenue=Money(currency_code="JPY", minor_units=100)),
        CURRENCY,
        reason="CURRENCY_MISMATCH",
    ),
    # Older than the window, and before the decision too: the window is checked first.
    invalid(
        "happen_time-too_old",
        changed(happen_time=happening(-timedelta(days=60, seconds=1))),
        "happen_time",
        reason="USAGE_TOO_OLD",
    ),
    invalid(
        "happen_time-in_the_future",
        changed(happen_time=happening(timedelta(minutes=5, seconds=5))),
        "happen_time",
        reason="USAGE_TIME_INVALID",
    ),
    invalid(
        "happen_time-before_the_decision",
        changed(happen_time=happening(-timedelta(minutes=5, seconds=1), since_decision=True)),
        "happen_time",
        reason="USAGE_TIME_INVALID",
    ),
]


@pytest.mark.parametrize("bad", BAD_RECORDS, ids=str)
def test_a_bad_record_is_refused_with_its_reason_and_records_nothing(
    api: Stubs, usage: UsageStub, keys: Any, clock: Any, bad: BadRecord
) -> None:
    scene = new_scene(api, keys, clock)
    good = record(scene.receipt, scene.character_id, clock.now(), duration=seconds(5), revenue=("USD", 1_234))
    sent_record = bad.make(scene, good)

    (refused_result,) = report(usage, keys.generator, sent_record)
    nothing = everything(usage, keys.admin, scene.holder.id, clock)
    (accepted,) = report(usage, keys.generator, good)  # the receipt's use, and the key, are still free
    after = statement(usage, keys.admin, scene.holder.id, month_of(good.happen_time.ToDatetime(tzinfo=UTC)))

    assert (refused_result.index, refused_result.idempotency_key) == (0, sent_record.idempotency_key)
    assert rejection(refused_result) == (REJECTED, bad.code, bad.reason, bad.fields)
    assert refused_result.error_message
    assert all(v.description for v in refused_result.field_violations)
    assert (refused_result.usage_id, refused_result.statement_period, refused_result.duplicate) == ("", "", False)
    assert not refused_result.HasField("accept_time")
    assert (list(nothing.lines), list(nothing.totals)) == ([], [])
    assert (accepted.status, accepted.duplicate) == (ACCEPTED, False)
    assert sums(after.lines) == [
        Line(
            character_id=scene.character_id,
            licensee_id=keys.licensee_id,
            currency_code="USD",
            records=1,
            uses=1,
            duration_milliseconds=5_000,
            revenue_minor_units=1_234,
            revenue_share_minor_units=123,
            fee_minor_units=25,
            owed_minor_units=148,
        )
    ]


def test_records_just_inside_the_time_window_are_accepted(
    api: Stubs, usage: UsageStub, keys: Any, moved_clock: Any
) -> None:
    scene = new_scene(api, keys, moved_clock)
    decided = decide_time(scene.receipt)
    other = character(api, keys, moved_clock, scene.holder, terms(revenue_share_bps=1_000, per_use_fee=USD_FEE))
    later = receipt(api, keys.generator, scene.character_id, other)
    skew = timedelta(minutes=5)

    (in_the_skew_before,) = report(
        usage, keys.generator, record(scene.receipt, scene.character_id, decided - skew + timedelta(seconds=2))
    )
    (in_the_skew_ahead,) = report(
        usage, keys.generator, record(later, scene.character_id, moved_clock.now() + skew - timedelta(seconds=2))
    )
    move_to(moved_clock, decided + timedelta(days=60) - timedelta(minutes=1))
    (at_the_end_of_the_window,) = report(usage, keys.generator, record(later, other, decided + timedelta(seconds=1)))
    moved_clock.advance(timedelta(minutes=2))
    (just_past_it,) = report(usage, keys.generator, record(later, other, decided + timedelta(seconds=1), uses=0))

    assert [r.status for r in (in_the_skew_before, in_the_skew_ahead, at_the_end_of_the_window)] == [ACCEPTED] * 3
    assert rejection(just_past_it) == (REJECTED, "INVALID_ARGUMENT", "USAGE_TOO_OLD", ("happen_time",))


def test_one_bad_record_in_a_batch_fails_alone(api: Stubs, usage: UsageStub, keys: Any, clock: Any) -> None:
    scene = new_scene(api, keys, clock)
    other = character(api, keys, clock, scene.holder, terms(revenue_share_bps=1_000, per_use_fee=USD_FEE))
    envelope = receipt(api, keys.generator, scene.character_id, other)
    now = clock.now()
    batch = [
        record(envelope, scene.character_id, now, revenue=("USD", 100)),
        record(envelope, other, now + timedelta(minutes=10), revenue=("USD", 100)),
        record(envelope, other, now, revenue=("USD", 100)),
        record(envelope, scene.character_id, now, revenue=("USD", 100)),
        record(scene.receipt, scene.character_id, now, revenue=("USD", 100)),
        record(envelope, "chr_nope", now),
        record(scene.receipt, scene.character_id, now, uses=0, revenue=("JPY", 100)),
    ]

    results = report(usage, keys.generator, *batch)
    got = statement(usage, keys.admin, scene.holder.id, month_of(now))

    assert [(r.index, r.idempotency_key) for r in results] == [(i, r.idempotency_key) for i, r in enumerate(batch)]
    assert [rejection(r) for r in results] == [
        (ACCEPTED, "", "", ()),
        (REJECTED, "INVALID_ARGUMENT", "USAGE_TIME_INVALID", ("happen_time",)),
        (ACCEPTED, "", "", ()),
        (REJECTED, "FAILED_PRECONDITION", "RECEIPT_CONSUMED", ()),
        (ACCEPTED, "", "", ()),
        (REJECTED, "INVALID_ARGUMENT", "INVALID_FIELD", ("character_id",)),
        (REJECTED, "INVALID_ARGUMENT", "CURRENCY_MISMATCH", (CURRENCY,)),
    ]
    assert [(line.character_id, line.records, line.revenue_minor_units) for line in got.lines] == sorted(
        [(scene.character_id, 2, 200), (other, 1, 100)]
    )


def test_an_empty_or_oversized_report_is_refused_as_a_whole(
    api: Stubs, usage: UsageStub, keys: Any, clock: Any
) -> None:
    scene = new_scene(api, keys, clock)
    now = clock.now()
    # 1,000 records are a batch answered record by record: all but the last are bad (two uses).
    parts = [record(scene.receipt, scene.character_id, now, uses=2) for _ in range(1_000)]
    parts[-1].uses = 1
    one_more = record(scene.receipt, scene.character_id, now, uses=0)

    empty = refused(usage.ReportUsage, us.ReportUsageRequest(), keys.generator)
    oversized = refused(usage.ReportUsage, us.ReportUsageRequest(records=[*parts, one_more]), keys.generator)
    nothing = everything(usage, keys.admin, scene.holder.id, clock)
    most = report(usage, keys.generator, *parts)
    got = statement(usage, keys.admin, scene.holder.id, month_of(now))

    assert (empty.code, empty.reason, empty.fields) == (INVALID_ARGUMENT, "INVALID_FIELD", ("records",))
    assert (oversized.code, oversized.reason, oversized.fields) == (INVALID_ARGUMENT, "INVALID_FIELD", ("records",))
    assert (list(nothing.lines), list(nothing.totals)) == ([], [])
    assert [(r.index, r.idempotency_key) for r in most] == [(i, r.idempotency_key) for i, r in enumerate(parts)]
    assert [rejection(r) for r in most] == [(REJECTED, "INVALID_ARGUMENT", "INVALID_FIELD", ("uses",))] * 999 + [
        (ACCEPTED, "", "", ())
    ]
    (line,) = got.lines
    assert (line.currency_code, line.records, line.uses, line.fee_minor_units) == ("USD", 1, 1, 25)


# One use per receipt and character --------------------------------------------------------------


def test_a_receipt_covers_one_use_of_each_character_it_allowed(
    api: Stubs, usage: UsageStub, keys: Any, clock: Any
) -> None:
    scene = new_scene(api, keys, clock)
    other = character(api, keys, clock, scene.holder, terms(revenue_share_bps=1_000, per_use_fee=USD_FEE))
    envelope = receipt(api, keys.generator, scene.character_id, other)
    now = clock.now()
    parts = [record(envelope, scene.character_id, now, uses=0, duration=seconds(10)) for _ in range(2)]
    the_use = record(envelope, scene.character_id, now, duration=seconds(10))
    once_more = record(envelope, scene.character_id, now)
    a_late_part = record(envelope, scene.character_id, now, uses=0)
    the_other_use = record(envelope, other, now)
    fresh = receipt(api, keys.generator, other)
    both_at_once = [record(fresh, other, now), record(fresh, other, now)]

    first_parts = report(usage, keys.generator, *parts)
    (used,) = report(usage, keys.generator, the_use)
    (consumed,) = report(usage, keys.generator, once_more)
    (too_late,) = report(usage, keys.generator, a_late_part)
    (other_used,) = report(usage, keys.generator, the_other_use)
    (resent,) = report(usage, keys.generator, the_use)
    in_one_batch = report(usage, keys.generator, *both_at_once)
    got = statement(usage, keys.admin, scene.holder.id, month_of(now))

    consumed_answer = (REJECTED, "FAILED_PRECONDITION", "RECEIPT_CONSUMED", ())
    assert [r.status for r in (*first_parts, used, other_used)] == [ACCEPTED] * 4
    assert rejection(consumed) == rejection(too_late) == consumed_answer
    assert (resent.status, resent.duplicate, resent.usage_id) == (ACCEPTED, True, used.usage_id)
    assert [rejection(r) for r in in_one_batch] == [(ACCEPTED, "", "", ()), consumed_answer]
    assert [(line.character_id, line.records, line.uses, line.duration_milliseconds) for line in got.lines] == sorted(
        [(scene.character_id, 3, 1, 30_000), (other, 2, 2, 0)]
    )


def test_concurrent_reports_of_one_use_under_different_keys_count_it_once(
    api: Stubs, usage: UsageStub, keys: Any, clock: Any
) -> None:
    scene = new_scene(api, keys, clock)
    counted = 0

    for round_number in range(3):
        envelope = receipt(api, keys.generator, scene.character_id)
        attempts = [
            [record(envelope, scene.character_id, clock.now(), revenue=("USD", 1_000 * round_number + n))]
            for n in range(6)
        ]

        responses = deliver_concurrently(usage, keys.generator, attempts)

        outcomes = [results[0] for results in responses]
        accepted = [r for r in outcomes if r.status == ACCEPTED]
        assert len(accepted) == 1, outcomes
        assert [rejection(r) for r in outcomes if r.status != ACCEPTED] == [
            (REJECTED, "FAILED_PRECONDITION", "RECEIPT_CONSUMED", ())
        ] * 5
        (winner,) = [a[0] for a in attempts if a[0].idempotency_key == accepted[0].idempotency_key]
        counted += winner.attributed_revenue.minor_units

    (line,) = statement(usage, keys.admin, scene.holder.id, month_of(clock.now())).lines
    assert (line.records, line.uses, line.revenue_minor_units, line.fee_minor_units) == (3, 3, counted, 75)


@contextmanager
def private_server(server: CharterServer, clock: Any, tmp_path: Path) -> Iterator[tuple[Stubs, UsageStub, str]]:
    """A server over an empty database of the session's backend, for rows that must not reach the
    session's database; its stubs and a bootstrap admin secret."""
    url = server.settings.database_url
    name = f"charter_usage_{uuid.uuid4().hex[:12]}"
    admin_url = url.replace("postgresql+psycopg://", "postgresql://")
    if url.startswith("sqlite"):
        own_url = f"sqlite:///{tmp_path / 'own.db'}"
    else:
        import psycopg

        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        own_url = f"{url.rpartition('/')[0]}/{name}"
    settings = dataclasses.replace(server.settings, database_url=own_url, migrate=True)
    started = build_server(settings, clock=clock)
    started.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{started.port}") as opened:
            grpc.channel_ready_future(opened).result(timeout=10)
            admin = started.services.access.create_bootstrap_admin("usage test admin").secret
            yield stubs(opened), UsageStub(opened), admin
    finally:
        started.stop(grace=0)
        if not url.startswith("sqlite"):
            import psycopg

            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_line_of_the_largest_amounts_adds_up_exactly(server: CharterServer, clock: Any, tmp_path: Path) -> None:
    """Ten records of the largest revenue at a 100 % share: each product fits 64 bits, their sum
    does not. On a server of its own, so that such a line never reaches the session's statements."""
    with private_server(server, clock, tmp_path) as (own_api, own_usage, admin):
        holder = new_holder(own_api.catalog, own_api.access, admin)
        character_id = opted_in_character(own_api, holder, terms(revenue_share_bps=10_000))
        licensee_id = new_licensee(own_api, admin)
        secret = generator_key(own_api, admin, licensee_id)
        issue(own_api, admin, clock, character_id, licensee_id)
        envelope = receipt(own_api, secret, character_id)
        now = clock.now()
        largest = [record(envelope, character_id, now, uses=0, revenue=("USD", 10**14)) for _ in range(10)]

        results = report(own_usage, secret, *largest)
        got = statement(own_usage, admin, holder.id, month_of(now))

    assert [r.status for r in results] == [ACCEPTED] * 10
    (line,) = got.lines
    assert (line.records, line.revenue_minor_units, line.revenue_share_minor_units, line.owed_minor_units) == (
        10,
        10**15,
        10**15,
        10**15,
    )


def test_a_statement_month_holds_at_most_its_bound_of_revenue_and_stays_computable(
    api: Stubs, usage: UsageStub, keys: Any, clock: Any
) -> None:
    """10**17 minor units of revenue per rights holder, month and currency (ten licensees at their
    own bound of 10**16: 100 records each at the per-record maximum of 10**14): one more unit is
    refused with a reason of its own, a record without money is still accepted, and every view of
    the statement answers."""
    holder = new_holder(api.catalog, api.access, keys.admin)
    licensees = [new_licensee(api, keys.admin) for _ in range(9)]
    character_id = character(api, keys, clock, holder, terms(revenue_share_bps=10_000), keys.licensee_id, *licensees)
    secrets = [keys.generator, *(generator_key(api, keys.admin, licensee_id) for licensee_id in licensees)]
    now = clock.now()

    filled = [
        report(
            usage, secret, *(record(envelope, character_id, now, uses=0, revenue=("USD", 10**14)) for _ in range(100))
        )
        for secret in secrets
        for envelope in [receipt(api, secret, character_id)]
    ]
    last = receipt(api, keys.generator, character_id)
    over = report(
        usage,
        keys.generator,
        record(last, character_id, now, uses=0, revenue=("USD", 1)),
        record(last, character_id, now, uses=0, revenue=("GBP", 1)),
        record(last, character_id, now, uses=1),
    )
    month = statement(usage, holder.secret, holder.id, month_of(now))
    mine = statement(usage, keys.generator, holder.id, month_of(now))
    days = statement(usage, keys.admin, holder.id, start=now.date(), end=now.date())
    listed = [s for page in list_pages(usage, keys.admin, rights_holder_id=holder.id) for s in page.statements]

    assert [r.status for batch in filled for r in batch] == [ACCEPTED] * 1000
    assert [rejection(r)[:3] for r in over] == [
        (REJECTED, "FAILED_PRECONDITION", "STATEMENT_AMOUNT_LIMIT"),
        (ACCEPTED, "", ""),
        (ACCEPTED, "", ""),
    ]
    usd = [(t.revenue_minor_units, t.owed_minor_units) for t in month.totals if t.currency_code == "USD"]
    assert usd == [(10**17, 10**17)]
    assert [t.owed_minor_units for t in mine.totals if t.currency_code == "USD"] == [10**16]
    assert [t.revenue_minor_units for t in days.totals if t.currency_code == "USD"] == [10**17]
    assert [(s.period, len(s.totals)) for s in listed] == [(month_of(now), len(month.totals))]


def test_one_licensee_at_its_bound_leaves_the_month_open_to_the_others(
    api: Stubs, usage: UsageStub, keys: Any, clock: Any
) -> None:
    """A licensee's records add at most 10**16 minor units to a rights holder's statement month in
    a currency: beyond that its money records are refused, while another licensee's are accepted
    into the same month (one licensee cannot take the whole month's bound)."""
    holder = new_holder(api.catalog, api.access, keys.admin)
    other = new_licensee(api, keys.admin)
    character_id = character(api, keys, clock, holder, terms(revenue_share_bps=10_000), keys.licensee_id, other)
    other_secret = generator_key(api, keys.admin, other)
    now = clock.now()
    first = receipt(api, keys.generator, character_id)
    filled = report(
        usage, keys.generator, *(record(first, character_id, now, uses=0, revenue=("USD", 10**14)) for _ in range(100))
    )
    second = receipt(api, keys.generator, character_id)

    refused_again = report(usage, keys.generator, record(second, character_id, now, uses=0, revenue=("USD", 1)))
    others = report(
        usage,
        other_secret,
        record(receipt(api, other_secret, character_id), character_id, now, revenue=("USD", 10**14)),
    )
    month = statement(usage, keys.admin, holder.id, month_of(now))

    assert [r.status for r in filled] == [ACCEPTED] * 100
    assert [rejection(r)[:3] for r in refused_again] == [(REJECTED, "FAILED_PRECONDITION", "STATEMENT_AMOUNT_LIMIT")]
    assert [r.status for r in others] == [ACCEPTED]
    assert [t.revenue_minor_units for t in month.totals if t.currency_code == "USD"] == [10**16 + 10**14]


def test_the_months_amounts_are_the_sums_of_the_records_accepted_and_nothing_else(
    api: Stubs, usage: UsageStub, keys: Any, clock: Any, server: CharterServer
) -> None:
    """The rows per statement month, currency and licensee that the bounds are checked against (no sum over the
    month's records) gains exactly what is accepted: not a duplicate, a batch sent three times at
    once, a repeat within a batch, or a record refused after it was inserted (a consumed receipt)."""
    holder = new_holder(api.catalog, api.access, keys.admin)
    character_id = character(api, keys, clock, holder, terms(revenue_share_bps=1_500, per_use_fee=USD_FEE))
    no_fee = character(api, keys, clock, holder, terms(revenue_share_bps=1_000))
    now = clock.now()
    envelopes = [receipt(api, keys.generator, character_id) for _ in range(2)]
    first = record(envelopes[0], character_id, now, revenue=("USD", 1_000))
    batch = [
        record(envelopes[1], character_id, now, revenue=("USD", 250)),
        record(receipt(api, keys.generator, no_fee), no_fee, now, uses=0, revenue=("EUR", 7)),
    ]

    report(usage, keys.generator, first, first)
    deliver_concurrently(usage, keys.generator, [batch] * 3)
    report(usage, keys.generator, record(envelopes[0], character_id, now, revenue=("USD", 5)))  # consumed
    with server.db.uow() as uow:
        kept = uow.statements.month_amounts([(holder.id, month_of(now))])

    fee = USD_FEE.minor_units
    assert kept == {
        (holder.id, month_of(now), "USD", keys.licensee_id): (1_250, 2 * fee),
        (holder.id, month_of(now), "EUR", keys.licensee_id): (7, 0),
    }


def test_a_receipt_takes_at_most_100_records_of_a_character(
    api: Stubs, usage: UsageStub, keys: Any, clock: Any
) -> None:
    """Parts of a use reported before it (no use of their own) are limited per receipt and
    character; the use itself is still taken after them."""
    holder = new_holder(api.catalog, api.access, keys.admin)
    character_id = character(api, keys, clock, holder)
    envelope = receipt(api, keys.generator, character_id)
    now = clock.now()

    parts = report(usage, keys.generator, *(record(envelope, character_id, now, uses=0) for _ in range(100)))
    one_more = report(usage, keys.generator, record(envelope, character_id, now, uses=0))
    the_use = report(usage, keys.generator, record(envelope, character_id, now, uses=1))
    part_after_the_use = report(usage, keys.generator, record(envelope, character_id, now, uses=0))

    assert [r.status for r in parts] == [ACCEPTED] * 100
    assert [rejection(r)[:3] for r in one_more] == [(REJECTED, "FAILED_PRECONDITION", "RECEIPT_RECORD_LIMIT")]
    assert [r.status for r in the_use] == [ACCEPTED]
    # As charter.usage.UsageReport says: no part is taken once the use is reported.
    assert [rejection(r)[:3] for r in part_after_the_use] == [(REJECTED, "FAILED_PRECONDITION", "RECEIPT_CONSUMED")]


# Who may report and read ------------------------------------------------------------------------


@pytest.mark.parametrize("caller", ["admin", "rights_holder", "auditor"])
def test_only_generator_keys_may_report_usage(api: Stubs, usage: UsageStub, keys: Any, clock: Any, caller: str) -> None:
    scene = new_scene(api, keys, clock)
    good = record(scene.receipt, scene.character_id, clock.now())

    denied = refused(usage.ReportUsage, us.ReportUsageRequest(records=[good]), getattr(keys, caller))
    nothing = everything(usage, keys.admin, scene.holder.id, clock)
    (accepted,) = report(usage, keys.generator, good)

    assert (denied.code, denied.reason) == (PERMISSION_DENIED, "ROLE_NOT_PERMITTED")
    assert list(nothing.lines) == []
    assert (accepted.status, accepted.duplicate) == (ACCEPTED, False)


def test_a_rights_holder_key_reads_only_its_own_statements(api: Stubs, usage: UsageStub, keys: Any, clock: Any) -> None:
    scene = new_scene(api, keys, clock)
    neighbour = new_holder(api.catalog, api.access, keys.admin)
    now = clock.now()
    report(usage, keys.generator, record(scene.receipt, scene.character_id, now, revenue=("USD", 10)))
    period = month_of(now)
    missing = ids.new_id("rights_holder")

    by_staff = statement(usage, keys.admin, scene.holder.id, period)
    by_auditor = statement(usage, keys.auditor, scene.holder.id, period)
    by_owner = statement(usage, scene.holder.secret, scene.holder.id, period)
    by_owner_range = statement(usage, scene.holder.secret, scene.holder.id, start=now.date(), end=now.date())
    owner_list = list_pages(usage, scene.holder.secret)
    neighbour_list = list_pages(usage, neighbour.secret)
    failures = {
        "another": refused(
            usage.GetStatement,
            us.GetStatementRequest(rights_holder_id=scene.holder.id, period=period),
            neighbour.secret,
        ),
        "missing": refused(
            usage.GetStatement, us.GetStatementRequest(rights_holder_id=missing, period=period), neighbour.secret
        ),
        "another_range": refused(
            usage.GetStatement,
            us.GetStatementRequest(
                rights_holder_id=scene.holder.id, start_date=now.date().isoformat(), end_date=now.date().isoformat()
            ),
            neighbour.secret,
        ),
        "listing_another": refused(
            usage.ListStatements, us.ListStatementsRequest(rights_holder_id=scene.holder.id), neighbour.secret
        ),
        "listing_missing": refused(
            usage.ListStatements, us.ListStatementsRequest(rights_holder_id=missing), neighbour.secret
        ),
    }

    assert serialized(by_auditor) == serialized(by_owner) == serialized(by_staff)
    assert len(by_staff.lines) == 1
    assert [line.revenue_minor_units for line in by_owner_range.lines] == [10]
    assert [(s.rights_holder_id, s.period, list(s.totals)) for page in owner_list for s in page.statements] == [
        (scene.holder.id, period, list(by_staff.totals))
    ]
    assert [s for page in neighbour_list for s in page.statements] == []
    assert {name: (got.code, got.reason) for name, got in failures.items()} == dict.fromkeys(
        failures, (PERMISSION_DENIED, "RESOURCE_NOT_OWNED")
    )


def test_a_generator_key_sees_only_its_own_licensees_lines(api: Stubs, usage: UsageStub, keys: Any, clock: Any) -> None:
    holder = new_holder(api.catalog, api.access, keys.admin)
    licensees = [new_licensee(api, keys.admin) for _ in range(2)]
    secrets = [generator_key(api, keys.admin, licensee_id) for licensee_id in licensees]
    character_id = character(api, keys, clock, holder, terms(revenue_share_bps=2_000), *licensees)
    now = clock.now()
    for n, secret in enumerate(secrets):
        envelope = receipt(api, secret, character_id)
        report(usage, secret, record(envelope, character_id, now, revenue=("USD", 100 * (n + 1))))
    period = month_of(now)
    mine, theirs = licensees

    full = statement(usage, keys.admin, holder.id, period)
    as_mine = statement(usage, secrets[0], holder.id, period)
    as_mine_named = statement(usage, secrets[0], holder.id, period, licensee_id=mine)
    staff_filtered = statement(usage, keys.admin, holder.id, period, licensee_id=mine)
    as_mine_range = statement(usage, secrets[0], holder.id, start=now.date(), end=now.date())
    listed = list_pages(usage, secrets[0], rights_holder_id=holder.id)
    staff_listed = list_pages(usage, keys.admin, rights_holder_id=holder.id, licensee_id=mine)
    not_mine = refused(
        usage.GetStatement,
        us.GetStatementRequest(rights_holder_id=holder.id, period=period, licensee_id=theirs),
        secrets[0],
    )
    not_mine_listed = refused(usage.ListStatements, us.ListStatementsRequest(licensee_id=theirs), secrets[0])

    assert [(line.licensee_id, line.revenue_minor_units) for line in full.lines] == sorted([(mine, 100), (theirs, 200)])
    assert (as_mine.licensee_id, [line.licensee_id for line in as_mine.lines]) == (mine, [mine])
    assert list(as_mine.lines) == [line for line in full.lines if line.licensee_id == mine]
    assert list(as_mine.totals) == expected_totals(as_mine.lines)
    assert serialized(as_mine_named) == serialized(as_mine) == serialized(staff_filtered)
    assert (as_mine_range.licensee_id, [line.licensee_id for line in as_mine_range.lines]) == (mine, [mine])
    assert [(s.licensee_id, list(s.totals)) for page in listed for s in page.statements] == [
        (mine, list(as_mine.totals))
    ]
    assert [serialized(s) for page in staff_listed for s in page.statements] == [
        serialized(s) for page in listed for s in page.statements
    ]
    assert (not_mine.code, not_mine.reason) == (PERMISSION_DENIED, "RESOURCE_NOT_OWNED")
    assert (not_mine_listed.code, not_mine_listed.reason) == (PERMISSION_DENIED, "RESOURCE_NOT_OWNED")


def test_only_admins_close_statement_periods(api: Stubs, usage: UsageStub, keys: Any, moved_clock: Any) -> None:
    scene = new_scene(api, keys, moved_clock)
    now = moved_clock.now()
    report(usage, keys.generator, record(scene.receipt, scene.character_id, now))
    period = month_of(now)
    move_to(moved_clock, first_of_month(now, 1) + timedelta(hours=12))
    request = us.CloseStatementPeriodRequest(rights_holder_id=scene.holder.id, period=period)

    failures = {
        caller: refused(usage.CloseStatementPeriod, request, secret)
        for caller, secret in (
            ("auditor", keys.auditor),
            ("generator", keys.generator),
            ("its_own_rights_holder", scene.holder.secret),
        )
    }
    still_open = statement(usage, keys.admin, scene.holder.id, period)
    closed = close(usage, keys.admin, scene.holder.id, period)

    assert {caller: (got.code, got.reason) for caller, got in failures.items()} == dict.fromkeys(
        failures, (PERMISSION_DENIED, "ROLE_NOT_PERMITTED")
    )
    assert (still_open.state, still_open.HasField("close_time")) == (OPEN, False)
    assert (closed.state, list(closed.lines)) == (CLOSED, list(still_open.lines))


def test_an_unknown_rights_holder_is_not_found(usage: UsageStub, keys: Any) -> None:
    missing = ids.new_id("rights_holder")
    reading = us.GetStatementRequest(rights_holder_id=missing, period="2020-01")

    failures = {
        "get_as_admin": refused(usage.GetStatement, reading, keys.admin),
        "get_as_auditor": refused(usage.GetStatement, reading, keys.auditor),
        "get_a_range": refused(
            usage.GetStatement,
            us.GetStatementRequest(rights_holder_id=missing, start_date="2020-01-01", end_date="2020-01-31"),
            keys.admin,
        ),
        "close": refused(
            usage.CloseStatementPeriod,
            us.CloseStatementPeriodRequest(rights_holder_id=missing, period="2020-01"),
            keys.admin,
        ),
    }
    listed = list_pages(usage, keys.admin, rights_holder_id=missing)

    assert {name: (got.code, got.reason) for name, got in failures.items()} == dict.fromkeys(
        failures, (NOT_FOUND, "RIGHTS_HOLDER_NOT_FOUND")
    )
    assert [s for page in listed for s in page.statements] == []


def test_a_generator_is_refused_alike_for_a_missing_and_an_unrelated_rights_holder(
    api: Stubs, usage: UsageStub, keys: Any, clock: Any
) -> None:
    """A generator key learns neither who exists nor their names from statements and series: a
    rights holder its licensee never held a grant from is answered as one that does not exist.
    One it holds (or held) a grant from is read with its name."""
    stranger = new_holder(api.catalog, api.access, keys.admin)
    related = new_holder(api.catalog, api.access, keys.admin)
    character(api, keys, clock, related)
    today = clock.now().date().isoformat()

    def asked(holder_id: str) -> dict[str, tuple[grpc.StatusCode, str]]:
        month = us.GetStatementRequest(rights_holder_id=holder_id, period=month_of(clock.now()))
        days = us.GetStatementRequest(rights_holder_id=holder_id, start_date=today, end_date=today)
        series = us.GetUsageSeriesRequest(rights_holder_id=holder_id, start_date=today, end_date=today)
        failures = {
            "month": refused(usage.GetStatement, month, keys.generator),
            "range": refused(usage.GetStatement, days, keys.generator),
            "series": refused(usage.GetUsageSeries, series, keys.generator),
        }
        return {name: (got.code, got.reason) for name, got in failures.items()}

    unrelated, missing = asked(stranger.id), asked(ids.new_id("rights_holder"))
    readable = statement(usage, keys.generator, related.id, month_of(clock.now()))
    series = usage.GetUsageSeries(
        us.GetUsageSeriesRequest(rights_holder_id=related.id, start_date=today, end_date=today),
        metadata=auth(keys.generator),
    )

    assert (
        unrelated == missing == dict.fromkeys(("month", "range", "series"), (PERMISSION_DENIED, "RESOURCE_NOT_OWNED"))
    )
    assert readable.rights_holder_display_name == series.rights_holder_display_name != ""


def test_a_date_range_may_cover_a_leap_year_but_no_more(api: Stubs, usage: UsageStub, keys: Any) -> None:
    holder = new_holder(api.catalog, api.access, keys.admin)

    leap_year = statement(usage, keys.admin, holder.id, start=date(2028, 1, 1), end=date(2028, 12, 31))
    too_long = refused(
        usage.GetStatement,
        us.GetStatementRequest(rights_holder_id=holder.id, start_date="2028-01-01", end_date="2029-01-02"),
        keys.admin,
    )

    assert (leap_year.state, leap_year.period, leap_year.start_date, leap_year.end_date) == (
        RANGE,
        "",
        "2028-01-01",
        "2028-12-31",
    )
    assert (too_long.code, too_long.reason, too_long.fields) == (INVALID_ARGUMENT, "INVALID_FIELD", ("end_date",))


def test_a_month_or_day_past_the_last_year_is_invalid_and_the_last_one_works(
    api: Stubs, usage: UsageStub, keys: Any
) -> None:
    """The day after the last month or day must still be a date: 9999-12 and 9999-12-31 are refused
    as invalid fields, 9998-12 and 9998-12-31 are read (and cannot be closed yet)."""
    holder = new_holder(api.catalog, api.access, keys.admin)

    failures = {
        "get_month": refused(
            usage.GetStatement, us.GetStatementRequest(rights_holder_id=holder.id, period="9999-12"), keys.admin
        ),
        "close_month": refused(
            usage.CloseStatementPeriod,
            us.CloseStatementPeriodRequest(rights_holder_id=holder.id, period="9999-01"),
            keys.admin,
        ),
        "get_range": refused(
            usage.GetStatement,
            us.GetStatementRequest(rights_holder_id=holder.id, start_date="9999-12-31", end_date="9999-12-31"),
            keys.admin,
        ),
    }
    last_month = statement(usage, keys.admin, holder.id, "9998-12")
    last_day = statement(usage, keys.admin, holder.id, start=date(9998, 12, 31), end=date(9998, 12, 31))
    not_ended = refused(
        usage.CloseStatementPeriod,
        us.CloseStatementPeriodRequest(rights_holder_id=holder.id, period="9998-12"),
        keys.admin,
    )

    assert {name: (got.code, got.reason, got.fields) for name, got in failures.items()} == {
        "get_month": (INVALID_ARGUMENT, "INVALID_FIELD", ("period",)),
        "close_month": (INVALID_ARGUMENT, "INVALID_FIELD", ("period",)),
        "get_range": (INVALID_ARGUMENT, "INVALID_FIELD", ("start_date", "end_date")),
    }
    assert (last_month.start_date, last_month.end_date) == ("9998-12-01", "9998-12-31")
    assert (last_day.start_date, last_day.end_date) == ("9998-12-31", "9998-12-31")
    assert (not_ended.code, not_ended.reason) == (FAILED_PRECONDITION, "STATEMENT_PERIOD_NOT_ENDED")


# Statements against an independent computation --------------------------------------------------


@dataclass(frozen=True)
class Priced:
    """A character's terms: its revenue share and its per-use fee (if any)."""

    bps: int
    fee: Money | None


def random_revenue(rng: random.Random, fee: Money | None) -> tuple[str, int] | None:
    """Mostly in the fee's currency (or in USD or GBP without a fee), sometimes none; often amounts
    ending in 5, so that shares land on the half."""
    if rng.random() < 0.2:
        return None
    currency = fee.currency_code if fee is not None else rng.choice(["USD", "GBP"])
    amount = rng.choice([rng.randint(0, 50_000), rng.choice([5, 15, 25, 125, 2_005, 1_000_005]), rng.randint(0, 99)])
    return currency, amount


def test_a_month_and_a_date_range_equal_an_independent_computation(
    api: Stubs, usage: UsageStub, keys: Any, moved_clock: Any
) -> None:
    month = first_of_month(moved_clock.now(), 3)  # a month of its own: nothing else happens in it
    move_to(moved_clock, month + timedelta(hours=1))
    holder = new_holder(api.catalog, api.access, keys.admin)
    licensees = [new_licensee(api, keys.admin) for _ in range(2)]
    secrets = {licensee_id: generator_key(api, keys.admin, licensee_id) for licensee_id in licensees}
    priced = [
        Priced(1_000, Money(currency_code="USD", minor_units=25)),
        Priced(2_500, Money(currency_code="JPY", minor_units=300)),
        Priced(5_000, Money(currency_code="EUR", minor_units=10)),
        Priced(333, None),
    ]
    prices = {
        character(api, keys, moved_clock, holder, terms(revenue_share_bps=p.bps, per_use_fee=p.fee), *licensees): p
        for p in priced
    }
    rng = random.Random(20_261_121)
    first_use = month + timedelta(hours=1, minutes=5)
    last_use = month + timedelta(days=27, hours=12)
    # The range below is days 5 to 15: records at its very edges, inside and outside.
    edges = [
        month + timedelta(days=4),
        month + timedelta(days=4, microseconds=-1),
        month + timedelta(days=15, microseconds=-1),
        month + timedelta(days=15),
    ]
    batches: dict[str, list[Record]] = {licensee_id: [] for licensee_id in licensees}
    counted: list[Sent] = []
    for licensee_id, secret in secrets.items():
        for _ in range(9):
            envelope = receipt(api, secret, *prices)
            for character_id, price in prices.items():
                happen = edges.pop() if edges else first_use + (last_use - first_use) * rng.random()
                uses = 0 if rng.random() < 0.15 else 1
                duration = seconds(rng.randint(0, 3_600), rng.randrange(10**9))
                batches[licensee_id].append(
                    record(
                        envelope,
                        character_id,
                        happen,
                        uses=uses,
                        duration=duration,
                        revenue=random_revenue(rng, price.fee),
                    )
                )
    # Make one line's exact share end in .5 with an even whole part: half up differs from half to even.
    euro_character = next(c for c, p in prices.items() if p.bps == 5_000)
    euro_records = [
        r for r in batches[licensees[0]] if r.character_id == euro_character and r.HasField("attributed_revenue")
    ]
    while sum(r.attributed_revenue.minor_units for r in euro_records) % 4 != 1:
        euro_records[-1].attributed_revenue.minor_units += 1
    for licensee_id, batch in batches.items():
        counted += [sent(r, licensee_id, prices[r.character_id].bps, prices[r.character_id].fee) for r in batch]
    move_to(moved_clock, last_use + timedelta(minutes=1))

    results = {licensee_id: report(usage, secrets[licensee_id], *batch) for licensee_id, batch in batches.items()}
    got = statement(usage, keys.admin, holder.id, month_of(month))
    in_range = statement(
        usage, keys.admin, holder.id, start=(month + timedelta(days=4)).date(), end=(month + timedelta(days=14)).date()
    )
    as_first_licensee = statement(usage, secrets[licensees[0]], holder.id, month_of(month))
    listed = list_pages(usage, keys.admin, rights_holder_id=holder.id)

    lines = expected_lines(counted)
    ranged = [s for s in counted if month + timedelta(days=4) <= s.happen < month + timedelta(days=15)]
    assert len(counted) == 72 and {s.currency for s in counted} == {"USD", "JPY", "EUR", "GBP", ""}
    assert 0 < len(ranged) < len(counted)
    products: dict[tuple[str, str, str], int] = defaultdict(int)
    rounded_per_record: dict[tuple[str, str, str], int] = defaultdict(int)
    for s in counted:
        products[(s.character_id, s.licensee_id, s.currency)] += s.revenue * s.bps
        rounded_per_record[(s.character_id, s.licensee_id, s.currency)] += half_up(Fraction(s.revenue * s.bps, 10_000))
    # The data exercises the rounding: a line exactly on the half, and lines that rounding each record would get wrong.
    assert any(product % 10_000 == 5_000 for product in products.values())
    assert any(
        line.revenue_share_minor_units != rounded_per_record[key]
        for key, line in zip(sorted(products), lines, strict=True)
    )
    for licensee_id, answers in results.items():
        assert [(r.status, r.statement_period) for r in answers] == [(ACCEPTED, month_of(month))] * 36, licensee_id
    assert sums(got.lines) == lines
    assert list(got.totals) == expected_totals(lines)
    assert (got.period, got.state, got.start_date) == (month_of(month), OPEN, month.date().isoformat())
    assert sums(in_range.lines) == expected_lines(ranged)
    assert list(in_range.totals) == expected_totals(expected_lines(ranged))
    assert (in_range.period, in_range.state, in_range.HasField("close_time")) == ("", RANGE, False)
    mine = expected_lines(s for s in counted if s.licensee_id == licensees[0])
    assert (as_first_licensee.licensee_id, sums(as_first_licensee.lines)) == (licensees[0], mine)
    assert list(as_first_licensee.totals) == expected_totals(mine)
    assert [(s.period, list(s.lines), list(s.totals)) for page in listed for s in page.statements] == [
        (month_of(month), [], expected_totals(lines))
    ]


# Closing a month; late records as adjustments ----------------------------------------------------


def test_a_closed_month_is_logged_with_the_totals_of_its_statement(
    api: Stubs, usage: UsageStub, keys: Any, moved_clock: Any, channel: grpc.Channel
) -> None:
    now = moved_clock.now()
    march = first_of_month(now, (3 - now.month) % 12 or 12)  # a March ahead: its month can end by moving the clock
    move_to(moved_clock, march + timedelta(days=9, hours=12))
    holder = new_holder(api.catalog, api.access, keys.admin)
    price = Priced(1_500, Money(currency_code="JPY", minor_units=30))
    character_id = character(api, keys, moved_clock, holder, terms(revenue_share_bps=price.bps, per_use_fee=price.fee))
    sent = [
        record(receipt(api, keys.generator, character_id), character_id, march + timedelta(days=9, hours=12, minutes=n))
        for n in range(3)
    ]
    report(usage, keys.generator, *sent)
    move_to(moved_clock, first_of_month(march, 1) + timedelta(days=1))
    before = verified_checkpoint(channel, keys.auditor).checkpoint.size
    closed = close(usage, keys.admin, holder.id, month_of(march))

    logged = [
        e.statement
        for e in logged_since(
            channel,
            keys.auditor,
            before,
            1,
            lambda e: e.WhichOneof("change") == "statement" and e.statement.rights_holder_id == holder.id,
        )
    ]

    assert [(s.period, list(s.totals)) for s in logged] == [(month_of(march), list(closed.totals))]
    assert [(t.currency_code, t.uses) for t in closed.totals] == [("JPY", 3)]


def test_a_closed_month_never_changes_and_late_records_count_as_adjustments(
    api: Stubs, usage: UsageStub, keys: Any, moved_clock: Any
) -> None:
    now = moved_clock.now()
    december = first_of_month(now, (12 - now.month) or 12)  # the next December: the months after wrap the year
    january, february = first_of_month(december, 1), first_of_month(december, 2)
    november = first_of_month(december, -1)
    move_to(moved_clock, december + timedelta(days=19, hours=12))
    holder = new_holder(api.catalog, api.access, keys.admin)
    price = Priced(2_000, Money(currency_code="USD", minor_units=50))
    character_id = character(api, keys, moved_clock, holder, terms(revenue_share_bps=price.bps, per_use_fee=price.fee))
    r1, r2, r3, r4 = (receipt(api, keys.generator, character_id) for _ in range(4))
    on_time = [
        record(r1, character_id, december + timedelta(days=19, hours=12, minutes=1), revenue=("USD", 1_005)),
        record(r2, character_id, december + timedelta(days=19, hours=12, minutes=2), revenue=("USD", 333)),
    ]
    late = record(r3, character_id, december + timedelta(days=24), revenue=("USD", 777))
    later = record(r4, character_id, december + timedelta(days=27), revenue=("USD", 5))

    in_time = report(usage, keys.generator, *on_time)
    closed_november = close(usage, keys.admin, holder.id, month_of(november))
    not_ended = refused(
        usage.CloseStatementPeriod,
        us.CloseStatementPeriodRequest(rights_holder_id=holder.id, period=month_of(december)),
        keys.admin,
    )
    still_open = statement(usage, keys.admin, holder.id, month_of(december))

    move_to(moved_clock, january + timedelta(days=1, hours=12))
    before_closing = moved_clock.now()
    closed = close(usage, keys.admin, holder.id, month_of(december))
    after_closing = moved_clock.now()
    late_results = report(usage, keys.generator, late, on_time[0])
    december_after = statement(usage, keys.admin, holder.id, month_of(december))
    january_open = statement(usage, keys.admin, holder.id, month_of(january))
    closed_again = refused(
        usage.CloseStatementPeriod,
        us.CloseStatementPeriodRequest(rights_holder_id=holder.id, period=month_of(december)),
        keys.admin,
    )
    current = refused(
        usage.CloseStatementPeriod,
        us.CloseStatementPeriodRequest(rights_holder_id=holder.id, period=month_of(january)),
        keys.admin,
    )

    move_to(moved_clock, february + timedelta(days=1, hours=12))
    closed_january = close(usage, keys.admin, holder.id, month_of(january))
    (even_later,) = report(usage, keys.generator, later)
    february_open = statement(usage, keys.admin, holder.id, month_of(february))
    december_at_last = statement(usage, keys.admin, holder.id, month_of(december))
    january_at_last = statement(usage, keys.admin, holder.id, month_of(january))
    whole_december = statement(
        usage, keys.admin, holder.id, start=december.date(), end=(january - timedelta(days=1)).date()
    )
    listed = list_pages(usage, keys.admin, rights_holder_id=holder.id)
    paged = list_pages(usage, keys.admin, rights_holder_id=holder.id, page_size=1)
    as_owner = list_pages(usage, holder.secret, page_size=2)

    def counted(*records: Record) -> list[Sent]:
        return [sent(r, keys.licensee_id, price.bps, price.fee) for r in records]

    assert [(r.status, r.statement_period) for r in in_time] == [(ACCEPTED, month_of(december))] * 2
    assert (closed_november.state, list(closed_november.lines), list(closed_november.totals)) == (CLOSED, [], [])
    assert (not_ended.code, not_ended.reason) == (FAILED_PRECONDITION, "STATEMENT_PERIOD_NOT_ENDED")
    assert still_open.state == OPEN and sums(still_open.lines) == expected_lines(counted(*on_time))

    assert closed.state == CLOSED
    assert before_closing <= closed.close_time.ToDatetime(tzinfo=UTC) <= after_closing
    assert (list(closed.lines), list(closed.totals)) == (list(still_open.lines), list(still_open.totals))
    assert [(r.status, r.duplicate, r.statement_period) for r in late_results] == [
        (ACCEPTED, False, month_of(january)),
        (ACCEPTED, True, month_of(december)),
    ]
    assert serialized(december_after) == serialized(closed)
    assert january_open.state == OPEN
    assert sums(january_open.lines) == expected_lines(counted(late), adjustment_for_period=month_of(december))
    assert list(january_open.totals) == expected_totals(january_open.lines)
    assert (closed_again.code, closed_again.reason) == (FAILED_PRECONDITION, "STATEMENT_PERIOD_CLOSED")
    assert (current.code, current.reason) == (FAILED_PRECONDITION, "STATEMENT_PERIOD_NOT_ENDED")

    assert (closed_january.state, list(closed_january.lines)) == (CLOSED, list(january_open.lines))
    assert (even_later.status, even_later.statement_period) == (ACCEPTED, month_of(february))
    assert sums(february_open.lines) == expected_lines(counted(later), adjustment_for_period=month_of(december))
    assert serialized(december_at_last) == serialized(closed)
    assert serialized(january_at_last) == serialized(closed_january)
    assert sums(whole_december.lines) == expected_lines(counted(*on_time, late, later))

    statements = [s for page in listed for s in page.statements]
    assert [(s.period, s.state, list(s.lines)) for s in statements] == [
        (month_of(february), OPEN, []),
        (month_of(january), CLOSED, []),
        (month_of(december), CLOSED, []),
        (month_of(november), CLOSED, []),
    ]
    assert [list(s.totals) for s in statements] == [
        list(february_open.totals),
        list(closed_january.totals),
        list(closed.totals),
        [],
    ]
    assert [s.close_time for s in statements[1:]] == [
        closed_january.close_time,
        closed.close_time,
        closed_november.close_time,
    ]
    assert len(paged) == 4
    assert [serialized(s) for page in paged for s in page.statements] == [serialized(s) for s in statements]
    tokens = [page.next_page_token for page in paged]
    assert all(tokens[:-1]) and tokens[-1] == "" and len(set(tokens)) == 4
    assert [serialized(s) for page in as_owner for s in page.statements] == [serialized(s) for s in statements]
