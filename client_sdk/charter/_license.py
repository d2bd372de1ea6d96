"""The ``license(...)`` block shared by `Client`, `AsyncClient` and the offline authorizer.

Entering authorizes; a denial raises `LicenseDenied` and the body never runs. A clean exit records
the use; an exception in the body records nothing and propagates unchanged.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from charter.decisions import Decision, LicenseDenied
from charter.terms import Obligations
from charter.v1 import envelope_pb2

__all__ = ["License", "ReceiptJournal", "async_license_block", "license_block"]


class License:
    """A use that was allowed, inside a ``license(...)`` block.

    Attributes:
        decision: The allowing decision.
    """

    __slots__ = ("_used", "decision")

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self._used = False

    @property
    def receipt(self) -> envelope_pb2.Envelope | None:
        """The signed decision receipt (None for a decision made offline)."""
        return self.decision.receipt

    @property
    def obligations(self) -> dict[str, Obligations]:
        """What the use owes, by character id: attribution, watermark, revenue share, fee."""
        return self.decision.obligations

    @property
    def used(self) -> bool:
        """Whether the block ended cleanly and the use was recorded."""
        return self._used

    def __repr__(self) -> str:
        return f"License(receipt_id={self.decision.receipt_id!r}, used={self._used})"


class ReceiptJournal:
    """The uses that ``license(...)`` blocks completed, newest last; thread-safe and bounded.

    Until usage reporting exists, a clean exit from a ``license(...)`` block appends its
    `License` here; a backend drains it to keep its own record of what it rendered.

    Args:
        capacity: How many uses to keep; the oldest are dropped beyond it.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._items: deque[License] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def record(self, used: License) -> None:
        """Append one completed use."""
        with self._lock:
            self._items.append(used)

    def drain(self) -> list[License]:
        """Remove and return every recorded use, oldest first."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
        return items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def _allowed(decision: Decision) -> License:
    if not decision.allowed:
        raise LicenseDenied(decision)
    return License(decision)


@contextlib.contextmanager
def license_block(decide: Callable[[], Decision], record: Callable[[License], None]) -> Iterator[License]:
    """Authorize with ``decide()``; run the body; on a clean exit mark the use and ``record`` it."""
    granted = _allowed(decide())
    yield granted  # an exception in the body propagates from here and skips the recording
    granted._used = True
    record(granted)


@contextlib.asynccontextmanager
async def async_license_block(
    decide: Callable[[], Awaitable[Decision]], record: Callable[[License], None]
) -> AsyncIterator[License]:
    """The asyncio form of `license_block`."""
    granted = _allowed(await decide())
    yield granted
    granted._used = True
    record(granted)
