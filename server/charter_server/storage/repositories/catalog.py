"""Rights holders and licensees."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from charter_server.domain import events as ev
from charter_server.domain.events import EventSink
from charter_server.domain.models import (
    Licensee,
    LifecycleState,
    RightsHolder,
)
from charter_server.storage.repositories._query import contains_text, keyset_page
from charter_server.storage.tables import (
    GrantRow,
    LicenseeRow,
    RightsHolderRow,
)

# Shared names: (normalised name, character ids, rights holder ids), and the name to continue after.


def _rights_holder(row: RightsHolderRow) -> RightsHolder:
    return RightsHolder(
        id=row.id,
        display_name=row.display_name,
        legal_name=row.legal_name,
        contact_email=row.contact_email,
        revenue_share_account=row.revenue_share_account,
        state=LifecycleState(row.state),
        create_time=row.create_time,
        update_time=row.update_time,
        archive_time=row.archive_time,
    )


def _licensee(row: LicenseeRow) -> Licensee:
    return Licensee(
        id=row.id,
        display_name=row.display_name,
        legal_name=row.legal_name,
        contact_email=row.contact_email,
        platform=row.platform,
        state=LifecycleState(row.state),
        create_time=row.create_time,
        update_time=row.update_time,
        archive_time=row.archive_time,
    )


class RightsHolderRepository:
    """Rights holders."""

    def __init__(self, session: Session, events: EventSink) -> None:
        self._session = session
        self._events = events

    def add(self, holder: RightsHolder) -> None:
        """Insert a new rights holder."""
        self._session.add(
            RightsHolderRow(
                id=holder.id,
                display_name=holder.display_name,
                legal_name=holder.legal_name,
                contact_email=holder.contact_email,
                revenue_share_account=holder.revenue_share_account,
                state=holder.state.value,
                create_time=holder.create_time,
                update_time=holder.update_time,
                archive_time=holder.archive_time,
            )
        )
        self._session.flush()
        self._events.raise_event(ev.RightsHolderCreated(holder.id))

    def get(self, holder_id: str) -> RightsHolder | None:
        """The rights holder with this id, or None."""
        row = self._row(holder_id)
        return None if row is None else _rights_holder(row)

    def save(self, holder: RightsHolder) -> None:
        """Write every mutable field of an existing rights holder."""
        row = self._row(holder.id)
        if row is None:
            raise LookupError(holder.id)
        before = LifecycleState(row.state)
        row.display_name = holder.display_name
        row.legal_name = holder.legal_name
        row.contact_email = holder.contact_email
        row.revenue_share_account = holder.revenue_share_account
        row.state = holder.state.value
        row.update_time = holder.update_time
        row.archive_time = holder.archive_time
        self._session.flush()
        self._events.raise_event(ev.RightsHolderChanged(holder.id, before, holder.state))

    def list(
        self, *, state: LifecycleState, query: str, only_id: str | None, after: int, limit: int
    ) -> tuple[list[RightsHolder], int | None]:
        """One page of rights holders in creation order."""
        stmt = select(RightsHolderRow).where(RightsHolderRow.state == state.value)
        if query:
            stmt = stmt.where(contains_text([RightsHolderRow.display_name, RightsHolderRow.legal_name], query))
        if only_id is not None:
            stmt = stmt.where(RightsHolderRow.id == only_id)
        rows, more = keyset_page(self._session, stmt, RightsHolderRow.seq, after, limit)
        return [_rights_holder(r) for r in rows], more

    def _row(self, holder_id: str) -> RightsHolderRow | None:
        return self._session.scalars(select(RightsHolderRow).where(RightsHolderRow.id == holder_id)).first()


class LicenseeRepository:
    """Licensees."""

    def __init__(self, session: Session, events: EventSink) -> None:
        self._session = session
        self._events = events

    def add(self, licensee: Licensee) -> None:
        """Insert a new licensee."""
        self._session.add(
            LicenseeRow(
                id=licensee.id,
                display_name=licensee.display_name,
                legal_name=licensee.legal_name,
                contact_email=licensee.contact_email,
                platform=licensee.platform,
                state=licensee.state.value,
                create_time=licensee.create_time,
                update_time=licensee.update_time,
                archive_time=licensee.archive_time,
            )
        )
        self._session.flush()
        self._events.raise_event(ev.LicenseeCreated(licensee.id))

    def get(self, licensee_id: str) -> Licensee | None:
        """The licensee with this id, or None."""
        row = self._row(licensee_id)
        return None if row is None else _licensee(row)

    def get_many(self, licensee_ids: Sequence[str]) -> dict[str, Licensee]:
        """The licensees with these ids that exist, by id."""
        rows = self._session.scalars(select(LicenseeRow).where(LicenseeRow.id.in_(sorted(set(licensee_ids)))))
        return {row.id: _licensee(row) for row in rows}

    def save(self, licensee: Licensee) -> None:
        """Write every mutable field of an existing licensee."""
        row = self._row(licensee.id)
        if row is None:
            raise LookupError(licensee.id)
        platform_before, state_before = row.platform, LifecycleState(row.state)
        row.display_name = licensee.display_name
        row.legal_name = licensee.legal_name
        row.contact_email = licensee.contact_email
        row.platform = licensee.platform
        row.state = licensee.state.value
        row.update_time = licensee.update_time
        row.archive_time = licensee.archive_time
        self._session.flush()
        self._events.raise_event(
            ev.LicenseeChanged(licensee.id, platform_before, licensee.platform, state_before, licensee.state)
        )

    def granted_by(self, rights_holder_id: str, licensee_id: str) -> Licensee | None:
        """The licensee, if it holds or held a grant on one of the rights holder's characters."""
        granted = (
            select(GrantRow.seq)
            .where(GrantRow.rights_holder_id == rights_holder_id, GrantRow.licensee_id == licensee_id)
            .exists()
        )
        row = self._session.scalars(select(LicenseeRow).where(LicenseeRow.id == licensee_id, granted)).first()
        return None if row is None else _licensee(row)

    def list_granted(self, *, rights_holder_id: str, after: int, limit: int) -> tuple[list[Licensee], int | None]:
        """One page of licensees in creation order, in every state; with ``rights_holder_id``, only
        those that hold or held a grant on one of its characters."""
        stmt = select(LicenseeRow)
        if rights_holder_id:
            granted = select(GrantRow.licensee_id).where(GrantRow.rights_holder_id == rights_holder_id)
            stmt = stmt.where(LicenseeRow.id.in_(granted))
        rows, more = keyset_page(self._session, stmt, LicenseeRow.seq, after, limit)
        return [_licensee(r) for r in rows], more

    def list(
        self, *, state: LifecycleState, query: str, platform: str, after: int, limit: int
    ) -> tuple[list[Licensee], int | None]:
        """One page of licensees in creation order."""
        stmt = select(LicenseeRow).where(LicenseeRow.state == state.value)
        if query:
            stmt = stmt.where(contains_text([LicenseeRow.display_name, LicenseeRow.legal_name], query))
        if platform:
            stmt = stmt.where(LicenseeRow.platform == platform)
        rows, more = keyset_page(self._session, stmt, LicenseeRow.seq, after, limit)
        return [_licensee(r) for r in rows], more

    def _row(self, licensee_id: str) -> LicenseeRow | None:
        return self._session.scalars(select(LicenseeRow).where(LicenseeRow.id == licensee_id)).first()
