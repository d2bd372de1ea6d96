"""Signing keys: Ed25519, encrypted at rest under the key-encryption key, rotated and revoked by staff.

The private keys never leave this module unencrypted except as the active signer held in
memory; no RPC returns them and nothing logs them.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import nacl.exceptions
import nacl.secret
import nacl.signing
import structlog
from charter.grants import KeyRing, KeyState, PublicKey

from charter_server.domain.clock import Clock
from charter_server.domain.errors import FailedPrecondition, NotFound
from charter_server.domain.events import DomainEvent, SigningKeyAdded, SigningKeyStateChanged
from charter_server.domain.models import SigningKeyPurpose, SigningKeyRecord, SigningKeyState
from charter_server.services.transparency.appender import LogAppender
from charter_server.services.validation import Checker
from charter_server.storage.database import Database
from charter_server.storage.uow import UnitOfWork

log = structlog.get_logger(__name__)

# Used only in development when no key-encryption key is configured; production refuses to start
# without one (see Settings.validate). It keeps the demo runnable with no setup at all.
DEVELOPMENT_KEK = hashlib.sha256(b"charter development key-encryption key - not secret").digest()
_KEY_ID_PREFIX = "sk_"
_KEY_ID = re.compile(r"sk_[0-9a-f]{16}")


@dataclass(frozen=True)
class Signer:
    """The active key: its id, its 32-byte Ed25519 seed and the key pair made from it once."""

    key_id: str
    private_key: bytes
    signing_key: nacl.signing.SigningKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "signing_key", nacl.signing.SigningKey(self.private_key))

    def __repr__(self) -> str:  # never show the private key
        return f"Signer(key_id={self.key_id!r})"


def _ring_state(state: SigningKeyState) -> KeyState:
    return {
        SigningKeyState.ACTIVE: KeyState.ACTIVE,
        SigningKeyState.RETIRED: KeyState.RETIRED,
        SigningKeyState.REVOKED: KeyState.REVOKED,
    }[state]


def ring_version(states: Iterable[tuple[str, SigningKeyState]]) -> str:
    """A version that changes whenever a key is added, retired or revoked (of each key's id and state)."""
    text = "|".join(f"{key_id}:{state.value}" for key_id, state in sorted(states, key=lambda s: s[0]))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_ring(keys: list[SigningKeyRecord]) -> KeyRing:
    """The verification view of ``keys`` for grants and receipts: every unrevoked grant key, and
    the ids of the revoked ones. The log's keys sign checkpoints only, so they never verify a grant;
    the version still moves when they change (it is the key set's version)."""
    grant_keys = [k for k in keys if k.purpose is SigningKeyPurpose.GRANTS]
    return KeyRing(
        keys={
            k.key_id: PublicKey(k.key_id, k.public_key, _ring_state(k.state), k.activate_time, k.retire_time)
            for k in grant_keys
            if k.state is not SigningKeyState.REVOKED
        },
        revoked=frozenset(k.key_id for k in grant_keys if k.state is SigningKeyState.REVOKED),
        version=ring_version((k.key_id, k.state) for k in keys),
    )


class KeyService:
    """Creates, rotates, revokes and lists signing keys; provides the signer and the key ring."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        kek: bytes,
        *,
        cache_seconds: float = 2.0,
        log_origin: str = "",
        log: LogAppender | None = None,
    ) -> None:
        self._db = db
        self.log_origin = log_origin
        """The transparency log's origin: the note key name of the log's keys."""
        # Key changes are logged here, where the caller and the reason are known (and the key
        # events are left out of the log's event subscriber).
        self._log = log
        self._clock = clock
        self._box = nacl.secret.SecretBox(kek)
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._signers: dict[SigningKeyPurpose, Signer] = {}
        self._ring: tuple[float, KeyRing, list[SigningKeyRecord]] | None = None
        # Key changes announce themselves (``SigningKeyAdded``/``SigningKeyStateChanged``, see
        # ``storage.uow``): the cached signer and ring are dropped after any commit that made one.
        db.events.subscribe(self._on_committed)

    def ensure_active_key(self, purpose: SigningKeyPurpose = SigningKeyPurpose.GRANTS) -> SigningKeyRecord:
        """Create the first key of a purpose in a new deployment; otherwise return the active key."""
        with self._db.uow(write=True) as uow:
            uow.signing_keys.lock()
            found = uow.signing_keys.active_with_secret(purpose)
            if found is not None:
                self._check_decryptable(found[1])
                return found[0]
            key = self._new_key(uow, purpose)
            self._changed(uow, key, None, "")
            uow.commit()
        log.info("signing_key.created", key_id=key.key_id, purpose=purpose.value)
        return key

    def rotate(
        self, purpose: SigningKeyPurpose = SigningKeyPurpose.GRANTS, *, actor_key_id: str = ""
    ) -> tuple[SigningKeyRecord, SigningKeyRecord | None]:
        """Make a new key of a purpose active and retire the previous one of that purpose."""
        with self._db.uow(write=True) as uow:
            uow.signing_keys.lock()
            previous = next(
                (
                    k
                    for k in uow.signing_keys.all(for_update=True)
                    if k.state is SigningKeyState.ACTIVE and k.purpose is purpose
                ),
                None,
            )
            now = self._clock.now()
            if previous is not None:
                uow.signing_keys.set_state(previous.key_id, SigningKeyState.RETIRED, now)
            key = self._new_key(uow, purpose)
            retired = next((k for k in uow.signing_keys.all() if previous and k.key_id == previous.key_id), None)
            self._changed(uow, key, retired, actor_key_id)
            uow.commit()
        log.info("signing_key.rotated", key_id=key.key_id, retired_key_id=previous.key_id if previous else None)
        return key, retired

    def revoke(self, key_id: str, reason: str, *, actor_key_id: str = "") -> SigningKeyRecord:
        """Revoke a retired key: every grant it signed stops verifying."""
        checker = Checker()
        if not _KEY_ID.fullmatch(key_id):
            checker.add("key_id", "must be a signing key id (sk_ and 16 hex digits)")
        checker.text("reason", reason, max_len=500, required=True)
        checker.done()
        with self._db.uow(write=True) as uow:
            uow.signing_keys.lock()
            key = next((k for k in uow.signing_keys.all(for_update=True) if k.key_id == key_id), None)
            if key is None:
                raise NotFound("no such signing key", reason="SIGNING_KEY_NOT_FOUND")
            if key.state is SigningKeyState.ACTIVE:
                raise FailedPrecondition("the active key cannot be revoked; rotate first", reason="SIGNING_KEY_ACTIVE")
            if key.state is SigningKeyState.REVOKED:
                raise FailedPrecondition("the key is already revoked", reason="SIGNING_KEY_ALREADY_REVOKED")
            uow.signing_keys.set_state(key_id, SigningKeyState.REVOKED, self._clock.now(), reason)
            key = next(k for k in uow.signing_keys.all() if k.key_id == key_id)
            self._logged(uow, key, "revoked", actor_key_id, reason)
            uow.commit()
        log.info("signing_key.revoked", key_id=key_id, reason=reason)
        return key

    def all_keys(self) -> list[SigningKeyRecord]:
        """Every key, newest first."""
        return self._ring_and_keys()[1]

    def key_ring(self) -> KeyRing:
        """The verification view of the keys (cached briefly; refreshed at once after a local change)."""
        return self._ring_and_keys()[0]

    def forget_signer(self) -> None:
        """Drop the cached signers: the next `signer()` reads the active key again."""
        with self._lock:
            self._signers.clear()

    def signer(self, uow: UnitOfWork | None = None, purpose: SigningKeyPurpose = SigningKeyPurpose.GRANTS) -> Signer:
        """The active key with its decrypted private key.

        Given the caller's unit of work, the active key is read in it under the key-set lock
        (shared): a rotation through another replica is seen at once, and none can retire the key
        before the caller commits what it signed. Without one, the key cached here is used.
        """
        if uow is None:
            with self._lock:
                cached = self._signers.get(purpose)
                if cached is not None:
                    return cached
            with self._db.uow() as own:
                found = own.signing_keys.active_with_secret(purpose)
        else:
            uow.signing_keys.lock(shared=True)
            # The active key's id first: the key cached here, when it is still the active one,
            # needs no private key read and decrypted (the sequencer signs every 200 ms).
            active = uow.signing_keys.active_key_id(purpose)
            with self._lock:
                cached = self._signers.get(purpose)
            if cached is not None and active is not None and cached.key_id == active:
                return cached
            found = uow.signing_keys.active_with_secret(purpose)
        if found is None:
            raise FailedPrecondition("no active signing key; the server creates one at start", reason="INTERNAL")
        with self._lock:
            cached = self._signers.get(purpose)
            if cached is not None and cached.key_id == found[0].key_id:
                return cached
        signer = Signer(found[0].key_id, self._decrypt(found[1]))
        with self._lock:
            self._signers[purpose] = signer
        return signer

    def _ring_and_keys(self) -> tuple[KeyRing, list[SigningKeyRecord]]:
        now = time.monotonic()
        with self._lock:
            if self._ring is not None and now - self._ring[0] < self._cache_seconds:
                return self._ring[1], self._ring[2]
        with self._db.uow() as uow:
            keys = uow.signing_keys.all()
        ring = build_ring(keys)
        with self._lock:
            self._ring = (now, ring, keys)
            # A rotation elsewhere changes the active key; drop a cached signer that is no longer active.
            active = {k.key_id for k in keys if k.state is SigningKeyState.ACTIVE}
            for purpose, cached in list(self._signers.items()):
                if cached.key_id not in active:
                    del self._signers[purpose]
        return ring, keys

    def _changed(
        self, uow: UnitOfWork, key: SigningKeyRecord, retired: SigningKeyRecord | None, actor_key_id: str
    ) -> None:
        if retired is not None:
            self._logged(uow, retired, "retired", actor_key_id)
        self._logged(uow, key, "activated", actor_key_id)

    def _logged(self, uow: UnitOfWork, key: SigningKeyRecord, action: str, actor_key_id: str, reason: str = "") -> None:
        """Log a key's change in its transaction (keys concern no tenant: staff and auditors read it)."""
        if self._log is not None:
            self._log.signing_key(uow, key, action, actor_key_id=actor_key_id, reason=reason)

    def _new_key(self, uow: UnitOfWork, purpose: SigningKeyPurpose) -> SigningKeyRecord:
        seed = secrets.token_bytes(32)
        public = bytes(nacl.signing.SigningKey(seed).verify_key)
        key = SigningKeyRecord(
            key_id=_KEY_ID_PREFIX + secrets.token_hex(8),
            public_key=public,
            state=SigningKeyState.ACTIVE,
            activate_time=self._clock.now(),
            retire_time=None,
            revoke_time=None,
            purpose=purpose,
        )
        uow.signing_keys.add(key, bytes(self._box.encrypt(seed)))
        return key

    def _decrypt(self, encrypted: bytes) -> bytes:
        try:
            return bytes(self._box.decrypt(encrypted))
        except nacl.exceptions.CryptoError as error:
            raise RuntimeError(
                "cannot decrypt the signing key: the key-encryption key is not the one it was stored under"
            ) from error

    def _check_decryptable(self, encrypted: bytes) -> None:
        self._decrypt(encrypted)

    def _on_committed(self, events: Sequence[DomainEvent]) -> None:
        if any(isinstance(e, SigningKeyAdded | SigningKeyStateChanged) for e in events):
            self._invalidate()

    def _invalidate(self) -> None:
        with self._lock:
            self._ring = None
            self._signers.clear()
