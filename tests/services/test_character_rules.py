"""The character and terms rules, on the character service itself: the states a character moves
through, who may touch it, and bulk import by external id. No gRPC; milliseconds each."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from charter_server.domain.errors import AlreadyExists, DomainError, FailedPrecondition, NotFound, PermissionDenied
from charter_server.domain.models import AliasKind, CharacterState, Principal, Role
from charter_server.services.catalog import CatalogService, RightsHolderInput
from charter_server.services.characters import AliasInput, CharacterInput, CharacterService, ImportRowInput
from charter_server.services.templates import TEMPLATES
from charter_server.services.validation import Unreadable
from charter_server.storage.database import Database

from .conftest import ADMIN, Parties, StillClock

TERMS = TEMPLATES["fan-noncommercial"].terms
NOBODY = "chr_" + "f" * 32


@pytest.fixture
def characters(db: Database, clock: StillClock) -> CharacterService:
    return CharacterService(db, clock)


def reason(call: Callable[[], object]) -> tuple[type[DomainError], str]:
    """The class and reason of the domain error ``call`` raises."""
    with pytest.raises(DomainError) as raised:
        call()
    return type(raised.value), raised.value.reason


def miku(parties: Parties, **changes: object) -> CharacterInput:
    fields: dict[str, object] = {
        "rights_holder_id": parties.rights_holder_id,
        "canonical_name": "Hatsune Miku",
        "aliases": (AliasInput("ミク", "ja", AliasKind.SHORT_NAME),),
        "external_id": "miku",
    }
    return CharacterInput(**{**fields, **changes})  # type: ignore[arg-type]


def test_terms_versions_follow_opt_in_and_updates(characters: CharacterService, parties: Parties) -> None:
    created = characters.create_character(parties.holder, miku(parties))
    opted, first = characters.opt_in(parties.holder, created.id, TERMS)
    again = reason(lambda: characters.opt_in(parties.holder, created.id, TERMS))
    second = characters.update_terms(parties.holder, created.id, TERMS)
    versions = characters.list_terms_versions(parties.holder, created.id, page_size=10, page_token="")
    out, revoked = characters.opt_out(parties.holder, created.id, "")
    not_in = reason(lambda: characters.update_terms(parties.holder, created.id, TERMS))

    assert created.state is CharacterState.OPTED_OUT
    assert (opted.state, first.version, second.version) == (CharacterState.OPTED_IN, 1, 2)
    assert again == (FailedPrecondition, "CHARACTER_ALREADY_OPTED_IN")
    assert [t.version for t in versions.items] == [2, 1]
    assert characters.get_terms(parties.holder, created.id, 0).version == 2
    assert (out.state, revoked) == (CharacterState.OPTED_OUT, 0)
    assert not_in == (FailedPrecondition, "CHARACTER_NOT_OPTED_IN")
    assert reason(lambda: characters.get_terms(parties.holder, created.id, 3)) == (NotFound, "TERMS_VERSION_NOT_FOUND")


def test_a_suspension_holds_until_staff_lift_it(characters: CharacterService, parties: Parties) -> None:
    created = characters.create_character(parties.holder, miku(parties))
    characters.opt_in(parties.holder, created.id, TERMS)
    suspended = characters.suspend_character(ADMIN, created.id, "under review")
    refused = reason(lambda: characters.update_terms(parties.holder, created.id, TERMS))
    still, _ = characters.opt_out(parties.holder, created.id, "")
    lifted = characters.reinstate_character(ADMIN, created.id)
    twice = reason(lambda: characters.reinstate_character(ADMIN, created.id))

    assert suspended.state is CharacterState.SUSPENDED
    assert refused == (FailedPrecondition, "CHARACTER_SUSPENDED")
    assert still.state is CharacterState.SUSPENDED  # opting out does not lift it ...
    assert lifted.state is CharacterState.OPTED_OUT  # ... but it is what the suspension returns to
    assert twice == (FailedPrecondition, "CHARACTER_NOT_SUSPENDED")


def test_an_archived_character_stays_archived(characters: CharacterService, parties: Parties) -> None:
    created = characters.create_character(parties.holder, miku(parties))
    archived = characters.archive_character(parties.holder, created.id)
    again = characters.archive_character(parties.holder, created.id)

    assert (archived.state, again.state) == (CharacterState.ARCHIVED, CharacterState.ARCHIVED)
    assert reason(lambda: characters.opt_in(parties.holder, created.id, TERMS)) == (
        FailedPrecondition,
        "CHARACTER_ARCHIVED",
    )
    assert reason(lambda: characters.update_character(parties.holder, created.id, {"franchise": "x"}, [])) == (
        FailedPrecondition,
        "CHARACTER_ARCHIVED",
    )


def test_another_rights_holder_learns_nothing(characters: CharacterService, parties: Parties) -> None:
    created = characters.create_character(parties.holder, miku(parties))
    stranger = Principal("key_stranger", Role.RIGHTS_HOLDER, rights_holder_id="rh_" + "9" * 32)

    # The same answer for a character that exists and one that does not: ownership comes first.
    assert reason(lambda: characters.get_character(stranger, created.id)) == (PermissionDenied, "RESOURCE_NOT_OWNED")
    assert reason(lambda: characters.get_character(stranger, NOBODY)) == (PermissionDenied, "RESOURCE_NOT_OWNED")
    assert reason(lambda: characters.get_character(ADMIN, NOBODY)) == (NotFound, "CHARACTER_NOT_FOUND")
    assert reason(lambda: characters.opt_in(stranger, created.id, TERMS)) == (PermissionDenied, "RESOURCE_NOT_OWNED")


def test_a_name_of_another_rights_holder_needs_both_sides_to_mark_it_ambiguous(
    characters: CharacterService, parties: Parties, db: Database, clock: StillClock
) -> None:
    other = CatalogService(db, clock).create_rights_holder(ADMIN, RightsHolderInput("Other", "o@other.example"))
    characters.create_character(parties.holder, miku(parties))
    taken = reason(
        lambda: characters.create_character(ADMIN, miku(parties, rights_holder_id=other.id, external_id="m2"))
    )

    assert taken == (AlreadyExists, "ALIAS_CONFLICT")


def test_import_creates_updates_and_leaves_alone_by_external_id(characters: CharacterService, parties: Parties) -> None:
    rows = [
        ImportRowInput(miku(parties), TERMS),
        ImportRowInput(miku(parties, canonical_name="Kagamine Rin", external_id="rin", aliases=())),
    ]
    first = characters.import_characters(parties.holder, parties.rights_holder_id, rows)
    same = characters.import_characters(parties.holder, parties.rights_holder_id, rows)
    changed = characters.import_characters(
        parties.holder,
        parties.rights_holder_id,
        [
            ImportRowInput(miku(parties, franchise="Piapro")),
            ImportRowInput(
                miku(
                    parties,
                    external_id="len",
                    canonical_name="Kagamine Len",
                    aliases=(AliasInput("Len", "en", Unreadable("unknown alias kind 9")),),
                )
            ),
        ],
    )

    assert [(r.outcome, r.external_id) for r in first] == [("created", "miku"), ("created", "rin")]
    assert [r.outcome for r in same] == ["unchanged", "unchanged"]
    assert [(r.outcome, r.character_id) for r in changed[:1]] == [("updated", first[0].character_id)]
    assert (changed[1].outcome, changed[1].error_reason) == ("failed", "INVALID_FIELD")
    assert [field for field, _ in changed[1].violations] == ["character.aliases[0].kind"]
    assert characters.get_character(parties.holder, first[0].character_id).state is CharacterState.OPTED_IN
