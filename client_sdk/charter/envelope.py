"""DSSE envelopes: the signed form of grants and decision receipts.

An envelope carries a payload (the exact serialized bytes of a ``GrantClaims`` or
``DecisionReceipt`` message), its payload type and signatures ``{keyid, sig}``. Each signature
is an Ed25519 signature over the DSSE v1 pre-authentication encoding (PAE) of the payload type
and the payload bytes exactly as they travel::

    "DSSEv1" SP LEN(payload_type) SP payload_type SP LEN(payload) SP payload

where ``LEN`` is the length in bytes as ASCII decimal and ``SP`` one space. The same envelope
has a standard DSSE JSON form, readable by any DSSE library::

    {"payload": "<base64>", "payloadType": "application/vnd.charter.grant.v1+protobuf",
     "signatures": [{"keyid": "sk_0123456789abcdef", "sig": "<base64>"}]}

with standard, padded base64. `to_json` and `from_json` convert between the two forms without
loss. Verify the payload bytes as received, then parse them: protobuf serialisation is not
canonical, so re-serialising a parsed message to verify it is a bug (`charter.grants` does it
right).

Everything here is pure: no I/O, no global state.

Example:
    ```python
    from charter import envelope

    env = envelope.sign(claims.SerializeToString(), envelope.GRANT_PAYLOAD_TYPE,
                        key_id="sk_0123456789abcdef", private_key=seed)
    text = envelope.to_json(env)
    assert envelope.from_json(text) == env
    ```
"""

from __future__ import annotations

import binascii
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import nacl.signing

from charter.v1.envelope_pb2 import Envelope, Signature

__all__ = [
    "DECISION_RECORD_PAYLOAD_TYPE",
    "GRANT_PAYLOAD_TYPE",
    "MAX_ENVELOPE_BYTES",
    "MAX_SIGNATURES",
    "RECEIPT_PAYLOAD_TYPE",
    "REGISTRY_SNAPSHOT_PAYLOAD_TYPE",
    "MalformedEnvelope",
    "PreparedEnvelope",
    "digest",
    "from_json",
    "pae",
    "sign",
    "to_json",
]

GRANT_PAYLOAD_TYPE = "application/vnd.charter.grant.v1+protobuf"
"""The payload type of a grant envelope: the payload is a serialized ``charter.v1.GrantClaims``."""

RECEIPT_PAYLOAD_TYPE = "application/vnd.charter.receipt.v1+protobuf"
"""The payload type of a decision receipt envelope."""

DECISION_RECORD_PAYLOAD_TYPE = "application/vnd.charter.decision-record.v1+protobuf"
"""The payload type of a decision record: an offline decision signed by a licensee key (the payload
is a serialized ``charter.v1.DecisionRecordClaims``; see `charter.decision_records`)."""

REGISTRY_SNAPSHOT_PAYLOAD_TYPE = "application/vnd.charter.registry-snapshot.v1+protobuf"
"""The payload type of a registry snapshot page: a serialized ``charter.v1.RegistrySnapshotClaims``
signed by Charter's grant-signing key (see `charter.offline.snapshot`)."""

MAX_ENVELOPE_BYTES = 64 * 1024
"""The largest envelope a verifier accepts, in bytes of its JSON text or serialized protobuf."""

MAX_SIGNATURES = 8
"""The most signatures an envelope may carry; a verifier refuses one with more (``MALFORMED``).
Charter signs with one key; a few allow for keys being rotated by other signers."""

ED25519_SIGNATURE_BYTES = 64
"""The length of an Ed25519 signature; a signature of another length never verifies."""

ED25519_SEED_BYTES = 32
"""The length of an Ed25519 private key seed, as `sign` takes it."""

# Prefix of the canonical form hashed by `digest`; versioned so the form can change safely.
_DIGEST_PREFIX = b"CharterEnvelopeDigestV1 "


class MalformedEnvelope(ValueError):
    """The JSON form of an envelope cannot be decoded.

    Raised by `from_json` for text that is not JSON, is not a JSON object, lacks a field,
    has a field of the wrong type, repeats a member, or holds base64 that is not standard,
    padded and canonical.
    """


def pae(payload_type: str, payload: bytes) -> bytes:
    """Return the DSSE v1 pre-authentication encoding of a payload type and payload.

    Args:
        payload_type: The payload's media type; encoded as UTF-8.
        payload: The payload bytes, exactly as signed and sent.

    Returns:
        ``b"DSSEv1 <len(type)> <type> <len(payload)> <payload>"``, lengths in bytes as ASCII
        decimal. For example ``pae("http://example.com/HelloWorld", b"hello world")`` is
        ``b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"``.
    """
    prefix = _PAE_PREFIXES.get(payload_type)
    if prefix is None:
        prefix = _pae_prefix(payload_type)
    return b"%b%d %b" % (prefix, len(payload), payload)


def _pae_prefix(payload_type: str) -> bytes:
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b " % (len(type_bytes), type_bytes)


# The PAE starts the same for every envelope of a known type.
_PAE_PREFIXES = {t: _pae_prefix(t) for t in (GRANT_PAYLOAD_TYPE, RECEIPT_PAYLOAD_TYPE, DECISION_RECORD_PAYLOAD_TYPE)}


def sign(payload: bytes, payload_type: str, *, key_id: str, private_key: bytes | nacl.signing.SigningKey) -> Envelope:
    """Sign a payload and wrap it in an envelope with one signature.

    Args:
        payload: The exact bytes to sign, for a grant ``GrantClaims.SerializeToString()``.
            They travel unchanged; verifiers check these bytes, not a re-serialisation.
        payload_type: The payload's media type, for example `GRANT_PAYLOAD_TYPE`.
        key_id: The signing key's id; it becomes the signature's ``keyid``.
        private_key: The 32-byte Ed25519 seed of the signing key, or a PyNaCl ``SigningKey`` made
            from it (which saves deriving the key pair again on every call).

    Returns:
        The envelope: the payload, its type and one Ed25519 signature over `pae`.

    Raises:
        ValueError: ``private_key`` is not 32 bytes or ``key_id`` is empty.
    """
    if not isinstance(private_key, nacl.signing.SigningKey):
        if len(private_key) != ED25519_SEED_BYTES:
            raise ValueError(f"an Ed25519 private key is a {ED25519_SEED_BYTES}-byte seed")
        private_key = nacl.signing.SigningKey(bytes(private_key))
    if not key_id:
        raise ValueError("key_id must not be empty")
    signature = private_key.sign(pae(payload_type, payload)).signature
    return Envelope(
        payload=payload, payload_type=payload_type, signatures=[Signature(keyid=key_id, sig=bytes(signature))]
    )


def _b64encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _b64decode(value: object, field: str) -> bytes:
    """Decode standard, padded, canonical base64, or raise `MalformedEnvelope`."""
    if not isinstance(value, str):
        raise MalformedEnvelope(f"{field} must be a base64 string")
    try:
        encoded = value.encode("ascii")
        data = binascii.a2b_base64(encoded, strict_mode=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise MalformedEnvelope(f"{field} is not valid standard base64") from exc
    # strict_mode accepts non-zero padding bits; only the canonical encoding is lossless.
    if binascii.b2a_base64(data, newline=False) != encoded:
        raise MalformedEnvelope(f"{field} is not canonical standard base64")
    return data


def _check_text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise MalformedEnvelope(f"{field} must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate escaped in the JSON text
        raise MalformedEnvelope(f"{field} is not valid Unicode") from exc
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise MalformedEnvelope(f"member {key!r} appears twice")
        result[key] = value
    return result


def _decode_json(text: str | bytes) -> tuple[str, bytes, list[tuple[str, bytes]]]:
    """Decode the DSSE JSON form into (payload type, payload, [(keyid, sig)])."""
    try:
        document = json.loads(text, object_pairs_hook=_unique_members)
    except MalformedEnvelope:
        raise
    except (ValueError, TypeError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise MalformedEnvelope("not a JSON document") from exc
    if not isinstance(document, dict):
        raise MalformedEnvelope("a DSSE envelope is a JSON object")
    for member in ("payload", "payloadType", "signatures"):
        if member not in document:
            raise MalformedEnvelope(f"missing member {member!r}")
    payload = _b64decode(document["payload"], "payload")
    payload_type = _check_text(document["payloadType"], "payloadType")
    entries = document["signatures"]
    if not isinstance(entries, list):
        raise MalformedEnvelope("signatures must be a list")
    signatures: list[tuple[str, bytes]] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise MalformedEnvelope(f"signatures[{index}] must be an object")
        if "sig" not in entry:
            raise MalformedEnvelope(f"signatures[{index}] has no 'sig'")
        keyid = _check_text(entry.get("keyid", ""), f"signatures[{index}].keyid")
        signatures.append((keyid, _b64decode(entry["sig"], f"signatures[{index}].sig")))
    return payload_type, payload, signatures


def to_json(envelope: Envelope) -> str:
    """Return the standard DSSE JSON form of an envelope.

    Args:
        envelope: The envelope.

    Returns:
        Compact JSON ``{"payload": ..., "payloadType": ..., "signatures": [{"keyid": ...,
        "sig": ...}]}`` with standard padded base64; `from_json` turns it back into an equal
        envelope.
    """
    document = {
        "payload": _b64encode(envelope.payload),
        "payloadType": envelope.payload_type,
        "signatures": [{"keyid": s.keyid, "sig": _b64encode(s.sig)} for s in envelope.signatures],
    }
    return json.dumps(document, separators=(",", ":"))


def from_json(text: str | bytes) -> Envelope:
    """Parse the standard DSSE JSON form of an envelope.

    Decoding is strict: base64 must be standard (not URL-safe), padded and canonical, members
    must have the right JSON types and appear once. A signature without ``keyid`` gets an empty
    key id (DSSE makes it optional); members other than the DSSE ones are ignored.

    Args:
        text: The JSON text, as a string or UTF-8 bytes.

    Returns:
        The envelope.

    Raises:
        MalformedEnvelope: The text is not a well-formed DSSE envelope.
    """
    if not isinstance(text, str | bytes | bytearray):
        raise MalformedEnvelope("a DSSE envelope is JSON text (str or bytes)")
    payload_type, payload, signatures = _decode_json(text)
    return Envelope(
        payload=payload,
        payload_type=payload_type,
        signatures=[Signature(keyid=keyid, sig=sig) for keyid, sig in signatures],
    )


def _digest(message: bytes, signatures: Sequence[tuple[str, bytes]]) -> bytes:
    """SHA-256 of the canonical form, given ``message`` = `pae` of the envelope."""
    parts = [_DIGEST_PREFIX, message, b" %d" % len(signatures)]
    for keyid, sig in signatures:
        keyid_bytes = keyid.encode("utf-8")
        parts.append(b" %d %b %d %b" % (len(keyid_bytes), keyid_bytes, len(sig), sig))
    return hashlib.sha256(b"".join(parts)).digest()


class PreparedEnvelope:
    """An envelope read once into immutable values, for a holder that verifies it later.

    Reading a ``charter.v1.Envelope``'s fields makes new Python objects on every access, and a
    verifier that remembers envelopes needs their PAE and digest: a holder of envelopes (the
    offline authorizer's held grants) prepares each once when it is added, and
    `charter.grants.GrantVerifier.verify` takes the prepared form as it is (found in its cache by
    the digest, with no serialization, no second hash and no new PAE). The values are computed
    here from the envelope's own fields, so a prepared envelope stands for exactly that content.

    Attributes:
        payload_type: The payload type.
        payload: The payload bytes, exactly as received.
        signatures: ``(keyid, sig)`` of each signature, in envelope order.
        message: `pae` of the payload type and payload: the bytes the signatures sign.
        digest: `digest` of the envelope.
        size: The envelope's serialized size in bytes (``Envelope.ByteSize``).

    Args:
        envelope: The envelope.
    """

    __slots__ = ("digest", "message", "payload", "payload_type", "signatures", "size")

    payload_type: str
    payload: bytes
    signatures: tuple[tuple[str, bytes], ...]
    message: bytes
    digest: bytes
    size: int

    def __init__(self, envelope: Envelope) -> None:
        payload_type, payload = envelope.payload_type, envelope.payload
        signatures = tuple([(s.keyid, s.sig) for s in envelope.signatures[:]])  # (a slice: see `charter.terms`)
        message = pae(payload_type, payload)
        for name, value in (
            ("payload_type", payload_type),
            ("payload", payload),
            ("signatures", signatures),
            ("message", message),
            ("digest", _digest(message, signatures)),
            ("size", envelope.ByteSize()),
        ):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        # Immutable: a verifier finds a prepared envelope by its digest, so its parts must stay
        # the ones the digest was computed from.
        raise AttributeError(f"PreparedEnvelope is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"PreparedEnvelope is immutable: cannot delete {name!r}")

    def to_envelope(self) -> Envelope:
        """A new ``charter.v1.Envelope`` with the same payload type, payload and signatures."""
        return Envelope(
            payload_type=self.payload_type,
            payload=self.payload,
            signatures=[Signature(keyid=keyid, sig=sig) for keyid, sig in self.signatures],
        )


def digest(envelope: Envelope) -> bytes:
    """Return a SHA-256 digest that identifies an envelope's content.

    The digest covers the payload type, the payload and every signature (key id and bytes, in
    order), hashed in a length-prefixed form that does not depend on protobuf serialisation:
    ``"CharterEnvelopeDigestV1 " + pae(payload_type, payload) + " " COUNT`` followed by
    ``" " LEN(keyid) " " keyid " " LEN(sig) " " sig`` per signature, lengths in bytes as ASCII
    decimal. So an envelope and its JSON form, or two serialisations of the same envelope,
    have the same digest. Use it as a cache key; it is not a signature.

    Args:
        envelope: The envelope.

    Returns:
        The 32-byte digest.
    """
    return _digest(pae(envelope.payload_type, envelope.payload), [(s.keyid, s.sig) for s in envelope.signatures])
