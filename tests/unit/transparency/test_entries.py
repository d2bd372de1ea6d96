"""Log entries are checked against their leaf hash before they are parsed."""

from __future__ import annotations

import hashlib

import pytest
from charter.envelope import RECEIPT_PAYLOAD_TYPE, sign
from charter.transparency import InvalidProof, leaf_hash, open_entry, payload_digest
from charter.v1 import transparency_pb2 as t
from google.protobuf import timestamp_pb2


def _entry() -> bytes:
    return t.LogEntry(
        event_time=timestamp_pb2.Timestamp(seconds=1_780_000_000),
        salt=bytes(range(16)),
        actor_key_id="key_1",
        grant=t.GrantLogged(action=t.GrantLogged.ACTION_REVOKED, grant_id="grt_1", reason="breach"),
    ).SerializeToString()


def test_an_entry_opens_when_its_bytes_hash_to_the_leaf() -> None:
    data = _entry()

    entry = open_entry(data, leaf_hash(data))

    assert entry.WhichOneof("change") == "grant"
    assert entry.grant.action == t.GrantLogged.ACTION_REVOKED


def test_an_altered_entry_is_refused_before_parsing() -> None:
    data = _entry()
    altered = data.replace(b"breach", b"broach")

    with pytest.raises(InvalidProof):
        open_entry(altered, leaf_hash(data))
    with pytest.raises(InvalidProof):
        open_entry(data, leaf_hash(data)[:31])

    assert open_entry(altered, leaf_hash(altered)).grant.reason == "broach"


def test_bytes_that_are_no_entry_are_refused_even_with_the_right_hash() -> None:
    for data in (b"\xff\xff\xff", t.LogEntry(salt=b"x").SerializeToString()):
        with pytest.raises(ValueError) as raised:
            open_entry(data, leaf_hash(data))
        assert not isinstance(raised.value, InvalidProof)


def test_payload_digest_is_the_sha256_of_the_signed_payload() -> None:
    envelope = sign(b"receipt bytes", RECEIPT_PAYLOAD_TYPE, key_id="sk_1", private_key=bytes(32))

    assert payload_digest(envelope) == hashlib.sha256(b"receipt bytes").digest()
