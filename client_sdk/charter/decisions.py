"""Generation-time decisions as plain Python values: what `Client.authorize` and the offline
authorizer return, and the `LicenseDenied` error that ``license(...)`` raises.

A `Decision` says whether every character may be rendered (`Decision.allowed`), and for each
character why not (`CharacterDecision.reasons`, `charter.terms.DenyReason` values) or what the use
owes (`CharacterDecision.obligations`). A decision made by the server carries its signed receipt
(`Decision.receipt`, a DSSE envelope to attach to the content's provenance record); a decision
the SDK made offline has none (`Decision.offline` is true).

Example:
    ```python
    decision = client.authorize(character_ids=["chr_..."], prompt="...", use_type=...,
                                content_rating=...)
    if not decision.allowed:
        for character in decision.denied:
            print(character.character_id, [str(r) for r in character.reasons])
    ```
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from datetime import UTC, datetime

from charter._slots import slot_setters
from charter.terms import DenyReason, Obligations
from charter.v1 import authorization_service_pb2, decision_pb2, envelope_pb2

__all__ = ["CharacterDecision", "Decision", "Detection", "DetectionRule", "LicenseDenied", "obligations_from_proto"]


class DetectionRule(enum.StrEnum):
    """The screening rule that made a detection (mirrors ``charter.v1.Detection.Rule``)."""

    EXACT = "EXACT"
    SKELETON = "SKELETON"
    READING = "READING"
    SPACED = "SPACED"
    HASHTAG = "HASHTAG"
    JOINED = "JOINED"
    REVERSED_ORDER = "REVERSED_ORDER"
    PLURAL = "PLURAL"
    LONG_VOWEL = "LONG_VOWEL"
    DESCRIPTION = "DESCRIPTION"


@dataclasses.dataclass(frozen=True, slots=True)
class Detection:
    """A character that prompt screening found in a prompt, named or described.

    Attributes:
        character_id: The character named.
        matched_alias: The name or alias that matched, as registered; for a description, the
            keywords of the set joined with `` + ``.
        start: Where the match starts in the prompt, in code points from 0.
        end: Where it ends (exclusive), in code points.
        text: The text of the prompt that matched.
        ambiguous: Whether the alias is marked ambiguous (it may name something else); an
            ambiguous match is decided only if the character is declared.
        rule: The rule that matched (see `charter.screen` for each).
        keyword_set: For a description (`DetectionRule.DESCRIPTION`), the keyword set's name.
    """

    character_id: str
    matched_alias: str
    start: int
    end: int
    text: str
    ambiguous: bool
    rule: DetectionRule = DetectionRule.EXACT
    keyword_set: str = ""

    @property
    def described(self) -> bool:
        """Whether the character was described by a keyword set rather than named."""
        return self.rule is DetectionRule.DESCRIPTION

    @classmethod
    def from_proto(cls, message: authorization_service_pb2.Detection) -> Detection:
        """Build a detection from its ``charter.v1.Detection`` message."""
        name = authorization_service_pb2.Detection.Rule.Name(message.rule).removeprefix("RULE_")
        return cls(
            message.character_id,
            message.matched_alias,
            message.start,
            message.end,
            message.text,
            message.ambiguous,
            DetectionRule(name) if name in DetectionRule.__members__ else DetectionRule.EXACT,
            message.keyword_set,
        )


def obligations_from_proto(message: decision_pb2.Obligations) -> Obligations:
    """The `charter.terms.Obligations` of a ``charter.v1.Obligations`` message."""
    fee = message.per_use_fee
    return Obligations(
        attribution_text=message.attribution_text,
        watermark_required=message.watermark_required,
        revenue_share_bps=message.revenue_share_bps,
        per_use_fee_minor_units=fee.minor_units,
        per_use_fee_currency=fee.currency_code.upper(),
    )


def _reason(value: int) -> DenyReason:
    return DenyReason(decision_pb2.DenyReason.Name(value).removeprefix("DENY_REASON_"))  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True, slots=True, init=False)
class CharacterDecision:
    """The decision about one character.

    Attributes:
        character_id: The character.
        allowed: Whether it may be rendered.
        reasons: When denied, every reason, in `DenyReason` order; empty when allowed.
        grant_id: The grant that allowed the use, or whose failures are reported; empty if none.
        terms_version: The terms version of that grant; 0 without one.
        obligations: When allowed, what the use owes; None when denied.
        rights_holder_id: The rights holder that owns the character (empty when unknown offline).
        declared: Whether the request declared the character.
        detected: Whether prompt screening found it.
    """

    character_id: str
    allowed: bool
    reasons: tuple[DenyReason, ...]
    grant_id: str = ""
    terms_version: int = 0
    obligations: Obligations | None = None
    rights_holder_id: str = ""
    declared: bool = True
    detected: bool = False

    def __init__(
        self,
        character_id: str,
        allowed: bool,
        reasons: tuple[DenyReason, ...],
        grant_id: str = "",
        terms_version: int = 0,
        obligations: Obligations | None = None,
        rights_holder_id: str = "",
        declared: bool = True,
        detected: bool = False,
    ) -> None:
        # Written out (see `charter._slots`): a cold offline decision builds one, a signed
        # decision record reads one, and the server builds one per character.
        _set_character_id(self, character_id)
        _set_allowed(self, allowed)
        _set_reasons(self, reasons)
        _set_grant_id(self, grant_id)
        _set_terms_version(self, terms_version)
        _set_obligations(self, obligations)
        _set_rights_holder_id(self, rights_holder_id)
        _set_declared(self, declared)
        _set_detected(self, detected)

    @classmethod
    def from_proto(cls, message: decision_pb2.CharacterDecision) -> CharacterDecision:
        """Build a character decision from its ``charter.v1.CharacterDecision`` message.

        Raises:
            ValueError: A reason is not one this SDK knows (a newer server); update the SDK.
        """
        return cls(
            character_id=message.character_id,
            allowed=message.allowed,
            reasons=tuple(_reason(value) for value in message.reasons),
            grant_id=message.grant_id,
            terms_version=message.terms_version,
            obligations=obligations_from_proto(message.obligations) if message.allowed else None,
            rights_holder_id=message.rights_holder_id,
            declared=message.declared,
            detected=message.detected,
        )


(
    _set_character_id,
    _set_allowed,
    _set_reasons,
    _set_grant_id,
    _set_terms_version,
    _set_obligations,
    _set_rights_holder_id,
    _set_declared,
    _set_detected,
) = slot_setters(CharacterDecision)


@dataclasses.dataclass(frozen=True, slots=True, init=False)
class Decision:
    """Whether a use may go ahead, character by character.

    Attributes:
        allowed: True only if every character decided is allowed (also when there is none).
        characters: The decision per character: declared ones in request order, then detected
            ones in prompt order.
        detections: What prompt screening found, ordered by start (by the server, or by an
            offline authorizer that screens locally against its registry snapshot).
        decide_time: When the decision was made.
        receipt: The signed decision receipt (a ``charter.v1.Envelope``) when the server decided;
            None when the SDK decided offline.
        receipt_id: The receipt's id; empty without a receipt.
        licensee_id: The licensee decided for.
        offline: Whether the SDK decided on its own, from grants it holds.
        decision_records: When decided offline by an authorizer with a licensee key, the signed
            decision record of each character (`charter.decision_records`), in the order of
            `characters`; what a `license` block reports instead of a receipt.
        request_reasons: Why the request as a whole was denied when it declared no character to
            carry the reason: an offline authorizer that could neither screen the prompt itself
            nor reach the server (for example ``SERVER_UNREACHABLE`` or ``REVOCATIONS_STALE``);
            empty otherwise. `reasons` includes them.
    """

    allowed: bool
    characters: tuple[CharacterDecision, ...]
    detections: tuple[Detection, ...] = ()
    decide_time: datetime = dataclasses.field(default_factory=lambda: datetime.now(UTC))
    receipt: envelope_pb2.Envelope | None = None
    receipt_id: str = ""
    licensee_id: str = ""
    offline: bool = False
    decision_records: tuple[envelope_pb2.Envelope, ...] = ()
    request_reasons: tuple[DenyReason, ...] = ()

    def __init__(
        self,
        allowed: bool,
        characters: tuple[CharacterDecision, ...],
        detections: tuple[Detection, ...] = (),
        decide_time: datetime | None = None,
        receipt: envelope_pb2.Envelope | None = None,
        receipt_id: str = "",
        licensee_id: str = "",
        offline: bool = False,
        decision_records: tuple[envelope_pb2.Envelope, ...] = (),
        request_reasons: tuple[DenyReason, ...] = (),
    ) -> None:
        """Build a decision; see the class attributes (``decide_time``: now when None)."""
        # Written out (see `charter._slots`): the offline authorizer builds one per request, and
        # the generated one's ten ``object.__setattr__`` calls were about 5 % of a prompt decision.
        _set_allowed_all(self, allowed)
        _set_characters(self, characters)
        _set_detections(self, detections)
        _set_decide_time(self, datetime.now(UTC) if decide_time is None else decide_time)
        _set_receipt(self, receipt)
        _set_receipt_id(self, receipt_id)
        _set_licensee_id(self, licensee_id)
        _set_offline(self, offline)
        _set_decision_records(self, decision_records)
        _set_request_reasons(self, request_reasons)

    @property
    def receipt_digest(self) -> bytes:
        """The SHA-256 of the receipt's payload exactly as signed; empty without a receipt.

        It names the receipt in Charter's transparency log: within a second of the decision,
        ``get_inclusion_proof(receipt_digest=...)`` proves one log entry per character decided
        (``charter audit prove`` does it from the command line).
        """
        return hashlib.sha256(self.receipt.payload).digest() if self.receipt is not None else b""

    @property
    def denied(self) -> tuple[CharacterDecision, ...]:
        """The characters denied, in the order of `characters`."""
        return tuple(character for character in self.characters if not character.allowed)

    @property
    def reasons(self) -> tuple[DenyReason, ...]:
        """Every reason of every denied character and of the request as a whole
        (`request_reasons`), without duplicates, in `DenyReason` order."""
        found = {reason for character in self.characters for reason in character.reasons}
        found.update(self.request_reasons)
        return tuple(reason for reason in DenyReason if reason in found)

    @property
    def obligations(self) -> dict[str, Obligations]:
        """The obligations of each allowed character, by character id."""
        return {c.character_id: c.obligations for c in self.characters if c.obligations is not None}

    @classmethod
    def from_response(cls, response: authorization_service_pb2.AuthorizeResponse) -> Decision:
        """Build a decision from the server's ``AuthorizeResponse``.

        Raises:
            ValueError: A reason is not one this SDK knows (a newer server); update the SDK.
        """
        receipt = response.decision
        return cls(
            allowed=receipt.allowed,
            characters=tuple(CharacterDecision.from_proto(c) for c in receipt.characters),
            detections=tuple(Detection.from_proto(d) for d in response.detections),
            decide_time=receipt.decide_time.ToDatetime(tzinfo=UTC),
            receipt=response.receipt if response.HasField("receipt") else None,
            receipt_id=receipt.receipt_id,
            licensee_id=receipt.licensee_id,
        )


(
    _set_allowed_all,
    _set_characters,
    _set_detections,
    _set_decide_time,
    _set_receipt,
    _set_receipt_id,
    _set_licensee_id,
    _set_offline,
    _set_decision_records,
    _set_request_reasons,
) = slot_setters(Decision)


class LicenseDenied(Exception):
    """Raised by ``license(...)`` on entry when the use is denied.

    Attributes:
        decision: The whole decision (its receipt included, when the server decided).
        reasons: Every reason of every denied character and of the request as a whole, in
            `DenyReason` order.
    """

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.reasons = decision.reasons
        denied = ", ".join(f"{c.character_id} ({', '.join(str(r) for r in c.reasons)})" for c in decision.denied)
        if decision.request_reasons:
            request = f"the request ({', '.join(str(r) for r in decision.request_reasons)})"
            denied = f"{denied}, {request}" if denied else request
        super().__init__(f"use denied: {denied}")
