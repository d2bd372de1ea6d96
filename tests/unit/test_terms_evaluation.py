"""Terms evaluation: every term alone and in every combination, the boundaries, the obligations,
and property tests against the independent reference model in ``terms_reference``."""

from __future__ import annotations

import dataclasses
import inspect
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from charter._use_context import use_context_by_position
from charter.terms import CompiledTerms, DenyReason, Evaluation, Obligations, UseContext, evaluate
from charter.v1 import terms_pb2 as t
from google.protobuf import timestamp_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from . import terms_reference as ref

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
NOW_SECONDS = int(NOW.timestamp())
DAY = timedelta(days=1)
MICRO = timedelta(microseconds=1)
JST = timezone(timedelta(hours=9))
# Timestamp seconds just outside the range of datetime: before 0001-01-01 and at 10000-01-01.
BEFORE_YEAR_1 = -62135596801
YEAR_10000 = 253402300800

# The reasons the terms evaluator can give; the rest of DenyReason are the authorization's own.
ALL_REASONS = list(DenyReason)[: list(DenyReason).index(DenyReason.QUOTA_EXHAUSTED) + 1]
LADDER = [t.CONTENT_RATING_ALL_AGES, t.CONTENT_RATING_TEEN, t.CONTENT_RATING_MATURE, t.CONTENT_RATING_ADULT]


def stamp(moment: datetime, nanos: int = 0) -> timestamp_pb2.Timestamp:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return timestamp_pb2.Timestamp(seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000 + nanos)


def open_terms(**changes: Any) -> t.Terms:
    """Terms that restrict only use type and rating: every list empty, no window, no quotas."""
    base: dict[str, Any] = {
        "permitted_use_types": [t.USE_TYPE_VIDEO_GENERATION, t.USE_TYPE_IMAGE_GENERATION],
        "max_content_rating": t.CONTENT_RATING_TEEN,
    }
    return t.Terms(**{**base, **changes})


def strict_terms(**changes: Any) -> t.Terms:
    """Terms that restrict every term, all satisfied by `strict_context()`."""
    base: dict[str, Any] = {
        "version": 3,
        "character_id": "chr_self",
        "permitted_use_types": [t.USE_TYPE_VIDEO_GENERATION, t.USE_TYPE_IMAGE_GENERATION],
        "max_content_rating": t.CONTENT_RATING_TEEN,
        "prohibited_categories": [t.CONTENT_CATEGORY_SEXUAL, t.CONTENT_CATEGORY_HATE],
        "allowed_territories": ["JP", "US"],
        "excluded_territories": ["KP"],
        "commercial_use_allowed": False,
        "allowed_licensee_ids": ["lic_a"],
        "allowed_platforms": ["app"],
        "prohibited_co_appearance_ids": ["chr_x"],
        "valid_from": stamp(NOW - DAY),
        "valid_until": stamp(NOW + DAY),
        "attribution_text": "© Example Studio",
        "watermark_required": True,
        "revenue_share_bps": 1500,
        "per_use_fee": t.Money(currency_code="JPY", minor_units=30),
        "daily_quota": 10,
        "monthly_quota": 100,
    }
    return t.Terms(**{**base, **changes})


def context(**changes: Any) -> UseContext:
    """A non-commercial all-ages video at NOW, with nothing else said."""
    base: dict[str, Any] = {
        "use_type": t.USE_TYPE_VIDEO_GENERATION,
        "content_rating": t.CONTENT_RATING_ALL_AGES,
        "time": NOW,
    }
    return UseContext(**{**base, **changes})


def strict_context(**changes: Any) -> UseContext:
    """A use that satisfies every term of `strict_terms()`."""
    base: dict[str, Any] = {
        "categories": frozenset({t.CONTENT_CATEGORY_GRAPHIC_VIOLENCE}),
        "territory": "JP",
        "platform": "app",
        "licensee_id": "lic_a",
        "co_characters": frozenset({"chr_y"}),
    }
    return context(**{**base, **changes})


def reasons(terms: t.Terms, use: UseContext, *, quota_exhausted: bool = False) -> tuple[DenyReason, ...]:
    result = evaluate(terms, use, quota_exhausted=quota_exhausted)
    assert result.allowed is (not result.reasons)
    assert (result.obligations is None) is (not result.allowed)
    return result.reasons


# The API -------------------------------------------------------------------------------------


def test_deny_reasons_are_strings_in_the_documented_order() -> None:
    assert [str(reason) for reason in ALL_REASONS] == [
        "USE_TYPE_NOT_PERMITTED",
        "RATING_EXCEEDS_TERMS",
        "CATEGORY_PROHIBITED",
        "TERRITORY_NOT_LICENSED",
        "COMMERCIAL_USE_NOT_PERMITTED",
        "CO_APPEARANCE_PROHIBITED",
        "OUTSIDE_VALIDITY_WINDOW",
        "LICENSEE_NOT_PERMITTED",
        "PLATFORM_NOT_PERMITTED",
        "QUOTA_EXHAUSTED",
    ]
    assert DenyReason("QUOTA_EXHAUSTED") is DenyReason.QUOTA_EXHAUSTED


def test_deny_reasons_mirror_the_contract_in_order() -> None:
    from charter.v1 import decision_pb2

    names = [name.removeprefix("DENY_REASON_") for name in decision_pb2.DenyReason.keys()[1:]]
    assert [str(reason) for reason in DenyReason] == names
    assert [decision_pb2.DenyReason.Value(f"DENY_REASON_{reason}") for reason in DenyReason] == list(
        range(1, len(DenyReason) + 1)
    )


def test_use_context_takes_three_positional_fields_and_the_rest_by_keyword() -> None:
    use = UseContext(t.USE_TYPE_CAMEO, t.CONTENT_RATING_TEEN, NOW, territory="jp")
    assert (use.use_type, use.content_rating, use.time) == (t.USE_TYPE_CAMEO, t.CONTENT_RATING_TEEN, NOW)
    assert use.categories == frozenset()
    assert use.co_characters == frozenset()
    assert (use.platform, use.licensee_id, use.commercial, use.duration_seconds) == ("", "", False, 0.0)
    with pytest.raises(TypeError):
        UseContext(t.USE_TYPE_CAMEO, t.CONTENT_RATING_TEEN, NOW, frozenset())  # type: ignore[call-arg]


def test_use_context_normalises_territory_time_and_sets() -> None:
    use = UseContext(
        t.USE_TYPE_CAMEO,
        t.CONTENT_RATING_TEEN,
        NOW.astimezone(JST),
        territory="jp",
        categories=[t.CONTENT_CATEGORY_HATE],
        co_characters={"chr_b"},
    )
    assert use.territory == "JP"
    assert use.time == NOW
    assert use.time.tzinfo is UTC
    assert use.categories == frozenset({t.CONTENT_CATEGORY_HATE})
    assert type(use.categories) is frozenset
    assert use.co_characters == frozenset({"chr_b"})
    assert type(use.co_characters) is frozenset


def test_use_context_constructor_matches_its_fields() -> None:
    """The constructor is written out for speed; it must stay the one dataclasses would make."""
    parameters = list(inspect.signature(UseContext).parameters.values())
    fields = dataclasses.fields(UseContext)
    assert [p.name for p in parameters] == [f.name for f in fields]
    for parameter, field in zip(parameters, fields, strict=True):
        expected_kind = inspect.Parameter.KEYWORD_ONLY if field.kw_only else inspect.Parameter.POSITIONAL_OR_KEYWORD
        assert parameter.kind == expected_kind, field.name
        expected_default = inspect.Parameter.empty if field.default is dataclasses.MISSING else field.default
        assert parameter.default == expected_default, field.name


def test_use_context_works_with_dataclass_helpers() -> None:
    use = context(territory="jp", co_characters=frozenset({"chr_b"}))
    changed = dataclasses.replace(use, territory="us")
    assert (changed.territory, changed.co_characters, changed.time) == ("US", frozenset({"chr_b"}), NOW)
    assert use == context(territory="JP", co_characters=frozenset({"chr_b"}))
    assert hash(use) == hash(context(territory="JP", co_characters=frozenset({"chr_b"})))
    assert dataclasses.asdict(use)["territory"] == "JP"
    assert "territory='JP'" in repr(use)
    assert not hasattr(use, "__dict__")


def test_use_context_rejects_a_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware") as exc:
        UseContext(t.USE_TYPE_CAMEO, t.CONTENT_RATING_TEEN, datetime(2030, 1, 1))
    assert "time" in str(exc.value)


@pytest.mark.parametrize(
    ("time", "territory"),
    [
        (NOW, "JP"),
        (NOW.astimezone(timezone(timedelta(hours=9))), "jp"),
        (NOW.replace(tzinfo=timezone(timedelta(), "Z")), ""),
    ],
)
def test_use_context_by_position_is_the_constructors_value(time: datetime, territory: str) -> None:
    """The offline authorizer's fast construction normalises as the constructor does."""
    fields = (t.USE_TYPE_CAMEO, t.CONTENT_RATING_TEEN, time)
    sets = (frozenset({t.CONTENT_CATEGORY_HATE}), frozenset({"chr_b"}))
    made = use_context_by_position(*fields, sets[0], territory, "app", "lic_a", True, 12.5, sets[1])
    expected = UseContext(
        *fields,
        categories=sets[0],
        territory=territory,
        platform="app",
        licensee_id="lic_a",
        commercial=True,
        duration_seconds=12.5,
        co_characters=sets[1],
    )
    assert type(made) is UseContext
    assert made == expected and hash(made) == hash(expected) and repr(made) == repr(expected)
    assert made.time.tzinfo is UTC and made.territory == territory.upper()
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.territory = "US"  # type: ignore[misc]
    with pytest.raises(ValueError, match="timezone-aware"):
        use_context_by_position(*fields[:2], datetime(2030, 1, 1), *sets[:1], "", "", "", False, 0.0, sets[1])


def test_use_context_and_results_are_immutable() -> None:
    use = context()
    with pytest.raises(dataclasses.FrozenInstanceError):
        use.territory = "US"  # type: ignore[misc]
    result = evaluate(open_terms(), use)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.allowed = False  # type: ignore[misc]
    assert result.obligations is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.obligations.revenue_share_bps = 0  # type: ignore[misc]


def test_compiled_terms_keep_version_character_and_quotas() -> None:
    compiled = CompiledTerms.from_terms(strict_terms())
    assert (compiled.version, compiled.character_id) == (3, "chr_self")
    assert (compiled.daily_quota, compiled.monthly_quota) == (10, 100)
    assert "chr_self" in repr(compiled)
    unlimited = CompiledTerms.from_terms(open_terms())
    assert (unlimited.daily_quota, unlimited.monthly_quota) == (None, None)
    zero = CompiledTerms.from_terms(open_terms(daily_quota=0, monthly_quota=0))
    assert (zero.daily_quota, zero.monthly_quota) == (0, 0)


# Allow and the obligations -------------------------------------------------------------------


def test_an_allowed_use_carries_the_obligations() -> None:
    result = evaluate(strict_terms(), strict_context())
    assert result == Evaluation(
        allowed=True,
        reasons=(),
        obligations=Obligations(
            attribution_text="© Example Studio",
            watermark_required=True,
            revenue_share_bps=1500,
            per_use_fee_minor_units=30,
            per_use_fee_currency="JPY",
        ),
    )


def test_terms_without_a_fee_owe_none() -> None:
    result = evaluate(open_terms(), context())
    assert result.obligations == Obligations(
        attribution_text="",
        watermark_required=False,
        revenue_share_bps=0,
        per_use_fee_minor_units=0,
        per_use_fee_currency="",
    )


def test_fee_currency_is_reported_upper_case() -> None:
    result = evaluate(open_terms(per_use_fee=t.Money(currency_code="usd", minor_units=5)), context())
    assert result.obligations is not None
    assert (result.obligations.per_use_fee_currency, result.obligations.per_use_fee_minor_units) == ("USD", 5)


def test_the_allow_result_is_shared_and_so_are_equal_denials() -> None:
    compiled = CompiledTerms.from_terms(strict_terms())
    first = compiled.evaluate(strict_context())
    assert compiled.evaluate(strict_context(time=NOW + MICRO)) is first
    assert first.obligations is compiled.obligations
    deny = compiled.evaluate(strict_context(territory="FR"))
    assert compiled.evaluate(strict_context(territory="KP")) is deny
    other = CompiledTerms.from_terms(open_terms(allowed_territories=["US"]))
    assert other.evaluate(context(territory="FR")) is deny


def test_open_terms_allow_any_territory_platform_licensee_company_and_time() -> None:
    terms = open_terms()
    for use in (
        context(),
        context(
            territory="FR",
            platform="anything",
            licensee_id="lic_z",
            co_characters=frozenset({"chr_a", "chr_b"}),
            categories=frozenset(range(13)),
        ),
        context(time=datetime.min.replace(tzinfo=UTC)),
        context(time=datetime.max.replace(tzinfo=UTC)),
    ):
        assert reasons(terms, use) == ()


# Each term alone -------------------------------------------------------------------------------

# For each reason, the change to `strict_context()` that fails that term and no other. They touch
# different fields, so any set of them can be applied together.
FAILING: dict[DenyReason, dict[str, Any]] = {
    DenyReason.USE_TYPE_NOT_PERMITTED: {"use_type": t.USE_TYPE_AUDIO_GENERATION},
    DenyReason.RATING_EXCEEDS_TERMS: {"content_rating": t.CONTENT_RATING_MATURE},
    DenyReason.CATEGORY_PROHIBITED: {"categories": frozenset({t.CONTENT_CATEGORY_SEXUAL})},
    DenyReason.TERRITORY_NOT_LICENSED: {"territory": "FR"},
    DenyReason.COMMERCIAL_USE_NOT_PERMITTED: {"commercial": True},
    DenyReason.CO_APPEARANCE_PROHIBITED: {"co_characters": frozenset({"chr_x"})},
    DenyReason.OUTSIDE_VALIDITY_WINDOW: {"time": NOW + 2 * DAY},
    DenyReason.LICENSEE_NOT_PERMITTED: {"licensee_id": "lic_b"},
    DenyReason.PLATFORM_NOT_PERMITTED: {"platform": "web"},
    DenyReason.QUOTA_EXHAUSTED: {},  # through quota_exhausted=True
}


def fail(selected: tuple[DenyReason, ...]) -> tuple[UseContext, bool]:
    changes: dict[str, Any] = {}
    for reason in selected:
        changes.update(FAILING[reason])
    return strict_context(**changes), DenyReason.QUOTA_EXHAUSTED in selected


@pytest.mark.parametrize("reason", ALL_REASONS, ids=str)
def test_each_term_alone_denies_with_its_reason_only(reason: DenyReason) -> None:
    use, exhausted = fail((reason,))
    result = evaluate(strict_terms(), use, quota_exhausted=exhausted)
    assert result == Evaluation(allowed=False, reasons=(reason,), obligations=None)


def test_every_combination_of_failed_terms_is_named_in_order() -> None:
    compiled = CompiledTerms.from_terms(strict_terms())
    terms = strict_terms()
    checked = 0
    for size in range(len(ALL_REASONS) + 1):
        for selected in itertools.combinations(ALL_REASONS, size):
            use, exhausted = fail(selected)
            result = compiled.evaluate(use, quota_exhausted=exhausted)
            assert result.reasons == selected, selected
            assert result.allowed is (size == 0)
            assert evaluate(terms, use, quota_exhausted=exhausted) == result
            checked += 1
    assert checked == 2 ** len(ALL_REASONS)


def test_the_same_term_failing_twice_is_named_once() -> None:
    use = strict_context(categories=frozenset({t.CONTENT_CATEGORY_SEXUAL, t.CONTENT_CATEGORY_HATE}))
    assert reasons(strict_terms(), use) == (DenyReason.CATEGORY_PROHIBITED,)
    use = strict_context(co_characters=frozenset({"chr_x", "chr_w"}))
    assert reasons(strict_terms(prohibited_co_appearance_ids=["chr_x", "chr_w"]), use) == (
        DenyReason.CO_APPEARANCE_PROHIBITED,
    )
    both_quotas = strict_terms(daily_quota=0, monthly_quota=0)
    assert reasons(both_quotas, strict_context(), quota_exhausted=True) == (DenyReason.QUOTA_EXHAUSTED,)


# Use type ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_type", [v for v in t.UseType.values() if v != t.USE_TYPE_UNSPECIFIED])
def test_each_use_type_is_allowed_exactly_when_permitted(use_type: int) -> None:
    assert reasons(open_terms(permitted_use_types=[use_type]), context(use_type=use_type)) == ()
    others = [v for v in t.UseType.values() if v not in {use_type, t.USE_TYPE_UNSPECIFIED}]
    assert reasons(open_terms(permitted_use_types=others), context(use_type=use_type)) == (
        DenyReason.USE_TYPE_NOT_PERMITTED,
    )


def test_an_unspecified_use_type_is_never_permitted() -> None:
    terms = open_terms(permitted_use_types=list(t.UseType.values()))  # listing UNSPECIFIED too
    assert reasons(terms, context(use_type=t.USE_TYPE_UNSPECIFIED)) == (DenyReason.USE_TYPE_NOT_PERMITTED,)


@pytest.mark.parametrize("use_type", [99, -1])
def test_an_unknown_use_type_is_not_permitted_by_terms_that_name_known_ones(use_type: int) -> None:
    terms = open_terms(permitted_use_types=list(t.UseType.values()))
    assert reasons(terms, context(use_type=use_type)) == (DenyReason.USE_TYPE_NOT_PERMITTED,)


def test_terms_without_use_types_permit_none() -> None:
    assert reasons(open_terms(permitted_use_types=[]), context()) == (DenyReason.USE_TYPE_NOT_PERMITTED,)


# Rating ladder -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("maximum", "rating", "allowed"),
    [
        (t.CONTENT_RATING_ALL_AGES, t.CONTENT_RATING_ALL_AGES, True),
        (t.CONTENT_RATING_ALL_AGES, t.CONTENT_RATING_TEEN, False),
        (t.CONTENT_RATING_TEEN, t.CONTENT_RATING_ALL_AGES, True),
        (t.CONTENT_RATING_TEEN, t.CONTENT_RATING_TEEN, True),
        (t.CONTENT_RATING_TEEN, t.CONTENT_RATING_MATURE, False),
        (t.CONTENT_RATING_MATURE, t.CONTENT_RATING_MATURE, True),
        (t.CONTENT_RATING_MATURE, t.CONTENT_RATING_ADULT, False),
        (t.CONTENT_RATING_ADULT, t.CONTENT_RATING_ADULT, True),
        (t.CONTENT_RATING_ADULT, t.CONTENT_RATING_ALL_AGES, True),
        # An unspecified rating counts as ADULT.
        (t.CONTENT_RATING_ADULT, t.CONTENT_RATING_UNSPECIFIED, True),
        (t.CONTENT_RATING_MATURE, t.CONTENT_RATING_UNSPECIFIED, False),
        (t.CONTENT_RATING_ALL_AGES, t.CONTENT_RATING_UNSPECIFIED, False),
        # A rating off the ladder is above every maximum.
        (t.CONTENT_RATING_ADULT, 5, False),
        (t.CONTENT_RATING_ADULT, -1, False),
        # Terms without a maximum permit nothing.
        (t.CONTENT_RATING_UNSPECIFIED, t.CONTENT_RATING_ALL_AGES, False),
        (t.CONTENT_RATING_UNSPECIFIED, t.CONTENT_RATING_UNSPECIFIED, False),
        # A maximum above the ladder permits the whole ladder, and nothing off it.
        (5, t.CONTENT_RATING_ADULT, True),
        (5, t.CONTENT_RATING_UNSPECIFIED, True),
        (5, 5, False),
    ],
)
def test_rating_ladder(maximum: int, rating: int, allowed: bool) -> None:
    expected = () if allowed else (DenyReason.RATING_EXCEEDS_TERMS,)
    assert reasons(open_terms(max_content_rating=maximum), context(content_rating=rating)) == expected


def test_rating_ladder_every_pair() -> None:
    for (i, maximum), (j, rating) in itertools.product(enumerate(LADDER), repeat=2):
        expected = () if j <= i else (DenyReason.RATING_EXCEEDS_TERMS,)
        assert reasons(open_terms(max_content_rating=maximum), context(content_rating=rating)) == expected


# Categories --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prohibited", "flagged", "allowed"),
    [
        ([], {t.CONTENT_CATEGORY_SEXUAL, t.CONTENT_CATEGORY_HATE}, True),
        ([t.CONTENT_CATEGORY_SEXUAL], set(), True),
        ([t.CONTENT_CATEGORY_SEXUAL], {t.CONTENT_CATEGORY_HATE}, True),
        ([t.CONTENT_CATEGORY_SEXUAL], {t.CONTENT_CATEGORY_SEXUAL}, False),
        (
            [t.CONTENT_CATEGORY_SEXUAL, t.CONTENT_CATEGORY_DRUGS],
            {t.CONTENT_CATEGORY_HATE, t.CONTENT_CATEGORY_DRUGS},
            False,
        ),
    ],
)
def test_categories(prohibited: list[int], flagged: set[int], allowed: bool) -> None:
    use = context(categories=frozenset(flagged))
    expected = () if allowed else (DenyReason.CATEGORY_PROHIBITED,)
    assert reasons(open_terms(prohibited_categories=prohibited), use) == expected


# Territory -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "excluded", "territory", "licensed"),
    [
        # Empty lists mean worldwide, even with no territory given.
        ([], [], "", True),
        ([], [], "FR", True),
        # An allow list is the only territories.
        (["JP", "US"], [], "JP", True),
        (["JP", "US"], [], "US", True),
        (["JP", "US"], [], "FR", False),
        (["JP", "US"], [], "", False),
        # Codes compare upper case, on either side.
        (["JP", "US"], [], "jp", True),
        (["jp"], [], "JP", True),
        (["jp"], [], "Jp", True),
        # An exclude list alone: everywhere else, but a missing territory fails closed.
        ([], ["KP"], "KP", False),
        ([], ["KP"], "kp", False),
        ([], ["kp"], "KP", False),
        ([], ["KP"], "JP", True),
        ([], ["KP"], "", False),
        # Excluded wins over allowed.
        (["JP", "KP"], ["KP"], "KP", False),
        (["JP", "KP"], ["kp"], "KP", False),
        (["JP", "KP"], ["KP"], "JP", True),
        (["KP"], ["KP"], "KP", False),
        (["KP"], ["KP"], "JP", False),
        # An empty code in a list matches nothing, but still restricts.
        ([""], [], "", False),
        ([""], [], "JP", False),
        ([], [""], "", False),
        ([], [""], "JP", True),
    ],
)
def test_territory(allowed: list[str], excluded: list[str], territory: str, licensed: bool) -> None:
    terms = open_terms(allowed_territories=allowed, excluded_territories=excluded)
    expected = () if licensed else (DenyReason.TERRITORY_NOT_LICENSED,)
    assert reasons(terms, context(territory=territory)) == expected


# Commercial ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("commercial_allowed", "commercial", "allowed"),
    [(False, False, True), (False, True, False), (True, False, True), (True, True, True)],
)
def test_commercial(commercial_allowed: bool, commercial: bool, allowed: bool) -> None:
    expected = () if allowed else (DenyReason.COMMERCIAL_USE_NOT_PERMITTED,)
    assert reasons(open_terms(commercial_use_allowed=commercial_allowed), context(commercial=commercial)) == expected


# Co-appearance ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prohibited", "others", "allowed"),
    [
        ([], {"chr_b"}, True),
        (["chr_b"], set(), True),
        (["chr_b"], {"chr_c"}, True),
        (["chr_b"], {"chr_b"}, False),
        (["chr_b"], {"chr_c", "chr_b"}, False),
        (["chr_b"], {"CHR_B"}, True),  # ids compare exactly
    ],
)
def test_co_appearance(prohibited: list[str], others: set[str], allowed: bool) -> None:
    use = context(co_characters=frozenset(others))
    expected = () if allowed else (DenyReason.CO_APPEARANCE_PROHIBITED,)
    assert reasons(open_terms(prohibited_co_appearance_ids=prohibited), use) == expected


# Validity window --------------------------------------------------------------------------------

WINDOW_CASES = [
    # valid_from is inclusive.
    ({"valid_from": stamp(NOW)}, NOW, True),
    ({"valid_from": stamp(NOW)}, NOW - MICRO, False),
    ({"valid_from": stamp(NOW)}, NOW + 365 * DAY, True),
    # valid_until is exclusive.
    ({"valid_until": stamp(NOW)}, NOW, False),
    ({"valid_until": stamp(NOW)}, NOW - MICRO, True),
    ({"valid_until": stamp(NOW)}, NOW - 365 * DAY, True),
    # Both bounds.
    ({"valid_from": stamp(NOW - DAY), "valid_until": stamp(NOW + DAY)}, NOW - DAY, True),
    ({"valid_from": stamp(NOW - DAY), "valid_until": stamp(NOW + DAY)}, NOW + DAY - MICRO, True),
    ({"valid_from": stamp(NOW - DAY), "valid_until": stamp(NOW + DAY)}, NOW + DAY, False),
    # An empty or inverted window admits nothing.
    ({"valid_from": stamp(NOW), "valid_until": stamp(NOW)}, NOW, False),
    ({"valid_from": stamp(NOW + DAY), "valid_until": stamp(NOW)}, NOW, False),
    # Nanoseconds finer than a datetime: a bound 1 ns past NOW.
    ({"valid_from": stamp(NOW, nanos=1)}, NOW, False),
    ({"valid_from": stamp(NOW, nanos=1)}, NOW + MICRO, True),
    ({"valid_until": stamp(NOW, nanos=1)}, NOW, True),
    ({"valid_until": stamp(NOW, nanos=1)}, NOW + MICRO, False),
    ({"valid_from": stamp(NOW - MICRO, nanos=999)}, NOW - MICRO, False),
    ({"valid_from": stamp(NOW - MICRO, nanos=999)}, NOW, True),
    # The epoch is a set bound, not "unset".
    ({"valid_from": timestamp_pb2.Timestamp()}, datetime(1969, 12, 31, tzinfo=UTC), False),
    ({"valid_until": timestamp_pb2.Timestamp()}, datetime(1970, 1, 1, tzinfo=UTC), False),
    # Bounds beyond the range of datetime.
    ({"valid_until": timestamp_pb2.Timestamp(seconds=YEAR_10000)}, datetime.max.replace(tzinfo=UTC), True),
    ({"valid_from": timestamp_pb2.Timestamp(seconds=YEAR_10000)}, datetime.max.replace(tzinfo=UTC), False),
    ({"valid_from": timestamp_pb2.Timestamp(seconds=BEFORE_YEAR_1)}, datetime.min.replace(tzinfo=UTC), True),
    ({"valid_until": timestamp_pb2.Timestamp(seconds=BEFORE_YEAR_1)}, datetime.min.replace(tzinfo=UTC), False),
    ({"valid_from": timestamp_pb2.Timestamp(seconds=BEFORE_YEAR_1)}, NOW, True),
    ({"valid_until": timestamp_pb2.Timestamp(seconds=YEAR_10000)}, NOW, True),
    # Unset bounds do not limit.
    ({}, datetime.min.replace(tzinfo=UTC), True),
    ({}, datetime.max.replace(tzinfo=UTC), True),
]


@pytest.mark.parametrize(("window", "moment", "allowed"), WINDOW_CASES)
def test_validity_window(window: dict[str, Any], moment: datetime, allowed: bool) -> None:
    expected = () if allowed else (DenyReason.OUTSIDE_VALIDITY_WINDOW,)
    assert reasons(open_terms(**window), context(time=moment)) == expected


def test_validity_window_compares_instants_in_any_time_zone() -> None:
    terms = open_terms(valid_from=stamp(NOW))
    assert reasons(terms, context(time=NOW.astimezone(JST))) == ()
    assert reasons(terms, context(time=(NOW - MICRO).astimezone(JST))) == (DenyReason.OUTSIDE_VALIDITY_WINDOW,)


# Licensee and platform ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listed", "value", "allowed"),
    [
        ([], "", True),
        ([], "x_a", True),
        (["x_a"], "x_a", True),
        (["x_a", "x_b"], "x_b", True),
        (["x_a"], "x_b", False),
        (["x_a"], "", False),
        (["x_a"], "X_A", False),  # compared exactly
        ([""], "", False),  # an empty id matches nothing
    ],
)
def test_licensee_and_platform(listed: list[str], value: str, allowed: bool) -> None:
    licensee = () if allowed else (DenyReason.LICENSEE_NOT_PERMITTED,)
    assert reasons(open_terms(allowed_licensee_ids=listed), context(licensee_id=value)) == licensee
    platform = () if allowed else (DenyReason.PLATFORM_NOT_PERMITTED,)
    assert reasons(open_terms(allowed_platforms=listed), context(platform=value)) == platform


# Quotas ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quotas", "exhausted", "allowed"),
    [
        ({}, False, True),  # unset: unlimited
        ({}, True, False),  # the caller counted
        ({"daily_quota": 5, "monthly_quota": 50}, False, True),
        ({"daily_quota": 5}, True, False),
        ({"daily_quota": 0}, False, False),  # 0 permits no use
        ({"monthly_quota": 0}, False, False),
        ({"daily_quota": 0, "monthly_quota": 10}, False, False),
        ({"daily_quota": -1}, False, False),  # invalid, fails closed
        ({"daily_quota": 1, "monthly_quota": 1}, False, True),
    ],
)
def test_quota(quotas: dict[str, int], exhausted: bool, allowed: bool) -> None:
    expected = () if allowed else (DenyReason.QUOTA_EXHAUSTED,)
    assert reasons(open_terms(**quotas), context(), quota_exhausted=exhausted) == expected


# Properties against the reference model ---------------------------------------------------------

# Small alphabets, so that the values in the terms and in the uses often collide.
USE_TYPES = [*t.UseType.values(), 9, -1]
RATINGS = [*t.ContentRating.values(), 5, -1]
CATEGORIES = [0, 1, 2, 3]
TERRITORIES = ["", "JP", "jp", "US", "KP", "kp", "FR"]
LICENSEES = ["", "lic_a", "lic_b"]
PLATFORMS = ["", "app", "web"]
CHARACTERS = ["chr_a", "chr_b", "chr_c"]
NANOS = [0, 1, 999, 1000, 999_999, 999_999_999]


# Strategies are built once, here: building them inside a composite per example is slow.
_NEAR_STAMPS = st.builds(
    timestamp_pb2.Timestamp,
    seconds=st.integers(NOW_SECONDS - 3, NOW_SECONDS + 3),
    nanos=st.sampled_from(NANOS),
)
_FAR_STAMPS = st.builds(timestamp_pb2.Timestamp, seconds=st.sampled_from([BEFORE_YEAR_1, 0, YEAR_10000]))
_STAMPS = st.one_of(st.none(), _NEAR_STAMPS, _NEAR_STAMPS, _FAR_STAMPS)
_FEES = st.one_of(
    st.none(), st.builds(t.Money, currency_code=st.sampled_from(["JPY", "usd", ""]), minor_units=st.integers(0, 500))
)
_QUOTAS = st.one_of(st.none(), st.sampled_from([-1, 0, 1, 5]))


def _terms(fields: dict[str, Any]) -> t.Terms:
    return t.Terms(**{name: value for name, value in fields.items() if value is not None})


TERMS = st.fixed_dictionaries(
    {
        "version": st.integers(1, 3),
        "character_id": st.just("chr_self"),
        "permitted_use_types": st.lists(st.sampled_from(USE_TYPES), max_size=4),
        "max_content_rating": st.sampled_from(RATINGS),
        "prohibited_categories": st.lists(st.sampled_from(CATEGORIES), max_size=3),
        "allowed_territories": st.lists(st.sampled_from(TERRITORIES), max_size=3),
        "excluded_territories": st.lists(st.sampled_from(TERRITORIES), max_size=2),
        "commercial_use_allowed": st.booleans(),
        "allowed_licensee_ids": st.lists(st.sampled_from(LICENSEES), max_size=2),
        "allowed_platforms": st.lists(st.sampled_from(PLATFORMS), max_size=2),
        "prohibited_co_appearance_ids": st.lists(st.sampled_from(CHARACTERS), max_size=2),
        "valid_from": _STAMPS,
        "valid_until": _STAMPS,
        "attribution_text": st.sampled_from(["", "© Studio"]),
        "watermark_required": st.booleans(),
        "revenue_share_bps": st.integers(0, 10_000),
        "per_use_fee": _FEES,
        "daily_quota": _QUOTAS,
        "monthly_quota": _QUOTAS,
    }
).map(_terms)


def _moment(seconds: int, micros: int, zone: timezone) -> datetime:
    return (datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=micros)).astimezone(zone)


_NEAR_TIMES = st.builds(
    _moment,
    st.integers(NOW_SECONDS - 4, NOW_SECONDS + 4),
    st.sampled_from([0, 1, 999_999]),
    st.sampled_from([UTC, JST]),
)
_FAR_TIMES = st.sampled_from([datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)])

# A use: the fields of a UseContext plus quota_exhausted.
USES = st.fixed_dictionaries(
    {
        "use_type": st.sampled_from(USE_TYPES),
        "content_rating": st.sampled_from(RATINGS),
        "time": st.one_of(_NEAR_TIMES, _NEAR_TIMES, _NEAR_TIMES, _FAR_TIMES),
        "categories": st.frozensets(st.sampled_from(CATEGORIES), max_size=3),
        "territory": st.sampled_from(TERRITORIES),
        "platform": st.sampled_from(PLATFORMS),
        "licensee_id": st.sampled_from(LICENSEES),
        "commercial": st.booleans(),
        "duration_seconds": st.sampled_from([0.0, 12.5]),
        "co_characters": st.frozensets(st.sampled_from(CHARACTERS), max_size=2),
        "quota_exhausted": st.booleans(),
    }
)


def evaluated(result: Evaluation) -> tuple[bool, list[str], dict[str, Any] | None]:
    obligations = None if result.obligations is None else dataclasses.asdict(result.obligations)
    return result.allowed, [str(reason) for reason in result.reasons], obligations


def use_context(use: dict[str, Any]) -> UseContext:
    return UseContext(**{name: value for name, value in use.items() if name != "quota_exhausted"})


@settings(max_examples=500, deadline=None)
@given(TERMS, USES)
def test_evaluate_agrees_with_the_reference_model(terms: t.Terms, use: dict[str, Any]) -> None:
    result = evaluate(terms, use_context(use), quota_exhausted=use["quota_exhausted"])
    assert evaluated(result) == ref.decide(terms, use)


@settings(max_examples=100, deadline=None)
@given(TERMS, st.lists(USES, min_size=1, max_size=6))
def test_compiled_terms_agree_with_evaluate_over_many_uses(terms: t.Terms, many: list[dict[str, Any]]) -> None:
    compiled = CompiledTerms.from_terms(terms)
    # Compiled from the wire form too: what a grant's claims carry.
    parsed = CompiledTerms.from_terms(t.Terms.FromString(terms.SerializeToString()))
    for use in many:
        context_ = use_context(use)
        exhausted = use["quota_exhausted"]
        result = compiled.evaluate(context_, quota_exhausted=exhausted)
        assert result == evaluate(terms, context_, quota_exhausted=exhausted)
        assert result == parsed.evaluate(context_, quota_exhausted=exhausted)
        assert list(result.reasons) == sorted(set(result.reasons), key=ALL_REASONS.index)
        assert result.allowed is (not result.reasons)
        assert (result.obligations is None) is (not result.allowed)
        if result.allowed:
            assert result.obligations is compiled.obligations


def _lift_window(terms: t.Terms) -> None:
    terms.ClearField("valid_from")
    terms.ClearField("valid_until")


def _lift_territory(terms: t.Terms) -> None:
    terms.ClearField("allowed_territories")
    terms.ClearField("excluded_territories")


# For each reason that terms alone can lift, how to open the terms up.
LIFTS: dict[DenyReason, Callable[[t.Terms], None]] = {
    DenyReason.CATEGORY_PROHIBITED: lambda terms: terms.ClearField("prohibited_categories"),
    DenyReason.TERRITORY_NOT_LICENSED: _lift_territory,
    DenyReason.COMMERCIAL_USE_NOT_PERMITTED: lambda terms: setattr(terms, "commercial_use_allowed", True),
    DenyReason.CO_APPEARANCE_PROHIBITED: lambda terms: terms.ClearField("prohibited_co_appearance_ids"),
    DenyReason.OUTSIDE_VALIDITY_WINDOW: _lift_window,
    DenyReason.LICENSEE_NOT_PERMITTED: lambda terms: terms.ClearField("allowed_licensee_ids"),
    DenyReason.PLATFORM_NOT_PERMITTED: lambda terms: terms.ClearField("allowed_platforms"),
}


@settings(max_examples=100, deadline=None)
@given(TERMS, USES)
def test_a_use_denied_for_one_term_is_allowed_once_that_term_is_lifted(terms: t.Terms, use: dict[str, Any]) -> None:
    """Every reason is load-bearing: opening up the terms it names removes exactly that reason."""
    result = evaluate(terms, use_context(use), quota_exhausted=use["quota_exhausted"])
    for reason in result.reasons:
        lift = LIFTS.get(reason)
        if lift is None:
            continue
        lifted = t.Terms()
        lifted.CopyFrom(terms)
        lift(lifted)
        again = evaluate(lifted, use_context(use), quota_exhausted=use["quota_exhausted"])
        assert again.reasons == tuple(r for r in result.reasons if r is not reason)
