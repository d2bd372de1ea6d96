"""The authorization epoch and what ``Authorize`` loads into memory."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    select,
    update,
)
from sqlalchemy.orm import Session

from charter_server.domain.models import (
    GrantRecord,
)
from charter_server.storage.repositories.grants import grant_record
from charter_server.storage.tables import (
    DEPLOYMENT_SETTINGS_ID,
    CounterRow,
    DeploymentSettingsRow,
    GrantRow,
)

AUTHZ_EPOCH = "authz_epoch"
# The epoch and the deployment's lease in one statement: every server reads them four times per
# lease (``services.authorization.view``), so the read is one round trip without ORM objects
# (a third of the CPU of reading them apart).
_EPOCH_AND_LEASE = select(
    select(CounterRow.value).where(CounterRow.name == AUTHZ_EPOCH).scalar_subquery(),
    DeploymentSettingsRow.authorization_lease_ms,
).where(DeploymentSettingsRow.id == DEPLOYMENT_SETTINGS_ID)


def bump_authz_epoch(session: Session) -> None:
    """Count a change that an authorization may depend on, in the caller's transaction (the unit
    of work calls it once per commit whose events affect authorization).

    Every server keeps what ``Authorize`` reads (characters, licensees, grants, keys) in memory
    and polls this counter to learn that its copy is out of date; see
    ``charter_server.services.authorization``. The update takes the counter's row lock until
    commit, like the revocation log's counter.
    """
    session.execute(update(CounterRow).where(CounterRow.name == AUTHZ_EPOCH).values(value=CounterRow.value + 1))


class GrantViewRepository:
    """What ``Authorize`` loads into memory: characters, licensees and a licensee's grants."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def epoch_and_lease(self) -> tuple[int, float]:
        """The authorization epoch (it moves with every change an authorization may depend on) and
        the deployment's authorization lease in seconds, read at once."""
        epoch, lease_ms = self._session.execute(_EPOCH_AND_LEASE).one()
        return int(epoch or 0), lease_ms / 1000

    def grants_for(self, licensee_id: str, character_ids: Sequence[str], live_after: datetime) -> list[GrantRecord]:
        """The licensee's grants of these characters that expire after ``live_after``, newest first."""
        if not character_ids:
            return []
        rows = self._session.scalars(
            select(GrantRow)
            .where(
                GrantRow.licensee_id == licensee_id,
                GrantRow.character_id.in_(list(character_ids)),
                GrantRow.expire_time > live_after,
            )
            .order_by(GrantRow.seq.desc())
        )
        return [grant_record(row) for row in rows]
