"""What every part of the character service shares: storing characters and terms, and the
checks on their state and owner."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime

from charter.v1 import terms_pb2
from google.protobuf import timestamp_pb2
from sqlalchemy.exc import IntegrityError

from charter_server.domain.clock import Clock
from charter_server.domain.errors import AlreadyExists, FailedPrecondition, NotFound
from charter_server.domain.models import Character, CharacterState, LifecycleState, Principal, RevocationKind, Role
from charter_server.services.ownership import not_owned
from charter_server.services.readings import without_shared_readings
from charter_server.services.terms_rules import canonical
from charter_server.services.validation import Checker
from charter_server.storage.database import Database
from charter_server.storage.uow import UnitOfWork

# The grants issue plugs in here: inside the opt-out's unit of work, revoke every grant of the
# character and return how many were revoked. Until grants exist there is nothing to revoke.
RevokeGrantsHook = Callable[[UnitOfWork, Principal, str, str], int]


def revoke_no_grants(uow: UnitOfWork, principal: Principal, character_id: str, reason: str) -> int:
    """The opt-out hook before grants exist: nothing to revoke."""
    return 0


def require_character_owner(principal: Principal, character: Character | None) -> Character:
    """Rights-holder keys reach only their own characters; existence is not revealed to others."""
    if principal.role is Role.RIGHTS_HOLDER and (
        character is None or character.rights_holder_id != principal.rights_holder_id
    ):
        raise not_owned()
    if character is None:
        raise NotFound("no such character", reason="CHARACTER_NOT_FOUND")
    return character


def _stamp(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


class CharacterStore:
    """The state and the storage helpers the parts of `CharacterService` share."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        revoke_grants: RevokeGrantsHook = revoke_no_grants,
    ) -> None:
        # Changes of characters and terms announce themselves (``domain.events``, raised by the
        # repositories and published by ``storage.uow``); no method decides what to invalidate.
        self._db = db
        self._clock = clock
        self._revoke_grants = revoke_grants

    def _new_terms(
        self, uow: UnitOfWork, principal: Principal, character: Character, terms: terms_pb2.Terms
    ) -> tuple[Character, terms_pb2.Terms]:
        # Opting in (directly or by import) must not lift a staff suspension.
        self._require_not_suspended(character)
        self._check_references(uow, character.id, terms)
        now = self._clock.now()
        stored = canonical(terms)
        stored.version = character.terms_version + 1
        stored.character_id = character.id
        stored.create_time.CopyFrom(_stamp(now))
        stored.author_key_id = principal.key_id
        uow.terms.add(stored)
        if character.state is CharacterState.OPTED_OUT and character.terms_version:
            # Back after an opt-out, which offline deciders were told of (KIND_CHARACTER_WITHDRAWN).
            uow.revocations.append("", RevocationKind.CHARACTER_OPTED_IN, now, "", character_id=character.id)
        character = dataclasses.replace(
            character, state=CharacterState.OPTED_IN, terms_version=stored.version, update_time=now
        )
        uow.characters.save(character, names_changed=False)
        return character, stored

    @staticmethod
    def _check_references(uow: UnitOfWork, character_id: str, terms: terms_pb2.Terms) -> None:
        checker = Checker()
        licensees = {lid: uow.licensees.get(lid) for lid in set(terms.allowed_licensee_ids)}
        for index, lid in enumerate(terms.allowed_licensee_ids):
            if licensees[lid] is None:
                checker.add(f"terms.allowed_licensee_ids[{index}]", "no such licensee")
        found = uow.characters.get_many(list(set(terms.prohibited_co_appearance_ids)))
        for index, cid in enumerate(terms.prohibited_co_appearance_ids):
            if cid not in found:
                checker.add(f"terms.prohibited_co_appearance_ids[{index}]", "no such character")
        checker.done()

    @staticmethod
    def _require_active_holder(uow: UnitOfWork, rights_holder_id: str) -> None:
        holder = uow.rights_holders.get(rights_holder_id)
        if holder is None:
            raise NotFound("no such rights holder", reason="RIGHTS_HOLDER_NOT_FOUND")
        if holder.state is LifecycleState.ARCHIVED:
            raise FailedPrecondition("the rights holder is archived", reason="RIGHTS_HOLDER_ARCHIVED")

    @staticmethod
    def _require_changeable(character: Character) -> None:
        if character.state is CharacterState.ARCHIVED:
            raise FailedPrecondition("the character is archived", reason="CHARACTER_ARCHIVED")

    @staticmethod
    def _require_not_suspended(character: Character) -> None:
        if character.state is CharacterState.SUSPENDED:
            raise FailedPrecondition(
                "the character is suspended by staff; its terms cannot change until it is reinstated",
                reason="CHARACTER_SUSPENDED",
            )

    def _insert(self, uow: UnitOfWork, character: Character, *, external_id_known_free: bool = False) -> Character:
        character = without_shared_readings(uow, character)
        self._check_names(uow, character)
        if (
            not external_id_known_free
            and character.external_id
            and uow.characters.by_external_ids(character.rights_holder_id, [character.external_id])
        ):
            raise AlreadyExists(
                "another character of this rights holder has this external id", reason="EXTERNAL_ID_CONFLICT"
            )
        try:
            uow.characters.add(character)
        except IntegrityError as error:
            raise AlreadyExists(
                "another character of this rights holder has this external id", reason="EXTERNAL_ID_CONFLICT"
            ) from error
        return character

    def _save(self, uow: UnitOfWork, character: Character) -> Character:
        character = without_shared_readings(uow, character)
        self._check_names(uow, character)
        try:
            uow.characters.save(character)
        except IntegrityError as error:
            raise AlreadyExists(
                "another character of this rights holder has this external id", reason="EXTERNAL_ID_CONFLICT"
            ) from error
        return character

    @staticmethod
    def _check_names(uow: UnitOfWork, character: Character) -> None:
        """Refuse a name another rights holder uses unless both sides mark it ambiguous."""
        names = dict(character.names())
        for name, other_id, other_ambiguous in uow.characters.name_owners(list(names), character.rights_holder_id):
            if not (names[name] and other_ambiguous):
                raise AlreadyExists(
                    "a name of this character belongs to another rights holder's character; mark the alias "
                    "ambiguous on both sides if sharing it is intended",
                    reason="ALIAS_CONFLICT",
                    metadata={"normalized": name, "conflicting_character_id": other_id},
                )

    @staticmethod
    def _load(uow: UnitOfWork, character_id: str) -> Character:
        character = uow.characters.get(character_id)
        if character is None:
            raise NotFound("no such character", reason="CHARACTER_NOT_FOUND")
        return character
