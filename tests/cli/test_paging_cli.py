"""The `charter` command line against a server whose listings would not end (the tap answers the
list calls in the real server's place; the real server never does this): a listing command fails
with exit status 1 and the error line of the reason the SDK ended it with (`charter._pages`), and
`charter audit export` raises the alarm (exit 2), since a listing that does not end is one that
stops short of the checkpoint."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from charter import _pages
from charter.v1 import catalog_service_pb2, rights_holder_pb2, transparency_pb2, transparency_service_pb2
from sdk._live import Live
from sdk._tap import Tap

from ._commands import ERROR_LINE, invoke
from ._readable import ReadableRunner

_GIVE_UP = 50
"""The pages after which the misbehaving server gives up (a page without a token), so a command
that does not end the listing fails its test rather than hanging it."""

PAGES = {"empty pages": 1, "the same token": 2}
"""The pages a listing takes to be ended: the first empty one with a token, the first token sent again."""


def _tokens(kind: str) -> Callable[[], str]:
    counter = itertools.count(1)

    def token() -> str:
        page = next(counter)
        if page >= _GIVE_UP:
            return ""
        return "t1" if kind == "the same token" else f"t{page}"

    return token


@pytest.mark.parametrize(
    ("kind", "reason"), [("empty pages", _pages.EMPTY_PAGE), ("the same token", _pages.PAGE_TOKEN_REPEATED)]
)
def test_a_listing_that_would_not_end_fails_with_its_reason(
    runner: ReadableRunner, cli_live: Live, tap: Tap, kind: str, reason: str
) -> None:
    token = _tokens(kind)

    def answer(request: Any) -> catalog_service_pb2.ListRightsHoldersResponse:
        holders = [] if kind == "empty pages" else [rights_holder_pb2.RightsHolder(id=f"rh_{'0' * 31}1")]
        return catalog_service_pb2.ListRightsHoldersResponse(rights_holders=holders, next_page_token=token())

    tap.answer("ListRightsHolders", answer)

    listed = invoke(runner, cli_live, "rights-holders", "list", via=tap)

    assert listed.exit_code == 1, listed.output
    match = ERROR_LINE.match(listed.stderr.splitlines()[0])
    assert match is not None, listed.stderr
    assert (match["code"], match["reason"]) == ("INTERNAL", reason)
    calls = tap.calls_of("ListRightsHolders")
    assert match["rid"] == calls[-1].metadata["x-request-id"]
    assert len(calls) == PAGES[kind]


@pytest.mark.parametrize("kind", ["empty pages", "the same token"])
def test_an_export_whose_listing_would_not_end_raises_the_alarm(
    runner: ReadableRunner, cli_live: Live, tap: Tap, tmp_path: Path, kind: str
) -> None:
    token = _tokens(kind)
    index = itertools.count()

    def answer(request: Any) -> transparency_service_pb2.ListEntriesResponse:
        entries = [] if kind == "empty pages" else [transparency_pb2.LoggedEntry(index=next(index))]
        return transparency_service_pb2.ListEntriesResponse(entries=entries, next_page_token=token())

    tap.answer("ListEntries", answer)

    exported = invoke(runner, cli_live, "audit", "export", str(tmp_path / "log.jsonl"), via=tap)

    assert exported.exit_code == 2, exported.output
    assert [line for line in exported.stderr.splitlines() if line.startswith("ALERT: ")]
    assert len(tap.calls_of("ListEntries")) == PAGES[kind]
