"""Validation of terms, field by field, and their canonical stored form."""

from __future__ import annotations

from collections.abc import Iterable

import pycountry
from charter.territories import territory_code
from charter.v1 import terms_pb2 as t
from google.protobuf.message import Message

from charter_server.services.validation import Checker

# Output-only fields: ignored on input, set by the server.
OUTPUT_ONLY = ("version", "character_id", "create_time", "author_key_id")
MAX_LIST = 250
MAX_PER_USE_FEE_MINOR_UNITS = 10**12
"""The highest per-use fee, in minor units: a month's fees stay countable (see
``charter_server.services.usage.MAX_STATEMENT_MINOR_UNITS``)."""


def _enum_values(enum: object) -> frozenset[int]:
    return frozenset(v for v in enum.values() if v != 0)  # type: ignore[attr-defined]


USE_TYPES = _enum_values(t.UseType)
RATINGS = _enum_values(t.ContentRating)
CATEGORIES = _enum_values(t.ContentCategory)


def is_territory(code: str) -> bool:
    """Whether ``code`` is an ISO 3166-1 alpha-2 country code, in ASCII letters of either case
    (`charter.territories.territory_code`: a letter that only uppercases to ASCII, such as the
    Turkish dotless i, U+0131, is not one)."""
    try:
        upper = territory_code(code)
    except ValueError:
        return False
    return bool(upper) and pycountry.countries.get(alpha_2=upper) is not None


def is_currency(code: str) -> bool:
    """Whether ``code`` is an ISO 4217 currency code (upper case)."""
    return len(code) == 3 and code.isupper() and pycountry.currencies.get(alpha_3=code) is not None


def _check_enums(checker: Checker, field: str, values: Iterable[int], known: frozenset[int]) -> None:
    for index, value in enumerate(values):
        if value not in known:
            checker.add(f"{field}[{index}]", f"unknown or unspecified value {value}")


def _check_list_size(checker: Checker, field: str, values: Iterable[object]) -> bool:
    if len(list(values)) > MAX_LIST:
        checker.add(field, f"must have at most {MAX_LIST} entries")
        return False
    return True


def check_terms(checker: Checker, terms: t.Terms, prefix: str, *, character_id: str = "") -> None:
    """Record every invalid field of ``terms``; paths start with ``prefix`` (e.g. ``terms``)."""
    p = prefix
    if not terms.permitted_use_types:
        checker.add(f"{p}.permitted_use_types", "must list at least one use type")
    _check_enums(checker, f"{p}.permitted_use_types", terms.permitted_use_types, USE_TYPES)
    if terms.max_content_rating == 0:
        checker.add(f"{p}.max_content_rating", "is required")
    elif terms.max_content_rating not in RATINGS:
        checker.add(f"{p}.max_content_rating", f"unknown value {terms.max_content_rating}")
    _check_enums(checker, f"{p}.prohibited_categories", terms.prohibited_categories, CATEGORIES)
    for name in ("allowed_territories", "excluded_territories"):
        values = getattr(terms, name)
        if _check_list_size(checker, f"{p}.{name}", values):
            for index, code in enumerate(values):
                if not is_territory(code):
                    checker.add(f"{p}.{name}[{index}]", f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    both = {c.upper() for c in terms.allowed_territories} & {c.upper() for c in terms.excluded_territories}
    if both:
        checker.add(f"{p}.excluded_territories", f"territories both allowed and excluded: {', '.join(sorted(both))}")
    if _check_list_size(checker, f"{p}.allowed_licensee_ids", terms.allowed_licensee_ids):
        for index, value in enumerate(terms.allowed_licensee_ids):
            checker.resource_id(f"{p}.allowed_licensee_ids[{index}]", value, "licensee")
    if _check_list_size(checker, f"{p}.allowed_platforms", terms.allowed_platforms):
        for index, value in enumerate(terms.allowed_platforms):
            checker.slug(f"{p}.allowed_platforms[{index}]", value)
    if _check_list_size(checker, f"{p}.prohibited_co_appearance_ids", terms.prohibited_co_appearance_ids):
        for index, value in enumerate(terms.prohibited_co_appearance_ids):
            field = f"{p}.prohibited_co_appearance_ids[{index}]"
            checker.resource_id(field, value, "character")
            if character_id and value == character_id:
                checker.add(field, "a character cannot be prohibited from appearing with itself")
    dynamic: Message = terms  # fields named at run time
    valid_times = 0
    for name in ("valid_from", "valid_until"):
        if dynamic.HasField(name):
            stamp = getattr(terms, name)
            if 0 <= stamp.nanos < 1_000_000_000 and -62135596800 <= stamp.seconds <= 253402300799:
                valid_times += 1
            else:
                checker.add(f"{p}.{name}", "is not a valid timestamp")
    if valid_times == 2 and terms.valid_until.ToNanoseconds() <= terms.valid_from.ToNanoseconds():
        checker.add(f"{p}.valid_until", "must be after valid_from")
    checker.text(f"{p}.attribution_text", terms.attribution_text, max_len=500)
    if not 0 <= terms.revenue_share_bps <= 10_000:
        checker.add(f"{p}.revenue_share_bps", "must be between 0 and 10000 basis points")
    if terms.HasField("per_use_fee"):
        fee = terms.per_use_fee
        if not 0 <= fee.minor_units <= MAX_PER_USE_FEE_MINOR_UNITS:
            checker.add(f"{p}.per_use_fee.minor_units", f"must be between 0 and {MAX_PER_USE_FEE_MINOR_UNITS}")
        if not fee.currency_code.isascii() or not is_currency(fee.currency_code.upper()):
            checker.add(f"{p}.per_use_fee.currency_code", f"{fee.currency_code!r} is not an ISO 4217 currency code")
    for name in ("daily_quota", "monthly_quota"):
        if dynamic.HasField(name) and getattr(terms, name) < 0:
            checker.add(f"{p}.{name}", "must not be negative")


def _dedupe(values: Iterable[object]) -> list[object]:
    seen: list[object] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen


def canonical(terms: t.Terms) -> t.Terms:
    """The stored form: output-only fields cleared, lists without duplicates, territory and currency
    codes upper case, and no unknown fields (bytes a client appended must never be stored, nor
    signed into a grant)."""
    out = t.Terms()
    out.CopyFrom(terms)
    out.DiscardUnknownFields()
    dynamic: Message = out  # fields named at run time
    for name in OUTPUT_ONLY:
        dynamic.ClearField(name)
    for name in (
        "permitted_use_types",
        "prohibited_categories",
        "allowed_licensee_ids",
        "allowed_platforms",
        "prohibited_co_appearance_ids",
    ):
        values = _dedupe(getattr(out, name))
        dynamic.ClearField(name)
        getattr(out, name).extend(values)
    for name in ("allowed_territories", "excluded_territories"):
        values = _dedupe(code.upper() for code in getattr(out, name))
        dynamic.ClearField(name)
        getattr(out, name).extend(values)
    if out.HasField("per_use_fee") and out.per_use_fee.minor_units == 0 and not out.per_use_fee.currency_code:
        out.ClearField("per_use_fee")
    elif out.HasField("per_use_fee"):
        out.per_use_fee.currency_code = out.per_use_fee.currency_code.upper()
    return out


def same_terms(a: Message, b: Message) -> bool:
    """Whether two terms say the same thing, ignoring output-only fields."""
    return canonical(a) == canonical(b)  # type: ignore[arg-type]
