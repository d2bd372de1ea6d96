"""Grants: issue (signed DSSE envelopes), read, list, suspend, reinstate, revoke; the revocation log;
verification for integrators. Verification itself is the SDK's shared core (``charter.grants``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from charter.envelope import (
    GRANT_PAYLOAD_TYPE,
    MAX_ENVELOPE_BYTES,
    MAX_SIGNATURES,
    MalformedEnvelope,
    from_json,
    sign,
)
from charter.grants import GrantStatus, GrantVerifier, Verification
from charter.v1 import envelope_pb2, grant_pb2, terms_pb2
from google.protobuf import timestamp_pb2

from charter_server.domain import ids
from charter_server.domain.clock import Clock
from charter_server.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from charter_server.domain.models import (
    CharacterState,
    DisplayNames,
    GrantRecord,
    GrantState,
    LifecycleState,
    Page,
    Principal,
    RevocationKind,
    Role,
)
from charter_server.services import pagination
from charter_server.services.idempotency import create_once
from charter_server.services.keys import KeyService
from charter_server.services.narrowing import wider_fields
from charter_server.services.ownership import not_owned, require_generator_licensee, scoped_rights_holder
from charter_server.services.terms_rules import canonical, check_terms
from charter_server.services.validation import Checker, check_id
from charter_server.storage.database import Database
from charter_server.storage.uow import UnitOfWork

log = structlog.get_logger(__name__)

_STATUS = {
    GrantState.ACTIVE: GrantStatus.ACTIVE,
    GrantState.SUSPENDED: GrantStatus.SUSPENDED,
    GrantState.REVOKED: GrantStatus.REVOKED,
}


@dataclass(frozen=True, slots=True)
class IssueInput:
    """What staff ask for when issuing a grant."""

    character_id: str
    licensee_id: str
    expire_time: datetime | None
    not_before: datetime | None = None
    # Serialized charter.v1.Terms; None means the current terms. An empty narrowing (b"") is set,
    # so it is validated (and refused), never mistaken for "no narrowing".
    narrowed_terms: bytes | None = None
    max_uses: int | None = None  # over the grant's whole validity; None: no cap


def _stamp(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _check_envelope_bounds(checker: Checker, envelope: envelope_pb2.Envelope | str) -> None:
    """The envelope's size and signature count, within the documented limits (a bad envelope is
    otherwise a verdict, but one over the limits is refused before any work)."""
    if isinstance(envelope, str):
        if len(envelope.encode("utf-8", "surrogatepass")) > MAX_ENVELOPE_BYTES:
            checker.add("envelope_json", f"must be at most {MAX_ENVELOPE_BYTES} bytes")
            return
        try:
            signatures = len(from_json(envelope).signatures)
        except MalformedEnvelope:
            return  # a verdict: MALFORMED
        if signatures > MAX_SIGNATURES:
            checker.add("envelope_json", f"must hold at most {MAX_SIGNATURES} signatures")
        return
    if envelope.ByteSize() > MAX_ENVELOPE_BYTES:
        checker.add("envelope", f"must be at most {MAX_ENVELOPE_BYTES} bytes")
    elif len(envelope.signatures) > MAX_SIGNATURES:
        checker.add("envelope.signatures", f"must hold at most {MAX_SIGNATURES} signatures")


def _require_grant_owner(principal: Principal, grant: GrantRecord | None) -> GrantRecord:
    """Rights-holder keys reach only grants of their own characters; existence is not revealed."""
    if principal.role is Role.RIGHTS_HOLDER and (grant is None or grant.rights_holder_id != principal.rights_holder_id):
        raise not_owned()
    if grant is None:
        raise NotFound("no such grant", reason="GRANT_NOT_FOUND")
    return grant


class GrantService:
    """The grant lifecycle and the revocation log."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        keys: KeyService,
        *,
        issuer: str,
        max_lifetime: timedelta,
        skew: timedelta,
    ) -> None:
        # Issuing and state changes announce themselves (``GrantIssued``, ``GrantStateChanged``,
        # ``RevocationAppended``; see ``storage.uow``): the view and the revocation feed subscribe.
        self._db = db
        self._clock = clock
        self._keys = keys
        self._issuer = issuer
        self._max_lifetime = max_lifetime
        self.verifier = GrantVerifier(skew=skew)

    def issue(self, principal: Principal, value: IssueInput, *, request_id: str = "") -> GrantRecord:
        """Issue a signed grant under the character's current (or narrowed) terms."""
        now = self._clock.now()
        narrowed = terms_pb2.Terms.FromString(value.narrowed_terms) if value.narrowed_terms is not None else None
        not_before = value.not_before or now
        checker = Checker()
        checker.resource_id("character_id", value.character_id, "character")
        checker.resource_id("licensee_id", value.licensee_id, "licensee")
        checker.request_id(request_id)
        if value.expire_time is None:
            checker.add("expire_time", "is required")
        else:
            if value.expire_time <= not_before:
                checker.add("expire_time", "must be after not_before")
            elif value.expire_time - not_before > self._max_lifetime:
                checker.add("expire_time", f"must be at most {self._max_lifetime.days} days after not_before")
            if value.expire_time <= now:
                checker.add("expire_time", "must be in the future")
        if narrowed is not None:
            check_terms(checker, narrowed, "narrowed_terms", character_id=value.character_id)
        if value.max_uses is not None and value.max_uses < 0:
            checker.add("max_uses", "must not be negative")
        checker.done()
        assert value.expire_time is not None

        def create(uow: UnitOfWork) -> str:
            return self._issue_in(uow, value, narrowed, not_before)

        grant, created = create_once(
            self._db, self._clock, principal, "IssueGrant", request_id, value, create, self._load
        )
        if created:
            log.info(
                "grant.issued",
                grant_id=grant.id,
                character_id=grant.character_id,
                licensee_id=grant.licensee_id,
                signing_key_id=grant.signing_key_id,
            )
        return grant

    def _issue_in(
        self,
        uow: UnitOfWork,
        value: IssueInput,
        narrowed: terms_pb2.Terms | None,
        not_before: datetime,
    ) -> str:
        """Check the character, licensee and terms, then sign and store the grant; returns its id."""
        character = uow.characters.get(value.character_id, for_update=True)
        if character is None:
            raise NotFound("no such character", reason="CHARACTER_NOT_FOUND")
        if character.state is not CharacterState.OPTED_IN:
            reason = "CHARACTER_SUSPENDED" if character.state is CharacterState.SUSPENDED else "CHARACTER_NOT_OPTED_IN"
            raise FailedPrecondition("the character is not opted in", reason=reason)
        licensee = uow.licensees.get(value.licensee_id)
        if licensee is None:
            raise NotFound("no such licensee", reason="LICENSEE_NOT_FOUND")
        if licensee.state is LifecycleState.ARCHIVED:
            raise FailedPrecondition("the licensee is archived", reason="LICENSEE_ARCHIVED")
        current = uow.terms.get(character.id, character.terms_version)
        assert current is not None  # an opted-in character has terms in force
        if (current.allowed_licensee_ids and licensee.id not in current.allowed_licensee_ids) or (
            current.allowed_platforms and licensee.platform not in current.allowed_platforms
        ):
            raise FailedPrecondition(
                "the character's terms do not allow this licensee", reason="LICENSEE_NOT_PERMITTED_BY_TERMS"
            )
        granted = canonical(current)
        if narrowed is not None:
            wider = wider_fields(canonical(narrowed), granted)
            if wider:
                error = InvalidArgument(wider)
                error.reason = "TERMS_WIDER_THAN_CHARACTER"
                raise error
            granted = canonical(narrowed)
            # The narrowing may drop the very licensee from its lists: a grant whose own terms
            # exclude its licensee would promise nothing.
            if (granted.allowed_licensee_ids and licensee.id not in granted.allowed_licensee_ids) or (
                granted.allowed_platforms and licensee.platform not in granted.allowed_platforms
            ):
                raise FailedPrecondition(
                    "the narrowed terms do not allow this licensee", reason="LICENSEE_NOT_PERMITTED_BY_TERMS"
                )
        # Read the active key in this transaction: another replica may have rotated since.
        signer = self._keys.signer(uow)
        grant_id = ids.new_id("grant")
        issued = self._clock.now()
        claims = grant_pb2.GrantClaims(
            grant_id=grant_id,
            character_id=character.id,
            rights_holder_id=character.rights_holder_id,
            licensee_id=licensee.id,
            terms=granted,
            terms_version=character.terms_version,
            issue_time=_stamp(issued),
            not_before=_stamp(not_before),
            expire_time=_stamp(value.expire_time),  # type: ignore[arg-type]
            issuer=self._issuer,
            max_uses=value.max_uses,
        )
        envelope = sign(
            claims.SerializeToString(), GRANT_PAYLOAD_TYPE, key_id=signer.key_id, private_key=signer.signing_key
        )
        uow.grants.add(
            GrantRecord(
                id=grant_id,
                character_id=character.id,
                rights_holder_id=character.rights_holder_id,
                licensee_id=licensee.id,
                terms_version=character.terms_version,
                terms=granted.SerializeToString(),
                not_before=not_before,
                expire_time=value.expire_time,  # type: ignore[arg-type]
                issue_time=issued,
                state=GrantState.ACTIVE,
                state_reason="",
                state_time=issued,
                envelope=envelope.SerializeToString(),
                signing_key_id=signer.key_id,
                max_uses=value.max_uses,
            )
        )
        return grant_id

    def get(self, principal: Principal, grant_id: str) -> GrantRecord:
        """One grant."""
        check_id("id", grant_id, "grant")
        with self._db.uow() as uow:
            return _require_grant_owner(principal, uow.grants.get(grant_id))

    def list(
        self,
        principal: Principal,
        *,
        character_id: str,
        licensee_id: str,
        rights_holder_id: str,
        state: GrantState | None,
        page_size: int,
        page_token: str,
    ) -> Page[GrantRecord]:
        """A page of grants, newest first; a rights-holder key sees only its own characters' grants."""
        checker = Checker()
        checker.resource_id("character_id", character_id, "character", required=False)
        checker.resource_id("licensee_id", licensee_id, "licensee", required=False)
        checker.resource_id("rights_holder_id", rights_holder_id, "rights_holder", required=False)
        checker.done()
        rights_holder_id = scoped_rights_holder(principal, rights_holder_id)
        size = pagination.page_size(page_size)
        filters = f"grants|{character_id}|{licensee_id}|{rights_holder_id}|{state}"
        before = pagination.decode(self._db.page_token_key(), page_token, filters)
        with self._db.uow() as uow:
            items, more = uow.grants.list(
                character_id=character_id,
                licensee_id=licensee_id,
                rights_holder_id=rights_holder_id,
                state=state,
                before=before,
                limit=size,
            )
        return Page(items, pagination.encode(self._db.page_token_key(), more, filters))

    def names_of(self, grants: Sequence[GrantRecord]) -> DisplayNames:
        """The names of the grants' characters and licensees, for people; the caller already may see
        the grants, and with them who holds them."""
        with self._db.uow() as uow:
            return uow.display_names.lookup(
                character_ids={g.character_id for g in grants}, licensee_ids={g.licensee_id for g in grants}
            )

    def suspend(self, principal: Principal, grant_id: str, reason: str) -> tuple[GrantRecord, int]:
        """Suspend an active grant; returns the grant and the revocation-log sequence number."""
        return self._transition(principal, grant_id, reason, RevocationKind.SUSPENDED, required=True)

    def reinstate(self, principal: Principal, grant_id: str) -> tuple[GrantRecord, int]:
        """Lift a suspension."""
        return self._transition(principal, grant_id, "", RevocationKind.REINSTATED, required=False)

    def revoke(self, principal: Principal, grant_id: str, reason: str) -> tuple[GrantRecord, int]:
        """Revoke a grant for good; returns the revocation-log sequence number."""
        return self._transition(principal, grant_id, reason, RevocationKind.REVOKED, required=True)

    def revoke_for_character(self, uow: UnitOfWork, principal: Principal, character_id: str, reason: str) -> int:
        """The opt-out hook: revoke every live grant of a character inside the caller's unit of work."""
        now = self._clock.now()
        grant_ids = uow.grants.live_for_character(character_id)
        for grant_id in grant_ids:
            uow.grants.set_state(grant_id, GrantState.REVOKED, reason[:500], now)
            uow.revocations.append(grant_id, RevocationKind.REVOKED, now, reason[:500])
        if grant_ids:
            log.info("grants.revoked_for_character", character_id=character_id, count=len(grant_ids))
        return len(grant_ids)

    def verify(
        self,
        principal: Principal,
        envelope: envelope_pb2.Envelope | str | None,
        *,
        licensee_id: str,
        character_id: str,
    ) -> Verification:
        """Verify an envelope (protobuf or DSSE JSON) with the server's key ring and the grants' states.

        A bad envelope is a verdict, not an error; only the request's own fields are validated.
        """
        checker = Checker()
        checker.resource_id("licensee_id", licensee_id, "licensee")
        checker.resource_id("character_id", character_id, "character")
        if envelope is None:
            checker.add("envelope", "is required (envelope or envelope_json)")
        elif isinstance(envelope, str) and not envelope:
            checker.add("envelope_json", "is empty")
        else:
            _check_envelope_bounds(checker, envelope)
        checker.done()
        assert envelope is not None
        require_generator_licensee(principal, licensee_id)

        def status(grant_id: str) -> GrantStatus:
            with self._db.uow() as uow:
                state = uow.grants.states([grant_id]).get(grant_id)
            return _STATUS[state] if state is not None else GrantStatus.REVOKED

        result = self.verifier.verify(
            envelope,
            keys=self._keys.key_ring(),
            licensee_id=licensee_id,
            character_id=character_id,
            now=self._clock.now(),
            status=status,
        )
        if not result.valid or result.claims is None:
            return result
        verdict = self._standing(result.claims)
        return (
            result if verdict == grant_pb2.GRANT_VERDICT_VALID else Verification(verdict, result.claims, result.key_id)
        )

    def _standing(self, claims: grant_pb2.GrantClaims) -> int:
        """What else ``Authorize`` would deny a grant that verifies for: its licensee archived, its
        character suspended or not opted in, its lifetime cap of uses spent (in that order)."""
        with self._db.uow() as uow:
            licensee = uow.licensees.get(claims.licensee_id)
            character = uow.characters.get(claims.character_id)
            used = uow.quotas.grant_used(claims.grant_id) if claims.HasField("max_uses") else 0
        if licensee is None or licensee.state is LifecycleState.ARCHIVED:
            return grant_pb2.GRANT_VERDICT_LICENSEE_ARCHIVED
        if character is None or character.state is not CharacterState.OPTED_IN:
            if character is not None and character.state is CharacterState.SUSPENDED:
                return grant_pb2.GRANT_VERDICT_CHARACTER_SUSPENDED
            return grant_pb2.GRANT_VERDICT_CHARACTER_NOT_OPTED_IN
        if claims.HasField("max_uses") and used >= claims.max_uses:
            return grant_pb2.GRANT_VERDICT_USES_EXHAUSTED
        return grant_pb2.GRANT_VERDICT_VALID

    def _transition(
        self, principal: Principal, grant_id: str, reason: str, kind: RevocationKind, *, required: bool
    ) -> tuple[GrantRecord, int]:
        checker = Checker()
        checker.resource_id("id", grant_id, "grant")
        checker.text("reason", reason, max_len=500, required=required)
        checker.done()
        with self._db.uow(write=True) as uow:
            grant = _require_grant_owner(principal, uow.grants.get(grant_id, for_update=True))
            if grant.state is GrantState.REVOKED:
                raise FailedPrecondition("the grant is revoked", reason="GRANT_REVOKED")
            if kind is RevocationKind.SUSPENDED and grant.state is GrantState.SUSPENDED:
                raise FailedPrecondition("the grant is already suspended", reason="GRANT_ALREADY_SUSPENDED")
            if kind is RevocationKind.REINSTATED and grant.state is not GrantState.SUSPENDED:
                raise FailedPrecondition("the grant is not suspended", reason="GRANT_NOT_SUSPENDED")
            new_state = {
                RevocationKind.SUSPENDED: GrantState.SUSPENDED,
                RevocationKind.REINSTATED: GrantState.ACTIVE,
                RevocationKind.REVOKED: GrantState.REVOKED,
            }[kind]
            now = self._clock.now()
            uow.grants.set_state(grant_id, new_state, reason, now)
            sequence = uow.revocations.append(grant_id, kind, now, reason)
            grant = dataclasses.replace(grant, state=new_state, state_reason=reason, state_time=now)
            uow.commit()
        log.info(f"grant.{kind.value}", grant_id=grant_id, sequence=sequence)
        return grant, sequence

    @staticmethod
    def _load(uow: UnitOfWork, grant_id: str) -> GrantRecord:
        grant = uow.grants.get(grant_id)
        if grant is None:
            raise NotFound("no such grant", reason="GRANT_NOT_FOUND")
        return grant
