"""Storage on both backends: the migrations make the schema, repositories round-trip domain records,
the unit of work rolls back unless committed, and contention becomes a retryable STORAGE_BUSY."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import grpc
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from charter.v1 import catalog_service_pb2 as pb
from charter.v1 import rights_holder_pb2
from charter_server.domain import ids
from charter_server.domain.errors import StorageBusy
from charter_server.domain.models import ApiKey, Licensee, LifecycleState, RightsHolder, Role
from charter_server.storage import migrate
from charter_server.storage.database import Database
from charter_server.storage.dialect import SEQUENCER_CACHE_KIB, SEQUENCER_WAL_AUTOCHECKPOINT_PAGES
from charter_server.storage.tables import Base, RightsHolderRow
from charter_server.storage.uow import translate_db_error
from sqlalchemy import Engine, insert, inspect, select, text
from sqlalchemy import exc as sa_exc

from ._support import bearer, catalog_stub, open_channel, reason

TABLES = {
    "rights_holders",
    "licensees",
    "api_keys",
    "request_records",
    "characters",
    "character_names",
    "terms_versions",
    "signing_keys",
    "quota_counters",
    "grant_uses",
    "authorizations",
    "usage_records",
    "usage_daily",
    "usage_daily_characters",
    "usage_daily_licensees",
    "receipt_uses",
    "statement_closures",
    "statement_amounts",
    "grants",
    "revocation_events",
    "counters",
    "deployment_settings",
    "licensee_keys",
    "quota_leases",
    "log_pending",
    "log_entries",
    "log_tiles",
    "log_checkpoints",
    "log_head",
    "decision_hours",
}
TOKYO = timezone(timedelta(hours=9))


def _alembic(engine: Engine, operation: Any, revision: str) -> None:
    config = migrate.alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        operation(config, revision)


def _schema(engine: Engine) -> dict[str, Any]:
    """Tables with their columns, indexes, unique and foreign keys, and the Alembic revision."""
    inspector = inspect(engine)
    shape: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        shape[table] = (
            [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            sorted(i["name"] or "" for i in inspector.get_indexes(table)),
            sorted(u["name"] or "" for u in inspector.get_unique_constraints(table)),
            sorted(f["name"] or "" for f in inspector.get_foreign_keys(table)),
        )
    with engine.connect() as connection:
        shape["revision"] = MigrationContext.configure(connection).get_current_revision()
    return shape


def _holder(**changes: Any) -> RightsHolder:
    when = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=TOKYO)
    values: dict[str, Any] = {
        "id": ids.new_id("rights_holder"),
        "display_name": "Studio Kumo",
        "legal_name": "Kumo Animation K.K.",
        "contact_email": "rights@kumo.example",
        "revenue_share_account": "acct-7",
        "state": LifecycleState.ACTIVE,
        "create_time": when,
        "update_time": when,
        "archive_time": None,
    }
    values.update(changes)
    return RightsHolder(**values)


def _licensee(**changes: Any) -> Licensee:
    when = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    values: dict[str, Any] = {
        "id": ids.new_id("licensee"),
        "display_name": "Render App",
        "legal_name": "",
        "contact_email": "ops@render.example",
        "platform": "render-app",
        "state": LifecycleState.ACTIVE,
        "create_time": when,
        "update_time": when,
        "archive_time": None,
    }
    values.update(changes)
    return Licensee(**values)


def _api_key(**changes: Any) -> ApiKey:
    values: dict[str, Any] = {
        "id": ids.new_id("api_key"),
        "display_name": "staff",
        "role": Role.ADMIN,
        "rights_holder_id": None,
        "licensee_id": None,
        "expire_time": None,
        "creator_key_id": "bootstrap",
        "create_time": datetime(2030, 6, 1, 12, 0, tzinfo=UTC),
        "revoke_time": None,
    }
    values.update(changes)
    return ApiKey(**values)


def _assert_utc(*values: datetime | None) -> None:
    for value in values:
        if value is not None:
            assert value.tzinfo is not None
            assert value.utcoffset() == timedelta(0)


# Migrations ---------------------------------------------------------------------------------


def test_migrations_make_the_schema(fresh_db: Database) -> None:
    assert not migrate.is_current(fresh_db.engine)

    migrate.upgrade(fresh_db.engine)

    assert migrate.is_current(fresh_db.engine)
    assert set(inspect(fresh_db.engine).get_table_names()) == TABLES | {"alembic_version"}


def test_upgrading_twice_changes_nothing(fresh_db: Database) -> None:
    migrate.upgrade(fresh_db.engine)
    before = _schema(fresh_db.engine)

    migrate.upgrade(fresh_db.engine)

    assert _schema(fresh_db.engine) == before
    assert migrate.is_current(fresh_db.engine)


def test_downgrade_to_base_then_upgrade_again(fresh_db: Database) -> None:
    migrate.upgrade(fresh_db.engine)
    before = _schema(fresh_db.engine)

    _alembic(fresh_db.engine, command.downgrade, "base")
    after_downgrade = set(inspect(fresh_db.engine).get_table_names())
    current_after_downgrade = migrate.is_current(fresh_db.engine)
    migrate.upgrade(fresh_db.engine)

    assert after_downgrade <= {"alembic_version"}
    assert not current_after_downgrade
    assert _schema(fresh_db.engine) == before
    assert migrate.is_current(fresh_db.engine)


def test_models_match_the_migrations(fresh_db: Database) -> None:
    migrate.upgrade(fresh_db.engine)

    with fresh_db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)

    assert differences == []


# Repositories -------------------------------------------------------------------------------


def test_rights_holders_round_trip_with_aware_utc_times(migrated_db: Database) -> None:
    holder = _holder()
    archived = _holder(state=LifecycleState.ARCHIVED, archive_time=datetime(2032, 1, 1, 0, 0, 0, 1, tzinfo=TOKYO))

    with migrated_db.uow(write=True) as uow:
        uow.rights_holders.add(holder)
        uow.rights_holders.add(archived)
        uow.commit()
    with migrated_db.uow() as uow:
        loaded = uow.rights_holders.get(holder.id)
        loaded_archived = uow.rights_holders.get(archived.id)
        missing = uow.rights_holders.get(ids.new_id("rights_holder"))

    assert loaded == holder
    assert loaded_archived == archived
    assert missing is None
    assert loaded is not None and loaded_archived is not None
    _assert_utc(loaded.create_time, loaded.update_time, loaded_archived.archive_time)
    assert loaded_archived.archive_time == datetime(2031, 12, 31, 15, 0, 0, 1, tzinfo=UTC)


def test_rights_holder_save_and_filtered_list(migrated_db: Database) -> None:
    holder = _holder(display_name="Zephyr Works")
    with migrated_db.uow(write=True) as uow:
        uow.rights_holders.add(holder)
        uow.commit()
    changed = _holder(
        id=holder.id,
        display_name="Zephyr Works Renamed",
        legal_name="Zephyr K.K.",
        update_time=datetime(2033, 3, 3, tzinfo=UTC),
    )

    with migrated_db.uow(write=True) as uow:
        uow.rights_holders.save(changed)
        uow.commit()
    with migrated_db.uow() as uow:
        found, more = uow.rights_holders.list(
            state=LifecycleState.ACTIVE, query="zephyr works re", only_id=None, after=0, limit=10
        )
        none_archived, _ = uow.rights_holders.list(
            state=LifecycleState.ARCHIVED, query="zephyr", only_id=None, after=0, limit=10
        )

    assert found == [changed]
    assert more is None
    assert none_archived == []


def test_licensees_page_in_creation_order(migrated_db: Database) -> None:
    created = [_licensee(display_name=f"App {n}", platform="paged-app") for n in range(3)]
    with migrated_db.uow(write=True) as uow:
        for licensee in created:
            uow.licensees.add(licensee)
        uow.commit()

    with migrated_db.uow() as uow:
        first, after = uow.licensees.list(state=LifecycleState.ACTIVE, query="", platform="paged-app", after=0, limit=2)
        assert after is not None
        second, end = uow.licensees.list(
            state=LifecycleState.ACTIVE, query="", platform="paged-app", after=after, limit=2
        )

    assert first + second == created
    assert end is None
    _assert_utc(*(lic.create_time for lic in first + second))


def test_api_keys_round_trip_and_revoke(migrated_db: Database) -> None:
    holder = _holder()
    key = _api_key(
        role=Role.RIGHTS_HOLDER, rights_holder_id=holder.id, expire_time=datetime(2040, 1, 1, 9, 0, tzinfo=TOKYO)
    )
    revoked_at = datetime(2035, 5, 5, 5, 5, 5, 5, tzinfo=UTC)
    with migrated_db.uow(write=True) as uow:
        uow.rights_holders.add(holder)
        uow.api_keys.add(key, "ab" * 32)
        uow.commit()

    with migrated_db.uow() as uow:
        loaded = uow.api_keys.get_with_hash(key.id)
        active = uow.api_keys.list(role=Role.RIGHTS_HOLDER, active_at=revoked_at, after=0, limit=100)[0]
    with migrated_db.uow(write=True) as uow:
        uow.api_keys.revoke(key.id, revoked_at)
        uow.commit()
    with migrated_db.uow() as uow:
        after_revoke = uow.api_keys.get(key.id)
        still_active = uow.api_keys.list(role=Role.RIGHTS_HOLDER, active_at=revoked_at, after=0, limit=100)[0]
        admins = uow.api_keys.count_admins()

    assert loaded == (key, "ab" * 32)
    _assert_utc(loaded[0].expire_time, loaded[0].create_time)
    assert key in active
    assert after_revoke is not None
    assert after_revoke.revoke_time == revoked_at
    _assert_utc(after_revoke.revoke_time)
    assert key.id not in {k.id for k in still_active}
    assert admins == 0


def test_request_records_are_written_once(migrated_db: Database) -> None:
    when = datetime(2030, 1, 1, tzinfo=UTC)
    with migrated_db.uow(write=True) as uow:
        first = uow.request_records.add("key_a", "CreateLicensee", "req-1", "f" * 64, "lic_1", when)
        again = uow.request_records.add("key_a", "CreateLicensee", "req-1", "0" * 64, "lic_2", when)
        other_caller = uow.request_records.add("key_b", "CreateLicensee", "req-1", "0" * 64, "lic_3", when)
        uow.commit()
    with migrated_db.uow() as uow:
        recorded = uow.request_records.get("key_a", "CreateLicensee", "req-1")

    assert (first, again, other_caller) == (True, False, True)
    assert recorded == ("f" * 64, "lic_1")


def test_naive_datetimes_are_refused(migrated_db: Database) -> None:
    with pytest.raises(sa_exc.StatementError) as caught, migrated_db.uow(write=True) as uow:
        uow.rights_holders.add(_holder(create_time=datetime(2030, 1, 1)))

    assert isinstance(caught.value.orig, ValueError)


def test_foreign_keys_are_enforced(migrated_db: Database) -> None:
    dangling = _api_key(role=Role.GENERATOR, licensee_id=ids.new_id("licensee"))

    with pytest.raises(sa_exc.IntegrityError) as caught, migrated_db.uow(write=True) as uow:
        uow.api_keys.add(dangling, "cd" * 32)
        uow.commit()
    with migrated_db.uow() as uow:
        stored = uow.api_keys.get(dangling.id)

    assert translate_db_error(caught.value) is None  # a real bug, not a retryable condition
    assert stored is None


def test_an_integer_overflow_is_a_bug_not_a_retryable_outage(migrated_db: Database) -> None:
    """SQLite raises "integer overflow" as an OperationalError and PostgreSQL "out of range": both
    are bugs a retry repeats, never UNAVAILABLE."""
    big = "CAST(9223372036854775807 AS BIGINT)"  # SQLite's + turns to floating point; its sum() raises
    overflow = text(f"SELECT sum(x) FROM (SELECT {big} AS x UNION ALL SELECT 1) AS t")

    with pytest.raises(sa_exc.DBAPIError) as caught, migrated_db.uow() as uow:
        if uow.session.get_bind().dialect.name == "postgresql":
            overflow = text(f"SELECT {big} + 1")
        uow.session.execute(overflow).all()

    assert translate_db_error(caught.value) is None


# Unit of work -------------------------------------------------------------------------------


def test_unit_of_work_rolls_back_unless_committed(migrated_db: Database) -> None:
    forgotten, failed, kept = _holder(), _holder(), _holder()

    with migrated_db.uow(write=True) as uow:
        uow.rights_holders.add(forgotten)
    with pytest.raises(RuntimeError), migrated_db.uow(write=True) as uow:
        uow.rights_holders.add(failed)
        raise RuntimeError("boom")
    with migrated_db.uow(write=True) as uow:
        uow.rights_holders.add(kept)
        uow.commit()
    with migrated_db.uow() as uow:
        stored = {h.id for h in (uow.rights_holders.get(x.id) for x in (forgotten, failed, kept)) if h}

    assert stored == {kept.id}


# SQLite -------------------------------------------------------------------------------------


def test_sqlite_pragmas_are_in_force(sqlite_url: str) -> None:
    db = Database(sqlite_url, busy_timeout_ms=1234)
    try:
        with db.engine.connect() as connection:
            journal = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
            foreign_keys = connection.exec_driver_sql("PRAGMA foreign_keys").scalar()
            busy = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
    finally:
        db.dispose()

    assert str(journal).lower() == "wal"
    assert foreign_keys == 1
    assert busy == 1234


def test_the_sequencer_writes_on_a_sqlite_connection_of_its_own(sqlite_url: str) -> None:
    # One connection batch after batch (its page cache then stays valid between batches), with a
    # larger page cache and fewer WAL checkpoints than the other connections, which keep SQLite's.
    db = Database(sqlite_url, busy_timeout_ms=1234)
    used: list[Any] = []
    settings: list[tuple[Any, ...]] = []
    try:
        for _ in range(3):
            with db.sequencer_uow() as uow:
                connection = uow.session.connection()
                used.append(connection.connection.dbapi_connection)
                settings.append(
                    tuple(
                        connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                        for name in ("cache_size", "wal_autocheckpoint", "busy_timeout", "synchronous")
                    )
                )
        with db.uow(write=True) as uow:
            connection = uow.session.connection()
            other = connection.connection.dbapi_connection
            others = tuple(
                connection.exec_driver_sql(f"PRAGMA {name}").scalar() for name in ("cache_size", "wal_autocheckpoint")
            )
    finally:
        db.dispose()

    assert all(connection is used[0] for connection in used)
    assert other is not used[0]
    full = 2  # PRAGMA synchronous: FULL, as every connection's
    assert set(settings) == {(-SEQUENCER_CACHE_KIB, SEQUENCER_WAL_AUTOCHECKPOINT_PAGES, 1234, full)}
    assert others == (-2000, 1000)


def _sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def _hold_write_lock(url: str) -> sqlite3.Connection:
    """Another connection holding SQLite's write lock until it is rolled back."""
    holder = sqlite3.connect(_sqlite_path(url), isolation_level=None, timeout=0.1)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_a_locked_sqlite_database_is_storage_busy_in_the_unit_of_work(sqlite_url: str) -> None:
    db = Database(sqlite_url, busy_timeout_ms=20)
    holder = _hold_write_lock(sqlite_url)
    try:
        with pytest.raises(StorageBusy) as caught, db.uow(write=True) as uow:
            uow.rights_holders.add(_holder())
            uow.commit()
        with db.uow() as uow:  # readers are not blocked by the writer under WAL
            readable = uow.rights_holders.list(state=LifecycleState.ACTIVE, query="", only_id=None, after=0, limit=1)
    finally:
        holder.rollback()
        holder.close()
        db.dispose()

    assert caught.value.reason == "STORAGE_BUSY"
    assert readable == ([], None)


def test_a_locked_sqlite_database_makes_a_write_rpc_unavailable(sqlite_url: str, server_factory: Any) -> None:
    srv = server_factory(database_url=sqlite_url, db_busy_timeout_ms=50)
    admin = srv.services.access.create_bootstrap_admin("lock test").secret
    request = pb.CreateRightsHolderRequest(
        rights_holder=rights_holder_pb2.RightsHolder(display_name="Locked Studio", contact_email="a@b.example"),
        request_id="lock-test-1",
    )
    with open_channel(f"127.0.0.1:{srv.port}") as channel:
        stub = catalog_stub(channel)
        stub.ListRightsHolders(pb.ListRightsHoldersRequest(), metadata=bearer(admin), timeout=5)
        holder = _hold_write_lock(sqlite_url)
        try:
            with pytest.raises(grpc.RpcError) as caught:
                stub.CreateRightsHolder(request, metadata=bearer(admin), timeout=5)
        finally:
            holder.rollback()
            holder.close()
        with sqlite3.connect(_sqlite_path(sqlite_url)) as check:
            rows_after_failure = check.execute("SELECT count(*) FROM rights_holders").fetchone()[0]
            records_after_failure = check.execute("SELECT count(*) FROM request_records").fetchone()[0]
        stub.CreateRightsHolder(request, metadata=bearer(admin), timeout=5)  # the retry succeeds
        listed = stub.ListRightsHolders(
            pb.ListRightsHoldersRequest(query="Locked Studio"), metadata=bearer(admin), timeout=5
        )

    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert reason(caught.value) == "STORAGE_BUSY"
    assert (rows_after_failure, records_after_failure) == (0, 0)
    assert len(listed.rights_holders) == 1


# PostgreSQL ---------------------------------------------------------------------------------


@pytest.mark.postgres
def test_a_postgresql_serialization_failure_is_storage_busy(fresh_postgres_url: str) -> None:
    import psycopg

    db = Database(fresh_postgres_url)
    migrate.upgrade(db.engine)

    def row(name: str) -> dict[str, Any]:
        now = datetime.now(UTC)
        return {
            "id": ids.new_id("rights_holder"),
            "display_name": name,
            "legal_name": "",
            "contact_email": "a@b.c",
            "revenue_share_account": "",
            "state": "active",
            "create_time": now,
            "update_time": now,
        }

    count = select(text("count(*)")).select_from(RightsHolderRow).where(RightsHolderRow.display_name == "Skew")
    first = db.engine.connect().execution_options(isolation_level="SERIALIZABLE")
    second = db.engine.connect().execution_options(isolation_level="SERIALIZABLE")
    try:
        # Write skew: each transaction reads what the other one writes; SSI must abort one of them.
        first.begin()
        second.begin()
        first.execute(count)
        second.execute(count)
        first.execute(insert(RightsHolderRow).values(**row("Skew")))
        with pytest.raises(sa_exc.DBAPIError) as caught:
            second.execute(insert(RightsHolderRow).values(**row("Skew")))
            first.commit()
            second.commit()
    finally:
        second.close()
        first.close()
        db.dispose()

    translated = translate_db_error(caught.value)
    assert isinstance(caught.value.orig, psycopg.errors.SerializationFailure)
    assert isinstance(translated, StorageBusy)
    assert translated.reason == "STORAGE_BUSY"


@pytest.mark.postgres
@pytest.mark.parametrize("condition", ["serialization_failure", "deadlock_detected", "lock_not_available"])
def test_postgresql_contention_leaves_the_unit_of_work_as_storage_busy(fresh_postgres_url: str, condition: str) -> None:
    db = Database(fresh_postgres_url)
    try:
        with pytest.raises(StorageBusy) as caught, db.uow(write=True) as uow:
            uow.session.execute(text(f"DO $$ BEGIN RAISE EXCEPTION 'contention' USING ERRCODE = '{condition}'; END $$"))
    finally:
        db.dispose()

    assert caught.value.reason == "STORAGE_BUSY"
