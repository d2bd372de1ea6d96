"""Validation of an ``Authorize`` request: every field checked, each failure named by its field
path in ``AuthorizeRequest`` (``context.use_type``, ``grants[2].payload_type``, ...)."""

from __future__ import annotations

from dataclasses import dataclass

from charter.envelope import GRANT_PAYLOAD_TYPE, MAX_ENVELOPE_BYTES, MAX_SIGNATURES
from charter.v1 import grant_pb2, terms_pb2
from charter.v1.envelope_pb2 import Envelope
from google.protobuf.message import DecodeError

from charter_server.domain import ids
from charter_server.services.authorization.command import AuthorizeCommand, UseRequest
from charter_server.services.screening import MAX_PROMPT_LENGTH
from charter_server.services.terms_rules import is_territory
from charter_server.services.validation import MAX_CONTENT_SECONDS, Checker

MAX_CHARACTERS = 64
"""The most characters a request may declare."""
MAX_GRANTS = 64
"""The most grant envelopes a request may present."""
MAX_SIGNATURES_PER_REQUEST = 2 * MAX_GRANTS
"""The most signatures the presented envelopes may carry together (each at most
``charter.envelope.MAX_SIGNATURES``, one checked per key id): the bound on a request's Ed25519 work."""

_USE_TYPES = frozenset(terms_pb2.UseType.values()) - {terms_pb2.USE_TYPE_UNSPECIFIED}
_RATINGS = frozenset(terms_pb2.ContentRating.values()) - {terms_pb2.CONTENT_RATING_UNSPECIFIED}
_CATEGORIES = frozenset(terms_pb2.ContentCategory.values()) - {terms_pb2.CONTENT_CATEGORY_UNSPECIFIED}


@dataclass(frozen=True, slots=True)
class Presented:
    """A presented grant envelope, with what its payload claims (trusted only after it verified).

    Attributes:
        envelope: The envelope as received.
        character_id: The character its payload claims: which character it is a candidate for.
        issued: Its claimed issue time as (seconds, nanos): the order of the candidates.
    """

    envelope: Envelope
    character_id: str
    issued: tuple[int, int]


def validate(command: AuthorizeCommand) -> list[Presented]:
    """Check every field; return the presented grants with the character each claims.

    A presented grant must at least be a grant envelope whose payload parses; whether it verifies
    is part of the decision (the claimed character is trusted only after its signature verified).

    Raises:
        InvalidArgument: Naming every invalid field.
    """
    checker = Checker()
    if command.use is None:
        checker.add("context", "is required")
    else:
        validate_use(checker, command.use)
    if len(command.character_ids) > MAX_CHARACTERS:
        checker.add("character_ids", f"must hold at most {MAX_CHARACTERS} ids")
    else:
        unique: set[str] = set()
        for i, character_id in enumerate(command.character_ids):
            if not ids.is_valid("character", character_id):
                checker.add(f"character_ids[{i}]", "must be a character id (chr_ and 32 hex digits)")
            elif character_id in unique:
                checker.add(f"character_ids[{i}]", "is a duplicate")
            unique.add(character_id)
    if len(command.prompt) > MAX_PROMPT_LENGTH:
        checker.add("prompt", f"must be at most {MAX_PROMPT_LENGTH} characters")
    if not command.character_ids and not command.prompt.strip():
        checker.add("character_ids", "at least one of character_ids and prompt is required")
    checker.request_id(command.request_id)
    presented = []
    if len(command.grants) > MAX_GRANTS:
        checker.add("grants", f"must hold at most {MAX_GRANTS} envelopes")
    elif sum(len(envelope.signatures) for envelope in command.grants) > MAX_SIGNATURES_PER_REQUEST:
        checker.add("grants", f"must hold at most {MAX_SIGNATURES_PER_REQUEST} signatures in all")
    else:
        for i, envelope in enumerate(command.grants):
            field = f"grants[{i}]"
            if envelope.ByteSize() > MAX_ENVELOPE_BYTES:
                checker.add(field, f"must be at most {MAX_ENVELOPE_BYTES} bytes")
                continue
            if len(envelope.signatures) > MAX_SIGNATURES:
                checker.add(f"{field}.signatures", f"must hold at most {MAX_SIGNATURES} signatures")
                continue
            if envelope.payload_type != GRANT_PAYLOAD_TYPE:
                checker.add(f"{field}.payload_type", f"must be {GRANT_PAYLOAD_TYPE} (a receipt is not a grant)")
                continue
            if not envelope.signatures:
                checker.add(f"{field}.signatures", "must hold at least one signature")
                continue
            try:
                claimed = grant_pb2.GrantClaims.FromString(envelope.payload)
            except DecodeError:
                checker.add(f"{field}.payload", "is not a grant payload")
                continue
            issued = (claimed.issue_time.seconds, claimed.issue_time.nanos)
            presented.append(Presented(envelope, claimed.character_id, issued))
    checker.done()
    return presented


def validate_use(checker: Checker, use: UseRequest) -> None:
    """Record every invalid field of a use context; paths start with ``context``."""
    if use.use_type not in _USE_TYPES:
        checker.add("context.use_type", "must be a known use type other than UNSPECIFIED")
    if use.content_rating not in _RATINGS:
        checker.add("context.content_rating", "must be a known content rating other than UNSPECIFIED")
    seen: set[int] = set()
    for i, category in enumerate(use.categories):
        if category not in _CATEGORIES:
            checker.add(f"context.categories[{i}]", "must be a known content category other than UNSPECIFIED")
        elif category in seen:
            checker.add(f"context.categories[{i}]", "is a duplicate")
        seen.add(category)
    if use.territory and not is_territory(use.territory):
        checker.add("context.territory", "must be an ISO 3166-1 alpha-2 code, or empty")
    if use.duration is not None:
        seconds, nanos = use.duration
        # The length of content a use describes: 0 to MAX_CONTENT_SECONDS (the pair the command carries).
        if seconds < 0 or nanos < 0 or nanos >= 1_000_000_000 or (seconds, nanos) > (MAX_CONTENT_SECONDS, 0):
            checker.add("context.duration", "must be between 0 and 24 hours")
