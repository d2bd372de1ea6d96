"""Characters and the index of their normalised names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from charter.screen import KeywordSet, ScreenCharacter, ScreenName
from sqlalchemy import (
    and_,
    case,
    delete,
    func,
    select,
)
from sqlalchemy.orm import Session, aliased

from charter_server.domain import events as ev
from charter_server.domain.events import EventSink
from charter_server.domain.models import (
    Alias,
    AliasKind,
    Character,
    CharacterState,
    RegistryEntry,
    RevocationKind,
)
from charter_server.storage.dialect import Dialect
from charter_server.storage.repositories._query import escape_like, keyset_page
from charter_server.storage.repositories.revocations import RevocationLogRepository
from charter_server.storage.tables import (
    CharacterNameRow,
    CharacterRow,
)

# Shared names: (normalised name, character ids, rights holder ids), and the name to continue after.


CollisionPage = tuple[list[tuple[str, list[str], list[str]]], str | None]


def _character(row: CharacterRow) -> Character:
    return Character(
        id=row.id,
        rights_holder_id=row.rights_holder_id,
        external_id=row.external_id or "",
        canonical_name=row.canonical_name,
        franchise=row.franchise,
        description=row.description,
        reference_urls=tuple(row.reference_urls),
        aliases=tuple(
            Alias(
                value=str(a["value"]),
                language=str(a["language"]),
                kind=AliasKind(str(a["kind"])),
                ambiguous=bool(a["ambiguous"]),
                normalized=str(a["normalized"]),
                derived=bool(a.get("derived", False)),
            )
            for a in row.aliases
        ),
        canonical_name_ambiguous=bool(row.canonical_name_ambiguous),
        keyword_sets=tuple(_keyword_set(k) for k in row.keyword_sets or ()),
        state=CharacterState(row.state),
        terms_version=row.terms_version,
        create_time=row.create_time,
        update_time=row.update_time,
        archive_time=row.archive_time,
        state_before_suspension=CharacterState(row.state_before_suspension) if row.state_before_suspension else None,
    )


def _alias_json(alias: Alias) -> dict[str, object]:
    return {
        "value": alias.value,
        "language": alias.language,
        "kind": alias.kind.value,
        "ambiguous": alias.ambiguous,
        "normalized": alias.normalized,
        "derived": alias.derived,
    }


def _screen_character(cid: Any, name: Any, ambiguous: Any, aliases: Any, keyword_sets: Any) -> ScreenCharacter:
    """What the screen needs of a character, from its row's columns."""
    return ScreenCharacter(
        str(cid),
        (
            ScreenName(str(name), bool(ambiguous)),
            *(ScreenName(str(a["value"]), bool(a["ambiguous"]), bool(a.get("derived", False))) for a in aliases),
        ),
        tuple(_keyword_set(k) for k in keyword_sets or ()),
    )


def _keyword_set(value: dict[str, Any]) -> KeywordSet:
    return KeywordSet(str(value["name"]), tuple(tuple(str(v) for v in k) for k in value["keywords"]))


def _keyword_set_json(value: KeywordSet) -> dict[str, object]:
    return {"name": value.name, "keywords": [list(k) for k in value.keywords]}


def _registry_entry(row: CharacterRow) -> tuple[object, ...]:
    """What a registry snapshot holds of a character (names, ambiguity, readings, keyword sets,
    state), to tell whether a write changed it."""
    aliases = [(a["value"], bool(a["ambiguous"]), bool(a.get("derived", False))) for a in row.aliases]
    return (row.canonical_name, bool(row.canonical_name_ambiguous), aliases, list(row.keyword_sets or ()), row.state)


class CharacterRepository:
    """Characters and the index of their normalised names."""

    def __init__(self, session: Session, dialect: Dialect, events: EventSink) -> None:
        self._session = session
        self._dialect = dialect
        self._events = events

    def add(self, character: Character) -> None:
        """Insert a new character and its names."""
        row = CharacterRow(id=character.id, rights_holder_id=character.rights_holder_id)
        self._write(row, character)
        self._session.add(row)
        self._session.flush()
        self._index_names(character)
        self._events.raise_event(ev.CharacterCreated(character.id, character.rights_holder_id))
        self._registry_moved(character)

    def save(self, character: Character, *, names_changed: bool = True) -> None:
        """Write every mutable field of an existing character; re-index its names if they may have changed."""
        row = self._row(character.id)
        if row is None:
            raise LookupError(character.id)
        state_before = CharacterState(row.state)
        suspension_before = row.state_before_suspension
        names_before = (row.canonical_name, list(row.aliases))
        registry_before = _registry_entry(row)
        self._write(row, character)
        self._session.flush()
        # One event per kind of change; a write that changes neither state nor names (details, the
        # terms version) still announces itself: the view reloads whatever it cached of the character.
        changes: list[ev.DomainEvent] = []
        if state_before is not character.state or suspension_before != row.state_before_suspension:
            changes.append(
                ev.CharacterStateChanged(character.id, character.rights_holder_id, state_before, character.state)
            )
        if names_before != (row.canonical_name, row.aliases):
            changes.append(ev.AliasesChanged(character.id, character.rights_holder_id))
        for change in changes or [ev.CharacterChanged(character.id, character.rights_holder_id)]:
            self._events.raise_event(change)
        if _registry_entry(row) != registry_before:
            self._registry_moved(character)
        if names_changed:
            self._session.execute(delete(CharacterNameRow).where(CharacterNameRow.character_id == character.id))
            self._index_names(character)

    def get(self, character_id: str, *, for_update: bool = False) -> Character | None:
        """The character with this id, or None; ``for_update`` locks its row until the transaction
        ends, so concurrent changes of one character run one after the other (a no-op on SQLite,
        whose write transactions are serialised anyway)."""
        row = self._row(character_id, for_update=for_update)
        return None if row is None else _character(row)

    def get_many(self, character_ids: Sequence[str]) -> dict[str, Character]:
        """The characters with these ids that exist, by id."""
        if not character_ids:
            return {}
        rows = self._session.scalars(select(CharacterRow).where(CharacterRow.id.in_(list(character_ids))))
        return {row.id: _character(row) for row in rows}

    def by_external_ids(
        self, rights_holder_id: str, external_ids: Sequence[str], *, for_update: bool = False
    ) -> dict[str, Character]:
        """This rights holder's characters with these external ids, by external id (locked as in ``get``)."""
        if not external_ids:
            return {}
        stmt = select(CharacterRow).where(
            CharacterRow.rights_holder_id == rights_holder_id, CharacterRow.external_id.in_(list(external_ids))
        )
        rows = self._session.scalars(self._dialect.for_update(stmt) if for_update else stmt)
        return {str(row.external_id): _character(row) for row in rows}

    def name_owners(self, names: Sequence[str], exclude_rights_holder_id: str) -> list[tuple[str, str, bool]]:
        """(normalised name, character id, ambiguous) of other rights holders' live characters using ``names``."""
        if not names:
            return []
        stmt = (
            select(CharacterNameRow.normalized, CharacterNameRow.character_id, CharacterNameRow.ambiguous)
            .join(CharacterRow, CharacterRow.id == CharacterNameRow.character_id)
            .where(
                CharacterNameRow.normalized.in_(list(names)),
                CharacterNameRow.rights_holder_id != exclude_rights_holder_id,
                CharacterRow.state != CharacterState.ARCHIVED.value,
            )
            .order_by(CharacterNameRow.normalized, CharacterNameRow.character_id)
        )
        return [(str(n), str(c), bool(a)) for n, c, a in self._session.execute(stmt)]

    def list(
        self,
        *,
        rights_holder_id: str | None,
        states: Sequence[CharacterState],
        franchise: str,
        query: str,
        after: int,
        limit: int,
    ) -> tuple[list[Character], int | None]:
        """One page of characters in creation order."""
        stmt = select(CharacterRow).where(CharacterRow.state.in_([s.value for s in states]))
        if rights_holder_id is not None:
            stmt = stmt.where(CharacterRow.rights_holder_id == rights_holder_id)
        if franchise:
            stmt = stmt.where(CharacterRow.franchise_key == franchise.casefold())
        if query:
            pattern = f"%{escape_like(query)}%"
            stmt = stmt.where(
                CharacterRow.id.in_(
                    select(CharacterNameRow.character_id).where(CharacterNameRow.normalized.like(pattern, escape="\\"))
                )
            )
        rows, more = keyset_page(self._session, stmt, CharacterRow.seq, after, limit)
        return [_character(r) for r in rows], more

    def collisions(self, *, after: str, limit: int) -> CollisionPage:
        """Normalised names shared by live characters of several rights holders, after ``after``."""
        shared = (
            select(CharacterNameRow.normalized)
            .join(CharacterRow, CharacterRow.id == CharacterNameRow.character_id)
            .where(CharacterRow.state != CharacterState.ARCHIVED.value, CharacterNameRow.normalized > after)
            .group_by(CharacterNameRow.normalized)
            .having(func.count(func.distinct(CharacterNameRow.rights_holder_id)) > 1)
            .order_by(CharacterNameRow.normalized)
            .limit(limit + 1)
        )
        names = [str(n) for n in self._session.scalars(shared)]
        more = names[limit - 1] if len(names) > limit else None
        names = names[:limit]
        rows = self._session.execute(
            select(CharacterNameRow.normalized, CharacterNameRow.character_id, CharacterNameRow.rights_holder_id)
            .join(CharacterRow, CharacterRow.id == CharacterNameRow.character_id)
            .where(CharacterNameRow.normalized.in_(names), CharacterRow.state != CharacterState.ARCHIVED.value)
            .order_by(CharacterNameRow.normalized, CharacterNameRow.character_id)
        )
        grouped: dict[str, tuple[list[str], list[str]]] = {name: ([], []) for name in names}
        for name, character_id, holder_id in rows:
            characters, holders = grouped[str(name)]
            characters.append(str(character_id))
            if holder_id not in holders:
                holders.append(str(holder_id))
        return [(name, *grouped[name]) for name in names], more

    def look_alike_merges(self, *, after: str, inclusive: bool, limit: int) -> CollisionPage:
        """Names that the screen's look-alike pass would turn into another character's name (by the
        key they turn into, from ``after``), so the pass is not applied to them; as ``collisions``."""
        name, other = CharacterNameRow, aliased(CharacterNameRow)
        rows = self._session.execute(
            select(name.skeleton, name.character_id, name.rights_holder_id, other.character_id, other.rights_holder_id)
            .join(other, and_(other.normalized == name.skeleton, other.character_id != name.character_id))
            .where(name.skeleton >= after if inclusive else name.skeleton > after)
            .order_by(name.skeleton, name.character_id, other.character_id)
        )
        grouped: dict[str, tuple[list[str], list[str]]] = {}
        for merged, *pairs in rows:
            if str(merged) not in grouped and len(grouped) > limit:
                break
            characters, holders = grouped.setdefault(str(merged), ([], []))
            for character_id, holder_id in (pairs[:2], pairs[2:]):
                if character_id not in characters:
                    characters.append(str(character_id))
                if holder_id not in holders:
                    holders.append(str(holder_id))
        names = list(grouped)
        more = names[limit - 1] if len(names) > limit else None
        return [(n, *grouped[n]) for n in names[:limit]], more

    def all_names(self) -> Sequence[ScreenCharacter]:
        """The names (canonical first) and keyword sets of every character, oldest first: archived
        ones too, because a prompt naming an archived character must still be caught and denied."""
        rows = self._session.execute(
            select(
                CharacterRow.id,
                CharacterRow.canonical_name,
                CharacterRow.canonical_name_ambiguous,
                CharacterRow.aliases,
                CharacterRow.keyword_sets,
            ).order_by(CharacterRow.seq)
        )
        return [
            _screen_character(cid, name, ambiguous, aliases, keyword_sets)
            for cid, name, ambiguous, aliases, keyword_sets in rows
        ]

    def registry_page(
        self, after: int, limit: int, character_ids: Sequence[str] | None = None
    ) -> tuple[Sequence[tuple[int, RegistryEntry]], bool]:
        """One page of the screening registry in creation order, after the character whose
        ``seq`` is ``after``: every character, or those of ``character_ids``; each with its
        ``seq``, and whether more follow."""
        stmt = select(
            CharacterRow.seq,
            CharacterRow.id,
            CharacterRow.rights_holder_id,
            CharacterRow.state,
            CharacterRow.canonical_name,
            CharacterRow.canonical_name_ambiguous,
            CharacterRow.aliases,
            CharacterRow.keyword_sets,
        ).where(CharacterRow.seq > after)
        if character_ids is not None:
            stmt = stmt.where(CharacterRow.id.in_(list(character_ids)))
        rows = [*self._session.execute(stmt.order_by(CharacterRow.seq).limit(limit + 1))]
        entries = [
            (
                int(seq),
                RegistryEntry(
                    _screen_character(cid, name, ambiguous, aliases, keyword_sets),
                    str(holder),
                    CharacterState(state),
                ),
            )
            for seq, cid, holder, state, name, ambiguous, aliases, keyword_sets in rows[:limit]
        ]
        return entries, len(rows) > limit

    def names_marker(self) -> tuple[object, ...]:
        """A cheap marker that moves whenever ``all_names`` may have changed: how many characters
        there are and how many are archived, and the latest and the sum of their update times
        (every change of a character sets its update time, so the sum moves even when a
        replica's clock is behind the latest time written)."""
        archived = func.sum(case((CharacterRow.state == CharacterState.ARCHIVED.value, 1), else_=0))
        stamps = func.sum(self._dialect.seconds(CharacterRow.update_time))
        row = self._session.execute(select(func.count(), archived, func.max(CharacterRow.update_time), stamps)).one()
        return tuple(row)

    def _registry_moved(self, character: Character) -> None:
        """Tell registry snapshot readers that the character's screening entry changed: an event
        of the revocation log, in this transaction, so snapshot versions and deltas follow the
        log's order (``services.registry_snapshots``)."""
        RevocationLogRepository(self._session, self._events).append(
            "", RevocationKind.REGISTRY_CHANGED, character.update_time, "", character_id=character.id
        )

    def _write(self, row: CharacterRow, character: Character) -> None:
        row.external_id = character.external_id or None
        row.canonical_name = character.canonical_name
        row.franchise = character.franchise
        row.franchise_key = character.franchise.casefold()
        row.description = character.description
        row.reference_urls = list(character.reference_urls)
        row.aliases = [_alias_json(a) for a in character.aliases]
        row.canonical_name_ambiguous = character.canonical_name_ambiguous
        row.keyword_sets = [_keyword_set_json(k) for k in character.keyword_sets]
        row.state = character.state.value
        row.state_before_suspension = (
            character.state_before_suspension.value if character.state_before_suspension else None
        )
        row.terms_version = character.terms_version
        row.create_time = character.create_time
        row.update_time = character.update_time
        row.archive_time = character.archive_time

    def _index_names(self, character: Character) -> None:
        look_alikes = character.look_alikes()
        self._session.add_all(
            CharacterNameRow(
                character_id=character.id,
                normalized=name,
                rights_holder_id=character.rights_holder_id,
                ambiguous=ambiguous,
                skeleton=look_alikes.get(name),
            )
            for name, ambiguous in character.names()
        )
        self._session.flush()

    def _row(self, character_id: str, *, for_update: bool = False) -> CharacterRow | None:
        stmt = select(CharacterRow).where(CharacterRow.id == character_id)
        return self._session.scalars(self._dialect.for_update(stmt) if for_update else stmt).first()
