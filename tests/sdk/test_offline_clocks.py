"""Every age the offline authorizer decides with is bounded on its wall clock and on its monotonic
clock: the key set's grace (``key_refresh + max_staleness`` since it was last fetched) and the
registry snapshot's staleness, as the revocation view's. A wall clock stepped back never keeps a
key set or a snapshot in use beyond its bound; one stepped forward makes it stale sooner; a time
kept in the cache directory later than the clock's now is stale from the start.

Against the SDK tests' real server (a heartbeat every 0.05 s). The authorizer's two clocks are the
test's (`Clocks`): they stand still unless the test moves them, so nothing here sleeps; each
heartbeat after a move is stamped with the moved clocks, which is what the tests wait for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import charter
from charter import Client, OfflineAuthorizer
from charter.decisions import Decision
from charter.offline.cache import CacheKey, OfflineState, load_state, save_state
from charter.terms import DenyReason
from charter.v1 import character_pb2, offline_pb2, offline_service_pb2, signing_key_pb2

from ._live import USE, unique
from ._scene import Scene

WAIT = 10.0  # seconds: the bound of every wait for the background threads
STALENESS = timedelta(seconds=10)
KEY_REFRESH = timedelta(seconds=60)  # so the key set's grace is 70 s (never refreshed within a test)
LEASE_TTL = timedelta(seconds=60)


class Clocks:
    """The authorizer's wall clock and monotonic clock; both stand still until `move`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wall = datetime.now(UTC)
        self._monotonic = 1000.0

    def now(self) -> datetime:
        with self._lock:
            return self._wall

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic

    def move(self, *, wall: timedelta, monotonic: float) -> None:
        """Let ``monotonic`` seconds pass, while the wall clock moves by ``wall`` (another amount
        when it was stepped)."""
        with self._lock:
            self._wall += wall
            self._monotonic += monotonic


class _CutOff(Client):
    """The real client, but once ``cut`` is set everything except the revocation stream (already
    open) fails as if Charter could not be reached: the key set cannot be fetched again."""

    cut = False

    def _unless_cut(self) -> None:
        if self.cut:
            raise charter.UnavailableError("cut off")

    def get_key_set(self, **kwargs: Any) -> signing_key_pb2.KeySet:
        self._unless_cut()
        return super().get_key_set(**kwargs)

    def get_grant_bundle(self, **kwargs: Any) -> offline_service_pb2.GetGrantBundleResponse:
        self._unless_cut()
        return super().get_grant_bundle(**kwargs)

    def get_registry_snapshot(self, **kwargs: Any) -> offline_service_pb2.GetRegistrySnapshotResponse:
        self._unless_cut()
        return super().get_registry_snapshot(**kwargs)

    def authorize(self, **kwargs: Any) -> Decision:
        self._unless_cut()
        return super().authorize(**kwargs)

    def lease_quota(self, *args: Any, **kwargs: Any) -> offline_pb2.QuotaLease:
        self._unless_cut()
        return super().lease_quota(*args, **kwargs)

    def renew_quota_lease(self, *args: Any, **kwargs: Any) -> offline_pb2.QuotaLease:
        self._unless_cut()
        return super().renew_quota_lease(*args, **kwargs)


@contextmanager
def _authorizer(client: Client, clocks: Clocks, **options: Any) -> Iterator[OfflineAuthorizer]:
    authorizer = OfflineAuthorizer(
        client,
        fetch_bundle=True,
        clock=clocks.now,
        monotonic=clocks.monotonic,
        max_staleness=STALENESS,
        key_refresh=KEY_REFRESH,
        **options,
    )
    authorizer.start(timeout=None)
    try:
        yield authorizer
    finally:
        authorizer.close()


def _beat(authorizer: OfflineAuthorizer, clocks: Clocks) -> bool:
    """Wait for a heartbeat stamped with the clocks as they are now (the view current then)."""
    deadline = time.monotonic() + WAIT
    while authorizer.fresh_as_of != clocks.now() and time.monotonic() < deadline:
        authorizer.wait_current(timeout=0.02)
    return authorizer.fresh_as_of == clocks.now()


def _reasons(decision: Decision) -> tuple[bool, bool, list[tuple[DenyReason, ...]]]:
    return decision.offline, decision.allowed, [c.reasons for c in decision.characters]


def test_a_wall_clock_stepped_back_does_not_stretch_the_key_sets_grace(scene: Scene) -> None:
    character = scene.character()
    clocks = Clocks()
    with (
        _CutOff(scene.live.target, api_key=scene.generator_key) as client,
        _authorizer(client, clocks) as authorizer,
    ):
        assert _beat(authorizer, clocks)
        client.cut = True  # the key set is not fetched again; heartbeats keep the view current
        clocks.move(wall=timedelta(seconds=5), monotonic=65)  # 65 s passed; the wall clock was stepped back 60 s
        within = (_beat(authorizer, clocks), authorizer.is_current())
        decided_within = authorizer.authorize(character_ids=[character.id], **USE)
        clocks.move(wall=timedelta(seconds=10), monotonic=10)  # 75 s since the key set was fetched (15 s on the wall)
        past = (_beat(authorizer, clocks), authorizer.is_current())
        decided_past = authorizer.authorize(character_ids=[character.id], **USE)

    assert within == (True, True)
    assert _reasons(decided_within) == (True, True, [()])
    assert past == (True, False)  # (on the wall clock alone it had 55 s of grace left)
    assert _reasons(decided_past) == (True, False, [(DenyReason.REVOCATIONS_STALE,)])


def test_a_wall_clock_stepped_forward_ends_the_key_sets_grace_sooner(scene: Scene) -> None:
    clocks = Clocks()
    with (
        _CutOff(scene.live.target, api_key=scene.generator_key) as client,
        # A skew wider than the step: a clock more than the skew ahead of Charter's takes no heartbeat
        # at all, and this test is about the key set's grace.
        _authorizer(client, clocks, skew=timedelta(seconds=120)) as authorizer,
    ):
        assert _beat(authorizer, clocks)
        client.cut = True
        clocks.move(wall=timedelta(seconds=71), monotonic=5)  # 5 s passed; the wall clock was stepped forward
        beat, current = _beat(authorizer, clocks), authorizer.is_current()

    assert beat
    assert not current


def test_a_wall_clock_stepped_back_does_not_keep_a_snapshot_that_cannot_catch_up_current(scene: Scene) -> None:
    named = scene.character()
    changed = scene.character(granted=False)
    clocks = Clocks()
    prompt = f"{named.canonical_name} waves"
    with (
        _CutOff(scene.live.target, api_key=scene.generator_key) as client,
        _authorizer(client, clocks, screen_locally=True) as authorizer,
    ):
        assert authorizer.wait_screen(timeout=WAIT)
        client.cut = True  # the snapshot cannot catch up with the change below
        scene.staff.update_character(changed.id, aliases=[character_pb2.Alias(value=unique("Nym"), language="en")])
        assert authorizer.wait_current(min_sequence=scene.live.revocation_head(), timeout=WAIT)
        clocks.move(wall=timedelta(seconds=3), monotonic=9)  # 9 s passed; the wall clock was stepped back 6 s
        within = (_beat(authorizer, clocks), authorizer.can_screen())
        decided_within = authorizer.authorize(character_ids=[named.id], prompt=prompt, **USE)
        clocks.move(wall=timedelta(seconds=2), monotonic=2)  # 11 s since it was current (5 s on the wall)
        past = (_beat(authorizer, clocks), authorizer.can_screen(), authorizer.is_current())
        decided_past = authorizer.authorize(character_ids=[named.id], prompt=prompt, **USE)
        declared = authorizer.authorize(character_ids=[named.id], **USE)

    assert within == (True, True)
    assert _reasons(decided_within) == (True, True, [()])
    assert past == (True, False, True)  # the snapshot is too old; the revocation view is current
    assert _reasons(decided_past) == (True, False, [(DenyReason.SNAPSHOT_STALE,)])
    assert _reasons(declared) == (True, True, [()])


def _kept_state(scene: Scene, cache_dir: Path, change: Callable[[OfflineState], OfflineState]) -> None:
    """Run an authorizer until its state is in ``cache_dir``, then ``change`` the kept state
    (written with the scene's API key, so it is accepted as the authorizer's own)."""
    with (
        Client(scene.live.target, api_key=scene.generator_key) as client,
        OfflineAuthorizer(client, fetch_bundle=True, cache_dir=cache_dir, screen_locally=True) as online,
    ):
        assert online.wait_screen(timeout=WAIT)
    key = CacheKey.of_api_key(scene.generator_key)
    kept = load_state(cache_dir, key)
    assert kept is not None
    licensee_id, state = kept
    save_state(cache_dir, key, licensee_id, change(state))


def _restarted(scene: Scene, cache_dir: Path, prompt: str = "") -> tuple[bool, Decision]:
    """A restart from ``cache_dir`` with Charter unreachable; whether its view is current, and
    the decision of a prompt (or of the scene's characters held)."""
    with Client("127.0.0.1:1", api_key=scene.generator_key, timeout=1.0) as dead:
        authorizer = OfflineAuthorizer(dead, fetch_bundle=True, cache_dir=cache_dir, screen_locally=True)
        authorizer.start(timeout=None)
        try:
            deadline = time.monotonic() + WAIT
            while prompt and authorizer.snapshot_version == 0 and time.monotonic() < deadline:
                authorizer.wait_screen(timeout=0.02)  # until the kept snapshot is taken
            current = authorizer.is_current()
            return current, authorizer.authorize(prompt=prompt, **USE)
        finally:
            authorizer.close()


def test_a_kept_key_set_fetched_later_than_the_clocks_now_is_too_old_from_the_start(
    scene: Scene, tmp_path: Path
) -> None:
    named = scene.character()
    now = datetime.now(UTC)
    # The key set fetched while this machine's clock ran an hour ahead (since set right); the view
    # current as of now.
    _kept_state(scene, tmp_path, lambda state: replace(state, confirmed=now + timedelta(hours=1), fresh_as_of=now))

    current, decision = _restarted(scene, tmp_path, prompt=f"{named.canonical_name} waves")

    assert not current
    assert (decision.offline, decision.allowed, decision.request_reasons) == (
        True,
        False,
        (DenyReason.REVOCATIONS_STALE,),
    )


def test_a_kept_snapshot_current_later_than_the_clocks_now_is_stale_from_the_start(
    scene: Scene, tmp_path: Path
) -> None:
    named = scene.character()
    now = datetime.now(UTC)
    # The snapshot was last current while this machine's clock ran an hour ahead (since set right);
    # a registry event came after it and it could not catch up; the view is current as of now.
    _kept_state(
        scene,
        tmp_path,
        lambda state: replace(
            state,
            fresh_as_of=now,
            registry_fresh_as_of=now + timedelta(hours=1),
            sequence=state.sequence + 1,
            registry_head=state.sequence + 1,
        ),
    )

    current, decision = _restarted(scene, tmp_path, prompt=f"{named.canonical_name} waves")

    assert current  # the view itself is within max_staleness
    assert (decision.offline, decision.allowed, decision.request_reasons) == (
        True,
        False,
        (DenyReason.SNAPSHOT_STALE,),
    )


def test_a_wall_clock_stepped_back_does_not_stretch_a_quota_lease(scene: Scene) -> None:
    capped = scene.character(max_uses=100)
    clocks = Clocks()
    with (
        _CutOff(scene.live.target, api_key=scene.generator_key) as client,
        _authorizer(
            client, clocks, signer=scene.signer(), lease_uses=10, lease_ttl=timedelta(seconds=60)
        ) as authorizer,
    ):
        assert _beat(authorizer, clocks)
        first = authorizer.authorize(character_ids=[capped.id], **USE)  # the server decides; a lease is asked for
        deadline = time.monotonic() + WAIT
        while not authorizer.leases() and time.monotonic() < deadline:
            authorizer.wait_current(timeout=0.02)
        spent = authorizer.authorize(character_ids=[capped.id], **USE)
        client.cut = True  # the lease can be neither renewed nor replaced, nor the server asked
        clocks.move(wall=timedelta(seconds=1), monotonic=61)  # 61 s passed; the wall clock was stepped back 60 s
        beat = _beat(authorizer, clocks)
        late = authorizer.authorize(character_ids=[capped.id], **USE)

    assert (first.offline, first.allowed) == (False, True)
    assert (spent.offline, spent.allowed, len(spent.decision_records)) == (True, True, 1)
    assert beat  # the revocation view and the key set are current: only the lease is too old
    assert _reasons(late) == (True, False, [(DenyReason.LEASE_EXPIRED,)])
