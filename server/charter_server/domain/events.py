"""Domain events: what a committed change did, announced by the unit of work.

Repositories raise these on the writes that matter (and services may raise their own with
``uow.raise_event``); the unit of work (``charter_server.storage.uow``) collects them, bumps the
authorization epoch once when one of them ``affects_authorization``, and publishes them after
commit, in the order raised. Subscribers decide from the events alone what to do: the
authorization view waits out the lease when an event ``takes_away`` permission, the revocation
stream wakes its watchers on `RevocationAppended`, the transparency log appends an entry per event.

Each event carries the ids a tenant needs to see whether it concerns them (the rights holder of a
character, the licensee of a grant), never secrets. Two properties tell a subscriber what it may
mean for ``Authorize``:

``affects_authorization``
    The change is to something ``Authorize`` reads (characters, licensees, grants, signing and API
    keys): servers must reload their view. Events without it (a rights holder renamed, a period
    closed) change what is owed or shown, not what is allowed.
``takes_away``
    The change may turn an answer that allowed into one that denies (a grant suspended, a
    character opted out, a key revoked). The caller's RPC then returns only once no server can
    still decide on a view from before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

from charter_server.domain.models import (
    CharacterState,
    GrantState,
    LifecycleState,
    RevocationKind,
    SigningKeyState,
)


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """The base of every event; see the module docstring."""

    affects_authorization: ClassVar[bool] = False

    @property
    def takes_away(self) -> bool:
        """Whether this change may take away a permission that was there before."""
        return False


class EventSink(Protocol):
    """Where repositories and services raise events: the unit of work."""

    def raise_event(self, event: DomainEvent) -> None:
        """Collect ``event``; it is published only if the transaction commits."""


# Catalogue: rights holders and licensees -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RightsHolderCreated(DomainEvent):
    """A rights holder was created."""

    rights_holder_id: str


@dataclass(frozen=True, slots=True)
class RightsHolderChanged(DomainEvent):
    """A rights holder's profile or state changed (``Authorize`` does not read rights holders)."""

    rights_holder_id: str
    state_before: LifecycleState
    state_after: LifecycleState


@dataclass(frozen=True, slots=True)
class LicenseeCreated(DomainEvent):
    """A licensee was created (it holds no grant yet, so nothing is allowed by it)."""

    licensee_id: str


@dataclass(frozen=True, slots=True)
class LicenseeChanged(DomainEvent):
    """A licensee was written: its platform or state may have changed."""

    affects_authorization: ClassVar[bool] = True

    licensee_id: str
    platform_before: str
    platform_after: str
    state_before: LifecycleState
    state_after: LifecycleState

    @property
    def platform_changed(self) -> bool:
        """Whether the platform changed (grants' platform terms are checked against it)."""
        return self.platform_before != self.platform_after

    @property
    def takes_away(self) -> bool:
        """A new platform may fall outside its grants' terms; an archived licensee is denied."""
        archived = self.state_after is LifecycleState.ARCHIVED and self.state_before is not LifecycleState.ARCHIVED
        return self.platform_changed or archived


# Characters and terms ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CharacterCreated(DomainEvent):
    """A character was created, opted out (nothing may be rendered yet)."""

    character_id: str
    rights_holder_id: str


@dataclass(frozen=True, slots=True)
class CharacterStateChanged(DomainEvent):
    """A character's state (or the state a suspension returns to) changed."""

    affects_authorization: ClassVar[bool] = True

    character_id: str
    rights_holder_id: str
    state_before: CharacterState
    state_after: CharacterState

    @property
    def takes_away(self) -> bool:
        """Suspending or archiving always does (staff expect it to hold at once); so does any move
        away from opted in."""
        if self.state_after in (CharacterState.SUSPENDED, CharacterState.ARCHIVED):
            return True
        return self.state_before is CharacterState.OPTED_IN and self.state_after is not CharacterState.OPTED_IN


@dataclass(frozen=True, slots=True)
class AliasesChanged(DomainEvent):
    """A character's names (canonical name or aliases) changed: the screen's index moves."""

    affects_authorization: ClassVar[bool] = True

    character_id: str
    rights_holder_id: str


@dataclass(frozen=True, slots=True)
class CharacterChanged(DomainEvent):
    """A character was written without a change of state or names (details, terms version)."""

    affects_authorization: ClassVar[bool] = True

    character_id: str
    rights_holder_id: str


@dataclass(frozen=True, slots=True)
class TermsChanged(DomainEvent):
    """A new terms version of a character was stored (grants keep the terms they were issued under)."""

    character_id: str
    version: int


# Grants and the revocation log ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GrantIssued(DomainEvent):
    """A grant was issued."""

    affects_authorization: ClassVar[bool] = True

    grant_id: str
    character_id: str
    rights_holder_id: str
    licensee_id: str


@dataclass(frozen=True, slots=True)
class GrantStateChanged(DomainEvent):
    """A grant was suspended, reinstated or revoked."""

    affects_authorization: ClassVar[bool] = True

    grant_id: str
    character_id: str
    rights_holder_id: str
    licensee_id: str
    state_before: GrantState
    state_after: GrantState

    @property
    def takes_away(self) -> bool:
        """Any state but active denies."""
        return self.state_after is not GrantState.ACTIVE


@dataclass(frozen=True, slots=True)
class RevocationAppended(DomainEvent):
    """An event was appended to the revocation log (offline authorizers read it)."""

    sequence: int
    kind: RevocationKind
    grant_id: str
    character_id: str


# Keys ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SigningKeyAdded(DomainEvent):
    """A new signing key was made active (the first one, or by rotation)."""

    affects_authorization: ClassVar[bool] = True

    key_id: str


@dataclass(frozen=True, slots=True)
class SigningKeyStateChanged(DomainEvent):
    """A signing key was retired (rotation) or revoked; a retired key still verifies."""

    affects_authorization: ClassVar[bool] = True

    key_id: str
    state_before: SigningKeyState
    state_after: SigningKeyState

    @property
    def takes_away(self) -> bool:
        """A revoked key's grants stop verifying."""
        return self.state_after is SigningKeyState.REVOKED and self.state_before is not SigningKeyState.REVOKED


@dataclass(frozen=True, slots=True)
class ApiKeyCreated(DomainEvent):
    """An API key was created."""

    api_key_id: str
    role: str
    rights_holder_id: str | None
    licensee_id: str | None


@dataclass(frozen=True, slots=True)
class ApiKeyRevoked(DomainEvent):
    """An API key was revoked: once the call returns, no server accepts it."""

    affects_authorization: ClassVar[bool] = True

    api_key_id: str
    rights_holder_id: str | None
    licensee_id: str | None

    @property
    def takes_away(self) -> bool:
        """Its holder loses every permission."""
        return True


@dataclass(frozen=True, slots=True)
class LicenseeKeyChanged(DomainEvent):
    """A licensee key (for offline decision records) was registered, retired or revoked; which
    records ``ReportUsage`` accepts changes, not what ``Authorize`` answers."""

    key_id: str
    licensee_id: str
    state: str  # the key's state after the change: "active", "retired" or "revoked"
    reason: str = ""  # why, for a revocation


@dataclass(frozen=True, slots=True)
class QuotaLeaseChanged(DomainEvent):
    """A quota lease was leased, renewed, returned or reclaimed: uses counted against a grant's
    quotas and cap, or given back to them."""

    lease_id: str
    action: str  # "leased", "renewed", "returned" or "reclaimed"


# Statements ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatementPeriodClosed(DomainEvent):
    """A rights holder's statement period was closed."""

    rights_holder_id: str
    period: str
