"""Usage metering across real ``charter_server serve`` processes.

* **Durability under SIGKILL**, on SQLite and on PostgreSQL: client threads report batches of
  usage records and retry each batch, with the same idempotency keys, until it is acknowledged,
  while the server process is killed with SIGKILL several times at random moments and restarted
  on the same database and port. Afterwards every record is stored exactly once, every
  acknowledgement names the stored record, and the statement adds up to exactly the records sent.
* **A monthly quota across two processes** over one PostgreSQL database: concurrent ``Authorize``
  calls through both allow exactly the quota, and reporting each allowed use through both
  processes at once (same key) counts each use once.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import charter
import grpc
import pytest
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import authorization_service_pb2_grpc as az_grpc
from charter.v1 import decision_pb2, envelope_pb2, terms_pb2, usage_pb2
from charter.v1 import usage_service_pb2 as us
from charter.v1 import usage_service_pb2_grpc as us_grpc
from charter_server.storage.database import Database
from google.protobuf import duration_pb2, timestamp_pb2
from sqlalchemy import text

from ._support import (
    Cluster,
    ServerProcess,
    bearer,
    open_channel,
    prepare_database,
    spawn_server,
    wait_serving,
)

ACCEPTED = usage_pb2.USAGE_STATUS_ACCEPTED
REVENUE_SHARE_BPS = 1_250
FEE_MINOR_UNITS = 7
CURRENCY = "USD"
# The client's retries: only failures that say nothing about the batch (the server is gone, or
# not answering yet); anything else is a finding.
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
# Reconnect quickly to the restarted server instead of gRPC's default backoff (1 s, growing).
FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 250),
]


@dataclass(frozen=True)
class World:
    """A rights holder's opted-in characters, granted to a licensee with a generator key."""

    rights_holder_id: str
    licensee_id: str
    generator: str
    character_ids: tuple[str, ...]


def _terms(monthly_quota: int | None = None) -> terms_pb2.Terms:
    terms = terms_pb2.Terms(
        permitted_use_types=[terms_pb2.USE_TYPE_IMAGE_GENERATION],
        max_content_rating=terms_pb2.CONTENT_RATING_TEEN,
        revenue_share_bps=REVENUE_SHARE_BPS,
        per_use_fee=terms_pb2.Money(currency_code=CURRENCY, minor_units=FEE_MINOR_UNITS),
    )
    if monthly_quota is not None:
        terms.monthly_quota = monthly_quota
    return terms


def _world(admin: charter.Client, characters: int, terms: terms_pb2.Terms, max_uses: int | None = None) -> World:
    holder = admin.create_rights_holder(display_name="Metered Studio", contact_email="rights@studio.example")
    licensee = admin.create_licensee(display_name="Metered App", contact_email="ops@app.example", platform="test-app")
    expire = datetime.now(UTC) + timedelta(days=30)
    ids = []
    for number in range(characters):
        # Names are unique across rights holders: each test's own, as two tests share a cluster.
        name = f"Metered Chara {number} {uuid.uuid4().hex[:12]}"
        character = admin.create_character(rights_holder_id=holder.id, canonical_name=name)
        admin.opt_in(character.id, terms)
        admin.issue_grant(character_id=character.id, licensee_id=licensee.id, expire_time=expire, max_uses=max_uses)
        ids.append(character.id)
    generator = admin.create_api_key(display_name="generator", role="generator", licensee_id=licensee.id).secret
    return World(holder.id, licensee.id, generator, tuple(ids))


def _authorize_request(character_ids: Sequence[str]) -> az.AuthorizeRequest:
    return az.AuthorizeRequest(
        character_ids=list(character_ids),
        context=decision_pb2.UseContext(
            use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION, content_rating=terms_pb2.CONTENT_RATING_TEEN
        ),
    )


def _timestamp(when: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


def _record(
    key: str, receipt: envelope_pb2.Envelope, character_id: str, revenue: int, seconds: int, happened: datetime
) -> usage_pb2.UsageRecord:
    return usage_pb2.UsageRecord(
        idempotency_key=key,
        receipt=receipt,
        character_id=character_id,
        uses=1,
        duration=duration_pb2.Duration(seconds=seconds),
        attributed_revenue=terms_pb2.Money(currency_code=CURRENCY, minor_units=revenue),
        happen_time=_timestamp(happened),
    )


def _read(database_url: str, sql: str, **params: Any) -> list[Any]:
    """Rows of one query, read straight from the database the servers share."""
    db = Database(database_url)
    try:
        with db.engine.connect() as connection:
            return list(connection.execute(text(sql), params))
    finally:
        db.dispose()


def _share(records: Sequence[usage_pb2.UsageRecord]) -> int:
    """A statement line's revenue share: one round half up per line."""
    return (sum(r.attributed_revenue.minor_units * REVENUE_SHARE_BPS for r in records) + 5_000) // 10_000


# Durability under SIGKILL -----------------------------------------------------------------------

KILLS = 3
CHARACTERS = 8  # declared in every Authorize: each receipt covers one use of each of them
RECEIPTS = 150  # so 1,200 records
BATCH_SIZE = 25  # so 48 batches, 12 per phase between kills
CLIENT_THREADS = 4
RUN_SECONDS = 40  # reporting, every kill and restart, and the last retries


@dataclass
class Progress:
    """Shared by the client threads and the thread that kills the server.

    The killer releases the batches phase by phase (``budget``: how many batches may have been
    started), so that every kill lands while batches are in flight however fast the server is.
    """

    deadline: float
    budget: int = 0
    started: int = 0
    batches_done: int = 0
    acknowledged: dict[str, usage_pb2.UsageResult] = field(default_factory=dict)
    retried: Counter[str] = field(default_factory=Counter)  # failed attempts by status code name
    failures: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def release(self, batches: int) -> None:
        with self.changed:
            self.budget += batches
            self.changed.notify_all()

    def may_start(self) -> bool:
        """Wait until one more batch may be started; False when the time is up."""
        with self.changed:
            if not self.changed.wait_for(lambda: self.started < self.budget, timeout=self.remaining()):
                self.failures.append("no batch released in time")
                return False
            self.started += 1
            return True

    def wait_acknowledged(self, batches: int) -> bool:
        """Wait until ``batches`` batches are acknowledged or a client failed; False when the time is up."""
        with self.changed:
            return self.changed.wait_for(
                lambda: self.batches_done >= batches or bool(self.failures), timeout=self.remaining()
            )

    def fail(self, problem: str) -> None:
        with self.changed:
            self.failures.append(problem)
            self.changed.notify_all()


def _report_until_acknowledged(
    target: str, secret: str, batches: list[list[usage_pb2.UsageRecord]], progress: Progress
) -> None:
    """One client: send each batch until it is acknowledged, retrying the very same batch."""
    with grpc.insecure_channel(target, options=FAST_RECONNECT) as channel:
        stub = us_grpc.UsageServiceStub(channel)
        for batch in batches:
            if not progress.may_start():
                return
            request = us.ReportUsageRequest(records=batch)
            while True:
                if progress.remaining() <= 0:
                    progress.fail(f"batch {batch[0].idempotency_key}: not acknowledged in time")
                    return
                try:
                    response = stub.ReportUsage(
                        request, metadata=bearer(secret), timeout=min(5.0, max(0.1, progress.remaining()))
                    )
                except grpc.RpcError as error:
                    if error.code() not in RETRYABLE:
                        progress.fail(f"batch {batch[0].idempotency_key}: {error.code()} {error}")
                        return
                    with progress.changed:
                        progress.retried[error.code().name] += 1
                    time.sleep(0.05)
                    continue
                refused = [r for r in response.results if r.status != ACCEPTED]
                if refused or [r.idempotency_key for r in response.results] != [r.idempotency_key for r in batch]:
                    progress.fail(f"batch {batch[0].idempotency_key}: answered {response.results}")
                    return
                with progress.changed:
                    progress.acknowledged.update((r.idempotency_key, r) for r in response.results)
                    progress.batches_done += 1
                    progress.changed.notify_all()
                break


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def process_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each backend for server processes: a SQLite file, or a fresh
    PostgreSQL database (``fresh_postgres_url``)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'usage.db'}"
    else:
        yield request.getfixturevalue("fresh_postgres_url")


@pytest.mark.slow
def test_acknowledged_usage_survives_sigkill_exactly_once(process_database_url: str, tmp_path: Path) -> None:
    url = process_database_url
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    context = f"seed {seed}"
    admin_secret = prepare_database(url, "usage durability")
    servers: list[ServerProcess] = [spawn_server(url, tmp_path / "server-0.log")]
    try:
        wait_serving(servers[-1])
        target = servers[-1].target
        port = int(target.rpartition(":")[2])  # every restart comes back on it, for the same clients
        with charter.Client(target, api_key=admin_secret) as admin, open_channel(target) as channel:
            world = _world(admin, CHARACTERS, _terms())
            authorize = az_grpc.AuthorizationServiceStub(channel)
            receipts = []
            for _ in range(RECEIPTS):
                response = authorize.Authorize(
                    _authorize_request(world.character_ids), metadata=bearer(world.generator), timeout=10
                )
                assert response.decision.allowed, response.decision
                receipts.append(response.receipt)
        happened = datetime.now(UTC).replace(microsecond=0)
        sent = {
            f"kill9.{number:03d}.{position}": _record(
                f"kill9.{number:03d}.{position}",
                receipt,
                character_id,
                revenue=rng.randrange(0, 100_000),
                seconds=rng.randrange(1, 120),
                happened=happened,
            )
            for number, receipt in enumerate(receipts)
            for position, character_id in enumerate(world.character_ids)
        }
        records = list(sent.values())
        rng.shuffle(records)
        batches = [records[i : i + BATCH_SIZE] for i in range(0, len(records), BATCH_SIZE)]
        progress = Progress(deadline=time.monotonic() + RUN_SECONDS)
        clients = [
            threading.Thread(
                target=_report_until_acknowledged,
                args=(target, world.generator, batches[n::CLIENT_THREADS], progress),
                name=f"reporter-{n}",
                daemon=True,
            )
            for n in range(CLIENT_THREADS)
        ]
        for client in clients:
            client.start()
        phase = len(batches) // (KILLS + 1)
        unacknowledged_at_kill = []
        for number in range(KILLS):
            progress.release(phase)
            # Kill once a random number of this phase's batches is acknowledged (leaving at least
            # as many as there are clients to go), a random few milliseconds later still.
            reached = progress.wait_acknowledged(number * phase + rng.randint(2, phase - CLIENT_THREADS))
            assert reached and not progress.failures, (context, progress.failures, progress.batches_done)
            time.sleep(rng.uniform(0, 0.02))
            with progress.changed:
                unacknowledged_at_kill.append(progress.budget - progress.batches_done)
            assert servers[-1].kill() == -9, servers[-1].log  # it was still running
            servers.append(spawn_server(url, tmp_path / f"server-{number + 1}.log", port=port))
            wait_serving(servers[-1], deadline_seconds=30)
        progress.release(len(batches) - KILLS * phase)
        for client in clients:
            client.join(progress.remaining() + 6)
        assert not any(client.is_alive() for client in clients), context
        with open_channel(target) as channel:
            statement = (
                us_grpc.UsageServiceStub(channel)
                .GetStatement(
                    us.GetStatementRequest(
                        rights_holder_id=world.rights_holder_id,
                        start_date=f"{happened:%Y-%m-%d}",
                        end_date=f"{happened:%Y-%m-%d}",
                    ),
                    metadata=bearer(admin_secret),
                    timeout=10,
                )
                .statement
            )
    finally:
        code = servers[-1].stop()
        for server in servers:
            server.kill()  # a no-op for the ones already gone; ends a stray one on a failed test
    assert code == 0, servers[-1].log
    assert servers[-1].events()[-1] == "server.stopped"
    for server in servers:
        assert "Traceback" not in server.log, server.log

    # Every batch was eventually acknowledged, every kill left released batches unacknowledged, and
    # the clients had to retry after each.
    assert progress.failures == [], context
    assert set(progress.acknowledged) == set(sent), context
    assert sum(progress.retried.values()) >= KILLS, (context, progress.retried)
    assert min(unacknowledged_at_kill) > 0, (context, unacknowledged_at_kill)

    # Stored exactly once, as sent, and what was acknowledged is what is stored (a retry of a batch
    # that committed before the kill is answered as a duplicate with the first record's id).
    stored = {
        row.idempotency_key: row
        for row in _read(
            url,
            "SELECT idempotency_key, id, character_id, uses, revenue_minor, duration_ms FROM usage_records"
            " WHERE licensee_id = :licensee",
            licensee=world.licensee_id,
        )
    }
    counts = _read(
        url,
        "SELECT count(*), count(DISTINCT idempotency_key) FROM usage_records WHERE licensee_id = :licensee",
        licensee=world.licensee_id,
    )
    assert tuple(counts[0]) == (len(sent), len(sent)), context
    assert set(stored) == set(sent), context
    for key, record in sent.items():
        row = stored[key]
        expected = (record.character_id, 1, record.attributed_revenue.minor_units, record.duration.seconds * 1000)
        assert (row.character_id, row.uses, row.revenue_minor, row.duration_ms) == expected, (context, key)
        assert progress.acknowledged[key].usage_id == row.id, (context, key)
    receipt_uses = _read(url, "SELECT count(*), min(used), max(used) FROM receipt_uses")
    assert tuple(receipt_uses[0]) == (len(sent), 1, 1), context

    # The statement adds up to the records sent, exactly.
    by_character: defaultdict[str, list[usage_pb2.UsageRecord]] = defaultdict(list)
    for record in sent.values():
        by_character[record.character_id].append(record)
    lines = {line.character_id: line for line in statement.lines}
    assert sorted(lines) == sorted(world.character_ids), context
    for character_id, mine in by_character.items():
        line = lines[character_id]
        assert (line.records, line.uses, line.revenue_minor_units, line.revenue_share_minor_units) == (
            len(mine),
            len(mine),
            sum(r.attributed_revenue.minor_units for r in mine),
            _share(mine),
        ), (context, character_id)
    [total] = statement.totals
    revenue = sum(r.attributed_revenue.minor_units for r in sent.values())
    share = sum(_share(mine) for mine in by_character.values())
    assert (
        total.currency_code,
        total.records,
        total.uses,
        total.duration_milliseconds,
        total.revenue_minor_units,
        total.revenue_share_minor_units,
        total.fee_minor_units,
        total.owed_minor_units,
    ) == (
        CURRENCY,
        len(sent),
        len(sent),
        sum(r.duration.seconds * 1000 for r in sent.values()),
        revenue,
        share,
        FEE_MINOR_UNITS * len(sent),
        share + FEE_MINOR_UNITS * len(sent),
    ), context


# A monthly quota across two processes -----------------------------------------------------------


@pytest.mark.postgres
def test_a_monthly_quota_and_its_reported_uses_are_exact_across_two_processes(module_cluster: Cluster) -> None:
    quota = 30
    with (
        charter.Client(module_cluster.a.target, api_key=module_cluster.admin) as admin,
        open_channel(module_cluster.a.target) as channel_a,
        open_channel(module_cluster.b.target) as channel_b,
    ):
        world = _world(admin, 1, _terms(monthly_quota=quota))
        [character_id] = world.character_ids
        authorize = [az_grpc.AuthorizationServiceStub(channel) for channel in (channel_a, channel_b)]
        usage = [us_grpc.UsageServiceStub(channel) for channel in (channel_a, channel_b)]
        metadata = bearer(world.generator)

        def attempt(number: int) -> az.AuthorizeResponse:
            request = _authorize_request([character_id])
            response: az.AuthorizeResponse = authorize[number % 2].Authorize(request, metadata=metadata, timeout=10)
            return response

        month = datetime.now(UTC)
        with ThreadPoolExecutor(max_workers=8) as pool:
            decisions = list(pool.map(attempt, range(4 * quota)))
        allowed = [d for d in decisions if d.decision.allowed]
        denied = {tuple(d.decision.characters[0].reasons) for d in decisions if not d.decision.allowed}
        counted = _read(
            module_cluster.database_url,
            "SELECT period, used FROM quota_counters WHERE licensee_id = :licensee AND character_id = :character",
            licensee=world.licensee_id,
            character=character_id,
        )

        # Every allowed use reported through both processes at once, under the same key.
        happened = datetime.now(UTC).replace(microsecond=0)
        records = [
            _record(f"quota.{n:03d}", d.receipt, character_id, revenue=100 + n, seconds=5, happened=happened)
            for n, d in enumerate(allowed)
        ]

        def report(call: tuple[int, usage_pb2.UsageRecord]) -> usage_pb2.UsageResult:
            side, record = call
            request = us.ReportUsageRequest(records=[record])
            response: us.ReportUsageResponse = usage[side].ReportUsage(request, metadata=metadata, timeout=10)
            [result] = response.results
            return result

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(report, [(side, record) for record in records for side in (0, 1)]))
        statement = (
            usage[1]
            .GetStatement(
                us.GetStatementRequest(rights_holder_id=world.rights_holder_id, period=f"{happened:%Y-%m}"),
                metadata=bearer(module_cluster.admin),
                timeout=10,
            )
            .statement
        )
        counted_after = _read(
            module_cluster.database_url,
            "SELECT period, used FROM quota_counters WHERE licensee_id = :licensee AND character_id = :character",
            licensee=world.licensee_id,
            character=character_id,
        )

    assert len(allowed) == quota
    assert denied == {(decision_pb2.DENY_REASON_QUOTA_EXHAUSTED,)}
    assert [tuple(row) for row in counted] == [(f"M{month:%Y-%m}", quota)]
    assert {r.status for r in results} == {ACCEPTED}, [r for r in results if r.status != ACCEPTED]
    by_key: defaultdict[str, list[usage_pb2.UsageResult]] = defaultdict(list)
    for result in results:
        by_key[result.idempotency_key].append(result)
    assert len(by_key) == quota
    for key, pair in by_key.items():
        assert sorted(r.duplicate for r in pair) == [False, True], (key, pair)
        assert len({r.usage_id for r in pair}) == 1, (key, pair)
    [total] = statement.totals
    assert (total.records, total.uses, total.revenue_minor_units, total.fee_minor_units) == (
        quota,
        quota,
        sum(r.attributed_revenue.minor_units for r in records),
        FEE_MINOR_UNITS * quota,
    )
    assert [tuple(row) for row in counted_after] == [(f"M{month:%Y-%m}", quota)]  # reports count no quota


def test_a_grant_cap_is_exact_across_two_processes(module_cluster: Cluster) -> None:
    cap = 20
    with (
        charter.Client(module_cluster.a.target, api_key=module_cluster.admin) as admin,
        open_channel(module_cluster.a.target) as channel_a,
        open_channel(module_cluster.b.target) as channel_b,
    ):
        world = _world(admin, 1, _terms(), max_uses=cap)
        [character_id] = world.character_ids
        authorize = [az_grpc.AuthorizationServiceStub(channel) for channel in (channel_a, channel_b)]
        metadata = bearer(world.generator)

        def attempt(number: int) -> az.AuthorizeResponse:
            request = _authorize_request([character_id])
            response: az.AuthorizeResponse = authorize[number % 2].Authorize(request, metadata=metadata, timeout=10)
            return response

        with ThreadPoolExecutor(max_workers=8) as pool:
            decisions = list(pool.map(attempt, range(4 * cap)))

    allowed = [d for d in decisions if d.decision.allowed]
    denied = {tuple(d.decision.characters[0].reasons) for d in decisions if not d.decision.allowed}
    grant_id = allowed[0].decision.characters[0].grant_id
    counted = _read(module_cluster.database_url, "SELECT used FROM grant_uses WHERE grant_id = :grant", grant=grant_id)
    assert len(allowed) == cap
    assert denied == {(decision_pb2.DENY_REASON_QUOTA_EXHAUSTED,)}
    assert [row[0] for row in counted] == [cap]
