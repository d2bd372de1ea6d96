"""The ``WatchRevocations`` streams of this process, as coroutines on the event loop.

Every stream listens to the one `RevocationFeed` of the process through one `Broadcast`: when the
poller has news, one hop to the event loop wakes every stream, and each sends what its caller may
see (`charter_server.services.revocations.visible_to`). Live events come from the feed's memory
and heartbeats from its latest confirmation, so an open stream costs no thread and no database
read; only a stream that starts behind the feed's window reads its backlog, a page at a time on a
worker thread, a few streams at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from charter_server.api.broadcast import Broadcast
from charter_server.domain.errors import ShuttingDown, StorageUnavailable
from charter_server.domain.models import Heartbeat, Principal, RevocationEvent, Skipped
from charter_server.services.revocations import Confirmation, RevocationFeed, Visibility, visible_to

T = TypeVar("T")

BACKLOG_READERS = 4
"""Streams reading their backlog from the database at once; the others wait their turn."""

_RECHECK_SECONDS = 0.05


class RevocationStreams:
    """Serves ``WatchRevocations`` from one feed; created and used on the event loop."""

    def __init__(self, feed: RevocationFeed, executor: Executor) -> None:
        self._feed = feed
        self._executor = executor
        self._broadcast: Broadcast | None = None
        self._readers: asyncio.Semaphore | None = None

    async def _blocking(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, contextvars.copy_context().run, function, *args)

    def _shared(self) -> tuple[Broadcast, asyncio.Semaphore]:
        if self._broadcast is None or self._readers is None:
            self._broadcast = Broadcast(asyncio.get_running_loop())
            self._readers = asyncio.Semaphore(BACKLOG_READERS)
        return self._broadcast, self._readers

    async def watch(
        self, since: int, principal: Principal, *, registry: bool = False
    ) -> AsyncIterator[RevocationEvent | Heartbeat | Skipped]:
        """The events after ``since`` that ``principal`` may see, then live ones, with heartbeats;
        the events left out are covered by a `Skipped` before the next event and at the end of
        every burst, so the stream is contiguous for the caller.

        Raises:
            InvalidArgument: ``since`` is negative or beyond the log.
            ShuttingDown: The server is draining (now or later).
            StorageUnavailable: The log cannot be read, or the feed could not confirm its head
                for too long.
        """
        feed = self._feed
        broadcast, readers = self._shared()
        await self._blocking(feed.check_since, since)
        unsubscribe = feed.subscribe(broadcast.notify_threadsafe)
        visible = visible_to(principal, registry=registry)
        try:
            # Never a first heartbeat behind where the caller resumes: this process's poller may not
            # have read as far as the replica the caller watched before, and a heartbeat behind its
            # view tells an offline authorizer that the log went backwards (a restored database).
            confirmation = await self._confirmation(broadcast, feed.stale_after, at_least=since)
            last = since
            async for event in self._events(last, confirmation.head, readers, visible):
                yield event
            last = confirmation.head
            yield Heartbeat(confirmation.head, confirmation.server_time, confirmation.key_set_version)
            next_beat = time.monotonic() + feed.heartbeat_seconds
            while True:
                if feed.stopped:
                    raise ShuttingDown("the server is shutting down; reconnect to another replica")
                head = feed.head()
                if head is not None and head > last:
                    async for event in self._events(last, head, readers, visible):
                        yield event
                    last = head
                    continue
                now = time.monotonic()
                if now < next_beat:
                    await broadcast.wait(next_beat - now)
                    continue
                confirmation = await self._confirmation(broadcast, feed.poll_margin)
                if confirmation.head > last:
                    async for event in self._events(last, confirmation.head, readers, visible):
                        yield event
                    last = confirmation.head
                yield Heartbeat(last, confirmation.server_time, confirmation.key_set_version)
                next_beat = time.monotonic() + feed.heartbeat_seconds
        finally:
            unsubscribe()

    async def _confirmation(self, broadcast: Broadcast, wait: float, *, at_least: int = 0) -> Confirmation:
        """A fresh confirmation of the log's head, at ``at_least`` or beyond. When the latest is
        missing, stale or short of it, the poller is woken and given up to ``wait`` seconds: a stall
        of the whole process (a long garbage collection, a starved machine) leaves it old until the
        poller runs again, and the event loop may run first; that is a late heartbeat, not a reason
        to end every stream."""
        feed = self._feed
        deadline = time.monotonic() + wait
        woken = False
        while True:
            if feed.stopped:
                raise ShuttingDown("the server is shutting down; reconnect to another replica")
            confirmation = feed.confirmation()
            if confirmation is not None and not feed.is_stale(confirmation) and confirmation.head >= at_least:
                return confirmation
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StorageUnavailable("the revocation log cannot be read; reconnect")
            if not woken:
                feed.notify()
                woken = True
            # A confirmation that moves nothing wakes no stream: look again shortly.
            await broadcast.wait(min(remaining, _RECHECK_SECONDS))

    async def _events(
        self, last: int, upto: int, readers: asyncio.Semaphore, visible: Visibility
    ) -> AsyncIterator[RevocationEvent | Skipped]:
        """The visible events after ``last`` up to ``upto`` (from memory, else read a page at a
        time), with a `Skipped` for every run of events left out."""
        skipped: int | None = None
        while last < upto:
            if self._feed.stopped:
                raise ShuttingDown("the server is shutting down; reconnect to another replica")
            page = self._feed.recent_after(last, upto)
            if page is None:
                async with readers:
                    page = await self._blocking(self._feed.read_after, last, upto)
            for event in page:
                shown = visible(event)
                if shown is None:
                    skipped = event.sequence
                    continue
                if skipped is not None:
                    yield Skipped(skipped)
                    skipped = None
                yield shown
            last = page[-1].sequence
        if skipped is not None:
            yield Skipped(skipped)
