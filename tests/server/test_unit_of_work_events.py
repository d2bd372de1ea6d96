"""The unit of work's events: collected in order, dropped with a rolled-back savepoint or
transaction, the authorization epoch bumped once per commit, in-transaction subscribers writing in
the committing transaction, after-commit subscribers told once the transaction is over.

Run on both backends (a fresh migrated database each)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from charter_server.domain import events as ev
from charter_server.domain.models import LifecycleState, RightsHolder
from charter_server.storage.database import Database
from charter_server.storage.tables import RightsHolderRow
from charter_server.storage.uow import UnitOfWork
from sqlalchemy import update


def _holder(suffix: str) -> RightsHolder:
    now = datetime.now(UTC)
    return RightsHolder(
        id=f"rh_{suffix:0>32}",
        display_name=f"Studio {suffix}",
        legal_name="",
        contact_email="rights@studio.example",
        revenue_share_account="",
        state=LifecycleState.ACTIVE,
        create_time=now,
        update_time=now,
        archive_time=None,
    )


def _epoch(db: Database) -> int:
    with db.uow() as uow:
        return uow.authz.epoch_and_lease()[0]


class _Recorder:
    def __init__(self) -> None:
        self.batches: list[tuple[ev.DomainEvent, ...]] = []

    def __call__(self, events: Sequence[ev.DomainEvent]) -> None:
        self.batches.append(tuple(events))


def test_committed_events_are_published_once_in_order_after_the_unit_of_work(migrated_db: Database) -> None:
    recorder = _Recorder()
    migrated_db.events.subscribe(recorder)
    licensee = ev.LicenseeChanged("li_1", "a", "b", LifecycleState.ACTIVE, LifecycleState.ACTIVE)
    with migrated_db.uow(write=True) as uow:
        uow.rights_holders.add(_holder("1"))
        uow.raise_event(licensee)
        uow.commit()
        published_inside = list(recorder.batches)
    assert published_inside == []  # not while the transaction (and SQLite's writer lock) is held
    assert recorder.batches == [(ev.RightsHolderCreated(_holder("1").id), licensee)]


def test_the_epoch_moves_once_per_commit_and_only_for_events_that_affect_authorization(
    migrated_db: Database,
) -> None:
    start = _epoch(migrated_db)
    with migrated_db.uow(write=True) as uow:
        uow.rights_holders.add(_holder("2"))  # RightsHolderCreated: Authorize does not read it
        uow.commit()
    assert _epoch(migrated_db) == start
    with migrated_db.uow(write=True) as uow:
        for n in range(3):
            uow.raise_event(ev.GrantStateChanged(f"g{n}", "c", "rh", "li", *(ev.GrantState.ACTIVE,) * 2))
        uow.commit()
    assert _epoch(migrated_db) == start + 1


def test_uncommitted_and_rolled_back_events_are_never_published(migrated_db: Database) -> None:
    recorder = _Recorder()
    migrated_db.events.subscribe(recorder)
    with migrated_db.uow(write=True) as uow:
        uow.rights_holders.add(_holder("3"))
    assert recorder.batches == []  # no commit

    with migrated_db.uow(write=True) as uow:
        uow.rights_holders.add(_holder("4"))
        with pytest.raises(LookupError), uow.savepoint():
            uow.rights_holders.add(_holder("5"))
            raise LookupError("the row failed")
        uow.rights_holders.add(_holder("6"))
        uow.commit()
    assert recorder.batches == [(ev.RightsHolderCreated(_holder("4").id), ev.RightsHolderCreated(_holder("6").id))]
    with migrated_db.uow() as uow:
        assert uow.rights_holders.get(_holder("5").id) is None

    recorder.batches.clear()
    with migrated_db.uow(write=True) as uow:
        uow.rights_holders.add(_holder("7"))
        uow.session.rollback()  # as the authorization service does when nothing is counted
        uow.rights_holders.add(_holder("8"))
        uow.commit()
    assert recorder.batches == [(ev.RightsHolderCreated(_holder("8").id),)]


def test_an_in_transaction_subscriber_writes_in_the_committing_transaction(migrated_db: Database) -> None:
    seen: list[tuple[ev.DomainEvent, ...]] = []

    def append(uow: UnitOfWork, events: Sequence[ev.DomainEvent]) -> None:
        seen.append(tuple(events))
        # A write of its own (as the transparency log appends its entries), committed with the change.
        uow.session.execute(
            update(RightsHolderRow).where(RightsHolderRow.id == _holder("9").id).values(legal_name="logged")
        )

    unsubscribe = migrated_db.events.subscribe_in_transaction(append)
    try:
        with migrated_db.uow(write=True) as uow:
            uow.rights_holders.add(_holder("9"))
            uow.commit()
    finally:
        unsubscribe()
    assert seen == [(ev.RightsHolderCreated(_holder("9").id),)]
    with migrated_db.uow() as uow:
        stored = uow.rights_holders.get(_holder("9").id)
    assert stored is not None
    assert stored.legal_name == "logged"


def test_an_in_transaction_subscriber_may_not_raise_events(migrated_db: Database) -> None:
    def announce(uow: UnitOfWork, _events: Sequence[ev.DomainEvent]) -> None:
        uow.raise_event(ev.StatementPeriodClosed("rh", "2020-01"))  # it would never be published

    unsubscribe = migrated_db.events.subscribe_in_transaction(announce)
    try:
        with pytest.raises(RuntimeError), migrated_db.uow(write=True) as uow:
            uow.rights_holders.add(_holder("12"))
            uow.commit()
    finally:
        unsubscribe()
    with migrated_db.uow() as uow:
        assert uow.rights_holders.get(_holder("12").id) is None


def test_a_failing_in_transaction_subscriber_aborts_the_commit(migrated_db: Database) -> None:
    recorder = _Recorder()
    migrated_db.events.subscribe(recorder)

    def refuse(_uow: UnitOfWork, _events: Sequence[ev.DomainEvent]) -> None:
        raise RuntimeError("the log cannot append")

    unsubscribe = migrated_db.events.subscribe_in_transaction(refuse)
    try:
        with pytest.raises(RuntimeError), migrated_db.uow(write=True) as uow:
            uow.rights_holders.add(_holder("10"))
            uow.commit()
    finally:
        unsubscribe()
    with migrated_db.uow() as uow:
        stored = uow.rights_holders.get(_holder("10").id)
    assert stored is None
    assert recorder.batches == []


def test_a_failing_after_commit_subscriber_does_not_stop_the_others(migrated_db: Database) -> None:
    def fail(_events: Sequence[ev.DomainEvent]) -> None:
        raise RuntimeError("subscriber bug")

    recorder = _Recorder()
    migrated_db.events.subscribe(fail)
    migrated_db.events.subscribe(recorder)
    with migrated_db.uow(write=True) as uow:
        uow.rights_holders.add(_holder("11"))
        uow.commit()
    assert recorder.batches == [(ev.RightsHolderCreated(_holder("11").id),)]


def test_what_takes_away_permission() -> None:
    state = ev.CharacterState
    assert ev.CharacterStateChanged("c", "rh", state.OPTED_IN, state.OPTED_OUT).takes_away
    assert ev.CharacterStateChanged("c", "rh", state.OPTED_OUT, state.SUSPENDED).takes_away
    assert ev.CharacterStateChanged("c", "rh", state.OPTED_IN, state.ARCHIVED).takes_away
    assert not ev.CharacterStateChanged("c", "rh", state.OPTED_OUT, state.OPTED_IN).takes_away
    assert not ev.CharacterStateChanged("c", "rh", state.SUSPENDED, state.OPTED_OUT).takes_away
    grant = ev.GrantState
    assert ev.GrantStateChanged("g", "c", "rh", "li", grant.ACTIVE, grant.SUSPENDED).takes_away
    assert not ev.GrantStateChanged("g", "c", "rh", "li", grant.SUSPENDED, grant.ACTIVE).takes_away
    active, archived = LifecycleState.ACTIVE, LifecycleState.ARCHIVED
    assert ev.LicenseeChanged("li", "web", "app", active, active).takes_away
    assert ev.LicenseeChanged("li", "web", "web", active, archived).takes_away
    assert not ev.LicenseeChanged("li", "web", "web", active, active).takes_away
    key = ev.SigningKeyState
    assert ev.SigningKeyStateChanged("k", key.RETIRED, key.REVOKED).takes_away
    assert not ev.SigningKeyStateChanged("k", key.ACTIVE, key.RETIRED).takes_away
    assert ev.ApiKeyRevoked("key", None, "li").takes_away
    assert not ev.GrantIssued("g", "c", "rh", "li").takes_away
    assert not ev.ApiKeyCreated("key", "generator", None, "li").affects_authorization
