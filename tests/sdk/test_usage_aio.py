"""AsyncClient.report_usage, flush_usage, the statements calls and async license() reporting,
against a real server (see `_live`), driven with asyncio.run inside sync tests."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from charter import AsyncClient, Client, FailedPreconditionError
from charter.usage import UsageReport, UsageResult, usage_key
from charter.v1 import usage_pb2

from ._live import USE, Live, Party, start

_T = TypeVar("_T")


def _run(target: str, secret: str, scenario: Callable[[AsyncClient], Awaitable[_T]]) -> _T:
    """Runs a scenario with a client created inside the event loop (grpc.aio channels belong to one loop)."""

    async def main() -> _T:
        async with AsyncClient(target, api_key=secret, timeout=5) as client:
            return await scenario(client)

    return asyncio.run(main())


def test_report_usage_accepts_then_answers_a_duplicate(live: Live, party: Party) -> None:
    character = party.character_ids[0]

    async def scenario(client: AsyncClient) -> tuple[str, list[UsageResult], list[UsageResult]]:
        decision = await client.authorize(character_ids=[character], **USE)
        assert decision.receipt is not None
        report = UsageReport(decision.receipt, character, happen_time=dt.datetime.now(dt.UTC))
        return decision.receipt_id, await client.report_usage([report]), await client.report_usage([report])

    receipt_id, (first,), (again,) = _run(live.target, party.generator, scenario)

    assert first.accepted
    assert not first.duplicate
    assert first.idempotency_key == usage_key(receipt_id, character)
    assert again.duplicate
    assert (again.usage_id, again.accept_time) == (first.usage_id, first.accept_time)


def test_batches_keep_the_index_of_the_whole_list(live: Live, party: Party) -> None:
    async def scenario(client: AsyncClient) -> list[UsageResult]:
        reports = []
        for _ in range(2):
            decision = await client.authorize(character_ids=party.character_ids, **USE)
            assert decision.receipt is not None
            reports += [UsageReport(decision.receipt, c) for c in party.character_ids]
        return await client.report_usage(reports, batch_size=3)

    results = _run(live.target, party.generator, scenario)

    assert [(r.index, r.accepted) for r in results] == [(0, True), (1, True), (2, True), (3, True)]


def test_a_clean_async_license_exit_reports_the_use(live: Live, party: Party, admin: Client) -> None:
    first, second = party.character_ids

    async def scenario(client: AsyncClient) -> tuple[list[UsageResult], int, usage_pb2.Statement]:
        async with client.license(character_ids=[first, second], **USE) as granted:
            granted.duration = dt.timedelta(seconds=2)
            granted.attribute_revenue(100, "USD", character_id=second)
        results = granted.usage_results
        statement = await client.get_statement(party.rights_holder_id, period=results[0].statement_period)
        return results, len(client.pending_usage), statement

    results, pending, statement = _run(live.target, party.generator, scenario)

    assert [r.accepted for r in results] == [True, True]
    assert pending == 0
    # The generator's own view of the statement: its licensee's lines only.
    lines = {line.character_id: line for line in statement.lines}
    assert (lines[first].duration_milliseconds, lines[first].revenue_minor_units, lines[first].owed_minor_units) == (
        2000,
        0,
        5,
    )
    assert (lines[second].revenue_minor_units, lines[second].owed_minor_units) == (100, 20)
    listed = list(admin.list_statements(rights_holder_id=party.rights_holder_id))
    assert [s.period for s in listed] == [results[0].statement_period]


def test_an_async_block_that_raises_reports_nothing(live: Live, party: Party, admin: Client) -> None:
    async def scenario(client: AsyncClient) -> int:
        with pytest.raises(RuntimeError):
            async with client.license(character_ids=[party.character_ids[0]], **USE):
                raise RuntimeError("render failed")
        return len(client.pending_usage) + len(client.receipts)

    assert _run(live.target, party.generator, scenario) == 0
    assert list(admin.list_statements(rights_holder_id=party.rights_holder_id)) == []


def test_an_undelivered_async_report_waits_for_flush(
    database_url: str, clock: Any, live: Live, party: Party, admin: Client
) -> None:
    character = party.character_ids[0]
    doomed = start(database_url, clock)

    async def stopped_while_rendering(client: AsyncClient) -> list[UsageReport]:
        async with client.license(character_ids=[character], **USE) as granted:
            doomed.stop(grace=0)
        assert granted.usage_results == []
        return client.pending_usage.drain()

    async def flush(client: AsyncClient) -> list[UsageResult]:
        client.pending_usage.add(pending)
        return await client.flush_usage()

    try:
        pending = _run(f"127.0.0.1:{doomed.port}", party.generator, stopped_while_rendering)
    finally:
        doomed.stop(grace=0)
    (delivered,) = _run(live.target, party.generator, flush)
    (again,) = _run(live.target, party.generator, flush)

    assert len(pending) == 1
    assert delivered.accepted
    assert not delivered.duplicate
    assert again.duplicate
    assert again.usage_id == delivered.usage_id


def test_statements_list_and_close(live: Live, party: Party, moved_clock: Any) -> None:
    character = party.character_ids[0]

    async def report(client: AsyncClient) -> UsageResult:
        async with client.license(character_ids=[character], **USE) as granted:
            pass
        (result,) = granted.usage_results
        return result

    async def close(client: AsyncClient) -> tuple[usage_pb2.Statement, list[usage_pb2.Statement]]:
        with pytest.raises(FailedPreconditionError) as raised:
            await client.close_statement_period(party.rights_holder_id, period=result.statement_period)
        assert raised.value.reason == "STATEMENT_PERIOD_NOT_ENDED"
        moved_clock.advance(dt.timedelta(days=32))
        closed = await client.close_statement_period(party.rights_holder_id, period=result.statement_period)
        listed = [s async for s in client.list_statements(rights_holder_id=party.rights_holder_id, page_size=1)]
        return closed, listed

    result = _run(live.target, party.generator, report)
    closed, listed = _run(live.target, live.admin, close)

    assert closed.state == usage_pb2.STATEMENT_STATE_CLOSED
    assert [(s.period, s.state) for s in listed] == [(result.statement_period, usage_pb2.STATEMENT_STATE_CLOSED)]
    assert list(listed[0].totals) == list(closed.totals)
