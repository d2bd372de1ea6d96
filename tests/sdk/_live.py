"""Real Charter servers for the SDK and CLI tests, and a fresh party on one.

A server is built by the production composition root (`build_server`) over a database (SQLite,
and PostgreSQL when reachable, for the usage tests; a SQLite file of their own for the other SDK
tests, see `conftest`), on 127.0.0.1 with a free port and the session's movable clock. Every
party is made through the SDK as staff, with fresh names (`unique`), so the tests never depend on
each other's rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import charter
import pytest
import structlog
from charter import AsyncClient
from charter.v1 import api_key_pb2, terms_pb2
from charter_server.app import CharterServer, build_server
from charter_server.config import Settings

IMAGE = terms_pb2.USE_TYPE_IMAGE_GENERATION
TEEN = terms_pb2.CONTENT_RATING_TEEN

TERMS = terms_pb2.Terms(
    permitted_use_types=[IMAGE],
    max_content_rating=TEEN,
    revenue_share_bps=1500,
    per_use_fee=terms_pb2.Money(currency_code="USD", minor_units=5),
)
"""Image generation up to TEEN; 15 % of the attributed revenue and 5 US cents per use."""

USE = {"use_type": IMAGE, "content_rating": TEEN}
"""The use context every test authorizes: allowed by `TERMS`."""


@dataclass(frozen=True)
class Live:
    """A running server and an admin key on it."""

    server: CharterServer
    target: str
    admin: str
    """The admin key's secret."""
    admin_key_id: str

    def revocation_head(self) -> int:
        """The newest sequence number of the server's revocation log."""
        with self.server.db.uow() as uow:
            return int(uow.revocations.head())


def start(database_url: str, clock: Any, **settings: Any) -> CharterServer:
    """A started server over the database (with these `Settings` changed); the caller stops it."""
    # A short authorization lease: every revocation waits it out before returning.
    # A free port unless the test restarts a server where it was (``listen``).
    # The log on the server's threads unless asked for (each log process costs 1-3 s of CPU to
    # start; tests/server/test_log_process.py and the session's server run it as in production).
    options: dict[str, Any] = {
        "authorization_lease_seconds": 0.05,
        "listen": "127.0.0.1:0",
        "log_process": False,
        **settings,
    }
    built = build_server(
        Settings(
            database_url=database_url,
            migrate=True,
            log_format="json",
            shutdown_grace_seconds=1.0,
            **options,
        ),
        clock=clock,
    )
    built.start()
    return built


def serve(database_url: str, clock: Any, **settings: Any) -> Iterator[Live]:
    """Yields a live server (with these `Settings` changed) and a fresh admin key; stops it afterwards.

    While it runs, the server's structlog output goes to the process's own stderr (which pytest
    captures) instead of whatever `sys.stdout` is at the time: `typer.testing.CliRunner` swaps
    that for the command's output, and the in-process server's log lines would end up in it.
    """
    with _server_logs_to_stderr():
        built = start(database_url, clock, **settings)
        try:
            admin = built.services.access.create_bootstrap_admin("tests admin")
            yield Live(built, f"127.0.0.1:{built.port}", admin.secret, admin.api_key.id)
        finally:
            built.stop(grace=1.0)


@contextlib.contextmanager
def _server_logs_to_stderr() -> Iterator[None]:
    config = structlog.get_config()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.__stderr__))
    try:
        yield
    finally:
        structlog.configure(**config)


@dataclass(frozen=True)
class Party:
    """A fresh rights holder with opted-in characters, and a licensee granted all of them."""

    rights_holder_id: str
    licensee_id: str
    generator: str
    """The secret of a generator key of the licensee."""
    character_ids: tuple[str, ...]


def new_party(admin: charter.Client, *, characters: int = 2, terms: terms_pb2.Terms = TERMS) -> Party:
    """A rights holder with `characters` characters opted in under `terms`, each granted for 30 days
    to a new licensee, and a generator key of that licensee."""
    marker = uuid.uuid4().hex[:12]
    holder = admin.create_rights_holder(display_name=f"Studio {marker}", contact_email="rights@studio.example")
    licensee = admin.create_licensee(
        display_name=f"App {marker}", contact_email="ops@app.example", platform="usage-app"
    )
    key = admin.create_api_key(
        display_name=f"generator {marker}", role=api_key_pb2.ROLE_GENERATOR, licensee_id=licensee.id
    )
    expire = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    ids = []
    for number in range(characters):
        character = admin.create_character(rights_holder_id=holder.id, canonical_name=f"Usage {marker} {number}")
        admin.opt_in(character.id, terms)
        admin.issue_grant(character_id=character.id, licensee_id=licensee.id, expire_time=expire)
        ids.append(character.id)
    return Party(holder.id, licensee.id, key.secret, tuple(ids))


# Fixtures: imported by the test modules that use them, so each module gets its own server.


@pytest.fixture(scope="module")
def live(database_url: str, clock: Any) -> Iterator[Live]:
    """A real server of this module over the session's database and clock."""
    yield from serve(database_url, clock)


@pytest.fixture(scope="module")
def admin(live: Live) -> Iterator[charter.Client]:
    """A client with the server's admin key."""
    with charter.Client(live.target, api_key=live.admin) as client:
        yield client


@pytest.fixture
def party(admin: charter.Client) -> Party:
    """A fresh rights holder, licensee, characters and grants of this test."""
    return new_party(admin)


def unique(prefix: str = "") -> str:
    """A name no other test uses: the prefix and 12 random letters (letters, so screening matches it
    as a word)."""
    letters = "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:12])
    return f"{prefix}{letters.capitalize()}"


_KATAKANA = "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワ"


def unique_kana(prefix: str = "") -> str:
    """A Japanese name no other test uses: the prefix and 8 random katakana."""
    digits = uuid.uuid4().int
    letters = []
    for _ in range(8):
        digits, index = divmod(digits, len(_KATAKANA))
        letters.append(_KATAKANA[index])
    return prefix + "".join(letters)


_T = TypeVar("_T")


def run_async(target: str, api_key: str, scenario: Callable[[AsyncClient], Awaitable[_T]], **options: Any) -> _T:
    """Runs a scenario with an `AsyncClient` created inside the event loop (grpc.aio channels belong to
    one loop); `options` go to the client."""

    async def main() -> _T:
        async with AsyncClient(target, api_key=api_key, **options) as client:
            return await scenario(client)

    return asyncio.run(main())
