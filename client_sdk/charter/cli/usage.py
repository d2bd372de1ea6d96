"""`charter usage`: report what a generation backend rendered, from a JSON Lines file.

Each line of the file is one usage record, a JSON object:

    {"receipt": {...DSSE JSON, as `charter authorize --json` prints it...},
     "character_id": "chr_...",
     "idempotency_key": "...",                        optional: "<receipt id>:<character id>"
     "uses": 1,                                       optional: 1 (0 or 1)
     "duration_seconds": 12.5,                        optional
     "revenue": {"minor_units": 500, "currency": "USD"},   optional
     "happen_time": "2026-11-21T10:00:00Z"}           optional: the time of sending (RFC 3339)

`receipt` may also be the DSSE JSON text as a string (the content of a `--receipt-out` file).
A line that is not valid JSON or has a bad field is reported with its number and not sent.
Exit status: 0 when every record was accepted (a duplicate of an earlier report counts as
accepted), 1 otherwise (a line not sent, a record rejected, or a call that failed), 2 for a
usage error.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from charter import envelope
from charter.cli import _output
from charter.cli._context import JsonOption, settings
from charter.cli._tables import Cell, Column, Kind, Listing, render
from charter.errors import CharterError
from charter.usage import MAX_BATCH_SIZE, UsageReport, UsageResult
from charter.v1 import envelope_pb2

app = typer.Typer(help="Usage: report what was rendered under decision receipts.", no_args_is_help=True)

_FIELDS = frozenset(
    {"receipt", "character_id", "idempotency_key", "uses", "duration_seconds", "revenue", "happen_time"}
)


class LineError(ValueError):
    """A line of a usage file that cannot be sent."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Line:
    number: int
    report: UsageReport


def _integer(value: object, what: str) -> int:
    # JSON numbers that are whole, or decimal digits in a string as protobuf JSON writes int64.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise LineError(f"{what} must be an integer")
    if isinstance(value, str):
        if not value.lstrip("-").isdecimal():
            raise LineError(f"{what} must be an integer")
        return int(value)
    return value


def parse_line(text: str) -> UsageReport:
    """Returns the usage report one line of a usage file describes.

    Raises:
        LineError: If the line is not a JSON object of the documented fields.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LineError(f"not valid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(data, dict):
        raise LineError("must be a JSON object")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise LineError(f"unknown field(s): {', '.join(unknown)}")
    for name in ("receipt", "character_id"):
        if name not in data:
            raise LineError(f"{name} is required")
    receipt = _receipt(data["receipt"])
    character_id = data["character_id"]
    if not isinstance(character_id, str):
        raise LineError("character_id must be a string")
    key = data.get("idempotency_key")
    if key is not None and not isinstance(key, str):
        raise LineError("idempotency_key must be a string")
    uses = _integer(data.get("uses", 1), "uses")
    duration = _duration(data.get("duration_seconds"))
    minor_units, currency = _revenue(data.get("revenue"))
    happen_time = None
    if data.get("happen_time") is not None:
        happen_time = _time(data["happen_time"])
    try:
        return UsageReport(
            receipt,
            character_id,
            uses=uses,
            duration=duration,
            revenue_minor_units=minor_units,
            currency=currency,
            happen_time=happen_time,
            idempotency_key=key,
        )
    except (TypeError, ValueError) as exc:
        raise LineError(str(exc)) from None


def _receipt(value: object) -> envelope_pb2.Envelope:
    text = json.dumps(value) if isinstance(value, dict) else value
    if not isinstance(text, str):
        raise LineError("receipt must be a DSSE JSON object or its text")
    try:
        return envelope.from_json(text)
    except envelope.MalformedEnvelope as exc:
        raise LineError(f"receipt is not a DSSE JSON envelope: {exc}") from None


def _duration(seconds: object) -> dt.timedelta | None:
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise LineError("duration_seconds must be a non-negative number")
    try:
        return dt.timedelta(seconds=seconds)
    except OverflowError:
        raise LineError("duration_seconds is too large") from None


def _revenue(revenue: object) -> tuple[int | None, str | None]:
    if revenue is None:
        return None, None
    if not isinstance(revenue, dict) or set(revenue) != {"minor_units", "currency"}:
        raise LineError('revenue must be {"minor_units": integer, "currency": "USD"}')
    currency = revenue["currency"]
    if not isinstance(currency, str):
        raise LineError("revenue.currency must be a string")
    return _integer(revenue["minor_units"], "revenue.minor_units"), currency


def _time(value: object) -> dt.datetime:
    if not isinstance(value, str):
        raise LineError("happen_time must be an RFC 3339 string")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise LineError(f"happen_time {value!r} is not an RFC 3339 time such as 2026-11-21T10:00:00Z") from None
    if parsed.tzinfo is None:
        raise LineError(f"happen_time {value!r} has no UTC offset (end it with Z or +09:00)")
    return parsed


def _read(file: str) -> str:
    if file == "-":
        return sys.stdin.read()
    path = Path(file)
    try:
        return path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {file}: {exc.strerror}", param_hint="FILE") from None
    except UnicodeDecodeError:
        raise typer.BadParameter(f"{file} is not a UTF-8 text file", param_hint="FILE") from None


@app.command("report")
def report(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="The JSON Lines file, one record per line; - reads standard input.")],
    *,
    batch_size: Annotated[int, typer.Option(min=1, max=MAX_BATCH_SIZE, help="Records per ReportUsage call.")] = 100,
    json_output: JsonOption = False,
) -> None:
    """Report usage records from a JSON Lines file: one JSON object per line.

    Fields: receipt (the DSSE JSON object `charter authorize --json` prints, or its text;
    required), character_id (required), idempotency_key (default "<receipt id>:<character id>"),
    uses (0 or 1, default 1), duration_seconds, revenue ({"minor_units": 500, "currency": "USD"}),
    happen_time (RFC 3339 with an offset; default: the time of sending).

    Needs a generator's API key. Exits with 1 unless every record was accepted; lines that are not
    valid are listed and not sent. Sending the same file again is safe for lines with a
    happen_time: accepted records come back as duplicates and are counted once. A line without
    one gets the time of sending, so sending it again would be a different record under the same
    key (IDEMPOTENCY_KEY_REUSED).
    """
    text = _read(file)
    cli = settings(ctx, json_output)
    lines: list[_Line] = []
    invalid: list[tuple[int, str]] = []
    for number, content in enumerate(text.splitlines(), start=1):
        if not content.strip():
            continue
        try:
            lines.append(_Line(number, parse_line(content)))
        except LineError as exc:
            invalid.append((number, str(exc)))
    now = dt.datetime.now(dt.UTC)
    results: list[tuple[int, UsageResult]] = []
    failure: CharterError | None = None
    sent = 0
    with cli.client() as client:
        console = Console(stderr=True)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            # On stderr, and only for people at a terminal: --json output stays clean for scripts.
            disable=cli.json_output or not console.is_terminal,
        ) as progress:
            task = progress.add_task("reporting", total=len(lines))
            for start in range(0, len(lines), batch_size):
                batch = lines[start : start + batch_size]
                try:
                    answers = client.report_usage([line.report.at(now) for line in batch], batch_size=len(batch))
                except CharterError as exc:
                    failure = exc  # earlier batches are in; report what happened so far
                    break
                results.extend((batch[answer.index].number, answer) for answer in answers)
                sent += len(batch)
                progress.advance(task, len(batch))
    not_sent = len(lines) - sent
    _print_report(cli.json_output, results, invalid, not_sent)
    if failure is not None:
        _output.print_error(failure)
        _output.print_line(
            f"error: reporting stopped; {not_sent} record(s) were not sent. Sending the file again is safe for"
            " lines with a happen_time: records already accepted come back as duplicates."
        )
        raise typer.Exit(1)
    if invalid or any(not result.accepted for _, result in results):
        raise typer.Exit(1)


def _result_json(line: int, result: UsageResult) -> dict[str, Any]:
    return {
        "line": line,
        "idempotencyKey": result.idempotency_key,
        "accepted": result.accepted,
        "duplicate": result.duplicate,
        "usageId": result.usage_id,
        "statementPeriod": result.statement_period,
        "acceptTime": None if result.accept_time is None else result.accept_time.isoformat(),
        "errorCode": result.error_code,
        "errorReason": result.error_reason,
        "errorMessage": result.error_message,
        "fieldViolations": [{"field": v.field, "description": v.description} for v in result.field_violations],
    }


def _print_report(
    json_output: bool,
    results: Sequence[tuple[int, UsageResult]],
    invalid: Sequence[tuple[int, str]],
    not_sent: int,
) -> None:
    accepted = sum(1 for _, r in results if r.accepted and not r.duplicate)
    duplicates = sum(1 for _, r in results if r.duplicate)
    rejected = [(line, r) for line, r in results if not r.accepted]
    summary = {"accepted": accepted, "duplicates": duplicates, "rejected": len(rejected), "invalid": len(invalid)}
    if json_output:
        _output.print_json(
            {
                "summary": dict(summary, notSent=not_sent),
                "results": [_result_json(line, result) for line, result in results],
                "invalid": [{"line": line, "error": error} for line, error in invalid],
            }
        )
        return
    _output.print_counts("usage report", "records", summary, not_sent)
    if rejected:
        columns = [Column("line", Kind.NUMBER), Column("idempotency key"), Column("reason"), Column("fields")]
        rows: list[list[Cell]] = [
            [
                str(line),
                result.idempotency_key,
                result.error_reason or result.error_code,
                "\n".join(f"{v.field}: {v.description}" for v in result.field_violations),
            ]
            for line, result in rejected
        ]
        render(Listing("rejected lines", columns, rows))
    if invalid:
        columns = [Column("line", Kind.NUMBER), Column("error")]
        render(Listing("invalid lines (not sent)", columns, [[str(line), error] for line, error in invalid]))
