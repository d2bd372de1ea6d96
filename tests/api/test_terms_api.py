"""Terms through gRPC: opt in, versioned updates with every old version readable, opt out,
templates, the stored form, and validation field by field (each bad field named, nothing changed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
import pytest
from charter.v1 import catalog_service_pb2 as catalog_pb
from charter.v1 import terms_pb2 as t
from charter_server.domain import ids
from charter_server.domain.models import Principal, Role
from charter_server.services.characters import CharacterService
from google.protobuf import timestamp_pb2

from .character_helpers import (
    OPTED_IN,
    OPTED_OUT,
    Holder,
    create,
    get,
    list_all,
    new_holder,
    opt_in,
    refused,
    terms,
    update_terms,
    versions,
)
from .helpers import auth, failure


@pytest.fixture(scope="module")
def holder(catalog: Any, access: Any, keys: Any) -> Holder:
    """A fresh rights holder with its own key."""
    return new_holder(catalog, access, keys.admin)


def key_id(secret: str) -> str:
    """The API key id part of a secret (``<key id>.<random>``)."""
    return secret.split(".", 1)[0]


def stamp(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


# Versions -------------------------------------------------------------------------------------


def test_opt_in_makes_version_one_and_an_update_keeps_it_readable(
    catalog: Any, keys: Any, holder: Holder, moved_clock: Any
) -> None:
    character = create(catalog, holder.secret, holder.id)

    opted = opt_in(catalog, holder.secret, character.id, terms(revenue_share_bps=500))
    moved_clock.advance(timedelta(seconds=3))
    second = update_terms(catalog, keys.admin, character.id, terms(revenue_share_bps=700, watermark_required=True))
    first_again = catalog.GetTerms(
        catalog_pb.GetTermsRequest(character_id=character.id, version=1), metadata=auth(holder.secret)
    ).terms
    current = catalog.GetTerms(
        catalog_pb.GetTermsRequest(character_id=character.id), metadata=auth(holder.secret)
    ).terms

    assert (opted.character.state, opted.character.terms_version) == (OPTED_IN, 1)
    assert (opted.terms.version, opted.terms.character_id, opted.terms.revenue_share_bps) == (1, character.id, 500)
    assert opted.terms.author_key_id == key_id(holder.secret)
    assert opted.terms.create_time.seconds > 0
    assert first_again == opted.terms
    assert (second.version, second.revenue_share_bps, second.watermark_required) == (2, 700, True)
    assert second.author_key_id == keys.admin_key_id
    assert second.create_time.ToDatetime() > opted.terms.create_time.ToDatetime()
    assert current == second
    assert get(catalog, holder.secret, character.id).terms_version == 2


def test_a_missing_version_is_not_found(catalog: Any, holder: Holder) -> None:
    character = create(catalog, holder.secret, holder.id)
    opt_in(catalog, holder.secret, character.id)

    got = refused(catalog.GetTerms, catalog_pb.GetTermsRequest(character_id=character.id, version=2), holder.secret)

    assert (got.code, got.reason) == (grpc.StatusCode.NOT_FOUND, "TERMS_VERSION_NOT_FOUND")


def test_versions_are_listed_newest_first_page_by_page(catalog: Any, keys: Any, holder: Holder) -> None:
    character = create(catalog, holder.secret, holder.id)
    opt_in(catalog, holder.secret, character.id, terms(revenue_share_bps=1))
    for share in (2, 3, 4, 5):
        update_terms(catalog, holder.secret, character.id, terms(revenue_share_bps=share))

    found, pages = list_all(
        catalog.ListTermsVersions,
        catalog_pb.ListTermsVersionsRequest(character_id=character.id, page_size=2),
        "terms",
        holder.secret,
    )

    assert [(v.version, v.revenue_share_bps) for v in found] == [(5, 5), (4, 4), (3, 3), (2, 2), (1, 1)]
    assert pages == 3
    assert found == versions(catalog, keys.auditor, character.id)


def test_opting_in_twice_is_refused(catalog: Any, holder: Holder) -> None:
    character = create(catalog, holder.secret, holder.id)
    opt_in(catalog, holder.secret, character.id)

    got = refused(catalog.OptIn, catalog_pb.OptInRequest(character_id=character.id, terms=terms()), holder.secret)

    assert (got.code, got.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CHARACTER_ALREADY_OPTED_IN")
    assert get(catalog, holder.secret, character.id).terms_version == 1


def test_terms_of_an_opted_out_character_cannot_be_updated(catalog: Any, holder: Holder) -> None:
    character = create(catalog, holder.secret, holder.id)

    got = refused(
        catalog.UpdateTerms, catalog_pb.UpdateTermsRequest(character_id=character.id, terms=terms()), holder.secret
    )

    assert (got.code, got.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CHARACTER_NOT_OPTED_IN")
    assert get(catalog, holder.secret, character.id) == character
    assert versions(catalog, holder.secret, character.id) == []


def test_opt_out_keeps_the_history_and_opting_in_again_makes_the_next_version(catalog: Any, holder: Holder) -> None:
    character = create(catalog, holder.secret, holder.id)
    first = opt_in(catalog, holder.secret, character.id).terms
    second = update_terms(catalog, holder.secret, character.id, terms(revenue_share_bps=10))

    out = catalog.OptOut(
        catalog_pb.OptOutRequest(character_id=character.id, reason="pausing licences"), metadata=auth(holder.secret)
    )
    out_again = catalog.OptOut(catalog_pb.OptOutRequest(character_id=character.id), metadata=auth(holder.secret))
    history = versions(catalog, holder.secret, character.id)
    refused_update = refused(
        catalog.UpdateTerms, catalog_pb.UpdateTermsRequest(character_id=character.id, terms=terms()), holder.secret
    )
    again = opt_in(catalog, holder.secret, character.id, terms(revenue_share_bps=20))

    assert (out.character.state, out.revoked_grant_count) == (OPTED_OUT, 0)
    assert (out_again.character.state, out_again.revoked_grant_count) == (OPTED_OUT, 0)
    assert history == [second, first]
    assert (
        catalog.GetTerms(
            catalog_pb.GetTermsRequest(character_id=character.id, version=1), metadata=auth(holder.secret)
        ).terms
        == first
    )
    assert refused_update.reason == "CHARACTER_NOT_OPTED_IN"
    assert (again.character.state, again.character.terms_version, again.terms.version) == (OPTED_IN, 3, 3)
    assert [v.version for v in versions(catalog, holder.secret, character.id)] == [3, 2, 1]


def test_the_opt_out_hook_runs_inside_the_opt_out(
    server: Any, catalog: Any, keys: Any, holder: Holder, clock: Any
) -> None:
    """The grants issue plugs revocation into this hook; its count is what OptOut reports, and a
    failing hook leaves the character opted in."""
    calls: list[tuple[str, str, str]] = []

    def revoke(uow: Any, principal: Principal, character_id: str, reason: str) -> int:
        calls.append((principal.key_id, character_id, reason))
        if reason == "fail":
            raise RuntimeError("revocation failed")
        return 3

    service = CharacterService(server.db, clock, revoke_grants=revoke)
    staff = Principal(keys.admin_key_id, Role.ADMIN)
    character = create(catalog, holder.secret, holder.id)
    opt_in(catalog, holder.secret, character.id)

    with pytest.raises(RuntimeError):
        service.opt_out(staff, character.id, "fail")
    after_failure = get(catalog, holder.secret, character.id)
    opted_out, revoked = service.opt_out(staff, character.id, "rights holder request")

    assert after_failure.state == OPTED_IN
    assert (opted_out.state.value, revoked) == ("opted_out", 3)
    assert calls == [
        (keys.admin_key_id, character.id, "fail"),
        (keys.admin_key_id, character.id, "rights holder request"),
    ]


# What is stored -------------------------------------------------------------------------------


def test_every_field_round_trips(catalog: Any, keys: Any, holder: Holder) -> None:
    character = create(catalog, holder.secret, holder.id)
    other = create(catalog, holder.secret, holder.id)
    given = t.Terms(
        permitted_use_types=[t.USE_TYPE_VIDEO_GENERATION, t.USE_TYPE_CAMEO],
        max_content_rating=t.CONTENT_RATING_MATURE,
        prohibited_categories=[t.CONTENT_CATEGORY_POLITICAL, t.CONTENT_CATEGORY_HATE],
        allowed_territories=["JP", "US"],
        excluded_territories=["KP"],
        commercial_use_allowed=True,
        allowed_licensee_ids=[keys.licensee_id],
        allowed_platforms=["video-app", "cameo.app"],
        prohibited_co_appearance_ids=[other.id],
        valid_from=stamp(1_800_000_000),
        valid_until=stamp(1_900_000_000, 5),
        attribution_text="© Example Studio",
        watermark_required=True,
        revenue_share_bps=10_000,
        per_use_fee=t.Money(currency_code="JPY", minor_units=120),
        daily_quota=0,
        monthly_quota=30_000,
    )

    stored = opt_in(catalog, holder.secret, character.id, given).terms

    expected = t.Terms()
    expected.CopyFrom(given)
    expected.MergeFrom(
        t.Terms(
            version=1, character_id=character.id, create_time=stored.create_time, author_key_id=key_id(holder.secret)
        )
    )
    assert stored == expected
    assert stored.HasField("daily_quota") and stored.daily_quota == 0
    assert (
        catalog.GetTerms(catalog_pb.GetTermsRequest(character_id=character.id), metadata=auth(holder.secret)).terms
        == expected
    )


def test_output_only_fields_of_the_terms_are_ignored(catalog: Any, holder: Holder) -> None:
    character = create(catalog, holder.secret, holder.id)
    given = terms(
        version=41, character_id=ids.new_id("character"), create_time=stamp(5), author_key_id=ids.new_id("api_key")
    )

    stored = opt_in(catalog, holder.secret, character.id, given).terms

    assert (stored.version, stored.character_id, stored.author_key_id) == (1, character.id, key_id(holder.secret))
    assert stored.create_time.seconds > 5


def test_the_stored_form_has_no_duplicates_and_upper_case_codes(catalog: Any, keys: Any, holder: Holder) -> None:
    character = create(catalog, holder.secret, holder.id)
    given = terms(
        permitted_use_types=[t.USE_TYPE_IMAGE_GENERATION, t.USE_TYPE_CAMEO, t.USE_TYPE_IMAGE_GENERATION],
        prohibited_categories=[t.CONTENT_CATEGORY_SEXUAL, t.CONTENT_CATEGORY_SEXUAL],
        allowed_territories=["jp", "JP", "us", "Fr"],
        excluded_territories=["kp", "KP"],
        allowed_licensee_ids=[keys.licensee_id, keys.licensee_id],
        allowed_platforms=["app", "app"],
        per_use_fee=t.Money(currency_code="usd", minor_units=3),
    )

    stored = opt_in(catalog, holder.secret, character.id, given).terms

    assert list(stored.permitted_use_types) == [t.USE_TYPE_IMAGE_GENERATION, t.USE_TYPE_CAMEO]
    assert list(stored.prohibited_categories) == [t.CONTENT_CATEGORY_SEXUAL]
    assert (list(stored.allowed_territories), list(stored.excluded_territories)) == (["JP", "US", "FR"], ["KP"])
    assert (list(stored.allowed_licensee_ids), list(stored.allowed_platforms)) == ([keys.licensee_id], ["app"])
    assert (stored.per_use_fee.currency_code, stored.per_use_fee.minor_units) == ("USD", 3)


def test_the_limits_themselves_are_accepted(catalog: Any, holder: Holder) -> None:
    character = create(catalog, holder.secret, holder.id)
    given = terms(
        revenue_share_bps=0,
        daily_quota=0,
        monthly_quota=0,
        attribution_text="a" * 500,
        per_use_fee=t.Money(currency_code="EUR", minor_units=0),
        valid_from=stamp(1_800_000_000),
        valid_until=stamp(1_800_000_000, 1),
    )

    first = opt_in(catalog, holder.secret, character.id, given).terms
    most = update_terms(
        catalog, holder.secret, character.id, terms(revenue_share_bps=10_000, valid_until=stamp(253402300799))
    )

    assert (first.revenue_share_bps, first.daily_quota, first.monthly_quota, len(first.attribution_text)) == (
        0,
        0,
        0,
        500,
    )
    assert (most.revenue_share_bps, most.valid_until.seconds) == (10_000, 253402300799)


# Templates ------------------------------------------------------------------------------------


def test_templates_are_listed_for_every_role(catalog: Any, keys: Any) -> None:
    lists = [
        catalog.ListTermsTemplates(catalog_pb.ListTermsTemplatesRequest(), metadata=auth(secret)).templates
        for secret in (keys.admin, keys.rights_holder, keys.generator, keys.auditor)
    ]
    templates = {template.name: template for template in lists[0]}
    fan, partner = templates["fan-noncommercial"].terms, templates["commercial-partner"].terms

    assert all(found == lists[0] for found in lists)
    assert all(template.description for template in templates.values())
    assert not fan.commercial_use_allowed
    assert t.CONTENT_RATING_ALL_AGES <= fan.max_content_rating <= t.CONTENT_RATING_TEEN
    assert {
        t.CONTENT_CATEGORY_SEXUAL,
        t.CONTENT_CATEGORY_CHARACTER_DAMAGING,
        t.CONTENT_CATEGORY_IMPLIED_ENDORSEMENT,
    } <= set(fan.prohibited_categories)
    assert partner.commercial_use_allowed
    for template in templates.values():
        assert (template.terms.version, template.terms.character_id, template.terms.author_key_id) == (0, "", "")
        assert not template.terms.HasField("create_time")


@pytest.mark.parametrize("name", ["fan-noncommercial", "commercial-partner"])
def test_a_template_is_applied_and_then_adjusted(catalog: Any, holder: Holder, name: str) -> None:
    templates = catalog.ListTermsTemplates(
        catalog_pb.ListTermsTemplatesRequest(), metadata=auth(holder.secret)
    ).templates
    template = next(x for x in templates if x.name == name).terms
    character = create(catalog, holder.secret, holder.id)

    applied = opt_in(catalog, holder.secret, character.id, template).terms
    adjusted_terms = t.Terms()
    adjusted_terms.CopyFrom(template)
    adjusted_terms.excluded_territories.append("KP")
    adjusted_terms.attribution_text = "© Example Studio"
    adjusted = update_terms(catalog, holder.secret, character.id, adjusted_terms)

    for stored, wanted in ((applied, template), (adjusted, adjusted_terms)):
        without_output = t.Terms()
        without_output.CopyFrom(stored)
        for field in ("version", "character_id", "create_time", "author_key_id"):
            without_output.ClearField(field)
        assert without_output == wanted
    assert (applied.version, adjusted.version) == (1, 2)


# Validation, field by field -------------------------------------------------------------------


@dataclass(frozen=True)
class Targets:
    """An opted-out and an opted-in character of the holder, and ids the cases refer to."""

    opted_out: str
    opted_in: str
    other_character: str
    licensee: str


@pytest.fixture(scope="module")
def targets(catalog: Any, keys: Any, holder: Holder) -> Targets:
    out = create(catalog, holder.secret, holder.id)
    opted = create(catalog, holder.secret, holder.id)
    opt_in(catalog, holder.secret, opted.id)
    other = create(catalog, holder.secret, holder.id)
    return Targets(out.id, opted.id, other.id, keys.licensee_id)


# Each case: the terms changes (a callable receives the targets and the character the terms are
# for) and the exact field paths the call must be refused for.
Change = dict[str, Any] | Callable[[Targets, str], dict[str, Any]]
CASES: dict[str, tuple[Change, tuple[str, ...]]] = {
    "use_types-empty": ({"permitted_use_types": []}, ("terms.permitted_use_types",)),
    "use_types-unspecified": ({"permitted_use_types": [0]}, ("terms.permitted_use_types[0]",)),
    "use_types-unknown": ({"permitted_use_types": [t.USE_TYPE_CAMEO, 99]}, ("terms.permitted_use_types[1]",)),
    "use_types-negative": ({"permitted_use_types": [-1]}, ("terms.permitted_use_types[0]",)),
    "rating-unspecified": ({"max_content_rating": 0}, ("terms.max_content_rating",)),
    "rating-unknown": ({"max_content_rating": 5}, ("terms.max_content_rating",)),
    "categories-unspecified": ({"prohibited_categories": [0]}, ("terms.prohibited_categories[0]",)),
    "categories-unknown": (
        {"prohibited_categories": [t.CONTENT_CATEGORY_HATE, 400]},
        ("terms.prohibited_categories[1]",),
    ),
    "allowed_territories-ZZ": ({"allowed_territories": ["JP", "ZZ"]}, ("terms.allowed_territories[1]",)),
    "allowed_territories-alpha3": ({"allowed_territories": ["JPN"]}, ("terms.allowed_territories[0]",)),
    "allowed_territories-numeric": ({"allowed_territories": ["392"]}, ("terms.allowed_territories[0]",)),
    "allowed_territories-empty": ({"allowed_territories": [""]}, ("terms.allowed_territories[0]",)),
    "allowed_territories-full_width": ({"allowed_territories": ["\uff2a\uff30"]}, ("terms.allowed_territories[0]",)),
    "allowed_territories-too_many": ({"allowed_territories": ["JP"] * 251}, ("terms.allowed_territories",)),
    "excluded_territories-XX": ({"excluded_territories": ["XX"]}, ("terms.excluded_territories[0]",)),
    "territories-both": (
        {"allowed_territories": ["JP", "US"], "excluded_territories": ["jp"]},
        ("terms.excluded_territories",),
    ),
    "valid_until-equal": (
        {"valid_from": stamp(1_800_000_000), "valid_until": stamp(1_800_000_000)},
        ("terms.valid_until",),
    ),
    "valid_until-before": (
        {"valid_from": stamp(1_800_000_000), "valid_until": stamp(1_700_000_000)},
        ("terms.valid_until",),
    ),
    "valid_from-negative_nanos": ({"valid_from": stamp(1_800_000_000, -1)}, ("terms.valid_from",)),
    "valid_from-too_many_nanos": ({"valid_from": stamp(1_800_000_000, 10**9)}, ("terms.valid_from",)),
    "valid_until-after_9999": ({"valid_until": stamp(2**62)}, ("terms.valid_until",)),
    "valid_until-before_year_1": ({"valid_until": stamp(-(2**62))}, ("terms.valid_until",)),
    "currency-unknown": (
        {"per_use_fee": t.Money(currency_code="XYZ", minor_units=1)},
        ("terms.per_use_fee.currency_code",),
    ),
    "currency-missing": ({"per_use_fee": t.Money(minor_units=1)}, ("terms.per_use_fee.currency_code",)),
    "currency-two_letters": (
        {"per_use_fee": t.Money(currency_code="US", minor_units=1)},
        ("terms.per_use_fee.currency_code",),
    ),
    "currency-four_letters": (
        {"per_use_fee": t.Money(currency_code="USDX", minor_units=1)},
        ("terms.per_use_fee.currency_code",),
    ),
    "currency-full_width": (
        {"per_use_fee": t.Money(currency_code="\uff35\uff33\uff24", minor_units=1)},
        ("terms.per_use_fee.currency_code",),
    ),
    "fee-negative": ({"per_use_fee": t.Money(currency_code="JPY", minor_units=-1)}, ("terms.per_use_fee.minor_units",)),
    # Past the documented maximum of 10**12 (2**62 x 2 uses used to overflow a statement's fees).
    "fee-above_max": (
        {"per_use_fee": t.Money(currency_code="USD", minor_units=10**12 + 1)},
        ("terms.per_use_fee.minor_units",),
    ),
    "share-above_10000": ({"revenue_share_bps": 10_001}, ("terms.revenue_share_bps",)),
    "share-negative": ({"revenue_share_bps": -1}, ("terms.revenue_share_bps",)),
    "daily_quota-negative": ({"daily_quota": -1}, ("terms.daily_quota",)),
    "monthly_quota-negative": ({"monthly_quota": -(2**40)}, ("terms.monthly_quota",)),
    "co_appearance-itself": (
        lambda x, cid: {"prohibited_co_appearance_ids": [x.other_character, cid]},
        ("terms.prohibited_co_appearance_ids[1]",),
    ),
    "co_appearance-malformed": (
        {"prohibited_co_appearance_ids": ["chr_123"]},
        ("terms.prohibited_co_appearance_ids[0]",),
    ),
    "co_appearance-licensee_id": (
        lambda x, cid: {"prohibited_co_appearance_ids": [x.licensee]},
        ("terms.prohibited_co_appearance_ids[0]",),
    ),
    "co_appearance-missing": (
        lambda x, cid: {"prohibited_co_appearance_ids": [x.other_character, ids.new_id("character")]},
        ("terms.prohibited_co_appearance_ids[1]",),
    ),
    "licensees-malformed": ({"allowed_licensee_ids": ["lic_nope"]}, ("terms.allowed_licensee_ids[0]",)),
    "licensees-character_id": (
        lambda x, cid: {"allowed_licensee_ids": [x.other_character]},
        ("terms.allowed_licensee_ids[0]",),
    ),
    "licensees-missing": (
        lambda x, cid: {"allowed_licensee_ids": [x.licensee, ids.new_id("licensee")]},
        ("terms.allowed_licensee_ids[1]",),
    ),
    "licensees-and_co_appearance_missing": (
        lambda x, cid: {
            "allowed_licensee_ids": [ids.new_id("licensee")],
            "prohibited_co_appearance_ids": [ids.new_id("character")],
        },
        ("terms.allowed_licensee_ids[0]", "terms.prohibited_co_appearance_ids[0]"),
    ),
    "platforms-not_a_slug": ({"allowed_platforms": ["video-app", "Video App"]}, ("terms.allowed_platforms[1]",)),
    "attribution-too_long": ({"attribution_text": "a" * 501}, ("terms.attribution_text",)),
    "attribution-control": ({"attribution_text": "© Studio\x00"}, ("terms.attribution_text",)),
    "everything": (
        {
            "permitted_use_types": [],
            "max_content_rating": 0,
            "allowed_territories": ["ZZ"],
            "revenue_share_bps": 20_000,
            "daily_quota": -1,
            "monthly_quota": -1,
            "per_use_fee": t.Money(currency_code="XYZ", minor_units=-5),
        },
        (
            "terms.permitted_use_types",
            "terms.max_content_rating",
            "terms.allowed_territories[0]",
            "terms.revenue_share_bps",
            "terms.daily_quota",
            "terms.monthly_quota",
            "terms.per_use_fee.minor_units",
            "terms.per_use_fee.currency_code",
        ),
    ),
}


def bad_terms(change: Change, targets: Targets, character_id: str) -> t.Terms:
    return terms(**(change(targets, character_id) if callable(change) else change))


@pytest.mark.parametrize("name", list(CASES))
def test_opt_in_with_bad_terms_names_the_field_and_changes_nothing(
    catalog: Any, holder: Holder, targets: Targets, name: str
) -> None:
    change, fields = CASES[name]
    before = get(catalog, holder.secret, targets.opted_out)
    request = catalog_pb.OptInRequest(
        character_id=targets.opted_out, terms=bad_terms(change, targets, targets.opted_out)
    )

    got = refused(catalog.OptIn, request, holder.secret)

    assert (got.code, got.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")
    assert sorted(got.fields) == sorted(fields)
    assert get(catalog, holder.secret, targets.opted_out) == before
    assert versions(catalog, holder.secret, targets.opted_out) == []


@pytest.mark.parametrize(
    "name",
    [
        "use_types-empty",
        "territories-both",
        "valid_until-before",
        "currency-unknown",
        "share-above_10000",
        "co_appearance-itself",
        "licensees-missing",
        "co_appearance-missing",
    ],
)
def test_update_terms_with_bad_terms_names_the_field_and_keeps_the_version(
    catalog: Any, holder: Holder, targets: Targets, name: str
) -> None:
    change, fields = CASES[name]
    before = versions(catalog, holder.secret, targets.opted_in)
    request = catalog_pb.UpdateTermsRequest(
        character_id=targets.opted_in, terms=bad_terms(change, targets, targets.opted_in)
    )

    got = refused(catalog.UpdateTerms, request, holder.secret)

    assert (got.code, got.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")
    assert sorted(got.fields) == sorted(fields)
    assert versions(catalog, holder.secret, targets.opted_in) == before
    assert get(catalog, holder.secret, targets.opted_in).terms_version == before[0].version


@pytest.mark.parametrize(
    ("changes", "first", "omitted"),
    [
        ({"permitted_use_types": [999] * 5000}, "terms.permitted_use_types[0]", True),
        ({"prohibited_categories": [999] * 5000}, "terms.prohibited_categories[0]", True),
        ({"allowed_territories": ["X" * 200_000]}, "terms.allowed_territories[0]", False),
        ({"per_use_fee": {"currency_code": "Y" * 200_000, "minor_units": 1}}, "terms.per_use_fee.currency_code", False),
    ],
    ids=["many_use_types", "many_categories", "huge_territory", "huge_currency"],
)
def test_bad_terms_too_many_or_too_long_to_report_whole_still_name_the_field(
    catalog: Any, holder: Holder, targets: Targets, changes: dict[str, Any], first: str, omitted: bool
) -> None:
    """Thousands of bad values, or a bad value of 200,000 characters: the status stays small enough
    for gRPC's trailers (8 KiB), so the client gets INVALID_ARGUMENT naming the field (the first
    violations; how many were left out in ``violations_omitted``), not a transport error."""
    before = versions(catalog, holder.secret, targets.opted_in)
    request = catalog_pb.UpdateTermsRequest(character_id=targets.opted_in, terms=terms(**changes))

    got = refused(catalog.UpdateTerms, request, holder.secret)

    assert (got.code, got.reason, got.fields[0]) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", first)
    assert ("violations_omitted" in got.metadata) is omitted
    if omitted:
        assert len(got.fields) + int(got.metadata["violations_omitted"]) == 5000
    assert versions(catalog, holder.secret, targets.opted_in) == before


# Concurrency: changes of one character run one after the other ----------------------------------


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls at once, one thread each; the outcome of each: its response or its (code, reason)."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            outcomes[index] = calls[index]()
        except grpc.RpcError as error:
            got = failure(error)
            outcomes[index] = (got.code, got.reason)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_an_opt_out_racing_terms_updates_is_never_lost(catalog: Any, holder: Holder) -> None:
    character = create(catalog, holder.secret, holder.id)
    opt_in(catalog, holder.secret, character.id)
    not_opted_in = (grpc.StatusCode.FAILED_PRECONDITION, "CHARACTER_NOT_OPTED_IN")

    def update(share: int) -> Callable[[], Any]:
        return lambda: update_terms(catalog, holder.secret, character.id, terms(revenue_share_bps=share))

    def opt_out() -> Any:
        return catalog.OptOut(catalog_pb.OptOutRequest(character_id=character.id), metadata=auth(holder.secret))

    outcomes = race([opt_out, *(update(share) for share in range(1, 8))])
    updated = [o for o in outcomes[1:] if isinstance(o, t.Terms)]
    after = get(catalog, holder.secret, character.id)

    assert isinstance(outcomes[0], catalog_pb.OptOutResponse)
    assert all(o == not_opted_in for o in outcomes[1:] if not isinstance(o, t.Terms))
    assert after.state == OPTED_OUT
    assert sorted(v.version for v in updated) == list(range(2, len(updated) + 2))
    assert [v.version for v in versions(catalog, holder.secret, character.id)] == list(range(len(updated) + 1, 0, -1))


def test_concurrent_opt_ins_make_exactly_one_version(catalog: Any, holder: Holder) -> None:
    character = create(catalog, holder.secret, holder.id)

    outcomes = race(
        [
            lambda share=share: opt_in(catalog, holder.secret, character.id, terms(revenue_share_bps=share))
            for share in range(6)
        ]
    )

    opted = [o for o in outcomes if isinstance(o, catalog_pb.OptInResponse)]
    assert len(opted) == 1
    assert [o for o in outcomes if o not in opted] == [
        (grpc.StatusCode.FAILED_PRECONDITION, "CHARACTER_ALREADY_OPTED_IN")
    ] * 5
    assert versions(catalog, holder.secret, character.id) == [opted[0].terms]
