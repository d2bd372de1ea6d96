"""The revocation stream's source: the log, read by one poller per process and fanned out to
every watcher, and who may see which event.

The log is a table with sequence numbers handed out under a counter row lock, so what is committed
is always a contiguous prefix 1..head: a reader never sees event n+1 without event n. That makes
"everything after ``last``" a correct, gap-free query for every watcher.

Live events are found by polling, because other server processes append to the same database: one
poller thread per process (started when the first watcher arrives, gone when the last one leaves)
asks for the events after the newest one it knows, adds who may see each one, keeps the recent ones
in memory and tells every listener. Writers in this process call `RevocationFeed.notify` after
committing, so watchers hear of a change at once instead of at the next poll. After a read that
reached the end of the log, the poller records a *confirmation*: the head it found and the time
taken just *before* that read, so everything committed by then is at or below that head.

Watchers (the transport's streams) never read the database for live events or heartbeats, so a
thousand of them cost one poll. A heartbeat carries the latest confirmation and is sent only after
every event up to its head, so "I have seen every event up to the heartbeat's sequence, as of its
time" holds for the watcher; it also carries the key set's version read with that head, so a
watcher that verifies grants with an older key set (a signing key revoked since) knows to fetch it
again. A watcher that starts behind the in-memory window reads its backlog from the log, a page
per short read transaction. When the poller cannot confirm (the database
cannot be read), the confirmation ages, and a stream ends with a retryable error rather than send a
heartbeat it cannot vouch for: an offline authorizer then grows stale and fails closed, as it
should.

**Who sees what.** Staff (admin and auditor keys) see every event. A rights-holder key sees the
events of its own characters and of their grants. A generator key sees the events of its own
licensee's grants and of the characters its licensee holds grants for, without the free-text
reason (which staff and the owning rights holder wrote for themselves). Registry events
(``KIND_REGISTRY_CHANGED``: a character's screening entry changed) go only to watchers that ask
for them, each of every character for a generator. A heartbeat's sequence counts every event,
seen or not: the watcher has seen all those meant for it.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from charter_server.domain.clock import Clock
from charter_server.domain.errors import InvalidArgument, ShuttingDown, StorageUnavailable
from charter_server.domain.events import DomainEvent, RevocationAppended
from charter_server.domain.models import Principal, RevocationEvent, RevocationKind, Role
from charter_server.services.keys import ring_version
from charter_server.storage.database import Database

log = structlog.get_logger(__name__)

PAGE_SIZE = 500
"""Events read per short transaction, for a backlog and for the poller."""
RECENT_EVENTS = 4096
"""Events the poller keeps in memory for watchers that are nearly current."""


@dataclass(frozen=True, slots=True)
class Confirmation:
    """Everything committed to the log by ``server_time`` has a sequence number up to ``head``, and
    the key set was at ``key_set_version`` (read in the same transaction)."""

    head: int
    server_time: datetime
    at: float  # time.monotonic() when the confirming read began
    key_set_version: str


Visibility = Callable[[RevocationEvent], RevocationEvent | None]


def visible_to(principal: Principal, *, registry: bool = False) -> Visibility:
    """What ``principal`` may see of an event (None: nothing); see the module docstring.
    ``KIND_REGISTRY_CHANGED`` events only with ``registry``: of every character for staff and
    generators (the registry is what a generator screens with), of its own for a rights holder."""
    seen = _visible_to(principal)
    if not registry:
        return lambda event: None if event.kind is _REGISTRY else seen(event)
    if principal.role is Role.GENERATOR and principal.licensee_id:
        return lambda event: event if event.kind is _REGISTRY else seen(event)
    return seen


_REGISTRY = RevocationKind.REGISTRY_CHANGED


def _visible_to(principal: Principal) -> Visibility:
    if principal.role in (Role.ADMIN, Role.AUDITOR):
        return lambda event: event
    if principal.role is Role.RIGHTS_HOLDER:
        holder = principal.rights_holder_id or ""
        return lambda event: event if holder and event.rights_holder_id == holder else None
    licensee = principal.licensee_id or ""

    def generator(event: RevocationEvent) -> RevocationEvent | None:
        mine = event.licensee_id == licensee if event.grant_id else licensee in event.licensee_ids
        if not licensee or not mine:
            return None
        return dataclasses.replace(event, reason="") if event.reason else event

    return generator


class RevocationFeed:
    """Reads the revocation log for every watcher of this process (see the module docstring).

    Args:
        db: The database.
        clock: The clock whose time heartbeats carry.
        heartbeat_seconds: How often a stream sends a heartbeat.
        poll_seconds: How often the poller reads the log while anyone watches.
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        heartbeat_seconds: float = 5.0,
        poll_seconds: float = 0.25,
    ) -> None:
        self._db = db
        self._clock = clock
        self.heartbeat_seconds = heartbeat_seconds
        self._poll_seconds = poll_seconds
        self._lock = threading.Lock()
        self._stopped = False
        self._listeners: dict[int, Callable[[], None]] = {}
        self._numbers = itertools.count()
        self._poller: threading.Thread | None = None
        self._wake = threading.Event()
        # The newest sequence number the poller knows (None until its first read), the events just
        # before it (oldest first, contiguous) and its latest confirmation.
        self._head: int | None = None
        self._recent: deque[RevocationEvent] = deque(maxlen=RECENT_EVENTS)
        self._confirmed: Confirmation | None = None

    @property
    def watchers(self) -> int:
        """How many streams are listening."""
        with self._lock:
            return len(self._listeners)

    @property
    def stopped(self) -> bool:
        """Whether the feed was stopped (the server is shutting down)."""
        return self._stopped

    @property
    def poll_margin(self) -> float:
        """How late a poll may be (a slow read, a busy machine) before anyone worries."""
        return max(1.0, 4 * self._poll_seconds)

    @property
    def stale_after(self) -> float:
        """How old a confirmation may be before a stream stops vouching for the log."""
        return self.heartbeat_seconds + self.poll_margin

    def notify(self) -> None:
        """Something was appended to the log and committed: look now rather than at the next poll."""
        self._wake.set()

    def on_committed(self, events: Sequence[DomainEvent]) -> None:
        """The feed's subscriber to committed events (``storage.uow``): `notify` when one of them
        appended to the revocation log."""
        if any(isinstance(e, RevocationAppended) for e in events):
            self.notify()

    def stop(self) -> None:
        """Stop: every listener is told, and streams end with a retryable ``ShuttingDown``."""
        with self._lock:
            self._stopped = True
            poller = self._poller
            listeners = list(self._listeners.values())
        self._wake.set()
        for listener in listeners:
            listener()
        # The poller leaves at its next turn; wait briefly, never for a database call that hangs.
        if poller is not None and poller is not threading.current_thread():
            poller.join(timeout=1)

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` (from the poller's thread) whenever events arrive or the feed stops;
        returns the function that unsubscribes.

        Raises:
            ShuttingDown: The feed is stopped.
        """
        with self._lock:
            if self._stopped:
                raise ShuttingDown("the server is shutting down; reconnect to another replica")
            number = next(self._numbers)
            self._listeners[number] = listener
            if self._poller is None:
                self._poller = threading.Thread(target=self._poll_loop, name="charter-revocations", daemon=True)
                self._poller.start()

        def unsubscribe() -> None:
            with self._lock:
                self._listeners.pop(number, None)
            self._wake.set()  # an idle poller leaves at once

        return unsubscribe

    # What watchers read --------------------------------------------------------------------------

    def head(self) -> int | None:
        """The newest sequence number the poller knows, or None before its first read."""
        return self._head

    def confirmation(self) -> Confirmation | None:
        """The poller's latest confirmation, or None before its first."""
        return self._confirmed

    def is_stale(self, confirmation: Confirmation) -> bool:
        """Whether ``confirmation`` is too old to vouch for."""
        return time.monotonic() - confirmation.at > self.stale_after

    def recent_after(self, last: int, upto: int) -> list[RevocationEvent] | None:
        """The events after ``last`` up to ``upto`` from memory; None when the window misses them."""
        with self._lock:
            if not self._recent or self._recent[0].sequence > last + 1 or self._recent[-1].sequence < upto:
                return None
            start = last + 1 - self._recent[0].sequence
            return list(itertools.islice(self._recent, start, start + (upto - last)))

    def read_after(self, last: int, upto: int) -> list[RevocationEvent]:
        """One page of events after ``last`` up to ``upto`` from the log (blocking; on a thread).

        Raises:
            StorageUnavailable: The log cannot be read, or is not contiguous here.
        """
        limit = min(PAGE_SIZE, upto - last)
        if limit <= 0:
            return []
        with self._db.uow() as uow:
            page = uow.audience.with_audience(uow.revocations.since(last, limit))
        for expected, event in enumerate(page, start=last + 1):
            if event.sequence != expected:
                log.error("revocations.gap", after=expected - 1, found=event.sequence)
                raise StorageUnavailable("the revocation log is not contiguous here; reconnect")
        if len(page) < limit:
            log.error("revocations.short_read", after=last, head=upto)
            raise StorageUnavailable("the revocation log could not be read up to its head; reconnect")
        return page

    def check_since(self, since: int) -> None:
        """Refuse a starting point that is negative or beyond the log (blocking when it must read
        the head; on a thread).

        Raises:
            InvalidArgument: ``since`` is negative or beyond the newest sequence number (a log
                this server never wrote; starting there could skip events).
            StorageUnavailable: The head cannot be read.
        """
        if since < 0:
            raise InvalidArgument.one("since_sequence", "must be 0 or more")
        known = self._head
        if since == 0 or (known is not None and since <= known):
            return
        try:
            with self._db.uow() as uow:
                head = uow.revocations.head()
        except StorageUnavailable:
            raise
        except Exception as error:
            raise StorageUnavailable("the revocation log cannot be read; reconnect") from error
        if since > head:
            raise InvalidArgument.one(
                "since_sequence", f"is beyond the newest sequence number of the log ({head}); watch from 0"
            )

    # The poller ------------------------------------------------------------------------------------

    def _tell(self) -> None:
        with self._lock:
            listeners = list(self._listeners.values())
        for listener in listeners:
            listener()

    def _poll_loop(self) -> None:
        failures = 0
        first = True
        while True:
            if not first:
                # Back off while the database is failing, up to a few seconds between tries.
                self._wake.wait(self._poll_seconds * min(2**failures, 16))
            first = False
            self._wake.clear()
            with self._lock:
                if self._stopped or not self._listeners:
                    # Forget the window: a later poller starts from the head it reads then.
                    self._poller = None
                    self._head = None
                    self._confirmed = None
                    self._recent.clear()
                    return
            try:
                changed = self._poll()
            except Exception as error:  # the poller must survive a database outage
                failures += 1
                log.warning("revocations.poll_failed", error_type=type(error).__name__, error=str(error))
            else:
                failures = 0
                if changed:
                    self._tell()

    def _poll(self) -> bool:
        """Read what was committed since the last poll; confirm the head; True if anything moved."""
        server_time = self._clock.now()  # before the reads: everything committed by then is read
        started = time.monotonic()
        moved = False
        while True:
            known = self._head
            with self._db.uow() as uow:
                if known is None:
                    head, page = uow.revocations.head(), []
                else:
                    head, page = known, uow.audience.with_audience(uow.revocations.since(known, PAGE_SIZE))
                # A revoked signing key must reach offline verifiers as fast as a revoked grant: the
                # heartbeats carry the key set's version as of the same time as the log's head.
                key_set_version = ring_version(uow.signing_keys.states())
            with self._lock:
                if known is None:
                    self._head = head
                    moved = True
                for event in page:
                    assert self._head is not None
                    if event.sequence != self._head + 1:
                        log.error("revocations.gap", after=self._head, found=event.sequence)
                        raise StorageUnavailable("the revocation log is not contiguous; reading again")
                    self._recent.append(event)
                    self._head = event.sequence
                    moved = True
                if len(page) < PAGE_SIZE:
                    assert self._head is not None
                    self._confirmed = Confirmation(self._head, server_time, started, key_set_version)
                    return moved
