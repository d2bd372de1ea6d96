"""Territory codes: the one check of their form, shared by the SDK and the server.

A territory is an ISO 3166-1 alpha-2 code written in ASCII: two letters, in either case, stored
and compared upper case (``it`` is ``IT``). Python's ``str.upper`` follows Unicode, which maps
letters that merely look Latin onto ASCII ones: U+0131 (the Turkish dotless i) followed by ``t``,
and U+017F (the long s) followed by ``e``, become ``IT`` and ``SE``. Such a code is refused, never
folded, as is one with U+0130 (the capital I with a dot) or fullwidth letters (U+FF29 U+FF34):
what a rights holder's terms name and what a request names must be the same two ASCII letters.
Whether the code names a country is the server's to say (it holds the ISO list); this module says
only whether it can be one.
"""

from __future__ import annotations

__all__ = ["territory_code"]


def territory_code(code: str) -> str:
    """A territory code as it is stored and compared: upper case.

    Args:
        code: Two ASCII letters, in either case; or empty, for no territory.

    Returns:
        The code upper case ("" for empty).

    Raises:
        ValueError: ``code`` is neither empty nor two ASCII letters (a non-ASCII letter,
            whatever it uppercases to, a digit, or another length).
        TypeError: ``code`` is not a string.
    """
    if not isinstance(code, str):
        raise TypeError(f"a territory must be a string, not {type(code).__name__}")
    if not code:
        return ""
    if len(code) != 2 or not code.isascii() or not code.isalpha():
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 code in ASCII letters")
    return code.upper()
