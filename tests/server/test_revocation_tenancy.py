"""Tenancy on the revocation stream. Seen: every tenant's generator saw every other tenant's grant
ids and free-text revocation reasons on WatchRevocations. Now a generator sees the events of its
own licensee's grants and of the characters it holds grants for, without reasons; a rights holder
those of its own characters, with reasons; staff everything. What is left out is covered by a
``skip``, so the stream stays contiguous and an offline authorizer stays current."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import charter
import pytest
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import grant_pb2
from charter_server.app import CharterServer

from ._serving import Party, Stream, new_party, watch
from ._support import open_channel

Event = grant_pb2.RevocationEvent


@dataclass(frozen=True)
class Tenants:
    """Two parties; licensee A also holds a grant for B's character. The events, in order."""

    a: Party
    b: Party
    shared_grant_id: str
    since: int
    head: int
    auditor: str


def _head(server: CharterServer) -> int:
    with server.db.uow() as uow:
        return int(uow.revocations.head())


@pytest.fixture
def tenants(server: CharterServer, keys: Any) -> Tenants:
    target = f"127.0.0.1:{server.port}"
    admin = server.services.access.create_bootstrap_admin("tenancy").secret
    a, b = new_party(target, admin), new_party(target, admin)
    with charter.Client(target, api_key=admin) as client:
        shared = client.issue_grant(
            character_id=b.character_id,
            licensee_id=a.licensee_id,
            expire_time=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
        )
        since = _head(server)
        client.revoke_grant(b.grant_id, reason="B's breach")  # B's own grant
        client.suspend_character(b.character_id, reason="B's character under review")  # A holds a grant for it
        client.revoke_grant(a.grant_id, reason="A's contract ended")  # A's own grant
    return Tenants(a, b, shared.id, since, _head(server), keys.auditor)


def _read(server: CharterServer, secret: str, since: int, head: int) -> list[az.WatchRevocationsResponse]:
    """Every message up to (and including) the first heartbeat at ``head`` or beyond."""
    with open_channel(f"127.0.0.1:{server.port}") as channel:
        stream = watch(channel, secret, since)
        messages = []
        try:
            while True:
                item = stream.next(timeout=10)
                assert item is not Stream.END, stream.error
                messages.append(item)
                if item.WhichOneof("message") == "heartbeat" and item.heartbeat.sequence >= head:
                    return messages
        finally:
            stream.close()


def _events(messages: list[az.WatchRevocationsResponse]) -> list[tuple[int, str, str]]:
    return [
        (m.event.kind, m.event.grant_id or m.event.character_id, m.event.reason)
        for m in messages
        if m.WhichOneof("message") == "event"
    ]


def test_a_generator_sees_its_own_grants_and_the_characters_it_holds_without_reasons(
    server: CharterServer, tenants: Tenants
) -> None:
    a, b = tenants.a, tenants.b
    messages = _read(server, a.generator, tenants.since, tenants.head)

    assert _events(messages) == [
        (Event.KIND_CHARACTER_SUSPENDED, b.character_id, ""),
        (Event.KIND_REVOKED, a.grant_id, ""),
    ]
    # B's revocation was left out, and said so, so the stream is contiguous for A (and so was the
    # registry's event of the suspension, which comes before the suspension's own).
    assert [m.WhichOneof("message") for m in messages[:3]] == ["skip", "event", "event"]
    assert messages[0].skip.sequence == tenants.since + 2
    assert messages[-1].heartbeat.sequence == tenants.head


def test_another_generator_sees_none_of_them_but_its_own(server: CharterServer, tenants: Tenants) -> None:
    b = tenants.b
    messages = _read(server, b.generator, tenants.since, tenants.head)

    assert _events(messages) == [
        (Event.KIND_REVOKED, b.grant_id, ""),
        (Event.KIND_CHARACTER_SUSPENDED, b.character_id, ""),
    ]
    # The registry's event of the suspension, then A's revocation: left out.
    assert [m.WhichOneof("message") for m in messages[:4]] == ["event", "skip", "event", "skip"]
    assert messages[1].skip.sequence == tenants.since + 2
    assert messages[3].skip.sequence == tenants.head


def test_a_rights_holder_sees_its_characters_events_with_reasons(server: CharterServer, tenants: Tenants) -> None:
    a, b = tenants.a, tenants.b
    of_b = _events(_read(server, b.rights_holder, tenants.since, tenants.head))
    of_a = _events(_read(server, a.rights_holder, tenants.since, tenants.head))

    assert of_b == [
        (Event.KIND_REVOKED, b.grant_id, "B's breach"),
        (Event.KIND_CHARACTER_SUSPENDED, b.character_id, "B's character under review"),
    ]
    assert of_a == [(Event.KIND_REVOKED, a.grant_id, "A's contract ended")]


def test_staff_see_every_event_with_its_reason(server: CharterServer, tenants: Tenants) -> None:
    a, b = tenants.a, tenants.b

    assert _events(_read(server, tenants.auditor, tenants.since, tenants.head)) == [
        (Event.KIND_REVOKED, b.grant_id, "B's breach"),
        (Event.KIND_CHARACTER_SUSPENDED, b.character_id, "B's character under review"),
        (Event.KIND_REVOKED, a.grant_id, "A's contract ended"),
    ]


def test_an_offline_authorizer_stays_current_on_a_stream_with_skips(server: CharterServer, tenants: Tenants) -> None:
    target = f"127.0.0.1:{server.port}"
    with (
        charter.Client(target, api_key=tenants.b.generator) as client,
        charter.OfflineAuthorizer(client, grants=[tenants.b.envelope]) as offline,
    ):
        current = offline.wait_current(min_sequence=tenants.head, timeout=10)
        status = offline.grant_status(tenants.b.grant_id)

    assert current
    assert status is charter.grants.GrantStatus.REVOKED
