"""Decision records: offline decisions signed with the licensee's own key, reported and paid like
online ones.

An offline authorizer decides without asking Charter, so no decision receipt exists for the use.
Instead it signs a **decision record**: a DSSE envelope (`charter.envelope`) of payload type
`charter.envelope.DECISION_RECORD_PAYLOAD_TYPE` whose payload is a serialized
``charter.v1.DecisionRecordClaims`` (the grant and its terms version, the registry snapshot
version, the quota lease, the decision, a digest of the use context, the time), signed by an
Ed25519 key the licensee registered (``OfflineService/RegisterLicenseeKey``). ``ReportUsage``
takes it in place of a receipt (``UsageRecord.decision_record``), with the same idempotency and
the same statements; the server verifies it against the licensee's keys, the grant and the lease.

`verify_decision_record` runs the checks of `charter.receipts.verify_receipt` in the same order,
against a `charter.grants.KeyRing` of the licensee's keys, and answers with a
``charter.v1.GrantVerdict`` value, never an exception. A rights holder holding the licensee's
public keys can verify a record the same way.

Example:
    ```python
    from charter.decision_records import DecisionRecordSigner, generate_key

    seed, public_key = generate_key()          # register public_key, keep seed secret
    signer = DecisionRecordSigner(key_id="lk_...", private_key=seed, licensee_id="lic_...")
    record = signer.sign(character_id="chr_...", grant_id="grt_...", terms_version=1,
                         allowed=True, context=use_context)
    ```
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Iterable
from typing import Final

import nacl.bindings
import nacl.signing
from nacl._sodium import ffi as _ffi
from nacl._sodium import lib as _sodium

from charter._grant_entry import _MAX_SECONDS, _MIN_SECONDS, _NANOS_PER_SECOND
from charter.envelope import DECISION_RECORD_PAYLOAD_TYPE, MAX_SIGNATURES, pae
from charter.grants import KeyRing
from charter.keyring import check_signatures as _check_signatures
from charter.receipts import _decode
from charter.v1 import grant_pb2
from charter.v1.decision_pb2 import UseContext
from charter.v1.envelope_pb2 import Envelope
from charter.v1.offline_pb2 import DecisionRecordClaims

__all__ = [
    "DecisionRecordSigner",
    "DecisionRecordVerification",
    "generate_key",
    "new_record_id",
    "use_context_digest",
    "verify_decision_record",
]

_VALID: Final = grant_pb2.GRANT_VERDICT_VALID
_MALFORMED: Final = grant_pb2.GRANT_VERDICT_MALFORMED
_WRONG_PAYLOAD_TYPE: Final = grant_pb2.GRANT_VERDICT_WRONG_PAYLOAD_TYPE
_KEY_NOT_VALID_AT_ISSUE: Final = grant_pb2.GRANT_VERDICT_KEY_NOT_VALID_AT_ISSUE
_WRONG_LICENSEE: Final = grant_pb2.GRANT_VERDICT_WRONG_LICENSEE
_SKEW_NS: Final = 60 * _NANOS_PER_SECOND
_PREFIX: Final = pae(DECISION_RECORD_PAYLOAD_TYPE, b"")[: -len(b"0 ")]


def generate_key() -> tuple[bytes, bytes]:
    """Make a new Ed25519 key pair for decision records.

    Returns:
        The 32-byte private seed (keep it secret; never send it) and the 32-byte raw public key
        to register with ``OfflineService/RegisterLicenseeKey``.
    """
    key = nacl.signing.SigningKey.generate()
    return bytes(key), bytes(key.verify_key)


def new_record_id() -> str:
    """A fresh random decision record id: ``dr_`` and 32 lowercase hex digits."""
    return "dr_" + os.urandom(16).hex()


def use_context_digest(context: UseContext) -> bytes:
    """SHA-256 of the deterministic serialization of a use context, as a record states it."""
    return hashlib.sha256(context.SerializeToString(deterministic=True)).digest()


class DecisionRecordSigner:
    """Signs decision records with one licensee key.

    Args:
        key_id: The key's id as registered (``lk_...``); it becomes the signature's ``keyid``.
        private_key: The key's 32-byte Ed25519 seed, or a PyNaCl ``SigningKey``.
        licensee_id: The licensee the key belongs to; every record names it.

    Raises:
        ValueError: The key id is empty or the seed is not 32 bytes.
    """

    __slots__ = ("_key", "_secret", "key_id", "licensee_id")

    def __init__(self, *, key_id: str, private_key: bytes | nacl.signing.SigningKey, licensee_id: str) -> None:
        if not key_id:
            raise ValueError("key_id must not be empty")
        if not isinstance(private_key, nacl.signing.SigningKey):
            if len(private_key) != 32:
                raise ValueError("an Ed25519 private key is a 32-byte seed")
            private_key = nacl.signing.SigningKey(bytes(private_key))
        self._key = private_key
        # libsodium's 64-byte secret key, to sign without PyNaCl's wrapper objects (a decision's
        # record is signed on the generation path).
        self._secret = nacl.bindings.crypto_sign_seed_keypair(bytes(private_key))[1]
        self.key_id = key_id
        self.licensee_id = licensee_id

    def __repr__(self) -> str:  # never show the private key
        return f"DecisionRecordSigner(key_id={self.key_id!r}, licensee_id={self.licensee_id!r})"

    def sign(
        self,
        *,
        character_id: str,
        grant_id: str,
        terms_version: int,
        allowed: bool,
        context: UseContext | None = None,
        context_digest: bytes | None = None,
        reasons: Iterable[int] = (),
        lease_id: str = "",
        snapshot_version: str = "",
        revocation_sequence: int = 0,
        decide_time_ns: int | None = None,
        record_id: str | None = None,
    ) -> Envelope:
        """Sign the record of one decision about one character.

        Args:
            character_id: The character decided about.
            grant_id: The grant the decision relied on.
            terms_version: The version of the grant's terms.
            allowed: Whether the use was allowed.
            context: The use context decided on (its digest is signed), unless
                ``context_digest`` gives the digest already (`use_context_digest`).
            context_digest: The use context's digest, computed once for several records.
            reasons: ``charter.v1.DenyReason`` values, when denied.
            lease_id: The quota lease the use was spent from ('' for grants without quotas).
            snapshot_version: The registry snapshot a prompt was screened against ('' if none).
            revocation_sequence: The revocation log position the decision was made at.
            decide_time_ns: When, in nanoseconds since the epoch; now when None.
            record_id: The record id; a fresh one (`new_record_id`) when None.

        Returns:
            The signed envelope.
        """
        if context_digest is None:
            context_digest = use_context_digest(context) if context is not None else hashlib.sha256(b"").digest()
        when = time.time_ns() if decide_time_ns is None else decide_time_ns
        # Field by field: about half the cost of the keyword constructor, and the same bytes (a
        # field set to its default stays unset, and fields serialize in number order).
        claims = DecisionRecordClaims()
        claims.record_id = record_id or new_record_id()
        claims.licensee_id = self.licensee_id
        claims.character_id = character_id
        claims.grant_id = grant_id
        claims.terms_version = terms_version
        claims.snapshot_version = snapshot_version
        claims.lease_id = lease_id
        claims.allowed = allowed
        claims.reasons.extend(reasons)  # type: ignore[arg-type]
        claims.use_context_digest = context_digest
        claims.revocation_sequence = revocation_sequence
        stamp = claims.decide_time
        stamp.seconds, stamp.nanos = divmod(when, _NANOS_PER_SECOND)
        payload = claims.SerializeToString()
        envelope = Envelope(payload=payload, payload_type=DECISION_RECORD_PAYLOAD_TYPE)
        envelope.signatures.add(
            keyid=self.key_id, sig=_sign(b"%b%d %b" % (_PREFIX, len(payload), payload), self._secret)
        )
        return envelope


def _sign(message: bytes, secret: bytes) -> bytes:
    """The Ed25519 signature of ``message`` by libsodium's 64-byte ``secret`` key.

    libsodium's ``crypto_sign`` through PyNaCl's own cffi binding: ``nacl.bindings.crypto_sign``
    makes the same call but also allocates a length out-parameter, checks the result through a
    helper and copies out the whole signed message to be cut to its first 64 bytes, about a
    microsecond of a record's signing.
    """
    signed = _ffi.new("unsigned char[]", len(message) + 64)
    if _sodium.crypto_sign(signed, _ffi.NULL, message, len(message), secret) != 0:
        raise RuntimeError("libsodium could not sign a decision record")
    return bytes(_ffi.buffer(signed, 64))


@dataclasses.dataclass(frozen=True, slots=True)
class DecisionRecordVerification:
    """The outcome of verifying a decision record.

    Attributes:
        verdict: A ``charter.v1.GrantVerdict`` value; ``GRANT_VERDICT_VALID`` when every check passed.
        claims: The signed claims once a signature verified and they parsed, otherwise None.
        key_id: The id of the licensee key whose signature verified (for ``KEY_REVOKED`` the
            revoked key named); otherwise empty.
    """

    verdict: int
    claims: DecisionRecordClaims | None
    key_id: str

    @property
    def valid(self) -> bool:
        """Whether the record passed every check."""
        return self.verdict == _VALID

    @property
    def reason(self) -> str:
        """The verdict's name without its prefix, for example ``"VALID"`` or ``"UNKNOWN_KEY"``."""
        try:
            name = grant_pb2.GrantVerdict.Name(self.verdict)  # type: ignore[arg-type]
        except ValueError:
            return str(self.verdict)
        return name.removeprefix("GRANT_VERDICT_")


def _parse(payload: bytes) -> tuple[DecisionRecordClaims, int] | None:
    try:
        claims = DecisionRecordClaims.FromString(payload)
    except Exception:  # DecodeError, or anything else a hostile payload provokes
        return None
    if not claims.record_id or not claims.HasField("decide_time"):
        return None
    seconds, nanos = claims.decide_time.seconds, claims.decide_time.nanos
    if not (_MIN_SECONDS <= seconds <= _MAX_SECONDS and 0 <= nanos < _NANOS_PER_SECOND):
        return None
    return claims, seconds * _NANOS_PER_SECOND + nanos


def verify_decision_record(
    envelope: Envelope | str | bytes, *, keys: KeyRing, licensee_id: str | None = None
) -> DecisionRecordVerification:
    """Verify a decision record against a ring of the licensee's keys.

    The checks and their order are those of `charter.receipts.verify_receipt`: malformed, payload
    type, unknown key, revoked key, signature over the PAE of the bytes as received, claims that
    parse with a record id and a decision time, the key active at the decision time (within 60
    seconds), and the licensee.

    Args:
        envelope: The envelope, as ``charter.v1.Envelope`` or its DSSE JSON form.
        keys: The licensee's keys (``OfflineService/ListLicenseeKeys``) as a key ring.
        licensee_id: The licensee the record must be for; None accepts any.

    Returns:
        The verdict, the claims when a signature verified and they parsed, and the key id. Bad
        input never raises.
    """
    payload_type, payload, signatures = _decode(envelope) or ("", b"", [])
    if not signatures or len(signatures) > MAX_SIGNATURES:
        return DecisionRecordVerification(_MALFORMED, None, "")
    if payload_type != DECISION_RECORD_PAYLOAD_TYPE:
        return DecisionRecordVerification(_WRONG_PAYLOAD_TYPE, None, "")
    verdict, usable, key_id = _check_signatures(keys, pae(payload_type, payload), signatures)
    if usable is None:
        return DecisionRecordVerification(verdict, None, key_id)
    parsed = _parse(payload)
    if parsed is None:
        return DecisionRecordVerification(_MALFORMED, None, key_id)
    claims, decide_ns = parsed
    verdict = _VALID
    if decide_ns < usable.activate_ns - _SKEW_NS or (
        usable.retire_ns is not None and decide_ns > usable.retire_ns + _SKEW_NS
    ):
        verdict = _KEY_NOT_VALID_AT_ISSUE
    elif licensee_id is not None and claims.licensee_id != licensee_id:
        verdict = _WRONG_LICENSEE
    return DecisionRecordVerification(verdict, claims, key_id)
