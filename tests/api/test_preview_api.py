"""AuthorizationService.PreviewTerms end to end (SQLite and PostgreSQL): real decisions made by
Authorize, kept per hour as their receipts are logged, replayed under proposed terms and counted
by licensee and reason; decisions the terms did not decide counted apart; a validity window cut
at the hour; who may ask; nothing changed by asking.

Every test builds its own rights holder, character, licensees and grants.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import catalog_service_pb2 as cs
from charter.v1 import decision_pb2 as D  # noqa: N812
from charter.v1 import terms_pb2 as T  # noqa: N812
from charter_server.app import CharterServer
from google.protobuf import timestamp_pb2

from .character_helpers import new_holder, refused, terms
from .grant_helpers import Stubs, World, generator_key, issue, new_licensee, new_world, stubs
from .helpers import auth

WOULD_DENY = az.TermsChange.DIRECTION_WOULD_DENY
WOULD_ALLOW = az.TermsChange.DIRECTION_WOULD_ALLOW


@pytest.fixture(scope="module")
def api(channel: grpc.Channel) -> Stubs:
    return stubs(channel)


def authorize(api: Stubs, secret: str, character_id: str, times: int = 1, **context: Any) -> list[bool]:
    fields: dict[str, Any] = {"use_type": T.USE_TYPE_IMAGE_GENERATION, "content_rating": T.CONTENT_RATING_TEEN}
    request = az.AuthorizeRequest(character_ids=[character_id], context=D.UseContext(**{**fields, **context}))
    return [api.authz.Authorize(request, metadata=auth(secret)).decision.allowed for _ in range(times)]


def preview(api: Stubs, secret: str, character_id: str, proposed: T.Terms, days: int = 0) -> az.PreviewTermsResponse:
    request = az.PreviewTermsRequest(proposed=az.ProposedTerms(character_id=character_id, terms=proposed), days=days)
    response: az.PreviewTermsResponse = api.authz.PreviewTerms(request, metadata=auth(secret))
    return response


def changes(response: az.PreviewTermsResponse) -> list[tuple[int, str, int, int]]:
    return [(c.direction, c.licensee_id, c.reason, c.decisions) for c in response.changes]


def licensee_with_grant(api: Stubs, admin: str, clock: Any, world: World) -> tuple[str, str]:
    licensee_id = new_licensee(api, admin)
    issue(api, admin, clock, world.character_id, licensee_id)
    return licensee_id, generator_key(api, admin, licensee_id)


def decided(api: Stubs, keys: Any, clock: Any, server: CharterServer) -> tuple[World, str, str]:
    """A character (terms: image generation up to TEEN) with decisions of two licensees holding
    grants and one holding none, logged: A 3 allowed and 2 denied for the rating, B 2 allowed and
    1 denied for the use type, C 1 denied with no grant."""
    world = new_world(api, keys.admin)
    a, a_key = licensee_with_grant(api, keys.admin, clock, world)
    b, b_key = licensee_with_grant(api, keys.admin, clock, world)
    c_key = generator_key(api, keys.admin, new_licensee(api, keys.admin))
    outcomes = [
        *authorize(api, a_key, world.character_id, 3),
        *authorize(api, a_key, world.character_id, 2, content_rating=T.CONTENT_RATING_MATURE),
        *authorize(api, b_key, world.character_id, 2, content_rating=T.CONTENT_RATING_ALL_AGES),
        *authorize(api, b_key, world.character_id, 1, use_type=T.USE_TYPE_VIDEO_GENERATION),
        *authorize(api, c_key, world.character_id),
    ]
    assert outcomes == [True] * 3 + [False] * 2 + [True] * 2 + [False] * 2
    assert server.flush_log(60)  # what Authorize buffered is kept now
    return world, a, b


def test_proposed_terms_are_replayed_over_the_decisions_by_licensee_and_reason(
    api: Stubs, keys: Any, clock: Any, server: CharterServer
) -> None:
    world, a, b = decided(api, keys, clock, server)
    secret = world.holder.secret

    both = [T.USE_TYPE_IMAGE_GENERATION, T.USE_TYPE_VIDEO_GENERATION]
    video_too = preview(api, secret, world.character_id, terms(permitted_use_types=both))
    all_ages = preview(api, secret, world.character_id, terms(max_content_rating=T.CONTENT_RATING_ALL_AGES), days=7)
    same = preview(api, secret, world.character_id, terms())

    counts = (video_too.replayed, video_too.allowed_then, video_too.not_replayed)
    assert counts == (8, 5, 1)  # C's NO_GRANT is not the terms' doing
    assert (video_too.would_deny, video_too.would_allow) == (0, 1)
    assert changes(video_too) == [(WOULD_ALLOW, b, D.DENY_REASON_USE_TYPE_NOT_PERMITTED, 1)]
    assert video_too.changes[0].licensee_display_name.startswith("App ")
    assert (all_ages.would_deny, all_ages.would_allow) == (3, 0)
    assert changes(all_ages) == [(WOULD_DENY, a, D.DENY_REASON_RATING_EXCEEDS_TERMS, 3)]
    assert all_ages.end_time.ToDatetime() - all_ages.start_time.ToDatetime() <= timedelta(days=7, hours=1)
    assert (same.would_deny, same.would_allow, same.changes) == (0, 0, [])


def test_a_validity_window_is_applied_at_the_hour(
    api: Stubs, keys: Any, moved_clock: Any, server: CharterServer
) -> None:
    if moved_clock.now().minute == 59:  # the decisions below all fall in one hour
        moved_clock.advance(timedelta(minutes=2))
    this_hour = moved_clock.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    world, a, b = decided(api, keys, moved_clock, server)

    def until(when: datetime) -> T.Terms:
        bound = timestamp_pb2.Timestamp()
        bound.FromDatetime(when)
        return terms(valid_until=bound)

    ended = preview(api, world.holder.secret, world.character_id, until(this_hour))
    open_ = preview(api, world.holder.secret, world.character_id, until(this_hour + timedelta(hours=1)))

    # Ended at the start of this hour: every decision allowed this hour would be denied.
    assert ended.would_deny == 5
    assert {(c.licensee_id, c.reason, c.decisions) for c in ended.changes} == {
        (a, D.DENY_REASON_OUTSIDE_VALIDITY_WINDOW, 3),
        (b, D.DENY_REASON_OUTSIDE_VALIDITY_WINDOW, 2),
    }
    assert (open_.would_deny, open_.would_allow) == (0, 0)


def test_previewing_changes_nothing(api: Stubs, keys: Any, clock: Any, server: CharterServer) -> None:
    world, _, _ = decided(api, keys, clock, server)
    before = api.catalog.GetCharacter(cs.GetCharacterRequest(id=world.character_id), metadata=auth(keys.admin))

    first = preview(api, keys.admin, world.character_id, terms(max_content_rating=T.CONTENT_RATING_ALL_AGES))
    second = preview(api, keys.auditor, world.character_id, terms(max_content_rating=T.CONTENT_RATING_ALL_AGES))

    after = api.catalog.GetCharacter(cs.GetCharacterRequest(id=world.character_id), metadata=auth(keys.admin))
    assert after.character.terms_version == before.character.terms_version == 1
    assert (first.replayed, first.would_deny) == (second.replayed, second.would_deny) == (8, 3)


def test_who_may_preview(api: Stubs, keys: Any, clock: Any) -> None:
    world = new_world(api, keys.admin)
    other = new_holder(api.catalog, api.access, keys.admin)
    generator = generator_key(api, keys.admin, world.licensee_id)
    request = az.PreviewTermsRequest(proposed=az.ProposedTerms(character_id=world.character_id, terms=terms()))
    missing = az.PreviewTermsRequest(proposed=az.ProposedTerms(character_id="chr_" + "0" * 32, terms=terms()))

    not_theirs = refused(api.authz.PreviewTerms, request, other.secret)
    not_anyones = refused(api.authz.PreviewTerms, missing, other.secret)
    as_generator = refused(api.authz.PreviewTerms, request, generator)
    unknown = refused(api.authz.PreviewTerms, missing, keys.admin)

    assert (not_theirs.code, not_theirs.reason) == (grpc.StatusCode.PERMISSION_DENIED, "RESOURCE_NOT_OWNED")
    assert (not_anyones.code, not_anyones.reason) == (not_theirs.code, not_theirs.reason)  # existence not revealed
    assert (as_generator.code, as_generator.reason) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_PERMITTED")
    assert (unknown.code, unknown.reason) == (grpc.StatusCode.NOT_FOUND, "CHARACTER_NOT_FOUND")
