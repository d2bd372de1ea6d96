"""Repositories: they speak domain records and hide the SQL."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from charter.screen import KeywordSet, ScreenCharacter, ScreenName
from charter.v1 import terms_pb2
from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
    union,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from charter_server.domain import events as ev
from charter_server.domain.events import EventSink
from charter_server.domain.models import (
    Alias,
    AliasKind,
    ApiKey,
    Character,
    CharacterState,
    DailyUsage,
    GrantRecord,
    GrantState,
    Licensee,
    LifecycleState,
    LineSums,
    RevocationEvent,
    RevocationKind,
    RightsHolder,
    Role,
    SigningKeyPurpose,
    SigningKeyRecord,
    SigningKeyState,
    UsageEntry,
)
from charter_server.storage.tables import (
    ApiKeyRow,
    AuthorizationRow,
    CharacterNameRow,
    CharacterRow,
    CounterRow,
    GrantRow,
    GrantUseRow,
    LicenseeRow,
    QuotaCounterRow,
    ReceiptUseRow,
    RequestRecordRow,
    RevocationEventRow,
    RightsHolderRow,
    SigningKeyRow,
    StatementClosureRow,
    TermsVersionRow,
    UsageDailyRow,
    UsageRecordRow,
)

# Shared names: (normalised name, character ids, rights holder ids), and the name to continue after.
CollisionPage = tuple[list[tuple[str, list[str], list[str]]], str | None]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _contains(columns: Sequence[Any], text: str) -> ColumnElement[bool]:
    """Case-insensitive substring match over several columns."""
    pattern = f"%{_escape_like(text.lower())}%"
    return or_(*(func.lower(c).like(pattern, escape="\\") for c in columns))


def _page(session: Session, stmt: Select[Any], seq_column: Any, after: int, limit: int) -> tuple[list[Any], int | None]:
    """Run ``stmt`` as one keyset page ordered by the sequence column."""
    rows = list(session.scalars(stmt.where(seq_column > after).order_by(seq_column).limit(limit + 1)))
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, int(rows[-1].seq)
    return rows, None


def _rights_holder(row: RightsHolderRow) -> RightsHolder:
    return RightsHolder(
        id=row.id,
        display_name=row.display_name,
        legal_name=row.legal_name,
        contact_email=row.contact_email,
        revenue_share_account=row.revenue_share_account,
        state=LifecycleState(row.state),
        create_time=row.create_time,
        update_time=row.update_time,
        archive_time=row.archive_time,
    )


def _licensee(row: LicenseeRow) -> Licensee:
    return Licensee(
        id=row.id,
        display_name=row.display_name,
        legal_name=row.legal_name,
        contact_email=row.contact_email,
        platform=row.platform,
        state=LifecycleState(row.state),
        create_time=row.create_time,
        update_time=row.update_time,
        archive_time=row.archive_time,
    )


def _api_key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        display_name=row.display_name,
        role=Role(row.role),
        rights_holder_id=row.rights_holder_id,
        licensee_id=row.licensee_id,
        expire_time=row.expire_time,
        creator_key_id=row.creator_key_id,
        create_time=row.create_time,
        revoke_time=row.revoke_time,
    )


AUTHZ_EPOCH = "authz_epoch"


def bump_authz_epoch(session: Session) -> None:
    """Count a change that an authorization may depend on, in the caller's transaction (the unit
    of work calls it once per commit whose events affect authorization).

    Every server keeps what ``Authorize`` reads (characters, licensees, grants, keys) in memory
    and polls this counter to learn that its copy is out of date; see
    ``charter_server.services.authorization``. The update takes the counter's row lock until
    commit, like the revocation log's counter.
    """
    session.execute(update(CounterRow).where(CounterRow.name == AUTHZ_EPOCH).values(value=CounterRow.value + 1))


class RightsHolderRepository:
    """Rights holders."""

    def __init__(self, session: Session, events: EventSink) -> None:
        self._session = session
        self._events = events

    def add(self, holder: RightsHolder) -> None:
        """Insert a new rights holder."""
        self._session.add(
            RightsHolderRow(
                id=holder.id,
                display_name=holder.display_name,
                legal_name=holder.legal_name,
                contact_email=holder.contact_email,
                revenue_share_account=holder.revenue_share_account,
                state=holder.state.value,
                create_time=holder.create_time,
                update_time=holder.update_time,
                archive_time=holder.archive_time,
            )
        )
        self._session.flush()
        self._events.raise_event(ev.RightsHolderCreated(holder.id))

    def get(self, holder_id: str) -> RightsHolder | None:
        """The rights holder with this id, or None."""
        row = self._row(holder_id)
        return None if row is None else _rights_holder(row)

    def save(self, holder: RightsHolder) -> None:
        """Write every mutable field of an existing rights holder."""
        row = self._row(holder.id)
        if row is None:
            raise LookupError(holder.id)
        before = LifecycleState(row.state)
        row.display_name = holder.display_name
        row.legal_name = holder.legal_name
        row.contact_email = holder.contact_email
        row.revenue_share_account = holder.revenue_share_account
        row.state = holder.state.value
        row.update_time = holder.update_time
        row.archive_time = holder.archive_time
        self._session.flush()
        self._events.raise_event(ev.RightsHolderChanged(holder.id, before, holder.state))

    def list(
        self, *, state: LifecycleState, query: str, only_id: str | None, after: int, limit: int
    ) -> tuple[list[RightsHolder], int | None]:
        """One page of rights holders in creation order."""
        stmt = select(RightsHolderRow).where(RightsHolderRow.state == state.value)
        if query:
            stmt = stmt.where(_contains([RightsHolderRow.display_name, RightsHolderRow.legal_name], query))
        if only_id is not None:
            stmt = stmt.where(RightsHolderRow.id == only_id)
        rows, more = _page(self._session, stmt, RightsHolderRow.seq, after, limit)
        return [_rights_holder(r) for r in rows], more

    def _row(self, holder_id: str) -> RightsHolderRow | None:
        return self._session.scalars(select(RightsHolderRow).where(RightsHolderRow.id == holder_id)).first()


class LicenseeRepository:
    """Licensees."""

    def __init__(self, session: Session, events: EventSink) -> None:
        self._session = session
        self._events = events

    def add(self, licensee: Licensee) -> None:
        """Insert a new licensee."""
        self._session.add(
            LicenseeRow(
                id=licensee.id,
                display_name=licensee.display_name,
                legal_name=licensee.legal_name,
                contact_email=licensee.contact_email,
                platform=licensee.platform,
                state=licensee.state.value,
                create_time=licensee.create_time,
                update_time=licensee.update_time,
                archive_time=licensee.archive_time,
            )
        )
        self._session.flush()
        self._events.raise_event(ev.LicenseeCreated(licensee.id))

    def get(self, licensee_id: str) -> Licensee | None:
        """The licensee with this id, or None."""
        row = self._row(licensee_id)
        return None if row is None else _licensee(row)

    def save(self, licensee: Licensee) -> None:
        """Write every mutable field of an existing licensee."""
        row = self._row(licensee.id)
        if row is None:
            raise LookupError(licensee.id)
        platform_before, state_before = row.platform, LifecycleState(row.state)
        row.display_name = licensee.display_name
        row.legal_name = licensee.legal_name
        row.contact_email = licensee.contact_email
        row.platform = licensee.platform
        row.state = licensee.state.value
        row.update_time = licensee.update_time
        row.archive_time = licensee.archive_time
        self._session.flush()
        self._events.raise_event(
            ev.LicenseeChanged(licensee.id, platform_before, licensee.platform, state_before, licensee.state)
        )

    def granted_by(self, rights_holder_id: str, licensee_id: str) -> Licensee | None:
        """The licensee, if it holds or held a grant on one of the rights holder's characters."""
        granted = (
            select(GrantRow.seq)
            .where(GrantRow.rights_holder_id == rights_holder_id, GrantRow.licensee_id == licensee_id)
            .exists()
        )
        row = self._session.scalars(select(LicenseeRow).where(LicenseeRow.id == licensee_id, granted)).first()
        return None if row is None else _licensee(row)

    def list_granted(self, *, rights_holder_id: str, after: int, limit: int) -> tuple[list[Licensee], int | None]:
        """One page of licensees in creation order, in every state; with ``rights_holder_id``, only
        those that hold or held a grant on one of its characters."""
        stmt = select(LicenseeRow)
        if rights_holder_id:
            granted = select(GrantRow.licensee_id).where(GrantRow.rights_holder_id == rights_holder_id)
            stmt = stmt.where(LicenseeRow.id.in_(granted))
        rows, more = _page(self._session, stmt, LicenseeRow.seq, after, limit)
        return [_licensee(r) for r in rows], more

    def list(
        self, *, state: LifecycleState, query: str, platform: str, after: int, limit: int
    ) -> tuple[list[Licensee], int | None]:
        """One page of licensees in creation order."""
        stmt = select(LicenseeRow).where(LicenseeRow.state == state.value)
        if query:
            stmt = stmt.where(_contains([LicenseeRow.display_name, LicenseeRow.legal_name], query))
        if platform:
            stmt = stmt.where(LicenseeRow.platform == platform)
        rows, more = _page(self._session, stmt, LicenseeRow.seq, after, limit)
        return [_licensee(r) for r in rows], more

    def _row(self, licensee_id: str) -> LicenseeRow | None:
        return self._session.scalars(select(LicenseeRow).where(LicenseeRow.id == licensee_id)).first()


class ApiKeyRepository:
    """API keys and the hashes of their secrets."""

    def __init__(self, session: Session, events: EventSink) -> None:
        self._session = session
        self._events = events

    def add(self, key: ApiKey, secret_sha256: str) -> None:
        """Insert a new key with the SHA-256 of its secret."""
        self._session.add(
            ApiKeyRow(
                id=key.id,
                display_name=key.display_name,
                role=key.role.value,
                rights_holder_id=key.rights_holder_id,
                licensee_id=key.licensee_id,
                secret_sha256=secret_sha256,
                expire_time=key.expire_time,
                creator_key_id=key.creator_key_id,
                create_time=key.create_time,
                revoke_time=key.revoke_time,
            )
        )
        self._session.flush()
        self._events.raise_event(ev.ApiKeyCreated(key.id, key.role.value, key.rights_holder_id, key.licensee_id))

    def get(self, key_id: str) -> ApiKey | None:
        """The key with this id, or None."""
        row = self._row(key_id)
        return None if row is None else _api_key(row)

    def get_with_hash(self, key_id: str) -> tuple[ApiKey, str] | None:
        """The key and its secret's SHA-256, for authentication."""
        row = self._row(key_id)
        return None if row is None else (_api_key(row), row.secret_sha256)

    def revoke(self, key_id: str, when: datetime) -> None:
        """Mark the key revoked at ``when`` (an event that affects authorization: servers cache keys)."""
        row = self._row(key_id)
        if row is None:
            raise LookupError(key_id)
        row.revoke_time = when
        self._session.flush()
        self._events.raise_event(ev.ApiKeyRevoked(key_id, row.rights_holder_id, row.licensee_id))

    def list(
        self, *, role: Role | None, active_at: datetime | None, after: int, limit: int
    ) -> tuple[list[ApiKey], int | None]:
        """One page of keys in creation order; ``active_at`` keeps only keys active then."""
        stmt = select(ApiKeyRow)
        if role is not None:
            stmt = stmt.where(ApiKeyRow.role == role.value)
        if active_at is not None:
            stmt = stmt.where(ApiKeyRow.revoke_time.is_(None)).where(
                or_(ApiKeyRow.expire_time.is_(None), ApiKeyRow.expire_time > active_at)
            )
        rows, more = _page(self._session, stmt, ApiKeyRow.seq, after, limit)
        return [_api_key(r) for r in rows], more

    def count_admins(self) -> int:
        """How many admin keys exist (revoked or not)."""
        return int(self._session.scalar(select(func.count()).where(ApiKeyRow.role == Role.ADMIN.value)) or 0)

    def _row(self, key_id: str) -> ApiKeyRow | None:
        return self._session.scalars(select(ApiKeyRow).where(ApiKeyRow.id == key_id)).first()


class RequestRecordRepository:
    """Outcomes of idempotent creates."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, caller_key_id: str, method: str, request_id: str) -> tuple[str, str] | None:
        """The (fingerprint, resource id) recorded for this request, or None."""
        row = self._session.get(RequestRecordRow, (caller_key_id, method, request_id))
        return None if row is None else (row.fingerprint, row.resource_id)

    def add(
        self, caller_key_id: str, method: str, request_id: str, fingerprint: str, resource_id: str, when: datetime
    ) -> bool:
        """Record the outcome; False when a concurrent call recorded this request first."""
        try:
            with self._session.begin_nested():
                self._session.add(
                    RequestRecordRow(
                        caller_key_id=caller_key_id,
                        method=method,
                        request_id=request_id,
                        fingerprint=fingerprint,
                        resource_id=resource_id,
                        create_time=when,
                    )
                )
        except IntegrityError:
            return False
        return True


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


def _keyword_set(value: dict[str, Any]) -> KeywordSet:
    return KeywordSet(str(value["name"]), tuple(tuple(str(v) for v in k) for k in value["keywords"]))


def _keyword_set_json(value: KeywordSet) -> dict[str, object]:
    return {"name": value.name, "keywords": [list(k) for k in value.keywords]}


class CharacterRepository:
    """Characters and the index of their normalised names."""

    def __init__(self, session: Session, events: EventSink) -> None:
        self._session = session
        self._events = events

    def add(self, character: Character) -> None:
        """Insert a new character and its names."""
        row = CharacterRow(id=character.id, rights_holder_id=character.rights_holder_id)
        self._write(row, character)
        self._session.add(row)
        self._session.flush()
        self._index_names(character)
        self._events.raise_event(ev.CharacterCreated(character.id, character.rights_holder_id))

    def save(self, character: Character, *, names_changed: bool = True) -> None:
        """Write every mutable field of an existing character; re-index its names if they may have changed."""
        row = self._row(character.id)
        if row is None:
            raise LookupError(character.id)
        state_before = CharacterState(row.state)
        suspension_before = row.state_before_suspension
        names_before = (row.canonical_name, list(row.aliases))
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
        rows = self._session.scalars(stmt.with_for_update() if for_update else stmt)
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
            pattern = f"%{_escape_like(query)}%"
            stmt = stmt.where(
                CharacterRow.id.in_(
                    select(CharacterNameRow.character_id).where(CharacterNameRow.normalized.like(pattern, escape="\\"))
                )
            )
        rows, more = _page(self._session, stmt, CharacterRow.seq, after, limit)
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
            ScreenCharacter(
                str(cid),
                (
                    ScreenName(str(name), bool(ambiguous)),
                    *(
                        ScreenName(str(a["value"]), bool(a["ambiguous"]), bool(a.get("derived", False)))
                        for a in aliases
                    ),
                ),
                tuple(_keyword_set(k) for k in keyword_sets or ()),
            )
            for cid, name, ambiguous, aliases, keyword_sets in rows
        ]

    def names_marker(self) -> tuple[object, ...]:
        """A cheap marker that moves whenever ``all_names`` may have changed: how many characters
        there are and how many are archived, and the latest and the sum of their update times
        (every change of a character sets its update time, so the sum moves even when a
        replica's clock is behind the latest time written)."""
        archived = func.sum(case((CharacterRow.state == CharacterState.ARCHIVED.value, 1), else_=0))
        if self._session.get_bind().dialect.name == "postgresql":
            stamps = func.sum(func.extract("epoch", CharacterRow.update_time))
        else:
            stamps = func.sum(func.julianday(CharacterRow.update_time))
        row = self._session.execute(select(func.count(), archived, func.max(CharacterRow.update_time), stamps)).one()
        return tuple(row)

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
        return self._session.scalars(stmt.with_for_update() if for_update else stmt).first()


class TermsRepository:
    """Immutable terms versions, stored as serialized ``charter.v1.Terms``."""

    def __init__(self, session: Session, events: EventSink) -> None:
        self._session = session
        self._events = events

    def add(self, terms: terms_pb2.Terms) -> None:
        """Insert a new version (its ``character_id`` and ``version`` set)."""
        self._session.add(
            TermsVersionRow(
                character_id=terms.character_id,
                version=terms.version,
                terms=terms.SerializeToString(),
                create_time=terms.create_time.ToDatetime(tzinfo=UTC),
                author_key_id=terms.author_key_id,
            )
        )
        self._session.flush()
        self._events.raise_event(ev.TermsChanged(terms.character_id, terms.version))

    def get(self, character_id: str, version: int) -> terms_pb2.Terms | None:
        """One version, or None."""
        row = self._session.get(TermsVersionRow, (character_id, version))
        return None if row is None else terms_pb2.Terms.FromString(row.terms)

    def list(self, character_id: str, *, before: int, limit: int) -> tuple[list[terms_pb2.Terms], int | None]:
        """Versions newest first, below ``before`` (0 for the newest)."""
        stmt = select(TermsVersionRow).where(TermsVersionRow.character_id == character_id)
        if before:
            stmt = stmt.where(TermsVersionRow.version < before)
        rows = list(self._session.scalars(stmt.order_by(TermsVersionRow.version.desc()).limit(limit + 1)))
        more = rows[limit - 1].version if len(rows) > limit else None
        return [terms_pb2.Terms.FromString(r.terms) for r in rows[:limit]], more


def _signing_key(row: SigningKeyRow) -> SigningKeyRecord:
    return SigningKeyRecord(
        key_id=row.key_id,
        public_key=bytes(row.public_key),
        state=SigningKeyState(row.state),
        activate_time=row.activate_time,
        retire_time=row.retire_time,
        revoke_time=row.revoke_time,
        purpose=SigningKeyPurpose(row.purpose),
    )


class SigningKeyRepository:
    """Signing keys; the private half is stored only encrypted."""

    # Any fixed 64-bit number; it names the advisory lock that serializes changes to the key set.
    _LOCK = 0x636861727465726B

    def __init__(self, session: Session, events: EventSink) -> None:
        self._session = session
        self._events = events

    def lock(self, *, shared: bool = False) -> None:
        """Serialize key changes (first key, rotation, revocation) across replicas until commit;
        ``shared`` is for signing, which only needs the active key to stay active until commit.

        SQLite write transactions are serialized already (BEGIN IMMEDIATE). PostgreSQL runs at
        READ COMMITTED, where two rotations would each retire the old key and both insert an
        active one; a transaction-scoped advisory lock makes the second wait and see the first.
        """
        if self._session.get_bind().dialect.name == "postgresql":
            function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
            self._session.execute(text(f"SELECT {function}(:key)"), {"key": self._LOCK})

    def add(self, key: SigningKeyRecord, encrypted_private_key: bytes) -> None:
        """Insert a new key."""
        self._session.add(
            SigningKeyRow(
                key_id=key.key_id,
                public_key=key.public_key,
                encrypted_private_key=encrypted_private_key,
                state=key.state.value,
                activate_time=key.activate_time,
                retire_time=key.retire_time,
                revoke_time=key.revoke_time,
                revoke_reason="",
                purpose=key.purpose.value,
            )
        )
        self._session.flush()
        self._events.raise_event(ev.SigningKeyAdded(key.key_id))

    def all(self, *, for_update: bool = False) -> list[SigningKeyRecord]:
        """Every key, newest first."""
        stmt = select(SigningKeyRow).order_by(SigningKeyRow.seq.desc())
        if for_update:
            stmt = stmt.with_for_update()
        return [_signing_key(row) for row in self._session.scalars(stmt)]

    def active_with_secret(
        self, purpose: SigningKeyPurpose = SigningKeyPurpose.GRANTS
    ) -> tuple[SigningKeyRecord, bytes] | None:
        """The active key of a purpose and its encrypted private key, or None."""
        row = self._session.scalars(
            select(SigningKeyRow).where(
                SigningKeyRow.state == SigningKeyState.ACTIVE.value, SigningKeyRow.purpose == purpose.value
            )
        ).first()
        return None if row is None else (_signing_key(row), bytes(row.encrypted_private_key))

    def set_state(self, key_id: str, state: SigningKeyState, when: datetime, reason: str = "") -> None:
        """Retire or revoke a key."""
        row = self._session.scalars(select(SigningKeyRow).where(SigningKeyRow.key_id == key_id)).one()
        before = SigningKeyState(row.state)
        row.state = state.value
        if state is SigningKeyState.RETIRED:
            row.retire_time = when
        elif state is SigningKeyState.REVOKED:
            row.revoke_time = when
            row.revoke_reason = reason
            if row.retire_time is None:
                row.retire_time = when
        self._session.flush()
        self._events.raise_event(ev.SigningKeyStateChanged(key_id, before, state))


def _grant(row: GrantRow) -> GrantRecord:
    return GrantRecord(
        id=row.id,
        character_id=row.character_id,
        rights_holder_id=row.rights_holder_id,
        licensee_id=row.licensee_id,
        terms_version=row.terms_version,
        terms=bytes(row.terms),
        not_before=row.not_before,
        expire_time=row.expire_time,
        issue_time=row.issue_time,
        state=GrantState(row.state),
        state_reason=row.state_reason,
        state_time=row.state_time,
        envelope=bytes(row.envelope),
        signing_key_id=row.signing_key_id,
        max_uses=row.max_uses,
    )


class GrantRepository:
    """Issued grants."""

    def __init__(self, session: Session, events: EventSink) -> None:
        self._session = session
        self._events = events

    def add(self, grant: GrantRecord) -> None:
        """Insert a new grant."""
        self._session.add(
            GrantRow(
                id=grant.id,
                character_id=grant.character_id,
                rights_holder_id=grant.rights_holder_id,
                licensee_id=grant.licensee_id,
                terms_version=grant.terms_version,
                terms=grant.terms,
                not_before=grant.not_before,
                expire_time=grant.expire_time,
                issue_time=grant.issue_time,
                state=grant.state.value,
                state_reason=grant.state_reason,
                state_time=grant.state_time,
                envelope=grant.envelope,
                signing_key_id=grant.signing_key_id,
                max_uses=grant.max_uses,
            )
        )
        self._session.flush()
        self._events.raise_event(
            ev.GrantIssued(grant.id, grant.character_id, grant.rights_holder_id, grant.licensee_id)
        )

    def get(self, grant_id: str, *, for_update: bool = False) -> GrantRecord | None:
        """The grant with this id, or None; ``for_update`` locks its row until commit (PostgreSQL)."""
        stmt = select(GrantRow).where(GrantRow.id == grant_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = self._session.scalars(stmt).first()
        return None if row is None else _grant(row)

    def states(self, grant_ids: Sequence[str]) -> dict[str, GrantState]:
        """The states of the grants that exist among ``grant_ids``."""
        if not grant_ids:
            return {}
        rows = self._session.execute(select(GrantRow.id, GrantRow.state).where(GrantRow.id.in_(list(grant_ids))))
        return {str(gid): GrantState(state) for gid, state in rows}

    def set_state(self, grant_id: str, state: GrantState, reason: str, when: datetime) -> None:
        """Change a grant's state."""
        row = self._session.scalars(select(GrantRow).where(GrantRow.id == grant_id)).one()
        before = GrantState(row.state)
        row.state = state.value
        row.state_reason = reason
        row.state_time = when
        self._session.flush()
        self._events.raise_event(
            ev.GrantStateChanged(grant_id, row.character_id, row.rights_holder_id, row.licensee_id, before, state)
        )

    def live_for_character(self, character_id: str) -> list[str]:
        """Ids of the character's grants that are not revoked, locked for update."""
        stmt = (
            select(GrantRow.id)
            .where(GrantRow.character_id == character_id, GrantRow.state != GrantState.REVOKED.value)
            .order_by(GrantRow.seq)
            .with_for_update()
        )
        return [str(gid) for gid in self._session.scalars(stmt)]

    def list(
        self,
        *,
        character_id: str,
        licensee_id: str,
        rights_holder_id: str,
        state: GrantState | None,
        before: int,
        limit: int,
    ) -> tuple[list[GrantRecord], int | None]:
        """One page of grants, newest first (``before`` is a sequence number, 0 for the newest)."""
        stmt = select(GrantRow)
        if character_id:
            stmt = stmt.where(GrantRow.character_id == character_id)
        if licensee_id:
            stmt = stmt.where(GrantRow.licensee_id == licensee_id)
        if rights_holder_id:
            stmt = stmt.where(GrantRow.rights_holder_id == rights_holder_id)
        if state is not None:
            stmt = stmt.where(GrantRow.state == state.value)
        if before:
            stmt = stmt.where(GrantRow.seq < before)
        rows = list(self._session.scalars(stmt.order_by(GrantRow.seq.desc()).limit(limit + 1)))
        more = int(rows[limit - 1].seq) if len(rows) > limit else None
        return [_grant(r) for r in rows[:limit]], more


class RevocationLogRepository:
    """The revocation log. Appending takes the counter's row lock, so sequence numbers commit in order."""

    COUNTER = "revocation_log"

    def __init__(self, session: Session, events: EventSink) -> None:
        self._session = session
        self._events = events

    def append(self, grant_id: str, kind: RevocationKind, when: datetime, reason: str, character_id: str = "") -> int:
        """Append an event and return its sequence number (a character's event names no grant)."""
        sequence = self._session.execute(
            update(CounterRow)
            .where(CounterRow.name == self.COUNTER)
            .values(value=CounterRow.value + 1)
            .returning(CounterRow.value)
        ).scalar_one()
        self._session.add(
            RevocationEventRow(
                sequence=sequence,
                grant_id=grant_id,
                kind=kind.value,
                event_time=when,
                reason=reason,
                character_id=character_id,
            )
        )
        self._session.flush()
        self._events.raise_event(ev.RevocationAppended(int(sequence), kind, grant_id, character_id))
        return int(sequence)

    def since(self, sequence: int, limit: int) -> list[RevocationEvent]:
        """Events after ``sequence``, oldest first."""
        rows = self._session.scalars(
            select(RevocationEventRow)
            .where(RevocationEventRow.sequence > sequence)
            .order_by(RevocationEventRow.sequence)
            .limit(limit)
        )
        return [
            RevocationEvent(
                sequence=int(r.sequence),
                grant_id=r.grant_id,
                kind=RevocationKind(r.kind),
                event_time=r.event_time,
                reason=r.reason,
                character_id=r.character_id,
            )
            for r in rows
        ]

    def head(self) -> int:
        """The newest sequence number (0 when the log is empty)."""
        return int(self._session.scalar(select(CounterRow.value).where(CounterRow.name == self.COUNTER)) or 0)


class GrantViewRepository:
    """What ``Authorize`` loads into memory: characters, licensees and a licensee's grants."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def epoch(self) -> int:
        """The authorization epoch: it moves with every change an authorization may depend on."""
        return int(self._session.scalar(select(CounterRow.value).where(CounterRow.name == AUTHZ_EPOCH)) or 0)

    def grants_for(self, licensee_id: str, character_ids: Sequence[str], live_after: datetime) -> list[GrantRecord]:
        """The licensee's grants of these characters that expire after ``live_after``, newest first."""
        if not character_ids:
            return []
        rows = self._session.scalars(
            select(GrantRow)
            .where(
                GrantRow.licensee_id == licensee_id,
                GrantRow.character_id.in_(list(character_ids)),
                GrantRow.expire_time > live_after,
            )
            .order_by(GrantRow.seq.desc())
        )
        return [_grant(row) for row in rows]


class QuotaRepository:
    """Quota counters, raised only by a conditional single-statement update (never read-modify-write)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def consume(self, licensee_id: str, character_id: str, period: str, limit: int) -> bool:
        """Count one use in ``period`` if fewer than ``limit`` are counted; whether it was counted.

        The row is created first if missing (a conflicting insert by a concurrent transaction is
        ignored); the update then re-checks ``used < limit`` under the row lock, so concurrent
        uses on any number of servers never exceed the limit.
        """
        if limit <= 0:
            return False
        dialect = self._session.get_bind().dialect.name
        values = {"licensee_id": licensee_id, "character_id": character_id, "period": period, "used": 0}
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        self._session.execute(insert(QuotaCounterRow).values(**values).on_conflict_do_nothing())
        result = self._session.execute(
            update(QuotaCounterRow)
            .where(
                QuotaCounterRow.licensee_id == licensee_id,
                QuotaCounterRow.character_id == character_id,
                QuotaCounterRow.period == period,
                QuotaCounterRow.used < limit,
            )
            .values(used=QuotaCounterRow.used + 1)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def consume_grant(self, grant_id: str, limit: int) -> bool:
        """Count one use of a grant if fewer than ``limit`` are counted over its life; whether it was.
        The same conditional single-statement update as `consume`."""
        if limit <= 0:
            return False
        insert = pg_insert if self._session.get_bind().dialect.name == "postgresql" else sqlite_insert
        self._session.execute(insert(GrantUseRow).values(grant_id=grant_id, used=0).on_conflict_do_nothing())
        result = self._session.execute(
            update(GrantUseRow)
            .where(GrantUseRow.grant_id == grant_id, GrantUseRow.used < limit)
            .values(used=GrantUseRow.used + 1)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def grant_used(self, grant_id: str) -> int:
        """The uses counted against a grant's cap (0 when none)."""
        return int(self._session.scalar(select(GrantUseRow.used).where(GrantUseRow.grant_id == grant_id)) or 0)

    def used(self, licensee_id: str, character_id: str, period: str) -> int:
        """The uses counted in ``period`` (0 when none)."""
        value = self._session.scalar(
            select(QuotaCounterRow.used).where(
                QuotaCounterRow.licensee_id == licensee_id,
                QuotaCounterRow.character_id == character_id,
                QuotaCounterRow.period == period,
            )
        )
        return int(value or 0)


class AuthorizationRepository:
    """Authorize responses that counted a quota, for replaying a retried request."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, receipt_id: str, licensee_id: str, decide_time: datetime, response: bytes) -> None:
        """Keep a response."""
        self._session.add(
            AuthorizationRow(receipt_id=receipt_id, licensee_id=licensee_id, decide_time=decide_time, response=response)
        )
        self._session.flush()

    def get(self, receipt_id: str) -> bytes | None:
        """The kept response with this receipt id, or None."""
        row = self._session.get(AuthorizationRow, receipt_id)
        return None if row is None else bytes(row.response)


@functools.cache
def _usage_statements(dialect: str) -> tuple[Any, Any]:
    """The two statements of accepting usage, built once per dialect: building a statement costs
    more than executing it, and these run once per record."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    records = cast(Table, UsageRecordRow.__table__)
    add = (
        insert(records)
        .on_conflict_do_nothing(index_elements=["licensee_id", "idempotency_key"])
        .returning(records.c.idempotency_key)
    )
    uses = cast(Table, ReceiptUseRow.__table__)
    upsert = insert(uses).values(receipt_id=bindparam("receipt_id"), character_id=bindparam("character_id"))
    upsert = upsert.values(used=bindparam("uses"))
    consume = upsert.on_conflict_do_update(
        index_elements=["receipt_id", "character_id"],
        set_={"used": uses.c.used + upsert.excluded.used},
        where=(uses.c.used < bindparam("capacity")) & (uses.c.used + upsert.excluded.used <= bindparam("capacity")),
    ).returning(uses.c.used)
    return add, consume


@functools.cache
def _daily_statement(dialect: str) -> Any:
    """The roll-up's upsert, built once per dialect: adds a batch's sums to each day's row."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    daily = cast(Table, UsageDailyRow.__table__)
    upsert = insert(daily)
    return upsert.on_conflict_do_update(
        index_elements=["rights_holder_id", "day", "character_id", "licensee_id"],
        set_={
            "records": daily.c.records + upsert.excluded.records,
            "uses": daily.c.uses + upsert.excluded.uses,
            "duration_ms": daily.c.duration_ms + upsert.excluded.duration_ms,
        },
    )


_USAGE_COLUMNS = tuple(f.name for f in dataclasses.fields(UsageEntry))


class UsageRepository:
    """Accepted usage records and the uses reported against each receipt."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._add, self._consume = _usage_statements(session.get_bind().dialect.name)

    def accepted(self, licensee_id: str, keys: Sequence[str]) -> dict[str, UsageEntry]:
        """The records already accepted under these idempotency keys of the licensee, by key."""
        if not keys:
            return {}
        rows = self._session.scalars(
            select(UsageRecordRow).where(
                UsageRecordRow.licensee_id == licensee_id, UsageRecordRow.idempotency_key.in_(list(keys))
            )
        )
        return {row.idempotency_key: _usage(row) for row in rows}

    def add_new(self, entries: Sequence[UsageEntry]) -> set[str]:
        """Insert the records whose key is not taken yet; the keys inserted.

        A key that a concurrent transaction inserted is skipped (on PostgreSQL after that
        transaction ends), so the caller reads it back and answers it as a duplicate. Rows go in
        key order, so that concurrent batches take their key locks in one order and never deadlock.
        """
        if not entries:
            return set()
        ordered = sorted(entries, key=lambda e: e.idempotency_key)
        values = [{name: getattr(entry, name) for name in _USAGE_COLUMNS} for entry in ordered]
        return set(self._session.scalars(self._add, values))

    def remove(self, licensee_id: str, keys: Sequence[str]) -> None:
        """Delete records inserted earlier in this transaction (whose receipt turned out consumed)."""
        if keys:
            self._session.execute(
                delete(UsageRecordRow).where(
                    UsageRecordRow.licensee_id == licensee_id, UsageRecordRow.idempotency_key.in_(list(keys))
                )
            )

    def consume_receipt(self, receipt_id: str, character_id: str, uses: int, capacity: int) -> bool:
        """Count ``uses`` against a receipt's character if that stays within ``capacity`` and the
        receipt is not consumed yet; whether it was counted. One conditional upsert: never
        read-modify-write, so concurrent reports on any number of servers cannot pass the capacity."""
        parameters = {"receipt_id": receipt_id, "character_id": character_id, "uses": uses, "capacity": capacity}
        return self._session.execute(self._consume, parameters).first() is not None

    def roll_up(self, entries: Sequence[UsageEntry]) -> None:
        """Add accepted records to the daily roll-up: one row per rights holder, UTC day, character
        and licensee, in key order so that concurrent batches take row locks in one order."""
        if not entries:
            return
        sums: dict[tuple[str, str, str, str], list[int]] = {}
        for entry in entries:
            key = (
                entry.rights_holder_id,
                f"{entry.happen_time.astimezone(UTC):%Y-%m-%d}",
                entry.character_id,
                entry.licensee_id,
            )
            found = sums.setdefault(key, [0, 0, 0])
            found[0] += 1
            found[1] += entry.uses
            found[2] += entry.duration_ms
        values = [
            {
                "rights_holder_id": k[0],
                "day": k[1],
                "character_id": k[2],
                "licensee_id": k[3],
                "records": v[0],
                "uses": v[1],
                "duration_ms": v[2],
            }
            for k, v in sorted(sums.items())
        ]
        self._session.execute(_daily_statement(self._session.get_bind().dialect.name), values)

    def usage_by_day_and_key(
        self,
        rights_holder_id: str,
        first_day: str,
        last_day: str,
        *,
        by_licensee: bool,
        character_id: str | None = None,
        licensee_id: str | None = None,
    ) -> list[DailyUsage]:
        """The roll-up's sums per day and character (or licensee) between two days (``YYYY-MM-DD``,
        inclusive). One pass over the primary key's range of days: grouped by day first, in the
        key's own order, so the database needs no sort (per character) or only one per day."""
        key = UsageDailyRow.licensee_id if by_licensee else UsageDailyRow.character_id
        where = self._where(rights_holder_id, first_day, last_day, character_id, licensee_id)
        stmt = select(UsageDailyRow.day, key, *self._sums()).where(*where).group_by(UsageDailyRow.day, key)
        return [DailyUsage(str(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in self._session.execute(stmt)]

    @staticmethod
    def _sums() -> tuple[Any, ...]:
        return (
            func.sum(UsageDailyRow.records),
            func.sum(UsageDailyRow.uses),
            func.sum(UsageDailyRow.duration_ms),
        )

    @staticmethod
    def _where(
        rights_holder_id: str, first_day: str, last_day: str, character_id: str | None, licensee_id: str | None
    ) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = [
            UsageDailyRow.rights_holder_id == rights_holder_id,
            UsageDailyRow.day >= first_day,
            UsageDailyRow.day <= last_day,
        ]
        if character_id:
            where.append(UsageDailyRow.character_id == character_id)
        if licensee_id:
            where.append(UsageDailyRow.licensee_id == licensee_id)
        return where

    def receipt_used(self, receipt_id: str, character_id: str) -> int:
        """The uses reported against a receipt's character (0 when none)."""
        value = self._session.scalar(
            select(ReceiptUseRow.used).where(
                ReceiptUseRow.receipt_id == receipt_id, ReceiptUseRow.character_id == character_id
            )
        )
        return int(value or 0)


def _usage(row: UsageRecordRow) -> UsageEntry:
    return UsageEntry(**{f.name: getattr(row, f.name) for f in dataclasses.fields(UsageEntry)})


class StatementRepository:
    """Closed periods, and the sums that statements are made of."""

    def __init__(self, session: Session, events: EventSink) -> None:
        self._session = session
        self._events = events

    def lock_rights_holders(self, rights_holder_ids: Sequence[str], *, exclusive: bool = False) -> None:
        """Serialise closing a rights holder's period with accepting records for it.

        Accepting takes a key-share lock on the rights holders (accepters never wait for each
        other, nor for edits of a rights holder); closing takes an exclusive one. On SQLite every
        write transaction already holds the one write lock (BEGIN IMMEDIATE).
        """
        if not rights_holder_ids or self._session.get_bind().dialect.name != "postgresql":
            return
        stmt = select(RightsHolderRow.id).where(RightsHolderRow.id.in_(sorted(set(rights_holder_ids))))
        stmt = stmt.with_for_update() if exclusive else stmt.with_for_update(read=True, key_share=True)
        self._session.execute(stmt.order_by(RightsHolderRow.id)).all()

    def closed_periods(self, rights_holder_ids: Sequence[str]) -> dict[str, set[str]]:
        """The closed periods of each rights holder (an empty set when none)."""
        closed: dict[str, set[str]] = {rh: set() for rh in rights_holder_ids}
        if rights_holder_ids:
            rows = self._session.execute(
                select(StatementClosureRow.rights_holder_id, StatementClosureRow.period).where(
                    StatementClosureRow.rights_holder_id.in_(list(set(rights_holder_ids)))
                )
            )
            for rights_holder_id, period in rows:
                closed[rights_holder_id].add(period)
        return closed

    def closure(self, rights_holder_id: str, period: str) -> datetime | None:
        """When the period was closed, or None when it is open."""
        return self._session.scalar(
            select(StatementClosureRow.close_time).where(
                StatementClosureRow.rights_holder_id == rights_holder_id, StatementClosureRow.period == period
            )
        )

    def close(self, rights_holder_id: str, period: str, when: datetime, key_id: str) -> None:
        """Record the period as closed."""
        self._session.add(
            StatementClosureRow(
                rights_holder_id=rights_holder_id, period=period, close_time=when, closed_by_key_id=key_id
            )
        )
        self._session.flush()
        self._events.raise_event(ev.StatementPeriodClosed(rights_holder_id, period))

    def period_sums(self, pairs: Sequence[tuple[str, str]], licensee_id: str | None = None) -> list[LineSums]:
        """The line sums of these (rights holder, statement period) pairs."""
        if not pairs:
            return []
        adjustment = case(
            (UsageRecordRow.happen_period == UsageRecordRow.statement_period, ""),
            else_=UsageRecordRow.happen_period,
        )
        where: list[ColumnElement[bool]] = [
            tuple_(UsageRecordRow.rights_holder_id, UsageRecordRow.statement_period).in_(list(pairs))
        ]
        if licensee_id:
            where.append(UsageRecordRow.licensee_id == licensee_id)
        return self._sums(UsageRecordRow.statement_period, adjustment, where)

    def range_sums(
        self, rights_holder_id: str, start: datetime, end: datetime, licensee_id: str | None = None
    ) -> list[LineSums]:
        """The line sums of the records that happened in [start, end), without adjustments."""
        where: list[ColumnElement[bool]] = [
            UsageRecordRow.rights_holder_id == rights_holder_id,
            UsageRecordRow.happen_time >= start,
            UsageRecordRow.happen_time < end,
        ]
        if licensee_id:
            where.append(UsageRecordRow.licensee_id == licensee_id)
        return self._sums(literal(""), literal(""), where)

    def _sums(self, period: Any, adjustment: Any, where: list[ColumnElement[bool]]) -> list[LineSums]:
        """Sum in the database per line and per (basis points, fee); multiply and add up in Python,
        whose integers never overflow (SQLite's 64-bit sum of revenue x basis points could)."""
        keys = (
            UsageRecordRow.rights_holder_id,
            period,
            UsageRecordRow.character_id,
            UsageRecordRow.licensee_id,
            UsageRecordRow.currency,
            adjustment,
        )
        stmt = (
            select(
                *keys,
                UsageRecordRow.revenue_share_bps,
                UsageRecordRow.fee_minor,
                func.count(),
                func.sum(UsageRecordRow.uses),
                func.sum(UsageRecordRow.duration_ms),
                func.sum(UsageRecordRow.revenue_minor),
            )
            .where(*where)
            .group_by(*keys, UsageRecordRow.revenue_share_bps, UsageRecordRow.fee_minor)
        )
        lines: dict[tuple[str, ...], LineSums] = {}
        for row in self._session.execute(stmt):
            key = tuple(row[:6])
            bps, fee, records, uses, duration, revenue = (int(v) for v in row[6:])
            found = lines.get(key)
            lines[key] = LineSums(
                rights_holder_id=row[0],
                statement_period=row[1],
                character_id=row[2],
                licensee_id=row[3],
                currency=row[4],
                adjustment_for_period=row[5],
                records=records + (found.records if found else 0),
                uses=uses + (found.uses if found else 0),
                duration_ms=duration + (found.duration_ms if found else 0),
                revenue_minor=revenue + (found.revenue_minor if found else 0),
                revenue_times_bps=revenue * bps + (found.revenue_times_bps if found else 0),
                fees_minor=fee * uses + (found.fees_minor if found else 0),
            )
        return list(lines.values())

    def periods(
        self,
        *,
        rights_holder_id: str | None,
        licensee_id: str | None,
        after: tuple[str, str] | None,
        limit: int,
    ) -> tuple[list[tuple[str, str]], bool]:
        """(rights holder, period) pairs with usage (or, without a licensee filter, closed), newest
        period first, then by rights holder; after the cursor ``after``; and whether more follow."""
        used = select(UsageRecordRow.rights_holder_id.label("rh"), UsageRecordRow.statement_period.label("period"))
        if rights_holder_id:
            used = used.where(UsageRecordRow.rights_holder_id == rights_holder_id)
        if licensee_id:
            used = used.where(UsageRecordRow.licensee_id == licensee_id)
        selects = [used]
        if not licensee_id:
            closed = select(
                StatementClosureRow.rights_holder_id.label("rh"), StatementClosureRow.period.label("period")
            )
            if rights_holder_id:
                closed = closed.where(StatementClosureRow.rights_holder_id == rights_holder_id)
            selects.append(closed)
        both = union(*selects).subquery() if len(selects) > 1 else used.distinct().subquery()
        stmt = select(both.c.rh, both.c.period)
        if after is not None:
            period, rh = after
            stmt = stmt.where(or_(both.c.period < period, and_(both.c.period == period, both.c.rh > rh)))
        rows = self._session.execute(stmt.order_by(both.c.period.desc(), both.c.rh).limit(limit + 1)).all()
        return [(r[0], r[1]) for r in rows[:limit]], len(rows) > limit
