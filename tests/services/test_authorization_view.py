"""The authorization view's lease: a decision that outlasted the lease stands only if the epoch,
read again after it, has not moved (`AuthorizationView.confirm`)."""

from __future__ import annotations

from charter_server.services.authorization.view import AuthorizationView
from charter_server.storage.database import Database
from charter_server.storage.repositories import bump_authz_epoch


def test_a_generation_past_its_lease_is_confirmed_only_while_the_epoch_stands(db: Database) -> None:
    view = AuthorizationView(db)
    generation = view.poll()
    generation.checked -= generation.lease + 1  # as if deciding had taken longer than the lease
    lapsed = view.is_fresh(generation)
    confirmed = view.confirm(generation)
    generation.checked -= generation.lease + 1
    with db.uow(write=True) as uow:
        bump_authz_epoch(uow.session)  # a change that may take something away commits meanwhile
        uow.commit()
    moved = view.confirm(generation)

    assert not lapsed
    assert confirmed
    assert view.is_fresh(generation) is False
    assert not moved
    assert view.current() is not generation
