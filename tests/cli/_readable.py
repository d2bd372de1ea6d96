"""Checks that every table a command printed can be read at the terminal's width.

A `ReadableRunner` invokes the CLI at a given width (the `COLUMNS` a terminal would set), records
each table the command rendered (every table goes through `charter.cli._tables.render`), and
then requires of the output:

- no line wider than the terminal (when it printed a table: JSON and CSV are for scripts);
- every id of every cell, and every line of an id or number column, printed whole on one line;
- every word of every header and cell printed whole (a column squeezed to a sliver breaks its
  header and its words letter by letter, and an empty column loses them altogether).

Words longer than the widest value a block layout can hold are exempt: nothing can print them
whole.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterator
from typing import Any
from unittest import mock

import typer.main
import typer.testing
from charter.cli import _tables
from rich.cells import cell_len
from typer.testing import CliRunner, Result

# Charter ids: a kind prefix and 32 hex digits (signing keys: 16).
ID = re.compile(r"\b[a-z]{2,4}_[0-9a-f]{16,32}\b")
# The room a value has in the narrowest layout: the terminal less a box's borders and padding.
_BOX = 4


@contextlib.contextmanager
def recorded() -> Iterator[list[_tables.Listing]]:
    """Records every listing rendered while the block runs."""
    listings: list[_tables.Listing] = []
    as_table, as_records = _tables._print_table, _tables._print_records

    def table(console: Any, listing: _tables.Listing, widths: list[int]) -> None:
        listings.append(listing)
        as_table(console, listing, widths)

    def records(console: Any, listing: _tables.Listing) -> None:
        listings.append(listing)
        as_records(console, listing)

    with mock.patch.object(_tables, "_print_table", table), mock.patch.object(_tables, "_print_records", records):
        yield listings


def problems(output: str, listings: list[_tables.Listing], width: int) -> list[str]:
    """What cannot be read in `output` at `width` columns; empty when everything can."""
    lines = output.splitlines()
    found: list[str] = []

    def whole(text: str) -> bool:
        return any(text in line for line in lines)

    if listings:  # Output for people (JSON and CSV for scripts may be as wide as they like).
        found.extend(f"line wider than {width}: {line!r}" for line in lines if cell_len(line) > width)
    for listing in listings:
        # An empty listing may say so instead of printing its headers.
        texts: list[tuple[str, bool]] = [(column.header, True) for column in listing.columns if listing.rows]
        texts.append((listing.caption, True))
        for row in listing.rows:
            for cell, column in zip(row, listing.columns, strict=True):
                texts.extend(_tables.cell_lines(cell, column.kind))
        for text, wraps in texts:
            pieces = ID.findall(text) + (text.split() if wraps else [text])
            found.extend(
                f"{listing.title}: {piece!r} is not printed whole"
                for piece in pieces
                if cell_len(piece) <= width - _BOX and not whole(piece)
            )
    return found


@functools.cache
def _command(app: typer.Typer) -> Any:
    """The Click command of a Typer app, built once: Typer builds it from the type hints of every
    command (about 70 ms for `charter`), which a process running one command pays once, and which
    would otherwise be most of what the CLI tests spend."""
    return typer.main.get_command(app)


class ReadableRunner(CliRunner):
    """A runner at a fixed terminal width that fails a command whose tables cannot be read at it."""

    def __init__(self, width: int, env: dict[str, str | None]) -> None:
        super().__init__(env={**env, "COLUMNS": str(width)})
        self.width = width
        self._listings: dict[int, list[_tables.Listing]] = {}

    def invoke(self, *args: Any, **kwargs: Any) -> Result:  # type: ignore[override]
        """Invokes the command and checks every table it printed."""
        with recorded() as listings, mock.patch.object(typer.testing, "_get_command", _command):
            result = super().invoke(*args, **kwargs)
        unreadable = problems(result.stdout, listings, self.width)
        assert not unreadable, "\n".join([*unreadable, result.stdout])
        self._listings[id(result)] = listings
        return result

    def rows(self, result: Result, title: str) -> list[dict[str, str]]:
        """The rows of the table titled `title` that the command of `result` printed, as header -> cell
        text (an id with its name is `id\nname`): what the table says, whichever layout the width chose."""
        (listing,) = [listing for listing in self._listings[id(result)] if listing.title == title]
        return [
            {
                column.header: "\n".join(line for line, _ in _tables.cell_lines(cell, column.kind))
                for cell, column in zip(row, listing.columns, strict=True)
            }
            for row in listing.rows
        ]
