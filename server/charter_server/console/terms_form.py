"""The terms form: terms to form values and back, and where each error is shown.

The console checks only what it must to build a `Terms` message (a number where a number goes);
everything else (ranges, currencies, territories) is the API's to judge, and its field
violations (`terms.revenue_share_bps`) are shown next to the form field they concern.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from babel.numbers import get_currency_precision
from charter.v1 import terms_pb2
from starlette.datastructures import FormData

from charter_server.console.formatting import CATEGORIES, RATINGS, USE_TYPES

# Strict patterns: str.isdigit() accepts "²" and other digits int() refuses, and Decimal()
# and int() accept digits of every script; a form value is ASCII digits or an error.
_CHOICE = re.compile(r"[0-9]{1,9}")
_WHOLE = re.compile(r"-?[0-9]{1,20}")
_DECIMAL = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

MAX_TEXT = 2000
"""The longest text the console passes on for one field (the API has its own, lower limits)."""

# The API's field paths (within the request) and the form field that shows each one's error.
_FIELD_OF_PATH = {
    "permitted_use_types": "permitted_use_types",
    "max_content_rating": "max_content_rating",
    "prohibited_categories": "prohibited_categories",
    "allowed_territories": "allowed_territories",
    "excluded_territories": "excluded_territories",
    "allowed_licensee_ids": "allowed_licensee_ids",
    "allowed_platforms": "allowed_platforms",
    "prohibited_co_appearance_ids": "prohibited_co_appearance_ids",
    "valid_from": "valid_from",
    "valid_until": "valid_until",
    "attribution_text": "attribution_text",
    "revenue_share_bps": "revenue_share_percent",
    "per_use_fee": "fee_amount",
    "daily_quota": "daily_quota",
    "monthly_quota": "monthly_quota",
}


@dataclass(slots=True)
class TermsForm:
    """The values of the form as typed, and the errors to show next to each field."""

    values: dict[str, str | list[str]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)

    def error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def text(self, name: str) -> str:
        value = self.values.get(name, "")
        return value if isinstance(value, str) else ""

    def checked(self, name: str, option: object = "on") -> bool:
        value = self.values.get(name)
        if isinstance(value, list):
            return str(option) in value
        return value == str(option)


def form_field_of(path: str) -> str:
    """The form field that shows an API field violation (`terms.per_use_fee.currency_code`, or
    `proposed.terms.…` from a preview)."""
    path = path.removeprefix("proposed.").removeprefix("terms.")
    head = path.split(".", 1)[0].split("[", 1)[0]
    if path.startswith("per_use_fee.currency_code"):
        return "fee_currency"
    return _FIELD_OF_PATH.get(head, "")


def from_terms(terms: terms_pb2.Terms) -> TermsForm:
    """The form showing ``terms``."""
    values: dict[str, str | list[str]] = {
        "permitted_use_types": [str(v) for v in terms.permitted_use_types],
        "max_content_rating": str(terms.max_content_rating),
        "prohibited_categories": [str(v) for v in terms.prohibited_categories],
        "allowed_territories": ", ".join(terms.allowed_territories),
        "excluded_territories": ", ".join(terms.excluded_territories),
        "allowed_licensee_ids": ", ".join(terms.allowed_licensee_ids),
        "allowed_platforms": ", ".join(terms.allowed_platforms),
        "prohibited_co_appearance_ids": ", ".join(terms.prohibited_co_appearance_ids),
        "valid_from": f"{terms.valid_from.ToDatetime(tzinfo=UTC):%Y-%m-%d}" if terms.HasField("valid_from") else "",
        "valid_until": f"{terms.valid_until.ToDatetime(tzinfo=UTC):%Y-%m-%d}" if terms.HasField("valid_until") else "",
        "attribution_text": terms.attribution_text,
        "revenue_share_percent": str(Decimal(terms.revenue_share_bps).scaleb(-2).normalize())
        if terms.revenue_share_bps
        else "0",
        "fee_currency": terms.per_use_fee.currency_code if terms.HasField("per_use_fee") else "",
        "fee_amount": _fee_amount(terms) if terms.HasField("per_use_fee") else "",
        "daily_quota": str(terms.daily_quota) if terms.HasField("daily_quota") else "",
        "monthly_quota": str(terms.monthly_quota) if terms.HasField("monthly_quota") else "",
    }
    if terms.commercial_use_allowed:
        values["commercial_use_allowed"] = "on"
    if terms.watermark_required:
        values["watermark_required"] = "on"
    return TermsForm(values)


def _fee_amount(terms: terms_pb2.Terms) -> str:
    currency = terms.per_use_fee.currency_code
    digits = _precision(currency)
    return f"{Decimal(terms.per_use_fee.minor_units).scaleb(-digits):f}"


def _precision(currency: str) -> int:
    try:
        return int(get_currency_precision(currency.upper())) if currency else 2
    except (ValueError, KeyError):
        return 2


def parse(form: FormData) -> tuple[TermsForm, terms_pb2.Terms]:
    """The typed values, the errors found while reading them, and the terms they make."""
    result = TermsForm()
    for name in ("permitted_use_types", "prohibited_categories"):
        result.values[name] = [str(v)[:20] for v in form.getlist(name)][:50]
    for name, value in form.multi_items():
        if name not in ("permitted_use_types", "prohibited_categories", "csrf_token") and isinstance(value, str):
            result.values[name] = value[:MAX_TEXT]
            if len(value) > MAX_TEXT:
                result.error(name, f"is longer than {MAX_TEXT} characters")
    terms = terms_pb2.Terms()
    # The generated stubs type enum lists by their own value type; the values are checked above.
    cast(Any, terms.permitted_use_types).extend(_enum_values(result, "permitted_use_types", USE_TYPES))
    rating = _enum_values(result, "max_content_rating", RATINGS)
    if rating:
        terms.max_content_rating = rating[0]  # type: ignore[assignment]
    cast(Any, terms.prohibited_categories).extend(_enum_values(result, "prohibited_categories", CATEGORIES))
    terms.commercial_use_allowed = result.checked("commercial_use_allowed")
    terms.watermark_required = result.checked("watermark_required")
    for name in (
        "allowed_territories",
        "excluded_territories",
        "allowed_licensee_ids",
        "allowed_platforms",
        "prohibited_co_appearance_ids",
    ):
        getattr(terms, name).extend(_items(result.text(name)))
    terms.attribution_text = result.text("attribution_text")
    for name in ("valid_from", "valid_until"):
        when = _date(result, name)
        if when is not None:
            getattr(terms, name).FromDatetime(datetime(when.year, when.month, when.day, tzinfo=UTC))
    share = _decimal(result, "revenue_share_percent")
    if share is not None:
        bps = share.scaleb(2)
        if bps != bps.to_integral_value() or not -(2**31) < bps < 2**31:
            result.error("revenue_share_percent", "must be a percentage with at most two decimals")
        else:
            terms.revenue_share_bps = int(bps)
    currency = result.text("fee_currency").strip().upper()
    amount = _decimal(result, "fee_amount")
    if amount is not None or currency:
        if amount is None:
            result.error("fee_amount", "is required with a currency")
        elif not currency:
            result.error("fee_currency", "is required with an amount")
        else:
            minor = amount.scaleb(_precision(currency))
            if minor != minor.to_integral_value() or abs(minor) >= 2**63:
                result.error("fee_amount", f"must have at most {_precision(currency)} decimals in {currency[:3]}")
            else:
                terms.per_use_fee.CopyFrom(terms_pb2.Money(currency_code=currency, minor_units=int(minor)))
    for name in ("daily_quota", "monthly_quota"):
        quota = _integer(result, name)
        if quota is not None:
            setattr(terms, name, quota)
    return result, terms


def _items(text: str) -> list[str]:
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()][:200]


def _enum_values(result: TermsForm, name: str, known: dict[int, str]) -> list[int]:
    raw = result.values.get(name, [])
    chosen = [raw] if isinstance(raw, str) else raw
    values = []
    for text in chosen:
        if text in ("", "0"):
            continue
        if not _CHOICE.fullmatch(text) or int(text) not in known:
            result.error(name, "is not one of the choices")
            continue
        values.append(int(text))
    return values


def _decimal(result: TermsForm, name: str) -> Decimal | None:
    text = result.text(name).strip().replace(",", "")
    if not text:
        return None
    # ASCII digits only, no exponent ("1e999999" is not an amount anyone types), a bounded length.
    if len(text) > 30 or not _DECIMAL.fullmatch(text):
        result.error(name, "must be a number")
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        result.error(name, "must be a number")
        return None
    if not value.is_finite():
        result.error(name, "must be a number")
        return None
    return value


def _integer(result: TermsForm, name: str) -> int | None:
    """A whole number that fits the field (int64), or None with the error next to the field."""
    text = result.text(name).strip().replace(",", "")
    if not text:
        return None
    if not _WHOLE.fullmatch(text):
        result.error(name, "must be a whole number")
        return None
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        result.error(name, f"must be between {INT64_MIN} and {INT64_MAX}")
        return None
    return value


def _date(result: TermsForm, name: str) -> date | None:
    text = result.text(name).strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        result.error(name, "must be a date, YYYY-MM-DD")
        return None
