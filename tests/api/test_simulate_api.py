"""AuthorizationService.SimulateUse end to end (SQLite and PostgreSQL): the same decision as
Authorize, under the terms in force or proposed terms, with every failed term; nothing counted
(a quota of one is still whole after many simulations) and nothing signed; who may ask (a rights
holder only about its own characters, a generator only for its own licensee); bad requests naming
their field.

Every test builds its own rights holder, characters and grants.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import decision_pb2 as D  # noqa: N812
from charter.v1 import grant_service_pb2 as gs
from charter.v1 import terms_pb2 as T  # noqa: N812
from charter_server.app import CharterServer

from .character_helpers import create, new_holder, refused, terms
from .grant_helpers import Stubs, generator_key, issue, new_licensee, new_world, opted_in_character, stubs
from .helpers import auth

ALLOWED: list[int] = []


@pytest.fixture(scope="module")
def api(channel: grpc.Channel) -> Stubs:
    return stubs(channel)


def use(**changes: Any) -> D.UseContext:
    fields: dict[str, Any] = {"use_type": T.USE_TYPE_IMAGE_GENERATION, "content_rating": T.CONTENT_RATING_ALL_AGES}
    return D.UseContext(**{**fields, **changes})


def simulate(api: Stubs, secret: str, *character_ids: str, **options: Any) -> az.SimulateUseResponse:
    options.setdefault("context", use())
    request = az.SimulateUseRequest(character_ids=list(character_ids), **options)
    response: az.SimulateUseResponse = api.authz.SimulateUse(request, metadata=auth(secret))
    return response


def verdict(response: az.SimulateUseResponse, character_id: str) -> tuple[bool, list[int], str, int]:
    found = {d.character_id: d for d in response.decisions}[character_id]
    return found.allowed, list(found.reasons), found.grant_id, found.terms_version


def test_terms_in_force_and_proposed_terms_without_a_licensee(api: Stubs, keys: Any) -> None:
    world = new_world(api, keys.admin)  # default terms: image generation, up to TEEN
    mature = use(content_rating=T.CONTENT_RATING_MATURE)
    in_force = simulate(api, world.holder.secret, world.character_id, context=mature)
    wider = terms(max_content_rating=T.CONTENT_RATING_MATURE)
    proposed = simulate(
        api,
        world.holder.secret,
        world.character_id,
        context=mature,
        proposed=az.ProposedTerms(character_id=world.character_id, terms=wider),
    )
    everything = simulate(
        api,
        world.holder.secret,
        world.character_id,
        context=use(use_type=T.USE_TYPE_VIDEO_GENERATION, content_rating=T.CONTENT_RATING_ADULT, commercial=True),
    )
    assert not in_force.allowed
    assert verdict(in_force, world.character_id) == (False, [D.DENY_REASON_RATING_EXCEEDS_TERMS], "", 1)
    assert proposed.allowed
    assert verdict(proposed, world.character_id) == (True, ALLOWED, "", 0)
    assert in_force.licensee_id == "" and in_force.HasField("decide_time")
    # Every failed term, in the order of the reasons.
    assert verdict(everything, world.character_id)[1] == [
        D.DENY_REASON_USE_TYPE_NOT_PERMITTED,
        D.DENY_REASON_RATING_EXCEEDS_TERMS,
        D.DENY_REASON_COMMERCIAL_USE_NOT_PERMITTED,
    ]


def test_a_licensees_grants_decide_with_the_proposed_terms_in_their_place(api: Stubs, keys: Any, clock: Any) -> None:
    holder = new_holder(api.catalog, api.access, keys.admin)
    licensee_id = new_licensee(api, keys.admin)
    generator = generator_key(api, keys.admin, licensee_id)
    granted = opted_in_character(api, holder)
    ungranted = opted_in_character(api, holder)
    grant = issue(api, keys.admin, clock, granted, licensee_id)
    narrower = terms(permitted_use_types=[T.USE_TYPE_VIDEO_GENERATION])
    by_generator = simulate(api, generator, granted, ungranted)
    by_holder = simulate(
        api,
        holder.secret,
        granted,
        licensee_id=licensee_id,
        proposed=az.ProposedTerms(character_id=granted, terms=narrower),
    )
    by_staff = simulate(api, keys.auditor, granted, licensee_id=licensee_id)
    assert by_generator.licensee_id == licensee_id and not by_generator.allowed
    assert verdict(by_generator, granted) == (True, ALLOWED, grant.id, 1)
    assert verdict(by_generator, ungranted)[:2] == (False, [D.DENY_REASON_NO_GRANT])
    assert verdict(by_holder, granted) == (False, [D.DENY_REASON_USE_TYPE_NOT_PERMITTED], grant.id, 0)
    assert verdict(by_staff, granted) == (True, ALLOWED, grant.id, 1)


def test_proposed_terms_do_not_revive_a_revoked_grant(api: Stubs, keys: Any, clock: Any) -> None:
    holder = new_holder(api.catalog, api.access, keys.admin)
    licensee_id = new_licensee(api, keys.admin)
    character_id = opted_in_character(api, holder)
    grant = issue(api, keys.admin, clock, character_id, licensee_id)
    api.grants.RevokeGrant(gs.RevokeGrantRequest(id=grant.id, reason="ended"), metadata=auth(keys.admin))
    wider = terms(max_content_rating=T.CONTENT_RATING_ADULT)
    answer = simulate(
        api,
        holder.secret,
        character_id,
        licensee_id=licensee_id,
        proposed=az.ProposedTerms(character_id=character_id, terms=wider),
    )
    assert verdict(answer, character_id)[:3] == (False, [D.DENY_REASON_GRANT_REVOKED], grant.id)


def test_nothing_is_counted_and_nothing_is_signed(api: Stubs, keys: Any, clock: Any) -> None:
    holder = new_holder(api.catalog, api.access, keys.admin)
    licensee_id = new_licensee(api, keys.admin)
    generator = generator_key(api, keys.admin, licensee_id)
    character_id = opted_in_character(api, holder, terms(daily_quota=1))
    issue(api, keys.admin, clock, character_id, licensee_id)
    answers = [simulate(api, generator, character_id) for _ in range(3)]
    first = api.authz.Authorize(
        az.AuthorizeRequest(character_ids=[character_id], context=use()), metadata=auth(generator)
    )
    second = api.authz.Authorize(
        az.AuthorizeRequest(character_ids=[character_id], context=use()), metadata=auth(generator)
    )
    assert all(answer.allowed for answer in answers)
    # The quota of one was still whole after the simulations: the first real use takes it.
    assert first.decision.allowed
    assert not second.decision.allowed
    assert list(second.decision.characters[0].reasons) == [D.DENY_REASON_QUOTA_EXHAUSTED]
    # The answer has no receipt field at all: nothing to sign, nothing to report usage against.
    assert "receipt" not in az.SimulateUseResponse.DESCRIPTOR.fields_by_name


def test_the_prompt_decides_only_a_rights_holders_own_characters(api: Stubs, keys: Any, server: CharterServer) -> None:
    mine = new_holder(api.catalog, api.access, keys.admin)
    theirs = new_holder(api.catalog, api.access, keys.admin)
    own = create(api.catalog, mine.secret, mine.id)
    other = create(api.catalog, theirs.secret, theirs.id)
    server.services.screen.refresh_now()
    prompt = f"{own.canonical_name} meets {other.canonical_name}"
    by_holder = simulate(api, mine.secret, prompt=prompt)
    by_staff = simulate(api, keys.admin, prompt=prompt)
    assert {d.character_id for d in by_holder.detections} == {own.id, other.id}
    assert [d.character_id for d in by_holder.decisions] == [own.id]
    assert verdict(by_holder, own.id)[:2] == (False, [D.DENY_REASON_CHARACTER_NOT_OPTED_IN])
    assert {d.character_id for d in by_staff.decisions} == {own.id, other.id}


def test_who_may_ask(api: Stubs, keys: Any) -> None:
    world = new_world(api, keys.admin)
    other = new_world(api, keys.admin)
    missing = "chr_" + "0" * 32
    proposal = az.ProposedTerms(character_id=other.character_id, terms=terms())
    requests = {
        "another holder's character": az.SimulateUseRequest(character_ids=[other.character_id], context=use()),
        "a character that does not exist": az.SimulateUseRequest(character_ids=[missing], context=use()),
        "terms for another's character": az.SimulateUseRequest(proposed=proposal, context=use()),
    }
    as_holder = {name: refused(api.authz.SimulateUse, r, world.holder.secret) for name, r in requests.items()}
    other_licensee = az.SimulateUseRequest(
        character_ids=[world.character_id], licensee_id=world.licensee_id, context=use()
    )
    as_generator = refused(api.authz.SimulateUse, other_licensee, keys.generator)
    staff_missing = refused(api.authz.SimulateUse, requests["a character that does not exist"], keys.admin)
    no_licensee = refused(
        api.authz.SimulateUse,
        az.SimulateUseRequest(character_ids=[world.character_id], licensee_id="lic_" + "0" * 32, context=use()),
        keys.admin,
    )
    for found in as_holder.values():
        assert (found.code, found.reason) == (grpc.StatusCode.PERMISSION_DENIED, "RESOURCE_NOT_OWNED")
    assert (as_generator.code, as_generator.reason) == (grpc.StatusCode.PERMISSION_DENIED, "RESOURCE_NOT_OWNED")
    assert (staff_missing.code, staff_missing.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ("character_ids[0]",))
    assert (no_licensee.code, no_licensee.reason) == (grpc.StatusCode.NOT_FOUND, "LICENSEE_NOT_FOUND")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"context": None}, "context"),
        ({"context": use(use_type=T.USE_TYPE_UNSPECIFIED)}, "context.use_type"),
        ({"context": use(territory="Mars")}, "context.territory"),
        ({"character_ids": ["chr_nope"]}, "character_ids[0]"),
        ({"licensee_id": "lic_nope"}, "licensee_id"),
        ({"prompt": "x" * 8001}, "prompt"),
        ({"character_ids": [], "prompt": " "}, "character_ids"),
        ({"proposed": az.ProposedTerms(character_id="chr_nope", terms=terms())}, "proposed.character_id"),
        ({"proposed": "empty terms"}, "proposed.terms.permitted_use_types"),
    ],
)
def test_bad_requests_name_their_field(api: Stubs, keys: Any, changes: dict[str, Any], field: str) -> None:
    world = new_world(api, keys.admin)
    fields: dict[str, Any] = {"character_ids": [world.character_id], "context": use(), **changes}
    if fields["context"] is None:
        del fields["context"]
    if fields.get("proposed") == "empty terms":
        fields["proposed"] = az.ProposedTerms(character_id=world.character_id, terms=T.Terms())
    found = refused(api.authz.SimulateUse, az.SimulateUseRequest(**fields), world.holder.secret)
    assert found.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in found.fields
