"""Licensee keys: the Ed25519 public keys a licensee signs its offline decision records with.

Staff, or the licensee's own licensee-admin key, register, rotate and revoke them, as staff do
with Charter's signing keys: a licensee may hold several active keys (one per backend, say); a
registration may retire the key it replaces, which keeps verifying what it signed while it was
active; a revoked key verifies nothing. Charter only ever sees the public half.
"""

from __future__ import annotations

import structlog
from charter.grants import KeyRing, KeyState, PublicKey

from charter_server.domain import ids
from charter_server.domain.clock import Clock
from charter_server.domain.errors import AlreadyExists, FailedPrecondition, NotFound
from charter_server.domain.models import LifecycleState, Principal, Role
from charter_server.domain.offline import LicenseeKeyRecord, LicenseeKeyState
from charter_server.services.ownership import require_licensee
from charter_server.services.validation import Checker, check_id
from charter_server.storage.database import Database
from charter_server.storage.uow import UnitOfWork

log = structlog.get_logger(__name__)

ED25519_PUBLIC_KEY_BYTES = 32

_RING_STATE = {
    LicenseeKeyState.ACTIVE: KeyState.ACTIVE,
    LicenseeKeyState.RETIRED: KeyState.RETIRED,
    LicenseeKeyState.REVOKED: KeyState.REVOKED,
}


def licensee_ring(keys: list[LicenseeKeyRecord]) -> KeyRing:
    """The verification view of a licensee's keys: the unrevoked ones, and the revoked ids."""
    return KeyRing(
        keys={
            k.key_id: PublicKey(k.key_id, k.public_key, _RING_STATE[k.state], k.activate_time, k.retire_time)
            for k in keys
            if k.state is not LicenseeKeyState.REVOKED
        },
        revoked=frozenset(k.key_id for k in keys if k.state is LicenseeKeyState.REVOKED),
        version="",
    )


def _licensee_of(principal: Principal, licensee_id: str) -> str:
    """The licensee a call acts on: a licensee-scoped key's own (naming another is not owned),
    else the one named, which staff must name."""
    if principal.role in (Role.GENERATOR, Role.LICENSEE_ADMIN):
        require_licensee(principal, licensee_id or principal.licensee_id or "")
        return principal.licensee_id or ""
    check_id("licensee_id", licensee_id, "licensee")
    return licensee_id


class LicenseeKeyService:
    """Registers, lists and revokes licensee keys; builds a licensee's key ring for verifiers."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def register(
        self, principal: Principal, licensee_id: str, public_key: bytes, display_name: str, replaces_key_id: str
    ) -> tuple[LicenseeKeyRecord, LicenseeKeyRecord | None]:
        """Register a public key; retire the key it replaces, if one is named.

        Raises:
            InvalidArgument: A field is missing or malformed.
            PermissionDenied: A licensee-admin key named another licensee (``RESOURCE_NOT_OWNED``).
            NotFound: The licensee (``LICENSEE_NOT_FOUND``) or the replaced key
                (``LICENSEE_KEY_NOT_FOUND``) does not exist.
            FailedPrecondition: The licensee is archived, or the replaced key is not active.
            AlreadyExists: The public key is registered already (``LICENSEE_KEY_EXISTS``).
        """
        checker = Checker()
        if len(public_key) != ED25519_PUBLIC_KEY_BYTES:
            checker.add("public_key", f"must be a raw Ed25519 public key of {ED25519_PUBLIC_KEY_BYTES} bytes")
        checker.text("display_name", display_name, max_len=200, required=True)
        checker.resource_id("replaces_key_id", replaces_key_id, "licensee_key", required=False)
        if principal.role is Role.ADMIN:
            checker.resource_id("licensee_id", licensee_id, "licensee")
        checker.done()
        licensee_id = _licensee_of(principal, licensee_id)
        now = self._clock.now()
        key = LicenseeKeyRecord(
            key_id=ids.new_id("licensee_key"),
            licensee_id=licensee_id,
            public_key=bytes(public_key),
            display_name=display_name,
            state=LicenseeKeyState.ACTIVE,
            activate_time=now,
            retire_time=None,
            revoke_time=None,
        )
        with self._db.uow(write=True) as uow:
            licensee = uow.licensees.get(licensee_id)
            if licensee is None:
                raise NotFound("no such licensee", reason="LICENSEE_NOT_FOUND")
            if licensee.state is LifecycleState.ARCHIVED:
                raise FailedPrecondition("the licensee is archived", reason="LICENSEE_ARCHIVED")
            retired: LicenseeKeyRecord | None = None
            if replaces_key_id:
                replaced = self._own_key(uow, licensee_id, replaces_key_id, for_update=True)
                if replaced.state is not LicenseeKeyState.ACTIVE:
                    raise FailedPrecondition(
                        "only an active key can be replaced", reason="LICENSEE_KEY_ALREADY_REVOKED"
                    )
                uow.licensee_keys.set_state(replaces_key_id, LicenseeKeyState.RETIRED, now)
            if not uow.licensee_keys.add(key):
                raise AlreadyExists("this public key is registered already", reason="LICENSEE_KEY_EXISTS")
            if replaces_key_id:
                retired = uow.licensee_keys.get(replaces_key_id)
            uow.commit()
        log.info("licensee_key.registered", key_id=key.key_id, licensee_id=licensee_id, replaces=replaces_key_id)
        return key, retired

    def list(self, principal: Principal, licensee_id: str) -> list[LicenseeKeyRecord]:
        """A licensee's keys, newest first (staff must name the licensee)."""
        if principal.role in (Role.ADMIN, Role.AUDITOR):
            check_id("licensee_id", licensee_id, "licensee")
        licensee_id = _licensee_of(principal, licensee_id)
        with self._db.uow() as uow:
            if uow.licensees.get(licensee_id) is None:
                raise NotFound("no such licensee", reason="LICENSEE_NOT_FOUND")
            return uow.licensee_keys.of_licensee(licensee_id)

    def revoke(self, principal: Principal, key_id: str, reason: str) -> LicenseeKeyRecord:
        """Revoke a key: the records it signed are refused from now on.

        A licensee-admin key may revoke only its own licensee's keys; another's reads as missing.
        """
        checker = Checker()
        checker.resource_id("key_id", key_id, "licensee_key")
        checker.text("reason", reason, max_len=500, required=True)
        checker.done()
        scope = principal.licensee_id if principal.role is Role.LICENSEE_ADMIN else None
        with self._db.uow(write=True) as uow:
            key = uow.licensee_keys.get(key_id, for_update=True)
            if key is None or (scope is not None and key.licensee_id != scope):
                raise NotFound("no such licensee key", reason="LICENSEE_KEY_NOT_FOUND")
            if key.state is LicenseeKeyState.REVOKED:
                raise FailedPrecondition("the key is already revoked", reason="LICENSEE_KEY_ALREADY_REVOKED")
            uow.licensee_keys.set_state(key_id, LicenseeKeyState.REVOKED, self._clock.now(), reason)
            revoked = uow.licensee_keys.get(key_id)
            uow.commit()
        assert revoked is not None
        log.info("licensee_key.revoked", key_id=key_id, licensee_id=key.licensee_id)
        return revoked

    def ring(self, uow: UnitOfWork, licensee_id: str) -> KeyRing:
        """The licensee's keys as a verifier's key ring, read in the caller's transaction."""
        return licensee_ring(uow.licensee_keys.of_licensee(licensee_id))

    @staticmethod
    def _own_key(uow: UnitOfWork, licensee_id: str, key_id: str, *, for_update: bool = False) -> LicenseeKeyRecord:
        key = uow.licensee_keys.get(key_id, for_update=for_update)
        if key is None or key.licensee_id != licensee_id:
            raise NotFound("no such licensee key", reason="LICENSEE_KEY_NOT_FOUND")
        return key
