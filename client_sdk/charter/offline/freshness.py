"""How old what the offline authorizer decides with is, measured on two clocks.

Three things age: the revocation view (since its last heartbeat at the log's head), the key set
(since it was last fetched) and the registry snapshot (since the last heartbeat at which it was
current). Each is stamped when it is confirmed with the time of the authorizer's ``clock`` (the
wall clock, which also times validity windows and terms) and of its monotonic clock (`Stamp`). It
may be decided with only while **both** clocks say it is within its bound: a wall clock stepped
back never stretches a bound (the monotonic clock does not go back), and one stepped forward makes
it stale sooner (fail closed). A stamp taken from a cache file has no monotonic time of its own: it
is given the one its age on the wall clock implies, and one later than the wall clock's now (a
clock stepped back since the file was written, or a file from elsewhere) is never fresh.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

NOT_CURRENT: Final = float("-inf")
"""The monotonic time of a stamp that is never fresh: no bound from it is in the future."""


@dataclass(frozen=True, slots=True)
class Stamp:
    """When something was confirmed, on the wall clock and on the monotonic clock.

    Attributes:
        wall: The wall clock's time (timezone-aware), as kept in the cache directory.
        monotonic: The monotonic clock's time in seconds (`NOT_CURRENT` for a kept stamp later
            than the wall clock's now).
    """

    wall: datetime
    monotonic: float

    @staticmethod
    def now(clock: Callable[[], datetime], monotonic: Callable[[], float]) -> Stamp:
        """Now, on both clocks."""
        return Stamp(clock(), monotonic())

    @staticmethod
    def kept(wall: datetime, clock: Callable[[], datetime], monotonic: Callable[[], float]) -> Stamp:
        """A stamp of ``wall`` taken from a cache file: on the monotonic clock as old as it is on
        the wall clock, and never fresh when it is later than the wall clock's now."""
        age = (clock() - wall).total_seconds()
        return Stamp(wall, monotonic() - age if age >= 0 else NOT_CURRENT)

    def until(self, bound: timedelta) -> tuple[datetime, float]:
        """The last moment it is fresh with ``bound``: (on the wall clock, on the monotonic clock)."""
        return self.wall + bound, self.monotonic + bound.total_seconds()

    def fresh(self, bound: timedelta, now: datetime, monotonic_now: float) -> bool:
        """Whether it is within ``bound`` at ``now`` on both clocks, and not later than ``now`` (a
        wall clock stepped back behind it)."""
        wall_until, monotonic_until = self.until(bound)
        return self.wall <= now <= wall_until and monotonic_now <= monotonic_until
