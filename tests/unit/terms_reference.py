"""An independent reference model of terms evaluation, for the property tests.

Deliberately simple and slow: plain functions that read the ``Terms`` message fields directly,
one per rule as the comments of ``terms.proto`` and the issue state it, with no code shared
with ``charter.terms`` (no precomputed sets, no bit masks, no rounding: times compare as whole
nanoseconds). A use is a plain mapping of the context fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from charter.v1 import terms_pb2 as t
from google.protobuf.timestamp_pb2 import Timestamp

Use = Mapping[str, Any]

# The ladder, lowest first.
LADDER = [
    t.CONTENT_RATING_ALL_AGES,
    t.CONTENT_RATING_TEEN,
    t.CONTENT_RATING_MATURE,
    t.CONTENT_RATING_ADULT,
]


def nanoseconds(moment: datetime) -> int:
    """An aware datetime as whole nanoseconds since the epoch."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def stamp_nanoseconds(stamp: Timestamp) -> int:
    return stamp.seconds * 1_000_000_000 + stamp.nanos


def use_type_fails(terms: t.Terms, use: Use) -> bool:
    if use["use_type"] == t.USE_TYPE_UNSPECIFIED:
        return True
    return use["use_type"] not in list(terms.permitted_use_types)


def rating_fails(terms: t.Terms, use: Use) -> bool:
    rating: int = use["content_rating"]
    if rating == t.CONTENT_RATING_UNSPECIFIED:
        rating = t.CONTENT_RATING_ADULT
    if rating not in LADDER:
        return True
    return rating > terms.max_content_rating


def category_fails(terms: t.Terms, use: Use) -> bool:
    return any(category in list(terms.prohibited_categories) for category in use["categories"])


def territory_fails(terms: t.Terms, use: Use) -> bool:
    territory = use["territory"].upper()
    allowed = [code.upper() for code in terms.allowed_territories]
    excluded = [code.upper() for code in terms.excluded_territories]
    if not allowed and not excluded:
        return False
    if territory == "":
        return True
    if territory in excluded:
        return True
    return len(allowed) > 0 and territory not in allowed


def commercial_fails(terms: t.Terms, use: Use) -> bool:
    return use["commercial"] is True and terms.commercial_use_allowed is False


def co_appearance_fails(terms: t.Terms, use: Use) -> bool:
    return any(other in list(terms.prohibited_co_appearance_ids) for other in use["co_characters"])


def window_fails(terms: t.Terms, use: Use) -> bool:
    now = nanoseconds(use["time"])
    if terms.HasField("valid_from") and now < stamp_nanoseconds(terms.valid_from):
        return True
    return terms.HasField("valid_until") and now >= stamp_nanoseconds(terms.valid_until)


def licensee_fails(terms: t.Terms, use: Use) -> bool:
    if len(terms.allowed_licensee_ids) == 0:
        return False
    return use["licensee_id"] == "" or use["licensee_id"] not in list(terms.allowed_licensee_ids)


def platform_fails(terms: t.Terms, use: Use) -> bool:
    if len(terms.allowed_platforms) == 0:
        return False
    return use["platform"] == "" or use["platform"] not in list(terms.allowed_platforms)


def quota_fails(terms: t.Terms, use: Use) -> bool:
    if use["quota_exhausted"]:
        return True
    if terms.HasField("daily_quota") and terms.daily_quota <= 0:
        return True
    return terms.HasField("monthly_quota") and terms.monthly_quota <= 0


# The rules in the order their reasons are reported.
RULES: list[tuple[str, Callable[[t.Terms, Use], bool]]] = [
    ("USE_TYPE_NOT_PERMITTED", use_type_fails),
    ("RATING_EXCEEDS_TERMS", rating_fails),
    ("CATEGORY_PROHIBITED", category_fails),
    ("TERRITORY_NOT_LICENSED", territory_fails),
    ("COMMERCIAL_USE_NOT_PERMITTED", commercial_fails),
    ("CO_APPEARANCE_PROHIBITED", co_appearance_fails),
    ("OUTSIDE_VALIDITY_WINDOW", window_fails),
    ("LICENSEE_NOT_PERMITTED", licensee_fails),
    ("PLATFORM_NOT_PERMITTED", platform_fails),
    ("QUOTA_EXHAUSTED", quota_fails),
]


def failed_terms(terms: t.Terms, use: Use) -> list[str]:
    """The names of every rule ``use`` fails under ``terms``, in reporting order."""
    return [name for name, fails in RULES if fails(terms, use)]


def obligations(terms: t.Terms) -> dict[str, Any]:
    """What an allowed use owes, as a plain dict."""
    return {
        "attribution_text": terms.attribution_text,
        "watermark_required": terms.watermark_required,
        "revenue_share_bps": terms.revenue_share_bps,
        "per_use_fee_minor_units": terms.per_use_fee.minor_units,
        "per_use_fee_currency": terms.per_use_fee.currency_code.upper(),
    }


def decide(terms: t.Terms, use: Use) -> tuple[bool, list[str], dict[str, Any] | None]:
    """Allowed, the failed rules, and the obligations (None when denied)."""
    failed = failed_terms(terms, use)
    if failed:
        return False, failed, None
    return True, [], obligations(terms)


__all__ = ["LADDER", "RULES", "decide", "failed_terms", "nanoseconds", "obligations"]
