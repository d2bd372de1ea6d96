"""The log entries of a decision receipt (written straight in the wire format, their time copied from
the receipt) are what the generated code serializes for that ``LogEntry``, for any receipt, with the
salt drawn once per receipt, and carry what the appender's `build_entry` would log; a batch's
decisions per hour, counted by their raw fields, are those of each receipt's decisions one by one."""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from datetime import UTC, datetime

from charter.transparency import leaf_hash
from charter.v1 import decision_pb2
from charter.v1 import transparency_pb2 as tp
from charter_server.domain.decision_history import hour_of
from charter_server.services.transparency.appender import build_entry
from charter_server.services.transparency.receipts import DecisionRecords, SaltPool, decision_entries
from google.protobuf import timestamp_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

TEXT = st.text(max_size=40)
CHARACTERS = st.builds(
    decision_pb2.CharacterDecision,
    character_id=TEXT,
    allowed=st.booleans(),
    grant_id=TEXT,
    terms_version=st.integers(-(2**31), 2**31 - 1),
    rights_holder_id=TEXT,
    declared=st.booleans(),
    detected=st.booleans(),
)
REASONS = st.lists(st.sampled_from([value for _, value in decision_pb2.DenyReason.items()]), max_size=3)
TIMES = st.one_of(
    st.none(),
    st.builds(timestamp_pb2.Timestamp, seconds=st.integers(0, 2**34), nanos=st.integers(0, 999_999_999)),
)


SALT_NUMBERS = itertools.count()


def salts(size: int) -> bytes:
    """Distinct, predictable salts (the tests compare bytes)."""
    return b"".join(next(SALT_NUMBERS).to_bytes(16, "big") for _ in range(size // 16))


def expected(receipt: decision_pb2.DecisionReceipt, actor: str, salt: bytes, number: int) -> bytes:
    characters = receipt.characters
    character = characters[number] if characters else decision_pb2.CharacterDecision()
    return tp.LogEntry(
        event_time=receipt.decide_time,
        salt=salt[number * 16 : (number + 1) * 16],
        actor_key_id=actor,
        decision=tp.DecisionLogged(
            receipt_id=receipt.receipt_id,
            receipt_digest=hashlib.sha256(receipt.SerializeToString()).digest(),
            licensee_id=receipt.licensee_id,
            character_id=character.character_id,
            rights_holder_id=character.rights_holder_id,
            allowed=character.allowed if characters else receipt.allowed,
            grant_id=character.grant_id,
            terms_version=character.terms_version,
        ),
    ).SerializeToString()


@settings(max_examples=300, deadline=None)
@given(
    receipt_id=TEXT,
    licensee_id=TEXT,
    allowed=st.booleans(),
    characters=st.lists(CHARACTERS, max_size=4),
    decide_time=TIMES,
    actor=TEXT,
)
def test_entries_are_the_generated_codes_serialization(
    receipt_id: str,
    licensee_id: str,
    allowed: bool,
    characters: list[decision_pb2.CharacterDecision],
    decide_time: timestamp_pb2.Timestamp | None,
    actor: str,
) -> None:
    receipt = decision_pb2.DecisionReceipt(
        receipt_id=receipt_id,
        licensee_id=licensee_id,
        request_digest=b"\x07" * 32,
        allowed=allowed,
        characters=characters,
        issuer="charter.test",
        log_origin="charter.test/log",
    )
    if decide_time is not None:
        receipt.decide_time.CopyFrom(decide_time)
    payload = receipt.SerializeToString()
    drawn: list[bytes] = []

    def random_bytes(size: int) -> bytes:
        drawn.append(salts(size))
        return drawn[-1]

    entries = decision_entries(payload, actor, random_bytes)

    assert len(entries) == max(1, len(characters))
    assert len(drawn) == 1 and len(drawn[0]) == 16 * len(entries)
    digest = hashlib.sha256(payload).digest()
    for number, entry in enumerate(entries):
        assert entry.entry == expected(receipt, actor, drawn[0], number)
        assert tp.LogEntry.FromString(entry.entry).HasField("event_time")  # as the appender always sets it
        assert entry.leaf_hash == leaf_hash(entry.entry)
        assert entry.receipt_digest == digest
        assert entry.licensee_id == licensee_id
        assert entry.rights_holder_id == (characters[number].rights_holder_id if characters else "")


def test_an_entry_logs_what_the_appender_would_log() -> None:
    when = datetime(2026, 12, 6, 14, 59, 1, 123456, tzinfo=UTC)
    receipt = decision_pb2.DecisionReceipt(
        receipt_id="rcp_" + "a" * 32,
        licensee_id="lic_1",
        request_digest=b"\x01" * 32,
        allowed=True,
        characters=[
            decision_pb2.CharacterDecision(
                character_id="chr_1", allowed=True, grant_id="grt_1", terms_version=3, rights_holder_id="rh_1"
            )
        ],
    )
    receipt.decide_time.FromDatetime(when)
    payload = receipt.SerializeToString()
    (entry,) = decision_entries(payload, "key_1", SaltPool())
    message = tp.DecisionLogged(
        receipt_id=receipt.receipt_id,
        receipt_digest=hashlib.sha256(payload).digest(),
        licensee_id="lic_1",
        character_id="chr_1",
        rights_holder_id="rh_1",
        allowed=True,
        grant_id="grt_1",
        terms_version=3,
    )
    ours = tp.LogEntry.FromString(entry.entry)
    theirs = tp.LogEntry.FromString(build_entry("decision", message, when=when, actor_key_id="key_1"))

    assert len(ours.salt) == len(theirs.salt) == 16
    ours.ClearField("salt")
    theirs.ClearField("salt")
    assert ours == theirs


def test_the_salt_pool_hands_out_each_byte_once() -> None:
    pool = SaltPool()
    drawn = [pool(16) for _ in range(600)] + [pool(16 * 300)]

    assert all(len(salt) == 16 for salt in drawn[:-1]) and len(drawn[-1]) == 16 * 300
    pieces = drawn[:-1] + [drawn[-1][i : i + 16] for i in range(0, 16 * 300, 16)]
    assert len(set(pieces)) == len(pieces)


REASON_NAMES = {value: name.removeprefix("DENY_REASON_") for name, value in decision_pb2.DenyReason.items()}


def tallied_one_by_one(receipt: decision_pb2.DecisionReceipt) -> Counter[tuple[str, int, str, str, tuple[str, ...]]]:
    """A receipt's decisions per hour as the receipt states them, one decision at a time: per
    character with a rights holder, its hour, licensee, use (the other characters decided with it)
    and deny reasons."""
    context = receipt.context
    categories = ",".join(str(c) for c in sorted(set(context.categories)))
    everyone = {c.character_id for c in receipt.characters if c.character_id}
    counted: Counter[tuple[str, int, str, str, tuple[str, ...]]] = Counter()
    for character in receipt.characters:
        if character.rights_holder_id:
            others = ",".join(sorted(everyone - {character.character_id}))
            use = (
                f"{context.use_type};{context.content_rating};{categories};{context.territory};"
                f"{int(context.commercial)};{others}"
            )
            hour = hour_of(receipt.decide_time.ToDatetime(tzinfo=UTC))
            outcome = tuple(REASON_NAMES[r] for r in character.reasons)
            counted[(character.character_id, hour, receipt.licensee_id, use, outcome)] += 1
    return counted


DECIDED = st.builds(
    decision_pb2.CharacterDecision,
    character_id=st.sampled_from(["", "chr_1", "chr_2", "chr_3"]),
    rights_holder_id=st.sampled_from(["", "rh_1", "rh_2"]),
    allowed=st.booleans(),
    reasons=REASONS,
)
CONTEXTS = st.builds(
    decision_pb2.UseContext,
    use_type=st.integers(0, 3),
    content_rating=st.integers(0, 3),
    categories=st.lists(st.integers(0, 4), max_size=3),
    territory=st.sampled_from(["", "JP", "FR"]),
    commercial=st.booleans(),
)
RECEIPTS = st.builds(
    decision_pb2.DecisionReceipt,
    receipt_id=st.sampled_from(["rcp_1", "rcp_2"]),
    licensee_id=st.sampled_from(["lic_1", "lic_2"]),
    characters=st.lists(DECIDED, max_size=3),
    context=CONTEXTS,
    decide_time=st.builds(timestamp_pb2.Timestamp, seconds=st.integers(0, 2 * 3600), nanos=st.integers(0, 10)),
)


@settings(max_examples=200, deadline=None)
@given(receipts=st.lists(RECEIPTS, max_size=12))
def test_a_batch_counts_each_decision_as_its_receipt_states_it(receipts: list[decision_pb2.DecisionReceipt]) -> None:
    records = DecisionRecords()
    expected_counts: Counter[tuple[str, int, str, str, tuple[str, ...]]] = Counter()
    for receipt in receipts:
        records.add(receipt.SerializeToString(), "key_1", SaltPool())
        expected_counts += tallied_one_by_one(receipt)

    counted: Counter[tuple[str, int, str, str, tuple[str, ...]]] = Counter()
    for tally in records.tallies():
        counted[(tally.character_id, tally.hour, tally.licensee_id, tally.use.text(), tally.outcome)] += tally.decisions
    assert counted == expected_counts
    assert len(records.entries) == sum(max(1, len(r.characters)) for r in receipts)
