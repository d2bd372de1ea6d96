"""The revenue and the fees of each rights holder's statement month per currency
(``statement_amounts``), filled from the usage records accepted so far.

``ReportUsage`` refuses a record that would take a statement month past its bound of revenue or
fees (``STATEMENT_AMOUNT_LIMIT``); summing the month's records for every batch cost time in
proportion to the month's records, so the amounts are kept in one row per month and currency.

The fill adds the records up in Python: records accepted before the fee bound may hold products
of fee and uses past 64 bits, which a database's sum would refuse. An amount past 64 bits is kept
as the largest 64-bit value (the month is past its bound either way).

Revision ID: 0016_statement_amounts
Revises: 0015_receipt_uses_per_licensee
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_statement_amounts"
down_revision = "0015_receipt_uses_per_licensee"
branch_labels = None
depends_on = None

_LARGEST = 2**63 - 1
_RECORDS = sa.table(
    "usage_records",
    sa.column("rights_holder_id"),
    sa.column("statement_period"),
    sa.column("currency"),
    sa.column("revenue_minor"),
    sa.column("fee_minor"),
    sa.column("uses"),
)


def upgrade() -> None:
    amounts = op.create_table(
        "statement_amounts",
        sa.Column("rights_holder_id", sa.String(40), nullable=False),
        sa.Column("statement_period", sa.String(7), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("revenue", sa.BigInteger(), nullable=False),
        sa.Column("fees", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("rights_holder_id", "statement_period", "currency", name=op.f("pk_statement_amounts")),
        sqlite_with_rowid=False,
    )
    keys = (_RECORDS.c.rights_holder_id, _RECORDS.c.statement_period, _RECORDS.c.currency)
    found: dict[tuple[str, str, str], list[int]] = {}
    records = sa.select(*keys, _RECORDS.c.revenue_minor, _RECORDS.c.fee_minor, _RECORDS.c.uses).where(
        (_RECORDS.c.revenue_minor > 0) | ((_RECORDS.c.fee_minor > 0) & (_RECORDS.c.uses > 0))
    )
    streamed = records.execution_options(stream_results=True, max_row_buffer=10_000)
    for holder, period, currency, revenue, fee, uses in op.get_bind().execute(streamed):
        sums = found.setdefault((holder, period, currency), [0, 0])
        sums[0] += int(revenue)
        sums[1] += int(fee) * int(uses)
    op.bulk_insert(
        amounts,
        [
            {
                "rights_holder_id": holder,
                "statement_period": period,
                "currency": currency,
                "revenue": min(revenue, _LARGEST),
                "fees": min(fees, _LARGEST),
            }
            for (holder, period, currency), (revenue, fees) in sorted(found.items())
        ],
    )


def downgrade() -> None:
    op.drop_table("statement_amounts")
