"""What ``Authorize`` is asked, as domain values (the servicer converts the request).

The one deliberate exception to "no protobuf in services" here: a presented grant is the signed
envelope itself (``charter.v1.Envelope``), because what is verified is the bytes as signed. The
answer (`charter_server.services.authorization.receipt.AuthorizeResult`) is the signed receipt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from charter.v1.envelope_pb2 import Envelope


@dataclass(frozen=True, slots=True)
class UseRequest:
    """The use context a request describes, field by field as received (validated by the service).

    Attributes:
        use_type: A ``charter.v1.UseType`` value.
        content_rating: A ``charter.v1.ContentRating`` value.
        categories: ``charter.v1.ContentCategory`` values, in the order given.
        territory: The territory code as given (empty when unknown).
        commercial: Whether the use is commercial.
        duration: The content's length as (seconds, nanos), or None when not given.
    """

    use_type: int
    content_rating: int
    categories: tuple[int, ...] = ()
    territory: str = ""
    commercial: bool = False
    duration: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class AuthorizeCommand:
    """One ``Authorize`` request.

    Attributes:
        character_ids: The declared characters, in the order given.
        prompt: The prompt ("" when none).
        use: The use context, or None when the request has none (invalid).
        grants: The presented grant envelopes, in the order given.
        request_id: The idempotency key ("" when none).
        request_digest: The SHA-256 of the request's deterministic serialization, with the fields
            this server does not know dropped first (the receipt attests it, and it is the
            idempotency fingerprint).
    """

    character_ids: tuple[str, ...]
    prompt: str
    use: UseRequest | None
    grants: tuple[Envelope, ...] = ()
    request_id: str = ""
    request_digest: bytes = field(default=b"", repr=False)
