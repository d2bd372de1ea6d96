"""The table layout of the command line, and the readability check every CLI test applies, on their own:
the check catches what Rich does to a table that is too wide, and `render` never gives it the chance."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from charter.cli import _money
from charter.cli._tables import Column, Kind, Listing, Named, render
from rich.console import Console
from rich.table import Table

from ._readable import problems

IDS = [f"chr_{n:032x}" for n in range(1, 4)]
LISTING = Listing(
    title="lines",
    columns=[
        Column("character", Kind.ID),
        Column("licensee", Kind.ID),
        Column("currency"),
        Column("adjustment for"),
        Column("revenue share", Kind.NUMBER),
        Column("owed", Kind.NUMBER),
    ],
    rows=[
        [Named(i, "Hatsune Miku"), Named(f"lic_{n:032x}", "Example Video App"), "USD", "-", "$1,234.56", "$12.34"]
        for n, i in enumerate(IDS)
    ],
    caption="3 line(s)",
)


def _console(width: int) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=width, color_system=None), out


def _rendered(listing: Listing, width: int) -> str:
    console, out = _console(width)
    render(listing, console)
    return out.getvalue()


def test_the_check_catches_a_table_rich_squeezed_to_fit() -> None:
    console, out = _console(80)
    table = Table(title=LISTING.title)
    for column in LISTING.columns:
        table.add_column(column.header, overflow="fold", no_wrap=column.kind is not Kind.TEXT)
    for row in LISTING.rows:
        table.add_row(*(f"{c.id}\n{c.name}" if isinstance(c, Named) else str(c) for c in row))
    console.print(table)

    found = problems(out.getvalue(), [LISTING], 80)

    assert any(IDS[0] in problem for problem in found)  # the id was cut
    assert any("'adjustment'" in problem for problem in found)  # the header was broken


@pytest.mark.parametrize("width", [60, 80, 100, 120, 140, 150, 160, 200])
def test_render_prints_every_id_header_and_word_whole_at_any_width(width: int) -> None:
    assert problems(_rendered(LISTING, width), [LISTING], width) == []


def test_a_table_when_every_column_fits_at_its_least_else_one_block_per_row() -> None:
    # The least the table needs: each column's longest word (or whole id or number) plus the chrome.
    least = 36 + 36 + len("currency") + len("adjustment") + len("$1,234.56") + len("$12.34") + 6 * 3 + 1

    fits = _rendered(LISTING, least)
    too_narrow = _rendered(LISTING, least - 1)

    assert "┃ character" in fits and "(1 of 3)" not in fits
    assert "lines (1 of 3)" in too_narrow and "lines (3 of 3)" in too_narrow
    assert problems(too_narrow, [LISTING], least - 1) == []


def test_a_word_too_wide_for_the_labels_goes_under_its_label() -> None:
    key = f"rcp_{'a' * 32}:chr_{'b' * 32}"  # 73 columns, as the SDK's idempotency keys are
    listing = Listing("rejected lines", [Column("line", Kind.NUMBER), Column("idempotency key")], [["3", key]])

    shown = _rendered(listing, 80)

    assert problems(shown, [listing], 80) == []
    assert any(key in line for line in shown.splitlines())


def test_an_empty_listing_says_so() -> None:
    empty = Listing(LISTING.title, LISTING.columns, [])

    assert "lines: none" in _rendered(empty, 60)


@pytest.mark.parametrize(
    ("locale", "minor_units", "currency", "expected"),
    [
        ("en_US.UTF-8", 123456, "USD", "$1,234.56"),
        ("en_US.UTF-8", 1234, "JPY", "¥1,234"),  # no minor digits
        ("en_US.UTF-8", 5, "usd", "$0.05"),
        ("C.UTF-8", 123456, "EUR", "€1,234.56"),  # the C locale reads as en_US
        ("de_DE.UTF-8", 123456, "EUR", "1.234,56\xa0€"),
        ("en_US.UTF-8", 7, "XYZ", "7 XYZ (minor units)"),  # a code Babel knows no currency of
        ("en_US.UTF-8", 0, "", "0"),  # records without money
    ],
)
def test_amounts_are_formatted_with_their_currency_for_the_locale(
    monkeypatch: pytest.MonkeyPatch, locale: str, minor_units: int, currency: str, expected: str
) -> None:
    monkeypatch.setenv("LC_ALL", locale)

    assert _money.money(minor_units, currency) == expected


def test_every_table_of_the_command_line_goes_through_render() -> None:
    # A table printed any other way would escape both the layout and the check of every CLI test.
    package = Path(_money.__file__).parent
    building = [
        path.name
        for path in sorted(package.glob("*.py"))
        if path.name != "_tables.py" and ("rich.table" in path.read_text() or "Table(" in path.read_text())
    ]

    assert building == []
