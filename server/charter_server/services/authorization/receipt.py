"""Decision receipts: the signed record of an ``Authorize`` decision, built only from what was
validated and decided, as protobuf wire bytes.

**The one place in the services that builds protobuf.** A receipt is a signed payload: what is
signed is the serialized ``charter.v1.DecisionReceipt``, so it is written here, from domain
values (`Outcome`, `UseRequest`), and nowhere else in the services. The servicer frames the
response around these bytes.

The receipt is a ``charter.v1.DecisionReceipt``, serialized, wrapped in a DSSE envelope and
signed (``charter.envelope``); the response to ``Authorize`` carries the same bytes as its
``decision``. It holds the receipt id, the licensee, the request's digest, each character's
decision, the use context as validated (field by field: a field added to the message later is not
attested until it is validated), the time and the issuer. Nothing the client sent reaches it
unless it was validated first: the request's unknown fields are dropped before its digest.

Building it with protobuf messages costs more than deciding does, so the receipt is written as
wire bytes here: each character's decision is serialized once per distinct outcome and kept, and
the few fields that change with every request (the id, the digest, the time) are encoded around
them. Protobuf parsers accept fields in any order and a repeated field split across the message,
so the bytes parse to the same ``DecisionReceipt`` a message would have made (tested); a verifier
checks the bytes as signed, then parses them, as for any envelope.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from charter.envelope import RECEIPT_PAYLOAD_TYPE, pae
from charter.terms import DenyReason, Obligations
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import decision_pb2, envelope_pb2

from charter_server.services.wire import field as _field
from charter_server.services.wire import varint as _varint

if TYPE_CHECKING:
    from charter_server.domain.models import Detection
    from charter_server.services.authorization.command import UseRequest

_REASON_VALUE = {reason: decision_pb2.DenyReason.Value(f"DENY_REASON_{reason}") for reason in DenyReason}
_RECEIPT_PAE_PREFIX = pae(RECEIPT_PAYLOAD_TYPE, b"")[: -len(b"0 ")]  # "DSSEv1 <len> <type> "
_CACHE_LIMIT = 100_000
# Attested use contexts, by their validated fields (the same bytes for every server: pure).
_CONTEXTS: dict[tuple[object, ...], bytes] = {}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What was decided for one character, as the receipt states it."""

    character_id: str
    allowed: bool
    reasons: tuple[DenyReason, ...]
    grant_id: str
    terms_version: int
    rights_holder_id: str
    declared: bool
    detected: bool
    obligations: Obligations | None


def character_decision(outcome: Outcome) -> decision_pb2.CharacterDecision:
    """The protobuf form of one character's decision (in a receipt, or a what-if answer)."""
    message = decision_pb2.CharacterDecision(
        character_id=outcome.character_id,
        allowed=outcome.allowed,
        reasons=[_REASON_VALUE[reason] for reason in outcome.reasons],
        grant_id=outcome.grant_id,
        terms_version=outcome.terms_version,
        rights_holder_id=outcome.rights_holder_id,
        declared=outcome.declared,
        detected=outcome.detected,
    )
    obligations = outcome.obligations
    if outcome.allowed and obligations is not None:
        message.obligations.attribution_text = obligations.attribution_text
        message.obligations.watermark_required = obligations.watermark_required
        message.obligations.revenue_share_bps = obligations.revenue_share_bps
        if obligations.per_use_fee_currency:
            message.obligations.per_use_fee.currency_code = obligations.per_use_fee_currency
            message.obligations.per_use_fee.minor_units = obligations.per_use_fee_minor_units
    return message


@dataclass(frozen=True, slots=True)
class SignedReceipt:
    """A receipt as signed: its payload (the serialized ``DecisionReceipt``) and its envelope."""

    receipt_id: str
    request_digest: bytes
    payload: bytes
    envelope: bytes

    def response(self, detections: Iterable[bytes] = ()) -> bytes:
        """The serialized ``AuthorizeResponse``: the decision, the serialized detections, the receipt."""
        return b"".join(
            (_field(0x0A, self.payload), *(_field(0x12, d) for d in detections), _field(0x1A, self.envelope))
        )

    @classmethod
    def from_response(cls, response: bytes) -> SignedReceipt:
        """The receipt of a serialized ``AuthorizeResponse`` kept earlier (the bytes as signed)."""
        first = az.AuthorizeResponse.FromString(response)
        return cls(
            first.decision.receipt_id,
            first.decision.request_digest,
            first.receipt.payload,  # the bytes as signed, not a re-serialization
            first.receipt.SerializeToString(),
        )

    def decision(self) -> decision_pb2.DecisionReceipt:
        """The receipt as a message (parsed from the payload)."""
        return decision_pb2.DecisionReceipt.FromString(self.payload)

    def receipt(self) -> envelope_pb2.Envelope:
        """The envelope as a message."""
        return envelope_pb2.Envelope.FromString(self.envelope)


def attested_context(use: UseRequest) -> bytes:
    """The use context as the receipt attests it: the validated fields, one by one, serialized
    (kept per distinct context: a backend asks in few)."""
    key = (use.use_type, use.content_rating, use.categories, use.territory, use.commercial, use.duration)
    written = _CONTEXTS.get(key)
    if written is None:
        written = _attest(use)
        if len(_CONTEXTS) >= _CACHE_LIMIT:
            _CONTEXTS.clear()
        _CONTEXTS[key] = written
    return written


def _attest(use: UseRequest) -> bytes:
    attested = decision_pb2.UseContext(
        use_type=use.use_type,  # type: ignore[arg-type]
        content_rating=use.content_rating,  # type: ignore[arg-type]
        categories=use.categories,  # type: ignore[arg-type]
        territory=use.territory,
        commercial=use.commercial,
    )
    if use.duration is not None:
        attested.duration.seconds, attested.duration.nanos = use.duration
    return attested.SerializeToString()


class ReceiptWriter:
    """Writes and signs receipts; keeps each distinct character decision's bytes (bounded)."""

    def __init__(self, issuer: str, log_origin: str = "") -> None:
        # The issuer (field 8) and the log the receipt is logged in (field 9), written once.
        self._issuer = _field(0x42, issuer.encode()) + (_field(0x4A, log_origin.encode()) if log_origin else b"")
        self._characters: dict[Outcome, bytes] = {}

    def _character(self, outcome: Outcome) -> bytes:
        written = self._characters.get(outcome)
        if written is None:
            message = character_decision(outcome)
            written = _field(0x2A, message.SerializeToString())
            if len(self._characters) >= _CACHE_LIMIT:
                self._characters.clear()
            self._characters[outcome] = written
        return written

    def payload(
        self,
        *,
        receipt_id: str,
        licensee_id: str,
        digest: bytes,
        outcomes: Iterable[Outcome],
        context: bytes,
        decide_time: datetime,
    ) -> bytes:
        """The serialized ``DecisionReceipt``; ``decide_time`` is timezone-aware."""
        parts = [_field(0x0A, receipt_id.encode()), _field(0x12, licensee_id.encode()), _field(0x1A, digest)]
        allowed = True
        for outcome in outcomes:
            allowed = allowed and outcome.allowed
            parts.append(self._character(outcome))
        if allowed:
            parts.insert(3, b"\x20\x01")
        seconds = (decide_time - _EPOCH) // _SECOND
        nanos = decide_time.microsecond * 1000
        stamp = b"\x08" + _varint(seconds) + (b"\x10" + _varint(nanos) if nanos else b"")
        parts += (_field(0x32, context), _field(0x3A, stamp), self._issuer)
        return b"".join(parts)

    def sign(
        self, payload: bytes, *, receipt_id: str, digest: bytes, key_id: str, signing_key: object
    ) -> SignedReceipt:
        """Sign ``payload`` (DSSE over its exact bytes) with an Ed25519 ``nacl.signing.SigningKey``."""
        message = b"%b%d %b" % (_RECEIPT_PAE_PREFIX, len(payload), payload)
        signature = signing_key.sign(message).signature  # type: ignore[attr-defined]
        signed = b"".join((_field(0x0A, key_id.encode()), _field(0x12, bytes(signature))))
        envelope = b"".join((_field(0x0A, payload), _field(0x12, RECEIPT_PAYLOAD_TYPE.encode()), _field(0x1A, signed)))
        return SignedReceipt(receipt_id, digest, payload, envelope)


@dataclass(frozen=True, slots=True)
class AuthorizeResult:
    """A decision: the signed receipt (whose payload is the decision), and what screening found."""

    signed: SignedReceipt
    detections: list[Detection]

    @property
    def decision(self) -> decision_pb2.DecisionReceipt:
        """The decision, as the receipt's payload states it (parsed from the signed bytes)."""
        return self.signed.decision()

    @property
    def receipt(self) -> envelope_pb2.Envelope:
        """The signed receipt."""
        return self.signed.receipt()
