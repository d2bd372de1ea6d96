"""The log entries of a decision receipt (built in one constructor call, their time copied from the
receipt) are what the generated code serializes for that ``LogEntry``, for any receipt, with the
salt drawn once per receipt, and carry what the appender's `build_entry` would log."""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime

from charter.transparency import leaf_hash
from charter.v1 import decision_pb2
from charter.v1 import transparency_pb2 as tp
from charter_server.services.transparency.appender import build_entry
from charter_server.services.transparency.receipts import SaltPool, decision_entries
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
