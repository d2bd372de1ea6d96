"""Amounts for people: integer minor units formatted with their currency by Babel (CLDR data).

The locale comes from `LC_ALL`, `LC_MONETARY` or `LANG`, as for any other program; when none is
set, or it is the `C`/`POSIX` locale, amounts read as in `en_US` (`$1,234.56`, `¥1,234`). The
amount is exact: minor units are shifted by the currency's digits as a `Decimal`, never a float.
"""

from __future__ import annotations

from decimal import Decimal

import babel
from babel import numbers

_FALLBACK = "en_US"


def _locale() -> str:
    found = babel.default_locale("LC_MONETARY")
    if found is None or found.endswith("_POSIX"):
        return _FALLBACK
    try:
        babel.Locale.parse(found)
    except (ValueError, babel.UnknownLocaleError):
        return _FALLBACK
    return found


def money(minor_units: int, currency: str) -> str:
    """Returns an amount for people, for example `$1,234.56` for 123456 USD minor units.

    An amount without a currency is the plain integer; a currency Babel does not know keeps
    its minor units and code, so nothing is ever guessed.
    """
    if not currency:
        return str(minor_units)
    code = currency.upper()
    if not numbers.is_currency(code):
        return f"{minor_units} {code} (minor units)"
    digits = numbers.get_currency_precision(code)
    return numbers.format_currency(Decimal(minor_units).scaleb(-digits), code, locale=_locale())
