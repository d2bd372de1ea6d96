"""The bound on every paged listing of the SDK: a listing that does not end is an error, not a loop.

A Charter server ends every listing: each page it sends with a ``next_page_token`` holds at least
one item, and each token is new. A server (or anything answering in its place) that sends a page
with no items but a token, sends a token it sent before, or keeps a listing going past
`MAX_PAGES` pages would otherwise hold the caller in a loop for ever; `PageGuard` ends the listing
with an `InternalError` whose reason says which it was (`EMPTY_PAGE`, `PAGE_TOKEN_REPEATED`,
`PAGE_LIMIT_REACHED`), after the items already received.
"""

from __future__ import annotations

import hashlib

from charter.errors import InternalError

MAX_PAGES = 100_000
"""The most pages one listing fetches (100 million items at the largest page size, 1,000)."""

EMPTY_PAGE = "EMPTY_PAGE"
"""The reason of a listing that got a page with no items but a ``next_page_token``."""
PAGE_TOKEN_REPEATED = "PAGE_TOKEN_REPEATED"  # noqa: S105 - a reason, not a secret
"""The reason of a listing that got a ``next_page_token`` it had already followed."""
PAGE_LIMIT_REACHED = "PAGE_LIMIT_REACHED"
"""The reason of a listing that went on past `MAX_PAGES` pages."""
PAGING_REASONS = frozenset({EMPTY_PAGE, PAGE_TOKEN_REPEATED, PAGE_LIMIT_REACHED})
"""The reasons of a listing the SDK ended because it would not end."""


class PageGuard:
    """Checks each page of one listing; raises when the listing would not end.

    Keeps a digest of every token followed (32 bytes each, so at most 3.2 MB at `MAX_PAGES`).
    """

    def __init__(self, max_pages: int | None = None) -> None:
        self._max_pages = MAX_PAGES if max_pages is None else max_pages
        self._pages = 0
        self._seen: set[bytes] = set()

    def next_token(self, items: int, token: str, *, request_id: str | None = None) -> str:
        """The token to fetch the next page with, or "" when the listing is complete.

        Args:
            items: How many items the page just received held.
            token: Its ``next_page_token``.
            request_id: The request id of the page's call, for the error (to find it in the server's log).

        Raises:
            InternalError: With reason `EMPTY_PAGE`, `PAGE_TOKEN_REPEATED` or `PAGE_LIMIT_REACHED`.
        """
        self._pages += 1
        if not token:
            return ""
        if not items:
            raise self._error(EMPTY_PAGE, "the server sent a page with no items but a next page token", request_id)
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        if digest in self._seen:
            raise self._error(PAGE_TOKEN_REPEATED, "the server sent a page token it had sent before", request_id)
        if self._pages >= self._max_pages:
            raise self._error(PAGE_LIMIT_REACHED, f"the listing did not end within {self._max_pages} pages", request_id)
        self._seen.add(digest)
        return token

    def _error(self, reason: str, message: str, request_id: str | None) -> InternalError:
        return InternalError(
            f"{message} (page {self._pages}); the listing was ended",
            reason=reason,
            metadata={"pages": str(self._pages)},
            request_id=request_id,
        )
