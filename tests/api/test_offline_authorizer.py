"""The SDK's offline authorizer against real servers (SQLite, and PostgreSQL when reachable).

Decisions from held grants without a server call; a revocation seen within the heartbeat
interval; the sequence number that ``RevokeGrant`` returned ("new enemy"); a stale view going to
the server and, with the server stopped, failing closed with ``SERVER_UNREACHABLE``; resuming
after a restart from the last sequence; no signature work on a warm decision; and the requests
that always go to the server (a prompt, quota terms, a character without a held grant, a key
the ring does not know).

The authorizer's clock is its own (real time plus an offset the test moves), so moving it never
moves the servers'. Every server listens on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import charter
import nacl.signing
import pytest
from charter._license import ReceiptJournal
from charter.decision_records import DecisionRecordSigner, generate_key
from charter.decisions import Decision, LicenseDenied
from charter.envelope import RECEIPT_PAYLOAD_TYPE, sign, to_json
from charter.grants import GrantStatus
from charter.offline import OfflineAuthorizer
from charter.offline.cache import STATE_FILE_NAME, CacheKey
from charter.terms import DenyReason
from charter.v1 import (
    api_key_pb2,
    authorization_service_pb2,
    grant_pb2,
    licensee_pb2,
    signing_key_pb2,
    terms_pb2,
)
from charter.v1.envelope_pb2 import Envelope
from charter_server.app import CharterServer, build_server
from charter_server.config import Settings
from server._relay import Relay
from server._support import free_port, spawn_server, wait_serving

IMAGE = terms_pb2.USE_TYPE_IMAGE_GENERATION
VIDEO = terms_pb2.USE_TYPE_VIDEO_GENERATION
TEEN = terms_pb2.CONTENT_RATING_TEEN
ADULT = terms_pb2.CONTENT_RATING_ADULT
WAIT = 10.0  # seconds: the bound of every wait for the background threads


class ManualClock:
    """The authorizer's clock: real time plus an offset that only the test moves."""

    def __init__(self) -> None:
        self._offset = timedelta()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._offset += delta


def _settings(database_url: str, *, listen: str = "127.0.0.1:0", heartbeat: float = 0.2) -> Settings:
    return Settings(
        listen=listen,
        database_url=database_url,
        migrate=True,
        log_format="json",
        shutdown_grace_seconds=1.0,
        revocation_heartbeat_seconds=heartbeat,
        authorization_lease_seconds=0.05,
        # These servers over the session's database are started and stopped for their streams;
        # the session's server runs its log in a process of its own (as in production).
        log_process=False,
        min_client_ping_seconds=0.5,  # the pings of a client that looks for a dead connection quickly
    )


@pytest.fixture(scope="module")
def quick_server(database_url: str, clock: Any) -> Iterator[CharterServer]:
    """A second server over the session's database, with a heartbeat every 0.2 s."""
    built = build_server(_settings(database_url), clock=clock)
    built.start()
    try:
        yield built
    finally:
        built.stop(grace=0)


@pytest.fixture(scope="module")
def quick_target(quick_server: CharterServer) -> str:
    return f"127.0.0.1:{quick_server.port}"


@pytest.fixture(scope="module")
def admin(keys: Any, quick_target: str) -> Iterator[charter.Client]:
    """A staff client of the quick server (its short lease makes revocations return quickly)."""
    with charter.Client(quick_target, api_key=keys.admin) as client:
        yield client


@dataclass(frozen=True)
class Party:
    """A fresh rights holder and licensee, and the secret of a generator key of the licensee."""

    holder_id: str
    licensee_id: str
    generator: str


def _marker() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def party(admin: charter.Client) -> Party:
    holder = admin.create_rights_holder(display_name=f"Studio {_marker()}", contact_email="rights@studio.example")
    licensee = admin.create_licensee(
        display_name=f"App {_marker()}", contact_email="ops@app.example", platform="offline-app"
    )
    key = admin.create_api_key(
        display_name="offline generator", role=api_key_pb2.ROLE_GENERATOR, licensee_id=licensee.id
    )
    return Party(holder.id, licensee.id, key.secret)


def terms(**changes: Any) -> terms_pb2.Terms:
    """Image generation up to TEEN, with ``changes``."""
    base: dict[str, Any] = {"permitted_use_types": [IMAGE], "max_content_rating": TEEN}
    return terms_pb2.Terms(**{**base, **changes})


def character(admin: charter.Client, party: Party, given: terms_pb2.Terms | None = None) -> str:
    """A new character of the party's rights holder, opted in under ``given`` (simple terms by default)."""
    created = admin.create_character(rights_holder_id=party.holder_id, canonical_name=f"Offline {_marker()}")
    admin.opt_in(created.id, given or terms())
    return str(created.id)


def grant(
    admin: charter.Client,
    clock: Any,
    character_id: str,
    licensee_id: str,
    *,
    lifetime: timedelta = timedelta(days=30),
    not_before: datetime | None = None,
    max_uses: int | None = None,
) -> grant_pb2.Grant:
    start = not_before or clock.now()
    return admin.issue_grant(
        character_id=character_id,
        licensee_id=licensee_id,
        not_before=not_before,
        expire_time=start + lifetime,
        max_uses=max_uses,
    )


Make = Callable[..., OfflineAuthorizer]


@pytest.fixture
def make(quick_target: str) -> Iterator[Make]:
    """Builds started authorizers (of the quick server by default); closes them and their clients."""
    opened: list[tuple[OfflineAuthorizer, charter.Client]] = []

    def build(
        secret: str,
        grants: list[grant_pb2.Grant] | None = None,
        *,
        target: str | None = None,
        client: charter.Client | None = None,
        start: bool = True,
        **options: Any,
    ) -> OfflineAuthorizer:
        client = client or charter.Client(target or quick_target, api_key=secret)
        options.setdefault("min_backoff", timedelta(milliseconds=50))
        options.setdefault("max_backoff", timedelta(milliseconds=500))
        authorizer = OfflineAuthorizer(client, grants=[g.envelope for g in grants or ()], **options)
        opened.append((authorizer, client))
        if start:
            authorizer.start(timeout=WAIT)
        return authorizer

    yield build
    for authorizer, client in opened:
        authorizer.close()
        client.close()


def image(authorizer: OfflineAuthorizer, *character_ids: str, **options: Any) -> Decision:
    """Authorize an image of ``character_ids`` rated TEEN."""
    options.setdefault("use_type", IMAGE)
    options.setdefault("content_rating", TEEN)
    return authorizer.authorize(character_ids=list(character_ids), **options)


# Offline decisions ---------------------------------------------------------------------------------


def test_a_held_grant_allows_offline_with_its_obligations(
    admin: charter.Client, party: Party, clock: Any, make: Make
) -> None:
    chosen = terms(attribution_text="© Offline Studio", watermark_required=True, revenue_share_bps=700)
    cid = character(admin, party, chosen)
    held = grant(admin, clock, cid, party.licensee_id)
    authorizer = make(party.generator, [held])

    decision = image(authorizer, cid)

    assert authorizer.licensee_id == party.licensee_id
    assert authorizer.platform == "offline-app"
    assert decision.offline
    assert decision.allowed
    assert decision.receipt is None
    assert decision.licensee_id == party.licensee_id
    (only,) = decision.characters
    assert (only.character_id, only.allowed, only.reasons, only.grant_id) == (cid, True, (), held.id)
    assert only.terms_version == held.terms_version
    assert only.rights_holder_id == party.holder_id
    assert only.obligations is not None
    assert only.obligations.attribution_text == "© Offline Studio"
    assert only.obligations.watermark_required
    assert only.obligations.revenue_share_bps == 700


def test_failed_terms_deny_offline_with_every_reason(
    admin: charter.Client, party: Party, clock: Any, make: Make
) -> None:
    cid = character(admin, party, terms(excluded_territories=["KP"]))
    held = grant(admin, clock, cid, party.licensee_id)
    authorizer = make(party.generator, [held])

    decision = image(authorizer, cid, use_type=VIDEO, content_rating=ADULT, territory="KP", commercial=True)

    assert decision.offline
    assert not decision.allowed
    (only,) = decision.characters
    assert only.grant_id == held.id
    assert only.obligations is None
    assert only.reasons == (
        DenyReason.USE_TYPE_NOT_PERMITTED,
        DenyReason.RATING_EXCEEDS_TERMS,
        DenyReason.TERRITORY_NOT_LICENSED,
        DenyReason.COMMERCIAL_USE_NOT_PERMITTED,
    )


def test_co_characters_are_decided_together_and_every_one_must_be_allowed(
    admin: charter.Client, party: Party, clock: Any, make: Make
) -> None:
    rival = character(admin, party)
    loner = character(admin, party, terms(prohibited_co_appearance_ids=[rival]))
    grants = [grant(admin, clock, cid, party.licensee_id) for cid in (rival, loner)]
    authorizer = make(party.generator, grants)

    together = image(authorizer, loner, rival)
    alone = image(authorizer, loner)

    assert together.offline
    assert not together.allowed
    assert [(c.character_id, c.allowed, c.reasons) for c in together.characters] == [
        (loner, False, (DenyReason.CO_APPEARANCE_PROHIBITED,)),
        (rival, True, ()),
    ]
    assert alone.offline
    assert alone.allowed


def test_grants_outside_their_window_or_for_another_licensee_deny_offline(
    admin: charter.Client, party: Party, clock: Any, make: Make
) -> None:
    later, elsewhere, forged = (character(admin, party) for _ in range(3))
    other_licensee = admin.create_licensee(
        display_name=f"Other {_marker()}", contact_email="ops@other.example", platform="other-app"
    ).id
    not_yet = grant(admin, clock, later, party.licensee_id, not_before=clock.now() + timedelta(hours=2))
    someone_elses = grant(admin, clock, elsewhere, other_licensee)
    tampered = grant(admin, clock, forged, party.licensee_id)
    tampered.envelope.signatures[0].sig = bytes(64)
    authorizer = make(party.generator, [not_yet, someone_elses, tampered])

    decisions = {cid: image(authorizer, cid) for cid in (later, elsewhere, forged)}

    assert all(d.offline and not d.allowed for d in decisions.values())
    assert decisions[later].characters[0].reasons == (DenyReason.GRANT_NOT_YET_VALID,)
    assert decisions[elsewhere].characters[0].reasons == (DenyReason.GRANT_INVALID,)
    assert decisions[forged].characters[0].reasons == (DenyReason.GRANT_INVALID,)


def test_an_expired_grant_denies_offline(admin: charter.Client, party: Party, moved_clock: Any, make: Make) -> None:
    cid = character(admin, party)
    held = grant(admin, moved_clock, cid, party.licensee_id, lifetime=timedelta(hours=1))
    authorizer = make(party.generator, [held], clock=moved_clock.now, key_refresh=timedelta(seconds=1))
    assert image(authorizer, cid).allowed

    # Charter's clock and this one, past the expiry and the skew (a clock ahead of Charter's alone
    # never makes the view current); the view and the keys refresh on it.
    moved_clock.advance(timedelta(hours=3))
    current = authorizer.wait_current(timeout=WAIT)
    decision = image(authorizer, cid)

    assert current
    assert decision.offline
    assert decision.characters[0].reasons == (DenyReason.GRANT_EXPIRED,)


def test_the_newest_grant_that_allows_decides(admin: charter.Client, party: Party, clock: Any, make: Make) -> None:
    cid = character(admin, party)
    older = grant(admin, clock, cid, party.licensee_id)
    newer = grant(admin, clock, cid, party.licensee_id)
    superseded = admin.revoke_grant(newer.id, reason="superseded").sequence
    authorizer = make(party.generator, [older, newer])
    current = authorizer.wait_current(min_sequence=superseded, timeout=WAIT)

    decision = image(authorizer, cid)
    ended = admin.revoke_grant(older.id, reason="ended").sequence
    authorizer.wait_current(min_sequence=ended, timeout=WAIT)
    none_left = image(authorizer, cid, min_sequence=ended)

    assert current
    assert decision.offline
    assert decision.characters[0].grant_id == older.id
    assert decision.allowed
    assert none_left.offline
    assert none_left.characters[0].reasons == (DenyReason.GRANT_REVOKED,)
    assert none_left.characters[0].grant_id == newer.id  # the newest grant's problem is reported


# Revocations and the sequence number ------------------------------------------------------------


def test_a_revocation_is_seen_within_the_heartbeat_interval(
    admin: charter.Client, party: Party, clock: Any, make: Make
) -> None:
    cid = character(admin, party)
    held = grant(admin, clock, cid, party.licensee_id)
    authorizer = make(party.generator, [held])
    assert image(authorizer, cid).allowed

    sequence = admin.revoke_grant(held.id, reason="licence ended").sequence
    returned = time.monotonic()
    seen = authorizer.wait_current(min_sequence=sequence, timeout=WAIT)
    elapsed = time.monotonic() - returned
    decision = image(authorizer, cid, min_sequence=sequence)

    assert seen
    assert elapsed < 2.0  # heartbeat every 0.2 s; the event itself is pushed at once
    assert authorizer.sequence >= sequence
    assert authorizer.grant_status(held.id) is GrantStatus.REVOKED
    assert decision.offline
    assert decision.characters[0].reasons == (DenyReason.GRANT_REVOKED,)


def test_a_sequence_the_view_has_not_seen_is_never_decided_offline(
    admin: charter.Client, party: Party, clock: Any, make: Make
) -> None:
    cid = character(admin, party)
    held = grant(admin, clock, cid, party.licensee_id)
    authorizer = make(party.generator, [held])

    ahead = image(authorizer, cid, min_sequence=authorizer.sequence + 1_000_000)
    # A revocation and, at once, a decision that names its sequence: denied, offline or not.
    sequence = admin.revoke_grant(held.id, reason="breach").sequence
    after = image(authorizer, cid, min_sequence=sequence)

    assert not ahead.offline
    assert ahead.allowed
    assert ahead.receipt is not None
    assert not after.allowed
    assert after.characters[0].reasons == (DenyReason.GRANT_REVOKED,)


def test_a_suspended_grant_denies_until_reinstated(admin: charter.Client, party: Party, clock: Any, make: Make) -> None:
    cid = character(admin, party)
    held = grant(admin, clock, cid, party.licensee_id)
    authorizer = make(party.generator, [held])

    suspended = admin.suspend_grant(held.id, reason="review").sequence
    authorizer.wait_current(min_sequence=suspended, timeout=WAIT)
    during = image(authorizer, cid, min_sequence=suspended)
    status_during = authorizer.grant_status(held.id)
    reinstated = admin.reinstate_grant(held.id).sequence
    authorizer.wait_current(min_sequence=reinstated, timeout=WAIT)
    after = image(authorizer, cid, min_sequence=reinstated)

    assert status_during is GrantStatus.SUSPENDED
    assert during.offline
    assert during.characters[0].reasons == (DenyReason.GRANT_SUSPENDED,)
    assert authorizer.grant_status(held.id) is GrantStatus.ACTIVE
    assert after.offline
    assert after.allowed


def log_head(client: charter.Client, *, after: int) -> int:
    """The revocation log's head as a heartbeat tells it, once it is past ``after``."""
    with client.watch_revocations(after, timeout=WAIT) as watch:
        for message in watch:
            if isinstance(message, authorization_service_pb2.Heartbeat) and message.sequence > after:
                return message.sequence
    raise AssertionError(f"no heartbeat past sequence {after} within {WAIT} s")


def test_a_character_suspended_by_staff_is_denied_offline_until_reinstated(
    admin: charter.Client, party: Party, clock: Any, make: Make
) -> None:
    cid = character(admin, party)
    held = grant(admin, clock, cid, party.licensee_id)
    authorizer = make(party.generator, [held])

    def after_next_event(action: Any) -> Decision:
        seen = authorizer.sequence
        action()
        # A staff action may append several events (the registry's too): decide on them all,
        # once the view has seen them (authorize asks the server while it has not).
        head = log_head(admin, after=seen)
        authorizer.wait_current(min_sequence=head, timeout=WAIT)
        return image(authorizer, cid, min_sequence=head)

    before = image(authorizer, cid)
    during = after_next_event(lambda: admin.suspend_character(cid, reason="rights dispute"))
    after = after_next_event(lambda: admin.reinstate_character(cid))

    assert before.offline and before.allowed
    assert during.offline
    assert during.characters[0].reasons == (DenyReason.CHARACTER_SUSPENDED,)
    assert after.offline and after.allowed


def test_a_character_opted_out_or_archived_is_not_opted_in_offline_as_on_the_server(
    admin: charter.Client, party: Party, clock: Any, make: Make, quick_target: str
) -> None:
    cid = character(admin, party)
    held = grant(admin, clock, cid, party.licensee_id)
    authorizer = make(party.generator, [held])

    def after_events(action: Any) -> Decision:
        # Decide once the view has seen the log's head after the action: counting the action's
        # own events was wrong whenever other tests' events came in between (a shared database).
        seen = authorizer.sequence
        action()
        head = log_head(admin, after=seen)
        authorizer.wait_current(min_sequence=head, timeout=WAIT)
        return image(authorizer, cid, min_sequence=head)

    opted_out = after_events(lambda: admin.opt_out(cid, reason="leaving"))
    with charter.Client(quick_target, api_key=party.generator) as generator:
        on_server = generator.authorize(character_ids=[cid], use_type=IMAGE, content_rating=TEEN)
    opted_in_again = after_events(lambda: admin.opt_in(cid, terms()))
    authorizer.add_grants([grant(admin, clock, cid, party.licensee_id).envelope])
    renewed = image(authorizer, cid)
    suspended = after_events(lambda: admin.suspend_character(cid, reason="rights dispute"))
    archived = after_events(lambda: admin.archive_character(cid))

    assert opted_out.offline
    assert [c.reasons for c in (opted_out.characters[0], on_server.characters[0])] == [
        (DenyReason.CHARACTER_NOT_OPTED_IN,),
        (DenyReason.CHARACTER_NOT_OPTED_IN,),
    ]
    assert opted_in_again.offline
    assert opted_in_again.characters[0].reasons == (DenyReason.GRANT_REVOKED,)  # the old grant stays revoked
    assert renewed.offline and renewed.allowed
    assert suspended.characters[0].reasons == (DenyReason.CHARACTER_SUSPENDED,)
    assert archived.offline
    assert archived.characters[0].reasons == (DenyReason.CHARACTER_NOT_OPTED_IN,)  # archiving lifts the suspension


# Staleness, a stopped server, a restart ------------------------------------------------------------


@dataclass
class OwnServer:
    """A server of the test's own over the session's database, on a port that survives restarts."""

    database_url: str
    clock: Any
    heartbeat: float
    # Picked below the ephemeral range: a port 0 server's port, freed by a stop, could be taken by
    # another test's server (or a connection's local end) before the restart binds it again.
    port: int = field(default_factory=free_port)
    built: CharterServer | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        built = build_server(
            _settings(self.database_url, listen=f"127.0.0.1:{self.port}", heartbeat=self.heartbeat), clock=self.clock
        )
        built.start()
        # Loading the analysers (seconds on a loaded machine, in every server that starts while a
        # process has not loaded them yet) held the GIL long enough that a restarted server took
        # over 10 s to take the authorizer's reconnection.
        built.services.screen.warmed.wait(WAIT * 12)
        self.built, self.port = built, built.port

    def stop(self) -> None:
        if self.built is not None:
            self.built.stop(grace=0)
            self.built = None


@pytest.fixture
def own_server(database_url: str, clock: Any) -> Iterator[Callable[..., OwnServer]]:
    made: list[OwnServer] = []

    def start(heartbeat: float = 0.2) -> OwnServer:
        server = OwnServer(database_url, clock, heartbeat)
        made.append(server)
        server.start()
        return server

    yield start
    for server in made:
        server.stop()


def test_a_view_older_than_max_staleness_goes_to_the_server(
    admin: charter.Client, party: Party, clock: Any, make: Make, own_server: Callable[..., OwnServer]
) -> None:
    # Heartbeats every 300 s: after the first one (right after the backlog), the view only ages.
    server = own_server(heartbeat=300.0)
    cid = character(admin, party)
    held = grant(admin, clock, cid, party.licensee_id)
    own = ManualClock()
    authorizer = make(party.generator, [held], target=server.target, clock=own.now, max_staleness=timedelta(seconds=30))

    fresh = image(authorizer, cid)
    own.advance(timedelta(seconds=29))
    still_fresh = image(authorizer, cid)
    own.advance(timedelta(seconds=2))
    stale = image(authorizer, cid)

    assert fresh.offline
    assert still_fresh.offline
    assert not authorizer.is_current()
    staleness = authorizer.staleness
    assert staleness is not None
    assert staleness > timedelta(seconds=30)
    assert not stale.offline
    assert stale.allowed
    assert stale.receipt is not None


def test_a_stopped_server_fails_closed_at_max_staleness(
    admin: charter.Client, party: Party, clock: Any, make: Make, own_server: Callable[..., OwnServer]
) -> None:
    server = own_server()
    cid = character(admin, party)
    held = grant(admin, clock, cid, party.licensee_id)
    own = ManualClock()
    authorizer = make(party.generator, [held], target=server.target, clock=own.now, max_staleness=timedelta(seconds=30))
    assert authorizer.is_current()

    server.stop()
    own.advance(timedelta(seconds=20))
    within = image(authorizer, cid)
    own.advance(timedelta(seconds=15))
    beyond = image(authorizer, cid, timeout=3)
    with (
        pytest.raises(LicenseDenied) as denied,
        authorizer.license(character_ids=[cid], use_type=IMAGE, content_rating=TEEN, timeout=3),
    ):
        pytest.fail("the block must not run")

    assert within.offline
    assert within.allowed
    assert beyond.offline
    assert not beyond.allowed
    assert beyond.receipt is None
    # It was current, so the reason is its own: the revocations it holds are too old.
    assert [(c.character_id, c.reasons) for c in beyond.characters] == [(cid, (DenyReason.REVOCATIONS_STALE,))]
    assert denied.value.reasons == (DenyReason.REVOCATIONS_STALE,)


def test_a_clock_stepped_back_with_the_server_stopped_fails_closed_at_once(
    admin: charter.Client, party: Party, clock: Any, make: Make, own_server: Callable[..., OwnServer]
) -> None:
    server = own_server()
    cid = character(admin, party)
    held = grant(admin, clock, cid, party.licensee_id, not_before=clock.now() - timedelta(days=1))
    own = ManualClock()
    authorizer = make(party.generator, [held], target=server.target, clock=own.now, max_staleness=timedelta(seconds=2))
    assert authorizer.is_current()

    server.stop()  # cut off from here on
    admin.revoke_grant(held.id, reason="licence ended")  # through the other server
    own.advance(timedelta(hours=-1))  # the host's clock stepped back (NTP, a VM resumed, an operator)
    declined = authorizer.decide(cid, authorizer.use_context(use_type=IMAGE, content_rating=TEEN))
    after = image(authorizer, cid, timeout=2)

    assert declined is None
    assert after.offline
    assert not after.allowed
    assert [c.reasons for c in after.characters] == [(DenyReason.REVOCATIONS_STALE,)]


def test_cache_corrupted_is_no_longer_the_reason_once_the_view_was_current_again(
    admin: charter.Client,
    party: Party,
    clock: Any,
    make: Make,
    own_server: Callable[..., OwnServer],
    tmp_path: Path,
) -> None:
    server = own_server()
    cid = character(admin, party)
    held = grant(admin, clock, cid, party.licensee_id)
    server.stop()
    key = CacheKey.of_api_key(party.generator)
    (tmp_path / STATE_FILE_NAME).write_bytes(
        b"charter-offline-state v2\n" + key.fingerprint.encode() + b"\n" + b"0" * 64 + b"\nlic_x\n{}"
    )
    own = ManualClock()
    authorizer = make(
        party.generator,
        [held],
        target=server.target,
        clock=own.now,
        cache_dir=tmp_path,
        max_staleness=timedelta(seconds=5),
        start=False,
    )
    authorizer.start(timeout=0.5)
    first = image(authorizer, cid, timeout=1)
    server.start()
    current = authorizer.wait_current(timeout=WAIT)
    fresh = image(authorizer, cid)
    server.stop()
    own.advance(timedelta(seconds=10))  # past max_staleness
    later = image(authorizer, cid, timeout=1)

    assert [c.reasons for c in first.characters] == [(DenyReason.CACHE_CORRUPTED,)]
    assert current
    assert fresh.offline
    assert fresh.allowed
    assert later.offline
    assert [c.reasons for c in later.characters] == [(DenyReason.REVOCATIONS_STALE,)]


# A log as the view saw it (1 to 5), then restored to 2 and grown again: its new history revokes
# another grant at 3 and goes on to 7.


def test_a_prompt_is_never_decided_offline_without_local_screening_and_says_so_when_stale(
    admin: charter.Client, party: Party, clock: Any, make: Make, own_server: Callable[..., OwnServer]
) -> None:
    server = own_server()
    cid = character(admin, party)
    held = grant(admin, clock, cid, party.licensee_id)
    own = ManualClock()
    authorizer = make(party.generator, [held], target=server.target, clock=own.now, max_staleness=timedelta(seconds=30))
    assert authorizer.is_current()

    server.stop()
    within = image(authorizer, cid, prompt="a watercolour landscape", timeout=3)
    own.advance(timedelta(seconds=35))
    beyond = image(authorizer, cid, prompt="a watercolour landscape", timeout=3)

    # Current or not, a prompt needs the server (no registry snapshot): that is the reason.
    assert (within.offline, within.allowed, beyond.offline, beyond.allowed) == (True, False, True, False)
    assert [c.reasons for c in within.characters] == [(DenyReason.SERVER_UNREACHABLE,)]
    assert [c.reasons for c in beyond.characters] == [(DenyReason.SERVER_UNREACHABLE,)]


@pytest.fixture
def server_process(database_url: str, tmp_path: Any) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``charter_server serve`` in a child process over the session's database, heartbeat 0.2 s
    (started and awaited as the server tests start theirs: on a port it has bound itself)."""
    server = spawn_server(
        database_url,
        tmp_path / "server.log",
        options=("--revocation-heartbeat-seconds", "0.2", "--authorization-lease-seconds", "0.05"),
    )
    try:
        wait_serving(server, 30)
        yield server.process, server.target
    finally:
        if server.process.poll() is None:
            server.process.kill()
        server.process.wait(10)


@pytest.mark.slow
def test_with_the_server_down_what_cannot_be_decided_offline_is_denied_with_its_own_reason(
    admin: charter.Client, party: Party, clock: Any, make: Make, own_server: Callable[..., OwnServer]
) -> None:
    server = own_server()
    plain, capped, rotated = (character(admin, party) for _ in range(3))
    held = [grant(admin, clock, plain, party.licensee_id), grant(admin, clock, capped, party.licensee_id, max_uses=5)]
    admin_key = admin.create_api_key(
        display_name="edge admin", role=api_key_pb2.ROLE_LICENSEE_ADMIN, licensee_id=party.licensee_id
    ).secret
    seed, public = generate_key()
    with charter.Client(server.target, api_key=admin_key) as licensee_admin:
        key_id = licensee_admin.register_licensee_key(public, display_name="edge").key.key_id
    signer = DecisionRecordSigner(key_id=key_id, private_key=seed, licensee_id=party.licensee_id)
    authorizer = make(party.generator, held, target=server.target, signer=signer)
    admin.rotate_signing_key()
    authorizer.add_grants([grant(admin, clock, rotated, party.licensee_id).envelope])  # a key it does not know

    server.stop()
    answers = {cid: image(authorizer, cid, timeout=3) for cid in (plain, capped, rotated)}
    both = image(authorizer, plain, capped, timeout=3)

    assert answers[plain].offline and answers[plain].allowed
    assert {cid: (a.offline, a.characters[0].reasons) for cid, a in answers.items() if cid != plain} == {
        capped: (True, (DenyReason.LEASE_EXPIRED,)),  # a cap: only a leased use may be spent offline
        rotated: (True, (DenyReason.UNKNOWN_KEY,)),
    }
    # The request as a whole goes to the server: the character it could not decide says why.
    assert [c.reasons for c in both.characters] == [(DenyReason.SERVER_UNREACHABLE,), (DenyReason.LEASE_EXPIRED,)]


def test_with_the_server_down_an_archived_licensee_is_denied_as_archived(
    admin: charter.Client, party: Party, clock: Any, make: Make, own_server: Callable[..., OwnServer]
) -> None:
    server = own_server()
    cid = character(admin, party)
    held = grant(admin, clock, cid, party.licensee_id)
    authorizer = make(party.generator, [held], target=server.target, key_refresh=timedelta(seconds=1))
    before = image(authorizer, cid)

    admin.archive_licensee(party.licensee_id)
    deadline = time.monotonic() + WAIT
    while authorizer.is_current() and time.monotonic() < deadline:  # until a refresh learns of it
        time.sleep(0.05)
    server.stop()
    after = image(authorizer, cid, timeout=3)

    assert before.offline and before.allowed
    assert after.offline and not after.allowed
    assert after.characters[0].reasons == (DenyReason.LICENSEE_ARCHIVED,)


def test_a_killed_server_process_fails_closed_at_max_staleness(
    admin: charter.Client,
    party: Party,
    clock: Any,
    make: Make,
    server_process: tuple[subprocess.Popen[bytes], str],
) -> None:
    child, target = server_process
    cid = character(admin, party)
    held = grant(admin, clock, cid, party.licensee_id)
    own = ManualClock()
    authorizer = make(party.generator, [held], target=target, clock=own.now, max_staleness=timedelta(seconds=30))
    current = authorizer.is_current()
    sequence = authorizer.sequence

    child.kill()  # SIGKILL: no goodbye on the stream
    child.wait(10)
    own.advance(timedelta(seconds=25))
    within = image(authorizer, cid)
    own.advance(timedelta(seconds=10))
    beyond = image(authorizer, cid, timeout=3)

    assert current
    assert within.offline
    assert within.allowed
    assert authorizer.sequence == sequence
    assert not authorizer.is_current()
    assert beyond.offline
    assert not beyond.allowed
    assert beyond.characters[0].reasons == (DenyReason.REVOCATIONS_STALE,)


def test_a_prompt_only_request_fails_closed_when_the_server_is_unreachable(
    party: Party, make: Make, own_server: Callable[..., OwnServer]
) -> None:
    server = own_server()
    authorizer = make(party.generator, target=server.target)
    server.stop()

    decision = authorizer.authorize(prompt="a portrait of someone", use_type=IMAGE, content_rating=TEEN, timeout=3)
    block = authorizer.license(prompt="a portrait of someone", use_type=IMAGE, content_rating=TEEN, timeout=3)
    with pytest.raises(LicenseDenied) as denied, block:
        pytest.fail("the block ran although the request was denied")

    assert denied.value.reasons == (DenyReason.SERVER_UNREACHABLE,)
    assert decision.offline
    assert not decision.allowed
    assert decision.characters == ()
    # Nothing was declared to carry the reason, so the request carries it.
    assert decision.request_reasons == (DenyReason.SERVER_UNREACHABLE,)
    assert decision.reasons == (DenyReason.SERVER_UNREACHABLE,)


def test_after_a_restart_the_stream_resumes_from_the_last_sequence(
    admin: charter.Client, party: Party, clock: Any, make: Make, own_server: Callable[..., OwnServer]
) -> None:
    server = own_server()
    cid = character(admin, party)
    # A revocation before the authorizer starts, so its position is past zero even when this
    # test runs first on a fresh database.
    admin.revoke_grant(grant(admin, clock, cid, party.licensee_id).id, reason="an earlier revocation")
    held = grant(admin, clock, cid, party.licensee_id)
    client = charter.Client(server.target, api_key=party.generator)
    opened: list[int] = []
    watch = client.watch_revocations

    def recording(since_sequence: int = 0, **options: Any) -> Any:
        opened.append(since_sequence)
        return watch(since_sequence, **options)

    client.watch_revocations = recording  # type: ignore[method-assign]
    authorizer = make(party.generator, [held], client=client)
    before = authorizer.sequence

    server.stop()
    revoked = admin.revoke_grant(held.id, reason="while the server was down").sequence  # through another replica
    server.start()  # same port
    caught_up = authorizer.wait_current(min_sequence=revoked, timeout=WAIT)
    decision = image(authorizer, cid, min_sequence=revoked)

    assert before > 0
    assert caught_up
    assert opened[0] == 0
    # Reopened from where the view was, never from zero (a heartbeat may still move the view
    # past `before` between the read and the stop, so equality is not asserted).
    assert len(opened) >= 2
    assert all(since >= before for since in opened[1:])
    assert decision.offline
    assert decision.characters[0].reasons == (DenyReason.GRANT_REVOKED,)


def test_after_an_outage_with_streams_reopened_while_it_lasted_the_view_catches_up(
    admin: charter.Client, party: Party, clock: Any, make: Make, own_server: Callable[..., OwnServer]
) -> None:
    # A stream reopened while the server is down used to end UNAVAILABLE under gRPC's own retries
    # with its next read never returning (grpcio 1.85), and the watcher stayed stuck in it for good:
    # the view never caught up once the server was back, and close() waited its whole bound.
    server = own_server()
    cid = character(admin, party)
    held = grant(admin, clock, cid, party.licensee_id)
    authorizer = make(party.generator, [held], target=server.target)

    server.stop()
    time.sleep(2.5)  # the outage: the watcher reopens the stream several times meanwhile
    revoked = admin.revoke_grant(held.id, reason="during the outage").sequence  # through another replica
    server.start()  # same port
    caught_up = authorizer.wait_current(min_sequence=revoked, timeout=WAIT)
    decision = image(authorizer, cid, min_sequence=revoked)

    assert caught_up
    assert decision.offline
    assert decision.characters[0].reasons == (DenyReason.GRANT_REVOKED,)


def test_a_connection_that_went_silent_is_found_dead_and_the_view_catches_up(
    admin: charter.Client, party: Party, clock: Any, make: Make, quick_server: CharterServer
) -> None:
    # The path to the server dies without a word (no FIN, no RST): without keepalive pings the
    # channel kept the dead connection, every reopened stream went onto it and heard nothing, and
    # the view never caught up (nor did a call to the server get through). The SDK pings every
    # 30 s; this client every second, which this server accepts (its minimum is 0.5 s).
    cid = character(admin, party)
    held = grant(admin, clock, cid, party.licensee_id)
    every_second = [(name, 1000) for name in ("grpc.keepalive_time_ms", "grpc.keepalive_timeout_ms")]
    with Relay(("127.0.0.1", quick_server.port)) as relay:
        client = charter.Client(relay.target, api_key=party.generator, options=every_second)
        authorizer = make(party.generator, [held], client=client, idle_timeout=timedelta(seconds=2))
        time.sleep(2.5)  # pinged twice, and answered: the connection is kept
        kept = relay.accepted
        silenced = relay.silence()
        revoked = admin.revoke_grant(held.id, reason="while the connection was silent").sequence
        caught_up = authorizer.wait_current(min_sequence=revoked, timeout=WAIT)
        decision = image(authorizer, cid, min_sequence=revoked)

    assert (kept, silenced) == (2, 2)  # the client's two channels: calls, and streams
    assert relay.accepted >= 3  # a new connection
    assert caught_up
    assert decision.offline
    assert decision.characters[0].reasons == (DenyReason.GRANT_REVOKED,)


# What never goes offline --------------------------------------------------------------------------


def test_a_prompt_goes_to_the_server(admin: charter.Client, party: Party, clock: Any, make: Make) -> None:
    cid = character(admin, party)
    authorizer = make(party.generator, [grant(admin, clock, cid, party.licensee_id)])

    decision = image(authorizer, cid, prompt="a watercolour landscape")

    assert not decision.offline
    assert decision.allowed
    assert decision.receipt is not None


def test_terms_with_a_quota_go_to_the_server(admin: charter.Client, party: Party, clock: Any, make: Make) -> None:
    cid = character(admin, party, terms(daily_quota=5))
    authorizer = make(party.generator, [grant(admin, clock, cid, party.licensee_id)])

    decision = image(authorizer, cid)
    denied_offline = image(authorizer, cid, content_rating=ADULT)  # a denial counts nothing: offline

    assert not decision.offline
    assert decision.allowed
    assert denied_offline.offline
    assert denied_offline.characters[0].reasons == (DenyReason.RATING_EXCEEDS_TERMS,)


def test_a_grant_with_a_cap_of_uses_goes_to_the_server(
    admin: charter.Client, party: Party, clock: Any, make: Make
) -> None:
    cid = character(admin, party)
    authorizer = make(party.generator, [grant(admin, clock, cid, party.licensee_id, max_uses=1)])

    first, second = image(authorizer, cid), image(authorizer, cid)

    assert (first.offline, first.allowed) == (False, True)
    assert (second.offline, second.allowed) == (False, False)
    assert second.characters[0].reasons == (DenyReason.QUOTA_EXHAUSTED,)


def test_a_character_without_a_held_grant_goes_to_the_server(
    admin: charter.Client, party: Party, clock: Any, make: Make
) -> None:
    held_for, on_record = character(admin, party), character(admin, party)
    authorizer = make(party.generator, [grant(admin, clock, held_for, party.licensee_id)])
    grant(admin, clock, on_record, party.licensee_id)  # on record only
    unknown = "chr_" + uuid.uuid4().hex

    decision = image(authorizer, held_for, on_record)
    with pytest.raises(charter.InvalidArgumentError) as raised:
        image(authorizer, unknown)

    assert not decision.offline
    assert decision.allowed
    assert [c.character_id for c in decision.characters] == [held_for, on_record]
    assert [v.field for v in raised.value.field_violations] == ["character_ids[0]"]


def test_a_grant_signed_by_a_key_the_ring_does_not_know_goes_to_the_server_until_the_refresh(
    admin: charter.Client, party: Party, clock: Any, make: Make
) -> None:
    cid = character(admin, party)
    authorizer = make(party.generator)
    version = authorizer.key_set_version
    admin.rotate_signing_key()
    held = grant(admin, clock, cid, party.licensee_id)  # signed by the new key
    authorizer.add_grants([held.envelope])

    first = image(authorizer, cid)  # asks for a refresh of the key set
    deadline = time.monotonic() + WAIT
    while authorizer.key_set_version == version and time.monotonic() < deadline:
        time.sleep(0.05)
    authorizer.wait_current(timeout=WAIT)
    later = image(authorizer, cid)

    assert not first.offline
    assert first.allowed
    assert authorizer.key_set_version != version
    assert later.offline
    assert later.allowed


# The lean path, the cache, the API ------------------------------------------------------------------


def test_a_warm_decision_does_no_signature_work(
    admin: charter.Client, party: Party, clock: Any, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = character(admin, party)
    authorizer = make(party.generator, [grant(admin, clock, cid, party.licensee_id)])
    me = threading.current_thread()
    checks: list[int] = []
    original = nacl.signing.VerifyKey.verify

    def counted(self: nacl.signing.VerifyKey, *args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is me:
            checks.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(nacl.signing.VerifyKey, "verify", counted)
    context = authorizer.use_context(use_type=IMAGE, content_rating=TEEN)

    first = authorizer.decide(cid, context)
    cold_checks = len(checks)
    repeated = [authorizer.decide(cid, context) for _ in range(200)]
    through_authorize = image(authorizer, cid)

    assert first is not None
    assert first.allowed
    assert cold_checks == 1
    assert len(checks) == 1
    assert all(d is first for d in repeated)  # one shared decision, nothing rebuilt
    assert through_authorize.offline
    assert through_authorize.characters[0] is first


def test_a_new_key_ring_rechecks_held_grants_without_signature_work(
    admin: charter.Client, party: Party, clock: Any, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = character(admin, party)
    authorizer = make(party.generator, [grant(admin, clock, cid, party.licensee_id)], key_refresh=timedelta(seconds=1))
    context = authorizer.use_context(use_type=IMAGE, content_rating=TEEN)
    first = authorizer.decide(cid, context)
    version = authorizer.key_set_version
    me = threading.current_thread()
    checks: list[int] = []
    original = nacl.signing.VerifyKey.verify

    def counted(self: nacl.signing.VerifyKey, *args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is me:
            checks.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(nacl.signing.VerifyKey, "verify", counted)
    admin.rotate_signing_key()  # the old key retires: it still verifies what it signed
    moved = _until(lambda: authorizer.key_set_version != version)
    again = authorizer.decide(cid, authorizer.use_context(use_type=IMAGE, content_rating=TEEN))

    assert first is not None
    assert moved
    assert again is first
    assert checks == []


def test_a_revoked_signing_key_stops_verifying_offline_within_a_heartbeat(
    admin: charter.Client, party: Party, clock: Any, make: Make
) -> None:
    """The heartbeat carries the key set's version, so the authorizer fetches the key set at once,
    not at its next refresh (ten minutes here)."""
    cid = character(admin, party)
    admin.rotate_signing_key()
    held = grant(admin, clock, cid, party.licensee_id)
    key_id = held.envelope.signatures[0].keyid
    admin.rotate_signing_key()  # the grant's key retires and still verifies what it signed
    authorizer = make(party.generator, [held], key_refresh=timedelta(minutes=10))
    _until(lambda: authorizer.key_set_version == admin.get_key_set().version)
    before = image(authorizer, cid)

    admin.revoke_signing_key(key_id, reason="compromised")
    version = admin.get_key_set().version
    moved = _until(lambda: authorizer.key_set_version == version)
    after = image(authorizer, cid)

    assert (before.offline, before.allowed) == (True, True)
    assert moved
    assert authorizer.is_current()
    assert (after.offline, after.allowed, after.characters[0].reasons) == (True, False, (DenyReason.GRANT_INVALID,))


def test_warm_up_moves_the_signature_work_before_the_first_decision(
    admin: charter.Client, party: Party, clock: Any, make: Make
) -> None:
    cids = [character(admin, party) for _ in range(2)]
    authorizer = make(party.generator, [grant(admin, clock, cid, party.licensee_id) for cid in cids])

    assert authorizer.warm_up() == 2
    assert authorizer.warm_up() == 0


def test_decide_declines_what_it_cannot_decide_offline(
    admin: charter.Client, party: Party, clock: Any, make: Make
) -> None:
    cid, quota = character(admin, party), character(admin, party, terms(monthly_quota=100))
    authorizer = make(party.generator, [grant(admin, clock, c, party.licensee_id) for c in (cid, quota)])
    context = authorizer.use_context(use_type=IMAGE, content_rating=TEEN)
    old = authorizer.use_context(use_type=IMAGE, content_rating=TEEN)
    object.__setattr__(old, "time", context.time - timedelta(minutes=1))
    foreign = authorizer.use_context(use_type=IMAGE, content_rating=TEEN)
    object.__setattr__(foreign, "licensee_id", "lic_" + "0" * 32)

    assert authorizer.decide(cid, context) is not None
    assert authorizer.decide("chr_" + uuid.uuid4().hex, context) is None  # no held grant
    assert authorizer.decide(quota, context) is None  # quota terms: the server counts
    assert authorizer.decide(cid, context, min_sequence=authorizer.sequence + 1) is None
    assert authorizer.decide(cid, old) is None
    assert authorizer.decide(cid, foreign) is None


def test_license_records_an_offline_use_in_the_clients_journal(
    admin: charter.Client, party: Party, clock: Any, make: Make
) -> None:
    cid = character(admin, party)
    client = charter.Client(admin.target, api_key=party.generator)
    authorizer = make(party.generator, [grant(admin, clock, cid, party.licensee_id)], client=client)

    with authorizer.license(character_ids=[cid], use_type=IMAGE, content_rating=TEEN) as granted:
        pass
    with (
        pytest.raises(LicenseDenied) as denied,
        authorizer.license(character_ids=[cid], use_type=IMAGE, content_rating=ADULT),
    ):
        pytest.fail("the block must not run")

    recorded = client.receipts.drain()
    assert granted.used
    assert granted.receipt is None
    assert granted.decision.offline
    assert recorded == [granted]
    assert denied.value.reasons == (DenyReason.RATING_EXCEEDS_TERMS,)


def test_add_grants_takes_json_skips_duplicates_and_refuses_what_is_not_a_grant(
    admin: charter.Client, party: Party, clock: Any, make: Make
) -> None:
    cid = character(admin, party)
    held = grant(admin, clock, cid, party.licensee_id)
    authorizer = make(party.generator, start=False)
    receipt = sign(b"\x08\x01", RECEIPT_PAYLOAD_TYPE, key_id="sk_0123456789abcdef", private_key=bytes(32))

    added = authorizer.add_grants([to_json(held.envelope), held.envelope])
    again = authorizer.add_grants([held.envelope])
    with pytest.raises(ValueError):
        authorizer.add_grants([receipt])
    with pytest.raises(ValueError):
        authorizer.add_grants(["{not json"])
    with pytest.raises(ValueError):
        authorizer.add_grants([Envelope(payload=held.envelope.payload, payload_type=held.envelope.payload_type)])
    before_start = authorizer.authorize(character_ids=[cid], use_type=IMAGE, content_rating=TEEN)
    authorizer.start(timeout=WAIT)
    after_start = image(authorizer, cid)

    assert (added, again) == (1, 0)
    assert not before_start.offline  # not started: the server decides
    assert before_start.allowed
    assert after_start.offline
    assert after_start.allowed


def test_start_needs_a_generator_key(keys: Any, make: Make) -> None:
    with pytest.raises(ValueError):
        make(keys.admin)


def test_authorize_checks_its_arguments_as_the_client_does(
    admin: charter.Client, party: Party, clock: Any, make: Make
) -> None:
    cid = character(admin, party)
    authorizer = make(party.generator, [grant(admin, clock, cid, party.licensee_id)])

    # Names are accepted at run time, as Client.authorize accepts them.
    by_name = authorizer.authorize(
        character_ids=[cid],
        use_type="image_generation",  # type: ignore[arg-type]
        content_rating="teen",  # type: ignore[arg-type]
    )
    with pytest.raises(ValueError):
        image(authorizer, cid, cid)
    with pytest.raises(ValueError):
        authorizer.authorize(use_type=IMAGE, content_rating=TEEN)
    with pytest.raises(ValueError):
        image(authorizer, cid, use_type=999)
    with pytest.raises(ValueError):
        image(authorizer, cid, categories=[999])

    assert by_name.offline
    assert by_name.allowed


def test_decisions_from_many_threads_never_allow_once_the_revocation_is_in_the_view(
    admin: charter.Client, party: Party, clock: Any, make: Make
) -> None:
    cid = character(admin, party)
    held = grant(admin, clock, cid, party.licensee_id)
    authorizer = make(party.generator, [held])
    context = authorizer.use_context(use_type=IMAGE, content_rating=TEEN)
    revoked: list[int] = []
    stop = threading.Event()
    # Per thread: decisions allowed before the revocation was known, decisions made once the view
    # had seen it (checked before deciding), and how many of those allowed.
    counts = [[0, 0, 0] for _ in range(4)]
    failures: list[BaseException] = []

    def decide(count: list[int]) -> None:
        try:
            deadline = time.monotonic() + 10
            for _ in range(5_000_000):
                if stop.is_set() or time.monotonic() > deadline:
                    return
                known = bool(revoked) and authorizer.sequence >= revoked[0]
                decided = authorizer.decide(cid, context)
                allowed = decided is not None and decided.allowed
                if known:
                    count[1] += 1
                    count[2] += allowed
                else:
                    count[0] += allowed
        except BaseException as error:  # reported below, in the test's thread
            failures.append(error)

    threads = [threading.Thread(target=decide, args=(count,)) for count in counts]
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    revoked.append(admin.revoke_grant(held.id, reason="while deciding").sequence)
    caught_up = authorizer.wait_current(min_sequence=revoked[0], timeout=WAIT)
    time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join(WAIT)

    assert caught_up
    assert not failures
    assert not any(thread.is_alive() for thread in threads)
    assert all(before > 0 for before, _, _ in counts)  # every thread allowed before the revocation
    assert sum(known for _, known, _ in counts) > 0
    assert sum(allowed for _, _, allowed in counts) == 0


# The stream's edge cases, against a scripted client (no server) ------------------------------------


class ScriptedWatch:
    """One stream: the scripted messages, then (unless told to end) nothing until cancelled."""

    def __init__(self, messages: list[Any], *, end: bool) -> None:
        self._messages = list(messages)
        self._end = end
        self.cancelled = threading.Event()

    def cancel(self) -> None:
        self.cancelled.set()

    def __iter__(self) -> ScriptedWatch:
        return self

    def __next__(self) -> Any:
        if self._messages and not self.cancelled.is_set():
            return self._messages.pop(0)
        if not self._end:
            self.cancelled.wait(WAIT)
        raise StopIteration

    def __enter__(self) -> ScriptedWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class ScriptedClient:
    """Answers what the authorizer asks from memory; each stream opened plays the next script."""

    def __init__(self, *scripts: tuple[list[Any], bool] | Exception) -> None:
        self._scripts = list(scripts)
        self.opened: list[int] = []
        self.receipts = ReceiptJournal()

    def get_caller(self, **_: Any) -> api_key_pb2.ApiKey:
        return api_key_pb2.ApiKey(role=api_key_pb2.ROLE_GENERATOR, licensee_id="lic_" + "1" * 32)

    def get_licensee(self, licensee_id: str, **_: Any) -> licensee_pb2.Licensee:
        return licensee_pb2.Licensee(id=licensee_id, platform="scripted", state=licensee_pb2.Licensee.STATE_ACTIVE)

    def get_key_set(self, **_: Any) -> signing_key_pb2.KeySet:
        return signing_key_pb2.KeySet(version="1")

    def watch_revocations(self, since_sequence: int = 0, **_: Any) -> ScriptedWatch:
        self.opened.append(since_sequence)
        script = self._scripts.pop(0) if self._scripts else ([], False)
        if isinstance(script, Exception):  # the call fails
            raise script
        messages, end = script
        return ScriptedWatch(messages, end=end)


def _event(sequence: int, kind: int = grant_pb2.RevocationEvent.KIND_REVOKED) -> grant_pb2.RevocationEvent:
    return grant_pb2.RevocationEvent(sequence=sequence, grant_id=f"grt_{sequence:032x}", kind=kind)  # type: ignore[arg-type]


def _beat(sequence: int) -> authorization_service_pb2.Heartbeat:
    return authorization_service_pb2.Heartbeat(sequence=sequence)


@contextmanager
def scripted(client: ScriptedClient, **options: Any) -> Iterator[OfflineAuthorizer]:
    options.setdefault("min_backoff", timedelta(milliseconds=10))
    options.setdefault("max_backoff", timedelta(milliseconds=50))
    authorizer = OfflineAuthorizer(client, **options)  # type: ignore[arg-type]
    authorizer.start(timeout=None)
    try:
        yield authorizer
    finally:
        authorizer.close()


def _until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_a_gap_in_the_stream_reopens_it_after_the_last_event_applied() -> None:
    client = ScriptedClient(([_event(1), _event(3)], False), ([_event(2), _event(3), _beat(3)], False))
    with scripted(client) as authorizer:
        current = authorizer.wait_current(min_sequence=3, timeout=WAIT)
        status = authorizer.grant_status(f"grt_{2:032x}")

    assert current
    assert client.opened[:2] == [0, 1]
    assert status is GrantStatus.REVOKED


def test_a_skip_moves_the_view_along_and_the_next_event_follows_on_from_it() -> None:
    """The server leaves out other licensees' events with a skip: no gap, no reopened stream."""
    skip = authorization_service_pb2.RevocationSkip
    client = ScriptedClient(([skip(sequence=2), _event(3), skip(sequence=5), _beat(5)], False))
    with scripted(client) as authorizer:
        current = authorizer.wait_current(min_sequence=5, timeout=WAIT)
        status = authorizer.grant_status(f"grt_{3:032x}")

    assert current
    assert client.opened == [0]
    assert status is GrantStatus.REVOKED


def test_a_skip_alone_never_makes_the_view_current() -> None:
    client = ScriptedClient(([authorization_service_pb2.RevocationSkip(sequence=4)], False))
    with scripted(client) as authorizer:
        moved = _until(lambda: authorizer.sequence == 4)
        time.sleep(0.1)
        fresh = authorizer.fresh_as_of

    assert moved
    assert fresh is None


def test_an_event_kind_this_sdk_does_not_know_stops_offline_decisions_for_good() -> None:
    client = ScriptedClient(([_event(1, kind=99), _beat(1)], True), ([_beat(1)], False))
    with scripted(client) as authorizer:
        seen = _until(lambda: authorizer.fresh_as_of is not None and len(client.opened) >= 2)
        sequence, current = authorizer.sequence, authorizer.is_current()

    assert seen
    assert sequence == 1
    assert not current


def test_suspend_then_revoke_then_reinstate_keeps_the_grant_revoked() -> None:
    suspended, reinstated = grant_pb2.RevocationEvent.KIND_SUSPENDED, grant_pb2.RevocationEvent.KIND_REINSTATED
    same = "grt_" + "a" * 32
    kinds = [suspended, reinstated, suspended, grant_pb2.RevocationEvent.KIND_REVOKED, reinstated]
    events = [grant_pb2.RevocationEvent(sequence=n, grant_id=same, kind=k) for n, k in enumerate(kinds, 1)]
    client = ScriptedClient(([*events, _beat(5)], False))
    with scripted(client) as authorizer:
        current = authorizer.wait_current(min_sequence=5, timeout=WAIT)
        status = authorizer.grant_status(same)

    assert current
    assert status is GrantStatus.REVOKED


def test_an_idle_stream_is_dropped_and_reopened() -> None:
    client = ScriptedClient(([_beat(0)], False), ([_beat(0)], False))
    with scripted(client, idle_timeout=timedelta(milliseconds=300)) as authorizer:
        reopened = _until(lambda: len(client.opened) >= 2)
        current = authorizer.wait_current(timeout=WAIT)

    assert reopened
    assert current
