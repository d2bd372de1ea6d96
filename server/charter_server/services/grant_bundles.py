"""A generator's grant bundle: what an offline authorizer needs to decide without the server.

The bundle holds the caller's licensee's live grants (not revoked, not expired; suspended ones
too, so the SDK knows them and denies with their state) with their signed envelopes, Charter's
key set, the licensee's own keys, and the revocation log position it is current at, read in one
transaction so the SDK can watch revocations from exactly there.
"""

from __future__ import annotations

from dataclasses import dataclass

from charter_server.domain.clock import Clock
from charter_server.domain.errors import PermissionDenied
from charter_server.domain.models import GrantRecord, Principal, Role
from charter_server.domain.offline import LicenseeKeyRecord
from charter_server.storage.database import Database

MAX_BUNDLE_GRANTS = 5000
"""The most grants one bundle holds (oldest first); a licensee holding more decides the rest online."""


@dataclass(frozen=True, slots=True)
class GrantBundle:
    """A licensee's live grants, its keys and the revocation position they are current at."""

    grants: list[GrantRecord]
    licensee_keys: list[LicenseeKeyRecord]
    revocation_sequence: int


class GrantBundleService:
    """Reads grant bundles."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def bundle(self, principal: Principal) -> GrantBundle:
        """The caller's licensee's bundle.

        Raises:
            PermissionDenied: The key is not a generator key bound to a licensee.
        """
        if principal.role is not Role.GENERATOR or not principal.licensee_id:
            raise PermissionDenied("only generator keys fetch grant bundles", reason="ROLE_NOT_PERMITTED")
        with self._db.uow() as uow:
            # The position first: an event after it is re-read by the watcher, never missed.
            sequence = uow.revocations.head()
            grants = uow.bundles.live_grants(principal.licensee_id, self._clock.now(), MAX_BUNDLE_GRANTS)
            keys = uow.licensee_keys.of_licensee(principal.licensee_id)
        return GrantBundle(grants, keys, sequence)
