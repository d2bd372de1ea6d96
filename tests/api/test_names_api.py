"""Names where people read: the licensee profiles a rights holder may read (only those of licensees
holding or having held a grant on its characters), and the names that grants and statements carry
next to their ids.

Every test builds its own rights holders, characters and licensees, so none depends on another's rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from charter.v1 import catalog_service_pb2 as catalog_pb
from charter.v1 import grant_service_pb2, licensee_pb2, usage_service_pb2_grpc
from charter.v1 import usage_service_pb2 as us
from charter_server.domain import ids

from .character_helpers import Holder, list_all, mask, new_holder, refused
from .grant_helpers import Stubs, generator_key, issue, new_licensee, opted_in_character, stubs
from .helpers import auth
from .test_usage_api import receipt, record, report

PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
Profile = licensee_pb2.LicenseeProfile


@pytest.fixture(scope="module")
def api(channel: grpc.Channel) -> Stubs:
    return stubs(channel)


@dataclass(frozen=True)
class Tenancy:
    """Two rights holders, each with a character granted to a licensee of its own, and a licensee
    that holds no grant at all."""

    mine: Holder
    theirs: Holder
    my_character: str
    my_licensee: str
    their_licensee: str
    ungranted_licensee: str


@pytest.fixture
def tenancy(api: Stubs, keys: Any, clock: Any) -> Tenancy:
    mine = new_holder(api.catalog, api.access, keys.admin)
    theirs = new_holder(api.catalog, api.access, keys.admin)
    my_character = opted_in_character(api, mine)
    their_character = opted_in_character(api, theirs)
    my_licensee, their_licensee = new_licensee(api, keys.admin), new_licensee(api, keys.admin)
    issue(api, keys.admin, clock, my_character, my_licensee)
    issue(api, keys.admin, clock, their_character, their_licensee)
    return Tenancy(mine, theirs, my_character, my_licensee, their_licensee, new_licensee(api, keys.admin))


def profile(api: Stubs, secret: str, licensee_id: str) -> Profile:
    request = catalog_pb.GetLicenseeProfileRequest(id=licensee_id)
    found: Profile = api.catalog.GetLicenseeProfile(request, metadata=auth(secret)).profile
    return found


def profiles(api: Stubs, secret: str, rights_holder_id: str = "", page_size: int = 0) -> tuple[list[Profile], int]:
    request = catalog_pb.ListLicenseeProfilesRequest(rights_holder_id=rights_holder_id, page_size=page_size)
    return list_all(api.catalog.ListLicenseeProfiles, request, "profiles", secret)


def licensee(api: Stubs, admin: str, licensee_id: str) -> licensee_pb2.Licensee:
    found: licensee_pb2.Licensee = api.catalog.GetLicensee(
        catalog_pb.GetLicenseeRequest(id=licensee_id), metadata=auth(admin)
    ).licensee
    return found


# Licensee profiles ------------------------------------------------------------------------------


def test_a_rights_holder_reads_the_public_profile_of_its_licensee(api: Stubs, keys: Any, tenancy: Tenancy) -> None:
    found = profile(api, tenancy.mine.secret, tenancy.my_licensee)

    full = licensee(api, keys.admin, tenancy.my_licensee)
    assert (found.id, found.display_name, found.platform) == (full.id, full.display_name, full.platform)
    assert found.state == licensee_pb2.Licensee.STATE_ACTIVE
    # The profile has no room for the contact or the legal name.
    assert set(Profile.DESCRIPTOR.fields_by_name) == {"id", "display_name", "platform", "state"}


@pytest.mark.parametrize("which", ["another rights holder's", "ungranted", "missing"])
def test_other_licensees_stay_hidden_whether_or_not_they_exist(api: Stubs, tenancy: Tenancy, which: str) -> None:
    target = {
        "another rights holder's": tenancy.their_licensee,
        "ungranted": tenancy.ungranted_licensee,
        "missing": ids.new_id("licensee"),
    }[which]

    got = refused(api.catalog.GetLicenseeProfile, catalog_pb.GetLicenseeProfileRequest(id=target), tenancy.mine.secret)

    assert (got.code, got.reason) == (PERMISSION_DENIED, "RESOURCE_NOT_OWNED")


def test_the_list_holds_only_the_rights_holders_own_licensees(api: Stubs, tenancy: Tenancy) -> None:
    mine, _ = profiles(api, tenancy.mine.secret)
    theirs, _ = profiles(api, tenancy.theirs.secret)
    naming_another = refused(
        api.catalog.ListLicenseeProfiles,
        catalog_pb.ListLicenseeProfilesRequest(rights_holder_id=tenancy.theirs.id),
        tenancy.mine.secret,
    )

    assert [p.id for p in mine] == [tenancy.my_licensee]
    assert [p.id for p in theirs] == [tenancy.their_licensee]
    assert (naming_another.code, naming_another.reason) == (PERMISSION_DENIED, "RESOURCE_NOT_OWNED")


def test_a_licensee_whose_grant_was_revoked_stays_readable(api: Stubs, keys: Any, clock: Any, tenancy: Tenancy) -> None:
    character = opted_in_character(api, tenancy.mine)
    former = new_licensee(api, keys.admin)
    grant = issue(api, keys.admin, clock, character, former)
    api.grants.RevokeGrant(grant_service_pb2.RevokeGrantRequest(id=grant.id, reason="ended"), metadata=auth(keys.admin))
    api.catalog.ArchiveLicensee(catalog_pb.ArchiveLicenseeRequest(id=former), metadata=auth(keys.admin))

    found = profile(api, tenancy.mine.secret, former)
    listed, _ = profiles(api, tenancy.mine.secret)

    # Last month's statement still names it.
    assert found.state == licensee_pb2.Licensee.STATE_ARCHIVED
    assert [p.id for p in listed] == [tenancy.my_licensee, former]


def test_staff_and_auditors_read_any_profile_and_filter_by_rights_holder(
    api: Stubs, keys: Any, clock: Any, tenancy: Tenancy
) -> None:
    second = new_licensee(api, keys.admin)
    issue(api, keys.admin, clock, tenancy.my_character, second)

    by_auditor = profile(api, keys.auditor, tenancy.ungranted_licensee)
    paged, pages = profiles(api, keys.admin, rights_holder_id=tenancy.mine.id, page_size=1)
    missing = refused(
        api.catalog.GetLicenseeProfile, catalog_pb.GetLicenseeProfileRequest(id=ids.new_id("licensee")), keys.admin
    )

    assert by_auditor.id == tenancy.ungranted_licensee
    assert [p.id for p in paged] == [tenancy.my_licensee, second]
    assert pages == 2  # one profile per page
    assert (missing.code, missing.reason) == (grpc.StatusCode.NOT_FOUND, "LICENSEE_NOT_FOUND")


def test_a_generator_may_not_read_profiles_even_its_own(api: Stubs, keys: Any) -> None:
    own = refused(
        api.catalog.GetLicenseeProfile, catalog_pb.GetLicenseeProfileRequest(id=keys.licensee_id), keys.generator
    )
    listing = refused(api.catalog.ListLicenseeProfiles, catalog_pb.ListLicenseeProfilesRequest(), keys.generator)

    assert (own.code, own.reason) == (PERMISSION_DENIED, "ROLE_NOT_PERMITTED")
    assert (listing.code, listing.reason) == (PERMISSION_DENIED, "ROLE_NOT_PERMITTED")


def test_bad_ids_are_invalid_arguments_naming_the_field(api: Stubs, tenancy: Tenancy) -> None:
    get = refused(api.catalog.GetLicenseeProfile, catalog_pb.GetLicenseeProfileRequest(id="lic_x"), tenancy.mine.secret)
    listing = refused(
        api.catalog.ListLicenseeProfiles,
        catalog_pb.ListLicenseeProfilesRequest(rights_holder_id="nope"),
        tenancy.mine.secret,
    )

    assert (get.code, get.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ("id",))
    assert (listing.code, listing.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ("rights_holder_id",))


# Names next to ids ------------------------------------------------------------------------------


def _names(api: Stubs, admin: str, character_id: str, licensee_id: str) -> tuple[str, str]:
    character = api.catalog.GetCharacter(catalog_pb.GetCharacterRequest(id=character_id), metadata=auth(admin))
    return character.character.canonical_name, licensee(api, admin, licensee_id).display_name


def test_grants_carry_the_names_of_their_character_and_licensee(
    api: Stubs, keys: Any, clock: Any, tenancy: Tenancy
) -> None:
    issued = issue(api, keys.admin, clock, tenancy.my_character, tenancy.ungranted_licensee)
    listed = api.grants.ListGrants(grant_service_pb2.ListGrantsRequest(), metadata=auth(tenancy.mine.secret)).grants
    got = api.grants.GetGrant(grant_service_pb2.GetGrantRequest(id=issued.id), metadata=auth(tenancy.mine.secret))
    revoked = api.grants.RevokeGrant(
        grant_service_pb2.RevokeGrantRequest(id=issued.id, reason="test"), metadata=auth(tenancy.mine.secret)
    )

    expected = {
        tenancy.my_licensee: _names(api, keys.admin, tenancy.my_character, tenancy.my_licensee),
        issued.licensee_id: _names(api, keys.admin, tenancy.my_character, issued.licensee_id),
    }
    assert (issued.character_name, issued.licensee_display_name) == expected[issued.licensee_id]
    assert {g.licensee_id: (g.character_name, g.licensee_display_name) for g in listed} == expected
    assert (got.grant.character_name, got.grant.licensee_display_name) == expected[issued.licensee_id]
    assert (revoked.grant.character_name, revoked.grant.licensee_display_name) == expected[issued.licensee_id]


def test_statements_carry_names_as_they_are_now(
    api: Stubs, channel: grpc.Channel, keys: Any, clock: Any, tenancy: Tenancy
) -> None:
    usage = usage_service_pb2_grpc.UsageServiceStub(channel)
    generator = generator_key(api, keys.admin, tenancy.my_licensee)
    accepted = report(
        usage,
        generator,
        record(receipt(api, generator, tenancy.my_character), tenancy.my_character, clock.now(), revenue=("USD", 100)),
    )
    assert accepted[0].error_reason == ""
    renamed = "Renamed 初音"
    api.catalog.UpdateCharacter(
        catalog_pb.UpdateCharacterRequest(
            character={"id": tenancy.my_character, "canonical_name": renamed}, update_mask=mask("canonical_name")
        ),
        metadata=auth(tenancy.mine.secret),
    )
    period = f"{clock.now():%Y-%m}"
    holder = api.catalog.GetRightsHolder(
        catalog_pb.GetRightsHolderRequest(id=tenancy.mine.id), metadata=auth(keys.admin)
    ).rights_holder
    licensee_name = licensee(api, keys.admin, tenancy.my_licensee).display_name

    own = usage.GetStatement(
        us.GetStatementRequest(rights_holder_id=tenancy.mine.id, period=period), metadata=auth(tenancy.mine.secret)
    ).statement
    generators = usage.GetStatement(
        us.GetStatementRequest(rights_holder_id=tenancy.mine.id, period=period), metadata=auth(generator)
    ).statement
    listed = usage.ListStatements(us.ListStatementsRequest(), metadata=auth(tenancy.mine.secret)).statements

    (line,) = own.lines
    assert (line.character_name, line.licensee_display_name) == (renamed, licensee_name)
    assert own.rights_holder_display_name == holder.display_name
    assert own.licensee_display_name == ""  # not filtered by licensee
    assert generators.licensee_display_name == licensee_name
    assert [(g.character_name, g.licensee_display_name) for g in generators.lines] == [(renamed, licensee_name)]
    assert [s.rights_holder_display_name for s in listed] == [holder.display_name]
