"""The offline authorizer's view of the revocation log: which grants are revoked or suspended,
which characters staff suspended, which are not opted in (opted out or archived), the last
sequence applied and when the view was last current.

Written by the watcher thread only; read by decisions without a lock (an event's state is stored
before its sequence, so a reader that sees the sequence also sees the state).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Final

from charter.decisions import CharacterDecision
from charter.grants import GrantStatus
from charter.offline.freshness import Stamp
from charter.terms import DenyReason
from charter.v1 import grant_pb2

log = logging.getLogger("charter.offline")

_KIND_REVOKED: Final = grant_pb2.RevocationEvent.KIND_REVOKED
_KIND_SUSPENDED: Final = grant_pb2.RevocationEvent.KIND_SUSPENDED
_KIND_REINSTATED: Final = grant_pb2.RevocationEvent.KIND_REINSTATED
_KIND_CHARACTER_SUSPENDED: Final = grant_pb2.RevocationEvent.KIND_CHARACTER_SUSPENDED
_KIND_CHARACTER_REINSTATED: Final = grant_pb2.RevocationEvent.KIND_CHARACTER_REINSTATED
_KIND_CHARACTER_WITHDRAWN: Final = grant_pb2.RevocationEvent.KIND_CHARACTER_WITHDRAWN
_KIND_CHARACTER_ARCHIVED: Final = grant_pb2.RevocationEvent.KIND_CHARACTER_ARCHIVED
_KIND_CHARACTER_OPTED_IN: Final = grant_pb2.RevocationEvent.KIND_CHARACTER_OPTED_IN
_KIND_REGISTRY_CHANGED: Final = grant_pb2.RevocationEvent.KIND_REGISTRY_CHANGED
_ACTIVE: Final = GrantStatus.ACTIVE
_REVOKED: Final = GrantStatus.REVOKED
_SUSPENDED: Final = GrantStatus.SUSPENDED


class Resync(Exception):
    """The stream is not contiguous with the view (a gap): reopen it after the last sequence applied."""


class Rewound(Exception):
    """The log is behind the view (a database restored, a lagging replica): the view no longer
    matches it, so it is dropped and rebuilt from sequence 0 (`RevocationView.reset`)."""


class RevocationView:
    """Grant and character states as the revocation log tells them, with its position.

    Attributes:
        statuses: Grant id → ``REVOKED`` or ``SUSPENDED`` (active grants are absent).
        status_of: ``statuses.get``, made once (a decision passes it to `charter.decide`; making
            the bound method per decision cost about a fiftieth of a warm one): None is active.
        suspended: Character id → the denial to give (characters suspended by staff).
        withdrawn: Character ids opted out or archived (denied ``CHARACTER_NOT_OPTED_IN`` when
            not suspended, as the server denies them).
        sequence: The last sequence number applied (0 before any).
        fresh: When (on both clocks, `charter.offline.freshness`) the last heartbeat at which the
            view was current arrived; None when it is not current. Replaced whole, so a reader
            never sees one clock's time of one heartbeat with the other's of another.
        broken: Why the view can never be trusted again (an event kind unknown to this SDK).
        beats: Heartbeats at which the view was current (for the reconnect backoff).
        registry_head: The sequence of the last registry event (``KIND_REGISTRY_CHANGED``)
            applied: a registry snapshot of an older version is out of date.
    """

    def __init__(self, clock: Callable[[], datetime], monotonic: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._monotonic = monotonic
        self.statuses: dict[str, GrantStatus] = {}
        self.status_of: Callable[[str], GrantStatus | None] = self.statuses.get
        self.suspended: dict[str, CharacterDecision] = {}
        self.withdrawn: set[str] = set()
        self.sequence = 0
        self.fresh: Stamp | None = None
        self.broken = ""
        self.beats = 0
        self.registry_head = 0

    def restore(
        self,
        *,
        sequence: int,
        fresh_as_of: datetime,
        statuses: dict[str, GrantStatus],
        suspended: Iterable[str],
        withdrawn: Iterable[str],
    ) -> None:
        """Take what a cache kept (before the watcher starts): the stream resumes after ``sequence``.

        The kept view ages from ``fresh_as_of`` on the clock; one later than the clock's now (a
        clock stepped back since it was written, or a file from elsewhere) is stale from the start.
        """
        self.statuses = dict(statuses)
        self.status_of = self.statuses.get
        self.suspended = {
            cid: CharacterDecision(cid, allowed=False, reasons=(DenyReason.CHARACTER_SUSPENDED,)) for cid in suspended
        }
        self.withdrawn = set(withdrawn)
        self.sequence, self.fresh = sequence, Stamp.kept(fresh_as_of, self._clock, self._monotonic)

    @property
    def fresh_as_of(self) -> datetime | None:
        """The local time of the last heartbeat at which the view was current (None: not current)."""
        fresh = self.fresh
        return None if fresh is None else fresh.wall

    def reset(self) -> None:
        """Forget the log (it went backwards): not current, nothing applied, so that the stream is
        read again from sequence 0. Grant and character states are replaced by new empty ones (a
        reader holding the old ``status_of`` keeps the old states; the view is not current anyway
        until a heartbeat at the new log's head)."""
        self.fresh = None
        self.statuses = {}
        self.status_of = self.statuses.get
        self.suspended = {}
        self.withdrawn = set()
        self.sequence = 0
        self.registry_head = 0

    def status(self, grant_id: str) -> GrantStatus:
        """A grant's state in the view (``ACTIVE`` when the log never named it)."""
        return self.statuses.get(grant_id, _ACTIVE)

    def apply(self, event: grant_pb2.RevocationEvent) -> bool:
        """Apply the next event; whether it was applied (an event seen already is not).

        Raises:
            Resync: The event does not follow the last one applied.
        """
        sequence = event.sequence
        if sequence <= self.sequence:
            return False  # seen already
        if sequence != self.sequence + 1:
            raise Resync(f"event {sequence} follows {self.sequence}")
        grant_id, kind, statuses = event.grant_id, event.kind, self.statuses
        if kind == _KIND_REVOKED:
            statuses[grant_id] = _REVOKED
        elif kind == _KIND_SUSPENDED:
            if statuses.get(grant_id) is not _REVOKED:
                statuses[grant_id] = _SUSPENDED
        elif kind == _KIND_REINSTATED:
            if statuses.get(grant_id) is _SUSPENDED:
                del statuses[grant_id]
        elif kind == _KIND_CHARACTER_SUSPENDED:
            self.suspended[event.character_id] = CharacterDecision(
                event.character_id, allowed=False, reasons=(DenyReason.CHARACTER_SUSPENDED,)
            )
        elif kind == _KIND_CHARACTER_REINSTATED:
            self.suspended.pop(event.character_id, None)
        elif kind == _KIND_CHARACTER_WITHDRAWN:
            self.withdrawn.add(event.character_id)
        elif kind == _KIND_CHARACTER_ARCHIVED:
            self.suspended.pop(event.character_id, None)  # the server decides an archived one by its state
            self.withdrawn.add(event.character_id)
        elif kind == _KIND_CHARACTER_OPTED_IN:
            self.withdrawn.discard(event.character_id)
        elif kind == _KIND_REGISTRY_CHANGED:
            self.registry_head = sequence
        else:
            # A kind this SDK does not know may take something away: never decide offline again.
            self.broken = f"revocation event {sequence} has an unknown kind {kind}; update the SDK"
            log.error("charter.offline: %s", self.broken)
        self.sequence = sequence
        return True

    def skip(self, sequence: int) -> bool:
        """Events the server left out (another licensee's): the next event follows on from here.
        Being further along says nothing about being current; only a heartbeat does. Whether the
        position moved."""
        if sequence > self.sequence:
            self.sequence = sequence
            return True
        return False

    def heartbeat(self, sequence: int) -> bool:
        """A heartbeat at the log's head; whether it made the view current.

        Raises:
            Resync: The log is ahead of the events seen.
            Rewound: The log is behind the events seen.
        """
        if sequence == self.sequence:
            self.fresh = Stamp.now(self._clock, self._monotonic)
            self.beats += 1
            return True
        if sequence > self.sequence:
            raise Resync(f"a heartbeat at {sequence} follows event {self.sequence}")
        raise Rewound(f"the server's revocation log (at {sequence}) is behind this view (at {self.sequence})")
