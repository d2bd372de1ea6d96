"""Whether narrowed terms are at most as permissive as the character's terms, field by field."""

from __future__ import annotations

from charter.v1 import terms_pb2 as t
from google.protobuf.message import Message

from charter_server.domain.errors import FieldViolation


def wider_fields(narrowed: t.Terms, current: t.Terms, prefix: str = "narrowed_terms") -> list[FieldViolation]:
    """Every field in which ``narrowed`` allows more than ``current``."""
    out: list[FieldViolation] = []

    def wider(field: str, why: str) -> None:
        out.append(FieldViolation(f"{prefix}.{field}", why))

    if not set(narrowed.permitted_use_types) <= set(current.permitted_use_types):
        wider("permitted_use_types", "permits a use type the character's terms do not")
    if narrowed.max_content_rating > current.max_content_rating:
        wider("max_content_rating", "allows a higher rating than the character's terms")
    if not set(current.prohibited_categories) <= set(narrowed.prohibited_categories):
        wider("prohibited_categories", "must keep every category the character's terms prohibit")
    if current.allowed_territories and not (
        narrowed.allowed_territories and set(narrowed.allowed_territories) <= set(current.allowed_territories)
    ):
        wider("allowed_territories", "must be a non-empty subset of the character's allowed territories")
    if not set(current.excluded_territories) <= set(narrowed.excluded_territories):
        wider("excluded_territories", "must keep every territory the character's terms exclude")
    if narrowed.commercial_use_allowed and not current.commercial_use_allowed:
        wider("commercial_use_allowed", "the character's terms do not allow commercial use")
    for field in ("allowed_licensee_ids", "allowed_platforms"):
        mine, theirs = set(getattr(narrowed, field)), set(getattr(current, field))
        if theirs and not (mine and mine <= theirs):
            wider(field, "must be a non-empty subset of the character's list")
    if not set(current.prohibited_co_appearance_ids) <= set(narrowed.prohibited_co_appearance_ids):
        wider("prohibited_co_appearance_ids", "must keep every prohibited co-appearance")
    if current.HasField("valid_from") and (
        not narrowed.HasField("valid_from") or narrowed.valid_from.ToNanoseconds() < current.valid_from.ToNanoseconds()
    ):
        wider("valid_from", "must not start before the character's terms")
    if current.HasField("valid_until") and (
        not narrowed.HasField("valid_until")
        or narrowed.valid_until.ToNanoseconds() > current.valid_until.ToNanoseconds()
    ):
        wider("valid_until", "must not end after the character's terms")
    if current.attribution_text and narrowed.attribution_text != current.attribution_text:
        wider("attribution_text", "must keep the character's attribution")
    if current.watermark_required and not narrowed.watermark_required:
        wider("watermark_required", "the character's terms require a watermark")
    if narrowed.revenue_share_bps < current.revenue_share_bps:
        wider("revenue_share_bps", "must not be lower than the character's share")
    if (
        current.HasField("per_use_fee")
        and current.per_use_fee.minor_units > 0
        and (
            narrowed.per_use_fee.currency_code != current.per_use_fee.currency_code
            or narrowed.per_use_fee.minor_units < current.per_use_fee.minor_units
        )
    ):
        wider("per_use_fee", "must be in the same currency and not lower than the character's fee")
    narrowed_msg: Message = narrowed  # quota fields are named at run time
    current_msg: Message = current
    for field in ("daily_quota", "monthly_quota"):
        missing = not narrowed_msg.HasField(field)
        if current_msg.HasField(field) and (missing or getattr(narrowed, field) > getattr(current, field)):
            wider(field, "must not be higher than the character's quota")
    return out
