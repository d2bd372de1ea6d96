"""Storage for serving: the settings every replica of a deployment shares, and who may see each
event of the revocation log.

The settings are one row (made by migration ``0007_serving``). The authorization lease is kept
with the lease it replaced and when that happened, by the database's own clock, so that a change
that takes something away can wait for the longest lease any replica may still be trusting
(``charter_server.services.authorization``), whatever the replicas' own clocks say.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from charter_server.domain.models import LeaseSetting, RevocationEvent
from charter_server.storage.dialect import Dialect
from charter_server.storage.tables import DEPLOYMENT_SETTINGS_ID, CharacterRow, DeploymentSettingsRow, GrantRow


class DeploymentSettingsRepository:
    """The deployment-wide settings row."""

    def __init__(self, session: Session, dialect: Dialect) -> None:
        self._session = session
        self._dialect = dialect

    def _now_ms(self) -> int:
        """Milliseconds since the Unix epoch by the database's clock (the wall clock, not the
        transaction's start)."""
        return int(self._session.scalar(select(self._dialect.now_ms())) or 0)

    def _row(self, *, for_update: bool = False) -> DeploymentSettingsRow:
        statement = select(DeploymentSettingsRow).where(DeploymentSettingsRow.id == DEPLOYMENT_SETTINGS_ID)
        if for_update:
            statement = self._dialect.for_update(statement)
        return self._session.scalars(statement).one()

    def lease(self) -> LeaseSetting:
        """The authorization lease, the one it replaced and how long ago."""
        row = self._row()
        since = max(0, self._now_ms() - int(row.lease_changed_ms)) / 1000
        return LeaseSetting(row.authorization_lease_ms / 1000, row.previous_lease_ms / 1000, since)

    def set_lease(self, seconds: float) -> tuple[LeaseSetting, LeaseSetting]:
        """Change the lease (under the row's lock); returns the setting before and after.

        The replaced lease kept is the longest one any replica may still trust: the old lease, or
        an even older one whose time is not yet up.
        """
        row = self._row(for_update=True)
        now = self._now_ms()
        before = LeaseSetting(
            row.authorization_lease_ms / 1000,
            row.previous_lease_ms / 1000,
            max(0, now - int(row.lease_changed_ms)) / 1000,
        )
        new_ms = round(seconds * 1000)
        if new_ms == row.authorization_lease_ms:
            return before, before
        previous_ms = round(before.longest * 1000)
        self._session.execute(
            update(DeploymentSettingsRow)
            .where(DeploymentSettingsRow.id == DEPLOYMENT_SETTINGS_ID)
            .values(authorization_lease_ms=new_ms, previous_lease_ms=previous_ms, lease_changed_ms=now)
        )
        return before, LeaseSetting(new_ms / 1000, previous_ms / 1000, 0.0)

    def page_token_key(self) -> bytes:
        """The key that signs page tokens (made by the migration, the same for every replica)."""
        return bytes(
            self._session.scalars(
                select(DeploymentSettingsRow.page_token_key).where(DeploymentSettingsRow.id == DEPLOYMENT_SETTINGS_ID)
            ).one()
        )


class RevocationAudienceRepository:
    """Adds to revocation-log events who may see them."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def with_audience(self, events: Sequence[RevocationEvent]) -> list[RevocationEvent]:
        """The events, each with its rights holder, its grant's licensee, and for a character's
        event every licensee that holds a grant (in any state) for the character."""
        grant_ids = {e.grant_id for e in events if e.grant_id}
        character_ids = {e.character_id for e in events if not e.grant_id and e.character_id}
        grants: dict[str, tuple[str, str]] = {}
        if grant_ids:
            rows = self._session.execute(
                select(GrantRow.id, GrantRow.licensee_id, GrantRow.rights_holder_id).where(
                    GrantRow.id.in_(sorted(grant_ids))
                )
            )
            grants = {grant_id: (licensee_id, holder) for grant_id, licensee_id, holder in rows}
        owners: dict[str, str] = {}
        holders: dict[str, set[str]] = {cid: set() for cid in character_ids}
        if character_ids:
            ordered = sorted(character_ids)
            owners = {
                character_id: holder
                for character_id, holder in self._session.execute(
                    select(CharacterRow.id, CharacterRow.rights_holder_id).where(CharacterRow.id.in_(ordered))
                )
            }
            for character_id, licensee_id in self._session.execute(
                select(GrantRow.character_id, GrantRow.licensee_id).where(GrantRow.character_id.in_(ordered)).distinct()
            ):
                holders[character_id].add(licensee_id)
        enriched = []
        for event in events:
            if event.grant_id:
                licensee_id, holder = grants.get(event.grant_id, ("", ""))
                enriched.append(dataclasses.replace(event, licensee_id=licensee_id, rights_holder_id=holder))
            else:
                enriched.append(
                    dataclasses.replace(
                        event,
                        rights_holder_id=owners.get(event.character_id, ""),
                        licensee_ids=frozenset(holders.get(event.character_id, ())),
                    )
                )
        return enriched
