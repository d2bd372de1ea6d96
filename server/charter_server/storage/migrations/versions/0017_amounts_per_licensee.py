"""The statement months' amounts kept per licensee too (``statement_amounts`` gains
``licensee_id`` in its key).

``ReportUsage`` bounds a rights holder's statement month (``STATEMENT_AMOUNT_LIMIT``) so that every
statement stays inside 64 bits; with the amounts kept per rights holder only, one licensee that
reported the month up to its bound blocked every other licensee's money records of that rights
holder for the month. Each licensee now has a bound of its own, a tenth of the month's, checked
against its own row; the month's amount is the sum of its licensees' rows (a few per month).

The table is filled again from the usage records, in Python as in 0016 (a product of fee and uses
accepted before the fee bound may pass 64 bits: kept as the largest 64-bit value). Going back
adds each month's licensees up again.

Revision ID: 0017_amounts_per_licensee
Revises: 0016_statement_amounts
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision = "0017_amounts_per_licensee"
down_revision = "0016_statement_amounts"
branch_labels = None
depends_on = None

_LARGEST = 2**63 - 1
_MONTH = ("rights_holder_id", "statement_period", "currency")
_LENGTHS = {"rights_holder_id": 40, "statement_period": 7, "currency": 3, "licensee_id": 40}
_RECORDS = sa.table(
    "usage_records",
    sa.column("rights_holder_id"),
    sa.column("statement_period"),
    sa.column("currency"),
    sa.column("licensee_id"),
    sa.column("revenue_minor"),
    sa.column("fee_minor"),
    sa.column("uses"),
)


def _create(key: Sequence[str]) -> sa.Table:
    return op.create_table(
        "statement_amounts",
        *(sa.Column(name, sa.String(_LENGTHS[name]), nullable=False) for name in key),
        sa.Column("revenue", sa.BigInteger(), nullable=False),
        sa.Column("fees", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*key, name=op.f("pk_statement_amounts")),
        sqlite_with_rowid=False,
    )


def _fill(table: sa.Table, found: dict[tuple[str, ...], list[int]], key: Sequence[str]) -> None:
    rows = [
        {**dict(zip(key, k, strict=True)), "revenue": min(v[0], _LARGEST), "fees": min(v[1], _LARGEST)}
        for k, v in sorted(found.items())
    ]
    op.bulk_insert(table, rows)


def upgrade() -> None:
    key = (*_MONTH, "licensee_id")
    op.drop_table("statement_amounts")
    table = _create(key)
    found: dict[tuple[str, ...], list[int]] = {}
    records = sa.select(
        *(_RECORDS.c[name] for name in key), _RECORDS.c.revenue_minor, _RECORDS.c.fee_minor, _RECORDS.c.uses
    ).where((_RECORDS.c.revenue_minor > 0) | ((_RECORDS.c.fee_minor > 0) & (_RECORDS.c.uses > 0)))
    streamed = records.execution_options(stream_results=True, max_row_buffer=10_000)
    for *names, revenue, fee, uses in op.get_bind().execute(streamed):
        sums = found.setdefault(tuple(names), [0, 0])
        sums[0] += int(revenue)
        sums[1] += int(fee) * int(uses)
    _fill(table, found, key)


def downgrade() -> None:
    kept = sa.table("statement_amounts", *(sa.column(n) for n in (*_MONTH, "revenue", "fees")))
    found: dict[tuple[str, ...], list[int]] = {}
    for *names, revenue, fees in op.get_bind().execute(sa.select(*kept.c)):
        sums = found.setdefault(tuple(names), [0, 0])
        sums[0] += int(revenue)
        sums[1] += int(fees)
    op.drop_table("statement_amounts")
    _fill(_create(_MONTH), found, _MONTH)
