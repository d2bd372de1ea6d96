"""Characters, their aliases and their opt-in terms: the rights holders' side of Charter.

`CharacterService` is one service made of parts, one module each: the characters themselves
(here), their terms (``character_terms``), bulk import and alias collisions
(``character_import``), on what they share (``character_store``); the callers' inputs and
their checks are in ``character_inputs``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from charter.names import normalize

from charter_server.domain import ids
from charter_server.domain.errors import FailedPrecondition
from charter_server.domain.models import Character, CharacterState, Page, Principal, RevocationKind, Role
from charter_server.services import pagination
from charter_server.services.character_import import CharacterImport
from charter_server.services.character_inputs import (
    CHARACTER_MUTABLE,
    MAX_ALIASES,
    MAX_IMPORT_ROWS,
    MAX_URLS,
    AliasInput,
    CharacterInput,
    ImportRowInput,
    RowResult,
    check_character,
)
from charter_server.services.character_store import RevokeGrantsHook, require_character_owner, revoke_no_grants
from charter_server.services.character_terms import CharacterTerms
from charter_server.services.idempotency import create_once
from charter_server.services.ownership import require_rights_holder
from charter_server.services.readings import with_readings
from charter_server.services.validation import Checker, check_id
from charter_server.storage.uow import UnitOfWork

__all__ = [
    "CHARACTER_MUTABLE",
    "MAX_ALIASES",
    "MAX_IMPORT_ROWS",
    "MAX_URLS",
    "AliasInput",
    "CharacterInput",
    "CharacterService",
    "ImportRowInput",
    "RevokeGrantsHook",
    "RowResult",
    "revoke_no_grants",
]

log = structlog.get_logger(__name__)


class CharacterService(CharacterTerms, CharacterImport):
    """Characters, aliases, terms versions, templates, bulk import and alias collisions."""

    def create_character(self, principal: Principal, value: CharacterInput, *, request_id: str = "") -> Character:
        """Create a character, opted out (idempotent per ``request_id``)."""
        checker = Checker()
        checker.resource_id("character.rights_holder_id", value.rights_holder_id, "rights_holder")
        aliases = check_character(checker, value, CHARACTER_MUTABLE, "character")
        checker.request_id(request_id)
        checker.done()
        require_rights_holder(principal, value.rights_holder_id)

        def create(uow: UnitOfWork) -> str:
            self._require_active_holder(uow, value.rights_holder_id)
            now = self._clock.now()
            character = Character(
                id=ids.new_id("character"),
                rights_holder_id=value.rights_holder_id,
                external_id=value.external_id,
                canonical_name=value.canonical_name.strip(),
                franchise=value.franchise.strip(),
                description=value.description.strip(),
                reference_urls=value.reference_urls,
                aliases=with_readings(value.canonical_name.strip(), aliases, set(), MAX_ALIASES),
                state=CharacterState.OPTED_OUT,
                terms_version=0,
                create_time=now,
                update_time=now,
                archive_time=None,
                canonical_name_ambiguous=value.canonical_name_ambiguous,
                keyword_sets=value.keyword_sets,
            )
            self._insert(uow, character)
            return character.id

        character, created = create_once(
            self._db, self._clock, principal, "CreateCharacter", request_id, value, create, self._load
        )
        if created:
            log.info("character.created", character_id=character.id, rights_holder_id=character.rights_holder_id)
        return character

    def get_character(self, principal: Principal, character_id: str) -> Character:
        """One character."""
        check_id("id", character_id, "character")
        with self._db.uow() as uow:
            return require_character_owner(principal, uow.characters.get(character_id))

    def list_characters(
        self,
        principal: Principal,
        *,
        rights_holder_id: str,
        state: CharacterState | None,
        franchise: str,
        query: str,
        page_size: int,
        page_token: str,
    ) -> Page[Character]:
        """A page of characters; a rights-holder key sees only its own."""
        checker = Checker()
        checker.resource_id("rights_holder_id", rights_holder_id, "rights_holder", required=False)
        checker.text("franchise", franchise, max_len=200)
        checker.text("query", query, max_len=200)
        checker.done()
        if principal.role is Role.RIGHTS_HOLDER:
            if rights_holder_id and rights_holder_id != principal.rights_holder_id:
                require_rights_holder(principal, rights_holder_id)
            rights_holder_id = principal.rights_holder_id or ""
        size = pagination.page_size(page_size)
        states = [state] if state else [s for s in CharacterState if s is not CharacterState.ARCHIVED]
        key = normalize(query) if query else ""
        filters = f"chr|{rights_holder_id}|{state}|{franchise.casefold()}|{key}"
        after = pagination.decode(self._db.page_token_key(), page_token, filters)
        with self._db.uow() as uow:
            items, more = uow.characters.list(
                rights_holder_id=rights_holder_id or None,
                states=states,
                franchise=franchise.strip(),
                query=key,
                after=after,
                limit=size,
            )
        return Page(items, pagination.encode(self._db.page_token_key(), more, filters))

    def update_character(
        self, principal: Principal, character_id: str, values: Mapping[str, Any], paths: Sequence[str]
    ) -> Character:
        """Change the fields named in ``paths`` (or every non-empty one when ``paths`` is empty)."""
        checker = Checker()
        checker.resource_id("character.id", character_id, "character")
        fields = self._update_fields(checker, values, paths)
        proposed = CharacterInput(
            rights_holder_id="",
            **{name: values.get(name, CharacterInput.__dataclass_fields__[name].default) for name in CHARACTER_MUTABLE},
        )
        aliases = check_character(checker, proposed, fields, "character")
        checker.done()
        with self._db.uow(write=True) as uow:
            character = require_character_owner(principal, uow.characters.get(character_id, for_update=True))
            self._require_changeable(character)
            changes: dict[str, Any] = {}
            for name in fields:
                changes[name] = aliases if name == "aliases" else getattr(proposed, name)
                if isinstance(changes[name], str):
                    changes[name] = changes[name].strip()
            before = {character.canonical_name, *(a.value for a in character.aliases)}
            character = dataclasses.replace(character, **changes, update_time=self._clock.now())
            if "aliases" in fields or "canonical_name" in fields:
                # Readings of the names this update adds (not of those it keeps or removes).
                aliases = with_readings(character.canonical_name, character.aliases, before, MAX_ALIASES)
                character = dataclasses.replace(character, aliases=aliases)
            character = self._save(uow, character)
            uow.commit()
        log.info("character.updated", character_id=character_id, fields=list(fields))
        return character

    def archive_character(self, principal: Principal, character_id: str) -> Character:
        """Archive a character (its grants are revoked as on opt-out); idempotent."""
        check_id("id", character_id, "character")
        with self._db.uow(write=True) as uow:
            character = require_character_owner(principal, uow.characters.get(character_id, for_update=True))
            if character.state is CharacterState.ARCHIVED:
                return character
            now = self._clock.now()
            self._revoke_grants(uow, principal, character_id, "character archived")
            uow.revocations.append("", RevocationKind.CHARACTER_ARCHIVED, now, "", character_id=character_id)
            character = dataclasses.replace(character, state=CharacterState.ARCHIVED, update_time=now, archive_time=now)
            uow.characters.save(character, names_changed=False)
            uow.commit()
        log.info("character.archived", character_id=character_id)
        return character

    def suspend_character(self, principal: Principal, character_id: str, reason: str) -> Character:
        """Suspend a character (staff): treated as opted out until reinstated."""
        checker = Checker()
        checker.resource_id("id", character_id, "character")
        checker.text("reason", reason, max_len=500, required=True)
        checker.done()
        with self._db.uow(write=True) as uow:
            character = require_character_owner(principal, uow.characters.get(character_id, for_update=True))
            self._require_changeable(character)
            if character.state is CharacterState.SUSPENDED:
                return character
            character = dataclasses.replace(
                character,
                state=CharacterState.SUSPENDED,
                state_before_suspension=character.state,
                update_time=self._clock.now(),
            )
            uow.characters.save(character, names_changed=False)
            # Into the revocation log too, so that offline authorizers stop using its grants.
            uow.revocations.append(
                "", RevocationKind.CHARACTER_SUSPENDED, character.update_time, reason, character_id=character_id
            )
            uow.commit()
        log.info("character.suspended", character_id=character_id, reason=reason)
        return character

    def reinstate_character(self, principal: Principal, character_id: str) -> Character:
        """Lift a suspension: back to opted in when terms are in force, else opted out."""
        check_id("id", character_id, "character")
        with self._db.uow(write=True) as uow:
            character = require_character_owner(principal, uow.characters.get(character_id, for_update=True))
            if character.state is not CharacterState.SUSPENDED:
                raise FailedPrecondition("the character is not suspended", reason="CHARACTER_NOT_SUSPENDED")
            back = character.state_before_suspension or CharacterState.OPTED_OUT
            character = dataclasses.replace(
                character, state=back, state_before_suspension=None, update_time=self._clock.now()
            )
            uow.characters.save(character, names_changed=False)
            uow.revocations.append(
                "", RevocationKind.CHARACTER_REINSTATED, character.update_time, "", character_id=character_id
            )
            uow.commit()
        log.info("character.reinstated", character_id=character_id, state=character.state.value)
        return character

    def _update_fields(self, checker: Checker, values: Mapping[str, Any], paths: Sequence[str]) -> list[str]:
        if not paths:
            chosen = [name for name in CHARACTER_MUTABLE if values.get(name)]
        else:
            chosen = []
            for path in paths:
                if path not in CHARACTER_MUTABLE:
                    checker.add(
                        "update_mask", f"unknown or immutable field {path!r}; allowed: {', '.join(CHARACTER_MUTABLE)}"
                    )
                elif path not in chosen:
                    chosen.append(path)
        if not chosen and not checker.violations:
            checker.add("update_mask", "names no field to update")
        return chosen
