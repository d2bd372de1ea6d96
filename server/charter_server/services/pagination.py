"""AIP-158 pagination: page sizes and opaque page tokens bound to the list's filters.

A token is the cursor and an HMAC-SHA256 (truncated to 128 bits) of the list's filters and the
cursor under the deployment's page-token key (kept in the database, the same on every replica),
so a token cannot be minted or edited by a client, nor moved to a list with other filters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

from charter_server.domain.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# Cursors are 64-bit sequence numbers; anything larger is a forgery the database cannot even compare.
_MAX_CURSOR = 2**63 - 1
# Real tokens are well under 100 characters; longer ones are not worth decoding.
_MAX_TOKEN_LENGTH = 512


def page_size(value: int) -> int:
    """The effective page size: 0 means the default, above the maximum means the maximum."""
    if value < 0:
        raise InvalidArgument.one("page_size", "must not be negative")
    if value == 0:
        return DEFAULT_PAGE_SIZE
    return min(value, MAX_PAGE_SIZE)


def _digest(key: bytes, filters: str, after: int | str) -> str:
    """Binds a token to its list's filters and to its cursor under the server's key, so an edited
    or made-up token is refused."""
    return hmac.new(key, f"{filters}|{after}".encode(), hashlib.sha256).hexdigest()[:32]


def _encode(key: bytes, after: int | str, filters: str) -> str:
    raw = json.dumps({"a": after, "f": _digest(key, filters, after)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(key: bytes, token: str, filters: str) -> object:
    invalid = InvalidArgument.one("page_token", "is not a token returned by this list")
    if len(token) > _MAX_TOKEN_LENGTH:
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        after = data["a"]
        digest = data["f"]
    except (binascii.Error, ValueError, KeyError, TypeError, RecursionError) as error:
        raise invalid from error
    if not isinstance(digest, str) or not isinstance(after, int | str) or isinstance(after, bool):
        raise invalid
    if not hmac.compare_digest(digest, _digest(key, filters, after)):
        raise InvalidArgument.one("page_token", "was issued for a list with other filters, or was altered")
    return after


def encode(key: bytes, after: int | None, filters: str) -> str:
    """The token to continue after sequence number ``after``; '' when there is no next page."""
    return "" if after is None else _encode(key, after, filters)


def decode(key: bytes, token: str, filters: str) -> int:
    """The sequence number a token continues after (0 for the first page)."""
    if not token:
        return 0
    after = _decode(key, token, filters)
    if not isinstance(after, int) or not 0 <= after <= _MAX_CURSOR:
        raise InvalidArgument.one("page_token", "is not a token returned by this list")
    return after


def encode_text(key: bytes, after: str | None, filters: str) -> str:
    """The token of a list ordered by a text key, continuing after ``after``."""
    return "" if after is None else _encode(key, after, filters)


def decode_text(key: bytes, token: str, filters: str) -> str:
    """The text key a token continues after ('' for the first page)."""
    if not token:
        return ""
    after = _decode(key, token, filters)
    if not isinstance(after, str):
        raise InvalidArgument.one("page_token", "is not a token returned by this list")
    return after
