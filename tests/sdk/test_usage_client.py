"""Client.report_usage, flush_usage, the statements calls, and usage reporting by license() blocks,
against a real server (see `_live`): SQLite, and PostgreSQL when reachable."""

from __future__ import annotations

import datetime as dt
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from charter import Client, FailedPreconditionError, PermissionDeniedError, RetryPolicy
from charter import envelope as dsse
from charter._options import retry_delays
from charter.decisions import Decision
from charter.usage import PendingUsage, UsageReport, UsageResult, usage_key
from charter.v1 import usage_pb2
from charter.v1.envelope_pb2 import Envelope

from ._live import USE, Live, Party, new_party, start

_PERIOD = re.compile(r"\d{4}-\d{2}")
_USAGE_ID = re.compile(r"use_[0-9a-f]{32}")


@pytest.fixture
def generator(live: Live, party: Party) -> Iterator[Client]:
    with Client(live.target, api_key=party.generator, timeout=5) as client:
        yield client


def _decide(client: Client, *character_ids: str) -> tuple[Decision, Envelope]:
    """An allowing decision for the characters, and its receipt."""
    decision = client.authorize(character_ids=character_ids, **USE)
    assert decision.allowed, decision.reasons
    assert decision.receipt is not None
    return decision, decision.receipt


def _line(statement: usage_pb2.Statement, character_id: str) -> usage_pb2.StatementLine:
    (line,) = [line for line in statement.lines if line.character_id == character_id]
    return line


def _closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# -- report_usage ---------------------------------------------------------------------------------


def test_a_use_under_an_allowing_receipt_is_accepted(generator: Client, party: Party) -> None:
    character = party.character_ids[0]
    decision, receipt = _decide(generator, character)

    (result,) = generator.report_usage([UsageReport(receipt, character)])

    assert result.accepted
    assert not result.duplicate
    assert (result.index, result.idempotency_key) == (0, usage_key(decision.receipt_id, character))
    assert _USAGE_ID.fullmatch(result.usage_id)
    assert _PERIOD.fullmatch(result.statement_period)
    assert result.accept_time is not None
    assert (result.error_code, result.error_reason, result.field_violations) == ("", "", ())


def test_the_same_report_again_is_a_duplicate_with_the_first_answer(generator: Client, party: Party) -> None:
    character = party.character_ids[0]
    _, receipt = _decide(generator, character)
    report = UsageReport(receipt, character, happen_time=dt.datetime.now(dt.UTC))

    (first,) = generator.report_usage([report])
    # The DSSE JSON form of the receipt is the same record.
    (again,) = generator.report_usage([UsageReport(dsse.to_json(receipt), character, happen_time=report.happen_time)])

    assert first.accepted
    assert not first.duplicate
    assert again.accepted
    assert again.duplicate
    assert (again.usage_id, again.statement_period, again.accept_time) == (
        first.usage_id,
        first.statement_period,
        first.accept_time,
    )


def test_a_different_record_under_a_used_key_is_rejected(generator: Client, party: Party) -> None:
    character = party.character_ids[0]
    _, receipt = _decide(generator, character)
    now = dt.datetime.now(dt.UTC)
    generator.report_usage([UsageReport(receipt, character, happen_time=now)])

    (result,) = generator.report_usage(
        [UsageReport(receipt, character, happen_time=now, duration=dt.timedelta(seconds=3))]
    )

    assert not result.accepted
    assert result.rejected
    assert (result.error_code, result.error_reason) == ("ALREADY_EXISTS", "IDEMPOTENCY_KEY_REUSED")
    assert result.usage_id == ""
    assert result.accept_time is None


def test_batches_keep_the_index_of_the_whole_list(generator: Client, party: Party, admin: Client) -> None:
    first, second = party.character_ids
    other = new_party(admin, characters=1).character_ids[0]  # never allowed by these receipts
    reports: list[UsageReport] = []
    for _ in range(3):
        _, receipt = _decide(generator, first, second)
        reports += [UsageReport(receipt, first), UsageReport(receipt, second)]
    stray = UsageReport(reports[0].receipt, other)
    sent: list[UsageReport | usage_pb2.UsageRecord] = [*reports[:3], stray.to_proto(), *reports[3:]]

    results = generator.report_usage(sent, batch_size=3)  # a UsageRecord message is sent as it is

    assert [r.index for r in results] == list(range(7))
    assert [r.idempotency_key for r in results] == [
        *(r.idempotency_key for r in reports[:3]),
        stray.idempotency_key,
        *(r.idempotency_key for r in reports[3:]),
    ]
    assert [r.accepted for r in results] == [True, True, True, False, True, True, True]
    assert (results[3].error_code, results[3].error_reason) == (
        "FAILED_PRECONDITION",
        "RECEIPT_DOES_NOT_ALLOW_CHARACTER",
    )


def test_report_usage_checks_its_arguments_before_any_call(generator: Client) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        generator.report_usage([], batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        generator.report_usage([], batch_size=1001)
    with pytest.raises(TypeError):
        generator.report_usage(["not a report"])  # type: ignore[list-item]
    assert generator.report_usage([]) == []


def test_only_a_generator_key_may_report(admin: Client, generator: Client, party: Party) -> None:
    _, receipt = _decide(generator, party.character_ids[0])

    with pytest.raises(PermissionDeniedError) as raised:
        admin.report_usage([UsageReport(receipt, party.character_ids[0])])

    assert raised.value.reason == "ROLE_NOT_PERMITTED"


# -- license() blocks -----------------------------------------------------------------------------


def test_a_clean_license_exit_reports_each_character_with_duration_and_revenue(
    generator: Client, admin: Client, party: Party
) -> None:
    first, second = party.character_ids

    with generator.license(character_ids=[first, second], **USE) as granted:
        granted.duration = dt.timedelta(seconds=12, milliseconds=500)
        granted.attribute_revenue(1000, "usd")
        granted.attribute_revenue(333, "USD", character_id=second)
        assert granted.usage_results == []  # nothing is reported before the exit

    results = granted.usage_results
    assert [r.accepted for r in results] == [True, True]
    assert [r.idempotency_key for r in results] == [
        usage_key(granted.decision.receipt_id, first),
        usage_key(granted.decision.receipt_id, second),
    ]
    assert len(generator.pending_usage) == 0
    assert generator.receipts.drain() == [granted]  # the journal still records the use
    statement = admin.get_statement(party.rights_holder_id, period=results[0].statement_period)
    assert statement.state == usage_pb2.STATEMENT_STATE_OPEN
    one, two = _line(statement, first), _line(statement, second)
    assert (one.records, one.uses, one.duration_milliseconds, one.currency_code) == (1, 1, 12_500, "USD")
    assert (one.revenue_minor_units, one.revenue_share_minor_units, one.fee_minor_units) == (1000, 150, 5)
    assert one.owed_minor_units == 155
    assert (two.revenue_minor_units, two.revenue_share_minor_units, two.owed_minor_units) == (333, 50, 55)
    (total,) = statement.totals
    assert (total.currency_code, total.records, total.owed_minor_units) == ("USD", 2, 210)
    (listed,) = admin.list_statements(rights_holder_id=party.rights_holder_id)
    assert listed.period == statement.period
    assert list(listed.lines) == []
    assert list(listed.totals) == list(statement.totals)


def test_the_reported_use_is_counted_once(generator: Client, party: Party) -> None:
    character = party.character_ids[0]
    with generator.license(character_ids=[character], **USE) as granted:
        pass
    (first,) = granted.usage_results

    # Another report of the same use under another key: the receipt's one use is taken.
    assert granted.receipt is not None
    (again,) = generator.report_usage([UsageReport(granted.receipt, character, idempotency_key="my-own-key")])

    assert first.accepted
    assert (again.error_code, again.error_reason) == ("FAILED_PRECONDITION", "RECEIPT_CONSUMED")


def test_without_a_duration_in_the_body_the_decisions_duration_is_reported(
    generator: Client, admin: Client, party: Party
) -> None:
    character = party.character_ids[0]

    with generator.license(character_ids=[character], duration=dt.timedelta(seconds=7), **USE) as granted:
        pass

    (result,) = granted.usage_results
    statement = admin.get_statement(party.rights_holder_id, period=result.statement_period)
    line = _line(statement, character)
    assert line.duration_milliseconds == 7000
    assert (line.revenue_minor_units, line.owed_minor_units) == (0, 5)  # the fee alone


def test_a_block_that_raises_reports_nothing(generator: Client, admin: Client, party: Party) -> None:
    with pytest.raises(RuntimeError), generator.license(character_ids=[party.character_ids[0]], **USE) as granted:
        raise RuntimeError("render failed")

    assert not granted.used
    assert granted.usage_results == []
    assert len(generator.receipts) == 0
    assert len(generator.pending_usage) == 0
    assert list(admin.list_statements(rights_holder_id=party.rights_holder_id)) == []


def test_a_rejected_report_is_in_the_results_and_not_queued(generator: Client, party: Party) -> None:
    with generator.license(character_ids=[party.character_ids[0]], **USE) as granted:
        granted.attribute_revenue(100, "EUR")  # the terms' per-use fee is in USD

    (result,) = granted.usage_results
    assert not result.accepted
    assert (result.error_code, result.error_reason) == ("INVALID_ARGUMENT", "CURRENCY_MISMATCH")
    assert [v.field for v in result.field_violations] == ["attributed_revenue.currency_code"]
    assert granted.used
    assert len(generator.pending_usage) == 0


def test_license_checks_what_the_body_sets(generator: Client, party: Party) -> None:
    with generator.license(character_ids=[party.character_ids[0]], **USE) as granted:
        with pytest.raises(TypeError):
            granted.duration = 12  # type: ignore[assignment]
        with pytest.raises(TypeError):
            granted.attribute_revenue(1.5, "USD")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="negative"):
            granted.attribute_revenue(-1, "USD")
        with pytest.raises(ValueError, match="allowed character"):
            granted.attribute_revenue(1, "USD", character_id=party.character_ids[1])

    assert [r.accepted for r in granted.usage_results] == [True]


def test_an_undelivered_report_waits_for_flush_and_is_counted_once(
    database_url: str, clock: Any, live: Live, party: Party, admin: Client
) -> None:
    character = party.character_ids[0]
    doomed = start(database_url, clock)  # a second server, stopped while the block renders
    try:
        with (
            Client(f"127.0.0.1:{doomed.port}", api_key=party.generator, timeout=5) as down,
            down.license(character_ids=[character], **USE) as granted,
        ):
            doomed.stop(grace=0)
    finally:
        doomed.stop(grace=0)

    assert granted.used
    assert granted.usage_results == []
    assert len(down.pending_usage) == 1
    # A backend may keep pending reports and flush them from another client (or process).
    pending = down.pending_usage.drain()
    with Client(live.target, api_key=party.generator, timeout=5) as up:
        up.pending_usage.add(pending)
        (delivered,) = up.flush_usage()
        up.pending_usage.add(pending)  # as if the reply had been lost: the same report again
        (again,) = up.flush_usage()

    assert delivered.accepted
    assert not delivered.duplicate
    assert delivered.idempotency_key == usage_key(granted.decision.receipt_id, character)
    assert again.duplicate
    assert again.usage_id == delivered.usage_id
    statement = admin.get_statement(party.rights_holder_id, period=delivered.statement_period)
    assert _line(statement, character).records == 1


def test_flush_keeps_the_reports_when_the_server_cannot_be_reached(generator: Client, party: Party) -> None:
    _, receipt = _decide(generator, party.character_ids[0])
    report = UsageReport(receipt, party.character_ids[0]).at(dt.datetime.now(dt.UTC))

    with Client(f"127.0.0.1:{_closed_port()}", api_key=party.generator, timeout=2, retry=None) as down:
        down.pending_usage.add([report])
        assert down.flush_usage() == []
        assert down.pending_usage.drain() == [report]
    assert generator.flush_usage() == []  # nothing pending here


# -- statements -----------------------------------------------------------------------------------


def test_a_date_range_statement_and_closing_a_month(
    generator: Client, admin: Client, party: Party, moved_clock: Any
) -> None:
    character = party.character_ids[0]
    with generator.license(character_ids=[character], **USE) as granted:
        granted.attribute_revenue(2000, "USD")
    (result,) = granted.usage_results
    today = dt.datetime.now(dt.UTC).date()

    ranged = admin.get_statement(
        party.rights_holder_id, start_date=today - dt.timedelta(days=1), end_date=today.isoformat()
    )
    with pytest.raises(FailedPreconditionError) as not_ended:
        admin.close_statement_period(party.rights_holder_id, period=result.statement_period)
    moved_clock.advance(dt.timedelta(days=32))  # the month of the use has ended
    closed = admin.close_statement_period(party.rights_holder_id, period=result.statement_period)
    with pytest.raises(FailedPreconditionError) as closed_twice:
        admin.close_statement_period(party.rights_holder_id, period=result.statement_period)
    shown = admin.get_statement(party.rights_holder_id, period=result.statement_period)

    assert ranged.state == usage_pb2.STATEMENT_STATE_RANGE
    assert (ranged.period, ranged.end_date) == ("", today.isoformat())
    assert _line(ranged, character).owed_minor_units == 305
    assert not_ended.value.reason == "STATEMENT_PERIOD_NOT_ENDED"
    assert closed.state == usage_pb2.STATEMENT_STATE_CLOSED
    assert closed.HasField("close_time")
    assert closed_twice.value.reason == "STATEMENT_PERIOD_CLOSED"
    assert shown.state == usage_pb2.STATEMENT_STATE_CLOSED
    assert list(shown.lines) == list(closed.lines)
    assert _line(shown, character).owed_minor_units == 305


def test_get_statement_needs_a_month_or_a_range(admin: Client, party: Party) -> None:
    with pytest.raises(ValueError, match="either period"):
        admin.get_statement(party.rights_holder_id)
    with pytest.raises(ValueError, match="either period"):
        admin.get_statement(party.rights_holder_id, period="2026-01", start_date="2026-01-01", end_date="2026-01-31")
    with pytest.raises(ValueError, match="together"):
        admin.get_statement(party.rights_holder_id, start_date="2026-01-01")


# -- the pure parts -------------------------------------------------------------------------------


def test_a_report_derives_its_key_and_fixes_its_time_once(generator: Client, party: Party) -> None:
    character = party.character_ids[0]
    decision, receipt = _decide(generator, character)
    then = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)

    report = UsageReport(dsse.to_json(receipt), character, revenue_minor_units=5, currency="jpy")
    fixed = report.at(then)

    assert report.idempotency_key == usage_key(decision.receipt_id, character) == f"{decision.receipt_id}:{character}"
    assert report.receipt == receipt
    assert report.currency == "JPY"
    assert report.happen_time is None
    assert fixed.happen_time == then
    assert fixed.at(then + dt.timedelta(days=1)) is fixed
    record = fixed.to_proto()
    assert record.happen_time.ToDatetime(tzinfo=dt.UTC) == then
    assert (record.attributed_revenue.currency_code, record.attributed_revenue.minor_units) == ("JPY", 5)
    assert not record.HasField("duration")
    # Only ASCII is upper-cased: the long s would become an S and pass for a currency code.
    assert UsageReport(receipt, character, revenue_minor_units=5, currency="u\u017fd").currency == "u\u017fd"
    with pytest.raises(ValueError, match="together"):
        UsageReport(receipt, character, revenue_minor_units=5)
    with pytest.raises(ValueError, match="timezone-aware"):
        UsageReport(receipt, character, happen_time=dt.datetime(2030, 1, 1))


def test_a_result_is_built_from_its_message_with_the_batch_offset() -> None:
    message = usage_pb2.UsageResult(
        index=2,
        idempotency_key="k",
        status=usage_pb2.USAGE_STATUS_REJECTED,
        error_code="INVALID_ARGUMENT",
        error_reason="INVALID_FIELD",
        field_violations=[usage_pb2.UsageFieldViolation(field="uses", description="must be at most 1")],
    )

    result = UsageResult.from_proto(message, offset=100)

    assert (result.index, result.accepted, result.error_reason) == (102, False, "INVALID_FIELD")
    assert [(v.field, v.description) for v in result.field_violations] == [("uses", "must be at most 1")]


def test_pending_usage_is_bounded_and_drops_the_oldest(generator: Client, party: Party) -> None:
    _, receipt = _decide(generator, *party.character_ids)
    reports = [UsageReport(receipt, c, happen_time=dt.datetime.now(dt.UTC)) for c in party.character_ids]
    pending = PendingUsage(capacity=1)

    pending.add(reports)

    assert len(pending) == 1
    assert pending.dropped == 1
    assert pending.drain() == reports[1:]
    assert len(pending) == 0
    with pytest.raises(TypeError):
        pending.add(["not a report"])  # type: ignore[list-item]


def test_retry_delays_follow_the_policys_backoff_bounds() -> None:
    policy = RetryPolicy(max_attempts=5, initial_backoff=0.1, max_backoff=0.3, backoff_multiplier=2)

    delays = retry_delays(policy)

    assert retry_delays(None) == []
    assert len(delays) == 4
    assert all(0 <= delay <= bound for delay, bound in zip(delays, (0.1, 0.2, 0.3, 0.3), strict=True))


# -- get_usage_series -----------------------------------------------------------------------------


def test_the_usage_series_counts_each_reported_use_on_its_day(generator: Client, admin: Client, party: Party) -> None:
    character = party.character_ids[0]
    _, receipt = _decide(generator, character)
    (result,) = generator.report_usage([UsageReport(receipt=receipt, character_id=character)])
    today = dt.datetime.now(dt.UTC).date()
    by_character = admin.get_usage_series(
        party.rights_holder_id, start_date=today - dt.timedelta(days=1), end_date=today.isoformat()
    )
    by_licensee = admin.get_usage_series(party.rights_holder_id, start_date=today, end_date=today, by_licensee=True)

    assert result.accepted
    assert [(s.character_id, s.total.uses) for s in by_character.series] == [(character, 1)]
    assert [(d.date, d.uses) for d in by_character.days][-1] == (today.isoformat(), 1)
    assert len(by_character.days) == 2
    assert [(s.licensee_id, s.total.uses) for s in by_licensee.series] == [(party.licensee_id, 1)]
    assert by_licensee.total.uses == 1
