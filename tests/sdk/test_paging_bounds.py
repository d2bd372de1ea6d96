"""Every paged listing of the SDK ends: a server that answers a page with no items but a next page
token, answers a token it sent before, or never stops giving pages ends the listing with an
`InternalError` whose reason says which (`charter._pages`), after the items already received; the
sync and the async client alike. The real server never does any of this, so the tap answers the
list calls in its place."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import charter
import pytest
from charter import AsyncClient, Client, _pages
from charter.v1 import catalog_service_pb2, rights_holder_pb2

from ._tap import Tap

LIST = "ListRightsHolders"


def _holder(number: int) -> rights_holder_pb2.RightsHolder:
    return rights_holder_pb2.RightsHolder(id=f"rh_{number:032x}", display_name=f"Studio {number}")


def _server(kind: str) -> Callable[[Any], catalog_service_pb2.ListRightsHoldersResponse]:
    """The pages a server that misbehaves in this way answers: its first page holds two items. It
    gives up after 50 pages (a page without a token), so a client that does not stop it fails the
    test rather than hanging it."""
    counter = itertools.count(1)

    def answer(request: catalog_service_pb2.ListRightsHoldersRequest) -> catalog_service_pb2.ListRightsHoldersResponse:
        page = next(counter)
        holders = [_holder(2 * page), _holder(2 * page + 1)]
        if kind == "empty pages" and page > 1:
            holders = []
        # "the same token": the token of the first page, for ever; otherwise a new one each page.
        token = "t1" if kind == "the same token" else f"t{page}"
        if page >= 50:
            token = ""
        return catalog_service_pb2.ListRightsHoldersResponse(rights_holders=holders, next_page_token=token)

    return answer


CASES = {
    "empty pages": (_pages.EMPTY_PAGE, 2, 2),
    "the same token": (_pages.PAGE_TOKEN_REPEATED, 4, 2),
    "pages without end": (_pages.PAGE_LIMIT_REACHED, 10, 5),
}
"""What each misbehaviour ends with: the reason, the items received first, the pages fetched
(with the page limit lowered to 5)."""


@pytest.mark.parametrize("kind", list(CASES))
def test_a_listing_that_would_not_end_is_an_error(
    client: Client, tap: Tap, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.setattr(_pages, "MAX_PAGES", 5)
    tap.answer(LIST, _server(kind))
    received = []

    with pytest.raises(charter.InternalError) as raised:
        for holder in client.list_rights_holders():
            received.append(holder.id)

    reason, items, pages = CASES[kind]
    calls = tap.calls_of(LIST)
    assert raised.value.reason == reason
    assert raised.value.request_id == calls[-1].metadata["x-request-id"]
    assert len(received) == items
    assert len(calls) == pages


@pytest.mark.parametrize("kind", list(CASES))
def test_an_async_listing_that_would_not_end_is_an_error(
    as_admin: Callable[..., Any], tap: Tap, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.setattr(_pages, "MAX_PAGES", 5)
    tap.answer(LIST, _server(kind))

    async def scenario(client: AsyncClient) -> tuple[list[str], BaseException | None]:
        received: list[str] = []
        try:
            async for holder in client.list_rights_holders():
                received.append(holder.id)
        except charter.CharterError as error:
            return received, error
        return received, None

    received, error = as_admin(scenario)

    reason, items, pages = CASES[kind]
    assert isinstance(error, charter.InternalError)
    assert error.reason == reason
    assert len(received) == items
    assert len(tap.calls_of(LIST)) == pages


def test_a_listing_within_the_page_limit_ends_normally(
    client: Client, tap: Tap, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exactly the limit's number of pages, the last without a token: no error."""
    monkeypatch.setattr(_pages, "MAX_PAGES", 5)
    pages = _server("pages without end")

    def five(request: catalog_service_pb2.ListRightsHoldersRequest) -> catalog_service_pb2.ListRightsHoldersResponse:
        answer = pages(request)
        if answer.next_page_token == "t5":
            answer.next_page_token = ""
        return answer

    tap.answer(LIST, five)

    received = list(client.list_rights_holders())

    assert len(received) == 10
    assert len(tap.calls_of(LIST)) == 5
