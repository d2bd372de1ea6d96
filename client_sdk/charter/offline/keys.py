"""The key set and the licensee as the offline authorizer last fetched them (``GetKeySet``,
``GetLicensee``): the ring decisions verify against, the platform, whether the licensee is archived,
and when they were last confirmed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from charter.grants import KeyRing
from charter.v1 import licensee_pb2, signing_key_pb2

if TYPE_CHECKING:
    from charter.client import Client


class LicenseeKeys:
    """What the refresher keeps current; each attribute is replaced whole, so readers need no lock.

    Attributes:
        ring: The key ring (None before the first refresh); replaced only when the key set's
            version moved, so an unchanged key set costs no re-verification.
        platform: The licensee's platform.
        archived: Whether the licensee is archived.
        confirmed: When (on the authorizer's clock) the key set was last fetched.
        key_set: The key set the ring was built from (kept for the cache).
    """

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self.key_set: signing_key_pb2.KeySet | None = None
        self.ring: KeyRing | None = None
        self.platform = ""
        self.archived = False
        self.confirmed: datetime | None = None

    def refresh(self, client: Client, licensee_id: str) -> None:
        """Fetch the key set and the licensee.

        Raises:
            CharterError: A call failed.
        """
        key_set = client.get_key_set()
        licensee = client.get_licensee(licensee_id)
        ring = self.ring
        if ring is None or key_set.version != ring.version:
            self.ring = KeyRing.from_key_set(key_set)
            self.key_set = key_set
        self.platform = licensee.platform
        self.archived = licensee.state == licensee_pb2.Licensee.STATE_ARCHIVED
        self.confirmed = self._clock()

    def restore(self, key_set: signing_key_pb2.KeySet, *, platform: str, archived: bool, confirmed: datetime) -> None:
        """Take what a cache kept (before the first refresh)."""
        self.key_set, self.ring = key_set, KeyRing.from_key_set(key_set)
        self.platform, self.archived, self.confirmed = platform, archived, confirmed
