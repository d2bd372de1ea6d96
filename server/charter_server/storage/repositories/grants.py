"""Issued grants."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from charter_server.domain import events as ev
from charter_server.domain.events import EventSink
from charter_server.domain.models import (
    GrantRecord,
    GrantState,
)
from charter_server.storage.dialect import Dialect
from charter_server.storage.tables import (
    GrantRow,
)

# Shared names: (normalised name, character ids, rights holder ids), and the name to continue after.


def grant_record(row: GrantRow) -> GrantRecord:
    return GrantRecord(
        id=row.id,
        character_id=row.character_id,
        rights_holder_id=row.rights_holder_id,
        licensee_id=row.licensee_id,
        terms_version=row.terms_version,
        terms=bytes(row.terms),
        not_before=row.not_before,
        expire_time=row.expire_time,
        issue_time=row.issue_time,
        state=GrantState(row.state),
        state_reason=row.state_reason,
        state_time=row.state_time,
        envelope=bytes(row.envelope),
        signing_key_id=row.signing_key_id,
        max_uses=row.max_uses,
    )


class GrantRepository:
    """Issued grants."""

    def __init__(self, session: Session, dialect: Dialect, events: EventSink) -> None:
        self._session = session
        self._dialect = dialect
        self._events = events

    def add(self, grant: GrantRecord) -> None:
        """Insert a new grant."""
        self._session.add(
            GrantRow(
                id=grant.id,
                character_id=grant.character_id,
                rights_holder_id=grant.rights_holder_id,
                licensee_id=grant.licensee_id,
                terms_version=grant.terms_version,
                terms=grant.terms,
                not_before=grant.not_before,
                expire_time=grant.expire_time,
                issue_time=grant.issue_time,
                state=grant.state.value,
                state_reason=grant.state_reason,
                state_time=grant.state_time,
                envelope=grant.envelope,
                signing_key_id=grant.signing_key_id,
                max_uses=grant.max_uses,
            )
        )
        self._session.flush()
        self._events.raise_event(
            ev.GrantIssued(grant.id, grant.character_id, grant.rights_holder_id, grant.licensee_id)
        )

    def get(self, grant_id: str, *, for_update: bool = False) -> GrantRecord | None:
        """The grant with this id, or None; ``for_update`` locks its row until commit (PostgreSQL)."""
        stmt = select(GrantRow).where(GrantRow.id == grant_id)
        if for_update:
            stmt = self._dialect.for_update(stmt)
        row = self._session.scalars(stmt).first()
        return None if row is None else grant_record(row)

    def ever_granted(self, rights_holder_id: str, licensee_id: str) -> bool:
        """Whether the licensee holds or held any grant (in any state) of the rights holder's characters."""
        stmt = select(GrantRow.id).where(
            GrantRow.rights_holder_id == rights_holder_id, GrantRow.licensee_id == licensee_id
        )
        return self._session.execute(stmt.limit(1)).first() is not None

    def states(self, grant_ids: Sequence[str]) -> dict[str, GrantState]:
        """The states of the grants that exist among ``grant_ids``."""
        if not grant_ids:
            return {}
        rows = self._session.execute(select(GrantRow.id, GrantRow.state).where(GrantRow.id.in_(list(grant_ids))))
        return {str(gid): GrantState(state) for gid, state in rows}

    def set_state(self, grant_id: str, state: GrantState, reason: str, when: datetime) -> None:
        """Change a grant's state."""
        row = self._session.scalars(select(GrantRow).where(GrantRow.id == grant_id)).one()
        before = GrantState(row.state)
        row.state = state.value
        row.state_reason = reason
        row.state_time = when
        self._session.flush()
        self._events.raise_event(
            ev.GrantStateChanged(grant_id, row.character_id, row.rights_holder_id, row.licensee_id, before, state)
        )

    def live_for_character(self, character_id: str) -> list[str]:
        """Ids of the character's grants that are not revoked, locked for update."""
        stmt = self._dialect.for_update(
            select(GrantRow.id)
            .where(GrantRow.character_id == character_id, GrantRow.state != GrantState.REVOKED.value)
            .order_by(GrantRow.seq)
        )
        return [str(gid) for gid in self._session.scalars(stmt)]

    def list(
        self,
        *,
        character_id: str,
        licensee_id: str,
        rights_holder_id: str,
        state: GrantState | None,
        before: int,
        limit: int,
    ) -> tuple[list[GrantRecord], int | None]:
        """One page of grants, newest first (``before`` is a sequence number, 0 for the newest)."""
        stmt = select(GrantRow)
        if character_id:
            stmt = stmt.where(GrantRow.character_id == character_id)
        if licensee_id:
            stmt = stmt.where(GrantRow.licensee_id == licensee_id)
        if rights_holder_id:
            stmt = stmt.where(GrantRow.rights_holder_id == rights_holder_id)
        if state is not None:
            stmt = stmt.where(GrantRow.state == state.value)
        if before:
            stmt = stmt.where(GrantRow.seq < before)
        rows = list(self._session.scalars(stmt.order_by(GrantRow.seq.desc()).limit(limit + 1)))
        more = int(rows[limit - 1].seq) if len(rows) > limit else None
        return [grant_record(r) for r in rows[:limit]], more
