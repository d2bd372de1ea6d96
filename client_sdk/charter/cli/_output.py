"""Printing for the command line: tables for people, protobuf JSON for scripts.

Tables are built from the message descriptors, so a new resource needs no
printing code of its own: a group names the fields for its list columns and
everything else follows. Every table goes through `charter.cli._tables.render`,
which fits it to the terminal.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import typer
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from rich.text import Text

from charter.cli._money import money
from charter.cli._tables import EMPTY, Cell, Column, Kind, Listing, Named, render
from charter.errors import CharterError
from charter.v1 import terms_pb2


@dataclasses.dataclass(frozen=True, slots=True)
class NamedField:
    """A list column showing an id field with a name field under it, for example a grant's character."""

    header: str
    id_field: str
    name_field: str


def print_line(text: str) -> None:
    """Prints one line on stderr; newlines inside the text are folded into spaces."""
    typer.echo(" ".join(text.split()), err=True)


def say(text: str) -> None:
    """Prints a line for people on stdout, wrapped between words at the terminal's width."""
    Console().print(Text(text))


def print_error(exc: CharterError) -> None:
    """Prints a failed call as `error: CODE REASON: message (request id ...)` and its field violations."""
    print_line(f"error: {exc}")
    for violation in exc.field_violations:
        # Indented under the error line; each violation is folded onto one line of its own.
        typer.echo("  " + " ".join(f"{violation.field}: {violation.description}".split()), err=True)


def print_json(data: object) -> None:
    """Prints data as indented JSON on stdout."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def to_dict(message: Message) -> dict[str, Any]:
    """Returns the protobuf JSON form of a message, with every field present.

    Fields with default values are printed too, so scripts see the same keys
    whether or not a field happens to be empty.
    """
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def _kind(name: str) -> Kind:
    return Kind.ID if name == "id" or name.endswith("_id") else Kind.TEXT


def show(json_output: bool, message: Message, *, title: str, omit: Collection[str] = ()) -> None:
    """Prints one resource: a block of field/value lines, or its JSON object.

    `omit` names fields left out of the table (a caller prints them its own way);
    the JSON form always has every field.
    """
    if json_output:
        print_json(to_dict(message))
        return
    names = [field.name for field in message.DESCRIPTOR.fields if field.name not in omit]
    render(
        Listing(
            title=title,
            columns=[Column(name, _kind(name)) for name in names],
            rows=[[field_text(message, name) for name in names]],
            records=True,
        )
    )


def show_list(
    json_output: bool, messages: Iterable[Message], *, columns: Sequence[str | NamedField], title: str
) -> None:
    """Prints resources: a table with the given fields as columns, or a JSON list."""
    if json_output:
        print_json([to_dict(message) for message in messages])
        return
    rows: list[list[Cell]] = []
    for message in messages:
        rows.append(
            [
                Named(getattr(message, c.id_field), getattr(message, c.name_field))
                if isinstance(c, NamedField)
                else field_text(message, c)
                for c in columns
            ]
        )
    render(
        Listing(
            title=title,
            columns=[
                Column(c.header, Kind.ID) if isinstance(c, NamedField) else Column(c.replace("_", " "), _kind(c))
                for c in columns
            ],
            rows=rows,
            caption=f"{len(rows)} shown",
        )
    )


def print_counts(title: str, unit: str, counts: Mapping[str, int], not_sent: int) -> None:
    """Prints how many rows or records ended how, and how many were not sent, if any."""
    rows = [[label, str(count)] for label, count in counts.items()]
    if not_sent:
        rows.append(["not sent", str(not_sent)])
    render(Listing(title, [Column("outcome"), Column(unit, Kind.NUMBER)], rows))


def field_text(message: Message, name: str) -> str:
    """Returns a field's value for people: short enum names, ISO timestamps, `-` when empty."""
    field = message.DESCRIPTOR.fields_by_name[name]
    if field.is_repeated:
        values = list(getattr(message, name))
    elif field.has_presence and not message.HasField(name):
        # An unset message or `optional` scalar (a quota) is not its default value:
        # an unset quota means unlimited, a quota of 0 permits nothing.
        return EMPTY
    else:
        values = [getattr(message, name)]
    enum = field.enum_type
    texts: list[str] = []
    for value in values:
        if enum is None:
            texts.append(_value_text(value))
            continue
        known = enum.values_by_number.get(value)
        # Every Charter enum's zero value is <PREFIX>UNSPECIFIED; the prefix is noise.
        prefix = enum.values[0].name.removesuffix("UNSPECIFIED")
        texts.append(known.name.removeprefix(prefix).lower() if known is not None else str(value))
    return ", ".join(text for text in texts if text) or EMPTY


def _value_text(value: Any) -> str:
    if isinstance(value, Timestamp):
        return value.ToDatetime(tzinfo=dt.UTC).isoformat(timespec="seconds")
    if isinstance(value, Message):
        if isinstance(value, terms_pb2.Money):
            return money(value.minor_units, value.currency_code)
        return json_format.MessageToJson(value, indent=None)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
