"""`charter statements`: revenue-share statements of rights holders; show, list, close a month.

Every amount is an integer number of minor units of its currency (cents for USD, yen for JPY),
printed as the server computed it: never converted through floating point.

`charter statements show --csv` writes one row per statement line, then one row per currency
total (`character_id` is `TOTAL`, `licensee_id` and `adjustment_for_period` are empty), with the
columns of `CSV_COLUMNS`.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Sequence
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from charter.cli import _output
from charter.cli._context import settings
from charter.cli.authorize import JsonFlag
from charter.v1 import usage_pb2

app = typer.Typer(
    help="Statements: what rights holders' characters earned per month or date range; show, list, close.",
    no_args_is_help=True,
)

CSV_COLUMNS = (
    "rights_holder_id",
    "period",
    "start_date",
    "end_date",
    "state",
    "character_id",
    "licensee_id",
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

_EMPTY = "-"
_AMOUNTS = ("records", "uses", "duration (s)", "revenue", "share", "fees", "owed")
_WIDE_TABLE = 150  # terminal columns the lines table needs to show two full ids and the numbers

_RightsHolder = Annotated[str, typer.Option("--rights-holder", help="The rights holder (rh_...).")]


def _state(statement: usage_pb2.Statement) -> str:
    return _output.field_text(statement, "state")


def _seconds(milliseconds: int) -> str:
    # Integer arithmetic: 12500 ms is "12.500", exactly.
    sign = "-" if milliseconds < 0 else ""
    whole, rest = divmod(abs(milliseconds), 1000)
    return f"{sign}{whole}.{rest:03d}"


def _amounts(item: usage_pb2.StatementLine | usage_pb2.StatementTotal) -> list[str]:
    return [
        str(item.records),
        str(item.uses),
        _seconds(item.duration_milliseconds),
        str(item.revenue_minor_units),
        str(item.revenue_share_minor_units),
        str(item.fee_minor_units),
        str(item.owed_minor_units),
    ]


def statement_csv(statement: usage_pb2.Statement) -> str:
    """Returns a statement as CSV text: a header of `CSV_COLUMNS`, its lines, then its totals."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    head = [statement.rights_holder_id, statement.period, statement.start_date, statement.end_date, _state(statement)]
    for line in statement.lines:
        writer.writerow(
            [
                *head,
                line.character_id,
                line.licensee_id,
                line.currency_code,
                line.adjustment_for_period,
                line.records,
                line.uses,
                line.duration_milliseconds,
                line.revenue_minor_units,
                line.revenue_share_minor_units,
                line.fee_minor_units,
                line.owed_minor_units,
            ]
        )
    for total in statement.totals:
        writer.writerow(
            [
                *head,
                TOTAL,
                "",
                total.currency_code,
                "",
                total.records,
                total.uses,
                total.duration_milliseconds,
                total.revenue_minor_units,
                total.revenue_share_minor_units,
                total.fee_minor_units,
                total.owed_minor_units,
            ]
        )
    return out.getvalue()


def print_statement(statement: usage_pb2.Statement) -> None:
    """Prints a statement for people: what it covers, its lines and its totals per currency."""
    span = statement.period or f"{statement.start_date} to {statement.end_date}"
    typer.echo(f"statement: {statement.rights_holder_id} {span} ({_state(statement)})")
    typer.echo(f"days: {statement.start_date} to {statement.end_date} (UTC)")
    if statement.HasField("close_time"):
        typer.echo(f"closed at: {_output.field_text(statement, 'close_time')}")
    if statement.licensee_id:
        typer.echo(f"licensee: {statement.licensee_id}")
    typer.echo("amounts: integer minor units of each line's currency (cents for USD, yen for JPY)")
    console = Console()
    if console.width < _WIDE_TABLE:
        # Too narrow for full ids beside seven numbers: one block per line, nothing cut off.
        for number, line in enumerate(statement.lines, 1):
            adjustment = f", adjustment for {line.adjustment_for_period}" if line.adjustment_for_period else ""
            typer.echo(
                f"line {number}: character {line.character_id}, licensee {line.licensee_id},"
                f" currency {line.currency_code or _EMPTY}{adjustment}"
            )
            typer.echo(
                "  " + ", ".join(f"{name} {value}" for name, value in zip(_AMOUNTS, _amounts(line), strict=True))
            )
        typer.echo(f"{len(statement.lines)} line(s)")
    else:
        table = Table(title="lines", title_justify="left")
        for name in ("character", "licensee", "currency", "adjustment for"):
            table.add_column(name, no_wrap=name in ("character", "licensee"), overflow="fold")
        for name in _AMOUNTS:
            table.add_column(name, justify="right", no_wrap=True)
        for line in statement.lines:
            table.add_row(
                Text(line.character_id),
                Text(line.licensee_id),
                Text(line.currency_code or _EMPTY),
                Text(line.adjustment_for_period or _EMPTY),
                *_amounts(line),
            )
        table.caption = f"{len(statement.lines)} line(s)"
        console.print(table)
    _print_totals(console, statement.totals)


def _print_totals(console: Console, totals: Sequence[usage_pb2.StatementTotal]) -> None:
    table = Table(title="totals", title_justify="left")
    table.add_column("currency")
    for name in _AMOUNTS:
        table.add_column(name, justify="right")
    for total in totals:
        table.add_row(Text(total.currency_code or _EMPTY), *_amounts(total))
    console.print(table)


def _owed(statement: usage_pb2.Statement) -> str:
    return ", ".join(f"{t.owed_minor_units} {t.currency_code}".strip() for t in statement.totals) or "0"


def _show(json_output: bool, statement: usage_pb2.Statement) -> None:
    if json_output:
        _output.print_json(_output.to_dict(statement))
    else:
        print_statement(statement)


@app.command("show")
def show(
    ctx: typer.Context,
    *,
    rights_holder: _RightsHolder,
    period: Annotated[
        str | None, typer.Option(help="The calendar month, YYYY-MM (UTC); or give --from and --to.")
    ] = None,
    start: Annotated[str | None, typer.Option("--from", help="The first day of a date range, YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="The last day of the range, YYYY-MM-DD, inclusive.")] = None,
    licensee: Annotated[str, typer.Option(help="Only this licensee's lines (lic_...).")] = "",
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Write CSV to standard output: one row per line, then per currency total.")
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Show a statement for a month or a date range: its lines and its totals per currency."""
    if (start is None) != (end is None):
        raise typer.BadParameter("give --from and --to together")
    if (period is None) == (start is None):
        raise typer.BadParameter("give either --period or --from and --to")
    cli = settings(ctx)
    if as_csv and (json_output or cli.json_output):
        raise typer.BadParameter("give --csv or --json, not both")
    with cli.client() as client:
        statement = client.get_statement(
            rights_holder, period=period or "", start_date=start or "", end_date=end or "", licensee_id=licensee
        )
    if as_csv:
        typer.echo(statement_csv(statement), nl=False)
        return
    _show(cli.json_output or json_output, statement)


@app.command("list")
def list_(
    ctx: typer.Context,
    *,
    rights_holder: Annotated[str, typer.Option("--rights-holder", help="Only this rights holder's.")] = "",
    licensee: Annotated[str, typer.Option(help="Only this licensee's usage.")] = "",
    page_size: Annotated[int, typer.Option(min=0, help="Results per call; 0 for the server's default.")] = 0,
    limit: Annotated[int, typer.Option(min=0, help="Stop after this many; 0 for all.")] = 0,
    json_output: JsonFlag = False,
) -> None:
    """List monthly statements, newest month first, with what each owes per currency."""
    cli = settings(ctx)
    with cli.client() as client:
        pager = client.list_statements(rights_holder_id=rights_holder, licensee_id=licensee, page_size=page_size)
        found = list(itertools.islice(pager, limit or None))
    if cli.json_output or json_output:
        _output.print_json([_output.to_dict(statement) for statement in found])
        return
    table = Table(title="statements", title_justify="left")
    table.add_column("period")
    table.add_column("rights holder", no_wrap=True)
    table.add_column("state")
    table.add_column("owed (minor units)", justify="right")
    for statement in found:
        table.add_row(statement.period, Text(statement.rights_holder_id), _state(statement), Text(_owed(statement)))
    table.caption = f"{len(found)} shown"
    Console().print(table)


@app.command("close")
def close(
    ctx: typer.Context,
    *,
    rights_holder: _RightsHolder,
    period: Annotated[str, typer.Option(help="The calendar month to close, YYYY-MM; it must have ended.")],
    json_output: JsonFlag = False,
) -> None:
    """Close a rights holder's month (staff): it never changes again; late records count in the next month."""
    cli = settings(ctx)
    with cli.client() as client:
        statement = client.close_statement_period(rights_holder, period=period)
    _show(cli.json_output or json_output, statement)
