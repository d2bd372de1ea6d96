"""How the offline authorizer learns who it decides for and holds its own grants: the licensee
from the API key, the grant bundle fetched with each key-set refresh (``fetch_bundle``), and the
cache directory that keeps, for a restart while Charter is unreachable, the bundle and the state
decided with (the key set, the licensee and the revocation view as of its last heartbeat), its
files authenticated with a key derived from the client's API key (`charter.offline.cache`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Final

from charter.grants import GrantStatus
from charter.offline.background import KeepCurrent, log
from charter.offline.cache import (
    CacheCorrupted,
    CacheForeign,
    CacheKey,
    OfflineState,
    load_bundle,
    load_state,
    save_bundle,
    save_state,
)
from charter.offline.freshness import Stamp
from charter.offline.held import HeldGrants
from charter.v1 import api_key_pb2, authorization_service_pb2

_SAVE_SECONDS: Final = 1.0
"""The state is written at a heartbeat that made the view current: at once when the view moved
since the last write, otherwise at most this often."""


class HoldsBundles(KeepCurrent):
    """The licensee, the bundle and the cache (the authorizer sets these attributes)."""

    _held: HeldGrants
    _fetch_bundle: bool
    _cache_dir: Path | None
    _cache_corrupted: bool
    _state_saved: tuple[float, int] = (float("-inf"), -1)  # when, at which sequence
    _identified: bool = False
    _registry_fresh: Stamp | None = None  # when the registry snapshot was last current (both clocks)
    _registry_fresh_of: int = 0  # the version of the snapshot that was current then

    def _identify(self) -> None:
        """Learn the licensee from the API key (once).

        Raises:
            ValueError: The key is not a generator key bound to a licensee.
            CharterError: ``GetCaller`` failed.
        """
        if self._identified:
            return
        caller = self._client.get_caller()
        if caller.role != api_key_pb2.ROLE_GENERATOR or not caller.licensee_id:
            raise ValueError("the offline authorizer needs a generator API key bound to a licensee")
        if self._licensee_id and caller.licensee_id != self._licensee_id:
            # Started from another licensee's cache directory: never decide offline from it.
            self._view.broken = f"the cache directory is licensee {self._licensee_id}'s, not this key's"
            log.error("charter.offline: %s; deciding nothing offline", self._view.broken)
        self._licensee_id = caller.licensee_id
        self._identified = True

    def _refresh(self) -> None:
        """Identify the licensee, fetch the key set (and the grant bundle, if asked)."""
        self._identify()
        if self._fetch_bundle:
            bundle = self._client.get_grant_bundle()
            self._held.add(grant.envelope for grant in bundle.grants)
            key = self._cache_key()
            if self._cache_dir is not None and key is not None:
                try:
                    save_bundle(self._cache_dir, key, self._licensee_id, bundle)
                    self._cache_corrupted = False
                except OSError as error:
                    log.warning("charter.offline: cannot write the cache: %r", error)
        super()._refresh()

    def _heartbeat(self, beat: authorization_service_pb2.Heartbeat) -> None:
        super()._heartbeat(beat)
        # Charter answered, so a cache that failed its check no longer says why a request is not
        # decided offline.
        self._cache_corrupted = False
        when, saved_at = self._state_saved
        if self._cache_dir is not None and (beat.sequence != saved_at or time.monotonic() - when >= _SAVE_SECONDS):
            self._save_state(self._cache_dir)

    def _save_state(self, directory: Path) -> None:
        """Keep the key set and the view as of this heartbeat (called by the watcher, the view's
        only writer, so the view does not move while it is read)."""
        keys, view, cache_key = self._key_set, self._view, self._cache_key()
        fresh, confirmed, key_set, registry_fresh = view.fresh, keys.confirmed, keys.key_set, self._registry_fresh
        if fresh is None or confirmed is None or key_set is None or view.broken or not self._licensee_id:
            return
        if cache_key is None:
            return
        state = OfflineState(
            api_key_id=self._api_key_id(),
            key_set=key_set,
            platform=keys.platform,
            archived=keys.archived,
            confirmed=confirmed.wall,
            sequence=view.sequence,
            fresh_as_of=fresh.wall,
            statuses={grant_id: status.name for grant_id, status in view.statuses.items()},
            suspended=tuple(view.suspended),
            withdrawn=tuple(view.withdrawn),
            registry_head=view.registry_head,
            registry_fresh_as_of=None if registry_fresh is None else registry_fresh.wall,
            registry_version=self._registry_fresh_of,
        )
        try:
            save_state(directory, cache_key, self._licensee_id, state)
        except OSError as error:
            log.warning("charter.offline: cannot write the cache: %r", error)
            return
        self._state_saved = (time.monotonic(), state.sequence)
        self._cache_corrupted = False  # written anew

    def _api_key_id(self) -> str:
        """The id of the client's API key (never its secret)."""
        return self._api_key().partition(".")[0]

    def _api_key(self) -> str:
        return str(getattr(getattr(self._client, "_config", None), "api_key", None) or "")

    def _cache_key(self) -> CacheKey | None:
        """What authenticates the cache files (None without an API key: no cache is kept)."""
        api_key = self._api_key()
        return CacheKey.of_api_key(api_key) if api_key else None

    def _load_cache(self) -> None:
        """Hold the grants of the cached bundle and take the cached state (so decisions are made
        offline while it is within ``max_staleness``); remember a cache that failed its check.
        Called when Charter could not be reached at start: the refresher tries again within seconds
        (backing off while it fails), not after ``key_refresh``, so that a key set and bundle refused
        from the cache are fetched as soon as Charter answers."""
        self._keys_wanted.set()
        key = self._cache_key()
        if self._cache_dir is None or key is None:
            return
        try:
            cached = load_bundle(self._cache_dir, key)
            kept = load_state(self._cache_dir, key)
        except CacheCorrupted as error:
            self._cache_corrupted = True
            log.error("charter.offline: the cache is corrupted (%s); not using it", error)
            return
        except CacheForeign as error:  # written anew once Charter answers
            log.error("charter.offline: the cache is not this API key's (%s); not using it", error)
            return
        if cached is not None:
            _licensee_id, bundle = cached
            self._held.add(grant.envelope for grant in bundle.grants)
        if kept is None:
            return
        licensee_id, state = kept
        if state.api_key_id != self._api_key_id():
            # Charter cannot say whose this key is, so only the key that wrote the cache uses it.
            log.error("charter.offline: the cache was written with API key %s; not using it", state.api_key_id)
            return
        self._licensee_id = self._licensee_id or licensee_id
        self._key_set.restore(
            state.key_set, platform=state.platform, archived=state.archived, confirmed=state.confirmed
        )
        self._view.restore(
            sequence=state.sequence,
            fresh_as_of=state.fresh_as_of,
            statuses={grant_id: GrantStatus[name] for grant_id, name in state.statuses.items()},
            suspended=state.suspended,
            withdrawn=state.withdrawn,
        )
        self._view.registry_head = state.registry_head
        kept_fresh, self._registry_fresh_of = state.registry_fresh_as_of, state.registry_version
        self._registry_fresh = None if kept_fresh is None else Stamp.kept(kept_fresh, self._clock, self._monotonic)
        self._recompute()
