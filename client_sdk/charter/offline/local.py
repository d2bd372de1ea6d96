"""Deciding a request locally: the declared characters, and with a registry snapshot
(``screen_locally``) the characters a prompt names, screened here with the server's matcher.

**The snapshot.** A *registry thread* fetches the registry snapshot
(``OfflineService/GetRegistrySnapshot``, `charter.offline.snapshot`), verifies every page with
the key set, builds its `charter.screen.ScreenIndex` off the decision path, and swaps it in; with
a cache directory it keeps the pages there and, at start, takes the kept ones (every signature
checked again) before asking for what changed since. When the key set moves, the held pages are
checked against it again, and a snapshot signed by a key revoked since is dropped and fetched
anew. The watcher asks for registry events
(``KIND_REGISTRY_CHANGED``); one newer than the snapshot wakes the thread, which fetches a delta.

**Staleness.** The snapshot is *current as of* a heartbeat at which the revocation view was
current and the snapshot's version was at least the last registry event the view had applied
and at most the log's sequence the view had seen (a kept snapshot beyond it, from a log the
server's is behind, is dropped once the view is current, and a whole one fetched):
the same bound as revocations (``max_staleness``, on the clock and on the monotonic clock, and
a time later than the clock's now is stale) applies to that time, and it is kept (in the
cache directory's state too) with the version that was current then, so a snapshot older than that
one (a kept file whose newer one was never written) never inherits it. A prompt is screened
locally only while the snapshot is within it (and the view is too); otherwise the request goes to
the server, and when that cannot be reached, it is denied with ``SNAPSHOT_STALE``, or with
``CACHE_CORRUPTED`` (the kept snapshot file failed its check) or ``SNAPSHOT_INVALID`` (a page, kept
or fetched, did not verify) when that is why there is none.

**The answer** is the server's: every declared character, then every character the prompt names
unambiguously (an ambiguous match decides a character only when it is declared), decided with
`charter.decide` in that order, with the request's other decided characters as co-characters;
the snapshot's state of a character and the revocation view's are both applied (the stricter
wins until both are current). A character with no held grant that the snapshot says is opted in,
or one the snapshot does not know, goes to the server, as a declared one without a grant does.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from charter._use_context import use_context_by_position
from charter.decide import CharacterState, allowing_by_position
from charter.decision_records import DecisionRecordSigner
from charter.decisions import CharacterDecision, Decision, Detection
from charter.errors import CharterError
from charter.offline.background import TICK_SECONDS, log
from charter.offline.bundles import HoldsBundles
from charter.offline.cache import CacheCorrupted, CacheForeign, load_snapshot, save_snapshot
from charter.offline.decisions import answer
from charter.offline.records import offline_context_digest, sign_records
from charter.offline.snapshot import Registry, SnapshotInvalid, SnapshotKeyUnknown, fetch, pack, unpack
from charter.terms import DenyReason

if TYPE_CHECKING:
    from charter.grants import KeyRing
    from charter.offline.leases import QuotaLeases
    from charter.v1.authorization_service_pb2 import Heartbeat
    from charter.v1.envelope_pb2 import Envelope

MAX_PROMPT_LENGTH: Final = 8000
"""The longest prompt screened locally (the server's limit); a longer one goes to the server."""

_UNREACHABLE: Final = DenyReason.SERVER_UNREACHABLE
_DECLARED: Final = (True, False)  # (declared, detected) of a character the request names
_DETECTED: Final = (False, True)
_DECLARED_DETECTED: Final = (True, True)
_NOBODY: Final[frozenset[str]] = frozenset()
_NO_CATEGORIES: Final[frozenset[int]] = frozenset()
_OPTED_IN: Final = CharacterState.OPTED_IN


# The shared decisions of `_decide`, with a request's flags: (id of the shared decision, flags) ->
# (it, with the flags). A prompt's detected character is decided again and again with the same
# held grant; making its decision each time was about 2 % of a warm prompt decision. An entry holds
# the shared decision, so while it is kept no other object has its id. Bounded: cleared when full.
_FLAGGED: dict[tuple[int, tuple[bool, bool]], tuple[CharacterDecision, CharacterDecision]] = {}
_FLAGGED_LIMIT: Final = 1024


def _flagged(
    shared: CharacterDecision, character_id: str, rights_holder_id: str, flags: tuple[bool, bool]
) -> CharacterDecision:
    """``shared`` with the request's (declared, detected) flags, and the snapshot's rights holder
    when it names none."""
    key = (id(shared), flags)
    kept = _FLAGGED.get(key)
    owner = shared.rights_holder_id or rights_holder_id
    if kept is not None:
        made = kept[1]
        if kept[0] is shared and made.character_id == character_id and made.rights_holder_id == owner:
            return made
    made = CharacterDecision(
        character_id,
        shared.allowed,
        shared.reasons,
        shared.grant_id,
        shared.terms_version,
        shared.obligations,
        owner,
        flags[0],
        flags[1],
    )
    if len(_FLAGGED) >= _FLAGGED_LIMIT:
        _FLAGGED.clear()
    _FLAGGED[key] = (shared, made)
    return made


def require_screening() -> None:
    """Raise unless the matcher's libraries (the ``screening`` extra) can be imported.

    Raises:
        ValueError: ``pyahocorasick`` is not installed.
    """
    if importlib.util.find_spec("ahocorasick") is None:
        raise ValueError("screen_locally needs the screening extra: pip install 'charter-sdk[screening]'")


class DecidesLocally(HoldsBundles):
    """The registry snapshot and the local decision of a request (the authorizer sets these)."""

    _signer: DecisionRecordSigner | None
    _leases: QuotaLeases | None
    _registry: Registry | None = None
    _registry_problem: DenyReason | None = None
    _registry_ring: KeyRing | None = None  # the key ring the held snapshot was verified with
    _registry_kept = False  # the held snapshot was taken from the cache directory
    _registry_wanted: threading.Event

    _decide: Callable[..., CharacterDecision | DenyReason]

    @property
    def snapshot_version(self) -> int:
        """The version of the registry snapshot prompts are screened with (0 before the first)."""
        registry = self._registry
        return 0 if registry is None else registry.version

    def can_screen(self, min_sequence: int = 0) -> bool:
        """Whether a prompt would be screened and decided offline now, as far as the revocation
        view and the registry snapshot go.

        Args:
            min_sequence: A revocation-log sequence number the view must have seen.

        Returns:
            True when the snapshot's screen is built, the snapshot was current as of a heartbeat
            within ``max_staleness`` (on the clock and on the monotonic clock) and not later than
            the clock's now, and `is_current` holds.
        """
        fresh, registry = self._registry_fresh, self._registry
        return (
            registry is not None
            and registry.index is not None
            and fresh is not None
            and fresh.fresh(self._max_staleness, self._clock(), self._monotonic())
            and self.is_current(min_sequence)
        )

    def wait_screen(self, *, min_sequence: int = 0, timeout: float) -> bool:
        """Wait until `can_screen` holds, for at most ``timeout`` seconds (the first snapshot is
        downloaded and its screen built in the background after `start`).

        Args:
            min_sequence: A revocation-log sequence number the view must have seen.
            timeout: The longest wait, in seconds.

        Returns:
            Whether it holds (False also when the authorizer is closed meanwhile).
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self.can_screen(min_sequence):
                if time.monotonic() >= deadline or self._stopping.is_set():
                    return self.can_screen(min_sequence)
                self._changed.wait(TICK_SECONDS / 5)
        return True

    # -- keeping the snapshot current ---------------------------------------------------------

    def _registry_loop(self) -> None:
        failures = 0
        loaded = False
        while not self._stopping.is_set():
            ring = self._key_set.ring
            if ring is not None:
                if not loaded:
                    loaded = True
                    self._load_registry(ring)
                self._check_registry(ring)
                registry = self._registry
                if (
                    registry is not None
                    and self._registry_kept
                    and self._view.beats
                    and registry.version > self._view.sequence
                ):
                    # Kept from a log that this server's, heard current since, is behind (its
                    # database restored, the log begun anew): never current; a whole one replaces it.
                    log.error("charter.offline: the kept registry snapshot is beyond the log; fetching it anew")
                    self._registry = registry = None
                if registry is None or self._registry_problem or registry.version < self._view.registry_head:
                    failures = 0 if self._fetch_registry(ring) else failures + 1
            self._registry_wanted.wait(self._backoff(failures) if failures else TICK_SECONDS)
            self._registry_wanted.clear()

    def _check_registry(self, ring: KeyRing) -> None:
        """Check the held snapshot's pages again when the key set moved (a key revoked since
        signs nothing any more); drop it when they no longer verify."""
        registry = self._registry
        if registry is None or self._registry_ring is ring:
            return
        try:
            Registry.verify(registry.pages, ring)
        except SnapshotKeyUnknown:
            self._keys_wanted.set()
            return
        except SnapshotInvalid as error:
            self._registry, self._registry_problem = None, DenyReason.SNAPSHOT_INVALID
            log.error("charter.offline: the registry snapshot no longer verifies (%s); fetching it again", error)
            return
        self._registry_ring = ring

    def _fetch_registry(self, ring: KeyRing) -> bool:
        """Fetch what changed (or the whole registry), verify it and swap it in; whether it worked."""
        held = None if self._registry_problem else self._registry
        try:
            registry = fetch(self._client, ring, held)
            if self._registry is not None and registry.version < self._registry.version:
                raise SnapshotInvalid("the snapshot is older than the one held (a replay?)")
            registry = registry.build_index(self._registry)
        except SnapshotKeyUnknown:
            self._keys_wanted.set()  # signed by a key rotated in since: fetch the key set
            return False
        except SnapshotInvalid as error:
            self._registry_problem = DenyReason.SNAPSHOT_INVALID
            log.error("charter.offline: the registry snapshot is refused (%s)", error)
            return False
        except CharterError as error:
            log.warning("charter.offline: fetching the registry snapshot failed (%s)", error.code.name)
            return False
        except Exception:  # a bug must not end the thread: the snapshot just goes stale
            log.exception("charter.offline: the registry thread failed")
            return False
        self._install(registry, ring)
        key = self._cache_key()
        if self._cache_dir is not None and key is not None and self._licensee_id:
            try:
                save_snapshot(self._cache_dir, key, self._licensee_id, pack(registry.pages))
            except OSError as error:
                log.warning("charter.offline: cannot write the cache: %r", error)
        return True

    def _load_registry(self, ring: KeyRing) -> None:
        """Take the kept snapshot, every page verified again; remember why when it fails."""
        key = self._cache_key()
        if self._cache_dir is None or key is None:
            return
        try:
            body = load_snapshot(self._cache_dir, key)
            if body is None:
                return
            registry = Registry.verify(unpack(body), ring).build_index()
        except CacheForeign as error:  # as if absent: fetched (and written anew) once Charter answers
            log.error("charter.offline: the kept registry snapshot is not this API key's (%s)", error)
            return
        except (CacheCorrupted, ValueError) as error:
            invalid = isinstance(error, SnapshotInvalid)
            self._registry_problem = DenyReason.SNAPSHOT_INVALID if invalid else DenyReason.CACHE_CORRUPTED
            log.error("charter.offline: the kept registry snapshot is refused (%s)", error)
            return
        self._install(registry, ring, kept=True)

    def _install(self, registry: Registry, ring: KeyRing, *, kept: bool = False) -> None:
        # The view's time first, then its registry position: a heartbeat in between only makes
        # the time older than it could be, never newer.
        fresh, head = self._view.fresh, self._view.registry_head
        if registry.version < self._registry_fresh_of:
            # Older than the snapshot that time was current with (a kept file older than the
            # kept state, one fetched anew after a key revocation): the time is not its own, and
            # it goes before the swap, so no decision screens with the older one and that time.
            self._registry_fresh, self._registry_fresh_of = None, 0
        self._registry, self._registry_problem, self._registry_ring = registry, None, ring
        self._registry_kept = kept
        # Current: it has every registry event the view applied, and no version beyond the log
        # the view has seen (which no heartbeat of that log can vouch for).
        if head <= registry.version <= self._view.sequence and fresh is not None:
            self._registry_fresh_of, self._registry_fresh = registry.version, fresh
        self._notify()

    def _apply(self, event: object) -> None:
        super()._apply(event)  # type: ignore[arg-type]
        registry = self._registry
        if self._screen_locally and registry is not None and self._view.registry_head > registry.version:
            self._registry_wanted.set()

    def _heartbeat(self, beat: Heartbeat) -> None:
        super()._heartbeat(beat)
        registry = self._registry
        fresh = self._view.fresh
        view = self._view
        if registry is not None and fresh is not None and view.registry_head <= registry.version <= view.sequence:
            self._registry_fresh_of, self._registry_fresh = registry.version, fresh

    # -- deciding -----------------------------------------------------------------------------

    def _prompt_obstacle(self) -> DenyReason:
        """Why a prompt cannot be screened offline now (when the view itself is fresh)."""
        if self._registry_problem is not None:
            return self._registry_problem
        return _UNREACHABLE if self._registry is None else DenyReason.SNAPSHOT_STALE

    def _records(
        self,
        signer: DecisionRecordSigner,
        characters: list[CharacterDecision],
        use: tuple[int, int, tuple[int, ...], str, bool, timedelta | None],
        now: datetime,
        leased: dict[str, tuple[str, str]],
        registry: Registry | None,
    ) -> tuple[Envelope, ...]:
        """The signed decision record of each character decided offline."""
        used = offline_context_digest(*use)
        leases = {cid: lease for cid, (_, lease) in leased.items()} if leased else {}
        version = "" if registry is None else str(registry.version)
        return sign_records(signer, characters, used, now, self._view.sequence, leases, version)

    def _not_here(
        self, character_id: str, why: DenyReason, leased: dict[str, tuple[str, str]]
    ) -> tuple[str, DenyReason]:
        """Give back the uses leased for the request: the server decides all of it."""
        if self._leases is not None:
            self._leases.refund_all(leased)
        return (character_id, why)

    def _decide_locally(
        self,
        ids: tuple[str, ...],
        prompt: str,
        now: datetime,
        use: tuple[int, int, tuple[int, ...], str, bool, timedelta | None],
    ) -> Decision | tuple[str, DenyReason]:
        """The request decided here, or (the character that stopped it or "", why) when the
        server must decide. The revocation view is fresh and has seen ``min_sequence``."""
        use_type, content_rating, flagged, territory, commercial, duration = use
        registry = None
        detections: list[Detection] = []
        # Character id -> (declared, detected), in the order decided: the declared ones, then
        # those the prompt names unambiguously, by their first such detection.
        order = dict.fromkeys(ids, _DECLARED)
        if prompt:
            registry, fresh = self._registry, self._registry_fresh
            index = None if registry is None else registry.index
            if (
                not self._screen_locally
                or index is None
                or fresh is None
                or not fresh.fresh(self._max_staleness, now, self._monotonic())
                or len(prompt) > MAX_PROMPT_LENGTH
            ):
                return ("", self._prompt_obstacle() if self._screen_locally else _UNREACHABLE)
            detections = index.find(prompt)
            for detection in detections:
                character_id = detection.character_id
                flags = order.get(character_id)
                if flags is None:
                    if not detection.ambiguous:  # an ambiguous match decides only a declared character
                        order[character_id] = _DETECTED
                elif flags is _DECLARED:
                    order[character_id] = _DECLARED_DETECTED
        everyone = frozenset(order) if len(order) > 1 else _NOBODY
        categories = frozenset(flagged) if flagged else _NO_CATEGORIES
        duration_seconds = 0.0 if duration is None else duration.total_seconds()
        key_set, view, held = self._key_set, self._view, self._held.by_character
        platform, licensee_id, ring = key_set.platform, self._licensee_id, key_set.ring
        characters: list[CharacterDecision] = []
        allowed = True
        leased: dict[str, tuple[str, str]] = {}  # character -> (grant, lease) spent for it
        spend = None if self._leases is None else self._leases.spender(leased, now)
        for character_id, flags in order.items():
            declared, detected = flags
            context = use_context_by_position(
                use_type,
                content_rating,
                now,
                categories,
                territory,
                platform,
                licensee_id,
                commercial,
                duration_seconds,
                everyone - {character_id} if everyone else _NOBODY,
            )
            entry = None
            floor = _OPTED_IN
            if registry is not None:
                entry = registry.entries.get(character_id)
                if entry is None:  # a declared character the snapshot does not know: the server says
                    return self._not_here(character_id, _UNREACHABLE, leased)
                floor = entry.state
            grants = held.get(character_id)
            candidates = grants.candidates if grants is not None else ()
            if (
                floor is _OPTED_IN
                and candidates
                and candidates[0].ring is ring
                and character_id not in view.suspended
                and character_id not in view.withdrawn
            ):
                # `decide_offline` written out for its common case, as `decide` does: an opted-in
                # character whose held grants were checked against this ring.
                found = allowing_by_position(key_set.archived, _OPTED_IN, candidates, view.status_of, context)
                decided = answer(character_id, found, None, spend)
            else:
                decided = self._decide(character_id, context, spend, floor)
            if isinstance(decided, DenyReason):
                return self._not_here(character_id, decided, leased)
            if entry is not None and (
                decided.declared is not declared
                or decided.detected is not detected
                or not decided.rights_holder_id
                or decided.character_id != character_id
            ):
                # The shared decision, with this request's flags and the snapshot's owner.
                decided = _flagged(decided, character_id, entry.rights_holder_id, flags)
            characters.append(decided)
            allowed = allowed and decided.allowed
        records = () if self._signer is None else self._records(self._signer, characters, use, now, leased, registry)
        if not allowed and self._leases is not None:
            self._leases.refund_all(leased)  # no use will be reported
        # By position (allowed, characters, detections, decide_time, receipt, receipt_id,
        # licensee_id, offline, decision_records): by keyword the call cost twice as much.
        return Decision(allowed, tuple(characters), tuple(detections), now, None, "", licensee_id, True, records)
