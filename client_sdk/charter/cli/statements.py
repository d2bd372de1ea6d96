"""`charter statements`: revenue-share statements of rights holders; show, list, close a month.

Every amount is an integer number of minor units of its currency (cents for USD, yen for JPY),
as the server computed it: never converted through floating point. People see amounts formatted
with their currency (`$12.34`, `¥1,234`); CSV and JSON keep the integers.

`charter statements show --csv` writes one row per statement line, then one row per currency
total (`character_id` is `TOTAL`, the character's and licensee's columns and
`adjustment_for_period` are empty), with the columns of `CSV_COLUMNS`.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Sequence
from typing import Annotated

import typer

from charter.cli import _output
from charter.cli._context import JsonOption, RightsHolderOption, rights_holder_of, settings
from charter.cli._money import money
from charter.cli._tables import EMPTY, Cell, Column, Kind, Listing, Named, render
from charter.spreadsheet import csv_cell
from charter.v1 import usage_pb2

app = typer.Typer(
    help="Statements: what rights holders' characters earned per month or date range; show, list, close.",
    no_args_is_help=True,
)

CSV_COLUMNS = (
    "rights_holder_id",
    "rights_holder_name",
    "period",
    "start_date",
    "end_date",
    "state",
    "character_id",
    "character_name",
    "licensee_id",
    "licensee_name",
    "currency",
    "adjustment_for_period",
    "records",
    "uses",
    "duration_milliseconds",
    "revenue_minor_units",
    "revenue_share_minor_units",
    "fee_minor_units",
    "owed_minor_units",
)
"""The columns of `charter statements show --csv`, in order."""

TOTAL = "TOTAL"
"""The `character_id` of a CSV row that holds a currency's total."""

_AMOUNTS = ("records", "uses", "duration (s)", "revenue", "share", "fees", "owed")


def _state(statement: usage_pb2.Statement) -> str:
    return _output.field_text(statement, "state")


def _seconds(milliseconds: int) -> str:
    # Integer arithmetic: 12500 ms is "12.500", exactly.
    sign = "-" if milliseconds < 0 else ""
    whole, rest = divmod(abs(milliseconds), 1000)
    return f"{sign}{whole}.{rest:03d}"


def _amounts(item: usage_pb2.StatementLine | usage_pb2.StatementTotal) -> list[str]:
    currency = item.currency_code
    return [
        str(item.records),
        str(item.uses),
        _seconds(item.duration_milliseconds),
        money(item.revenue_minor_units, currency),
        money(item.revenue_share_minor_units, currency),
        money(item.fee_minor_units, currency),
        money(item.owed_minor_units, currency),
    ]


def _sums(item: usage_pb2.StatementLine | usage_pb2.StatementTotal) -> list[int]:
    return [
        item.records,
        item.uses,
        item.duration_milliseconds,
        item.revenue_minor_units,
        item.revenue_share_minor_units,
        item.fee_minor_units,
        item.owed_minor_units,
    ]


def statement_csv(statement: usage_pb2.Statement) -> str:
    """Returns a statement as CSV text: a header of `CSV_COLUMNS`, its lines, then its totals.

    A text cell starting like a formula (``=``, ``+``, ``-``, ``@``, tab or line break) is written
    with a leading apostrophe, as the console's CSV does (`charter.spreadsheet.csv_cell`).
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    head = [
        statement.rights_holder_id,
        statement.rights_holder_display_name,
        statement.period,
        statement.start_date,
        statement.end_date,
        _state(statement),
    ]
    rows = [
        [*head, *_names(line), line.currency_code, line.adjustment_for_period, *_sums(line)] for line in statement.lines
    ]
    rows += [[*head, TOTAL, "", "", "", total.currency_code, "", *_sums(total)] for total in statement.totals]
    # Names are the other party's choice: a cell starting like a formula is written as text.
    writer.writerows([csv_cell(cell) for cell in row] for row in rows)
    return out.getvalue()


def _names(line: usage_pb2.StatementLine) -> list[str]:
    return [line.character_id, line.character_name, line.licensee_id, line.licensee_display_name]


def _named(id: str, name: str) -> str:
    return f"{id} ({name})" if name else id


def print_statement(statement: usage_pb2.Statement) -> None:
    """Prints a statement for people: what it covers, its lines and its totals per currency."""
    span = statement.period or f"{statement.start_date} to {statement.end_date}"
    typer.echo(f"statement: {span} ({_state(statement)})")
    _output.say(f"rights holder: {_named(statement.rights_holder_id, statement.rights_holder_display_name)}")
    typer.echo(f"days: {statement.start_date} to {statement.end_date} (UTC)")
    if statement.HasField("close_time"):
        typer.echo(f"closed at: {_output.field_text(statement, 'close_time')}")
    if statement.licensee_id:
        _output.say(f"licensee: {_named(statement.licensee_id, statement.licensee_display_name)}")
    columns = [
        Column("character", Kind.ID),
        Column("licensee", Kind.ID),
        Column("currency"),
        Column("adjustment for"),
        *(Column(name, Kind.NUMBER) for name in _AMOUNTS),
    ]
    rows: list[list[Cell]] = [
        [
            Named(line.character_id, line.character_name),
            Named(line.licensee_id, line.licensee_display_name),
            line.currency_code or EMPTY,
            line.adjustment_for_period or EMPTY,
            *_amounts(line),
        ]
        for line in statement.lines
    ]
    render(Listing("lines", columns, rows, caption=f"{len(statement.lines)} line(s)"))
    _print_totals(statement.totals)


def _print_totals(totals: Sequence[usage_pb2.StatementTotal]) -> None:
    columns = [Column("currency"), *(Column(name, Kind.NUMBER) for name in _AMOUNTS)]
    rows = [[total.currency_code or EMPTY, *_amounts(total)] for total in totals]
    render(Listing("totals", columns, rows))


def _owed(statement: usage_pb2.Statement) -> str:
    return ", ".join(money(t.owed_minor_units, t.currency_code) for t in statement.totals) or "0"


def _show(json_output: bool, statement: usage_pb2.Statement) -> None:
    if json_output:
        _output.print_json(_output.to_dict(statement))
    else:
        print_statement(statement)


@app.command("show")
def show(
    ctx: typer.Context,
    *,
    rights_holder: RightsHolderOption = None,
    period: Annotated[
        str | None, typer.Option(help="The calendar month, YYYY-MM (UTC); or give --from and --to.")
    ] = None,
    start: Annotated[str | None, typer.Option("--from", help="The first day of a date range, YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="The last day of the range, YYYY-MM-DD, inclusive.")] = None,
    licensee: Annotated[str, typer.Option(help="Only this licensee's lines (lic_...).")] = "",
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Write CSV to standard output: one row per line, then per currency total.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Show a statement for a month or a date range: its lines and its totals per currency."""
    if (start is None) != (end is None):
        raise typer.BadParameter("give --from and --to together")
    if (period is None) == (start is None):
        raise typer.BadParameter("give either --period or --from and --to")
    cli = settings(ctx, json_output)
    if as_csv and cli.json_output:
        raise typer.BadParameter("give --csv or --json, not both")
    with cli.client() as client:
        statement = client.get_statement(
            rights_holder_of(client, rights_holder),
            period=period or "",
            start_date=start or "",
            end_date=end or "",
            licensee_id=licensee,
        )
    if as_csv:
        typer.echo(statement_csv(statement), nl=False)
        return
    _show(cli.json_output, statement)


@app.command("list")
def list_(
    ctx: typer.Context,
    *,
    rights_holder: Annotated[str, typer.Option("--rights-holder", help="Only this rights holder's.")] = "",
    licensee: Annotated[str, typer.Option(help="Only this licensee's usage.")] = "",
    page_size: Annotated[int, typer.Option(min=0, help="Results per call; 0 for the server's default.")] = 0,
    limit: Annotated[int, typer.Option(min=0, help="Stop after this many; 0 for all.")] = 0,
    json_output: JsonOption = False,
) -> None:
    """List monthly statements, newest month first, with what each owes per currency."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        pager = client.list_statements(rights_holder_id=rights_holder, licensee_id=licensee, page_size=page_size)
        found = list(itertools.islice(pager, limit or None))
    if cli.json_output:
        _output.print_json([_output.to_dict(statement) for statement in found])
        return
    columns = [Column("period"), Column("rights holder", Kind.ID), Column("state"), Column("owed", Kind.NUMBER)]
    rows: list[list[Cell]] = [
        [
            statement.period,
            Named(statement.rights_holder_id, statement.rights_holder_display_name),
            _state(statement),
            _owed(statement),
        ]
        for statement in found
    ]
    render(Listing("statements", columns, rows, caption=f"{len(found)} shown"))


@app.command("close")
def close(
    ctx: typer.Context,
    *,
    rights_holder: Annotated[str, typer.Option("--rights-holder", help="The rights holder (rh_...).")],
    period: Annotated[str, typer.Option(help="The calendar month to close, YYYY-MM; it must have ended.")],
    json_output: JsonOption = False,
) -> None:
    """Close a rights holder's month (staff): it never changes again; late records count in the next month."""
    cli = settings(ctx, json_output)
    with cli.client() as client:
        statement = client.close_statement_period(rights_holder, period=period)
    _show(cli.json_output, statement)
