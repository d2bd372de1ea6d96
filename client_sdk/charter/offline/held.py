"""Held grants: the envelopes an offline authorizer holds, indexed by the character they claim,
and what each was found to be against one key ring (verified once per ring, then kept)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, final

from google.protobuf.message import Message

from charter.decide import Integrity, integrity_of
from charter.decisions import CharacterDecision
from charter.envelope import GRANT_PAYLOAD_TYPE, from_json
from charter.grants import GrantVerifier, KeyRing, PreparedGrant
from charter.terms import CompiledTerms, DenyReason
from charter.terms_sharing import compiled
from charter.v1 import grant_pb2
from charter.v1.envelope_pb2 import Envelope

if TYPE_CHECKING:
    from charter.offline.keys import LicenseeKeys

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_TIME: Final = datetime.min.replace(tzinfo=UTC)
_MAX_TIME: Final = datetime.max.replace(tzinfo=UTC)
_VERIFIED: Final = Integrity.VERIFIED
_UNSUPPORTED: Final = Integrity.UNSUPPORTED
_VALID: Final = grant_pb2.GRANT_VERDICT_VALID


@final  # (so that `type(found) is Checked` tells a checker what it is not, too)
class Checked:
    """What a held grant was found to be against one key ring; immutable once built (but for the
    denials it keeps as they are first made).

    A `charter.decide.Candidate`: its ``integrity`` is `Integrity.UNKNOWN_KEY` (its key is not
    in the ring), `Integrity.UNSUPPORTED` (its signed claims carry fields this SDK does not know),
    `Integrity.INVALID` (it fails for good against this ring), or
    `Integrity.VERIFIED`, with its window (the skew applied), terms and decisions.
    """

    __slots__ = (
        "allow",
        "character_id",
        "denials",
        "expire_time",
        "grant_id",
        "integrity",
        "not_before",
        "quota",
        "rights_holder_id",
        "ring",
        "terms",
        "terms_version",
    )

    def __init__(
        self,
        ring: KeyRing,
        character_id: str,
        claims: grant_pb2.GrantClaims | None = None,
        integrity: Integrity = Integrity.VERIFIED,
        skew_us: int = 0,
        window: tuple[datetime, datetime] | None = None,
    ) -> None:
        self.ring = ring
        self.character_id = character_id
        self.integrity = integrity
        self.grant_id = claims.grant_id if claims is not None else ""
        self.terms_version = claims.terms_version if claims is not None else 0
        self.rights_holder_id = claims.rights_holder_id if claims is not None else ""
        # Made on the first denial (a cold decision that allows needs none).
        self.denials: dict[tuple[DenyReason, ...], CharacterDecision] | None = None
        self.not_before = _MAX_TIME
        self.expire_time = _MIN_TIME
        self.terms: CompiledTerms | None = None
        self.quota = False
        self.allow: CharacterDecision | None = None
        if claims is not None and integrity is Integrity.VERIFIED:
            granted = Granted(character_id, claims)
            self.terms, self.quota, self.allow = granted.terms, granted.quota, granted.allow
            if window is not None:  # the verifier's, as it judged the grant
                self.not_before, self.expire_time = window
            else:
                # The verifier's window, skew included, rounded so that it never grows.
                not_before, expire = claims.not_before, claims.expire_time
                self.not_before = _limit(not_before.seconds, -(-not_before.nanos // 1000) - skew_us)
                self.expire_time = _limit(expire.seconds, expire.nanos // 1000 + skew_us)

    def denial(self, reasons: tuple[DenyReason, ...]) -> CharacterDecision:
        """The (shared) denial of this grant's character with ``reasons``."""
        denials = self.denials
        if denials is None:
            denials = self.denials = {}
        found = denials.get(reasons)
        if found is None:
            found = CharacterDecision(
                character_id=self.character_id,
                allowed=False,
                reasons=reasons,
                grant_id=self.grant_id,
                terms_version=self.terms_version,
                rights_holder_id=self.rights_holder_id,
            )
            if len(denials) < 64:  # bounded: at most 2**10 combinations exist
                denials[reasons] = found
        return found


class Granted:
    """What a held grant's claims give it once its signature verified: its compiled terms, whether
    the server counts its uses, and its allowing decision.

    Worked out from the claims parsed when the grant is added (`parse`), so that its first
    decision does not; trusted only by `check`, once the verifier found a signature over the PAE
    of those very payload bytes (`charter.grants.PreparedGrant`) and every check of its own
    passed, and then only for the ring it was checked against.
    """

    __slots__ = (
        "allow",
        "character_id",
        "grant_id",
        "quota",
        "ready",
        "rights_holder_id",
        "terms",
        "terms_version",
        "unsupported",
    )

    def __init__(
        self,
        character_id: str,
        claims: grant_pb2.GrantClaims,
        ring: KeyRing | None = None,
        window: tuple[datetime, datetime] | None = None,
    ) -> None:
        self.character_id = character_id
        self.grant_id = claims.grant_id
        self.terms_version = claims.terms_version
        self.rights_holder_id = claims.rights_holder_id
        self.unsupported = has_unknown_fields(claims)
        # Shared by content: a licensee's grants under one rights holder's standard terms.
        terms = compiled(claims.terms)
        self.terms = terms
        # Quotas and a grant's cap are counted by the server alone.
        self.quota = terms.daily_quota is not None or terms.monthly_quota is not None or claims.HasField("max_uses")
        # By position (a keyword call of a class builds a dict): character, allowed, reasons,
        # grant, terms version, obligations, rights holder.
        self.allow = CharacterDecision(
            character_id, True, (), self.grant_id, self.terms_version, terms.obligations, self.rights_holder_id
        )
        # What `check` gives for the ring current when the grant is added, made now (with the
        # one-grant candidates tuple) so that the first decision allocates neither: fewer objects
        # made on a cold decision, fewer collections of the garbage collector amortized onto it.
        # Immutable, and given out only by `check`, once the grant verified against that ring.
        self.ready: tuple[Checked] | None = None
        if ring is not None and window is not None:
            self.ready = (self.checked(ring, window),)

    def checked(self, ring: KeyRing, window: tuple[datetime, datetime]) -> Checked:
        """A new `Checked` of the grant as found verified against ``ring``, with the verifier's
        window; for `check` only, once the grant verified against that ring."""
        found = _new_checked(Checked)
        found.ring = ring
        found.character_id = self.character_id
        found.integrity = _VERIFIED
        found.grant_id = self.grant_id
        found.terms_version = self.terms_version
        found.rights_holder_id = self.rights_holder_id
        found.denials = None
        found.not_before, found.expire_time = window
        found.terms = self.terms
        found.quota = self.quota
        found.allow = self.allow
        return found


_new_checked: Final = object.__new__


def has_unknown_fields(message: Message) -> bool:
    """Whether ``message`` or any message in it carries fields this SDK's protos do not define
    (a newer server's claims or terms: they may restrict the use in ways this SDK cannot evaluate)."""
    known = type(message)()
    known.CopyFrom(message)
    known.DiscardUnknownFields()  # recursive (protobuf's documented API)
    return known.ByteSize() != message.ByteSize()


def _limit(seconds: int, micros: int) -> datetime:
    try:
        return _EPOCH + timedelta(0, seconds, micros)
    except OverflowError:
        return _MAX_TIME if seconds > 0 else _MIN_TIME


class Held:
    """A grant envelope the authorizer holds, indexed by the character its payload claims.

    The claims are parsed once, when the grant is added, before verification: to index and order
    the grants, and to work out what they would give (`Granted`); nothing of it is trusted until
    a signature verified over the very bytes they were parsed from (`check`).
    """

    __slots__ = ("_envelope", "character_id", "checked", "granted", "issued", "prepared")

    def __init__(
        self, prepared: PreparedGrant, claims: grant_pb2.GrantClaims, skew_us: int = 0, ring: KeyRing | None = None
    ) -> None:
        self.prepared = prepared
        self.checked: Checked | None = None
        self.granted: Granted | None = None
        claimed = prepared.claimed
        if claimed.usable:  # (claims a verifier cannot accept are never VERIFIED)
            self.character_id = claimed.character_id
            self.issued = divmod(claimed.issue_ns, 1_000_000_000)  # (seconds, nanos), read once
            # The window as the authorizer's verifier will judge it (kept on the claims).
            self.granted = Granted(self.character_id, claims, ring, claimed.limits(skew_us))
        else:
            self.character_id = claims.character_id
            self.issued = (claims.issue_time.seconds, claims.issue_time.nanos)
        self._envelope: Envelope | None = None

    @property
    def envelope(self) -> Envelope:
        """The envelope, to present to the server (built once, when first asked for)."""
        envelope = self._envelope
        if envelope is None:
            envelope = self._envelope = self.prepared.to_envelope()
        return envelope


class CharacterGrants:
    """One character's held grants, newest first, with what they were last found to be against
    one key ring.

    Attributes:
        grants: The grants, newest first.
        candidates: One `Checked` per grant, in the same order, all against the same ring (the
            ring of the first); empty before the first decision. Replaced whole, so a reader
            takes one reference and needs no lock.
    """

    # A warm decision takes `candidates` as it is (building them again took about a tenth of
    # it); a grant's `Checked` against a ring never changes once made, so the tuple stays right
    # until the ring does. Slots, not a tuple subclass: setting an attribute on one made it a
    # dict (one more object on every cold decision), and reading it was a generic look-up.
    __slots__ = ("candidates", "grants")

    def __init__(self, grants: Iterable[Held]) -> None:
        self.grants: tuple[Held, ...] = tuple(grants)
        self.candidates: tuple[Checked, ...] = ()

    def __iter__(self) -> Iterator[Held]:
        return iter(self.grants)

    def __len__(self) -> int:
        return len(self.grants)

    def against(
        self, ring: KeyRing, now: datetime, check: Callable[[Held, KeyRing, datetime], Checked]
    ) -> tuple[Checked, ...]:
        """The grants' `Checked` against ``ring``, verifying (with ``check``) those not yet
        checked against it; kept as `candidates`."""
        grants = self.grants
        if len(grants) == 1:  # (the common case, written out: it is on every cold decision)
            grant = grants[0]
            checked = grant.checked
            if checked is None or checked.ring is not ring:
                checked = check(grant, ring, now)
            granted = grant.granted
            ready = None if granted is None else granted.ready
            # The tuple made when the grant was added, when it holds this very `Checked`.
            candidates: tuple[Checked, ...] = ready if ready is not None and ready[0] is checked else (checked,)
        else:
            found: list[Checked] = []
            for grant in grants:
                checked = grant.checked
                if checked is None or checked.ring is not ring:
                    checked = check(grant, ring, now)
                found.append(checked)
            candidates = tuple(found)
        self.candidates = candidates
        return candidates


class HeldGrants:
    """The held grants by character, newest first (by claimed issue time); thread-safe.

    The mapping is replaced whole when grants are added (copy on write), so a reader takes one
    reference and needs no lock.
    """

    def __init__(self, skew_us: int = 0, keys: LicenseeKeys | None = None) -> None:
        self.by_character: dict[str, CharacterGrants] = {}
        self._skew_us = skew_us
        self._keys = keys  # the key set, for the ring a grant's `Checked` is made ready for
        self._digests: set[bytes] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return sum(len(same) for same in self.by_character.values())

    def add(self, grants: Iterable[Envelope | str]) -> int:
        """Hold more grants (see `charter.offline.OfflineAuthorizer.add_grants`); how many were new."""
        ring = None if self._keys is None else self._keys.ring
        parsed = [parse(grant, self._skew_us, ring) for grant in grants]
        with self._lock:
            held = {character_id: list(same.grants) for character_id, same in self.by_character.items()}
            added = 0
            for key, new in parsed:
                if key in self._digests:
                    continue
                self._digests.add(key)
                held.setdefault(new.character_id, []).append(new)
                added += 1
            if added:
                self.by_character = {
                    character_id: CharacterGrants(sorted(same, key=lambda g: g.issued, reverse=True))
                    for character_id, same in held.items()
                }
        return added


def parse(grant: Envelope | str, skew_us: int = 0, ring: KeyRing | None = None) -> tuple[bytes, Held]:
    """A grant to hold, with its digest (to skip one held already); ``skew_us`` is the skew of
    the verifier that will check it, ``ring`` the key ring it will likely be checked against.

    Raises:
        ValueError: Not a grant envelope (see `charter.offline.OfflineAuthorizer.add_grants`).
        TypeError: Neither an ``Envelope`` nor a string.
    """
    if isinstance(grant, str):
        envelope = from_json(grant)
    elif isinstance(grant, Envelope):
        envelope = grant  # read once into immutable values: later changes to it are not seen
    else:
        raise TypeError("a grant is a charter.v1.Envelope or its DSSE JSON text")
    prepared = PreparedGrant(envelope)  # the payload parsed once, here (its claims unverified)
    if prepared.payload_type != GRANT_PAYLOAD_TYPE:
        raise ValueError(f"not a grant envelope: payload type {prepared.payload_type!r}")
    if not prepared.signatures:
        raise ValueError("a grant envelope needs at least one signature")
    claims = prepared.claimed.claims
    if claims is None:  # DecodeError, or anything a hostile payload provokes
        raise ValueError("the grant's payload is not GrantClaims")
    return prepared.digest, Held(prepared, claims, skew_us, ring)


def check(
    verifier: GrantVerifier, grant: Held, ring: KeyRing, licensee_id: str, now: datetime, skew_us: int
) -> Checked:
    """Verify a held grant against ``ring`` (the cold path) and remember the outcome on it."""
    # (`verify_prepared` by position: a keyword call costs more than the checks it makes)
    result, window = verifier._verify_prepared(grant.prepared, ring, licensee_id, grant.character_id, now, None)
    claims = result.claims
    # The window and the state are judged per decision (`charter.decide`), so the outcome kept
    # here does not depend on the time.
    if result.verdict == _VALID:
        integrity = _VERIFIED  # the verifier found the claims for this licensee and character
    else:
        integrity = integrity_of(result, licensee_id=licensee_id, character_id=grant.character_id)
    if integrity is _VERIFIED:
        assert claims is not None
        granted = grant.granted
        if granted is not None and claims is grant.prepared.claimed.claims:
            unsupported = granted.unsupported  # (worked out once, when the grant was added)
        else:
            unsupported = has_unknown_fields(claims)
        if unsupported:
            integrity = _UNSUPPORTED  # not judged here: the server decides
    if integrity is _VERIFIED:
        assert claims is not None and window is not None
        granted = grant.granted
        if granted is not None and claims is grant.prepared.claimed.claims:
            # The verifier took the claims parsed when the grant was added, once the signature
            # verified over the PAE of those very bytes: what they give was worked out then.
            # `ready` when it was made for this ring and window, else a new one.
            ready = granted.ready
            if (
                ready is not None
                and (found := ready[0]).ring is ring
                and found.not_before == window[0]
                and found.expire_time == window[1]
            ):
                checked = found
            else:
                checked = granted.checked(ring, window)
        else:  # claims it remembered from another form of the same envelope (the same digest)
            checked = Checked(ring, grant.character_id, claims, _VERIFIED, skew_us, window)  # (by position)
    elif integrity is Integrity.UNKNOWN_KEY or integrity is _UNSUPPORTED:
        checked = Checked(ring, grant.character_id, integrity=integrity)
    else:
        checked = Checked(ring, grant.character_id, claims=claims, integrity=integrity)
    grant.checked = checked
    return checked
