"""The offline authorizer: generation-time decisions from grants the SDK holds, failing closed.

`OfflineAuthorizer` holds the caller's grants (DSSE envelopes, as ``IssueGrant`` returned them),
keeps the key set and a view of the revocation log current in the background, and decides
``authorize`` requests locally with the same verifier (`charter.grants`) and terms evaluator
(`charter.terms`) as the server. When it cannot decide safely on its own it asks the server
(``Client.authorize``); when the server cannot be reached either, it **denies** every character
with `DenyReason.SERVER_UNREACHABLE`.

**What it keeps current.** `start` reads the caller's API key (``GetCaller``: it must be a
generator key, bound to a licensee), the licensee's platform (``GetLicensee``) and the key set
(``GetKeySet``). Then two daemon threads run until `close`:

* the *watcher* reads ``WatchRevocations`` from sequence 0: every revocation, suspension and
  reinstatement of the log, in order, into a map grant id → state. A heartbeat carries the head
  of the log; when the watcher has applied every event up to it, the view is *current as of*
  the local clock's time at which the heartbeat arrived (`fresh_as_of`; this overstates the
  view's freshness by the heartbeat's transit time, normally a millisecond or so). An event out of order
  (a gap) or a heartbeat ahead of the events makes it reconnect; a heartbeat behind the events
  seen (a log that went backwards) never makes the view current again, so it stays stale and
  decisions go to the server. On any error the watcher reconnects with exponential backoff and
  jitter (``min_backoff`` doubling up to ``max_backoff``), resuming after the last sequence it
  applied. A stream that delivers nothing for ``idle_timeout`` is dropped and reopened.
* the *refresher* fetches the key set and the licensee again every ``key_refresh`` and, at most
  every few seconds, as soon as a held grant names a key the ring does not know. The ring is
  replaced only when the key set's version moved, so an unchanged key set costs no
  re-verification.

**When it decides offline.** A request is decided offline only when all of these hold:

1. the revocation view is fresh: ``clock() - fresh_as_of <= max_staleness``, and the key set
   was confirmed within ``key_refresh + max_staleness`` (a key set that cannot be refreshed
   ages like the revocation view);
2. it has seen the sequence number ``min_sequence`` that the caller passes, for example the one
   ``RevokeGrant`` returned, so that a revocation the caller knows of is never decided on an
   older view ("new enemy");
3. there is no prompt (screening needs the server's registry of every character's names);
4. every declared character has a held grant, and is decided by one: the first grant (newest
   first) that allows the use must have terms without a daily or monthly quota and no cap of
   uses (``max_uses``; quotas and caps are counted by the server), and no grant before it may
   name a key that the ring does not know. A denial is decided offline whatever the terms;
5. the licensee is not archived (as of the last refresh).

Otherwise the request goes to the server, with the held grants of its characters (and, when
there is a prompt, the other held grants too, up to 64), so the server decides on exactly those
grants. When the call fails with ``UNAVAILABLE`` or ``DEADLINE_EXCEEDED`` (also when no
connection can be made), the answer is a denial: every declared character with
``SERVER_UNREACHABLE``, ``offline=True`` and ``allowed=False`` (also for a prompt-only request,
which then has no characters). Any other error (for example ``UNAUTHENTICATED`` for a revoked API
key) is raised.

**How a character is decided offline.** Each held grant for it, newest first (by its claimed
issue time), is verified with a `GrantVerifier` for this licensee and character: a grant whose
key the ring does not know cannot be decided offline; any other failure of the envelope, the
signature, the key or the parties is ``GRANT_INVALID``. Then, in the verifier's order: before its
``not_before`` (less the skew) → ``GRANT_NOT_YET_VALID``; at or after its ``expire_time`` (plus
the skew) → ``GRANT_EXPIRED``; revoked or suspended in the view → ``GRANT_REVOKED`` or
``GRANT_SUSPENDED``; otherwise its signed terms are evaluated (`CompiledTerms.evaluate`) against
a `UseContext` with this licensee, its platform, the local clock's time and the request's other
characters as co-characters. The first grant that allows decides, with its obligations; when
none does, the reasons are those of the newest grant that is itself good (its failed terms), or
else the newest grant's own problem, as the server reports them. The request is allowed only if
every character is. An offline decision carries no receipt (``receipt=None``, ``offline=True``).

**What it sees late or not at all.** The revocation log records grants revoked, suspended and
reinstated (an opt-out revokes the character's grants) and characters suspended and reinstated
by staff: a suspended character is denied offline with ``CHARACTER_SUSPENDED`` as soon as its
event arrives. The log does not record a licensee archived; the authorizer learns of that at its
next refresh. A signing key revoked on the server stops verifying offline at the next key-set
refresh.

**Cost.** The view holds one entry per grant that the log names as revoked or suspended (every
licensee's: the stream is not filtered), plus the held grants. Verified grants are remembered
with their compiled terms and the key ring they were checked against; the verifier also caches
verified envelopes by digest, so even a new key ring causes no signature work (nor compiling the
terms again). A warm decision (`decide`) reads the clock and does dict look-ups, two
comparisons for the validity window, a status look-up, a key-ring identity check and
`CompiledTerms.evaluate`, and returns a shared `CharacterDecision`; it takes no lock. Call
`warm_up` after `add_grants` to do the signature work before the first decision.

Thread-safety: every method may be called from any number of threads while the background
threads update the view.

Example:
    ```python
    from datetime import timedelta

    import charter
    from charter.offline import OfflineAuthorizer
    from charter.v1 import terms_pb2

    client = charter.Client("charter.internal:50051", api_key=generator_key)
    with OfflineAuthorizer(client, grants=held_envelopes, max_staleness=timedelta(seconds=30)) as authorizer:
        decision = authorizer.authorize(
            character_ids=["chr_..."],
            use_type=terms_pb2.USE_TYPE_VIDEO_GENERATION,
            content_rating=terms_pb2.CONTENT_RATING_TEEN,
            territory="JP",
        )
        if decision.allowed:
            render(obligations=decision.obligations)
    ```
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from charter import _requests
from charter._license import License, license_block
from charter.decide import CharacterState, Integrity, decide, integrity_of
from charter.decisions import CharacterDecision, Decision
from charter.envelope import GRANT_PAYLOAD_TYPE, digest, from_json
from charter.errors import CharterError, DeadlineExceededError, UnavailableError
from charter.grants import GrantStatus, GrantVerifier, KeyRing
from charter.terms import CompiledTerms, DenyReason, UseContext
from charter.v1 import api_key_pb2, authorization_service_pb2, grant_pb2, licensee_pb2, terms_pb2
from charter.v1.envelope_pb2 import Envelope

if TYPE_CHECKING:
    from charter.client import Client

__all__ = ["CONTEXT_TOLERANCE", "OfflineAuthorizer"]

log = logging.getLogger(__name__)

CONTEXT_TOLERANCE: Final = timedelta(seconds=5)
"""How far the time of a `UseContext` given to `OfflineAuthorizer.decide` may be from the
authorizer's clock; a context further off is not decided offline."""

MAX_GRANTS_PER_REQUEST: Final = 64
"""The most grant envelopes one ``Authorize`` request may present."""

_NEVER: Final = datetime.min.replace(tzinfo=UTC)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_TIME: Final = datetime.min.replace(tzinfo=UTC)
_MAX_TIME: Final = datetime.max.replace(tzinfo=UTC)
_ONE_MICROSECOND: Final = timedelta(microseconds=1)
_NEGATIVE_TOLERANCE: Final = -CONTEXT_TOLERANCE

# A stream is reopened (after the last sequence applied) at least this often, so a call never
# needs an unbounded deadline.
_STREAM_SECONDS: Final = 300.0
# A refresh asked for by a decision (a key the ring does not know) happens at most this often.
_ON_DEMAND_REFRESH_SECONDS: Final = 2.0
# The refresher looks at the watcher (idle stream) at least this often.
_TICK_SECONDS: Final = 0.5
_JOIN_SECONDS: Final = 5.0

_KIND_REVOKED: Final = grant_pb2.RevocationEvent.KIND_REVOKED
_KIND_SUSPENDED: Final = grant_pb2.RevocationEvent.KIND_SUSPENDED
_KIND_REINSTATED: Final = grant_pb2.RevocationEvent.KIND_REINSTATED
_KIND_CHARACTER_SUSPENDED: Final = grant_pb2.RevocationEvent.KIND_CHARACTER_SUSPENDED
_KIND_CHARACTER_REINSTATED: Final = grant_pb2.RevocationEvent.KIND_CHARACTER_REINSTATED

_ACTIVE: Final = GrantStatus.ACTIVE
_REVOKED: Final = GrantStatus.REVOKED
_SUSPENDED: Final = GrantStatus.SUSPENDED
_OPTED_IN: Final = CharacterState.OPTED_IN
_CHARACTER_SUSPENDED: Final = CharacterState.SUSPENDED
_UNREACHABLE: Final = (DenyReason.SERVER_UNREACHABLE,)
_USE_TYPES: Final = frozenset(terms_pb2.UseType.values())
_RATINGS: Final = frozenset(terms_pb2.ContentRating.values())
_CATEGORIES: Final = frozenset(terms_pb2.ContentCategory.values())


class _Resync(Exception):
    """The stream is not contiguous with the view (a gap): reopen it after the last sequence applied."""


class _Checked:
    """What a held grant was found to be against one key ring; immutable once built.

    A `charter.decide.Candidate`: its ``integrity`` is `Integrity.UNKNOWN_KEY` (its key is not
    in the ring), `Integrity.INVALID` (it fails for good against this ring), or
    `Integrity.VERIFIED`, with its window (the skew applied), terms and decisions.
    """

    __slots__ = (
        "allow",
        "character_id",
        "denials",
        "expire_time",
        "grant_id",
        "integrity",
        "not_before",
        "quota",
        "rights_holder_id",
        "ring",
        "terms",
        "terms_version",
    )

    def __init__(
        self,
        ring: KeyRing,
        character_id: str,
        *,
        claims: grant_pb2.GrantClaims | None = None,
        integrity: Integrity = Integrity.VERIFIED,
        skew_us: int = 0,
    ) -> None:
        self.ring = ring
        self.character_id = character_id
        self.integrity = integrity
        self.grant_id = claims.grant_id if claims is not None else ""
        self.terms_version = claims.terms_version if claims is not None else 0
        self.rights_holder_id = claims.rights_holder_id if claims is not None else ""
        self.denials: dict[tuple[DenyReason, ...], CharacterDecision] = {}
        self.not_before = _MAX_TIME
        self.expire_time = _MIN_TIME
        self.terms: CompiledTerms | None = None
        self.quota = False
        self.allow: CharacterDecision | None = None
        if claims is not None and integrity is Integrity.VERIFIED:
            terms = CompiledTerms.from_terms(claims.terms)
            self.terms = terms
            # Quotas and a grant's cap are counted by the server alone.
            self.quota = terms.daily_quota is not None or terms.monthly_quota is not None or claims.HasField("max_uses")
            # The verifier's window, skew included, rounded so that it never grows.
            not_before, expire = claims.not_before, claims.expire_time
            self.not_before = _limit(not_before.seconds, -(-not_before.nanos // 1000) - skew_us)
            self.expire_time = _limit(expire.seconds, expire.nanos // 1000 + skew_us)
            self.allow = CharacterDecision(
                character_id=character_id,
                allowed=True,
                reasons=(),
                grant_id=self.grant_id,
                terms_version=self.terms_version,
                obligations=terms.obligations,
                rights_holder_id=self.rights_holder_id,
            )

    def for_ring(self, ring: KeyRing) -> _Checked:
        """The same outcome, found valid again against another ring (nothing recompiled)."""
        moved = _Checked.__new__(_Checked)
        for name in _Checked.__slots__:
            setattr(moved, name, getattr(self, name))
        moved.ring = ring
        return moved

    def denial(self, reasons: tuple[DenyReason, ...]) -> CharacterDecision:
        """The (shared) denial of this grant's character with ``reasons``."""
        found = self.denials.get(reasons)
        if found is None:
            found = CharacterDecision(
                character_id=self.character_id,
                allowed=False,
                reasons=reasons,
                grant_id=self.grant_id,
                terms_version=self.terms_version,
                rights_holder_id=self.rights_holder_id,
            )
            if len(self.denials) < 64:  # bounded: at most 2**10 combinations exist
                self.denials[reasons] = found
        return found


def _limit(seconds: int, micros: int) -> datetime:
    try:
        return _EPOCH + timedelta(0, seconds, micros)
    except OverflowError:
        return _MAX_TIME if seconds > 0 else _MIN_TIME


class _Held:
    """A grant envelope the authorizer holds, indexed by the character its payload claims.

    The claims are parsed before verification only to index and order the grants; nothing else
    is trusted until the signature verified.
    """

    __slots__ = ("character_id", "checked", "envelope", "issued")

    def __init__(self, envelope: Envelope, claims: grant_pb2.GrantClaims) -> None:
        self.envelope = envelope
        self.character_id = claims.character_id
        self.issued = (claims.issue_time.seconds, claims.issue_time.nanos)
        self.checked: _Checked | None = None


def _system_clock() -> Callable[[], datetime]:
    return functools.partial(datetime.now, UTC)


def _seconds(value: timedelta, name: str, *, positive: bool = True) -> float:
    if not isinstance(value, timedelta):
        raise TypeError(f"{name} must be a datetime.timedelta")
    seconds = value.total_seconds()
    if seconds < 0 or (positive and seconds == 0):
        raise ValueError(f"{name} must be {'positive' if positive else 'zero or more'}")
    return seconds


class OfflineAuthorizer:
    """Decides generation-time requests from the grants it holds; see the module documentation.

    Args:
        client: The client to call Charter with; its API key must be a generator key. The
            authorizer does not close it.
        grants: The grant envelopes to hold: ``charter.v1.Envelope`` messages or their DSSE JSON
            text. More can be added with `add_grants`.
        max_staleness: How old the revocation view may be (since the last heartbeat at which it
            was current, on ``clock``) for a request to be decided offline. Keep it a few times
            the server's heartbeat interval (``revocation_heartbeat_seconds``, 5 s by default),
            or the view goes stale between heartbeats.
        clock: Returns the current time (timezone-aware); the system clock when None. It times
            freshness, validity windows and terms.
        skew: The clock skew tolerated on a grant's validity window and its key's activation:
            a grant is honoured offline from ``skew`` before its ``not_before`` to ``skew`` after
            its ``expire_time`` (the server, deciding on its own clock, honours it up to its
            ``expire_time`` only).
        key_refresh: How often the key set and the licensee are fetched again.
        min_backoff: The first delay before reconnecting the revocation stream; it doubles (with
            jitter) after each failed attempt.
        max_backoff: The longest delay between two attempts to reconnect.
        idle_timeout: A revocation stream that delivers nothing (no event, no heartbeat) for
            this long is dropped and reopened. Keep it above the server's heartbeat interval.
        cache_size: How many verified envelopes the verifier remembers by digest (so that a new
            key ring re-checks held grants without signature work); 0 disables that cache.

    Raises:
        ValueError: A duration is not positive, ``max_backoff < min_backoff``, ``cache_size`` is
            negative, or a grant is not a grant envelope (see `add_grants`).
        TypeError: A duration is not a ``datetime.timedelta``.
    """

    def __init__(
        self,
        client: Client,
        *,
        grants: Iterable[Envelope | str] = (),
        max_staleness: timedelta = timedelta(seconds=30),
        clock: Callable[[], datetime] | None = None,
        skew: timedelta = timedelta(seconds=60),
        key_refresh: timedelta = timedelta(minutes=5),
        min_backoff: timedelta = timedelta(milliseconds=200),
        max_backoff: timedelta = timedelta(seconds=10),
        idle_timeout: timedelta = timedelta(seconds=20),
        cache_size: int = 4096,
    ) -> None:
        _seconds(max_staleness, "max_staleness", positive=False)
        _seconds(skew, "skew", positive=False)
        self._key_refresh_seconds = _seconds(key_refresh, "key_refresh")
        self._min_backoff = _seconds(min_backoff, "min_backoff")
        self._max_backoff = _seconds(max_backoff, "max_backoff")
        if self._max_backoff < self._min_backoff:
            raise ValueError("max_backoff must not be less than min_backoff")
        self._idle_seconds = _seconds(idle_timeout, "idle_timeout")
        self._client = client
        self._clock: Callable[[], datetime] = clock if clock is not None else _system_clock()
        self._max_staleness = max_staleness
        self._key_grace = key_refresh + max_staleness
        self._verifier = GrantVerifier(skew=skew, cache_size=cache_size)
        self._skew_us = skew // _ONE_MICROSECOND

        # Who decides: set by start() and the refresher.
        self._licensee_id = ""
        self._platform = ""
        self._archived = False
        self._ring: KeyRing | None = None
        self._keys_confirmed: datetime | None = None

        # The revocation view: grant id -> REVOKED or SUSPENDED (active grants are absent), the
        # last sequence applied, and when it was last current. Written by the watcher only; an
        # event's state is stored before its sequence, so a reader that sees the sequence also
        # sees the state.
        self._statuses: dict[str, GrantStatus] = {}
        # Characters suspended by staff (from the log's character events), with the denial to give.
        self._suspended: dict[str, CharacterDecision] = {}
        self._sequence = 0
        self._fresh_as_of: datetime | None = None
        self._broken = ""  # why the view can never be trusted again (an event kind unknown to this SDK)
        # The one comparison a decision makes: the earliest time at which the view or the key
        # set becomes too old; _NEVER while there is no usable view.
        self._offline_until = _NEVER

        # Held grants: character id -> grants, newest first. Replaced whole (copy on write).
        self._held: dict[str, tuple[_Held, ...]] = {}
        self._held_digests: set[bytes] = set()

        self._lock = threading.Lock()  # held grants, lifecycle, the current watch
        self._changed = threading.Condition()  # notified when the view moves
        self._stopping = threading.Event()
        self._keys_wanted = threading.Event()
        self._started = False
        self._threads: list[threading.Thread] = []
        self._watch: Any = None
        self._last_message = time.monotonic()
        self._beats = 0  # heartbeats at which the view was current, for the reconnect backoff

        self.add_grants(grants)

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self, *, timeout: float | None = 10.0) -> None:
        """Identify the licensee, fetch the key set, and start keeping the view current.

        Args:
            timeout: How long to wait, in seconds, for the revocation view to become current
                (the stream's first heartbeat) before returning; None or 0 not to wait. Not
                being current yet is not an error: requests go to the server until it is.

        Raises:
            ValueError: The client's API key is not a generator key bound to a licensee.
            RuntimeError: The authorizer was closed, or is already started.
            CharterError: ``GetCaller``, ``GetLicensee`` or ``GetKeySet`` failed.
        """
        with self._lock:
            if self._stopping.is_set():
                raise RuntimeError("the offline authorizer is closed")
            if self._started:
                raise RuntimeError("the offline authorizer is already started")
            self._started = True
        try:
            caller = self._client.get_caller()
            if caller.role != api_key_pb2.ROLE_GENERATOR or not caller.licensee_id:
                raise ValueError("the offline authorizer needs a generator API key bound to a licensee")
            self._licensee_id = caller.licensee_id
            self._refresh()
        except BaseException:
            with self._lock:
                self._started = False
            raise
        self._threads = [
            threading.Thread(target=self._watch_loop, name="charter-offline-watch", daemon=True),
            threading.Thread(target=self._refresh_loop, name="charter-offline-refresh", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        if timeout:
            self.wait_current(timeout=timeout)

    def close(self) -> None:
        """Stop the background threads (waiting a few seconds at most); decisions then go to the
        server. The client is not closed. Closing twice is harmless."""
        with self._lock:
            self._stopping.set()
            watch = self._watch
        self._keys_wanted.set()
        if watch is not None:
            watch.cancel()
        for thread in self._threads:
            thread.join(_JOIN_SECONDS)
        self._offline_until = _NEVER
        with self._changed:
            self._changed.notify_all()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"OfflineAuthorizer(licensee_id={self._licensee_id!r}, sequence={self._sequence}, "
            f"fresh_as_of={self._fresh_as_of!r}, grants={sum(len(g) for g in self._held.values())})"
        )

    # -- held grants ------------------------------------------------------------------------------

    def add_grants(self, grants: Iterable[Envelope | str]) -> int:
        """Hold more grants; an envelope already held is skipped.

        Args:
            grants: ``charter.v1.Envelope`` messages (copied) or their DSSE JSON text.

        Returns:
            How many envelopes were new.

        Raises:
            ValueError: A grant is not a grant envelope: JSON that does not decode
                (`charter.envelope.MalformedEnvelope`), another payload type, no signature, or
                a payload that is not ``GrantClaims``. Nothing is added then. Whether a grant
                verifies is decided per decision, not here.
            TypeError: A grant is neither an ``Envelope`` nor a string.
        """
        parsed: list[tuple[bytes, _Held]] = []
        for grant in grants:
            if isinstance(grant, str):
                envelope = from_json(grant)
            elif isinstance(grant, Envelope):
                envelope = Envelope.FromString(grant.SerializeToString())
            else:
                raise TypeError("a grant is a charter.v1.Envelope or its DSSE JSON text")
            if envelope.payload_type != GRANT_PAYLOAD_TYPE:
                raise ValueError(f"not a grant envelope: payload type {envelope.payload_type!r}")
            if not envelope.signatures:
                raise ValueError("a grant envelope needs at least one signature")
            try:
                claims = grant_pb2.GrantClaims.FromString(envelope.payload)
            except Exception as error:  # DecodeError, or anything a hostile payload provokes
                raise ValueError("the grant's payload is not GrantClaims") from error
            parsed.append((digest(envelope), _Held(envelope, claims)))
        with self._lock:
            held = {character_id: list(same) for character_id, same in self._held.items()}
            added = 0
            for key, new in parsed:
                if key in self._held_digests:
                    continue
                self._held_digests.add(key)
                held.setdefault(new.character_id, []).append(new)
                added += 1
            if added:
                self._held = {
                    character_id: tuple(sorted(same, key=lambda g: g.issued, reverse=True))
                    for character_id, same in held.items()
                }
        return added

    def warm_up(self) -> int:
        """Verify every held grant not yet verified against the current key ring, now.

        Moves the signature work (and compiling the terms) off the first decision of each grant.

        Returns:
            How many grants were verified; 0 before `start`.
        """
        ring = self._ring
        if ring is None:
            return 0
        now = self._clock()
        count = 0
        for grants in self._held.values():
            for grant in grants:
                checked = grant.checked
                if checked is None or checked.ring is not ring:
                    self._check(grant, ring, now)
                    count += 1
        return count

    # -- the view ---------------------------------------------------------------------------------

    @property
    def licensee_id(self) -> str:
        """The licensee decided for (the API key's); empty before `start`."""
        return self._licensee_id

    @property
    def platform(self) -> str:
        """The licensee's platform, as of the last refresh; empty before `start`."""
        return self._platform

    @property
    def max_staleness(self) -> timedelta:
        """How old the revocation view may be for a request to be decided offline."""
        return self._max_staleness

    @property
    def sequence(self) -> int:
        """The last revocation-log sequence number applied to the view (0 before any)."""
        return self._sequence

    @property
    def fresh_as_of(self) -> datetime | None:
        """The time (on the authorizer's clock) of the last heartbeat at which the view was
        current; None before the first."""
        return self._fresh_as_of

    @property
    def staleness(self) -> timedelta | None:
        """How old the revocation view is now (``clock() - fresh_as_of``); None before it was
        ever current."""
        fresh = self._fresh_as_of
        return None if fresh is None else self._clock() - fresh

    @property
    def key_set_version(self) -> str:
        """The version of the key set decisions verify against; empty before `start`."""
        ring = self._ring
        return "" if ring is None else ring.version

    def grant_status(self, grant_id: str) -> GrantStatus:
        """The state of a grant in the revocation view (``ACTIVE`` when the log never named it)."""
        return self._statuses.get(grant_id, _ACTIVE)

    def is_current(self, min_sequence: int = 0) -> bool:
        """Whether a request may be decided offline now, as far as the view goes.

        Args:
            min_sequence: A revocation-log sequence number the view must have seen.

        Returns:
            True when the view and the key set are fresh enough and the view has seen
            ``min_sequence``.
        """
        return self._clock() <= self._offline_until and self._sequence >= min_sequence

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
                self._changed.wait(min(remaining, _TICK_SECONDS))
        return True

    # -- deciding ---------------------------------------------------------------------------------

    def use_context(
        self,
        *,
        use_type: int,
        content_rating: int,
        categories: Iterable[int] = (),
        territory: str = "",
        commercial: bool = False,
        duration: timedelta | None = None,
        co_characters: Iterable[str] = (),
    ) -> UseContext:
        """A `UseContext` for `decide`: this licensee and platform, the authorizer's clock's time.

        Args:
            use_type: A ``charter.v1.UseType`` value.
            content_rating: A ``charter.v1.ContentRating`` value.
            categories: ``charter.v1.ContentCategory`` values the service's classifiers flagged.
            territory: The ISO 3166-1 alpha-2 code of where the content is served.
            commercial: Whether the use is commercial.
            duration: The length of the content.
            co_characters: The other characters in the same content.

        Returns:
            The context. Build it just before deciding: `decide` refuses a context whose time
            is more than `CONTEXT_TOLERANCE` from its clock's.
        """
        return UseContext(
            use_type,
            content_rating,
            self._clock(),
            categories=categories,
            territory=territory,
            platform=self._platform,
            licensee_id=self._licensee_id,
            commercial=commercial,
            duration_seconds=0.0 if duration is None else duration.total_seconds(),
            co_characters=co_characters,
        )

    def decide(self, character_id: str, context: UseContext, *, min_sequence: int = 0) -> CharacterDecision | None:
        """Decide one character offline, or say that it cannot be: the lean path of `authorize`.

        Args:
            character_id: The character.
            context: The use, from `use_context` (its licensee, platform and co-characters are
                taken as they are; its time must be within `CONTEXT_TOLERANCE` of the clock).
            min_sequence: A revocation-log sequence number the view must have seen.

        Returns:
            The decision (``declared=True``; shared objects, treat as read-only), or None when
            the character cannot be decided offline now: the view or the key set is too old,
            it has not seen ``min_sequence``, the context is not this licensee's or not current,
            no grant is held for the character, the grant that would allow it has quota terms,
            or a grant names a key the ring does not know. Then ask `authorize`, which goes to
            the server.
        """
        now = self._clock()
        drift = now - context.time
        if (
            now > self._offline_until
            or self._sequence < min_sequence
            or drift > CONTEXT_TOLERANCE
            or drift < _NEGATIVE_TOLERANCE
            or context.licensee_id != self._licensee_id
            or context.platform != self._platform
        ):
            return None
        return self._decide(character_id, context)

    def _decide(self, character_id: str, context: UseContext) -> CharacterDecision | None:
        """Decide with `charter.decide` from what the view knows, or None when the server must."""
        suspended = self._suspended.get(character_id)
        candidates: list[_Checked] = []
        if suspended is None:  # a character suspended by staff is denied whatever grants are held
            held = self._held.get(character_id)
            if not held:
                return None  # the server knows whether the character exists and is opted in
            ring = self._ring
            if ring is None:
                return None
            for grant in held:
                checked = grant.checked
                if checked is None or checked.ring is not ring:
                    checked = self._check(grant, ring, context.time)
                candidates.append(checked)
        outcome = decide(
            licensee_archived=self._archived,
            character=_OPTED_IN if suspended is None else _CHARACTER_SUSPENDED,
            candidates=candidates,
            status=self._status,
            use=context,
        )
        if outcome is None:
            return None  # a key the ring does not know
        chosen = outcome.candidate
        if chosen is None:
            return suspended or CharacterDecision(character_id, allowed=False, reasons=outcome.reasons)
        if outcome.allowed:
            return None if chosen.quota else chosen.allow  # quotas and caps are counted by the server
        return chosen.denial(outcome.reasons)

    def _status(self, grant_id: str) -> GrantStatus:
        return self._statuses.get(grant_id, _ACTIVE)

    def _check(self, grant: _Held, ring: KeyRing, now: datetime) -> _Checked:
        """Verify a held grant against ``ring`` (the cold path) and remember the outcome."""
        result = self._verifier.verify(
            grant.envelope, keys=ring, licensee_id=self._licensee_id, character_id=grant.character_id, now=now
        )
        claims = result.claims
        # The window and the state are judged per decision (`charter.decide`), so the outcome
        # kept here does not depend on the time.
        integrity = integrity_of(result, licensee_id=self._licensee_id, character_id=grant.character_id)
        if integrity is Integrity.UNKNOWN_KEY:
            checked = _Checked(ring, grant.character_id, integrity=integrity)
            self._keys_wanted.set()
        elif integrity is Integrity.VERIFIED:
            assert claims is not None
            previous = grant.checked
            if previous is not None and previous.terms is not None and previous.grant_id == claims.grant_id:
                checked = previous.for_ring(ring)  # a new key ring: the same envelope, the same claims
            else:
                checked = _Checked(ring, grant.character_id, claims=claims, skew_us=self._skew_us)
        else:
            checked = _Checked(ring, grant.character_id, claims=claims, integrity=integrity)
        grant.checked = checked
        return checked

    def authorize(
        self,
        *,
        character_ids: Iterable[str] = (),
        prompt: str = "",
        use_type: int,
        content_rating: int,
        categories: Iterable[int] = (),
        territory: str = "",
        commercial: bool = False,
        duration: timedelta | None = None,
        min_sequence: int = 0,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> Decision:
        """Decide whether the characters may be used: offline when it can, else by the server.

        See the module documentation for when a request is decided offline. The keyword
        arguments are those of ``Client.authorize``, less ``grants`` (the held ones are used),
        plus ``min_sequence``.

        Args:
            character_ids: The characters the content will show, without duplicates.
            prompt: The prompt; a request with a prompt always goes to the server.
            use_type: A ``charter.v1.UseType`` value.
            content_rating: A ``charter.v1.ContentRating`` value.
            categories: ``charter.v1.ContentCategory`` values the service's classifiers flagged.
            territory: The ISO 3166-1 alpha-2 code of where the content is served.
            commercial: Whether the use is commercial.
            duration: The length of the content.
            min_sequence: A revocation-log sequence number (as ``RevokeGrant`` returns) that the
                view must have seen for the request to be decided offline.
            request_id: Passed to the server when it decides (makes a retry safe).
            timeout: The deadline of the server call in seconds, when there is one.

        Returns:
            The decision: ``offline=True`` and no receipt when decided here (or when the server
            could not be reached: every declared character denied with ``SERVER_UNREACHABLE``);
            the server's decision, with its receipt, otherwise.

        Raises:
            ValueError: No character and no prompt, a character id given twice, or an unknown
                enum value (checked as ``Client.authorize`` checks them; names are accepted).
            TypeError: An argument has the wrong type.
            CharterError: The server failed otherwise than ``UNAVAILABLE`` or
                ``DEADLINE_EXCEEDED`` (for example ``INVALID_ARGUMENT`` for an unknown
                character, or ``UNAUTHENTICATED``).
        """
        ids = tuple(character_ids)
        everyone = frozenset(ids)
        if len(everyone) != len(ids):
            raise ValueError("a character id is given twice")
        if not ids and not prompt.strip():
            raise ValueError("at least one of character_ids and prompt is required")
        flagged = tuple(categories)
        flagged_set = frozenset(flagged)
        if not (
            type(use_type) is int
            and use_type in _USE_TYPES
            and type(content_rating) is int
            and content_rating in _RATINGS
            and flagged_set <= _CATEGORIES
        ):
            # The client's own checks: an unknown value raises, a name becomes its number.
            parsed = _requests.use_context(
                use_type=use_type,
                content_rating=content_rating,
                categories=flagged,
                territory=territory,
                commercial=commercial,
                duration=duration,
            )
            use_type, content_rating = parsed.use_type, parsed.content_rating
            flagged = tuple(parsed.categories)
            flagged_set = frozenset(flagged)
        now = self._clock()
        if ids and not prompt and now <= self._offline_until and self._sequence >= min_sequence:
            duration_seconds = 0.0 if duration is None else duration.total_seconds()
            characters: list[CharacterDecision] = []
            for character_id in ids:
                context = UseContext(
                    use_type,
                    content_rating,
                    now,
                    categories=flagged_set,
                    territory=territory,
                    platform=self._platform,
                    licensee_id=self._licensee_id,
                    commercial=commercial,
                    duration_seconds=duration_seconds,
                    co_characters=everyone - {character_id} if len(ids) > 1 else frozenset(),
                )
                decided = self._decide(character_id, context)
                if decided is None:
                    break
                characters.append(decided)
            else:
                return Decision(
                    allowed=all(c.allowed for c in characters),
                    characters=tuple(characters),
                    decide_time=now,
                    licensee_id=self._licensee_id,
                    offline=True,
                )
        return self._ask_server(
            ids,
            prompt=prompt,
            use_type=use_type,
            content_rating=content_rating,
            categories=flagged,
            territory=territory,
            commercial=commercial,
            duration=duration,
            request_id=request_id,
            timeout=timeout,
            now=now,
        )

    def _ask_server(
        self,
        ids: tuple[str, ...],
        *,
        prompt: str,
        use_type: int,
        content_rating: int,
        categories: tuple[int, ...],
        territory: str,
        commercial: bool,
        duration: timedelta | None,
        request_id: str | None,
        timeout: float | None,
        now: datetime,
    ) -> Decision:
        held = self._held
        presented = [grant.envelope for character_id in ids for grant in held.get(character_id, ())]
        if prompt:  # the prompt may name characters that were not declared
            declared = set(ids)
            presented += [
                grant.envelope
                for character_id, grants in held.items()
                if character_id not in declared
                for grant in grants
            ]
        try:
            return self._client.authorize(
                character_ids=ids,
                prompt=prompt,
                use_type=use_type,
                content_rating=content_rating,
                categories=categories,
                territory=territory,
                commercial=commercial,
                duration=duration,
                grants=presented[:MAX_GRANTS_PER_REQUEST],
                request_id=request_id,
                timeout=timeout,
            )
        except (UnavailableError, DeadlineExceededError) as error:
            log.warning("charter.offline: the server cannot be reached (%s); denying", error.code.name)
        return Decision(
            allowed=False,
            characters=tuple(CharacterDecision(character_id, False, _UNREACHABLE) for character_id in ids),
            decide_time=now,
            licensee_id=self._licensee_id,
            offline=True,
        )

    def license(
        self,
        *,
        character_ids: Iterable[str] = (),
        prompt: str = "",
        use_type: int,
        content_rating: int,
        categories: Iterable[int] = (),
        territory: str = "",
        commercial: bool = False,
        duration: timedelta | None = None,
        min_sequence: int = 0,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> contextlib.AbstractContextManager[License]:
        """Authorize on entry (as `authorize`); run the block only if allowed; record a clean exit.

        A denial raises `charter.decisions.LicenseDenied` on entry and the block does not run.
        A clean exit marks the `License` used and records it in the client's ``receipts``
        journal; an exception in the block records nothing and propagates. When the server
        decided (the authorizer asked it), the clean exit also reports the use through the
        client, as `charter.Client.license` does. A decision made offline has no receipt, so
        its use cannot be reported: it stays in ``receipts`` only.

        Args:
            character_ids: As `authorize`.
            prompt: As `authorize`.
            use_type: As `authorize`.
            content_rating: As `authorize`.
            categories: As `authorize`.
            territory: As `authorize`.
            commercial: As `authorize`.
            duration: As `authorize`.
            min_sequence: As `authorize`.
            request_id: As `authorize`.
            timeout: As `authorize`.

        Returns:
            A context manager that yields the `License`.
        """
        ids = tuple(character_ids)
        flagged = tuple(categories)

        def decide() -> Decision:
            return self.authorize(
                character_ids=ids,
                prompt=prompt,
                use_type=use_type,
                content_rating=content_rating,
                categories=flagged,
                territory=territory,
                commercial=commercial,
                duration=duration,
                min_sequence=min_sequence,
                request_id=request_id,
                timeout=timeout,
            )

        return license_block(
            decide, self._client.receipts.record, lambda granted: self._client._report_license(granted, timeout)
        )

    # -- background -------------------------------------------------------------------------------

    def _backoff(self, failures: int) -> float:
        """The delay before the next attempt after ``failures`` failures in a row (0 for none)."""
        if failures <= 0:
            return 0.0
        cap = min(self._max_backoff, self._min_backoff * (1 << min(failures - 1, 30)))
        return cap * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not a secret

    def _recompute(self) -> None:
        """Set the one bound decisions compare with (called when the view or the key set moves)."""
        fresh, confirmed = self._fresh_as_of, self._keys_confirmed
        if self._broken or self._archived or self._stopping.is_set() or fresh is None or confirmed is None:
            until = _NEVER
        else:
            until = min(fresh + self._max_staleness, confirmed + self._key_grace)
        self._offline_until = until
        with self._changed:
            self._changed.notify_all()

    def _refresh(self) -> None:
        """Fetch the key set and the licensee; replace the ring only when its version moved."""
        key_set = self._client.get_key_set()
        licensee = self._client.get_licensee(self._licensee_id)
        ring = self._ring
        if ring is None or key_set.version != ring.version:
            self._ring = KeyRing.from_key_set(key_set)
        self._platform = licensee.platform
        self._archived = licensee.state == licensee_pb2.Licensee.STATE_ARCHIVED
        self._keys_confirmed = self._clock()
        self._recompute()

    def _refresh_loop(self) -> None:
        next_refresh = time.monotonic() + self._key_refresh_seconds
        last_refresh = time.monotonic()
        failures = 0
        while not self._stopping.is_set():
            self._keys_wanted.wait(max(0.0, min(_TICK_SECONDS, next_refresh - time.monotonic())))
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
                next_refresh = now + min(self._key_refresh_seconds, max(self._backoff(failures), _TICK_SECONDS))
                log.warning("charter.offline: refreshing the key set failed: %r", error)
            else:
                failures = 0
                next_refresh = now + self._key_refresh_seconds

    def _watch_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            beats = self._beats
            try:
                self._watch_once()
            except _Resync as error:
                log.warning("charter.offline: %s; reopening the revocation stream", error)
            except CharterError as error:
                if not self._stopping.is_set():
                    log.warning("charter.offline: the revocation stream failed (%s)", error.code.name)
            except Exception:  # a bug must not end the thread: the view just goes stale
                log.exception("charter.offline: the revocation watcher failed")
            failures = 0 if self._beats != beats else failures + 1
            if self._stopping.wait(self._backoff(failures)):
                return

    def _watch_once(self) -> None:
        """Read one stream, from the last sequence applied, until it ends or fails."""
        watch = self._client.watch_revocations(self._sequence, timeout=_STREAM_SECONDS)
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
                        self._heartbeat(item.sequence)
                    if self._stopping.is_set():
                        return
            finally:
                with self._lock:
                    self._watch = None

    def _apply(self, event: grant_pb2.RevocationEvent) -> None:
        sequence = event.sequence
        if sequence <= self._sequence:
            return  # seen already
        if sequence != self._sequence + 1:
            raise _Resync(f"event {sequence} follows {self._sequence}")
        grant_id, kind, statuses = event.grant_id, event.kind, self._statuses
        if kind == _KIND_REVOKED:
            statuses[grant_id] = _REVOKED
        elif kind == _KIND_SUSPENDED:
            if statuses.get(grant_id) is not _REVOKED:
                statuses[grant_id] = _SUSPENDED
        elif kind == _KIND_REINSTATED:
            if statuses.get(grant_id) is _SUSPENDED:
                del statuses[grant_id]
        elif kind == _KIND_CHARACTER_SUSPENDED:
            self._suspended[event.character_id] = CharacterDecision(
                event.character_id, allowed=False, reasons=(DenyReason.CHARACTER_SUSPENDED,)
            )
        elif kind == _KIND_CHARACTER_REINSTATED:
            self._suspended.pop(event.character_id, None)
        else:
            # A kind this SDK does not know may take something away: never decide offline again.
            self._broken = f"revocation event {sequence} has an unknown kind {kind}; update the SDK"
            log.error("charter.offline: %s", self._broken)
            self._recompute()
        self._sequence = sequence
        with self._changed:
            self._changed.notify_all()

    def _skip(self, sequence: int) -> None:
        # Events the server left out (another licensee's): the next event follows on from here.
        # Being further along says nothing about being current; only a heartbeat does.
        if sequence > self._sequence:
            self._sequence = sequence
            with self._changed:
                self._changed.notify_all()

    def _heartbeat(self, sequence: int) -> None:
        if sequence == self._sequence:
            self._fresh_as_of = self._clock()
            self._beats += 1
            self._recompute()
        elif sequence > self._sequence:
            raise _Resync(f"a heartbeat at {sequence} follows event {self._sequence}")
        else:
            log.warning(
                "charter.offline: the server's revocation log (at %d) is behind this view (at %d)",
                sequence,
                self._sequence,
            )
