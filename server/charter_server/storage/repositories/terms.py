"""Immutable terms versions of characters."""

from __future__ import annotations

from datetime import UTC

from charter.v1 import terms_pb2
from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from charter_server.domain import events as ev
from charter_server.domain.events import EventSink
from charter_server.storage.tables import (
    TermsVersionRow,
)

# Shared names: (normalised name, character ids, rights holder ids), and the name to continue after.


class TermsRepository:
    """Immutable terms versions, stored as serialized ``charter.v1.Terms``."""

    def __init__(self, session: Session, events: EventSink) -> None:
        self._session = session
        self._events = events

    def add(self, terms: terms_pb2.Terms) -> None:
        """Insert a new version (its ``character_id`` and ``version`` set)."""
        self._session.add(
            TermsVersionRow(
                character_id=terms.character_id,
                version=terms.version,
                terms=terms.SerializeToString(),
                create_time=terms.create_time.ToDatetime(tzinfo=UTC),
                author_key_id=terms.author_key_id,
            )
        )
        self._session.flush()
        self._events.raise_event(ev.TermsChanged(terms.character_id, terms.version))

    def get(self, character_id: str, version: int) -> terms_pb2.Terms | None:
        """One version, or None."""
        row = self._session.get(TermsVersionRow, (character_id, version))
        return None if row is None else terms_pb2.Terms.FromString(row.terms)

    def list(self, character_id: str, *, before: int, limit: int) -> tuple[list[terms_pb2.Terms], int | None]:
        """Versions newest first, below ``before`` (0 for the newest)."""
        stmt = select(TermsVersionRow).where(TermsVersionRow.character_id == character_id)
        if before:
            stmt = stmt.where(TermsVersionRow.version < before)
        rows = list(self._session.scalars(stmt.order_by(TermsVersionRow.version.desc()).limit(limit + 1)))
        more = rows[limit - 1].version if len(rows) > limit else None
        return [terms_pb2.Terms.FromString(r.terms) for r in rows[:limit]], more
