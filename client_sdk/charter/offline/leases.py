"""Quota leases an offline authorizer spends: blocks of uses of a grant with a quota or a cap,
leased from Charter (``LeaseQuota``), spent one per allowed decision under a lock, renewed in the
background before they run out or expire (``RenewQuotaLease``), and given back on close, the
unspent part returning to the quotas (``ReturnQuotaLease``).

A decision never waits for Charter here: with no lease to spend (none yet, used up, about to
expire, or refused) the decision goes to the server, which counts it as it counts any, and a lease
is asked for in the background. So the uses allowed never exceed a quota: the server counts every
leased use at once against every quota and the cap, whether or not it is ever spent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

from charter.errors import CharterError, FailedPreconditionError, ResourceExhaustedError
from charter.offline.background import TICK_SECONDS, log, seconds_of

if TYPE_CHECKING:
    from charter.client import Client

MAX_LEASE_USES: Final = 10_000
"""The most uses one quota lease may take (as ``LeaseQuota`` allows)."""
_MARGIN: Final = timedelta(seconds=2)
"""A lease is not spent this close to its expiry (the server allows some skew; this SDK allows none)."""
_COOL_DOWN_SECONDS: Final = 1.0
"""How long a refused or failed lease is not asked for again (decisions go to the server meanwhile)."""
_CALL_SECONDS: Final = 2.0
"""The deadline of a lease call: one short write on the server; a call that takes longer is tried
again later, and `close` never waits long on an unreachable server."""


@dataclass(slots=True)
class _Lease:
    lease_id: str
    uses: int
    spent: int
    expire_time: datetime
    # `expire_time` on the monotonic clock, as far off as Charter's answer put it on the clock (a
    # wall clock stepped back since does not let the lease be spent longer).
    monotonic_expiry: float


def check_lease_options(uses: int, ttl: timedelta) -> None:
    """Raise unless ``uses`` is a number of uses to lease at a time and ``ttl`` a time to live.

    Raises:
        ValueError: ``uses`` is not an int from 1 to `MAX_LEASE_USES`, or ``ttl`` is not positive.
        TypeError: ``ttl`` is not a ``timedelta``.
    """
    seconds_of(ttl, "lease_ttl")
    if type(uses) is not int or not 1 <= uses <= MAX_LEASE_USES:
        raise ValueError(f"lease_uses must be an int from 1 to {MAX_LEASE_USES}")


class QuotaLeases:
    """The leases of one authorizer, per (character, grant); see the module documentation.

    Args:
        client: The client (a generator key).
        clock: The authorizer's clock.
        monotonic: The authorizer's monotonic clock: a lease is spent only while both say it has
            not expired (`charter.offline.freshness`).
        block: How many uses to lease (or add) at a time; halved while Charter refuses a block,
            down to one.
        ttl: How long a lease may be spent (Charter shortens it to the end of the quota's day or
            month).
    """

    def __init__(
        self,
        client: Client,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float],
        *,
        block: int,
        ttl: timedelta,
    ) -> None:
        self._client = client
        self._clock = clock
        self._monotonic = monotonic
        self._block = block
        self._ttl = ttl
        self._lock = threading.Lock()
        self._open: dict[tuple[str, str], _Lease] = {}
        self._blocks: dict[tuple[str, str], int] = {}
        self._wanted: set[tuple[str, str]] = set()
        self._resting: dict[tuple[str, str], float] = {}  # key -> time.monotonic() to try again at
        self.wanted = threading.Event()
        """Set when a lease should be asked for or renewed (the background thread waits on it)."""

    def spend(self, character_id: str, grant_id: str, now: datetime) -> str:
        """Spend one use of the grant's lease: its id, or "" when there is none to spend now."""
        key = (character_id, grant_id)
        with self._lock:
            lease = self._open.get(key)
            if lease is not None and lease.spent < lease.uses and self._spendable(lease, now):
                lease.spent += 1
                left = lease.uses - lease.spent
                if left * 4 <= self._blocks.get(key, self._block) or lease.expire_time - now <= self._ttl / 4:
                    self._want(key)
                return lease.lease_id
            self._want(key)
            return ""

    def refund(self, character_id: str, grant_id: str, lease_id: str) -> None:
        """Give back a use spent for a decision that was not allowed after all (its record is never
        reported)."""
        with self._lock:
            lease = self._open.get((character_id, grant_id))
            if lease is not None and lease.lease_id == lease_id and lease.spent > 0:
                lease.spent -= 1

    def spender(self, leased: dict[str, tuple[str, str]], now: datetime) -> Callable[[str, str], bool]:
        """A ``spend`` for `decide_offline` in one request: spends a use of a character's grant's
        lease and remembers it in ``leased`` (character → (grant, lease))."""

        def spend(character_id: str, grant_id: str) -> bool:
            lease_id = self.spend(character_id, grant_id, now)
            if lease_id:
                leased[character_id] = (grant_id, lease_id)
            return bool(lease_id)

        return spend

    def refund_all(self, leased: dict[str, tuple[str, str]]) -> None:
        """`refund` every use a request spent (it was denied, or goes to the server)."""
        for character_id, (grant_id, lease_id) in leased.items():
            self.refund(character_id, grant_id, lease_id)

    def run(self, stopping: threading.Event) -> None:
        """The background thread: lease and renew what is asked for, until ``stopping``."""
        while not stopping.is_set():
            self.wanted.wait(TICK_SECONDS)
            if stopping.is_set():
                return
            try:
                self.run_once()
            except Exception:  # a bug must not end the thread: decisions just go to the server
                log.exception("charter.offline: the quota lease thread failed")

    def open_leases(self) -> dict[tuple[str, str], tuple[str, int, int]]:
        """(character, grant) → (lease id, uses leased, uses spent), for inspection."""
        with self._lock:
            return {key: (lease.lease_id, lease.uses, lease.spent) for key, lease in self._open.items()}

    def _want(self, key: tuple[str, str]) -> None:
        if key not in self._wanted and self._resting.get(key, 0.0) <= time.monotonic():
            self._wanted.add(key)
            self.wanted.set()

    def run_once(self) -> None:
        """Lease or renew what was asked for (the background thread; each call bounded by the
        client's deadline)."""
        with self._lock:
            wanted, self._wanted = self._wanted, set()
            self.wanted.clear()
        for key in sorted(wanted):
            try:
                self._get(key)
            except ResourceExhaustedError:
                block = self._blocks.get(key, self._block)
                if block > 1:
                    self._blocks[key] = block // 2  # fewer uses are left: a smaller block next time
                self._rest(key)
            except FailedPreconditionError as error:  # the grant is not live, or the lease closed
                log.warning("charter.offline: a quota lease was refused (%s)", error.reason)
                with self._lock:
                    self._open.pop(key, None)
                self._rest(key)
            except CharterError as error:
                log.warning("charter.offline: leasing quota failed (%s)", error.code.name)
                self._rest(key)

    def _get(self, key: tuple[str, str]) -> None:
        character_id, grant_id = key
        block = self._blocks.get(key, self._block)
        ttl = self._ttl.total_seconds()
        with self._lock:
            lease = self._open.get(key)
            current = lease is not None and self._spendable(lease, self._clock())
        if lease is None or not current:
            # None yet, or expired: Charter reclaims what was not reported; start a new one.
            got = self._client.lease_quota(character_id, grant_id, uses=block, ttl=ttl, timeout=_CALL_SECONDS)
            expire_time = got.expire_time.ToDatetime(tzinfo=UTC)
            fresh = _Lease(got.lease_id, got.uses, 0, expire_time, self._monotonic_expiry(expire_time))
            with self._lock:
                self._open[key] = fresh
            return
        got = self._client.renew_quota_lease(lease.lease_id, add_uses=block, ttl=ttl, timeout=_CALL_SECONDS)
        expire_time = got.expire_time.ToDatetime(tzinfo=UTC)
        monotonic_expiry = self._monotonic_expiry(expire_time)
        with self._lock:
            lease.uses, lease.expire_time, lease.monotonic_expiry = got.uses, expire_time, monotonic_expiry

    def _monotonic_expiry(self, expire_time: datetime) -> float:
        """When a lease Charter just answered with ``expire_time`` expires on the monotonic clock."""
        return self._monotonic() + (expire_time - self._clock()).total_seconds()

    def _spendable(self, lease: _Lease, now: datetime) -> bool:
        """Whether the lease may be spent at ``now``: short of its expiry by `_MARGIN`, on the clock
        and on the monotonic clock."""
        margin = _MARGIN.total_seconds()
        return now < lease.expire_time - _MARGIN and self._monotonic() < lease.monotonic_expiry - margin

    def _rest(self, key: tuple[str, str]) -> None:
        self._resting[key] = time.monotonic() + _COOL_DOWN_SECONDS

    def close(self) -> None:
        """Give back every open lease's unspent uses (the background thread has stopped)."""
        with self._lock:
            leases, self._open = list(self._open.values()), {}
        now = self._clock()
        for lease in leases:
            if now >= lease.expire_time:
                continue  # Charter reclaims it at its report deadline
            try:
                self._client.return_quota_lease(lease.lease_id, spent_uses=lease.spent, timeout=_CALL_SECONDS)
            except CharterError as error:
                log.warning("charter.offline: returning a quota lease failed (%s)", error.code.name)
