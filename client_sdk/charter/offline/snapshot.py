"""The registry snapshot an offline authorizer screens prompts with: verified pages, assembled.

``OfflineService/GetRegistrySnapshot`` returns the screening registry (every character's names,
aliases, derived readings, keyword sets, state and rights holder) in pages, each a DSSE envelope
of payload type `charter.envelope.REGISTRY_SNAPSHOT_PAYLOAD_TYPE` signed by Charter's
grant-signing key; or, given the version held, a delta (the characters whose entry changed since,
each whole). A page is used only once its signature verifies with the key set (`verify_page`)
and the pages belong together (`Registry.assemble`: one snapshot id, version and base, numbered
from 0 to the page that says it is the last; a delta only onto the version it names). Anything
else is `SnapshotInvalid`, and what was held stays as it was.

The `Registry` is immutable: a delta makes a new one. It keeps the pages it was built from (the
whole snapshot's and the deltas' since, so the cache can keep them and check every signature
again on load) and builds its `charter.screen.ScreenIndex` with the same matcher as the server
(`index`, built off the decision path by the authorizer's registry thread); a registry made by a
delta builds it from the previous one's, deriving again only the characters the delta changed.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from charter.decide import CharacterState
from charter.envelope import MAX_SIGNATURES, REGISTRY_SNAPSHOT_PAYLOAD_TYPE, pae
from charter.grants import KeyRing
from charter.keyring import check_signatures
from charter.screen import KeywordSet, ScreenCharacter, ScreenIndex, ScreenName
from charter.v1 import character_pb2, grant_pb2, offline_pb2
from charter.v1.envelope_pb2 import Envelope

if TYPE_CHECKING:
    from charter.client import Client

MAX_PAGES: Final = 64
"""The most pages one snapshot or delta may have (at 2,000 characters a page, 128,000 characters)."""
PAGE_CHARACTERS: Final = 2000
"""The characters a page is asked for: the most the server puts in one (fewer when a page reaches
its byte bound). Its default of 1,000 would hold a registry to 64,000 characters."""
MAX_PAGE_BYTES: Final = 4 * 1024 * 1024
"""The largest page accepted, in bytes of its envelope (gRPC's default message limit)."""
MAX_DELTAS: Final = 32
"""After this many deltas on one snapshot, the next fetch asks for a whole snapshot again, so
the pages kept (and checked on load) stay bounded."""

_VALID: Final = grant_pb2.GRANT_VERDICT_VALID
_UNKNOWN_KEY: Final = grant_pb2.GRANT_VERDICT_UNKNOWN_KEY
_SNAPSHOT_ID: Final = re.compile(r"rs_[0-9a-f]{32}")
_STATES: Final = {
    character_pb2.Character.STATE_OPTED_IN: CharacterState.OPTED_IN,
    character_pb2.Character.STATE_SUSPENDED: CharacterState.SUSPENDED,
    character_pb2.Character.STATE_OPTED_OUT: CharacterState.NOT_OPTED_IN,
    character_pb2.Character.STATE_ARCHIVED: CharacterState.NOT_OPTED_IN,
}
_LENGTH: Final = struct.Struct(">I")


class SnapshotInvalid(ValueError):
    """A registry snapshot page does not verify, or the pages do not make one snapshot or delta."""


class SnapshotKeyUnknown(SnapshotInvalid):
    """A page is signed by a key the key set does not know (yet): fetch the key set again."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A character as the snapshot knows it: its state (as `charter.decide` takes it) and owner."""

    state: CharacterState
    rights_holder_id: str


def verify_page(envelope: Envelope, ring: KeyRing) -> offline_pb2.RegistrySnapshotClaims:
    """The claims of one page, once its signature verifies with ``ring``.

    Raises:
        SnapshotKeyUnknown: No signature names a key of the ring.
        SnapshotInvalid: Another payload type, too large, no or too many signatures, a signature
            that does not verify (or by a revoked key), or claims that do not parse.
    """
    if envelope.payload_type != REGISTRY_SNAPSHOT_PAYLOAD_TYPE:
        raise SnapshotInvalid("not a registry snapshot page")
    if envelope.ByteSize() > MAX_PAGE_BYTES:
        raise SnapshotInvalid("the page is too large")
    signatures = [(s.keyid, s.sig) for s in envelope.signatures]
    if not signatures or len(signatures) > MAX_SIGNATURES:
        raise SnapshotInvalid("the page has no signature, or too many")
    verdict, _key, _key_id = check_signatures(ring, pae(envelope.payload_type, envelope.payload), signatures)
    if verdict == _UNKNOWN_KEY:
        raise SnapshotKeyUnknown("the page is signed by a key the key set does not know")
    if verdict != _VALID:
        name = grant_pb2.GrantVerdict.Name(verdict)  # type: ignore[arg-type]
        raise SnapshotInvalid(f"the page's signature does not verify ({name})")
    try:
        claims = offline_pb2.RegistrySnapshotClaims.FromString(envelope.payload)
    except Exception as error:  # DecodeError: signed, but not claims
        raise SnapshotInvalid("the page's claims do not parse") from error
    if not _SNAPSHOT_ID.fullmatch(claims.snapshot_id) or claims.version < claims.since_version or claims.page < 0:
        raise SnapshotInvalid("the page's claims are not those of a snapshot")
    return claims


def _screen(character: offline_pb2.RegistryCharacter) -> ScreenCharacter:
    # Lists, not generators, inside tuple(); no keyword sets (most characters) makes none: a
    # fifth less time for the 10,000 characters of a snapshot.
    sets = character.keyword_sets
    return ScreenCharacter(
        character.character_id,
        tuple([ScreenName(n.value, n.ambiguous, n.reading) for n in character.names]),
        tuple([KeywordSet(k.name, tuple([tuple(w.variants) for w in k.keywords])) for k in sets]) if sets else (),
    )


@dataclass(frozen=True, slots=True, eq=False)
class Registry:
    """A verified registry snapshot, deltas applied; immutable.

    Attributes:
        version: The registry version it is current at (a revocation log sequence number).
        entries: Character id → its state and rights holder.
        screens: Character id → what the screen matches, in the registry's order.
        pages: The envelopes it was built from: the whole snapshot's pages, then each delta's.
        deltas: How many deltas were applied since the whole snapshot.
        index: The screen, once built (`build_index`); None before.
    """

    version: int
    entries: dict[str, Entry]
    screens: dict[str, ScreenCharacter]
    pages: tuple[Envelope, ...]
    deltas: int = 0
    index: ScreenIndex | None = field(default=None)

    @staticmethod
    def assemble(
        pages: Sequence[tuple[Envelope, offline_pb2.RegistrySnapshotClaims]], base: Registry | None
    ) -> Registry:
        """The registry the verified ``pages`` (one snapshot or delta, in order) make, on ``base``.

        Raises:
            SnapshotInvalid: The pages do not make one snapshot or delta, or it is a delta from
                a version other than ``base``'s.
        """
        if not pages or len(pages) > MAX_PAGES:
            raise SnapshotInvalid("a snapshot has 1 to 64 pages")
        first = pages[0][1]
        for number, (_envelope, claims) in enumerate(pages):
            if (claims.snapshot_id, claims.version, claims.since_version) != (
                first.snapshot_id,
                first.version,
                first.since_version,
            ) or claims.page != number:
                raise SnapshotInvalid("the pages are not those of one snapshot, in order")
            if claims.last_page != (number == len(pages) - 1):
                raise SnapshotInvalid("the snapshot's last page is missing or misplaced")
        if first.since_version:
            if base is None or base.version != first.since_version:
                raise SnapshotInvalid("the delta does not apply to the snapshot held")
            entries, screens = dict(base.entries), dict(base.screens)
            kept, deltas = base.pages, base.deltas + 1
        else:
            entries, screens, kept, deltas = {}, {}, (), 0
        for _envelope, claims in pages:
            for character in claims.characters:
                state = _STATES.get(character.state)
                if state is None or not character.character_id:
                    raise SnapshotInvalid("a character of the snapshot has no id or no known state")
                entries[character.character_id] = Entry(state, character.rights_holder_id)
                screens[character.character_id] = _screen(character)
        return Registry(first.version, entries, screens, kept + tuple(e for e, _ in pages), deltas)

    @staticmethod
    def verify(pages: Iterable[Envelope], ring: KeyRing) -> Registry:
        """The registry of kept pages (a whole snapshot, then deltas), every signature checked again.

        Raises:
            SnapshotInvalid: A page does not verify, or the pages do not make one registry.
        """
        registry: Registry | None = None
        group: list[tuple[Envelope, offline_pb2.RegistrySnapshotClaims]] = []
        for envelope in pages:
            group.append((envelope, verify_page(envelope, ring)))
            if group[-1][1].last_page:
                registry = Registry.assemble(group, registry)
                group = []
        if registry is None or group:
            raise SnapshotInvalid("the kept pages do not end with a whole snapshot's or delta's last page")
        return registry

    def build_index(self, previous: Registry | None = None) -> Registry:
        """This registry with its screen built (the same matcher and data as the server's).

        Args:
            previous: A registry whose screen is built (the one this delta applies to): only
                the characters whose screening data differ from its are derived again, and the
                screen is the same as one built from nothing.
        """
        index = ScreenIndex.build(self.screens.values(), previous=None if previous is None else previous.index)
        return Registry(self.version, self.entries, self.screens, self.pages, self.deltas, index)


def fetch(client: Client, ring: KeyRing, held: Registry | None, *, page_size: int = PAGE_CHARACTERS) -> Registry:
    """The registry as Charter has it now: a delta onto ``held``, or a whole snapshot.

    Raises:
        SnapshotKeyUnknown: A page is signed by a key the ring does not know.
        SnapshotInvalid: A page does not verify, or the pages do not make a snapshot.
        CharterError: A call failed.
    """
    since = held.version if held is not None and held.deltas < MAX_DELTAS else 0
    pages: list[tuple[Envelope, offline_pb2.RegistrySnapshotClaims]] = []
    token = ""
    while True:
        response = client.get_registry_snapshot(since_version=since, page_size=page_size, page_token=token)
        pages.append((response.page, verify_page(response.page, ring)))
        if pages[-1][1].last_page:
            break
        token = response.next_page_token
        if not token or len(pages) >= MAX_PAGES:
            raise SnapshotInvalid("the snapshot's pages do not end")
    return Registry.assemble(pages, held if pages[0][1].since_version else None)


def pack(pages: Iterable[Envelope]) -> bytes:
    """The kept pages as one body for the cache (each serialized envelope after its length)."""
    parts: list[bytes] = []
    for envelope in pages:
        data = envelope.SerializeToString()
        parts += (_LENGTH.pack(len(data)), data)
    return b"".join(parts)


def unpack(body: bytes) -> list[Envelope]:
    """The pages of a cache body (`pack`).

    Raises:
        ValueError: The body is not one.
    """
    pages, offset = [], 0
    while offset < len(body):
        # (struct.error and DecodeError are not ValueErrors: a caller that catches ValueError,
        # as the registry thread does, must not be ended by a body that is not one.)
        if offset + _LENGTH.size > len(body):
            raise ValueError("a kept page's length runs past the end")
        (length,) = _LENGTH.unpack_from(body, offset)
        offset += _LENGTH.size
        if length > MAX_PAGE_BYTES or offset + length > len(body):
            raise ValueError("a kept page runs past the end")
        try:
            pages.append(Envelope.FromString(body[offset : offset + length]))
        except Exception as error:  # DecodeError
            raise ValueError("a kept page is not an envelope") from error
        offset += length
    return pages
