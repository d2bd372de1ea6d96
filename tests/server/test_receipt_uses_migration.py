"""Migration 0015 on both backends: the counters of receipt and decision-record uses take the
licensee of the usage record they counted, and going back adds up one id's counters again."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import command
from charter_server.storage import migrate
from charter_server.storage.database import Database
from charter_server.storage.tables import UsageRecordRow
from sqlalchemy import Engine

BEFORE = "0014_log_lookup_prefixes"
AFTER = "0015_receipt_uses_per_licensee"

_OLD_COUNTERS = sa.table("receipt_uses", sa.column("receipt_id"), sa.column("character_id"), sa.column("used"))


def _alembic(engine: Engine, operation: Any, revision: str) -> None:
    config = migrate.alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        operation(config, revision)


def _usage(number: int, licensee_id: str, receipt_id: str, character_id: str) -> dict[str, Any]:
    when = datetime(2026, 12, 1, tzinfo=UTC)
    return {
        "id": f"use_{number:032x}",
        "licensee_id": licensee_id,
        "idempotency_key": f"key-{number}",
        "fingerprint": "0" * 64,
        "receipt_id": receipt_id,
        "character_id": character_id,
        "rights_holder_id": f"rh_{'0' * 32}",
        "grant_id": f"grt_{'0' * 32}",
        "uses": 1,
        "duration_ms": 0,
        "currency": "",
        "revenue_minor": 0,
        "revenue_share_bps": 0,
        "fee_minor": 0,
        "happen_time": when,
        "happen_period": "2026-12",
        "statement_period": "2026-12",
        "accept_time": when,
    }


def test_counters_take_the_licensee_of_what_they_counted_and_going_back_merges_them(fresh_db: Database) -> None:
    engine = fresh_db.engine
    licensee, other = f"lic_{'1' * 32}", f"lic_{'2' * 32}"
    receipt, record, character = f"rcp_{'a' * 32}", f"dr_{'b' * 32}", f"chr_{'c' * 32}"
    _alembic(engine, command.upgrade, BEFORE)
    with engine.begin() as connection:
        connection.execute(
            sa.insert(UsageRecordRow.__table__),  # type: ignore[arg-type]
            [_usage(1, licensee, receipt, character), _usage(2, other, record, character)],
        )
        connection.execute(
            sa.insert(_OLD_COUNTERS),
            [
                {"receipt_id": receipt, "character_id": character, "used": 1},
                {"receipt_id": record, "character_id": character, "used": 1},
                {"receipt_id": f"rcp_{'d' * 32}", "character_id": character, "used": 1},  # no record: ''
            ],
        )

    _alembic(engine, command.upgrade, AFTER)
    with engine.connect() as connection:
        upgraded = sorted(connection.execute(sa.text("SELECT licensee_id, receipt_id, used FROM receipt_uses")))
        # The other licensee's record under the same id is counted apart from it.
        connection.execute(
            sa.text("INSERT INTO receipt_uses (licensee_id, receipt_id, character_id, used) VALUES (:l, :r, :c, 1)"),
            {"l": licensee, "r": record, "c": character},
        )
        connection.commit()
    _alembic(engine, command.downgrade, BEFORE)
    with engine.connect() as connection:
        merged = sorted(connection.execute(sa.text("SELECT receipt_id, used FROM receipt_uses")))

    assert [tuple(row) for row in upgraded] == [
        ("", f"rcp_{'d' * 32}", 1),
        (licensee, receipt, 1),
        (other, record, 1),
    ]
    assert [tuple(row) for row in merged] == [(record, 2), (receipt, 1), (f"rcp_{'d' * 32}", 1)]
