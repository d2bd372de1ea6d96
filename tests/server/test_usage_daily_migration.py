"""The migrations that add the daily roll-ups fill them: ``usage_daily`` from the usage records
already accepted, the roll-ups per character and per licensee from ``usage_daily``."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.script import ScriptDirectory
from charter_server.domain import ids
from charter_server.storage import migrate
from charter_server.storage.database import Database
from charter_server.storage.tables import (
    UsageDailyCharacterRow,
    UsageDailyLicenseeRow,
    UsageDailyRow,
    UsageRecordRow,
)
from sqlalchemy import insert, select


def _revision_creating(table: str) -> str:
    """The first revision (from the base) whose description names ``table``: the one that creates
    it (found by its description, so a renumbering at merge does not break this test)."""
    script = ScriptDirectory.from_config(migrate.alembic_config())
    naming = [revision for revision in script.walk_revisions() if f"``{table}``" in (revision.doc or "")]
    if not naming:
        raise AssertionError(f"no migration creates {table}")
    return str(naming[-1].revision)  # walk_revisions goes from the heads down


def _parent(revision: str) -> str:
    """The revision the given one follows."""
    before = ScriptDirectory.from_config(migrate.alembic_config()).get_revision(revision).down_revision
    assert isinstance(before, str)
    return before


def _downgrade(db: Database, revision: str) -> None:
    """Take the schema back down to ``revision`` (so the database is left as it was found)."""
    config = migrate.alembic_config()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def _record(holder: str, character: str, licensee: str, when: datetime, uses: int, duration: int) -> dict[str, object]:
    return {
        "id": ids.new_id("usage"),
        "licensee_id": licensee,
        "idempotency_key": ids.new_id("usage"),
        "fingerprint": "0" * 64,
        "receipt_id": ids.new_id("usage"),
        "character_id": character,
        "rights_holder_id": holder,
        "grant_id": "grt_x",
        "uses": uses,
        "duration_ms": duration,
        "currency": "",
        "revenue_minor": 0,
        "revenue_share_bps": 0,
        "fee_minor": 0,
        "happen_time": when,
        "happen_period": f"{when:%Y-%m}",
        "statement_period": f"{when:%Y-%m}",
        "accept_time": when,
    }


def test_the_roll_up_migration_adds_up_the_existing_records_per_utc_day(fresh_database_url: str) -> None:
    db = Database(fresh_database_url)
    try:
        revision = _revision_creating("usage_daily")
        before = _parent(revision)
        migrate.upgrade(db.engine, before)
        rows = [
            _record("rh_a", "chr_1", "lic_1", datetime(2031, 3, 1, 0, 0, 1, tzinfo=UTC), 1, 1500),
            _record("rh_a", "chr_1", "lic_1", datetime(2031, 3, 1, 23, 59, 59, 999000, tzinfo=UTC), 1, 500),
            _record("rh_a", "chr_1", "lic_1", datetime(2031, 3, 2, 0, 0, tzinfo=UTC), 0, 7000),
            _record("rh_a", "chr_1", "lic_2", datetime(2031, 3, 1, 12, 0, tzinfo=UTC), 1, 0),
            _record("rh_b", "chr_9", "lic_1", datetime(2031, 3, 1, 12, 0, tzinfo=UTC), 1, 0),
        ]
        with db.engine.begin() as connection:
            connection.execute(insert(UsageRecordRow.__table__), rows)
        migrate.upgrade(db.engine)
        with db.engine.connect() as connection:
            found = sorted(
                tuple(row)
                for row in connection.execute(
                    select(
                        UsageDailyRow.rights_holder_id,
                        UsageDailyRow.day,
                        UsageDailyRow.character_id,
                        UsageDailyRow.licensee_id,
                        UsageDailyRow.records,
                        UsageDailyRow.uses,
                        UsageDailyRow.duration_ms,
                    )
                )
            )
        _downgrade(db, before)
    finally:
        db.dispose()
    assert found == [
        ("rh_a", "2031-03-01", "chr_1", "lic_1", 2, 2, 2000),
        ("rh_a", "2031-03-01", "chr_1", "lic_2", 1, 1, 0),
        ("rh_a", "2031-03-02", "chr_1", "lic_1", 1, 0, 7000),
        ("rh_b", "2031-03-01", "chr_9", "lic_1", 1, 1, 0),
    ]


def _daily(
    holder: str, day: str, character: str, licensee: str, records: int, uses: int, duration: int
) -> dict[str, object]:
    return {
        "rights_holder_id": holder,
        "day": day,
        "character_id": character,
        "licensee_id": licensee,
        "records": records,
        "uses": uses,
        "duration_ms": duration,
    }


def test_the_roll_ups_per_character_and_per_licensee_add_up_usage_daily(fresh_database_url: str) -> None:
    db = Database(fresh_database_url)
    try:
        revision = _revision_creating("usage_daily_characters")
        assert revision == _revision_creating("usage_daily_licensees")
        before = _parent(revision)
        migrate.upgrade(db.engine, before)
        rows = [
            _daily("rh_a", "2031-03-01", "chr_1", "lic_1", 2, 2, 2000),
            _daily("rh_a", "2031-03-01", "chr_1", "lic_2", 1, 1, 0),
            _daily("rh_a", "2031-03-01", "chr_2", "lic_2", 3, 0, 10),
            _daily("rh_a", "2031-03-02", "chr_1", "lic_1", 1, 0, 7000),
            _daily("rh_b", "2031-03-01", "chr_9", "lic_1", 1, 1, 0),
        ]
        with db.engine.begin() as connection:
            connection.execute(insert(UsageDailyRow.__table__), rows)
        migrate.upgrade(db.engine)
        with db.engine.connect() as connection:
            per_character = sorted(
                tuple(row)
                for row in connection.execute(
                    select(
                        UsageDailyCharacterRow.rights_holder_id,
                        UsageDailyCharacterRow.day,
                        UsageDailyCharacterRow.character_id,
                        UsageDailyCharacterRow.records,
                        UsageDailyCharacterRow.uses,
                        UsageDailyCharacterRow.duration_ms,
                    )
                )
            )
            per_licensee = sorted(
                tuple(row)
                for row in connection.execute(
                    select(
                        UsageDailyLicenseeRow.rights_holder_id,
                        UsageDailyLicenseeRow.day,
                        UsageDailyLicenseeRow.licensee_id,
                        UsageDailyLicenseeRow.records,
                        UsageDailyLicenseeRow.uses,
                        UsageDailyLicenseeRow.duration_ms,
                    )
                )
            )
        _downgrade(db, before)
    finally:
        db.dispose()
    assert per_character == [
        ("rh_a", "2031-03-01", "chr_1", 3, 3, 2000),
        ("rh_a", "2031-03-01", "chr_2", 3, 0, 10),
        ("rh_a", "2031-03-02", "chr_1", 1, 0, 7000),
        ("rh_b", "2031-03-01", "chr_9", 1, 1, 0),
    ]
    assert per_licensee == [
        ("rh_a", "2031-03-01", "lic_1", 2, 2, 2000),
        ("rh_a", "2031-03-01", "lic_2", 4, 1, 10),
        ("rh_a", "2031-03-02", "lic_1", 1, 0, 7000),
        ("rh_b", "2031-03-01", "lic_1", 1, 1, 0),
    ]
