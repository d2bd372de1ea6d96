"""Tables that fit the terminal: never a lost column, a cut id or a word broken letter by letter.

Every table the command line prints is a `Listing` rendered by `render`. It measures each
column itself: the widest line of a cell is what the column would like, and the longest word
(a whole id, a whole number) is the least it can take. When every column fits at its least, the
table is printed with the widths shared out so that no column goes below it; when they do not
fit, each row is printed as a block of `header: value` lines instead, the way `psql` expands a
record that is too wide. Rich is left no room to squeeze: it gets the widths, not the choice.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator, Sequence

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

EMPTY = "-"
"""What an empty cell shows."""


class Kind(enum.Enum):
    """How a column's cells may be broken across lines."""

    TEXT = "text"
    """Wraps between words, never inside one."""
    ID = "id"
    """Never broken: people copy ids into the next command."""
    NUMBER = "number"
    """Never broken, aligned right."""


@dataclasses.dataclass(frozen=True, slots=True)
class Named:
    """An id with the name people know it by: the id whole on its first line, the name below it."""

    id: str
    name: str = ""


Cell = str | Text | Named
"""A cell: text (a `rich.text.Text` keeps its style), or an id with its name."""


@dataclasses.dataclass(frozen=True, slots=True)
class Column:
    """A column's header and how its cells may be broken."""

    header: str
    kind: Kind = Kind.TEXT


@dataclasses.dataclass(frozen=True, slots=True)
class Listing:
    """A table to print: a title, columns, rows of cells (one per column) and a caption.

    `records` prints every row as a block of `header: value` lines whatever the width (for one
    resource shown field by field).
    """

    title: str
    columns: Sequence[Column]
    rows: Sequence[Sequence[Cell]]
    caption: str = ""
    records: bool = False


# Rich's default box draws a border left of each column and one at the end; each cell is padded
# by one space on either side.
_PADDING = 2


def _chrome(columns: int) -> int:
    return columns * (_PADDING + 1) + 1


def cell_lines(cell: Cell, kind: Kind) -> Iterator[tuple[str, bool]]:
    """Each line of a cell, and whether it may be wrapped between words."""
    if isinstance(cell, Named):
        yield cell.id, False
        if cell.name:
            yield cell.name, True
        return
    text = cell.plain if isinstance(cell, Text) else cell
    for line in (text or EMPTY).split("\n"):
        yield line, kind is Kind.TEXT


def _least(text: str, wraps: bool) -> int:
    if not wraps:
        return cell_len(text)
    return max((cell_len(word) for word in text.split()), default=0)


def _measure(header: str, cells: Sequence[Cell], kind: Kind) -> tuple[int, int]:
    """The least and the most width a column's content needs, without padding."""
    least = _least(header, True)
    most = cell_len(header)
    for cell in cells:
        for line, wraps in cell_lines(cell, kind):
            least = max(least, _least(line, wraps))
            most = max(most, cell_len(line))
    return max(least, 1), max(most, 1)


def _share(least: list[int], most: list[int], room: int) -> list[int]:
    """Widths between least and most adding up to at most `room`: the widest columns give way first."""
    widths = list(most)
    excess = sum(widths) - room
    while excess > 0:
        index = max((i for i in range(len(widths)) if widths[i] > least[i]), key=lambda i: widths[i], default=None)
        if index is None:
            break
        widths[index] -= 1
        excess -= 1
    return widths


def _text(cell: Cell) -> Text:
    if isinstance(cell, Named):
        text = Text(cell.id)
        if cell.name:
            text.append("\n" + cell.name, style="dim")
        return text
    if isinstance(cell, Text):
        return cell if cell.plain else Text(EMPTY)
    # Text() keeps user data such as "[bold]" from being read as Rich markup.
    return Text(cell or EMPTY)


def render(listing: Listing, console: Console | None = None) -> None:
    """Prints a listing as a table when every column fits whole, else as one block per row."""
    console = console or Console()
    columns = list(listing.columns)
    measured = [_measure(c.header, [row[i] for row in listing.rows], c.kind) for i, c in enumerate(columns)]
    least = [m[0] for m in measured]
    room = console.width - _chrome(len(columns))
    if not listing.records and sum(least) <= room:
        _print_table(console, listing, _share(least, [m[1] for m in measured], room))
    else:
        _print_records(console, listing)


def _print_table(console: Console, listing: Listing, widths: list[int]) -> None:
    table = Table(title=listing.title, title_justify="left", caption=listing.caption or None)
    for column, width in zip(listing.columns, widths, strict=True):
        table.add_column(
            column.header,
            width=width,
            no_wrap=column.kind is not Kind.TEXT,
            overflow="fold",
            justify="right" if column.kind is Kind.NUMBER else "left",
        )
    for row in listing.rows:
        table.add_row(*(_text(cell) for cell in row))
    console.print(table)


def _print_records(console: Console, listing: Listing) -> None:
    lines = [
        (line, wraps)
        for row in listing.rows
        for cell, column in zip(row, listing.columns, strict=True)
        for line, wraps in cell_lines(cell, column.kind)
    ]
    label_width = max((cell_len(c.header) for c in listing.columns), default=1)
    room = console.width - _chrome(2) - label_width
    # A word too long to stand beside the labels (a long idempotency key) gets the whole width:
    # then each value goes under its label.
    stacked = any(_least(line, wraps) > room for line, wraps in lines)
    widest = max((cell_len(line) for line, _ in lines), default=1)
    count = len(listing.rows)
    if not count:
        console.print(Text(f"{listing.title}: none", style="italic"))
    for number, row in enumerate(listing.rows, 1):
        title = listing.title if count == 1 else f"{listing.title} ({number} of {count})"
        table = Table(title=title, title_justify="left", show_header=False, box=box.ROUNDED)
        if stacked:
            table.add_column(
                "field", overflow="fold", width=max(min(max(widest, label_width), console.width - _chrome(1)), 1)
            )
            for column, cell in zip(listing.columns, row, strict=True):
                table.add_row(Text(column.header, style="bold"))
                table.add_row(_text(cell))
        else:
            table.add_column("field", style="bold", no_wrap=True, width=label_width)
            table.add_column("value", overflow="fold", width=max(min(widest, room), 1))
            for column, cell in zip(listing.columns, row, strict=True):
                table.add_row(column.header, _text(cell))
        console.print(table)
    if listing.caption:
        console.print(Text(listing.caption, style="italic"))
