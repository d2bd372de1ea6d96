"""Domain records of the foundation: rights holders, licensees, API keys, callers.

Prompt detections and keyword sets are the SDK's own records (``charter.decisions.Detection``,
``charter.screen.KeywordSet``), shared by the server's screen and the SDK's.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, NamedTuple, TypeVar

from charter.decisions import Detection
from charter.names import normalize
from charter.screen import KeywordSet, ScreenCharacter, look_alike_key

__all__ = ["Detection", "KeywordSet"]  # the shared records, re-exported for the server's layers

T = TypeVar("T")


class Role(enum.StrEnum):
    """What an API key may do (mirrors ``charter.v1.Role``)."""

    ADMIN = "admin"
    RIGHTS_HOLDER = "rights_holder"
    GENERATOR = "generator"
    AUDITOR = "auditor"
    LICENSEE_ADMIN = "licensee_admin"


class LifecycleState(enum.StrEnum):
    """State of rights holders and licensees."""

    ACTIVE = "active"
    ARCHIVED = "archived"


class ApiKeyState(enum.StrEnum):
    """State of an API key, derived from its revocation and expiry times."""

    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one RPC."""

    key_id: str
    role: Role
    rights_holder_id: str | None = None
    licensee_id: str | None = None


@dataclass(frozen=True, slots=True)
class RightsHolder:
    """A studio or other owner of characters."""

    id: str
    display_name: str
    legal_name: str
    contact_email: str
    revenue_share_account: str
    state: LifecycleState
    create_time: datetime
    update_time: datetime
    archive_time: datetime | None


@dataclass(frozen=True, slots=True)
class Licensee:
    """A generation service or app that renders characters under grants."""

    id: str
    display_name: str
    legal_name: str
    contact_email: str
    platform: str
    state: LifecycleState
    create_time: datetime
    update_time: datetime
    archive_time: datetime | None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key's public record; the secret exists only as a hash in storage."""

    id: str
    display_name: str
    role: Role
    rights_holder_id: str | None
    licensee_id: str | None
    expire_time: datetime | None
    creator_key_id: str
    create_time: datetime
    revoke_time: datetime | None

    def state_at(self, now: datetime) -> ApiKeyState:
        """The key's state at ``now``: revocation wins over expiry."""
        if self.revoke_time is not None:
            return ApiKeyState.REVOKED
        if self.expire_time is not None and self.expire_time <= now:
            return ApiKeyState.EXPIRED
        return ApiKeyState.ACTIVE

    def principal(self) -> Principal:
        """The caller identity this key authenticates as."""
        return Principal(self.id, self.role, self.rights_holder_id, self.licensee_id)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list: the items and the opaque token of the next page ('' at the end)."""

    items: list[T]
    next_page_token: str


class CharacterState(enum.StrEnum):
    """Whether, and how, a character may be licensed (mirrors ``charter.v1.Character.State``)."""

    OPTED_OUT = "opted_out"
    OPTED_IN = "opted_in"
    SUSPENDED = "suspended"
    ARCHIVED = "archived"


class AliasKind(enum.StrEnum):
    """What sort of name an alias is (mirrors ``charter.v1.Alias.Kind``)."""

    OFFICIAL_NAME = "official_name"
    SHORT_NAME = "short_name"
    NICKNAME = "nickname"
    ROMANIZATION = "romanization"
    TRANSLATION = "translation"
    READING = "reading"


@dataclass(frozen=True, slots=True)
class Alias:
    """Another name of a character, with its BCP 47 language tag and normalised key."""

    value: str
    language: str
    kind: AliasKind
    ambiguous: bool
    normalized: str
    derived: bool = False  # a reading the server derived from a name in kanji or hanzi


@dataclass(frozen=True, slots=True)
class Character:
    """A character owned by one rights holder. New characters are opted out."""

    id: str
    rights_holder_id: str
    external_id: str
    canonical_name: str
    franchise: str
    description: str
    reference_urls: tuple[str, ...]
    aliases: tuple[Alias, ...]
    state: CharacterState
    terms_version: int
    create_time: datetime
    update_time: datetime
    archive_time: datetime | None
    # The state to return to when a suspension is lifted.
    state_before_suspension: CharacterState | None = None
    canonical_name_ambiguous: bool = False
    keyword_sets: tuple[KeywordSet, ...] = ()

    def names(self) -> list[tuple[str, bool]]:
        """Every normalised name of the character with whether it is marked ambiguous."""
        found = {normalize(self.canonical_name): self.canonical_name_ambiguous}
        for alias in self.aliases:
            if alias.normalized:
                found[alias.normalized] = found.get(alias.normalized, True) and alias.ambiguous
        return [(key, ambiguous) for key, ambiguous in found.items() if key]

    def look_alikes(self) -> dict[str, str]:
        """The names written with look-alike characters of other scripts: normalised key → the key
        the screen's look-alike pass turns them into (see ``charter.screen``)."""
        found = {}
        for value in (self.canonical_name, *(a.value for a in self.aliases)):
            merged = look_alike_key(value)
            if merged is not None:
                found[normalize(value)] = merged
        return found


class SigningKeyState(enum.StrEnum):
    """Lifecycle of a signing key (mirrors ``charter.v1.SigningKey.State``)."""

    ACTIVE = "active"
    RETIRED = "retired"
    REVOKED = "revoked"


class SigningKeyPurpose(enum.StrEnum):
    """What a signing key signs (mirrors ``charter.v1.SigningKey.Purpose``); each purpose has its
    own active key, rotated on its own."""

    GRANTS = "grants"
    TRANSPARENCY_LOG = "transparency_log"


@dataclass(frozen=True, slots=True)
class SigningKeyRecord:
    """A signing key's public record; the private key exists only encrypted in storage."""

    key_id: str
    public_key: bytes
    state: SigningKeyState
    activate_time: datetime
    retire_time: datetime | None
    revoke_time: datetime | None
    purpose: SigningKeyPurpose = SigningKeyPurpose.GRANTS


class GrantState(enum.StrEnum):
    """Lifecycle of a grant (mirrors ``charter.v1.Grant.State``)."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class GrantRecord:
    """An issued grant. ``envelope`` is the serialized ``charter.v1.Envelope`` as signed."""

    id: str
    character_id: str
    rights_holder_id: str
    licensee_id: str
    terms_version: int
    terms: bytes
    not_before: datetime
    expire_time: datetime
    issue_time: datetime
    state: GrantState
    state_reason: str
    state_time: datetime
    envelope: bytes
    signing_key_id: str
    max_uses: int | None = None  # uses over the grant's whole validity; None: no cap


class RevocationKind(enum.StrEnum):
    """What a revocation-log entry records (mirrors ``charter.v1.RevocationEvent.Kind``)."""

    REVOKED = "revoked"
    SUSPENDED = "suspended"
    REINSTATED = "reinstated"
    CHARACTER_SUSPENDED = "char_suspended"
    CHARACTER_REINSTATED = "char_reinstated"
    CHARACTER_WITHDRAWN = "char_withdrawn"
    CHARACTER_ARCHIVED = "char_archived"
    CHARACTER_OPTED_IN = "char_opted_in"
    REGISTRY_CHANGED = "registry"  # a character's screening entry changed (registry snapshots)


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """A character as a registry snapshot holds it: what the screen needs, its owner and state."""

    screen: ScreenCharacter
    rights_holder_id: str
    state: CharacterState


@dataclass(frozen=True, slots=True)
class RevocationEvent:
    """One entry of the revocation log."""

    sequence: int
    grant_id: str
    kind: RevocationKind
    event_time: datetime
    reason: str
    character_id: str = ""  # for a character's suspension or reinstatement (grant_id is empty)
    # Who may see it (filled in for the revocation stream): the character's rights holder, the
    # grant's licensee, and for a character's event every licensee holding a grant for it.
    rights_holder_id: str = ""
    licensee_id: str = ""
    licensee_ids: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Skipped:
    """Events up to ``sequence`` were left out of a revocation stream: not the caller's."""

    sequence: int


@dataclass(frozen=True, slots=True)
class LeaseSetting:
    """The deployment's authorization lease, as the database holds it.

    ``previous_seconds`` is the lease it replaced ``since_change_seconds`` ago (by the database's
    clock): a replica that has not yet seen the change may still trust its memory that long.
    """

    seconds: float
    previous_seconds: float
    since_change_seconds: float

    @property
    def longest(self) -> float:
        """The longest any replica may still trust its memory: what a change that takes something
        away waits before it returns."""
        return max(self.seconds, self.previous_seconds - self.since_change_seconds)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The revocation stream is alive; the log goes up to ``sequence``, the key set is at
    ``key_set_version``."""

    sequence: int
    server_time: datetime
    key_set_version: str


@dataclass(frozen=True, slots=True)
class UsageEntry:
    """An accepted usage record, with what its statement line needs copied from the verified receipt."""

    id: str
    licensee_id: str
    idempotency_key: str
    fingerprint: str
    receipt_id: str
    character_id: str
    rights_holder_id: str
    grant_id: str
    uses: int
    duration_ms: int
    currency: str  # the revenue's currency, else the fee's, else empty
    revenue_minor: int
    revenue_share_bps: int
    fee_minor: int  # per use
    happen_time: datetime
    happen_period: str  # YYYY-MM of happen_time
    statement_period: str  # happen_period, or the next open month when that one was closed
    accept_time: datetime


@dataclass(frozen=True, slots=True)
class LineSums:
    """The exact integer sums of one statement line's records, before the one rounding."""

    rights_holder_id: str
    statement_period: str
    character_id: str
    licensee_id: str
    currency: str
    adjustment_for_period: str  # empty for the period's own records
    records: int
    uses: int
    duration_ms: int
    revenue_minor: int
    revenue_times_bps: int  # sum of revenue times basis points, divided by 10,000 only once per line
    fees_minor: int  # sum of fee times uses


class DailyUsage(NamedTuple):
    """Sums of a rights holder's usage records: of one UTC day and/or one character or licensee.

    A named tuple, not a dataclass like the other models: a year of usage series is thousands of
    them per answer, made from database rows as they come (``DailyUsage._make(row)``), at a third
    of a frozen dataclass's cost each.
    """

    day: str  # YYYY-MM-DD; empty in sums over a whole range
    key: str  # the character or licensee id; empty in sums over all of them
    records: int
    uses: int
    duration_ms: int


@dataclass(frozen=True, slots=True)
class UsageSeriesRows:
    """What usage series over a range are built from, summed by the database."""

    days: list[DailyUsage]
    """Each day with usage, summed over every series (``key`` empty), in order."""
    ranked: list[DailyUsage]
    """The busiest series' sums over the range (``day`` empty): most uses first, then most records, then by id."""
    series_count: int
    """How many series have usage in the range (ranked or not)."""
    series_days: list[DailyUsage]
    """The ranked series' days with usage, in no particular order."""


@dataclass(frozen=True, slots=True)
class DisplayNames:
    """Names for people, by id, as they are now: ids stay the reference, names only help reading.

    An id without a name here (a record deleted since, or not looked up) reads as an empty name.
    """

    characters: Mapping[str, str] = field(default_factory=dict)  # canonical names
    licensees: Mapping[str, str] = field(default_factory=dict)  # display names
    rights_holders: Mapping[str, str] = field(default_factory=dict)  # display names
