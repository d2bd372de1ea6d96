"""The revocation log, read by offline authorizers and the revocation stream."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    func,
    select,
    update,
)
from sqlalchemy.orm import Session

from charter_server.domain import events as ev
from charter_server.domain.events import EventSink
from charter_server.domain.models import (
    RevocationEvent,
    RevocationKind,
)
from charter_server.storage.tables import (
    CounterRow,
    RevocationEventRow,
)

# Shared names: (normalised name, character ids, rights holder ids), and the name to continue after.


class RevocationLogRepository:
    """The revocation log. Appending takes the counter's row lock, so sequence numbers commit in order."""

    COUNTER = "revocation_log"

    def __init__(self, session: Session, events: EventSink) -> None:
        self._session = session
        self._events = events

    def append(self, grant_id: str, kind: RevocationKind, when: datetime, reason: str, character_id: str = "") -> int:
        """Append an event and return its sequence number (a character's event names no grant)."""
        sequence = self._session.execute(
            update(CounterRow)
            .where(CounterRow.name == self.COUNTER)
            .values(value=CounterRow.value + 1)
            .returning(CounterRow.value)
        ).scalar_one()
        self._session.add(
            RevocationEventRow(
                sequence=sequence,
                grant_id=grant_id,
                kind=kind.value,
                event_time=when,
                reason=reason,
                character_id=character_id,
            )
        )
        self._session.flush()
        self._events.raise_event(ev.RevocationAppended(int(sequence), kind, grant_id, character_id))
        return int(sequence)

    def last_of_characters(self, character_ids: Sequence[str], kinds: Sequence[RevocationKind]) -> dict[str, datetime]:
        """The time of each character's latest event of one of ``kinds`` (characters without one are left out)."""
        if not character_ids:
            return {}
        rows = self._session.execute(
            select(RevocationEventRow.character_id, func.max(RevocationEventRow.event_time))
            .where(
                RevocationEventRow.character_id.in_(sorted(set(character_ids))),
                RevocationEventRow.kind.in_([kind.value for kind in kinds]),
            )
            .group_by(RevocationEventRow.character_id)
        )
        return {row[0]: row[1] for row in rows}

    def since(self, sequence: int, limit: int) -> list[RevocationEvent]:
        """Events after ``sequence``, oldest first."""
        rows = self._session.scalars(
            select(RevocationEventRow)
            .where(RevocationEventRow.sequence > sequence)
            .order_by(RevocationEventRow.sequence)
            .limit(limit)
        )
        return [
            RevocationEvent(
                sequence=int(r.sequence),
                grant_id=r.grant_id,
                kind=RevocationKind(r.kind),
                event_time=r.event_time,
                reason=r.reason,
                character_id=r.character_id,
            )
            for r in rows
        ]

    def registry_changes(self, after: int, upto: int, limit: int) -> list[str]:
        """The characters whose registry entry changed after sequence ``after`` up to ``upto``
        (``KIND_REGISTRY_CHANGED`` events), each once, at most ``limit``."""
        rows = self._session.scalars(
            select(RevocationEventRow.character_id)
            .where(
                RevocationEventRow.sequence > after,
                RevocationEventRow.sequence <= upto,
                RevocationEventRow.kind == RevocationKind.REGISTRY_CHANGED.value,
            )
            .distinct()
            .limit(limit)
        )
        return [str(r) for r in rows]

    def head(self) -> int:
        """The newest sequence number (0 when the log is empty)."""
        return int(self._session.scalar(select(CounterRow.value).where(CounterRow.name == self.COUNTER)) or 0)
