"""Field validation that collects every violation before failing, naming each field by its API path."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from charter_server.domain import ids
from charter_server.domain.errors import FieldViolation, InvalidArgument

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_CONTENT_SECONDS = 24 * 3600
"""The longest content a use context or a usage record may describe, in seconds."""


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A value the caller sent that has no domain meaning (a malformed time, an unknown alias
    kind), and why.

    The API's converters raise ``InvalidArgument`` for such a value at once, except in a batch
    whose items are answered one by one (usage records, import rows): there the converter hands
    this to the service, which reports it with the item's other violations.
    """

    description: str


_BIDI_OR_BREAK = re.compile("[\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def has_bidi_control(value: str) -> bool:
    """Whether ``value`` holds a bidirectional embedding, override or isolate control, or a line or
    paragraph separator: in a name, they make it display as other text (``\u202e`` reverses what
    follows) or break the line it is shown on."""
    return _BIDI_OR_BREAK.search(value) is not None


def _has_control(value: str, *, allow: str = "") -> bool:
    """Whether ``value`` holds a control character (C0, DEL or C1) other than those in ``allow``."""
    return any(unicodedata.category(ch) == "Cc" and ch not in allow for ch in value)


class Checker:
    """Collects field violations; ``done()`` raises them all at once."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        """Record one violation."""
        self.violations.append(FieldViolation(field, description))

    def text(self, field: str, value: str, *, max_len: int, required: bool = False) -> None:
        """A free-text field: required or not, at most ``max_len`` characters, no control characters."""
        if required and not value.strip():
            self.add(field, "is required")
        elif len(value) > max_len:
            self.add(field, f"must be at most {max_len} characters")
        elif _has_control(value, allow="\t"):
            self.add(field, "must not contain control characters")

    def email(self, field: str, value: str, *, required: bool = True) -> None:
        """An e-mail address."""
        if not value and not required:
            return
        if len(value) > 254 or not _EMAIL.fullmatch(value) or _has_control(value):
            self.add(field, "must be an e-mail address of at most 254 characters")

    def slug(self, field: str, value: str) -> None:
        """A lowercase identifier such as a platform name."""
        if not _SLUG.fullmatch(value):
            self.add(field, "must be 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit")

    def resource_id(self, field: str, value: str, kind: str, *, required: bool = True) -> None:
        """A resource id of ``kind`` (see ``charter_server.domain.ids``)."""
        if not value:
            if required:
                self.add(field, "is required")
        elif not ids.is_valid(kind, value):
            self.add(field, f"must be a {kind.replace('_', ' ')} id ({ids.PREFIXES[kind]}_ and 32 hex digits)")

    def request_id(self, value: str) -> None:
        """The optional idempotency ``request_id``."""
        if value and not REQUEST_ID.fullmatch(value):
            self.add("request_id", "must be 1-64 letters, digits, '-' or '_'")

    def done(self) -> None:
        """Raise ``InvalidArgument`` if anything was recorded."""
        if self.violations:
            raise InvalidArgument(self.violations)


def check_id(field: str, value: str, kind: str) -> None:
    """Validate a single required id argument."""
    checker = Checker()
    checker.resource_id(field, value, kind)
    checker.done()
