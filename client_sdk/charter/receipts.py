"""Decision receipt verification: prove later what Charter decided, with the key set alone.

A decision receipt is a DSSE envelope (`charter.envelope`) of payload type
`charter.envelope.RECEIPT_PAYLOAD_TYPE` whose payload is a serialized ``charter.v1.DecisionReceipt``,
signed by a key of the same key set as grants. `verify_receipt` checks one against a
`charter.grants.KeyRing` (built from ``AuthorizationService/GetKeySet``) and answers with a
`ReceiptVerification`: a ``charter.v1.GrantVerdict`` value (the grant verdicts are reused for
receipts), never an exception. The checks run in the order `charter.grants` uses, and the first
failure is reported:

1. ``MALFORMED``: not decodable (bad JSON or base64, not an envelope), larger than
   `charter.envelope.MAX_ENVELOPE_BYTES`, without signatures or with more than
   `charter.envelope.MAX_SIGNATURES` (at most one signature per key id is checked);
2. ``WRONG_PAYLOAD_TYPE``: the payload type is not the receipt's (a grant is not a receipt, and
   `charter.grants.GrantVerifier` likewise refuses a receipt);
3. ``UNKNOWN_KEY``: no signature names a key of the ring, nor one of its revoked key ids;
4. ``KEY_REVOKED``: the signatures name revoked keys only;
5. ``SIGNATURE_INVALID``: no signature by a known, unrevoked key verifies over the DSSE
   pre-authentication encoding of the payload bytes exactly as received;
6. ``MALFORMED``: the signed payload does not parse as ``DecisionReceipt``, or lacks its receipt
   id or its decision time (parsing happens only after a signature verified);
7. ``KEY_NOT_VALID_AT_ISSUE``: the decision time is before the key's activation or after its
   retirement, by more than the clock skew (60 seconds, as in `charter.grants.GrantVerifier`).
   Unlike a grant, a receipt is signed from a server's memory: after a rotation through another
   replica, a server may sign with the retired key for up to its authorization lease (a second by
   default), so the skew applies after retirement too;
8. ``WRONG_LICENSEE``: a licensee was given and the receipt is another licensee's;
9. otherwise ``VALID``.

A receipt has no validity window: it records a decision made at ``decide_time`` and stays
verifiable for as long as its key is in the key set (retired keys stay; revoked ones do not).

Example:
    ```python
    from charter.grants import KeyRing
    from charter.receipts import verify_receipt

    keys = KeyRing.from_key_set(client.get_key_set())
    result = verify_receipt(receipt_json, keys=keys, licensee_id="lic_...")
    if result.valid:
        print(result.receipt.receipt_id, result.receipt.allowed)
    ```
"""

from __future__ import annotations

import dataclasses
from typing import Final

from charter._grant_entry import _MAX_SECONDS, _MIN_SECONDS, _NANOS_PER_SECOND
from charter._grant_entry import decode_text as _decode_text
from charter.envelope import MAX_ENVELOPE_BYTES, MAX_SIGNATURES, RECEIPT_PAYLOAD_TYPE, pae
from charter.grants import KeyRing
from charter.keyring import check_signatures as _check_signatures
from charter.v1 import grant_pb2
from charter.v1.decision_pb2 import DecisionReceipt
from charter.v1.envelope_pb2 import Envelope

__all__ = ["ReceiptVerification", "verify_receipt"]

_VALID: Final = grant_pb2.GRANT_VERDICT_VALID
_MALFORMED: Final = grant_pb2.GRANT_VERDICT_MALFORMED
_WRONG_PAYLOAD_TYPE: Final = grant_pb2.GRANT_VERDICT_WRONG_PAYLOAD_TYPE
_KEY_NOT_VALID_AT_ISSUE: Final = grant_pb2.GRANT_VERDICT_KEY_NOT_VALID_AT_ISSUE
_WRONG_LICENSEE: Final = grant_pb2.GRANT_VERDICT_WRONG_LICENSEE

# The clock skew tolerated around a key's active period: the default of GrantVerifier.
_SKEW_NS: Final = 60 * _NANOS_PER_SECOND


@dataclasses.dataclass(frozen=True, slots=True)
class ReceiptVerification:
    """The outcome of verifying a decision receipt envelope.

    Attributes:
        verdict: A ``charter.v1.GrantVerdict`` value; ``GRANT_VERDICT_VALID`` when every check
            passed.
        receipt: The signed ``DecisionReceipt`` once a signature verified and it parsed (also
            when a later check failed, for example ``WRONG_LICENSEE``), otherwise None.
        key_id: The id of the key whose signature verified; for ``KEY_REVOKED`` the revoked key
            named; otherwise empty.
    """

    verdict: int
    receipt: DecisionReceipt | None
    key_id: str

    @property
    def valid(self) -> bool:
        """Whether the receipt passed every check (the verdict is ``GRANT_VERDICT_VALID``)."""
        return self.verdict == _VALID

    @property
    def reason(self) -> str:
        """The verdict's name without its prefix, for example ``"VALID"`` or ``"KEY_REVOKED"``."""
        try:
            name = grant_pb2.GrantVerdict.Name(self.verdict)  # type: ignore[arg-type]
        except ValueError:
            return str(self.verdict)
        return name.removeprefix("GRANT_VERDICT_")


def _parse(payload: bytes) -> tuple[DecisionReceipt, int] | None:
    """The receipt and its decision time in nanoseconds since the epoch; None when unusable."""
    try:
        receipt = DecisionReceipt.FromString(payload)
    except Exception:  # DecodeError, or anything else a hostile payload provokes
        return None
    if not receipt.receipt_id or not receipt.HasField("decide_time"):
        return None
    seconds, nanos = receipt.decide_time.seconds, receipt.decide_time.nanos
    if not (_MIN_SECONDS <= seconds <= _MAX_SECONDS and 0 <= nanos < _NANOS_PER_SECOND):
        return None
    return receipt, seconds * _NANOS_PER_SECOND + nanos


def _decode(envelope: object) -> tuple[str, bytes, list[tuple[str, bytes]]] | None:
    """(payload type, payload, [(keyid, sig)]) of either form; None when malformed or too large."""
    if isinstance(envelope, Envelope):
        try:
            if envelope.ByteSize() > MAX_ENVELOPE_BYTES:
                return None
            return envelope.payload_type, envelope.payload, [(s.keyid, s.sig) for s in envelope.signatures]
        except Exception:  # never raise on bad input
            return None
    if isinstance(envelope, str | bytes | bytearray | memoryview):
        if len(envelope) > MAX_ENVELOPE_BYTES:
            return None
        return _decode_text(envelope)
    return None


def verify_receipt(
    envelope: Envelope | str | bytes,
    *,
    keys: KeyRing,
    licensee_id: str | None = None,
) -> ReceiptVerification:
    """Verify a decision receipt envelope against a key ring.

    See the module documentation for the checks and their order. Nothing here depends on the
    current time: a receipt records a past decision.

    Args:
        envelope: The envelope: a ``charter.v1.Envelope`` (as `charter.decisions.Decision.receipt`
            holds it) or its DSSE JSON form (str or UTF-8 bytes). Anything else is ``MALFORMED``.
        keys: The key ring to verify against.
        licensee_id: The licensee the receipt must be for; None accepts any licensee.

    Returns:
        The verdict, the receipt when a signature verified and it parsed, and the key id. Bad
        input never raises: every failure is a verdict.
    """
    # Undecodable input reads as an envelope without signatures: MALFORMED either way.
    payload_type, payload, signatures = _decode(envelope) or ("", b"", [])
    if not signatures or len(signatures) > MAX_SIGNATURES:
        return ReceiptVerification(_MALFORMED, None, "")
    if payload_type != RECEIPT_PAYLOAD_TYPE:
        return ReceiptVerification(_WRONG_PAYLOAD_TYPE, None, "")

    # Over the bytes as received; nothing is parsed before a signature verifies.
    verdict, usable, key_id = _check_signatures(keys, pae(payload_type, payload), signatures)
    if usable is None:
        return ReceiptVerification(verdict, None, key_id)
    parsed = _parse(payload)
    if parsed is None:
        return ReceiptVerification(_MALFORMED, None, key_id)
    receipt, decide_ns = parsed
    verdict = _VALID
    if decide_ns < usable.activate_ns - _SKEW_NS or (
        usable.retire_ns is not None and decide_ns > usable.retire_ns + _SKEW_NS
    ):
        verdict = _KEY_NOT_VALID_AT_ISSUE
    elif licensee_id is not None and receipt.licensee_id != licensee_id:
        verdict = _WRONG_LICENSEE
    return ReceiptVerification(verdict, receipt, key_id)
