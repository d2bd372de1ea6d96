"""The revocation stream: the log's backlog after a sequence number, then live events, with heartbeats.

The log is a table with sequence numbers handed out under a counter row lock, so what is committed is
always a contiguous prefix 1..head: a reader never sees event n+1 without event n. That makes
"everything after ``last``" a correct, gap-free query for every watcher.

Live events are found by polling, because other server processes append to the same database: one
poller thread per process (started when the first watcher arrives, gone when the last one leaves)
asks for events after the newest one it knows, keeps the recent ones in memory and wakes every
watcher waiting on a condition. Writers in this process call ``notify()`` after committing, so
in-process watchers hear of a change at once instead of at the next poll. A watcher that has
fallen behind the in-memory window reads the log itself, one page per short read transaction; no
transaction is ever held open across a ``yield``.

A heartbeat reads the head of the log in its own transaction and is sent only after every event up
to that head, so "I have seen every event up to the heartbeat's sequence" holds for the watcher; its
time is taken *before* that read, so a watcher that is current is current as of that time. When the
database cannot be read, the stream ends with a retryable error rather than sending a heartbeat it
cannot vouch for: an offline authorizer then grows stale and fails closed, as it should.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator

import structlog

from charter_server.domain.clock import Clock
from charter_server.domain.errors import InvalidArgument, ShuttingDown, StorageUnavailable
from charter_server.domain.models import Heartbeat, RevocationEvent
from charter_server.storage.database import Database

log = structlog.get_logger(__name__)

WatchItem = RevocationEvent | Heartbeat

PAGE_SIZE = 500
"""Events read per short transaction, for a backlog and for the poller."""
RECENT_EVENTS = 4096
"""Events the poller keeps in memory for watchers that are nearly current."""
ACTIVITY_CHECK_SECONDS = 0.5
"""The longest a waiting watcher goes without checking that its client is still there."""


class RevocationFeed:
    """Streams the revocation log to any number of watchers in this process."""

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
        self._heartbeat_seconds = heartbeat_seconds
        self._poll_seconds = poll_seconds
        # One condition guards the poller's state and wakes watchers when it changes.
        self._changed = threading.Condition()
        self._stopped = False
        self._watchers = 0
        self._poller: threading.Thread | None = None
        self._wake = threading.Event()
        # The newest sequence number the poller knows (None until its first read), and the events
        # just before it, oldest first and contiguous.
        self._head: int | None = None
        self._recent: deque[RevocationEvent] = deque(maxlen=RECENT_EVENTS)

    @property
    def watchers(self) -> int:
        """How many streams are open."""
        with self._changed:
            return self._watchers

    def notify(self) -> None:
        """Something was appended to the log and committed: look now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """End every open stream (with a retryable ``ShuttingDown``) and refuse new ones."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
            poller = self._poller
        self._wake.set()
        # The poller leaves at its next turn; wait briefly, never for a database call that hangs.
        if poller is not None and poller is not threading.current_thread():
            poller.join(timeout=1)

    def watch(self, since: int, *, is_active: Callable[[], bool]) -> Iterator[WatchItem]:
        """The events after ``since``, then live events, with a heartbeat after the backlog and
        every ``heartbeat_seconds``; ends when ``is_active()`` turns false.

        Raises:
            InvalidArgument: ``since`` is negative or beyond the newest sequence number (a log
                this server never wrote; starting there could skip events).
            ShuttingDown: The feed is stopped, now or later while streaming.
            StorageUnavailable: The log cannot be read (also while streaming: no heartbeat is
                sent that the server cannot vouch for).
        """
        if since < 0:
            raise InvalidArgument.one("since_sequence", "must be 0 or more")
        if since > 0 and since > (head := self._read_head()):
            raise InvalidArgument.one(
                "since_sequence", f"is beyond the newest sequence number of the log ({head}); watch from 0"
            )
        if self._stopped:
            raise ShuttingDown("the server is shutting down; reconnect to another replica")
        return self._stream(since, is_active)

    # The watcher ---------------------------------------------------------------------------------

    def _stream(self, since: int, is_active: Callable[[], bool]) -> Iterator[WatchItem]:
        self._register()
        try:
            last = since
            for event in self._read_after(last, None, is_active):
                yield event
                last = event.sequence
            beat = yield from self._heartbeat(last)
            last = beat.sequence
            next_beat = time.monotonic() + self._heartbeat_seconds
            while True:
                known = self._wait(last, next_beat, is_active)
                if self._stopped:
                    raise ShuttingDown("the server is shutting down; reconnect to another replica")
                if not is_active():
                    return
                if known > last:
                    for event in self._deliver(last, known, is_active):
                        yield event
                        last = event.sequence
                if time.monotonic() >= next_beat:
                    beat = yield from self._heartbeat(last)
                    last = beat.sequence
                    next_beat = time.monotonic() + self._heartbeat_seconds
        finally:
            self._unregister()

    def _wait(self, last: int, next_beat: float, is_active: Callable[[], bool]) -> int:
        """Wait for news after ``last``, the next heartbeat, a stop or a gone client; return the
        newest sequence number the poller knows."""
        with self._changed:
            while not self._stopped and (self._head is None or self._head <= last):
                remaining = next_beat - time.monotonic()
                if remaining <= 0 or not is_active():
                    break
                self._changed.wait(min(remaining, ACTIVITY_CHECK_SECONDS))
            return self._head if self._head is not None else last

    def _heartbeat(self, last: int) -> Generator[WatchItem, None, Heartbeat]:
        """Send every event up to the current head, then a heartbeat carrying it; return it."""
        now = self._clock.now()  # before the read: everything committed by then is in the head
        head = self._read_head()
        for event in self._deliver(last, head, lambda: True):
            yield event
            last = event.sequence
        if last < head:
            # Cut short by a stop (or, never expected, rows missing below the head): never vouch
            # for events the watcher has not seen.
            if self._stopped:
                raise ShuttingDown("the server is shutting down; reconnect to another replica")
            log.error("revocations.short_read", after=last, head=head)
            raise StorageUnavailable("the revocation log could not be read up to its head; reconnect")
        beat = Heartbeat(sequence=last, server_time=now)
        yield beat
        return beat

    def _deliver(self, last: int, upto: int, is_active: Callable[[], bool]) -> Iterator[RevocationEvent]:
        """The events after ``last`` up to ``upto``: from memory when the window covers them."""
        recent = self._recent_after(last, upto)
        if recent is not None:
            return iter(recent)
        return self._read_after(last, upto, is_active)

    def _recent_after(self, last: int, upto: int) -> list[RevocationEvent] | None:
        with self._changed:
            if not self._recent or self._recent[0].sequence > last + 1 or self._recent[-1].sequence < upto:
                return None
            start = last + 1 - self._recent[0].sequence
            return list(itertools.islice(self._recent, start, start + (upto - last)))

    def _read_after(self, last: int, upto: int | None, is_active: Callable[[], bool]) -> Iterator[RevocationEvent]:
        """The events after ``last`` (up to ``upto``, or to the end), a page per short transaction."""
        while upto is None or last < upto:
            limit = PAGE_SIZE if upto is None else min(PAGE_SIZE, upto - last)
            with self._db.uow() as uow:
                page = uow.revocations.since(last, limit)
            for event in page:
                if event.sequence != last + 1:
                    log.error("revocations.gap", after=last, found=event.sequence)
                    raise StorageUnavailable("the revocation log is not contiguous here; reconnect")
                yield event
                last = event.sequence
            if len(page) < limit or not is_active() or self._stopped:
                return

    def _read_head(self) -> int:
        with self._db.uow() as uow:
            return uow.revocations.head()

    # The poller ----------------------------------------------------------------------------------

    def _register(self) -> None:
        with self._changed:
            if self._stopped:
                raise ShuttingDown("the server is shutting down; reconnect to another replica")
            self._watchers += 1
            if self._poller is None:
                self._poller = threading.Thread(target=self._poll_loop, name="charter-revocations", daemon=True)
                self._poller.start()

    def _unregister(self) -> None:
        with self._changed:
            self._watchers -= 1
        self._wake.set()  # an idle poller leaves at once

    def _poll_loop(self) -> None:
        failures = 0
        first = True
        while True:
            if not first:
                # Back off while the database is failing, up to a few seconds between tries.
                self._wake.wait(self._poll_seconds * min(2**failures, 16))
            first = False
            self._wake.clear()
            with self._changed:
                if self._stopped or self._watchers == 0:
                    # Forget the window: a later poller starts from the head it reads then.
                    self._poller = None
                    self._head = None
                    self._recent.clear()
                    return
            try:
                self._poll()
            except Exception as error:  # the poller must survive a database outage
                failures += 1
                log.warning("revocations.poll_failed", error_type=type(error).__name__, error=str(error))
            else:
                failures = 0

    def _poll(self) -> None:
        """Read what was committed since the last poll and wake the watchers if anything was."""
        while True:
            with self._changed:
                known = self._head
            with self._db.uow() as uow:
                if known is None:
                    head, page = uow.revocations.head(), []
                else:
                    head, page = known, uow.revocations.since(known, PAGE_SIZE)
            with self._changed:
                if known is None:
                    self._head = head
                for event in page:
                    assert self._head is not None
                    if event.sequence != self._head + 1:
                        log.error("revocations.gap", after=self._head, found=event.sequence)
                        break
                    self._recent.append(event)
                    self._head = event.sequence
                if known is None or page:
                    self._changed.notify_all()
            if len(page) < PAGE_SIZE:
                return
