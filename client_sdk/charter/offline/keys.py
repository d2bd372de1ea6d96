"""The key set and the licensee as the offline authorizer last fetched them (``GetKeySet``,
``GetLicensee``): the ring decisions verify against, the platform, whether the licensee is archived,
and when they were last confirmed.

With pinned keys (`pin_keys`: the Ed25519 public keys the operator trusts), the ring holds only
the key set's keys whose public key is pinned, whether the key set came from Charter or from the
cache directory: a key planted in the cache (or answered by anything but Charter) verifies
nothing, so a grant or registry snapshot it signed is ``UNKNOWN_KEY``. The revoked key ids are
kept whatever they are (they can only take trust away).
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from charter.grants import KeyRing
from charter.offline.freshness import Stamp
from charter.v1 import licensee_pb2, signing_key_pb2

if TYPE_CHECKING:
    from charter.client import Client

_PUBLIC_KEY_BYTES = 32
_GRANT_PURPOSES = frozenset({signing_key_pb2.SigningKey.PURPOSE_UNSPECIFIED, signing_key_pb2.SigningKey.PURPOSE_GRANTS})
log = logging.getLogger("charter.offline")


def pin_keys(keys: Iterable[bytes | str]) -> frozenset[bytes]:
    """The pinned public keys: each 32 raw bytes, or their standard base64 (as ``charter
    signing-keys list --json`` prints ``publicKey``).

    Raises:
        ValueError: No key, or a key that is not an Ed25519 public key in either form.
        TypeError: A key is neither bytes nor a string.
    """
    if isinstance(keys, (bytes, str)):
        raise TypeError("pinned_keys must be a collection of keys, not one key")
    pinned: set[bytes] = set()
    for key in keys:
        if isinstance(key, str):
            try:
                raw = base64.b64decode(key, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("a pinned key is not base64") from None
        elif isinstance(key, bytes):
            raw = key
        else:
            raise TypeError(f"a pinned key must be bytes or a base64 string, not {type(key).__name__}")
        if len(raw) != _PUBLIC_KEY_BYTES:
            raise ValueError("a pinned key must be a 32-byte Ed25519 public key")
        pinned.add(raw)
    if not pinned:
        raise ValueError("pinned_keys must name at least one key (None for no pin)")
    return frozenset(pinned)


class LicenseeKeys:
    """What the refresher keeps current; each attribute is replaced whole, so readers need no lock.

    Attributes:
        ring: The key ring (None before the first refresh); replaced only when the key set
            changed, so an unchanged key set costs no re-verification.
        platform: The licensee's platform.
        archived: Whether the licensee is archived.
        confirmed: When (on the authorizer's clock and the monotonic clock,
            `charter.offline.freshness`) the key set was last fetched; None before.
        key_set: The key set the ring was built from (kept for the cache).
    """

    def __init__(
        self,
        clock: Callable[[], datetime],
        pinned: frozenset[bytes] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._monotonic = monotonic
        self._pinned = pinned
        self.key_set: signing_key_pb2.KeySet | None = None
        self.ring: KeyRing | None = None
        self.platform = ""
        self.archived = False
        self.confirmed: Stamp | None = None

    def refresh(self, client: Client, licensee_id: str) -> None:
        """Fetch the key set and the licensee.

        Raises:
            CharterError: A call failed.
        """
        key_set = client.get_key_set()
        licensee = client.get_licensee(licensee_id)
        # The whole set, not only its version: a key set restored from the cache may carry the
        # server's version with a key planted beside it, and must not outlive Charter's answer.
        if self.ring is None or key_set != self.key_set:
            self.ring = self._ring(key_set)
            self.key_set = key_set
        self.platform = licensee.platform
        self.archived = licensee.state == licensee_pb2.Licensee.STATE_ARCHIVED
        self.confirmed = Stamp.now(self._clock, self._monotonic)

    def restore(self, key_set: signing_key_pb2.KeySet, *, platform: str, archived: bool, confirmed: datetime) -> None:
        """Take what a cache kept (before the first refresh): the key set ages from ``confirmed``
        on both clocks, and one later than the clock's now is too old from the start."""
        self.key_set, self.ring = key_set, self._ring(key_set)
        self.platform, self.archived = platform, archived
        self.confirmed = Stamp.kept(confirmed, self._clock, self._monotonic)

    def _ring(self, key_set: signing_key_pb2.KeySet) -> KeyRing:
        """The ring of the key set's keys this authorizer trusts: all of them, or the pinned ones."""
        if self._pinned is None:
            return KeyRing.from_key_set(key_set)
        trusted = signing_key_pb2.KeySet(version=key_set.version, revoked_key_ids=key_set.revoked_key_ids)
        left_out = []
        for key in key_set.keys:
            if key.public_key in self._pinned:
                trusted.keys.append(key)
            elif key.purpose in _GRANT_PURPOSES:  # (the log's key never verifies grants anyway)
                left_out.append(key.key_id)
        if left_out:
            log.warning(
                "charter.offline: key(s) %s of key set %r are not pinned; they verify nothing offline",
                ", ".join(left_out),
                key_set.version,
            )
        return KeyRing.from_key_set(trusted)
