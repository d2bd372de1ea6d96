"""Printing for the command line: Rich tables for people, protobuf JSON for scripts.

Tables are built from the message descriptors, so a new resource needs no
printing code of its own: a group names the fields for its list columns and
everything else follows.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import typer
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from rich.table import Table
from rich.text import Text

from charter.errors import CharterError
from charter.v1 import terms_pb2

_EMPTY = "-"


def print_line(text: str) -> None:
    """Prints one line on stderr; newlines inside the text are folded into spaces."""
    typer.echo(" ".join(text.split()), err=True)


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


def show(json_output: bool, message: Message, *, title: str, omit: Collection[str] = ()) -> None:
    """Prints one resource: a field/value table, or its JSON object.

    `omit` names fields left out of the table (a caller prints them its own way);
    the JSON form always has every field.
    """
    if json_output:
        print_json(to_dict(message))
        return
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for field in message.DESCRIPTOR.fields:
        if field.name not in omit:
            table.add_row(field.name, Text(field_text(message, field.name)))
    Console().print(table)


def show_list(json_output: bool, messages: Iterable[Message], *, columns: Sequence[str], title: str) -> None:
    """Prints resources: a table with the given fields as columns, or a JSON list."""
    if json_output:
        print_json([to_dict(message) for message in messages])
        return
    table = Table(title=title, title_justify="left")
    for name in columns:
        # Ids are what people copy into the next command: never wrap or cut them.
        table.add_column(name.replace("_", " "), no_wrap=name == "id", overflow="fold")
    count = 0
    for message in messages:
        # Text() keeps user data such as "[bold]" from being read as Rich markup.
        table.add_row(*(Text(field_text(message, name)) for name in columns))
        count += 1
    table.caption = f"{count} shown"
    Console().print(table)


def field_text(message: Message, name: str) -> str:
    """Returns a field's value for people: short enum names, ISO timestamps, `-` when empty."""
    field = message.DESCRIPTOR.fields_by_name[name]
    if field.is_repeated:
        values = list(getattr(message, name))
    elif field.has_presence and not message.HasField(name):
        # An unset message or `optional` scalar (a quota) is not its default value:
        # an unset quota means unlimited, a quota of 0 permits nothing.
        return _EMPTY
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
    return ", ".join(text for text in texts if text) or _EMPTY


def _value_text(value: Any) -> str:
    if isinstance(value, Timestamp):
        return value.ToDatetime(tzinfo=dt.UTC).isoformat(timespec="seconds")
    if isinstance(value, Message):
        if isinstance(value, terms_pb2.Money):
            return f"{value.minor_units} {value.currency_code} (minor units)"
        return json_format.MessageToJson(value, indent=None)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
