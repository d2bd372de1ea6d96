"""Territory codes are ISO 3166-1 alpha-2 in ASCII letters, wherever one is given: the terms of
OptIn, UpdateTerms, an ImportCharacters row, IssueGrant's narrowed terms, SimulateUse's and
PreviewTerms' proposed terms, and the use context of Authorize and SimulateUse. ASCII letters of
either case are the code (``it`` is stored as ``IT``); a letter that only uppercases to an ASCII one
(U+0131 the dotless i, U+017F the long s), U+0130 and fullwidth letters are refused with
INVALID_ARGUMENT naming the field, never folded into another country's code. (Before, U+0131 then ``t`` was
stored, and decided, as ``IT``.)
"""

from __future__ import annotations

from typing import Any, Final

import grpc
import pytest
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import catalog_service_pb2 as catalog_pb
from charter.v1 import character_pb2
from charter.v1 import decision_pb2 as decision
from charter.v1 import terms_pb2 as t
from charter_server.app import CharterServer
from charter_server.domain.decision_history import DecidedUse, DecisionTally, hour_of

from .character_helpers import create, new_holder, refused, terms
from .grant_helpers import Stubs, World, generator_key, issue, issue_request, new_world, stubs
from .helpers import auth, unique

# Each would be a country's code after Python's Unicode str.upper(), or after NFKC.
LOOK_ALIKES: Final = {
    "dotless_i": "\u0131t",  # upper() -> "IT"
    "dotless_i_upper_t": "\u0131T",  # upper() -> "IT"
    "long_s": "\u017fe",  # upper() -> "SE"
    "dotted_capital_i": "\u0130T",
    "full_width": "\uff29\uff34",
    "kelvin_sign": "\u212aN",  # pycountry's look-up lowercases it to "kn"
}
INVALID: Final = (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")


@pytest.fixture(scope="module")
def api(channel: grpc.Channel) -> Stubs:
    return stubs(channel)


@pytest.fixture(scope="module")
def world(api: Stubs, keys: Any) -> World:
    """A rights holder's character opted in with terms restricted to IT, and a licensee with a
    grant of it and a generator key."""
    return new_world(api, keys.admin, terms(allowed_territories=["IT"]))


def _use(territory: str) -> decision.UseContext:
    return decision.UseContext(
        use_type=t.USE_TYPE_IMAGE_GENERATION, content_rating=t.CONTENT_RATING_ALL_AGES, territory=territory
    )


@pytest.mark.parametrize("field", ["allowed_territories", "excluded_territories"])
@pytest.mark.parametrize("code", list(LOOK_ALIKES.values()), ids=list(LOOK_ALIKES))
def test_opt_in_and_update_terms_refuse_a_non_ascii_territory(api: Stubs, keys: Any, field: str, code: str) -> None:
    holder = new_holder(api.catalog, api.access, keys.admin)
    fresh = create(api.catalog, holder.secret, holder.id).id
    opted = create(api.catalog, holder.secret, holder.id).id
    api.catalog.OptIn(catalog_pb.OptInRequest(character_id=opted, terms=terms()), metadata=auth(holder.secret))
    bad = terms(**{field: ["JP", code]})

    opt_in = refused(api.catalog.OptIn, catalog_pb.OptInRequest(character_id=fresh, terms=bad), holder.secret)
    update = refused(
        api.catalog.UpdateTerms, catalog_pb.UpdateTermsRequest(character_id=opted, terms=bad), holder.secret
    )

    assert ((opt_in.code, opt_in.reason), opt_in.fields) == (INVALID, (f"terms.{field}[1]",))
    assert ((update.code, update.reason), update.fields) == (INVALID, (f"terms.{field}[1]",))


@pytest.mark.parametrize("code", list(LOOK_ALIKES.values()), ids=list(LOOK_ALIKES))
def test_an_import_row_with_a_non_ascii_territory_fails_naming_the_field(api: Stubs, keys: Any, code: str) -> None:
    holder = new_holder(api.catalog, api.access, keys.admin)
    row = catalog_pb.ImportRow(
        character=character_pb2.Character(external_id=f"row-{unique()}", canonical_name=f"Chara {unique()}"),
        terms=terms(allowed_territories=[code]),
    )
    request = catalog_pb.ImportCharactersRequest(rights_holder_id=holder.id, rows=[row])

    (result,) = api.catalog.ImportCharacters(request, metadata=auth(holder.secret)).results

    assert (result.outcome, result.error_reason, result.character_id) == (
        catalog_pb.ImportRowResult.OUTCOME_FAILED,
        "INVALID_FIELD",
        "",
    )
    assert [v.field for v in result.field_violations] == ["terms.allowed_territories[0]"]


@pytest.mark.parametrize("code", list(LOOK_ALIKES.values()), ids=list(LOOK_ALIKES))
def test_issue_grant_refuses_narrowed_terms_with_a_non_ascii_territory(
    api: Stubs, keys: Any, clock: Any, world: World, code: str
) -> None:
    request = issue_request(clock, world.character_id, world.licensee_id, narrowed=terms(allowed_territories=[code]))

    got = refused(api.grants.IssueGrant, request, keys.admin)

    assert ((got.code, got.reason), got.fields) == (INVALID, ("narrowed_terms.allowed_territories[0]",))


@pytest.mark.parametrize("code", list(LOOK_ALIKES.values()), ids=list(LOOK_ALIKES))
def test_authorize_and_simulate_use_refuse_a_non_ascii_territory_in_the_context(
    api: Stubs, keys: Any, clock: Any, world: World, code: str
) -> None:
    issue(api, keys.admin, clock, world.character_id, world.licensee_id)
    generator = generator_key(api, keys.admin, world.licensee_id)
    asked = az.AuthorizeRequest(character_ids=[world.character_id], context=_use(code))
    simulated = az.SimulateUseRequest(character_ids=[world.character_id], context=_use(code))

    authorize = refused(api.authz.Authorize, asked, generator)
    simulate = refused(api.authz.SimulateUse, simulated, world.holder.secret)

    assert ((authorize.code, authorize.reason), authorize.fields) == (INVALID, ("context.territory",))
    assert ((simulate.code, simulate.reason), simulate.fields) == (INVALID, ("context.territory",))


@pytest.mark.parametrize("code", list(LOOK_ALIKES.values()), ids=list(LOOK_ALIKES))
def test_simulate_use_and_preview_terms_refuse_proposed_terms_with_a_non_ascii_territory(
    api: Stubs, world: World, code: str
) -> None:
    proposed = az.ProposedTerms(character_id=world.character_id, terms=terms(excluded_territories=[code]))
    simulated = az.SimulateUseRequest(character_ids=[world.character_id], context=_use("IT"), proposed=proposed)
    previewed = az.PreviewTermsRequest(proposed=proposed)

    simulate = refused(api.authz.SimulateUse, simulated, world.holder.secret)
    preview = refused(api.authz.PreviewTerms, previewed, world.holder.secret)

    assert ((simulate.code, simulate.reason), simulate.fields) == (INVALID, ("proposed.terms.excluded_territories[0]",))
    assert ((preview.code, preview.reason), preview.fields) == (INVALID, ("proposed.terms.excluded_territories[0]",))


def test_ascii_territories_of_either_case_are_the_code(api: Stubs, keys: Any, clock: Any, world: World) -> None:
    holder = new_holder(api.catalog, api.access, keys.admin)
    character = create(api.catalog, holder.secret, holder.id).id
    stored = api.catalog.OptIn(
        catalog_pb.OptInRequest(character_id=character, terms=terms(allowed_territories=["it", "Jp"])),
        metadata=auth(holder.secret),
    ).terms
    issue(api, keys.admin, clock, world.character_id, world.licensee_id)
    generator = generator_key(api, keys.admin, world.licensee_id)
    asked = az.AuthorizeRequest(character_ids=[world.character_id], context=_use("it"))

    decided = api.authz.Authorize(asked, metadata=auth(generator)).decision

    assert list(stored.allowed_territories) == ["IT", "JP"]
    assert (decided.allowed, [list(c.reasons) for c in decided.characters]) == (True, [[]])


def test_preview_terms_leaves_out_a_use_recorded_with_a_non_ascii_territory_before_the_fix(
    api: Stubs, keys: Any, clock: Any, server: CharterServer
) -> None:
    """Decisions were recorded with the territory as given, so a history may hold one that is no
    longer accepted; it is counted as not replayed, never a failed call."""
    world = new_world(api, keys.admin)
    legacy = DecidedUse(t.USE_TYPE_IMAGE_GENERATION, t.CONTENT_RATING_TEEN, (), "\u0131t", False, ())
    with server.db.uow(write=True) as uow:
        uow.decisions.add([DecisionTally(world.character_id, hour_of(clock.now()), world.licensee_id, legacy, (), 4)])
        uow.commit()
    proposed = az.ProposedTerms(character_id=world.character_id, terms=terms(excluded_territories=["IT"]))

    previewed = api.authz.PreviewTerms(az.PreviewTermsRequest(proposed=proposed), metadata=auth(world.holder.secret))

    assert (previewed.replayed, previewed.not_replayed, previewed.would_deny) == (0, 4, 0)
