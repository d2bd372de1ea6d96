"""Grant verification: the same pure code on the server and in every SDK user's process.

A grant is a DSSE envelope (`charter.envelope`) whose payload is a serialized
``charter.v1.GrantClaims``. `GrantVerifier.verify` checks one against a `KeyRing` (built from
``AuthorizationService/GetKeySet``; `charter.keyring`, re-exported here) and answers with a
`Verification`: a ``GrantVerdict`` value, never an exception. The checks run in the order of the
``GrantVerdict`` values and the first failure is reported:

1. ``MALFORMED``: not decodable (bad JSON or base64, not an envelope), larger than
   `charter.envelope.MAX_ENVELOPE_BYTES`, without signatures or with more than
   `charter.envelope.MAX_SIGNATURES`;
2. ``WRONG_PAYLOAD_TYPE``: the payload type is not the one expected (a receipt is not a grant);
3. ``UNKNOWN_KEY``: no signature names a key of the ring, nor one of its revoked key ids;
4. ``KEY_REVOKED``: the signatures name revoked keys only;
5. ``SIGNATURE_INVALID``: no signature by a known, unrevoked key verifies over the DSSE
   pre-authentication encoding of the payload bytes exactly as received (a signature that is
   not 64 bytes never verifies);
6. ``MALFORMED``: the signed payload does not parse as ``GrantClaims``, or lacks the grant id
   or one of its times (parsing happens only after a signature verified; a `PreparedGrant`
   was parsed when it was made, and its claims are used only once a signature verified over
   the PAE of those very payload bytes);
7. ``KEY_NOT_VALID_AT_ISSUE``: the claimed issue time is before the key's activation (minus the
   clock skew) or after its retirement;
8. ``NOT_YET_VALID``: ``now < not_before - skew``;
9. ``EXPIRED``: ``now >= expire_time + skew``;
10. ``WRONG_LICENSEE``, then ``WRONG_CHARACTER``: the grant is for someone or something else;
11. ``REVOKED`` or ``SUSPENDED``: from the optional ``status`` callback;
12. otherwise ``VALID``.

When several signatures name usable keys, the first one (in envelope order) that verifies
decides which key the issue time is checked against. At most one signature per key id is
checked (the first naming it), so an envelope costs at most one Ed25519 verification per usable
key of the ring, however many signatures it repeats.

A verifier remembers, in a bounded cache, the envelopes whose signature it has checked: a
repeated verification does no signature work and no parsing, but still checks that the key is
still in the ring and unrevoked (a key revoked since fails the grant), the time window, the
licensee, the character and the status. It remembers failures as well, by the envelope's digest:
an envelope that failed before fails again without any signature work, as long as the keys its
signatures name are the same in the ring. A `PreparedGrant` (a held grant) is remembered on
itself instead, for as long as it is kept, not in the bounded cache.

Example:
    ```python
    from datetime import UTC, datetime

    from charter.grants import GrantVerifier, KeyRing

    keys = KeyRing.from_key_set(client_key_set)       # refresh when its version moves
    verifier = GrantVerifier()                        # one per process; thread-safe
    result = verifier.verify(envelope_json, keys=keys, licensee_id="lic_...",
                             character_id="chr_...", now=datetime.now(UTC))
    if not result.valid:
        raise PermissionError(result.reason)
    ```
"""

from __future__ import annotations

import dataclasses
import enum
import threading
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Final

from charter._grant_entry import Claimed as _Claimed
from charter._grant_entry import Entry as _Entry
from charter._grant_entry import PreparedGrant
from charter._grant_entry import decode_text as _decode_text
from charter._grant_entry import evict as _evict
from charter._grant_entry import new_entry as _entry_of
from charter._grant_entry import remember_on as _remember_on
from charter._slots import slot_setters
from charter.envelope import (
    GRANT_PAYLOAD_TYPE,
    MAX_ENVELOPE_BYTES,
    MAX_SIGNATURES,
    PreparedEnvelope,
    _digest,
    pae,
)
from charter.keyring import (
    ED25519_PUBLIC_KEY_BYTES,  # noqa: F401 - importable from here as before
    KeyRing,
    KeyState,
    PublicKey,
)
from charter.keyring import check_signatures as _check_signatures
from charter.keyring import keys_named as _keys_named
from charter.v1 import grant_pb2
from charter.v1.envelope_pb2 import Envelope
from charter.v1.grant_pb2 import GrantClaims

__all__ = [
    "GrantStatus",
    "GrantVerifier",
    "KeyRing",
    "KeyState",
    "PreparedGrant",
    "PublicKey",
    "Verification",
    "verify_grant",
]

_VALID: Final = grant_pb2.GRANT_VERDICT_VALID
_MALFORMED: Final = grant_pb2.GRANT_VERDICT_MALFORMED
_WRONG_PAYLOAD_TYPE: Final = grant_pb2.GRANT_VERDICT_WRONG_PAYLOAD_TYPE
_UNKNOWN_KEY: Final = grant_pb2.GRANT_VERDICT_UNKNOWN_KEY
_KEY_REVOKED: Final = grant_pb2.GRANT_VERDICT_KEY_REVOKED
_SIGNATURE_INVALID: Final = grant_pb2.GRANT_VERDICT_SIGNATURE_INVALID
_KEY_NOT_VALID_AT_ISSUE: Final = grant_pb2.GRANT_VERDICT_KEY_NOT_VALID_AT_ISSUE
_NOT_YET_VALID: Final = grant_pb2.GRANT_VERDICT_NOT_YET_VALID
_EXPIRED: Final = grant_pb2.GRANT_VERDICT_EXPIRED
_WRONG_LICENSEE: Final = grant_pb2.GRANT_VERDICT_WRONG_LICENSEE
_WRONG_CHARACTER: Final = grant_pb2.GRANT_VERDICT_WRONG_CHARACTER
_REVOKED: Final = grant_pb2.GRANT_VERDICT_REVOKED
_SUSPENDED: Final = grant_pb2.GRANT_VERDICT_SUSPENDED

_ONE_MICROSECOND: Final = timedelta(microseconds=1)

# Envelopes up to this size (JSON text or serialized protobuf) are also remembered under their
# received form, so a repeated verification skips even the digest. Larger ones are found by
# digest only, which keeps the cache's memory bounded by about cache_size * this.
_ALIAS_LIMIT: Final = 8 * 1024


class GrantStatus(enum.IntEnum):
    """The lifecycle state of a grant; the values are those of ``charter.v1.Grant.State``."""

    ACTIVE = grant_pb2.Grant.STATE_ACTIVE
    """The grant may be used (within its validity window)."""
    SUSPENDED = grant_pb2.Grant.STATE_SUSPENDED
    """Suspended by staff; may be reinstated."""
    REVOKED = grant_pb2.Grant.STATE_REVOKED
    """Revoked for good."""


@dataclasses.dataclass(frozen=True, slots=True, init=False)
class Verification:
    """The outcome of verifying a grant envelope.

    Attributes:
        verdict: A ``charter.v1.GrantVerdict`` value; ``GRANT_VERDICT_VALID`` when every
            check passed.
        claims: The signed claims once a signature verified and they parsed (also when a
            later check failed, for example ``EXPIRED``), otherwise None. The message may be
            shared with the verifier's cache: treat it as read-only (``CopyFrom`` it into a
            new message to change it).
        key_id: The id of the key whose signature verified; for ``KEY_REVOKED`` the revoked
            key named; otherwise empty.
    """

    verdict: int
    claims: GrantClaims | None
    key_id: str

    def __init__(self, verdict: int, claims: GrantClaims | None, key_id: str) -> None:
        # Written out (see `charter._slots`): every cold verification builds one.
        _set_verdict(self, verdict)
        _set_claims(self, claims)
        _set_key_id(self, key_id)

    @property
    def valid(self) -> bool:
        """Whether the grant passed every check (the verdict is ``GRANT_VERDICT_VALID``)."""
        return self.verdict == _VALID

    @property
    def reason(self) -> str:
        """The verdict's name without its prefix, for example ``"VALID"`` or ``"EXPIRED"``."""
        try:
            name = grant_pb2.GrantVerdict.Name(self.verdict)  # type: ignore[arg-type]
        except ValueError:
            return str(self.verdict)
        return name.removeprefix("GRANT_VERDICT_")


_set_verdict, _set_claims, _set_key_id = slot_setters(Verification)
_new: Final = object.__new__


def _malformed() -> Verification:
    return Verification(_MALFORMED, None, "")


class GrantVerifier:
    """Verifies grant envelopes against a key ring; pure and thread-safe.

    Keep one per process (or per key-set source): its cache makes repeated verifications of the
    same envelope cheap. See the module documentation for the checks and their order.

    Args:
        skew: The clock skew tolerated on the validity window and the key's activation time.
        cache_size: How many verified envelopes to remember (a `PreparedGrant` is remembered on
            itself, besides); 0 disables the cache, and remembering on prepared grants.

    Raises:
        ValueError: ``skew`` or ``cache_size`` is negative.
    """

    def __init__(self, *, skew: timedelta = timedelta(seconds=60), cache_size: int = 4096) -> None:
        if skew < timedelta():
            raise ValueError("skew must not be negative")
        if cache_size < 0:
            raise ValueError("cache_size must not be negative")
        self._skew = skew
        self._skew_us = skew // _ONE_MICROSECOND
        self._skew_ns = self._skew_us * 1000
        self._cache_size = cache_size
        # Key → entry. A remembered envelope has up to two keys: ("digest", its digest) and its
        # received form (the serialized Envelope, the JSON str, or ("json", JSON bytes)). Reads
        # are single dict lookups without the lock; inserts and evictions take it. Eviction is
        # second-chance: an entry read (under either key) since it was last considered goes
        # round once more.
        self._cache: dict[object, _Entry] | None = {} if cache_size else None
        self._order: deque[object] = deque()
        self._capacity = 2 * cache_size
        self._lock = threading.Lock()
        # Names this verifier's cache as it is now in what `PreparedGrant`s remember (a new one
        # when the cache is cleared).
        self._token = object()
        # Failures by digest: (the keys the signatures named, as the ring had them; the verdict).
        self._failures: dict[bytes, tuple[tuple[object, ...], Verification]] = {}
        self._failure_order: deque[bytes] = deque()

    @property
    def skew(self) -> timedelta:
        """The tolerated clock skew."""
        return self._skew

    @property
    def cache_size(self) -> int:
        """How many verified envelopes the verifier remembers at most (besides the `PreparedGrant`s
        it verified, each remembered on itself); 0: none at all."""
        return self._cache_size

    def clear_cache(self) -> None:
        """Forget every remembered envelope, verified or failed."""
        if self._cache is not None:
            with self._lock:
                self._token = object()
                self._cache.clear()
                self._order.clear()
                self._failures.clear()
                self._failure_order.clear()

    def verify(
        self,
        envelope: Envelope | PreparedEnvelope | str | bytes,
        *,
        keys: KeyRing,
        licensee_id: str,
        character_id: str,
        now: datetime,
        status: Callable[[str], GrantStatus] | None = None,
        payload_type: str = GRANT_PAYLOAD_TYPE,
    ) -> Verification:
        """Verify a grant envelope for a licensee and a character at a given time.

        Args:
            envelope: The envelope: a ``charter.v1.Envelope``, a
                `charter.envelope.PreparedEnvelope`, or its DSSE JSON form (str or UTF-8
                bytes). Anything else is ``MALFORMED``.
            keys: The key ring to verify against.
            licensee_id: The licensee presenting the grant.
            character_id: The character the grant is presented for.
            now: The current time (timezone-aware).
            status: Looks up a grant's lifecycle state by grant id (for example from the
                revocation log); without it, revocation and suspension are not checked.
            payload_type: The payload type expected.

        Returns:
            The verdict, the claims when a signature verified and they parsed, and the key id.
            Bad input never raises: every failure is a verdict.

        Raises:
            ValueError: ``now`` is naive (a programming error, not bad input).
            Exception: Whatever ``status`` raises is passed on.
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        cache = self._cache
        form: bytes | str | tuple[str, bytes] | None = None
        size = 0
        if isinstance(envelope, Envelope):
            try:
                if cache is None:  # only the size matters
                    form, size = b"", envelope.ByteSize()
                else:
                    form = envelope.SerializeToString()
                    size = len(form)
            except Exception:  # never raise on bad input
                form = None
        elif isinstance(envelope, str):
            form, size = envelope, len(envelope)
        elif isinstance(envelope, bytes | bytearray | memoryview):
            data = bytes(envelope)
            form, size = ("json", data), len(data)
        elif isinstance(envelope, PreparedEnvelope):  # (last: the received forms' warm path pays nothing for it)
            return self._verify_prepared(envelope, keys, licensee_id, character_id, now, status, payload_type)[0]
        if form is None or size > MAX_ENVELOPE_BYTES:
            return _malformed()
        if cache is None or size > _ALIAS_LIMIT:
            form, lookup = None, True
        else:
            remembered = cache.get(form)
            lookup = True
            if remembered is not None:
                remembered.used = True
                result = self._judge(remembered, keys, licensee_id, character_id, now, status, payload_type)
                if result is not None:
                    return result
                lookup = False  # the key that verified is no longer usable: decide afresh, without the cache
        if isinstance(envelope, Envelope):
            # (The repeated field read whole: iterating it ends in an IndexError, see `charter.terms`.)
            parts = envelope.payload_type, envelope.payload, [(s.keyid, s.sig) for s in envelope.signatures[:]]
        else:
            # Undecodable text reads as an envelope without signatures: MALFORMED either way.
            parts = _decode_text(envelope) or ("", b"", [])
        received_type, payload, signatures = parts
        found = self._verify_afresh(
            received_type, payload, signatures, None, None, None, form, lookup, keys, licensee_id, character_id, now,
            status, payload_type,
        )  # fmt: skip
        return found[0]

    def verify_prepared(
        self,
        envelope: PreparedEnvelope,
        *,
        keys: KeyRing,
        licensee_id: str,
        character_id: str,
        now: datetime,
        status: Callable[[str], GrantStatus] | None = None,
        payload_type: str = GRANT_PAYLOAD_TYPE,
    ) -> tuple[Verification, tuple[datetime, datetime] | None]:
        """`verify` a prepared envelope, and say which validity window the verdict was judged on.

        The envelope is found in the cache by its digest; its PAE is the one prepared. The claims
        of a `PreparedGrant` are the ones it parsed from its payload (once a signature verified
        over the PAE of that payload), not parsed again.

        Args:
            envelope: The prepared envelope.
            keys: As `verify`.
            licensee_id: As `verify`.
            character_id: As `verify`.
            now: As `verify`.
            status: As `verify`.
            payload_type: As `verify`.

        Returns:
            The `Verification`, and, when a signature verified and the claims parsed, the window
            as this verifier honours it, the skew applied: (the earliest time it is valid, the
            time from which it is expired); otherwise None.

        Raises:
            ValueError: ``now`` is naive.
            Exception: Whatever ``status`` raises is passed on.
        """
        return self._verify_prepared(envelope, keys, licensee_id, character_id, now, status, payload_type)

    def _verify_prepared(
        self,
        envelope: PreparedEnvelope,
        keys: KeyRing,
        licensee_id: str,
        character_id: str,
        now: datetime,
        status: Callable[[str], GrantStatus] | None,
        payload_type: str = GRANT_PAYLOAD_TYPE,
    ) -> tuple[Verification, tuple[datetime, datetime] | None]:
        """`verify_prepared` by position (a held grant's first decision calls it)."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        if envelope.size > MAX_ENVELOPE_BYTES:
            return _malformed(), None
        claimed = grant = None
        if isinstance(envelope, PreparedGrant):
            known = envelope.remembered  # (see `PreparedGrant`: remembered on the grant, not by digest)
            if known is not None and known.owner is self._token:
                result = self._judge(known, keys, licensee_id, character_id, now, status, payload_type)
                if result is not None:
                    return result, (known.not_before_limit, known.expire_limit)
            # Its claims were parsed from its own payload, the bytes its PAE was made of (both
            # fixed when it was made): the very bytes the signature is checked over.
            grant, claimed = envelope, envelope.claimed
            if claimed.payload is not envelope.payload:
                grant = claimed = None  # (never: both are fixed; but only claims of those bytes are taken)
        found = self._verify_afresh(
            envelope.payload_type, envelope.payload, envelope.signatures, envelope.message, envelope.digest, claimed,
            None, grant is None, keys, licensee_id, character_id, now, status, payload_type,
        )  # fmt: skip
        entry = found[1]
        if entry is None:
            return found[0], None
        if grant is not None and self._cache is not None:
            entry.owner = self._token
            _remember_on(grant, entry)
        return found[0], (entry.not_before_limit, entry.expire_limit)

    def _verify_afresh(
        self,
        payload_type: str,
        payload: bytes,
        signatures: Sequence[tuple[str, bytes]],
        message: bytes | None,
        digest: bytes | None,
        claimed: _Claimed | None,
        alias: object,
        lookup: bool,
        keys: KeyRing,
        licensee_id: str,
        character_id: str,
        now: datetime,
        status: Callable[[str], GrantStatus] | None,
        expected_type: str,
    ) -> tuple[Verification, _Entry | None]:
        """The full evaluation, with the entry judged (None when no signature verified).

        ``message`` and ``digest`` are the envelope's PAE and digest when known (None: computed
        here); ``claimed`` is ``payload`` parsed by a `PreparedGrant` (None: parsed here, once a
        signature verified), which remembers the entry itself (so it is not remembered by digest);
        ``alias`` is the received form to remember the envelope under (None: digest only);
        ``lookup`` says whether a remembered envelope with the same digest may be used.
        """
        if not signatures or len(signatures) > MAX_SIGNATURES:
            return _malformed(), None
        if payload_type != expected_type:
            return Verification(_WRONG_PAYLOAD_TYPE, None, ""), None

        on_grant = claimed is not None
        if message is None:
            message = pae(payload_type, payload)
        cache = self._cache
        digest_key: tuple[str, bytes] | None = None
        if cache is not None:
            digest_key = ("digest", _digest(message, signatures) if digest is None else digest)
            remembered = cache.get(digest_key) if lookup else None
            if remembered is not None:
                remembered.used = True
                result = self._judge(remembered, keys, licensee_id, character_id, now, status, expected_type)
                if result is not None:
                    if alias is not None:  # the same content, received in another form
                        self._remember(remembered, alias)
                    return result, remembered
            failed = self._failures.get(digest_key[1])
            if failed is not None and failed[0] == _keys_named(keys, signatures):
                return failed[1], None

        verdict, usable, key_id = _check_signatures(keys, message, signatures)
        entry = None
        if usable is not None:
            if claimed is None:
                claimed = _Claimed(payload)  # parsed only now that a signature verified over it
            try:
                entry = _entry_of(claimed, usable, payload_type, self._skew_us)
            except ValueError:  # claims that do not parse, or without a grant id or a time in range
                verdict = _MALFORMED
            else:
                entry.valid = valid = _new(Verification)  # (`Verification.__init__` written out)
                _set_verdict(valid, _VALID)
                _set_claims(valid, entry.claims)
                _set_key_id(valid, entry.key_id)
        if entry is None:
            return self._failed(digest_key, keys, signatures, Verification(verdict, None, key_id)), None
        if digest_key is not None and not on_grant:
            self._remember(entry, digest_key, alias)
        result = self._judge(entry, keys, licensee_id, character_id, now, status, expected_type)
        assert result is not None  # the key was usable a moment ago, in the same ring
        return result, entry

    def _judge(
        self,
        entry: _Entry,
        keys: KeyRing,
        licensee_id: str,
        character_id: str,
        now: datetime,
        status: Callable[[str], GrantStatus] | None,
        expected_type: str,
    ) -> Verification | None:
        """The checks after the signature; None when the entry's key is no longer usable."""
        if entry.payload_type != expected_type:
            return Verification(_WRONG_PAYLOAD_TYPE, None, "")
        usable = keys._usable.get(entry.key_id)
        if usable is None or usable.raw != entry.public_key:
            return None
        if usable is not entry.checked_key:  # a new ring (or a first look): check the issue time
            if entry.issue_ns < usable.activate_ns - self._skew_ns or (
                usable.retire_ns is not None and entry.issue_ns > usable.retire_ns
            ):
                return Verification(_KEY_NOT_VALID_AT_ISSUE, entry.claims, entry.key_id)
            entry.checked_key = usable
        verdict = _VALID
        if now < entry.not_before_limit:
            verdict = _NOT_YET_VALID
        elif now >= entry.expire_limit:
            verdict = _EXPIRED
        elif licensee_id != entry.licensee_id:
            verdict = _WRONG_LICENSEE
        elif character_id != entry.character_id:
            verdict = _WRONG_CHARACTER
        elif status is not None:
            state = status(entry.grant_id)
            if state == GrantStatus.REVOKED:
                verdict = _REVOKED
            elif state == GrantStatus.SUSPENDED:
                verdict = _SUSPENDED
        if verdict == _VALID:
            return entry.valid
        return Verification(verdict, entry.claims, entry.key_id)

    def _failed(
        self,
        digest_key: tuple[str, bytes] | None,
        keys: KeyRing,
        signatures: Sequence[tuple[str, bytes]],
        verification: Verification,
    ) -> Verification:
        """Remember a failure by digest (bounded like the cache of verified envelopes); return it."""
        if digest_key is None:
            return verification
        digest = digest_key[1]
        with self._lock:
            if digest not in self._failures:
                self._failure_order.append(digest)
            self._failures[digest] = (_keys_named(keys, signatures), verification)
            while len(self._failures) > self._cache_size and self._failure_order:
                self._failures.pop(self._failure_order.popleft(), None)
        return verification

    def _remember(self, entry: _Entry, cache_key: object, alias: object = None) -> None:
        """Remember ``entry`` under ``cache_key``, and under ``alias`` too unless it is None."""
        cache = self._cache
        if cache is None:
            return
        order = self._order
        with self._lock:
            if cache_key not in cache:
                order.append(cache_key)
            cache[cache_key] = entry
            if alias is not None:
                if alias not in cache:
                    order.append(alias)
                cache[alias] = entry
            if len(cache) > self._capacity:
                _evict(cache, order, self._capacity)


@cache
def _default_verifier() -> GrantVerifier:
    return GrantVerifier()


def verify_grant(
    envelope: Envelope | str | bytes,
    *,
    keys: KeyRing,
    licensee_id: str,
    character_id: str,
    now: datetime | None = None,
    status: Callable[[str], GrantStatus] | None = None,
    payload_type: str = GRANT_PAYLOAD_TYPE,
) -> Verification:
    """Verify a grant envelope with a process-wide `GrantVerifier` (default skew and cache).

    Args:
        envelope: The envelope, or its DSSE JSON form (str or UTF-8 bytes).
        keys: The key ring to verify against.
        licensee_id: The licensee presenting the grant.
        character_id: The character the grant is presented for.
        now: The current time (timezone-aware); the system clock when None.
        status: Looks up a grant's lifecycle state by grant id; optional.
        payload_type: The payload type expected.

    Returns:
        The `Verification`; see `GrantVerifier.verify`.

    Raises:
        ValueError: ``now`` is naive.
    """
    return _default_verifier().verify(
        envelope,
        keys=keys,
        licensee_id=licensee_id,
        character_id=character_id,
        now=datetime.now(UTC) if now is None else now,
        status=status,
        payload_type=payload_type,
    )
