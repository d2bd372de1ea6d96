"""Bulk import of characters by external id, and the names characters of different rights
holders share."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import structlog
from charter.v1 import terms_pb2

from charter_server.domain import ids
from charter_server.domain.errors import DomainError, FailedPrecondition, InvalidArgument
from charter_server.domain.models import Alias, Character, CharacterState, Page, Principal
from charter_server.services import pagination
from charter_server.services.character_inputs import (
    CHARACTER_MUTABLE,
    MAX_ALIASES,
    MAX_IMPORT_ROWS,
    CharacterInput,
    ImportRowInput,
    RowResult,
    check_character,
)
from charter_server.services.character_store import CharacterStore
from charter_server.services.ownership import require_rights_holder
from charter_server.services.readings import name_warnings, with_readings
from charter_server.services.terms_rules import check_terms, same_terms
from charter_server.services.validation import Checker
from charter_server.storage.uow import UnitOfWork

log = structlog.get_logger(__name__)


class CharacterImport(CharacterStore):
    """The import and collisions part of `CharacterService`."""

    def import_characters(
        self, principal: Principal, rights_holder_id: str, rows: Sequence[ImportRowInput]
    ) -> list[RowResult]:
        """Create, update or leave alone each row by external id; a failed row writes nothing."""
        checker = Checker()
        checker.resource_id("rights_holder_id", rights_holder_id, "rights_holder")
        if not rows:
            checker.add("rows", "must have at least one row")
        elif len(rows) > MAX_IMPORT_ROWS:
            checker.add("rows", f"must have at most {MAX_IMPORT_ROWS} rows per call")
        checker.done()
        require_rights_holder(principal, rights_holder_id)
        results: list[RowResult] = []
        with self._db.uow(write=True) as uow:
            self._require_active_holder(uow, rights_holder_id)
            external_ids = [row.character.external_id for row in rows if row.character.external_id]
            existing = uow.characters.by_external_ids(rights_holder_id, external_ids, for_update=True)
            for index, row in enumerate(rows):
                results.append(self._import_row(uow, principal, rights_holder_id, index, row, existing))
            uow.commit()
        counts = {o: sum(r.outcome == o for r in results) for o in ("created", "updated", "unchanged", "failed")}
        log.info("catalog.imported", rights_holder_id=rights_holder_id, rows=len(rows), **counts)
        return results

    def list_alias_collisions(
        self, principal: Principal, *, page_size: int, page_token: str
    ) -> Page[tuple[str, list[str], list[str], str]]:
        """Normalised names shared by characters of different rights holders (kind ``same_name``),
        then, under each key, names that the screen's look-alike pass would merge into it
        (``look_alike``); by key and kind."""
        size = pagination.page_size(page_size)
        after, _, after_kind = pagination.decode_text(self._db.page_token_key(), page_token, "collisions").partition(
            "\n"
        )
        with self._db.uow() as uow:
            shared, shared_more = uow.characters.collisions(after=after, limit=size)
            merged, merged_more = uow.characters.look_alike_merges(after=after, inclusive=not after_kind, limit=size)
        items = sorted(
            [(name, c, h, "same_name") for name, c, h in shared]
            + [(name, c, h, "look_alike") for name, c, h in merged],
            key=lambda item: (item[0], item[3] != "same_name"),
        )
        page = items[:size]
        more = len(items) > size or shared_more is not None or merged_more is not None
        token = f"{page[-1][0]}\n{'' if page[-1][3] == 'same_name' else 'look_alike'}" if more else None
        return Page(page, pagination.encode_text(self._db.page_token_key(), token, "collisions"))

    def _import_row(
        self,
        uow: UnitOfWork,
        principal: Principal,
        rights_holder_id: str,
        index: int,
        row: ImportRowInput,
        existing: dict[str, Character],
    ) -> RowResult:
        external_id = row.character.external_id
        value = dataclasses.replace(row.character, rights_holder_id=rights_holder_id)
        checker = Checker()
        if not external_id:
            checker.add("character.external_id", "is required in an import row")
        aliases = check_character(checker, value, CHARACTER_MUTABLE, "character")
        current = existing.get(external_id)
        if row.terms is not None:
            check_terms(checker, row.terms, "terms", character_id=current.id if current else "")
        if checker.violations:
            return RowResult(
                index,
                external_id,
                "failed",
                error_reason="INVALID_FIELD",
                violations=tuple((v.field, v.description) for v in checker.violations),
            )
        try:
            with uow.savepoint():
                outcome, character = self._upsert(uow, principal, value, aliases, row.terms, current)
        except InvalidArgument as error:
            return RowResult(
                index,
                external_id,
                "failed",
                error_reason=error.reason,
                violations=tuple((v.field, v.description) for v in error.violations),
            )
        except DomainError as error:
            return RowResult(index, external_id, "failed", error_reason=error.reason)
        existing[external_id] = character
        return RowResult(
            index, external_id, outcome, character_id=character.id, warnings=tuple(name_warnings(character))
        )

    def _upsert(
        self,
        uow: UnitOfWork,
        principal: Principal,
        value: CharacterInput,
        aliases: tuple[Alias, ...],
        terms: terms_pb2.Terms | None,
        current: Character | None,
    ) -> tuple[str, Character]:
        now = self._clock.now()
        fields: dict[str, Any] = {
            "canonical_name": value.canonical_name.strip(),
            "franchise": value.franchise.strip(),
            "description": value.description.strip(),
            "reference_urls": value.reference_urls,
            "canonical_name_ambiguous": value.canonical_name_ambiguous,
            "keyword_sets": value.keyword_sets,
        }
        before = set() if current is None else {current.canonical_name, *(a.value for a in current.aliases)}
        if current is not None:
            # An import file lists the names its rights holder wrote: derived readings are kept.
            keys = {a.normalized for a in aliases}
            aliases += tuple(a for a in current.aliases if a.derived and a.normalized not in keys)
        fields["aliases"] = with_readings(fields["canonical_name"], aliases, before, MAX_ALIASES)
        if current is None:
            character = Character(
                id=ids.new_id("character"),
                rights_holder_id=value.rights_holder_id,
                external_id=value.external_id,
                state=CharacterState.OPTED_OUT,
                terms_version=0,
                create_time=now,
                update_time=now,
                archive_time=None,
                **fields,
            )
            # The batch looked every external id up already; the unique constraint backs that up.
            character = self._insert(uow, character, external_id_known_free=True)
            if terms is not None:
                character, _ = self._new_terms(uow, principal, character, terms)
            return "created", character
        self._require_changeable(current)
        character = current
        changed = any(getattr(current, name) != new for name, new in fields.items())
        if changed:
            character = dataclasses.replace(current, **fields, update_time=now)
            character = self._save(uow, character)
        if terms is not None:
            in_force = uow.terms.get(current.id, current.terms_version) if current.terms_version else None
            if character.state is CharacterState.OPTED_OUT and in_force is not None:
                # Opted out after being opted in: the rights holder's decision (its grants were
                # revoked), which a re-run of an old file must not undo. The terms it was opted out
                # from are left as they are; other terms are refused, as UpdateTerms refuses them.
                if same_terms(in_force, terms):
                    return ("updated" if changed else "unchanged"), character
                raise FailedPrecondition(
                    "the character was opted out; opt it in again with OptIn", reason="CHARACTER_NOT_OPTED_IN"
                )
            if character.state is not CharacterState.OPTED_IN or in_force is None or not same_terms(in_force, terms):
                character, _ = self._new_terms(uow, principal, character, terms)
                changed = True
        return ("updated" if changed else "unchanged"), character
