"""API keys: issuing, revoking, listing, and authenticating callers by their secret."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from charter_server.domain import ids
from charter_server.domain.clock import Clock
from charter_server.domain.errors import FailedPrecondition, NotFound, Unauthenticated
from charter_server.domain.events import ApiKeyRevoked, DomainEvent
from charter_server.domain.models import ApiKey, ApiKeyState, LifecycleState, Page, Principal, Role
from charter_server.services import pagination
from charter_server.services.idempotency import create_once
from charter_server.services.validation import Checker, check_id
from charter_server.storage.database import Database
from charter_server.storage.uow import UnitOfWork

log = structlog.get_logger(__name__)

BOOTSTRAP_CREATOR = "bootstrap"
_CACHE_LIMIT = 100_000  # keys cached at most; a flood of distinct valid keys only costs reads


def hash_secret(secret: str) -> str:
    """SHA-256 of a key's secret part. The secret has 256 bits of entropy, so no slow hash is needed."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret(key_id: str) -> tuple[str, str]:
    """A bearer token ``<key id>.<random>`` and the hash to store."""
    secret = secrets.token_urlsafe(32)
    return f"{key_id}.{secret}", hash_secret(secret)


@dataclass(frozen=True, slots=True)
class ApiKeyInput:
    """The caller-settable fields of an API key."""

    display_name: str
    role: Role | None
    rights_holder_id: str = ""
    licensee_id: str = ""
    expire_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class CreatedApiKey:
    """A created key; ``secret`` is empty when a retried request replays an earlier creation."""

    api_key: ApiKey
    secret: str


class AccessService:
    """API keys."""

    def __init__(self, db: Database, clock: Clock) -> None:
        # A revocation announces itself (``ApiKeyRevoked``, see ``storage.uow``): the authenticator
        # drops the key, and the authorization view returns once no server can still accept it.
        self._db = db
        self._clock = clock

    def create_api_key(self, principal: Principal, value: ApiKeyInput, *, request_id: str = "") -> CreatedApiKey:
        """Create a key and return its secret once."""
        self._validate(value, request_id)
        token_holder: list[str] = []

        def create(uow: UnitOfWork) -> str:
            self._check_binding(uow, value)
            key_id = ids.new_id("api_key")
            token, digest = new_secret(key_id)
            token_holder.append(token)
            assert value.role is not None  # checked by _validate
            key = ApiKey(
                id=key_id,
                display_name=value.display_name.strip(),
                role=value.role,
                rights_holder_id=value.rights_holder_id or None,
                licensee_id=value.licensee_id or None,
                expire_time=value.expire_time,
                creator_key_id=principal.key_id,
                create_time=self._clock.now(),
                revoke_time=None,
            )
            uow.api_keys.add(key, digest)
            return key_id

        key, created = create_once(
            self._db, self._clock, principal, "CreateApiKey", request_id, value, create, self._load
        )
        if created:
            log.info("api_key.created", api_key_id=key.id, role=key.role.value)
        return CreatedApiKey(key, token_holder[0] if created else "")

    def create_bootstrap_admin(self, display_name: str) -> CreatedApiKey:
        """Create an admin key without a caller, for a new deployment (the server CLI)."""
        checker = Checker()
        checker.text("display_name", display_name, max_len=200, required=True)
        checker.done()
        key_id = ids.new_id("api_key")
        token, digest = new_secret(key_id)
        key = ApiKey(
            id=key_id,
            display_name=display_name.strip(),
            role=Role.ADMIN,
            rights_holder_id=None,
            licensee_id=None,
            expire_time=None,
            creator_key_id=BOOTSTRAP_CREATOR,
            create_time=self._clock.now(),
            revoke_time=None,
        )
        with self._db.uow(write=True) as uow:
            uow.api_keys.add(key, digest)
            uow.commit()
        log.info("api_key.created", api_key_id=key.id, role=key.role.value, creator=BOOTSTRAP_CREATOR)
        return CreatedApiKey(key, token)

    def get_api_key(self, principal: Principal, key_id: str) -> ApiKey:
        """One key, without its secret."""
        check_id("id", key_id, "api_key")
        with self._db.uow() as uow:
            return self._load(uow, key_id)

    def list_api_keys(
        self, principal: Principal, *, role: Role | None, show_inactive: bool, page_size: int, page_token: str
    ) -> Page[ApiKey]:
        """A page of keys, without their secrets."""
        size = pagination.page_size(page_size)
        filters = f"key|{role}|{show_inactive}"
        after = pagination.decode(self._db.page_token_key(), page_token, filters)
        active_at = None if show_inactive else self._clock.now()
        with self._db.uow() as uow:
            items, more = uow.api_keys.list(role=role, active_at=active_at, after=after, limit=size)
        return Page(items, pagination.encode(self._db.page_token_key(), more, filters))

    def revoke_api_key(self, principal: Principal, key_id: str) -> ApiKey:
        """Revoke a key; once this returns, no server accepts it any more."""
        check_id("id", key_id, "api_key")
        with self._db.uow(write=True) as uow:
            key = self._load(uow, key_id)
            if key.revoke_time is not None:
                raise FailedPrecondition("the API key is already revoked", reason="API_KEY_ALREADY_REVOKED")
            uow.api_keys.revoke(key_id, self._clock.now())
            key = self._load(uow, key_id)
            uow.commit()
        log.info("api_key.revoked", api_key_id=key_id)
        return key

    def get_caller(self, principal: Principal) -> ApiKey:
        """The key of the caller."""
        with self._db.uow() as uow:
            return self._load(uow, principal.key_id)

    def _validate(self, value: ApiKeyInput, request_id: str) -> None:
        checker = Checker()
        checker.text("display_name", value.display_name, max_len=200, required=True)
        checker.request_id(request_id)
        if value.role is None:
            checker.add("role", "is required")
        if value.role is Role.RIGHTS_HOLDER:
            checker.resource_id("rights_holder_id", value.rights_holder_id, "rights_holder")
        elif value.rights_holder_id:
            checker.add("rights_holder_id", "must be empty unless the role is ROLE_RIGHTS_HOLDER")
        if value.role in (Role.GENERATOR, Role.LICENSEE_ADMIN):
            checker.resource_id("licensee_id", value.licensee_id, "licensee")
        elif value.licensee_id:
            checker.add("licensee_id", "must be empty unless the role is ROLE_GENERATOR or ROLE_LICENSEE_ADMIN")
        if value.expire_time is not None and value.expire_time <= self._clock.now():
            checker.add("expire_time", "must be in the future")
        checker.done()

    @staticmethod
    def _check_binding(uow: UnitOfWork, value: ApiKeyInput) -> None:
        if value.rights_holder_id:
            holder = uow.rights_holders.get(value.rights_holder_id)
            if holder is None:
                raise NotFound("no such rights holder", reason="RIGHTS_HOLDER_NOT_FOUND")
            if holder.state is LifecycleState.ARCHIVED:
                raise FailedPrecondition("the rights holder is archived", reason="RIGHTS_HOLDER_ARCHIVED")
        if value.licensee_id:
            licensee = uow.licensees.get(value.licensee_id)
            if licensee is None:
                raise NotFound("no such licensee", reason="LICENSEE_NOT_FOUND")
            if licensee.state is LifecycleState.ARCHIVED:
                raise FailedPrecondition("the licensee is archived", reason="LICENSEE_ARCHIVED")

    @staticmethod
    def _load(uow: UnitOfWork, key_id: str) -> ApiKey:
        key = uow.api_keys.get(key_id)
        if key is None:
            raise NotFound("no such API key", reason="API_KEY_NOT_FOUND", metadata={"id": key_id})
        return key


class Authenticator:
    """Turns a bearer token into a Principal.

    Successful lookups are cached so the hot path does not touch the database: an entry is used
    for at most ``cache_seconds``, and only while the authorization view's generation it was read
    in is current and within its lease (``freshness``). A revocation raises the authorization
    epoch and returns only after the lease (like a grant's), so once ``RevokeApiKey`` returns no
    server accepts the key. Expiry is checked on every call.
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        cache_seconds: float = 5.0,
        freshness: Callable[[], object] = object,
    ) -> None:
        self._db = db
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._freshness = freshness
        self._cache: dict[str, tuple[float, object, ApiKey, str]] = {}
        # Tokens that authenticated, by their SHA-256 (never the secret itself): the principal, the
        # key's expiry, and the generation and time they were checked in; the per-call fast path.
        self._verified: dict[bytes, tuple[object, float, Principal, datetime | None]] = {}
        self._lock = threading.Lock()
        # A revocation announces itself (``ApiKeyRevoked``): the key is dropped from the caches
        # before the authorization view waits out the lease for other servers.
        db.events.subscribe(self._on_committed)

    def authenticate(self, token: str | None) -> Principal:
        """The caller behind ``token``, or ``Unauthenticated`` with the precise reason."""
        if not token:
            raise Unauthenticated(
                "no credentials: send 'authorization: Bearer <api key>'", reason="CREDENTIALS_MISSING"
            )
        fingerprint = hashlib.sha256(token.encode()).digest()
        hit = self._verified.get(fingerprint)
        if hit is not None:
            generation, checked, principal, expires = hit
            if (
                generation is self._freshness()
                and time.monotonic() - checked < self._cache_seconds
                and (expires is None or self._clock.now() < expires)
            ):
                return principal
        principal, expires, generation, checked = self._verify(token)
        with self._lock:
            if len(self._verified) > _CACHE_LIMIT:
                self._verified.clear()
            self._verified[fingerprint] = (generation, checked, principal, expires)
        return principal

    def _verify(self, token: str) -> tuple[Principal, datetime | None, object, float]:
        """Check a token against the key's record: (principal, expiry, generation, when)."""
        key_id, _, secret = token.partition(".")
        if not secret or not ids.is_valid("api_key", key_id):
            raise Unauthenticated("the API key is malformed", reason="CREDENTIALS_INVALID")
        key, digest, generation, checked = self._lookup(key_id)
        if not hmac.compare_digest(digest, hash_secret(secret)):
            raise Unauthenticated("the API key is not valid", reason="CREDENTIALS_INVALID")
        state = key.state_at(self._clock.now())
        if state is ApiKeyState.REVOKED:
            raise Unauthenticated("the API key has been revoked", reason="API_KEY_REVOKED")
        if state is ApiKeyState.EXPIRED:
            raise Unauthenticated("the API key has expired", reason="API_KEY_EXPIRED")
        return key.principal(), key.expire_time, generation, checked

    def _on_committed(self, events: Sequence[DomainEvent]) -> None:
        for event in events:
            if isinstance(event, ApiKeyRevoked):
                self.forget(event.api_key_id)

    def forget(self, key_id: str) -> None:
        """Drop a cached key (after revocation)."""
        with self._lock:
            self._cache.pop(key_id, None)
            for fingerprint in [f for f, hit in self._verified.items() if hit[2].key_id == key_id]:
                del self._verified[fingerprint]

    def _lookup(self, key_id: str) -> tuple[ApiKey, str, object, float]:
        """The key and its secret's hash, with the generation and time they were read in."""
        now = time.monotonic()
        generation = self._freshness()  # the current one, confirmed within the lease
        cached = self._cache.get(key_id)
        if cached is not None and cached[1] is generation and now - cached[0] < self._cache_seconds:
            return cached[2], cached[3], cached[1], cached[0]
        with self._db.uow() as uow:
            found = uow.api_keys.get_with_hash(key_id)
        if found is None:
            raise Unauthenticated("the API key is not valid", reason="CREDENTIALS_INVALID")
        with self._lock:
            if len(self._cache) > _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key_id] = (now, generation, found[0], found[1])
        return found[0], found[1], generation, now
