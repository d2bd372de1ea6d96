"""Characters, their aliases and their opt-in terms: the rights holders' side of Charter."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import langcodes
import structlog
from charter.names import normalize
from charter.screen import KeywordSet
from charter.v1 import terms_pb2
from google.protobuf import timestamp_pb2
from sqlalchemy.exc import IntegrityError

from charter_server.domain import ids
from charter_server.domain.clock import Clock
from charter_server.domain.errors import AlreadyExists, DomainError, FailedPrecondition, InvalidArgument, NotFound
from charter_server.domain.models import (
    Alias,
    AliasKind,
    Character,
    CharacterState,
    LifecycleState,
    Page,
    Principal,
    RevocationKind,
    Role,
)
from charter_server.services import pagination
from charter_server.services.idempotency import create_once
from charter_server.services.ownership import not_owned, require_rights_holder
from charter_server.services.readings import (
    NameWarning,
    check_keyword_sets,
    name_warnings,
    with_readings,
    without_shared_readings,
)
from charter_server.services.templates import TEMPLATES, Template
from charter_server.services.terms_rules import canonical, check_terms, same_terms
from charter_server.services.validation import Checker, check_id
from charter_server.storage.database import Database
from charter_server.storage.uow import UnitOfWork

log = structlog.get_logger(__name__)

CHARACTER_MUTABLE = (
    "canonical_name",
    "franchise",
    "description",
    "reference_urls",
    "aliases",
    "external_id",
    "canonical_name_ambiguous",
    "keyword_sets",
)
_EXTERNAL_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")
MAX_ALIASES = 100
MAX_URLS = 20
MAX_IMPORT_ROWS = 500

# The grants issue plugs in here: inside the opt-out's unit of work, revoke every grant of the
# character and return how many were revoked. Until grants exist there is nothing to revoke.
RevokeGrantsHook = Callable[[UnitOfWork, Principal, str, str], int]


def revoke_no_grants(uow: UnitOfWork, principal: Principal, character_id: str, reason: str) -> int:
    """The opt-out hook before grants exist: nothing to revoke."""
    return 0


@dataclass(frozen=True, slots=True)
class AliasInput:
    """An alias as given by the caller."""

    value: str
    language: str
    kind: AliasKind | None = None
    ambiguous: bool = False
    derived: bool = False


@dataclass(frozen=True, slots=True)
class CharacterInput:
    """The caller-settable fields of a character."""

    rights_holder_id: str
    canonical_name: str
    franchise: str = ""
    description: str = ""
    reference_urls: tuple[str, ...] = ()
    aliases: tuple[AliasInput, ...] = ()
    external_id: str = ""
    canonical_name_ambiguous: bool = False
    keyword_sets: tuple[KeywordSet, ...] = ()


@dataclass(frozen=True, slots=True)
class RowResult:
    """The outcome of one import row."""

    index: int
    external_id: str
    outcome: str  # created, updated, unchanged, failed
    character_id: str = ""
    error_reason: str = ""
    violations: tuple[tuple[str, str], ...] = ()
    warnings: tuple[NameWarning, ...] = ()


@dataclass(frozen=True, slots=True)
class ImportRowInput:
    """One import row: the character and, optionally, terms to opt it in with."""

    character: CharacterInput
    terms: terms_pb2.Terms | None = None
    # Violations found while converting the row from the wire, reported with the row.
    conversion_errors: tuple[tuple[str, str], ...] = field(default=())


def _check_character(checker: Checker, value: CharacterInput, fields: Sequence[str], p: str) -> tuple[Alias, ...]:
    """Record invalid fields; return the aliases with their normalised keys."""
    if "canonical_name" in fields:
        checker.text(f"{p}.canonical_name", value.canonical_name, max_len=200, required=True)
        if value.canonical_name.strip() and not normalize(value.canonical_name):
            checker.add(f"{p}.canonical_name", "must contain a letter or digit")
    if "franchise" in fields:
        checker.text(f"{p}.franchise", value.franchise, max_len=200)
    if "description" in fields:
        checker.text(f"{p}.description", value.description.replace("\n", " "), max_len=2000)
    if "external_id" in fields and value.external_id and not _EXTERNAL_ID.fullmatch(value.external_id):
        checker.add(f"{p}.external_id", "must be 1-100 letters, digits, '.', '_', ':' or '-'")
    if "reference_urls" in fields:
        if len(value.reference_urls) > MAX_URLS:
            checker.add(f"{p}.reference_urls", f"must have at most {MAX_URLS} entries")
        for index, url in enumerate(value.reference_urls[:MAX_URLS]):
            parts = urlsplit(url) if len(url) <= 2000 else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or " " in url:
                checker.add(f"{p}.reference_urls[{index}]", "must be an http(s) URL of at most 2000 characters")
    aliases: list[Alias] = []
    if "aliases" in fields:
        if len(value.aliases) > MAX_ALIASES:
            checker.add(f"{p}.aliases", f"must have at most {MAX_ALIASES} entries")
        for index, alias in enumerate(value.aliases[:MAX_ALIASES]):
            f = f"{p}.aliases[{index}]"
            before = len(checker.violations)
            checker.text(f"{f}.value", alias.value, max_len=200, required=True)
            key = normalize(alias.value)
            if alias.value.strip() and not key and len(checker.violations) == before:
                checker.add(f"{f}.value", "must contain a letter or digit")
            if not alias.language or "_" in alias.language or not langcodes.tag_is_valid(alias.language):
                checker.add(f"{f}.language", "must be a BCP 47 language tag such as ja, ja-Latn or en")
            aliases.append(
                Alias(
                    value=alias.value.strip(),
                    language=alias.language,
                    kind=alias.kind or AliasKind.NICKNAME,
                    ambiguous=alias.ambiguous,
                    normalized=key,
                    derived=alias.derived,
                )
            )
    if "keyword_sets" in fields:
        check_keyword_sets(checker, value.keyword_sets, f"{p}.keyword_sets")
    return tuple(aliases)


def _require_character_owner(principal: Principal, character: Character | None) -> Character:
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


class CharacterService:
    """Characters, aliases, terms versions, templates, bulk import and alias collisions."""

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

    # Characters ------------------------------------------------------------------------------

    def create_character(self, principal: Principal, value: CharacterInput, *, request_id: str = "") -> Character:
        """Create a character, opted out (idempotent per ``request_id``)."""
        checker = Checker()
        checker.resource_id("character.rights_holder_id", value.rights_holder_id, "rights_holder")
        aliases = _check_character(checker, value, CHARACTER_MUTABLE, "character")
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
            return _require_character_owner(principal, uow.characters.get(character_id))

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
        aliases = _check_character(checker, proposed, fields, "character")
        checker.done()
        with self._db.uow(write=True) as uow:
            character = _require_character_owner(principal, uow.characters.get(character_id, for_update=True))
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
            character = _require_character_owner(principal, uow.characters.get(character_id, for_update=True))
            if character.state is CharacterState.ARCHIVED:
                return character
            now = self._clock.now()
            self._revoke_grants(uow, principal, character_id, "character archived")
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
            character = _require_character_owner(principal, uow.characters.get(character_id, for_update=True))
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
            character = _require_character_owner(principal, uow.characters.get(character_id, for_update=True))
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

    # Terms -----------------------------------------------------------------------------------

    def opt_in(
        self, principal: Principal, character_id: str, terms: terms_pb2.Terms
    ) -> tuple[Character, terms_pb2.Terms]:
        """Opt a character in with terms (version n+1)."""
        self._check_terms_request(character_id, terms)
        with self._db.uow(write=True) as uow:
            character = _require_character_owner(principal, uow.characters.get(character_id, for_update=True))
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
            character = _require_character_owner(principal, uow.characters.get(character_id, for_update=True))
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
            character = _require_character_owner(principal, uow.characters.get(character_id, for_update=True))
            self._require_changeable(character)
            revoked = self._revoke_grants(uow, principal, character_id, reason or "character opted out")
            if character.state is CharacterState.SUSPENDED:
                # Staff suspension stays; lifting it later returns to opted out.
                character = dataclasses.replace(character, state_before_suspension=CharacterState.OPTED_OUT)
            elif character.state is not CharacterState.OPTED_OUT:
                character = dataclasses.replace(character, state=CharacterState.OPTED_OUT)
            character = dataclasses.replace(character, update_time=self._clock.now())
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
            character = _require_character_owner(principal, uow.characters.get(character_id))
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
            _require_character_owner(principal, uow.characters.get(character_id))
            items, more = uow.terms.list(character_id, before=before, limit=size)
        return Page(items, pagination.encode(self._db.page_token_key(), more, filters))

    @staticmethod
    def list_templates() -> list[Template]:
        """Every terms template."""
        return list(TEMPLATES.values())

    # Import and collisions --------------------------------------------------------------------

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

    # Internals -------------------------------------------------------------------------------

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
        for path, description in row.conversion_errors:
            checker.add(path, description)
        if not external_id:
            checker.add("character.external_id", "is required in an import row")
        aliases = _check_character(checker, value, CHARACTER_MUTABLE, "character")
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
            if character.state is not CharacterState.OPTED_IN or in_force is None or not same_terms(in_force, terms):
                character, _ = self._new_terms(uow, principal, character, terms)
                changed = True
        return ("updated" if changed else "unchanged"), character

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

    def _check_terms_request(self, character_id: str, terms: terms_pb2.Terms) -> None:
        checker = Checker()
        checker.resource_id("character_id", character_id, "character")
        check_terms(checker, terms, "terms", character_id=character_id)
        checker.done()

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
