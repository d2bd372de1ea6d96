"""What the offline authorizer knows (its view's properties) and how it keeps its view and key
set current: the two daemon threads.

* the *watcher* reads ``WatchRevocations`` from the last sequence applied into the
  `RevocationView`, reconnecting with exponential backoff and jitter;
* the *refresher* fetches the key set and the licensee again every ``key_refresh`` (sooner when
  a held grant names a key the ring does not know), and drops a stream that went idle.

Both move the one bound decisions compare with (`KeepCurrent._recompute`).
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from charter.errors import CharterError, InvalidArgumentError
from charter.grants import GrantStatus
from charter.offline.freshness import NOT_CURRENT
from charter.offline.keys import LicenseeKeys
from charter.offline.revocations import Resync, RevocationView, Rewound
from charter.terms import DenyReason
from charter.v1 import authorization_service_pb2, grant_pb2

if TYPE_CHECKING:
    from charter.client import Client

log = logging.getLogger("charter.offline")

NEVER: Final = datetime.min.replace(tzinfo=UTC)
"""The bound while there is no usable view: no time is before it."""
TICK_SECONDS: Final = 0.5
"""The refresher looks at the watcher (idle stream) at least this often."""
HEARTBEAT_TRANSIT: Final = timedelta(seconds=1)
"""How long after the server's time in it a heartbeat may be read: a clock is taken to run ahead
of Charter's only when it is more than the skew and this ahead of a heartbeat just read."""
# A stream is reopened (after the last sequence applied) at least this often, so a call never
# needs an unbounded deadline.
_STREAM_SECONDS: Final = 300.0
# A refresh asked for by a decision (a key the ring does not know) happens at most this often.
_ON_DEMAND_REFRESH_SECONDS: Final = 2.0


def system_clock() -> Callable[[], datetime]:
    """The clock an authorizer reads unless given one: UTC now."""
    return functools.partial(datetime.now, UTC)


def seconds_of(value: timedelta, name: str, *, positive: bool = True) -> float:
    """A duration argument in seconds, checked (``name`` says which in the error).

    Raises:
        TypeError: It is not a ``timedelta``.
        ValueError: It is negative (or zero, when ``positive``).
    """
    if not isinstance(value, timedelta):
        raise TypeError(f"{name} must be a datetime.timedelta")
    seconds = value.total_seconds()
    if seconds < 0 or (positive and seconds == 0):
        raise ValueError(f"{name} must be {'positive' if positive else 'zero or more'}")
    return seconds


def backoff_bounds(min_backoff: timedelta, max_backoff: timedelta) -> tuple[float, float]:
    """The reconnect backoff's bounds in seconds, checked as `seconds_of` does.

    Raises:
        ValueError: Either is not positive, or ``max_backoff < min_backoff``.
        TypeError: Either is not a ``timedelta``.
    """
    low, high = seconds_of(min_backoff, "min_backoff"), seconds_of(max_backoff, "max_backoff")
    if high < low:
        raise ValueError("max_backoff must not be less than min_backoff")
    return low, high


class KeepCurrent:
    """What `charter.offline.OfflineAuthorizer` knows and how it keeps it current: the view's
    properties and the background threads (the authorizer sets these attributes)."""

    _client: Client
    _clock: Callable[[], datetime]
    _monotonic: Callable[[], float]  # bounds every age with `_clock` (`charter.offline.freshness`)
    _licensee_id: str
    _key_set: LicenseeKeys
    _view: RevocationView
    _offline_until: datetime
    # With `_offline_until`, the bound decisions compare with (`_stale`): the wall-clock time of
    # the view's last heartbeat (a clock now before it was stepped back) and the monotonic time
    # at which the view or the key set becomes too old (a clock stepped back does not make either
    # younger).
    _offline_from: datetime = NEVER
    _monotonic_until: float = NOT_CURRENT
    _max_staleness: timedelta
    _key_grace: timedelta
    _key_refresh_seconds: float
    _min_backoff: float
    _max_backoff: float
    _idle_seconds: float
    _lock: threading.Lock
    _changed: threading.Condition
    _stopping: threading.Event
    _keys_wanted: threading.Event
    _watch: Any
    _last_message: float
    _screen_locally: bool = False  # also watch registry events (prompts screened offline)
    _skew_us: int  # the skew tolerated on validity windows, in microseconds
    _off = False  # the clock was more than the skew from Charter's at the last heartbeat

    # -- the view ---------------------------------------------------------------------------------

    @property
    def licensee_id(self) -> str:
        """The licensee decided for (the API key's); empty before `start`."""
        return self._licensee_id

    @property
    def platform(self) -> str:
        """The licensee's platform, as of the last refresh; empty before `start`."""
        return self._key_set.platform

    @property
    def max_staleness(self) -> timedelta:
        """How old the revocation view may be for a request to be decided offline."""
        return self._max_staleness

    @property
    def sequence(self) -> int:
        """The last revocation-log sequence number applied to the view (0 before any)."""
        return self._view.sequence

    @property
    def fresh_as_of(self) -> datetime | None:
        """The time (on the authorizer's clock) of the last heartbeat at which the view was
        current; None before the first."""
        return self._view.fresh_as_of

    @property
    def staleness(self) -> timedelta | None:
        """How old the revocation view is now (``clock() - fresh_as_of``); None before it was
        ever current."""
        fresh = self._view.fresh_as_of
        return None if fresh is None else self._clock() - fresh

    @property
    def key_set_version(self) -> str:
        """The version of the key set decisions verify against; empty before `start`."""
        ring = self._key_set.ring
        return "" if ring is None else ring.version

    def grant_status(self, grant_id: str) -> GrantStatus:
        """The state of a grant in the revocation view (``ACTIVE`` when the log never named it)."""
        return self._view.status(grant_id)

    def is_current(self, min_sequence: int = 0) -> bool:
        """Whether a request may be decided offline now, as far as the view goes.

        Args:
            min_sequence: A revocation-log sequence number the view must have seen.

        Returns:
            True when the view and the key set are fresh enough and the view has seen
            ``min_sequence``.
        """
        return not self._stale(self._clock()) and self._view.sequence >= min_sequence

    def _stale(self, now: datetime) -> bool:
        """Whether the view or the key set is too old to decide with at ``now`` (the clock's time):
        by the wall clock, by the monotonic clock (whichever says older wins), or because the last
        heartbeat is later than now (the clock was stepped back)."""
        return not self._offline_from <= now <= self._offline_until or self._monotonic() > self._monotonic_until

    def wait_current(self, *, min_sequence: int = 0, timeout: float) -> bool:
        """Wait until `is_current` holds, for at most ``timeout`` seconds.

        Args:
            min_sequence: A revocation-log sequence number the view must have seen, for example
                the one ``RevokeGrant`` returned.
            timeout: The longest wait, in seconds.

        Returns:
            Whether it holds (False also when the authorizer is closed meanwhile).
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self.is_current(min_sequence):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopping.is_set():
                    return self.is_current(min_sequence)
                self._changed.wait(min(remaining, TICK_SECONDS))
        return True

    def _stale_reason(self) -> DenyReason:
        """Why the view or the key set cannot be decided with now (to deny with when the server
        cannot be reached either)."""
        if self._key_set.archived:
            return DenyReason.LICENSEE_ARCHIVED
        return DenyReason.SERVER_UNREACHABLE if self._view.fresh_as_of is None else DenyReason.REVOCATIONS_STALE

    # -- keeping them current ---------------------------------------------------------------------

    def _backoff(self, failures: int) -> float:
        """The delay before the next attempt after ``failures`` failures in a row (0 for none)."""
        if failures <= 0:
            return 0.0
        cap = min(self._max_backoff, self._min_backoff * (1 << min(failures - 1, 30)))
        return cap * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not a secret

    def _recompute(self) -> None:
        """Set the one bound decisions compare with (called when the view or the key set moves)."""
        # Under the condition's (reentrant) lock: the watcher and the refresher both set it, and a
        # bound worked out from a view that `_rewind` dropped meanwhile must not be set after it.
        with self._changed:
            fresh, confirmed = self._view.fresh, self._key_set.confirmed
            broken, archived = self._view.broken, self._key_set.archived
            if broken or archived or self._stopping.is_set() or fresh is None or confirmed is None:
                until, since, monotonic_until = NEVER, NEVER, NOT_CURRENT
            else:
                # Each bound on both clocks: the view's and the key set's, whichever ends first.
                view_until, view_monotonic = fresh.until(self._max_staleness)
                keys_until, keys_monotonic = confirmed.until(self._key_grace)
                until, monotonic_until = min(view_until, keys_until), min(view_monotonic, keys_monotonic)
                since = fresh.wall
            # The upper bounds first: a decision reading between them never sees a longer window.
            self._offline_until = until
            self._monotonic_until = monotonic_until
            self._offline_from = since
            self._changed.notify_all()

    def _refresh(self) -> None:
        """Fetch the key set and the licensee (the ring is replaced only when its version moved)."""
        self._key_set.refresh(self._client, self._licensee_id)
        self._recompute()

    def _refresh_loop(self) -> None:
        next_refresh = time.monotonic() + self._key_refresh_seconds
        last_refresh = time.monotonic()
        failures = 0
        while not self._stopping.is_set():
            self._keys_wanted.wait(max(0.0, min(TICK_SECONDS, next_refresh - time.monotonic())))
            if self._stopping.is_set():
                return
            now = time.monotonic()
            if self._keys_wanted.is_set():
                self._keys_wanted.clear()
                next_refresh = min(next_refresh, last_refresh + _ON_DEMAND_REFRESH_SECONDS)
            watch = self._watch
            if watch is not None and now - self._last_message > self._idle_seconds:
                log.warning("charter.offline: the revocation stream is idle; reopening it")
                self._last_message = now
                watch.cancel()
            if now < next_refresh:
                continue
            last_refresh = now
            try:
                self._refresh()
            except (CharterError, ValueError) as error:
                failures += 1
                next_refresh = now + min(self._key_refresh_seconds, max(self._backoff(failures), TICK_SECONDS))
                log.warning("charter.offline: refreshing the key set failed: %r", error)
            else:
                failures = 0
                next_refresh = now + self._key_refresh_seconds

    def _watch_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            beats = self._view.beats
            try:
                self._watch_once()
            except Resync as error:
                log.warning("charter.offline: %s; reopening the revocation stream", error)
            except Rewound as error:
                self._rewind(str(error))
            except InvalidArgumentError as error:
                if self._view.sequence > 0:  # ``since_sequence`` beyond the log's head: it went backwards
                    self._rewind(f"the server refused to watch after {self._view.sequence} ({error.reason})")
                else:
                    log.warning("charter.offline: the revocation stream failed (%s)", error.code.name)
            except CharterError as error:
                if not self._stopping.is_set():
                    log.warning("charter.offline: the revocation stream failed (%s)", error.code.name)
            except Exception:  # a bug must not end the thread: the view just goes stale
                log.exception("charter.offline: the revocation watcher failed")
            failures = 0 if self._view.beats != beats else failures + 1
            if self._stopping.wait(self._backoff(failures)):
                return

    def _watch_once(self) -> None:
        """Read one stream, from the last sequence applied, until it ends or fails."""
        watch = self._client.watch_revocations(
            self._view.sequence, timeout=_STREAM_SECONDS, registry=self._screen_locally
        )
        with watch:
            with self._lock:
                if self._stopping.is_set():
                    return
                self._watch = watch
            try:
                self._last_message = time.monotonic()
                for item in watch:
                    self._last_message = time.monotonic()
                    if isinstance(item, grant_pb2.RevocationEvent):
                        self._apply(item)
                    elif isinstance(item, authorization_service_pb2.RevocationSkip):
                        self._skip(item.sequence)
                    else:
                        self._heartbeat(item)
                    if self._stopping.is_set():
                        return
            finally:
                with self._lock:
                    self._watch = None

    def _rewind(self, why: str) -> None:
        """The log went backwards: drop the view (not current from now on) and read it again from
        sequence 0, so that no event of the log's new history is skipped."""
        log.warning("charter.offline: %s; reading the revocation log again from 0", why)
        with self._changed:
            self._offline_until = NEVER  # before the states go, so no decision reads the empty view
            self._view.reset()
            self._recompute()

    def _apply(self, event: grant_pb2.RevocationEvent) -> None:
        view = self._view
        if not view.apply(event):
            return
        if view.broken:
            self._recompute()
        self._notify()

    def _skip(self, sequence: int) -> None:
        if self._view.skip(sequence):
            self._notify()

    def _heartbeat(self, beat: authorization_service_pb2.Heartbeat) -> None:
        if beat.HasField("server_time") and self._clock_off(beat.server_time.ToDatetime(tzinfo=UTC)):
            return
        if beat.key_set_version and not self._key_set_is(beat.key_set_version):
            return
        if self._view.heartbeat(beat.sequence):
            self._recompute()

    def _clock_off(self, server_time: datetime) -> bool:
        """Whether the clock is more than the skew from Charter's (as of a heartbeat, which is read
        up to `HEARTBEAT_TRANSIT` after it was sent). Validity windows are judged on the clock: one
        that lags would honour a grant offline after Charter deems it expired, one that runs ahead
        would honour it before its ``not_before`` (by as much as it is off). Such a heartbeat does not
        make the view current, which ages towards failing closed until the clock is set right."""
        now, skew = self._clock(), timedelta(microseconds=self._skew_us)
        off = server_time - now > skew or now - server_time > skew + HEARTBEAT_TRANSIT
        if off != self._off:
            self._off = off
            if off:
                log.warning("charter.offline: this clock is more than the skew from Charter's; not deciding offline")
        return off

    def _key_set_is(self, version: str) -> bool:
        """Whether decisions verify with the key set of ``version``, fetching it now when they do
        not: a heartbeat vouches for the view only together with the key set as of the same time,
        so a signing key revoked since the last fetch stops verifying within a heartbeat, not at
        the next scheduled refresh. Until the fetch answers that version (another replica may lag
        by its key cache; the server may be down), the view does not get fresher and ages towards
        failing closed."""
        ring = self._key_set.ring
        if ring is not None and ring.version == version:
            return True
        try:
            self._refresh()
        except (CharterError, ValueError) as error:
            log.warning("charter.offline: the key set moved to %r and fetching it failed: %r", version, error)
            return False
        ring = self._key_set.ring
        return ring is not None and ring.version == version

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()
