"""How the offline authorizer learns who it decides for and holds its own grants: the licensee
from the API key, the grant bundle fetched with each key-set refresh (``fetch_bundle``), and the
cache directory that keeps the bundle for a restart while Charter is unreachable."""

from __future__ import annotations

from pathlib import Path

from charter.offline.background import KeepCurrent, log
from charter.offline.cache import CacheCorrupted, load_bundle, save_bundle
from charter.offline.held import HeldGrants
from charter.v1 import api_key_pb2


class HoldsBundles(KeepCurrent):
    """The licensee, the bundle and the cache (the authorizer sets these attributes)."""

    _held: HeldGrants
    _fetch_bundle: bool
    _cache_dir: Path | None
    _cache_corrupted: bool

    def _identify(self) -> None:
        """Learn the licensee from the API key (once).

        Raises:
            ValueError: The key is not a generator key bound to a licensee.
            CharterError: ``GetCaller`` failed.
        """
        if self._licensee_id:
            return
        caller = self._client.get_caller()
        if caller.role != api_key_pb2.ROLE_GENERATOR or not caller.licensee_id:
            raise ValueError("the offline authorizer needs a generator API key bound to a licensee")
        self._licensee_id = caller.licensee_id

    def _refresh(self) -> None:
        """Identify the licensee, fetch the key set (and the grant bundle, if asked)."""
        self._identify()
        if self._fetch_bundle:
            bundle = self._client.get_grant_bundle()
            self._held.add(grant.envelope for grant in bundle.grants)
            if self._cache_dir is not None:
                try:
                    save_bundle(self._cache_dir, self._licensee_id, bundle)
                    self._cache_corrupted = False
                except OSError as error:
                    log.warning("charter.offline: cannot write the cache: %r", error)
        super()._refresh()

    def _load_cache(self) -> None:
        """Hold the grants of the cached bundle; remember a cache that failed its check."""
        if self._cache_dir is None:
            return
        try:
            cached = load_bundle(self._cache_dir)
        except CacheCorrupted as error:
            self._cache_corrupted = True
            log.error("charter.offline: the cache is corrupted (%s); not using it", error)
            return
        if cached is not None:
            _licensee_id, bundle = cached
            self._held.add(grant.envelope for grant in bundle.grants)
