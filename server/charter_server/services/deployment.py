"""Settings every replica of a deployment shares, kept in the database rather than in each
replica's flags: today the authorization lease (see ``charter_server.services.authorization``)."""

from __future__ import annotations

import structlog

from charter_server.domain.errors import InvalidArgument
from charter_server.domain.models import LeaseSetting
from charter_server.storage.database import Database

log = structlog.get_logger(__name__)

MIN_LEASE_SECONDS = 0.01
MAX_LEASE_SECONDS = 60.0


def authorization_lease(db: Database) -> LeaseSetting:
    """The deployment's authorization lease."""
    with db.uow() as uow:
        return uow.deployment.lease()


def set_authorization_lease(db: Database, seconds: float) -> tuple[LeaseSetting, LeaseSetting]:
    """Set the deployment's authorization lease; returns the setting before and after.

    Safe at any time: until every replica has seen the new value, a change that takes something
    away waits for the old lease too (`LeaseSetting.longest`).

    Raises:
        InvalidArgument: ``seconds`` is out of range.
    """
    if not MIN_LEASE_SECONDS <= seconds <= MAX_LEASE_SECONDS:
        raise InvalidArgument.one(
            "authorization_lease_seconds", f"must be between {MIN_LEASE_SECONDS} and {MAX_LEASE_SECONDS:g}"
        )
    with db.uow(write=True) as uow:
        before, after = uow.deployment.set_lease(seconds)
        uow.commit()
    if after != before:
        log.info("deployment.lease_changed", seconds=after.seconds, previous_seconds=before.seconds)
    return before, after
