"""The migration that adds the daily roll-up fills it from the usage records already accepted."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.script import ScriptDirectory
from charter_server.domain import ids
from charter_server.storage import migrate
from charter_server.storage.database import Database
from charter_server.storage.tables import UsageDailyRow, UsageRecordRow
from sqlalchemy import insert, select


def _roll_up_revision() -> str:
    """The revision that creates ``usage_daily`` (found by its description, so a renumbering at
    merge does not break this test)."""
    script = ScriptDirectory.from_config(migrate.alembic_config())
    for revision in script.walk_revisions():
        if "usage_daily" in (revision.doc or ""):
            return str(revision.revision)
    raise AssertionError("no migration creates usage_daily")


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
        revision = _roll_up_revision()
        script = ScriptDirectory.from_config(migrate.alembic_config())
        before = script.get_revision(revision).down_revision
        assert isinstance(before, str)
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
        config = migrate.alembic_config()
        with db.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, before)
    finally:
        db.dispose()
    assert found == [
        ("rh_a", "2031-03-01", "chr_1", "lic_1", 2, 2, 2000),
        ("rh_a", "2031-03-01", "chr_1", "lic_2", 1, 1, 0),
        ("rh_a", "2031-03-02", "chr_1", "lic_1", 1, 0, 7000),
        ("rh_b", "2031-03-01", "chr_9", "lic_1", 1, 1, 0),
    ]
