"""`Broadcast`: wake every waiting coroutine at once, from the event loop or from another thread.

Waiting costs one future and, with a timeout, one timer handle: no task per waiter, so thousands
of open streams can wait on one broadcast cheaply.
"""

from __future__ import annotations

import asyncio


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Broadcast:
    """Waiters wait; `notify` wakes them all. Bound to the event loop it is created on."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiters: set[asyncio.Future[None]] = set()

    def notify(self) -> None:
        """Wake every waiter (on the event loop)."""
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            _wake(waiter)

    def notify_threadsafe(self) -> None:
        """Wake every waiter, from any thread."""
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.notify)

    async def wait(self, timeout: float | None = None) -> None:
        """Wait for the next `notify`, or ``timeout`` seconds."""
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiters.add(waiter)
        timer = self._loop.call_later(max(0.0, timeout), _wake, waiter) if timeout is not None else None
        try:
            await waiter
        finally:
            self._waiters.discard(waiter)
            if timer is not None:
                timer.cancel()
