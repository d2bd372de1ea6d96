"""Registry snapshots: the screening registry, signed, for the SDK's local screen.

A snapshot holds, for every character (archived ones too, for good: a prompt naming one must be
denied), what the screen matches (names with their ambiguity, derived readings, keyword sets),
its state and its rights holder; nothing else of the catalogue. Its **version** is a revocation
log sequence number: every write that changes a character's entry appends a
``KIND_REGISTRY_CHANGED`` event in the same transaction (``storage.repositories.characters``), so
"the registry as of version *v*" and "what changed after *v*" follow the log's commit order, on
every replica. A **delta** since *v* holds the characters with such an event after *v*, each whole;
when more than `MAX_DELTA_CHARACTERS` changed, the answer is a whole snapshot instead.

Pages are signed one by one (DSSE, ``charter.envelope.REGISTRY_SNAPSHOT_PAYLOAD_TYPE``, the grant-signing key) and
read when asked for: the version is read first (the log's head), then the data, so a page holds
entries at least as new as its version, never older; anything newer is given again by the next
delta. The page token binds the snapshot id, version, base and cursor under the deployment's
page-token key (``services.pagination``).
"""

from __future__ import annotations

import secrets

from charter.envelope import REGISTRY_SNAPSHOT_PAYLOAD_TYPE, sign
from charter.v1 import character_pb2, envelope_pb2, offline_pb2

from charter_server.domain.clock import Clock
from charter_server.domain.errors import InvalidArgument, PermissionDenied
from charter_server.domain.models import CharacterState, Principal, RegistryEntry, Role
from charter_server.services import pagination
from charter_server.services.keys import KeyService
from charter_server.storage.database import Database

DEFAULT_PAGE_CHARACTERS = 1000
MAX_PAGE_CHARACTERS = 2000
"""The most characters per page (a page of 2,000 generated characters is about 300 KB)."""
MAX_PAGE_BYTES = 1024 * 1024
"""A page ends early, after the character that takes its characters past this many bytes (a
character may have 100 aliases and keyword sets), so that a page always fits a gRPC message."""
MAX_DELTA_CHARACTERS = 5000
"""A delta that would hold more characters is answered with a whole snapshot."""

_READERS = frozenset({Role.GENERATOR, Role.ADMIN, Role.AUDITOR})
_STATES = {
    CharacterState.OPTED_OUT: character_pb2.Character.STATE_OPTED_OUT,
    CharacterState.OPTED_IN: character_pb2.Character.STATE_OPTED_IN,
    CharacterState.SUSPENDED: character_pb2.Character.STATE_SUSPENDED,
    CharacterState.ARCHIVED: character_pb2.Character.STATE_ARCHIVED,
}


def registry_character(entry: RegistryEntry) -> offline_pb2.RegistryCharacter:
    """The protobuf form of a registry entry."""
    screen = entry.screen
    return offline_pb2.RegistryCharacter(
        character_id=screen.id,
        rights_holder_id=entry.rights_holder_id,
        state=_STATES[entry.state],
        names=[offline_pb2.RegistryName(value=n.value, ambiguous=n.ambiguous, reading=n.reading) for n in screen.names],
        keyword_sets=[
            character_pb2.KeywordSet(
                name=k.name, keywords=[character_pb2.Keyword(variants=list(v)) for v in k.keywords]
            )
            for k in screen.keyword_sets
        ],
    )


class RegistrySnapshotService:
    """Reads and signs registry snapshot pages."""

    def __init__(self, db: Database, clock: Clock, keys: KeyService, *, issuer: str) -> None:
        self._db = db
        self._clock = clock
        self._keys = keys
        self._issuer = issuer

    def page(
        self, principal: Principal, since_version: int, page_size: int, page_token: str
    ) -> tuple[envelope_pb2.Envelope, str]:
        """One signed page and the token of the next ('' after the last).

        Raises:
            PermissionDenied: The role may not read the registry (or a generator key has no licensee).
            InvalidArgument: ``since_version`` is negative or beyond the log, ``page_size`` is
                negative, or the token is not one of this call's.
        """
        if principal.role not in _READERS or (principal.role is Role.GENERATOR and not principal.licensee_id):
            raise PermissionDenied("only generator and staff keys read the registry", reason="ROLE_NOT_PERMITTED")
        if since_version < 0:
            raise InvalidArgument.one("since_version", "must be 0 or more")
        if page_size < 0:
            raise InvalidArgument.one("page_size", "must not be negative")
        size = min(page_size or DEFAULT_PAGE_CHARACTERS, MAX_PAGE_CHARACTERS)
        filters = f"registry|{since_version}"
        with self._db.uow() as uow:
            if page_token:
                snapshot_id, version, base, number, after = _cursor(
                    pagination.decode_text(self._db.page_token_key(), page_token, filters)
                )
            else:
                # The version first: whatever is read after it is at least as new.
                version, base, number, after = uow.revocations.head(), since_version, 0, 0
                snapshot_id = f"rs_{secrets.token_hex(16)}"
                if since_version > version:
                    raise InvalidArgument.one(
                        "since_version", f"is beyond the newest sequence number of the log ({version})"
                    )
            changed = None
            if base:
                changed = uow.revocations.registry_changes(base, version, MAX_DELTA_CHARACTERS + 1)
                if len(changed) > MAX_DELTA_CHARACTERS:
                    if number:  # (the changes up to a fixed version never grow between pages)
                        raise InvalidArgument.one("page_token", "is not a token returned by this call")
                    base, changed = 0, None
            entries, more = uow.characters.registry_page(after, size, changed) if changed != [] else ([], False)
            signer = self._keys.signer(uow)
        characters, size_bytes = [], 0
        for seq, entry in entries:
            character = registry_character(entry)
            characters.append(character)
            size_bytes += character.ByteSize()
            if size_bytes >= MAX_PAGE_BYTES and seq != entries[-1][0]:
                more, after = True, seq
                break
        else:
            after = entries[-1][0] if entries else after
        claims = offline_pb2.RegistrySnapshotClaims(
            snapshot_id=snapshot_id,
            version=version,
            since_version=base,
            page=number,
            last_page=not more,
            characters=characters,
            issuer=self._issuer,
        )
        claims.issue_time.FromDatetime(self._clock.now())
        envelope = sign(
            claims.SerializeToString(),
            REGISTRY_SNAPSHOT_PAYLOAD_TYPE,
            key_id=signer.key_id,
            private_key=signer.signing_key,
        )
        token = pagination.encode_text(
            self._db.page_token_key(),
            f"{snapshot_id}.{version}.{base}.{number + 1}.{after}" if more else None,
            filters,
        )
        return envelope, token


def _cursor(text: str) -> tuple[str, int, int, int, int]:
    """(snapshot id, version, base, page number, seq to continue after) of a token's cursor."""
    try:
        snapshot_id, version, base, number, after = text.split(".")
        return snapshot_id, int(version), int(base), int(number), int(after)
    except ValueError as error:
        raise InvalidArgument.one("page_token", "is not a token returned by this call") from error
