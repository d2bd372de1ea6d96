"""The usage and statement rules, on the services themselves: idempotency, each use counted
exactly once, period close and adjustments, currency, rounding. No gRPC; milliseconds each."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from charter.envelope import GRANT_PAYLOAD_TYPE, RECEIPT_PAYLOAD_TYPE, sign
from charter.v1 import decision_pb2, terms_pb2
from charter_server.domain.errors import DomainError, FailedPrecondition, InvalidArgument, PermissionDenied
from charter_server.domain.models import Principal, Role
from charter_server.services.keys import KeyService
from charter_server.services.statements import StatementService, StatementState
from charter_server.services.usage import Money, UsageOutcome, UsageRecordInput, UsageService
from charter_server.services.validation import Unreadable
from charter_server.storage.database import Database

from .conftest import ADMIN, Parties, StillClock

CHARACTER = "chr_" + "a" * 32
OTHER_CHARACTER = "chr_" + "b" * 32
GRANT = "grt_" + "c" * 32


@pytest.fixture
def usage(db: Database, clock: StillClock, keys: KeyService) -> UsageService:
    return UsageService(db, clock, keys, window=timedelta(days=60))


@pytest.fixture
def statements(db: Database, clock: StillClock) -> StatementService:
    return StatementService(db, clock)


def receipt(
    keys: KeyService,
    parties: Parties,
    decided: datetime,
    *,
    bps: int = 1_000,
    fee: tuple[str, int] | None = None,
    characters: tuple[str, ...] = (CHARACTER,),
    licensee_id: str = "",
) -> bytes:
    """A receipt signed with the server's key allowing ``characters``, serialized as it travels."""
    obligations = decision_pb2.Obligations(revenue_share_bps=bps)
    if fee is not None:
        obligations.per_use_fee.CopyFrom(terms_pb2.Money(currency_code=fee[0], minor_units=fee[1]))
    message = decision_pb2.DecisionReceipt(
        receipt_id=f"rcp_{uuid.uuid4().hex}",
        licensee_id=licensee_id or parties.licensee_id,
        allowed=True,
        characters=[
            decision_pb2.CharacterDecision(
                character_id=c,
                allowed=True,
                grant_id=GRANT,
                rights_holder_id=parties.rights_holder_id,
                obligations=obligations,
            )
            for c in characters
        ],
    )
    message.decide_time.FromDatetime(decided)
    signer = keys.signer()
    envelope = sign(
        message.SerializeToString(), RECEIPT_PAYLOAD_TYPE, key_id=signer.key_id, private_key=signer.private_key
    )
    return envelope.SerializeToString(deterministic=True)


def record(envelope: bytes, happened: datetime, key: str = "use-1", **changes: object) -> UsageRecordInput:
    """A valid record of one use; ``changes`` replace fields."""
    value = UsageRecordInput(
        idempotency_key=key,
        fingerprint=f"print-of-{key}",
        receipt=envelope,
        receipt_payload_type=RECEIPT_PAYLOAD_TYPE,
        character_id=CHARACTER,
        uses=1,
        duration_ns=None,
        attributed_revenue=Money("USD", 1_000),
        happen_time=happened,
    )
    return replace(value, **changes)  # type: ignore[arg-type]


def refusal(outcome: UsageOutcome) -> tuple[type[DomainError], str, tuple[str, ...]]:
    """The class, reason and fields of a refused record."""
    assert outcome.error is not None, outcome
    fields = tuple(v.field for v in outcome.error.violations) if isinstance(outcome.error, InvalidArgument) else ()
    return type(outcome.error), outcome.error.reason, fields


def test_a_record_is_accepted_into_the_month_it_happened(
    usage: UsageService, keys: KeyService, parties: Parties, clock: StillClock
) -> None:
    happened = clock.now() - timedelta(days=10)  # 26 October
    (outcome,) = usage.report(parties.generator, [record(receipt(keys, parties, happened), happened)])

    assert outcome.error is None and outcome.entry is not None
    assert (outcome.duplicate, outcome.entry.statement_period, outcome.entry.revenue_share_bps) == (
        False,
        "2026-10",
        1_000,
    )


def test_a_retry_is_answered_as_the_first_time_and_counted_once(
    usage: UsageService, statements: StatementService, keys: KeyService, parties: Parties, clock: StillClock
) -> None:
    happened = clock.now()
    sent = record(receipt(keys, parties, happened), happened)
    (first,) = usage.report(parties.generator, [sent])
    (again,) = usage.report(parties.generator, [sent])
    (in_batch, repeated) = usage.report(parties.generator, [sent, sent])

    assert first.entry is not None and again.entry is not None
    assert (again.duplicate, again.entry.id) == (True, first.entry.id)
    assert [o.duplicate for o in (in_batch, repeated)] == [True, True]
    month = statements.get(ADMIN, parties.rights_holder_id, period="2026-11")
    assert [(t.records, t.uses, t.revenue_minor) for t in month.totals] == [(1, 1, 1_000)]


def test_a_key_reused_for_another_record_is_refused(
    usage: UsageService, keys: KeyService, parties: Parties, clock: StillClock
) -> None:
    happened = clock.now()
    sent = record(receipt(keys, parties, happened), happened)
    usage.report(parties.generator, [sent])
    other = replace(sent, fingerprint="another record", attributed_revenue=Money("USD", 5))
    fresh = record(receipt(keys, parties, happened), happened, "k2")
    (stored, in_batch_first, in_batch_other) = usage.report(
        parties.generator, [other, fresh, replace(fresh, fingerprint="another record")]
    )

    assert refusal(stored)[1] == "IDEMPOTENCY_KEY_REUSED"
    assert in_batch_first.error is None
    assert refusal(in_batch_other)[1] == "IDEMPOTENCY_KEY_REUSED"


def test_a_receipt_covers_one_use_of_each_character_whatever_the_keys(
    usage: UsageService, statements: StatementService, keys: KeyService, parties: Parties, clock: StillClock
) -> None:
    happened = clock.now()
    envelope = receipt(keys, parties, happened, characters=(CHARACTER, OTHER_CHARACTER))
    outcomes = usage.report(
        parties.generator,
        [
            record(envelope, happened, "a"),
            record(envelope, happened, "b", fingerprint="b"),
            record(envelope, happened, "c", fingerprint="c", character_id=OTHER_CHARACTER),
        ],
    )
    (later,) = usage.report(parties.generator, [record(envelope, happened, "d", fingerprint="d")])

    assert [o.error is None for o in outcomes] == [True, False, True]
    assert refusal(outcomes[1]) == (FailedPrecondition, "RECEIPT_CONSUMED", ())
    assert refusal(later) == (FailedPrecondition, "RECEIPT_CONSUMED", ())
    month = statements.get(ADMIN, parties.rights_holder_id, period="2026-11")
    assert [(line.character_id, line.uses) for line in month.lines] == [(CHARACTER, 1), (OTHER_CHARACTER, 1)]


def test_the_receipt_must_be_the_callers_signed_and_allow_the_character(
    usage: UsageService, keys: KeyService, parties: Parties, clock: StillClock
) -> None:
    happened = clock.now()
    theirs = receipt(keys, parties, happened, licensee_id="lic_" + "d" * 32)
    mine = receipt(keys, parties, happened)
    forged = bytearray(mine)
    forged[-3] ^= 1  # inside the signature
    outcomes = usage.report(
        parties.generator,
        [
            record(theirs, happened, "theirs"),
            record(bytes(forged), happened, "forged"),
            record(mine, happened, "not-allowed", character_id=OTHER_CHARACTER),
            record(mine, happened, "grant-type", receipt_payload_type=GRANT_PAYLOAD_TYPE),
            record(b"", happened, "none"),
        ],
    )

    assert [refusal(o) for o in outcomes] == [
        (PermissionDenied, "RECEIPT_WRONG_LICENSEE", ()),
        (InvalidArgument, "RECEIPT_INVALID", ("receipt",)),
        (FailedPrecondition, "RECEIPT_DOES_NOT_ALLOW_CHARACTER", ()),
        (InvalidArgument, "INVALID_FIELD", ("receipt.payload_type",)),
        (InvalidArgument, "INVALID_FIELD", ("receipt",)),
    ]


def test_times_outside_the_window_or_before_the_decision_are_refused(
    usage: UsageService, keys: KeyService, parties: Parties, clock: StillClock
) -> None:
    now = clock.now()
    envelope = receipt(keys, parties, now - timedelta(days=61))
    fresh = receipt(keys, parties, now)
    outcomes = usage.report(
        parties.generator,
        [
            record(envelope, now - timedelta(days=60, seconds=1), "old"),
            record(fresh, now + timedelta(minutes=5, seconds=1), "future"),
            record(fresh, now - timedelta(minutes=5, seconds=1), "before"),
            record(fresh, Unreadable("must be a valid time"), "unreadable"),  # type: ignore[arg-type]
            record(fresh, None, "missing"),  # type: ignore[arg-type]
        ],
    )

    assert [refusal(o) for o in outcomes] == [
        (InvalidArgument, "USAGE_TOO_OLD", ("happen_time",)),
        (InvalidArgument, "USAGE_TIME_INVALID", ("happen_time",)),
        (InvalidArgument, "USAGE_TIME_INVALID", ("happen_time",)),
        (InvalidArgument, "INVALID_FIELD", ("happen_time",)),
        (InvalidArgument, "INVALID_FIELD", ("happen_time",)),
    ]


def test_every_bad_field_of_a_record_is_named_and_the_batch_goes_on(
    usage: UsageService, keys: KeyService, parties: Parties, clock: StillClock
) -> None:
    now = clock.now()
    envelope = receipt(keys, parties, now)
    bad = record(
        envelope,
        now,
        "bad key!",
        uses=2,
        duration_ns=Unreadable("must be between 0 and 24 hours"),
        attributed_revenue=Money("\u017fek", -1),  # the long s upper-cases to "S"
        character_id="chr_nope",
    )
    too_long = record(envelope, now, "long", duration_ns=24 * 3600 * 10**9 + 1)
    longest = record(envelope, now, "longest", duration_ns=24 * 3600 * 10**9)
    outcomes = usage.report(parties.generator, [bad, too_long, longest])

    assert refusal(outcomes[0]) == (
        InvalidArgument,
        "INVALID_FIELD",
        (
            "idempotency_key",
            "character_id",
            "uses",
            "duration",
            "attributed_revenue.currency_code",
            "attributed_revenue.minor_units",
        ),
    )
    assert refusal(outcomes[1]) == (InvalidArgument, "INVALID_FIELD", ("duration",))
    assert outcomes[2].entry is not None and outcomes[2].entry.duration_ms == 24 * 3600 * 1000


def test_revenue_is_in_the_fee_currency_and_the_fee_is_owed_per_use(
    usage: UsageService, statements: StatementService, keys: KeyService, parties: Parties, clock: StillClock
) -> None:
    now = clock.now()
    outcomes = usage.report(
        parties.generator,
        [
            record(
                receipt(keys, parties, now, bps=2_500, fee=("JPY", 30)), now, "usd", attributed_revenue=Money("USD", 9)
            ),
            record(
                receipt(keys, parties, now, bps=2_500, fee=("JPY", 30)), now, "jpy", attributed_revenue=Money("jpy", 2)
            ),
            record(receipt(keys, parties, now, bps=2_500, fee=("JPY", 30)), now, "none", attributed_revenue=None),
            record(
                receipt(keys, parties, now, bps=2_500, fee=("JPY", 30)), now, "jpy2", attributed_revenue=Money("JPY", 2)
            ),
        ],
    )

    assert refusal(outcomes[0]) == (InvalidArgument, "CURRENCY_MISMATCH", ("attributed_revenue.currency_code",))
    assert [o.entry.currency for o in outcomes[1:] if o.entry] == ["JPY", "JPY", "JPY"]
    month = statements.get(ADMIN, parties.rights_holder_id, period="2026-11")
    # One line: revenue 4 at 25 % is 1 (rounded once, half up), plus three fees of 30.
    assert [
        (t.currency, t.uses, t.revenue_minor, t.revenue_share_minor, t.fee_minor, t.owed_minor) for t in month.totals
    ] == [("JPY", 3, 4, 1, 90, 91)]


def test_a_closed_month_never_changes_and_late_records_become_adjustments(
    usage: UsageService, statements: StatementService, keys: KeyService, parties: Parties, clock: StillClock
) -> None:
    october = datetime(2026, 10, 20, tzinfo=UTC)
    usage.report(parties.generator, [record(receipt(keys, parties, october), october, "early")])
    with pytest.raises(FailedPrecondition) as not_ended:
        statements.close(ADMIN, parties.rights_holder_id, "2026-11")
    closed = statements.close(ADMIN, parties.rights_holder_id, "2026-10")
    with pytest.raises(FailedPrecondition) as again:
        statements.close(ADMIN, parties.rights_holder_id, "2026-10")
    (late,) = usage.report(parties.generator, [record(receipt(keys, parties, october), october, "late")])

    assert not_ended.value.reason == "STATEMENT_PERIOD_NOT_ENDED"
    assert again.value.reason == "STATEMENT_PERIOD_CLOSED"
    assert (closed.state, closed.close_time, closed.totals[0].uses) == (StatementState.CLOSED, clock.now(), 1)
    assert late.entry is not None and late.entry.statement_period == "2026-11"
    assert statements.get(ADMIN, parties.rights_holder_id, period="2026-10").totals == closed.totals
    november = statements.get(ADMIN, parties.rights_holder_id, period="2026-11")
    assert [(line.adjustment_for_period, line.uses) for line in november.lines] == [("2026-10", 1)]
    assert november.state is StatementState.OPEN
    # A date range goes by the time of the use alone: both October records, no adjustment.
    autumn = statements.get(ADMIN, parties.rights_holder_id, start_date="2026-10-01", end_date="2026-11-30")
    assert [(line.adjustment_for_period, line.uses) for line in autumn.lines] == [("", 2)]
    assert autumn.state is StatementState.RANGE


def test_statements_are_listed_newest_first_for_their_owner_only(
    usage: UsageService, statements: StatementService, keys: KeyService, parties: Parties, clock: StillClock
) -> None:
    for key, day in (("sep", datetime(2026, 9, 30, tzinfo=UTC)), ("oct", datetime(2026, 10, 1, tzinfo=UTC))):
        clock.time = day + timedelta(hours=1)
        usage.report(parties.generator, [record(receipt(keys, parties, day), day, key)])
    first, token = statements.list(parties.holder, page_size=1)
    second, last = statements.list(parties.holder, page_size=1, page_token=token)
    mine, _ = statements.list(parties.generator)
    with pytest.raises(PermissionDenied) as other:
        statements.list(parties.holder, rights_holder_id="rh_" + "e" * 32)
    with pytest.raises(PermissionDenied) as not_theirs:
        statements.get(
            Principal("k", Role.RIGHTS_HOLDER, rights_holder_id="rh_" + "e" * 32),
            parties.rights_holder_id,
            period="2026-10",
        )

    assert [(s.period, s.lines, s.totals[0].uses) for s in first + second] == [("2026-10", (), 1), ("2026-09", (), 1)]
    assert last == ""
    assert [s.licensee_id for s in mine] == [parties.licensee_id] * 2
    assert (other.value.reason, not_theirs.value.reason) == ("RESOURCE_NOT_OWNED", "RESOURCE_NOT_OWNED")


def test_only_generator_keys_report_and_a_batch_is_bounded(usage: UsageService, parties: Parties) -> None:
    with pytest.raises(PermissionDenied) as holder:
        usage.report(parties.holder, [])
    with pytest.raises(InvalidArgument) as empty:
        usage.report(parties.generator, [])

    assert holder.value.reason == "ROLE_NOT_PERMITTED"
    assert [v.field for v in empty.value.violations] == ["records"]
