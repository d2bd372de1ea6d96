"""Terms validation field by field, and the stored (canonical) form of terms."""

from __future__ import annotations

from typing import Any

import pytest
from charter.v1 import terms_pb2 as t
from charter_server.domain import ids
from charter_server.services.terms_rules import canonical, check_terms, is_currency, is_territory, same_terms
from charter_server.services.validation import Checker
from google.protobuf import timestamp_pb2

SELF = ids.new_id("character")
OTHER = ids.new_id("character")
LICENSEE = ids.new_id("licensee")
FULL_WIDTH_JP = "\uff2a\uff30"  # JP in full-width letters


def stamp(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def valid(**changes: Any) -> t.Terms:
    base: dict[str, Any] = {
        "permitted_use_types": [t.USE_TYPE_VIDEO_GENERATION],
        "max_content_rating": t.CONTENT_RATING_ALL_AGES,
    }
    return t.Terms(**{**base, **changes})


def violations(terms: t.Terms, *, prefix: str = "terms", character_id: str = SELF) -> list[str]:
    checker = Checker()
    check_terms(checker, terms, prefix, character_id=character_id)
    return sorted(v.field for v in checker.violations)


def full() -> t.Terms:
    """Terms with every field set to a valid value."""
    return valid(
        permitted_use_types=list(t.UseType.values())[1:],
        max_content_rating=t.CONTENT_RATING_ADULT,
        prohibited_categories=list(t.ContentCategory.values())[1:],
        allowed_territories=["JP", "us"],
        excluded_territories=["KP"],
        commercial_use_allowed=True,
        allowed_licensee_ids=[LICENSEE],
        allowed_platforms=["video-app"],
        prohibited_co_appearance_ids=[OTHER],
        valid_from=stamp(0),
        valid_until=stamp(253402300799, 999_999_999),
        attribution_text="© Studio\tKK",
        watermark_required=True,
        revenue_share_bps=10_000,
        per_use_fee=t.Money(currency_code="JPY", minor_units=0),
        daily_quota=0,
        monthly_quota=2**62,
    )


def test_valid_terms_have_no_violations() -> None:
    assert violations(valid()) == []
    assert violations(full()) == []


BAD: dict[str, tuple[dict[str, Any], list[str]]] = {
    "use_types-empty": ({"permitted_use_types": []}, ["terms.permitted_use_types"]),
    "use_types-unspecified": ({"permitted_use_types": [1, 0]}, ["terms.permitted_use_types[1]"]),
    "use_types-unknown": ({"permitted_use_types": [6]}, ["terms.permitted_use_types[0]"]),
    "use_types-negative": ({"permitted_use_types": [-3]}, ["terms.permitted_use_types[0]"]),
    "rating-unspecified": ({"max_content_rating": 0}, ["terms.max_content_rating"]),
    "rating-unknown": ({"max_content_rating": 5}, ["terms.max_content_rating"]),
    "rating-negative": ({"max_content_rating": -1}, ["terms.max_content_rating"]),
    "categories-unspecified": ({"prohibited_categories": [0]}, ["terms.prohibited_categories[0]"]),
    "categories-unknown": ({"prohibited_categories": [1, 13]}, ["terms.prohibited_categories[1]"]),
    "allowed_territories-ZZ": ({"allowed_territories": ["ZZ"]}, ["terms.allowed_territories[0]"]),
    "allowed_territories-JPN": ({"allowed_territories": ["JP", "JPN"]}, ["terms.allowed_territories[1]"]),
    "allowed_territories-empty": ({"allowed_territories": [""]}, ["terms.allowed_territories[0]"]),
    "allowed_territories-one_letter": ({"allowed_territories": ["J"]}, ["terms.allowed_territories[0]"]),
    "allowed_territories-eszett": ({"allowed_territories": ["ß"]}, ["terms.allowed_territories[0]"]),
    "allowed_territories-full_width": ({"allowed_territories": [FULL_WIDTH_JP]}, ["terms.allowed_territories[0]"]),
    "allowed_territories-too_many": ({"allowed_territories": ["JP"] * 251}, ["terms.allowed_territories"]),
    "excluded_territories-XX": ({"excluded_territories": ["XX"]}, ["terms.excluded_territories[0]"]),
    "excluded_territories-too_many": ({"excluded_territories": ["JP"] * 251}, ["terms.excluded_territories"]),
    "territories-both": (
        {"allowed_territories": ["jp"], "excluded_territories": ["JP"]},
        ["terms.excluded_territories"],
    ),
    "valid_until-equal": ({"valid_from": stamp(100), "valid_until": stamp(100)}, ["terms.valid_until"]),
    "valid_until-before": ({"valid_from": stamp(100, 5), "valid_until": stamp(100, 4)}, ["terms.valid_until"]),
    "valid_from-negative_nanos": ({"valid_from": stamp(100, -1)}, ["terms.valid_from"]),
    "valid_from-too_many_nanos": ({"valid_from": stamp(100, 10**9)}, ["terms.valid_from"]),
    "valid_from-before_year_1": ({"valid_from": stamp(-62135596801)}, ["terms.valid_from"]),
    "valid_until-after_9999": ({"valid_until": stamp(253402300800)}, ["terms.valid_until"]),
    "valid_window-both_invalid": (
        {"valid_from": stamp(2**62), "valid_until": stamp(-(2**62))},
        ["terms.valid_from", "terms.valid_until"],
    ),
    "currency-unknown": (
        {"per_use_fee": t.Money(currency_code="XYZ", minor_units=1)},
        ["terms.per_use_fee.currency_code"],
    ),
    "currency-empty": ({"per_use_fee": t.Money(minor_units=1)}, ["terms.per_use_fee.currency_code"]),
    "currency-alpha2": (
        {"per_use_fee": t.Money(currency_code="US", minor_units=1)},
        ["terms.per_use_fee.currency_code"],
    ),
    "currency-numeric": (
        {"per_use_fee": t.Money(currency_code="840", minor_units=1)},
        ["terms.per_use_fee.currency_code"],
    ),
    "currency-full_width": (
        {"per_use_fee": t.Money(currency_code="\uff2a\uff30\uff39", minor_units=1)},
        ["terms.per_use_fee.currency_code"],
    ),
    "fee-negative": ({"per_use_fee": t.Money(currency_code="JPY", minor_units=-1)}, ["terms.per_use_fee.minor_units"]),
    "share-above": ({"revenue_share_bps": 10_001}, ["terms.revenue_share_bps"]),
    "share-negative": ({"revenue_share_bps": -1}, ["terms.revenue_share_bps"]),
    "daily_quota-negative": ({"daily_quota": -1}, ["terms.daily_quota"]),
    "monthly_quota-negative": ({"monthly_quota": -1}, ["terms.monthly_quota"]),
    "co_appearance-itself": (
        {"prohibited_co_appearance_ids": [OTHER, SELF]},
        ["terms.prohibited_co_appearance_ids[1]"],
    ),
    "co_appearance-malformed": ({"prohibited_co_appearance_ids": ["chr_x"]}, ["terms.prohibited_co_appearance_ids[0]"]),
    "co_appearance-empty": ({"prohibited_co_appearance_ids": [""]}, ["terms.prohibited_co_appearance_ids[0]"]),
    "co_appearance-wrong_kind": (
        {"prohibited_co_appearance_ids": [LICENSEE]},
        ["terms.prohibited_co_appearance_ids[0]"],
    ),
    "co_appearance-too_many": ({"prohibited_co_appearance_ids": [OTHER] * 251}, ["terms.prohibited_co_appearance_ids"]),
    "licensees-malformed": ({"allowed_licensee_ids": ["lic_nope"]}, ["terms.allowed_licensee_ids[0]"]),
    "licensees-empty": ({"allowed_licensee_ids": [LICENSEE, ""]}, ["terms.allowed_licensee_ids[1]"]),
    "licensees-wrong_kind": ({"allowed_licensee_ids": [OTHER]}, ["terms.allowed_licensee_ids[0]"]),
    "licensees-too_many": ({"allowed_licensee_ids": [LICENSEE] * 251}, ["terms.allowed_licensee_ids"]),
    "platforms-upper": ({"allowed_platforms": ["Video-App"]}, ["terms.allowed_platforms[0]"]),
    "platforms-empty": ({"allowed_platforms": [""]}, ["terms.allowed_platforms[0]"]),
    "platforms-too_many": ({"allowed_platforms": ["app"] * 251}, ["terms.allowed_platforms"]),
    "attribution-too_long": ({"attribution_text": "a" * 501}, ["terms.attribution_text"]),
    "attribution-newline": ({"attribution_text": "a\nb"}, ["terms.attribution_text"]),
    "attribution-nul": ({"attribution_text": "a\x00b"}, ["terms.attribution_text"]),
}


@pytest.mark.parametrize("name", list(BAD))
def test_each_bad_field_is_named(name: str) -> None:
    changes, fields = BAD[name]

    assert violations(valid(**changes)) == sorted(fields)


def test_every_violation_is_reported_at_once_under_the_given_prefix() -> None:
    bad = valid(
        permitted_use_types=[],
        max_content_rating=0,
        excluded_territories=["ZZ"],
        revenue_share_bps=-5,
        per_use_fee=t.Money(currency_code="xyz", minor_units=-1),
        daily_quota=-1,
        monthly_quota=-1,
        valid_from=stamp(10),
        valid_until=stamp(5),
    )

    assert violations(bad, prefix="rows[3].terms") == sorted(
        f"rows[3].terms.{f}"
        for f in [
            "permitted_use_types",
            "max_content_rating",
            "excluded_territories[0]",
            "revenue_share_bps",
            "per_use_fee.currency_code",
            "per_use_fee.minor_units",
            "daily_quota",
            "monthly_quota",
            "valid_until",
        ]
    )


def test_a_character_may_name_itself_when_the_character_is_not_known_yet() -> None:
    """Import rows for new characters have no id yet; the self check needs one."""
    assert violations(valid(prohibited_co_appearance_ids=[SELF]), character_id="") == []


def test_lower_case_codes_are_accepted() -> None:
    assert (
        violations(
            valid(
                allowed_territories=["jp", "Us"],
                excluded_territories=["kp"],
                per_use_fee=t.Money(currency_code="jpy", minor_units=1),
            )
        )
        == []
    )


@pytest.mark.parametrize(
    ("code", "known"),
    [
        ("JP", True),
        ("GB", True),
        ("jp", True),
        ("ZZ", False),
        ("JPN", False),
        ("", False),
        (FULL_WIDTH_JP, False),
        ("\u0131t", False),  # U+0131 uppercases to I: not IT
        ("\u017fe", False),  # U+017F uppercases to S: not SE
        ("\u212aN", False),  # the Kelvin sign: pycountry's look-up lowercases it to k
    ],
)
def test_is_territory(code: str, known: bool) -> None:
    assert is_territory(code) is known


@pytest.mark.parametrize(
    ("code", "known"),
    [("JPY", True), ("USD", True), ("EUR", True), ("usd", False), ("XYZ", False), ("US", False), ("", False)],
)
def test_is_currency(code: str, known: bool) -> None:
    assert is_currency(code) is known


def test_the_canonical_form_drops_output_only_fields_and_duplicates() -> None:
    given = valid(
        version=7,
        character_id=SELF,
        create_time=stamp(5),
        author_key_id=ids.new_id("api_key"),
        permitted_use_types=[2, 1, 2],
        prohibited_categories=[3, 3, 1],
        allowed_territories=["jp", "JP", "fr"],
        excluded_territories=["kp", "KP"],
        allowed_licensee_ids=[LICENSEE, LICENSEE],
        allowed_platforms=["a", "a"],
        prohibited_co_appearance_ids=[OTHER, OTHER],
        per_use_fee=t.Money(currency_code="usd", minor_units=5),
    )

    stored = canonical(given)

    assert (stored.version, stored.character_id, stored.author_key_id, stored.HasField("create_time")) == (
        0,
        "",
        "",
        False,
    )
    assert list(stored.permitted_use_types) == [2, 1]
    assert list(stored.prohibited_categories) == [3, 1]
    assert (list(stored.allowed_territories), list(stored.excluded_territories)) == (["JP", "FR"], ["KP"])
    assert (list(stored.allowed_licensee_ids), list(stored.allowed_platforms)) == ([LICENSEE], ["a"])
    assert list(stored.prohibited_co_appearance_ids) == [OTHER]
    assert stored.per_use_fee == t.Money(currency_code="USD", minor_units=5)
    assert given.version == 7 and len(given.permitted_use_types) == 3  # the input is not changed
    assert canonical(stored) == stored


def test_an_empty_fee_is_no_fee() -> None:
    assert not canonical(valid(per_use_fee=t.Money())).HasField("per_use_fee")


def test_a_quota_of_zero_is_kept_apart_from_no_quota() -> None:
    assert canonical(valid(daily_quota=0)).HasField("daily_quota")
    assert not same_terms(valid(daily_quota=0), valid())


def test_same_terms_ignores_output_only_fields_duplicates_and_case() -> None:
    stored = canonical(valid(allowed_territories=["JP"], permitted_use_types=[1]))
    stored.version, stored.character_id = 3, SELF

    assert same_terms(stored, valid(allowed_territories=["jp", "JP"], permitted_use_types=[1, 1]))
    assert not same_terms(stored, valid(allowed_territories=["US"]))
