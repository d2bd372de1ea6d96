"""Migrations 0016 and 0017 on both backends: each statement month's revenue and fees per currency
(and, from 0017, per licensee) are added up from the usage records accepted before it, in Python (a
product of fee and uses accepted before the fee bound may pass 64 bits: kept as the largest 64-bit
value); going back from 0017 adds each month's licensees up, from 0016 drops the amounts."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import command
from charter_server.storage.database import Database
from charter_server.storage.tables import UsageRecordRow

from .test_receipt_uses_migration import _alembic, _usage

BEFORE = "0015_receipt_uses_per_licensee"
AFTER = "0016_statement_amounts"
PER_LICENSEE = "0017_amounts_per_licensee"
SELECT_PER_LICENSEE = (
    "SELECT rights_holder_id, statement_period, currency, licensee_id, revenue, fees FROM statement_amounts"
)
LARGEST = 2**63 - 1


def _record(number: int, holder: str, period: str, currency: str, revenue: int, fee: int, uses: int) -> dict[str, Any]:
    row = _usage(number, f"lic_{'1' * 32}", f"rcp_{number:032x}", f"chr_{'c' * 32}")
    row.update(
        rights_holder_id=holder,
        statement_period=period,
        currency=currency,
        revenue_minor=revenue,
        fee_minor=fee,
        uses=uses,
    )
    return row


def test_the_months_amounts_are_added_up_from_the_records_and_going_back_drops_them(fresh_db: Database) -> None:
    engine = fresh_db.engine
    one, two = f"rh_{'1' * 32}", f"rh_{'2' * 32}"
    _alembic(engine, command.upgrade, BEFORE)
    with engine.begin() as connection:
        connection.execute(
            sa.insert(UsageRecordRow.__table__),  # type: ignore[arg-type]
            [
                _record(1, one, "2026-11", "USD", 1_000, 20, 3),
                _record(2, one, "2026-11", "USD", 500, 0, 1),
                _record(3, one, "2026-11", "EUR", 7, 0, 1),
                _record(4, one, "2026-12", "USD", 0, 0, 1),  # no money: no row
                _record(5, two, "2026-12", "JPY", 0, 2**62, 2),  # fee x uses past 64 bits
                _record(6, two, "2026-12", "JPY", 9, 2**62, 1),
            ],
        )

    _alembic(engine, command.upgrade, AFTER)
    with engine.connect() as connection:
        upgraded = sorted(tuple(row) for row in connection.execute(sa.text("SELECT * FROM statement_amounts")))
    _alembic(engine, command.downgrade, BEFORE)
    left = sa.inspect(engine).get_table_names()

    assert upgraded == [
        (one, "2026-11", "EUR", 7, 0),
        (one, "2026-11", "USD", 1_500, 60),
        (two, "2026-12", "JPY", 9, LARGEST),
    ]
    assert "statement_amounts" not in left


def test_0017_keeps_the_amounts_per_licensee_and_going_back_adds_the_licensees_up(fresh_db: Database) -> None:
    engine = fresh_db.engine
    one, two = f"rh_{'1' * 32}", f"rh_{'2' * 32}"
    first, second = f"lic_{'1' * 32}", f"lic_{'2' * 32}"
    _alembic(engine, command.upgrade, AFTER)
    rows = [
        _record(1, one, "2026-11", "USD", 1_000, 20, 3),
        _record(2, one, "2026-11", "USD", 500, 0, 1),
        _record(3, two, "2026-12", "JPY", 0, 2**62, 2),  # fee x uses past 64 bits
        _record(4, one, "2026-11", "USD", 4, 0, 1),
        _record(5, one, "2026-12", "USD", 0, 0, 1),  # no money: no row
    ]
    rows[3]["licensee_id"] = second
    with engine.begin() as connection:
        connection.execute(sa.insert(UsageRecordRow.__table__), rows)  # type: ignore[arg-type]

    _alembic(engine, command.upgrade, PER_LICENSEE)
    with engine.connect() as connection:
        upgraded = sorted(tuple(row) for row in connection.execute(sa.text(SELECT_PER_LICENSEE)))
        connection.execute(
            sa.text("UPDATE statement_amounts SET revenue = revenue + 6 WHERE licensee_id = :l"), {"l": second}
        )
        connection.commit()
    _alembic(engine, command.downgrade, AFTER)
    with engine.connect() as connection:
        back = sorted(tuple(row) for row in connection.execute(sa.text("SELECT * FROM statement_amounts")))

    assert upgraded == [
        (one, "2026-11", "USD", first, 1_500, 60),
        (one, "2026-11", "USD", second, 4, 0),
        (two, "2026-12", "JPY", first, 0, LARGEST),
    ]
    assert back == [(one, "2026-11", "USD", 1_510, 60), (two, "2026-12", "JPY", 0, LARGEST)]
