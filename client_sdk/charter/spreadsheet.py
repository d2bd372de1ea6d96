"""CSV cells that a spreadsheet shows as text: one rule for the CLI's and the console's CSV.

Names in a statement are chosen by the other party (a rights holder names its characters, staff
name licensees), so a name such as ``=HYPERLINK(...)`` must never reach a spreadsheet as a formula.
"""

from __future__ import annotations

from decimal import Decimal

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
"""The first characters that make a spreadsheet read a cell as a formula (OWASP's CSV injection
list, with the line breaks)."""


def csv_cell(value: object) -> str:
    """Returns ``value`` as a CSV cell that spreadsheets show as text.

    A text that starts like a formula (`FORMULA_STARTS`) gets a leading apostrophe; numbers
    (``int`` and ``Decimal``, negative ones included) are written as they are.
    """
    if isinstance(value, int | Decimal):
        return str(value)
    text = str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text
