"""`OfflineAuthorizer`: decides generation-time requests from held grants, failing closed; see
the package documentation (`charter.offline`)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from charter import _requests
from charter._license import License, license_block
from charter.decide import CharacterState, Integrity, allowing_by_position
from charter.decision_records import DecisionRecordSigner
from charter.decisions import CharacterDecision, Decision
from charter.errors import DeadlineExceededError, UnavailableError
from charter.grants import GrantVerifier, KeyRing
from charter.offline.background import NEVER, backoff_bounds, log, seconds_of, system_clock
from charter.offline.decisions import answer, decide_offline
from charter.offline.fallback import ask_server
from charter.offline.held import Checked, Held, HeldGrants, check
from charter.offline.keys import LicenseeKeys, pin_keys
from charter.offline.leases import QuotaLeases, check_lease_options
from charter.offline.local import DecidesLocally, require_screening
from charter.offline.revocations import RevocationView
from charter.terms import DenyReason, UseContext
from charter.territories import territory_code
from charter.v1 import terms_pb2
from charter.v1.envelope_pb2 import Envelope

if TYPE_CHECKING:
    from charter.client import Client

CONTEXT_TOLERANCE: Final = timedelta(seconds=5)
"""How far the time of a `UseContext` given to `OfflineAuthorizer.decide` may be from the
authorizer's clock; a context further off is not decided offline."""

_UNREACHABLE: Final = DenyReason.SERVER_UNREACHABLE
_OPTED_IN: Final = CharacterState.OPTED_IN
_UNKNOWN_KEY: Final = Integrity.UNKNOWN_KEY
_ONE_MICROSECOND: Final = timedelta(microseconds=1)
_NEGATIVE_TOLERANCE: Final = -CONTEXT_TOLERANCE
_JOIN_SECONDS: Final = 5.0
_USE_TYPES: Final = frozenset(terms_pb2.UseType.values())
_RATINGS: Final = frozenset(terms_pb2.ContentRating.values())
_CATEGORIES: Final = frozenset(terms_pb2.ContentCategory.values())


class OfflineAuthorizer(DecidesLocally):
    """Decides generation-time requests from the grants it holds; see the module documentation.

    Args:
        client: The client to call Charter with; its API key must be a generator key. The
            authorizer does not close it.
        grants: The grant envelopes to hold: ``charter.v1.Envelope`` messages or their DSSE JSON
            text. More can be added with `add_grants`.
        max_staleness: How old the revocation view may be (since the last heartbeat at which it
            was current, on ``clock`` and on ``monotonic``, whichever says older) for a
            request to be decided offline. Keep it a few times the server's heartbeat interval
            (``revocation_heartbeat_seconds``, 5 s by default), or it goes stale between beats.
        clock: Returns the current time (timezone-aware); the system clock when None. It times
            freshness, validity windows and terms.
        monotonic: Returns the monotonic clock's time in seconds; ``time.monotonic`` when None.
            Every age (the view's, the key set's, the registry snapshot's) is bounded on it too.
        skew: The clock skew tolerated on a grant's validity window and its key's activation:
            a grant is honoured offline from ``skew`` before its ``not_before`` to ``skew`` after
            its ``expire_time`` (the server, deciding on its own clock, honours it up to its
            ``expire_time`` only).
        key_refresh: How often the key set and the licensee are fetched again; a key set not
            fetched for ``key_refresh + max_staleness`` (on both clocks) is too old to decide with.
        min_backoff: The first delay before reconnecting the revocation stream; it doubles (with
            jitter) after each failed attempt.
        max_backoff: The longest delay between two attempts to reconnect.
        idle_timeout: A revocation stream that delivers nothing (no event, no heartbeat) for
            this long is dropped and reopened. Keep it above the server's heartbeat interval. (A
            dead connection is found by the client's pings: README, "A dead connection is found".)
        cache_size: Not 0: the verifier remembers what it found about each held grant, on the
            grant (so that a new key ring re-checks held grants without signature work), and
            about up to this many other envelopes by digest; 0: nothing is remembered.
        signer: A licensee key (`charter.decision_records.DecisionRecordSigner`, its key
            registered with ``OfflineService/RegisterLicenseeKey``) that signs a decision record
            for every character decided offline (`Decision.decision_records`), so that a
            `license` block reports the use and it is paid like an online one. None: offline
            decisions carry no record and their uses are not reported.
        fetch_bundle: Fetch the licensee's own grants (``GetGrantBundle``) at start and at every
            key-set refresh, and hold them, besides ``grants``.
        cache_dir: A directory (one per licensee) where the fetched bundle and the state decided
            with (the key set, the licensee, the revocation view as of its last heartbeat) are
            kept (`charter.offline.cache`: atomic writes, checked on load). Started while Charter
            is unreachable, the authorizer takes them and does not raise: it decides offline
            while the kept view is within ``max_staleness`` of its last heartbeat; after that
            requests are denied with ``SERVER_UNREACHABLE`` (``CACHE_CORRUPTED`` when the cache
            failed its check) until the server answers, and are decided offline again once the
            view is current.
        lease_uses: With a ``signer``, a grant with a quota or a cap is decided offline from a
            quota lease (`charter.offline.leases`): this many uses are leased at a time (1 to
            10,000), and as many added when a quarter is left; the first decision, and any while
            no lease is at hand, goes to the server.
        lease_ttl: How long a lease may be spent; it is renewed when a quarter is left, and what
            was not spent goes back to the quotas at `close`.
        screen_locally: Screen prompts here against a signed registry snapshot kept current
            through the revocation stream (`charter.offline.local`; needs the ``screening``
            extra), and decide the characters they name offline; without it a request with a
            prompt goes to the server.
        pinned_keys: The public keys of Charter's grant-signing keys to trust offline (raw, or
            base64 as ``charter signing-keys list --json`` prints them); None: any in the key set.
            An unpinned key, fetched or from ``cache_dir``, verifies nothing offline (``UNKNOWN_KEY``;
            a key planted in the cache forges nothing). Pin a new key before rotating to it.

    Raises:
        ValueError: A duration is not positive, ``max_backoff < min_backoff``, ``cache_size`` is
            negative, ``lease_uses`` is out of range, a grant is not a grant envelope (see
            `add_grants`), ``screen_locally`` without the ``screening`` extra, or ``pinned_keys``
            is empty or not of Ed25519 public keys.
        TypeError: A duration is not a ``datetime.timedelta``; a pinned key not bytes or str.
    """

    def __init__(
        self,
        client: Client,
        *,
        grants: Iterable[Envelope | str] = (),
        max_staleness: timedelta = timedelta(seconds=30),
        clock: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] | None = None,
        skew: timedelta = timedelta(seconds=60),
        key_refresh: timedelta = timedelta(minutes=5),
        min_backoff: timedelta = timedelta(milliseconds=200),
        max_backoff: timedelta = timedelta(seconds=10),
        idle_timeout: timedelta = timedelta(seconds=20),
        cache_size: int = 4096,
        signer: DecisionRecordSigner | None = None,
        fetch_bundle: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
        lease_uses: int = 100,
        lease_ttl: timedelta = timedelta(minutes=5),
        screen_locally: bool = False,
        pinned_keys: Iterable[bytes | str] | None = None,
    ) -> None:
        seconds_of(max_staleness, "max_staleness", positive=False)
        seconds_of(skew, "skew", positive=False)
        self._key_refresh_seconds = seconds_of(key_refresh, "key_refresh")
        self._min_backoff, self._max_backoff = backoff_bounds(min_backoff, max_backoff)
        self._idle_seconds = seconds_of(idle_timeout, "idle_timeout")
        check_lease_options(lease_uses, lease_ttl)
        self._client, self._signer, self._fetch_bundle = client, signer, fetch_bundle
        if screen_locally:
            require_screening()
        self._screen_locally = screen_locally
        self._registry_wanted = threading.Event()
        self._cache_dir = None if cache_dir is None else Path(cache_dir)
        self._cache_corrupted = False
        self._clock: Callable[[], datetime] = clock if clock is not None else system_clock()
        self._monotonic: Callable[[], float] = monotonic if monotonic is not None else time.monotonic
        self._max_staleness = max_staleness
        self._key_grace = key_refresh + max_staleness
        self._verifier = GrantVerifier(skew=skew, cache_size=cache_size)
        # Quota leases are spent only where each use can be reported: with decision records.
        leases = QuotaLeases(client, self._clock, self._monotonic, block=lease_uses, ttl=lease_ttl)
        self._leases = None if signer is None else leases
        self._skew_us = skew // _ONE_MICROSECOND

        # Who decides: the licensee (set by start()), its key set and platform (the refresher).
        self._licensee_id = ""
        pinned = None if pinned_keys is None else pin_keys(pinned_keys)
        self._key_set = LicenseeKeys(self._clock, pinned, self._monotonic)
        # The revocation view (written by the watcher only).
        self._view = RevocationView(self._clock, self._monotonic)
        self._offline_until = NEVER  # when the view or the key set is too old (`_recompute`); NEVER: no view
        # Held grants: character id -> grants, newest first.
        self._held = HeldGrants(self._skew_us, self._key_set)

        self._lock = threading.Lock()  # held grants, lifecycle, the current watch
        self._changed = threading.Condition()  # notified when the view moves
        self._stopping = threading.Event()
        self._keys_wanted = threading.Event()
        self._started = False
        self._threads: list[threading.Thread] = []
        self._watch: Any = None
        self._last_message = time.monotonic()

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
            self._refresh()
        except (UnavailableError, DeadlineExceededError) as error:
            # Fail closed, never raise: hold what the cache has; the refresher keeps trying.
            log.warning("charter.offline: Charter cannot be reached at start (%s)", error.code.name)
            self._load_cache()
        except BaseException:
            with self._lock:
                self._started = False
            raise
        self._threads = [
            threading.Thread(target=self._watch_loop, name="charter-offline-watch", daemon=True),
            threading.Thread(target=self._refresh_loop, name="charter-offline-refresh", daemon=True),
        ]
        if self._leases is not None:
            self._threads.append(
                threading.Thread(
                    target=self._leases.run, args=(self._stopping,), name="charter-offline-leases", daemon=True
                )
            )
        if self._screen_locally:
            self._threads.append(
                threading.Thread(target=self._registry_loop, name="charter-offline-registry", daemon=True)
            )
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
        self._registry_wanted.set()
        if self._leases is not None:
            self._leases.wanted.set()
        if watch is not None:
            watch.cancel()
        for thread in self._threads:
            thread.join(_JOIN_SECONDS)
        if self._leases is not None and self._threads:
            self._leases.close()  # what was not spent goes back to the quotas
        if self._cache_dir is not None and self._threads and not any(t.is_alive() for t in self._threads):
            self._save_state(self._cache_dir)  # the view as it ends (its only writer has stopped)
        self._recompute()  # stopping: no bound, and the waiters are woken

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
            f"OfflineAuthorizer(licensee_id={self._licensee_id!r}, sequence={self._view.sequence}, "
            f"fresh_as_of={self._view.fresh_as_of!r}, grants={len(self._held)})"
        )

    # -- held grants ------------------------------------------------------------------------------

    def leases(self) -> dict[tuple[str, str], tuple[str, int, int]]:
        """The open quota leases: (character, grant) → (lease id, uses leased, uses spent)."""
        return {} if self._leases is None else self._leases.open_leases()

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
        return self._held.add(grants)

    def warm_up(self) -> int:
        """Verify every held grant not yet verified against the current key ring, now.

        Moves the signature work (and compiling the terms) off the first decision of each grant.

        Returns:
            How many grants were verified; 0 before `start`.
        """
        ring = self._key_set.ring
        if ring is None:
            return 0
        now = self._clock()
        count = 0
        for grants in self._held.by_character.values():
            for grant in grants:
                checked = grant.checked
                if checked is None or checked.ring is not ring:
                    self._check(grant, ring, now)
                    count += 1
        return count

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
            platform=self._key_set.platform,
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
        clock = self._clock  # (read, then called: a method look-up of an instance attribute is not specialized)
        now = clock()
        drift = now - context.time
        key_set = self._key_set
        if (
            not self._offline_from <= now <= self._offline_until
            or self._monotonic() > self._monotonic_until
            or (min_sequence > 0 and self._view.sequence < min_sequence)
            or drift > CONTEXT_TOLERANCE
            or drift < _NEGATIVE_TOLERANCE
            or context.licensee_id != self._licensee_id
            or context.platform != key_set.platform
        ):
            return None
        held, ring, view = self._held.by_character.get(character_id), key_set.ring, self._view
        if held is not None and character_id not in view.suspended and character_id not in view.withdrawn:
            # `decide_offline` written out for an opted-in character with held grants (the warm
            # path, issue 16, and a grant's first decision, which verifies it): the same call of
            # `charter.decide` (answering an allowed use with the grant that allows it), then an
            # allowing grant without a quota answers at once.
            candidates = held.candidates
            if not candidates or candidates[0].ring is not ring:  # all against one ring, or none yet
                if ring is None:  # before the first key set: the server decides
                    return None
                candidates = held.against(ring, context.time, self._check)
            found = allowing_by_position(key_set.archived, _OPTED_IN, candidates, view.status_of, context)
            if type(found) is Checked and not found.quota and found.allow is not None:
                return found.allow
            decided = answer(character_id, found)
        else:
            decided = decide_offline(character_id, context, held, ring, view, key_set.archived, self._check)
        return None if type(decided) is DenyReason else decided  # type: ignore[return-value]

    def _decide(
        self,
        character_id: str,
        context: UseContext,
        spend: Callable[[str, str], bool] | None = None,
        floor: CharacterState = CharacterState.OPTED_IN,
    ) -> CharacterDecision | DenyReason:
        held, keys = self._held.by_character.get(character_id), self._key_set
        return decide_offline(
            character_id, context, held, keys.ring, self._view, keys.archived, self._check, spend, floor
        )

    def _check(self, grant: Held, ring: KeyRing, now: datetime) -> Checked:
        """Verify a held grant against ``ring`` (the cold path); ask for the key set again when
        its key is not in the ring."""
        checked = check(self._verifier, grant, ring, self._licensee_id, now, self._skew_us)  # (by position)
        if checked.integrity is _UNKNOWN_KEY:
            self._keys_wanted.set()
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
            prompt: The prompt; screened here with ``screen_locally`` and a current snapshot,
                otherwise the request goes to the server.
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
            The decision: ``offline=True`` and no receipt when decided here, or when the server
            could not be reached (every character denied, with why it was not decided offline:
            see the package documentation); the server's decision, with its receipt, otherwise.

        Raises:
            ValueError: No character and no prompt, a character id given twice, an unknown enum
                value (checked as ``Client.authorize`` checks them; names are accepted), or a
                territory neither empty nor two ASCII letters (`charter.territories`).
            TypeError: An argument has the wrong type.
            CharterError: The server failed otherwise than ``UNAVAILABLE`` or
                ``DEADLINE_EXCEEDED`` (for example ``INVALID_ARGUMENT`` for an unknown
                character, or ``UNAUTHENTICATED``).
        """
        ids = tuple(character_ids)
        if len(ids) > 1 and len(frozenset(ids)) != len(ids):
            raise ValueError("a character id is given twice")
        if not ids and not prompt.strip():
            raise ValueError("at least one of character_ids and prompt is required")
        flagged = tuple(categories)
        territory_code(territory)  # (raises) the server's rule; the digest of a record has it as given
        if not (
            type(use_type) is int
            and use_type in _USE_TYPES
            and type(content_rating) is int
            and content_rating in _RATINGS
            and _CATEGORIES.issuperset(flagged)
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
        now = self._clock()
        obstacle = ("", _UNREACHABLE)  # what to deny with if the server cannot be reached
        # (a prompt is never decided here without screen_locally, however fresh the view)
        if self._view.sequence >= min_sequence and (self._screen_locally or not prompt):
            if self._stale(now):
                obstacle = ("", self._stale_reason())
            else:
                use = (use_type, content_rating, flagged, territory, commercial, duration)
                decided = self._decide_locally(ids, prompt, now, use)
                if isinstance(decided, Decision):
                    return decided
                obstacle = decided
        if self._cache_corrupted:
            obstacle = ("", DenyReason.CACHE_CORRUPTED)
        return ask_server(
            self._client,
            self._held.by_character,
            ids,
            prompt,
            now,
            self._licensee_id,
            obstacle,
            use_type=use_type,
            content_rating=content_rating,
            categories=flagged,
            territory=territory,
            commercial=commercial,
            duration=duration,
            request_id=request_id,
            timeout=timeout,
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
        client, as `charter.Client.license` does. A decision made offline has no receipt: with
        a ``signer`` its uses are reported under their signed decision records the same way;
        without one they stay in ``receipts`` only.

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

        report, clock = self._client._report_license, self._clock  # the use is timed on the clock that decided it
        return license_block(decide, self._client.receipts.record, lambda granted: report(granted, timeout, clock()))
