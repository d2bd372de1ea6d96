"""Opting characters in and out, their terms versions and the terms templates."""

from __future__ import annotations

import dataclasses

import structlog
from charter.v1 import terms_pb2

from charter_server.domain.errors import FailedPrecondition, NotFound
from charter_server.domain.models import Character, CharacterState, Page, Principal, RevocationKind
from charter_server.services import pagination
from charter_server.services.character_store import CharacterStore, require_character_owner
from charter_server.services.templates import TEMPLATES, Template
from charter_server.services.terms_rules import check_terms
from charter_server.services.validation import Checker, check_id

log = structlog.get_logger(__name__)


class CharacterTerms(CharacterStore):
    """The terms part of `CharacterService`."""

    # Terms -----------------------------------------------------------------------------------

    def opt_in(
        self, principal: Principal, character_id: str, terms: terms_pb2.Terms
    ) -> tuple[Character, terms_pb2.Terms]:
        """Opt a character in with terms (version n+1)."""
        self._check_terms_request(character_id, terms)
        with self._db.uow(write=True) as uow:
            character = require_character_owner(principal, uow.characters.get(character_id, for_update=True))
            self._require_changeable(character)
            if character.state is CharacterState.OPTED_IN:
                raise FailedPrecondition(
                    "the character is already opted in; use UpdateTerms", reason="CHARACTER_ALREADY_OPTED_IN"
                )
            character, stored = self._new_terms(uow, principal, character, terms)
            uow.commit()
        log.info("character.opted_in", character_id=character_id, terms_version=stored.version)
        return character, stored

    def update_terms(self, principal: Principal, character_id: str, terms: terms_pb2.Terms) -> terms_pb2.Terms:
        """Replace the terms of an opted-in character with a new version."""
        self._check_terms_request(character_id, terms)
        with self._db.uow(write=True) as uow:
            character = require_character_owner(principal, uow.characters.get(character_id, for_update=True))
            self._require_changeable(character)
            self._require_not_suspended(character)
            if character.state is not CharacterState.OPTED_IN:
                raise FailedPrecondition("the character is not opted in; use OptIn", reason="CHARACTER_NOT_OPTED_IN")
            _, stored = self._new_terms(uow, principal, character, terms)
            uow.commit()
        log.info("terms.updated", character_id=character_id, terms_version=stored.version)
        return stored

    def opt_out(self, principal: Principal, character_id: str, reason: str) -> tuple[Character, int]:
        """Opt a character out and revoke its grants; opting out an opted-out character changes nothing."""
        checker = Checker()
        checker.resource_id("character_id", character_id, "character")
        checker.text("reason", reason, max_len=500)
        checker.done()
        with self._db.uow(write=True) as uow:
            character = require_character_owner(principal, uow.characters.get(character_id, for_update=True))
            self._require_changeable(character)
            revoked = self._revoke_grants(uow, principal, character_id, reason or "character opted out")
            now = self._clock.now()
            if character.state is CharacterState.SUSPENDED:
                was_opted_in = character.state_before_suspension is CharacterState.OPTED_IN
                # Staff suspension stays; lifting it later returns to opted out.
                character = dataclasses.replace(character, state_before_suspension=CharacterState.OPTED_OUT)
            else:
                was_opted_in = character.state is CharacterState.OPTED_IN
                character = dataclasses.replace(character, state=CharacterState.OPTED_OUT)
            if was_opted_in:
                # Offline deciders answer CHARACTER_NOT_OPTED_IN from here on, as the server does
                # (the revoked grants alone would make them say GRANT_REVOKED).
                uow.revocations.append(
                    "", RevocationKind.CHARACTER_WITHDRAWN, now, reason[:500], character_id=character_id
                )
            character = dataclasses.replace(character, update_time=now)
            uow.characters.save(character, names_changed=False)
            uow.commit()
        log.info("character.opted_out", character_id=character_id, revoked_grants=revoked)
        return character, revoked

    def get_terms(self, principal: Principal, character_id: str, version: int) -> terms_pb2.Terms:
        """One terms version (0: the current one)."""
        checker = Checker()
        checker.resource_id("character_id", character_id, "character")
        if version < 0:
            checker.add("version", "must not be negative")
        checker.done()
        with self._db.uow() as uow:
            character = require_character_owner(principal, uow.characters.get(character_id))
            wanted = version or character.terms_version
            terms = uow.terms.get(character_id, wanted) if wanted else None
        if terms is None:
            raise NotFound("no such terms version", reason="TERMS_VERSION_NOT_FOUND", metadata={"version": str(wanted)})
        return terms

    def list_terms_versions(
        self, principal: Principal, character_id: str, *, page_size: int, page_token: str
    ) -> Page[terms_pb2.Terms]:
        """Every terms version of a character, newest first."""
        check_id("character_id", character_id, "character")
        size = pagination.page_size(page_size)
        filters = f"terms|{character_id}"
        before = pagination.decode(self._db.page_token_key(), page_token, filters)
        with self._db.uow() as uow:
            require_character_owner(principal, uow.characters.get(character_id))
            items, more = uow.terms.list(character_id, before=before, limit=size)
        return Page(items, pagination.encode(self._db.page_token_key(), more, filters))

    @staticmethod
    def list_templates() -> list[Template]:
        """Every terms template."""
        return list(TEMPLATES.values())

    def _check_terms_request(self, character_id: str, terms: terms_pb2.Terms) -> None:
        checker = Checker()
        checker.resource_id("character_id", character_id, "character")
        check_terms(checker, terms, "terms", character_id=character_id)
        checker.done()
