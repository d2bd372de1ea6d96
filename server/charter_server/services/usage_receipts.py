"""What a usage record may claim from its decision receipt, read from the receipt as signed.

A receipt is a signed ``charter.v1.DecisionReceipt`` in a DSSE envelope. It is verified by the
shared core (`charter.receipts.verify_receipt`) over the bytes as received and read in its signed
form, never rebuilt: this is why this module, alone among the usage modules, reads protobuf (see
"Development" in the README for the list of such exceptions). What it hands back is a plain
`ReceiptUse`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from charter.grants import KeyRing
from charter.receipts import ReceiptVerification, verify_receipt
from charter.transparency.entries import payload_digest
from charter.v1 import decision_pb2, envelope_pb2, grant_pb2

from charter_server.domain.errors import FailedPrecondition, InvalidArgument, PermissionDenied


@dataclass(frozen=True, slots=True)
class ReceiptUse:
    """What one allowed character's decision in a verified receipt says a use of it owes."""

    receipt_id: str
    decide_time: datetime
    rights_holder_id: str
    grant_id: str
    revenue_share_bps: int
    fee_currency: str
    """The currency of the terms' per-use fee; empty when the terms set none (or none with a currency)."""
    fee_minor: int
    """The per-use fee in minor units; 0 when `fee_currency` is empty."""
    receipt_digest: bytes = b""
    """The receipt's (or decision record's) name in the transparency log: SHA-256 of its payload
    as signed."""


class ReceiptReader:
    """Verifies receipts for one licensee against one key ring, each distinct envelope once."""

    def __init__(self, ring: KeyRing, licensee_id: str) -> None:
        self._ring = ring
        self._licensee_id = licensee_id
        # A receipt allowing several characters comes once per character: verify it once per batch.
        self._verified: dict[bytes, tuple[ReceiptVerification, bytes]] = {}

    def use_of(self, envelope: bytes, character_id: str) -> ReceiptUse:
        """The allowed use of ``character_id`` that the serialized receipt envelope records.

        Raises:
            PermissionDenied: The receipt is another licensee's (``RECEIPT_WRONG_LICENSEE``).
            InvalidArgument: It is not a receipt signed by Charter (``RECEIPT_INVALID``, on ``receipt``).
            FailedPrecondition: It does not allow the character (``RECEIPT_DOES_NOT_ALLOW_CHARACTER``).
        """
        found = self._verified.get(envelope)
        if found is None:
            parsed = envelope_pb2.Envelope.FromString(envelope)
            verification = verify_receipt(parsed, keys=self._ring, licensee_id=self._licensee_id)
            found = self._verified[envelope] = (verification, payload_digest(parsed))
        verification, digest = found
        if verification.verdict == grant_pb2.GRANT_VERDICT_WRONG_LICENSEE:
            raise PermissionDenied("the receipt is another licensee's", reason="RECEIPT_WRONG_LICENSEE")
        if not verification.valid or verification.receipt is None:
            raise InvalidArgument.one(
                "receipt",
                f"is not a decision receipt signed by Charter ({verification.reason})",
                reason="RECEIPT_INVALID",
            )
        receipt = verification.receipt
        decision = _allowing_decision(receipt, character_id)
        fee = decision.obligations.per_use_fee if decision.obligations.HasField("per_use_fee") else None
        fee_currency = fee.currency_code if fee is not None and fee.currency_code else ""
        return ReceiptUse(
            receipt_id=receipt.receipt_id,
            decide_time=receipt.decide_time.ToDatetime(tzinfo=UTC),
            rights_holder_id=decision.rights_holder_id,
            grant_id=decision.grant_id,
            revenue_share_bps=decision.obligations.revenue_share_bps,
            fee_currency=fee_currency,
            fee_minor=fee.minor_units if fee is not None and fee_currency else 0,
            receipt_digest=digest,
        )


def _allowing_decision(receipt: decision_pb2.DecisionReceipt, character_id: str) -> decision_pb2.CharacterDecision:
    for decision in receipt.characters:
        if decision.character_id == character_id and decision.allowed and receipt.allowed:
            return decision
    raise FailedPrecondition("the receipt does not allow this character", reason="RECEIPT_DOES_NOT_ALLOW_CHARACTER")
