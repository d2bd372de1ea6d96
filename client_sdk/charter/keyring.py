"""Signing keys as a verifier sees them: `PublicKey`, `KeyState` and the immutable `KeyRing`
built from ``AuthorizationService/GetKeySet``, and the signature check against a ring.

Grant verification (`charter.grants`) and receipt verification (`charter.receipts`) use it;
the public names are importable from `charter.grants` as well.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

import nacl.exceptions
import nacl.signing

from charter.envelope import ED25519_SIGNATURE_BYTES
from charter.v1 import grant_pb2
from charter.v1.signing_key_pb2 import KeySet, SigningKey

__all__ = ["ED25519_PUBLIC_KEY_BYTES", "KeyRing", "KeyState", "PublicKey"]

ED25519_PUBLIC_KEY_BYTES: Final = 32
"""The length of a raw Ed25519 public key."""

_VALID: Final = grant_pb2.GRANT_VERDICT_VALID
_UNKNOWN_KEY: Final = grant_pb2.GRANT_VERDICT_UNKNOWN_KEY
_KEY_REVOKED: Final = grant_pb2.GRANT_VERDICT_KEY_REVOKED
_SIGNATURE_INVALID: Final = grant_pb2.GRANT_VERDICT_SIGNATURE_INVALID
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND: Final = timedelta(microseconds=1)


class KeyState(enum.IntEnum):
    """The state of a signing key; the values are those of ``charter.v1.SigningKey.State``."""

    ACTIVE = SigningKey.STATE_ACTIVE
    """Signs new grants; verifies."""
    RETIRED = SigningKey.STATE_RETIRED
    """Signs nothing new; still verifies what it signed while active."""
    REVOKED = SigningKey.STATE_REVOKED
    """Verifies nothing."""


_KEY_STATES: Final = frozenset(state.value for state in KeyState)
# Keys that sign grants and receipts; an unset purpose is a grant key of a server before the log.
_GRANT_PURPOSES: Final = frozenset({SigningKey.PURPOSE_UNSPECIFIED, SigningKey.PURPOSE_GRANTS})


@dataclasses.dataclass(frozen=True)
class PublicKey:
    """The public half of a signing key, as listed in the key set.

    Attributes:
        key_id: The key id, the ``keyid`` of the signatures the key makes.
        public_key: The 32-byte raw Ed25519 public key.
        state: Active, retired or revoked.
        activate_time: When the key became active (timezone-aware).
        retire_time: When the key was retired (timezone-aware), or None while it is active.

    Raises:
        ValueError: The key id is empty, the public key is not 32 bytes, or a time is not a
            timezone-aware datetime.
    """

    key_id: str
    public_key: bytes
    state: KeyState
    activate_time: datetime
    retire_time: datetime | None = None

    def __post_init__(self) -> None:
        if not self.key_id:
            raise ValueError("a signing key needs a key id")
        if len(self.public_key) != ED25519_PUBLIC_KEY_BYTES:
            raise ValueError(f"key {self.key_id}: an Ed25519 public key is {ED25519_PUBLIC_KEY_BYTES} bytes")
        object.__setattr__(self, "public_key", bytes(self.public_key))
        object.__setattr__(self, "state", KeyState(self.state))
        for name in ("activate_time", "retire_time"):
            value = getattr(self, name)
            if (value is not None or name == "activate_time") and (
                not isinstance(value, datetime) or value.utcoffset() is None
            ):
                raise ValueError(f"key {self.key_id}: {name} must be timezone-aware")


class UsableKey:
    """A key of a ring that may verify: its public key and a ready nacl VerifyKey."""

    __slots__ = ("activate_ns", "key", "raw", "retire_ns", "verify_key")

    def __init__(self, key: PublicKey) -> None:
        self.key = key
        self.raw = key.public_key
        self.verify_key = nacl.signing.VerifyKey(key.public_key)
        self.activate_ns = aware_nanoseconds(key.activate_time)
        self.retire_ns = None if key.retire_time is None else aware_nanoseconds(key.retire_time)


class KeyRing(Mapping[str, PublicKey]):
    """An immutable set of public signing keys: key id → `PublicKey`, revoked ids, a version.

    Build one from ``AuthorizationService/GetKeySet`` with `from_key_set` and replace it when
    the key set's version moves. A key is *usable* (may verify) when its state is not
    `KeyState.REVOKED` and its id is not among `revoked`.

    Args:
        keys: The keys, as `PublicKey` objects or a mapping of key id to `PublicKey`.
        revoked: The ids of revoked keys, so that a grant they signed fails with
            ``KEY_REVOKED`` rather than ``UNKNOWN_KEY``.
        version: The key set's version.

    Raises:
        ValueError: Two keys share an id, or a mapping's key differs from its value's key id.
    """

    __slots__ = ("_keys", "_revoked", "_usable", "_version")

    def __init__(
        self,
        keys: Mapping[str, PublicKey] | Iterable[PublicKey] = (),
        *,
        revoked: Iterable[str] = (),
        version: str = "",
    ) -> None:
        by_id: dict[str, PublicKey] = {}
        if isinstance(keys, Mapping):
            for key_id, key in keys.items():
                if key_id != key.key_id:
                    raise ValueError(f"key {key.key_id} is listed under the id {key_id}")
            values: Iterable[PublicKey] = keys.values()
        else:
            values = keys
        for key in values:
            if key.key_id in by_id:
                raise ValueError(f"key {key.key_id} appears twice")
            by_id[key.key_id] = key
        self._keys = by_id
        self._revoked = frozenset(revoked)
        self._version = version
        self._usable = {
            key_id: UsableKey(key)
            for key_id, key in by_id.items()
            if key.state is not KeyState.REVOKED and key_id not in self._revoked
        }

    @classmethod
    def from_key_set(cls, key_set: KeySet) -> KeyRing:
        """Build a ring from a ``charter.v1.KeySet`` (the answer of ``GetKeySet``).

        Keys of another algorithm than Ed25519, in a state this SDK does not know, or of
        another purpose than signing grants and receipts (the transparency log's key) are left
        out: grants they signed fail with ``UNKNOWN_KEY``. Keys in state ``REVOKED`` are kept
        as revoked.

        Args:
            key_set: The key set.

        Returns:
            The ring, with the key set's revoked key ids and version.

        Raises:
            ValueError: An Ed25519 key is malformed (no id, a public key that is not 32 bytes,
                no activation time) or two keys share an id.
        """
        keys: list[PublicKey] = []
        for key in key_set.keys:
            if key.algorithm.lower() not in ("", "ed25519") or key.state not in _KEY_STATES:
                continue
            if key.purpose not in _GRANT_PURPOSES:
                continue  # a transparency log key signs checkpoints, never grants or receipts
            if not key.HasField("activate_time"):
                raise ValueError(f"key {key.key_id}: no activate_time")
            keys.append(
                PublicKey(
                    key_id=key.key_id,
                    public_key=key.public_key,
                    state=KeyState(key.state),
                    activate_time=key.activate_time.ToDatetime(UTC),
                    retire_time=key.retire_time.ToDatetime(UTC) if key.HasField("retire_time") else None,
                )
            )
        return cls(keys, revoked=key_set.revoked_key_ids, version=key_set.version)

    @property
    def revoked(self) -> frozenset[str]:
        """The ids of revoked keys listed by the key set."""
        return self._revoked

    @property
    def version(self) -> str:
        """The key set's version."""
        return self._version

    def is_usable(self, key_id: str) -> bool:
        """Tell whether ``key_id`` names a key of the ring that may verify (not revoked).

        Args:
            key_id: The key id.

        Returns:
            True when the key is in the ring, its state is not revoked and it is not listed
            as revoked.
        """
        return key_id in self._usable

    def __getitem__(self, key_id: str) -> PublicKey:
        return self._keys[key_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyRing):
            return NotImplemented
        return (self._keys, self._revoked, self._version) == (other._keys, other._revoked, other._version)

    def __hash__(self) -> int:
        return hash((frozenset(self._keys.items()), self._revoked, self._version))

    def __repr__(self) -> str:
        return f"KeyRing(keys={sorted(self._keys)!r}, revoked={sorted(self._revoked)!r}, version={self._version!r})"


def aware_nanoseconds(moment: datetime) -> int:
    """An aware datetime as nanoseconds since the epoch, exactly."""
    return (moment - _EPOCH) // _ONE_MICROSECOND * 1000


def check_signatures(
    keys: KeyRing, message: bytes, signatures: Sequence[tuple[str, bytes]]
) -> tuple[int, UsableKey | None, str]:
    """Find the key whose signature verifies over ``message`` (the PAE of the envelope).

    Returns (verdict, the key or None, the key id to report).
    """
    if len(signatures) == 1:
        # The common case (Charter signs with one key), the loop below written out: it is on the
        # cold path of every grant decision.
        keyid, sig = signatures[0]
        usable = keys._usable.get(keyid)
        if usable is not None:
            if len(sig) == ED25519_SIGNATURE_BYTES:  # (`_verifies`, written out)
                try:
                    usable.verify_key.verify(message, sig)
                except nacl.exceptions.CryptoError:  # BadSignatureError, or a key libsodium rejects
                    pass
                else:
                    return _VALID, usable, keyid
            return _SIGNATURE_INVALID, None, ""
    candidates: list[tuple[UsableKey, bytes]] = []
    known = False
    revoked_key_id = ""
    named: set[str] = set()
    for keyid, sig in signatures:
        usable = keys._usable.get(keyid)
        if usable is not None:
            known = True
            if keyid not in named:  # one verification per key: repeating a key id buys nothing
                named.add(keyid)
                candidates.append((usable, sig))
        elif keyid in keys._keys or keyid in keys._revoked:
            known = True
            revoked_key_id = revoked_key_id or keyid
    if not known:
        return _UNKNOWN_KEY, None, ""
    if not candidates:
        return _KEY_REVOKED, None, revoked_key_id
    # Over the bytes as received; nothing is parsed before a signature verifies.
    for usable, sig in candidates:
        if _verifies(usable, message, sig):
            return _VALID, usable, usable.key.key_id
    return _SIGNATURE_INVALID, None, ""


def _verifies(usable: UsableKey, message: bytes, sig: bytes) -> bool:
    """Whether ``sig`` is ``usable``'s Ed25519 signature over ``message``."""
    if len(sig) != ED25519_SIGNATURE_BYTES:
        return False
    try:
        usable.verify_key.verify(message, sig)
    except nacl.exceptions.CryptoError:  # BadSignatureError, or a key libsodium rejects
        return False
    return True


def keys_named(keys: KeyRing, signatures: Sequence[tuple[str, bytes]]) -> tuple[object, ...]:
    """What a failed verification depended on: each key id named, with its public key if usable."""
    named: list[object] = []
    for keyid, _sig in signatures:
        usable = keys._usable.get(keyid)
        named.append((keyid, usable.raw if usable is not None else keyid in keys._keys or keyid in keys._revoked))
    return tuple(named)
