"""What people read: money per currency (Babel), dates, labels of enum values, what changed between
two versions of terms, and CSV cells that a spreadsheet cannot run as formulas."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency, format_decimal, get_currency_precision
from charter import spreadsheet
from charter.v1 import character_pb2, decision_pb2, grant_pb2, terms_pb2
from google.protobuf import timestamp_pb2

DEFAULT_LOCALE = "en_US"

USE_TYPES: dict[int, str] = {
    terms_pb2.USE_TYPE_VIDEO_GENERATION: "video generation",
    terms_pb2.USE_TYPE_IMAGE_GENERATION: "image generation",
    terms_pb2.USE_TYPE_INTERACTIVE: "interactive",
    terms_pb2.USE_TYPE_CAMEO: "cameo",
    terms_pb2.USE_TYPE_AUDIO_GENERATION: "audio generation",
}
RATINGS: dict[int, str] = {
    terms_pb2.CONTENT_RATING_ALL_AGES: "all ages",
    terms_pb2.CONTENT_RATING_TEEN: "teen",
    terms_pb2.CONTENT_RATING_MATURE: "mature",
    terms_pb2.CONTENT_RATING_ADULT: "adult",
}
CATEGORIES: dict[int, str] = {
    value: name.removeprefix("CONTENT_CATEGORY_").replace("_", " ").lower()
    for name, value in terms_pb2.ContentCategory.items()
    if value
}
DENY_REASONS: dict[int, str] = {
    value: name.removeprefix("DENY_REASON_").replace("_", " ").lower()
    for name, value in decision_pb2.DenyReason.items()
    if value
}
CHARACTER_STATES: dict[int, str] = {
    character_pb2.Character.STATE_OPTED_OUT: "opted out",
    character_pb2.Character.STATE_OPTED_IN: "opted in",
    character_pb2.Character.STATE_SUSPENDED: "suspended",
    character_pb2.Character.STATE_ARCHIVED: "archived",
}
GRANT_STATES: dict[int, str] = {
    grant_pb2.Grant.STATE_ACTIVE: "active",
    grant_pb2.Grant.STATE_SUSPENDED: "suspended",
    grant_pb2.Grant.STATE_REVOKED: "revoked",
}
ALIAS_KINDS: dict[int, str] = {
    value: name.removeprefix("KIND_").replace("_", " ").lower()
    for name, value in character_pb2.Alias.Kind.items()
    if value
}


def locale_for(accept_language: str) -> Locale:
    """The first locale of an Accept-Language header that Babel knows, else en_US."""
    for part in accept_language.split(","):
        tag = part.split(";", 1)[0].strip().replace("-", "_")
        if not tag or tag == "*" or len(tag) > 35:
            continue
        try:
            return Locale.parse(tag)
        except (ValueError, UnknownLocaleError):
            continue
    return Locale.parse(DEFAULT_LOCALE)


def major_units(minor_units: int, currency: str) -> Decimal:
    """Minor units as an exact decimal amount of the currency (2 digits when unknown)."""
    digits = get_currency_precision(currency) if currency else 2
    return Decimal(minor_units).scaleb(-digits)


def money(minor_units: int, currency: str, locale: Locale) -> str:
    """An amount for people, in the currency's own digits and the reader's locale."""
    if not currency:
        return format_decimal(minor_units, locale=locale)
    return format_currency(major_units(minor_units, currency), currency, locale=locale)


def number(value: int, locale: Locale) -> str:
    return format_decimal(value, locale=locale)


def duration(milliseconds: int) -> str:
    """A content length as h:mm:ss."""
    seconds = milliseconds // 1000
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def when(stamp: timestamp_pb2.Timestamp | None) -> str:
    """A time as `YYYY-MM-DD HH:MM UTC`, or an empty string when unset."""
    if stamp is None or (stamp.seconds == 0 and stamp.nanos == 0):
        return ""
    return f"{stamp.ToDatetime(tzinfo=UTC):%Y-%m-%d %H:%M} UTC"


def day(stamp: timestamp_pb2.Timestamp | None) -> str:
    if stamp is None or (stamp.seconds == 0 and stamp.nanos == 0):
        return ""
    return f"{stamp.ToDatetime(tzinfo=UTC):%Y-%m-%d}"


def today() -> str:
    return f"{datetime.now(UTC):%Y-%m-%d}"


# Terms, read and compared ------------------------------------------------------------------------

TERMS_FIELDS: tuple[tuple[str, str], ...] = (
    ("permitted_use_types", "Permitted uses"),
    ("max_content_rating", "Highest content rating"),
    ("prohibited_categories", "Prohibited content"),
    ("commercial_use_allowed", "Commercial use"),
    ("allowed_territories", "Only in territories"),
    ("excluded_territories", "Not in territories"),
    ("allowed_licensee_ids", "Only for licensees"),
    ("allowed_platforms", "Only on platforms"),
    ("prohibited_co_appearance_ids", "Never with characters"),
    ("valid_from", "Valid from"),
    ("valid_until", "Valid until"),
    ("attribution_text", "Attribution"),
    ("watermark_required", "Watermark"),
    ("revenue_share_bps", "Revenue share"),
    ("per_use_fee", "Fee per use"),
    ("daily_quota", "Uses per day"),
    ("monthly_quota", "Uses per month"),
)


def _has(terms: terms_pb2.Terms, name: str) -> bool:
    return bool(terms.HasField(name))  # type: ignore[arg-type] # the names come from TERMS_FIELDS


def terms_value(terms: terms_pb2.Terms, name: str, locale: Locale) -> str:  # noqa: PLR0911 - one way per field
    """One field of terms as people read it."""
    value: Any = getattr(terms, name)
    if name == "permitted_use_types":
        return ", ".join(USE_TYPES.get(v, str(v)) for v in value) or "none"
    if name == "max_content_rating":
        return RATINGS.get(value, "not set")
    if name == "prohibited_categories":
        return ", ".join(CATEGORIES.get(v, str(v)) for v in value) or "none"
    if name in ("commercial_use_allowed", "watermark_required"):
        return "yes" if value else "no"
    if name in ("valid_from", "valid_until"):
        return day(value) if _has(terms, name) else "—"
    if name == "revenue_share_bps":
        return format_decimal(Decimal(int(value)).scaleb(-2), locale=locale) + " %"
    if name == "per_use_fee":
        return money(value.minor_units, value.currency_code, locale) if _has(terms, name) else "none"
    if name in ("daily_quota", "monthly_quota"):
        return number(int(value), locale) if _has(terms, name) else "no limit"
    if isinstance(value, str):
        return value or "—"
    return ", ".join(str(v) for v in value) or "any"


@dataclass(frozen=True, slots=True)
class Change:
    """One field that differs between two versions of terms."""

    label: str
    before: str
    after: str


def terms_changes(before: terms_pb2.Terms | None, after: terms_pb2.Terms, locale: Locale) -> list[Change]:
    """What changed from ``before`` to ``after`` (every set field when there is no ``before``)."""
    changes = []
    for name, label in TERMS_FIELDS:
        new = terms_value(after, name, locale)
        old = terms_value(before, name, locale) if before is not None else ""
        if before is None or new != old:
            changes.append(Change(label, old, new))
    return changes


# CSV ---------------------------------------------------------------------------------------------

csv_cell = spreadsheet.csv_cell
"""The SDK's rule (`charter.spreadsheet`), so the console's and the CLI's CSV agree."""
