"""Generation-time authorization: ``Authorize`` decides every character of a request from memory.

**What is decided.** Every character the request declares, and every character its prompt names
(``charter_server.services.screening``; a match of an alias marked ambiguous is reported but
decided only if declared), gets one decision, in this order of checks:

1. the licensee is archived → ``LICENSEE_ARCHIVED``;
2. the character is suspended → ``CHARACTER_SUSPENDED``; not opted in → ``CHARACTER_NOT_OPTED_IN``;
3. the candidate grants are the ones the request presents for the character, if any (each
   verified with the shared ``charter.grants`` verifier), otherwise the licensee's grants on
   record; none → ``NO_GRANT``;
4. each candidate, newest first: revoked, suspended, not yet valid, expired, or (presented)
   failing verification, or signed by a key revoked since → a ``GRANT_*`` reason; otherwise its
   terms are evaluated by the shared pure evaluator (``charter.terms``) against the use context,
   the licensee, its platform, the server's time and the request's other characters. The first
   candidate that allows decides; when none does, the reasons reported are those of the newest
   candidate whose grant itself is good (its failed terms), or else of the newest candidate.

The request is allowed only if every decided character is. Then, and only then, uses under terms
with a daily or monthly quota, and under grants with a lifetime cap (``max_uses``), are counted:
one conditional update per quota in one transaction,
so that concurrent requests on any number of servers never exceed a quota; when one is used up,
nothing is counted, the character is denied with ``QUOTA_EXHAUSTED`` and so is the request. A
request with a ``request_id`` whose decision counted a quota is kept, so a retry returns it rather
than counting again (a concurrent copy that lost the race is ``ABORTED``, ``REQUEST_IN_PROGRESS``).
The response carries a **decision receipt** (``charter_server.services.receipts``): a DSSE
envelope of its own payload type, signed by the active signing key, over a ``DecisionReceipt``
that holds the digest of the request, the decisions, the validated use context, the licensee and
the time; the request's unknown fields are dropped first, so nothing unvalidated is signed.

**Why memory, and how it stays correct.** The common request touches no database: the view of
characters, licensees, grants and keys that decisions read is kept in memory per *generation*.
Every change that an authorization may depend on raises a counter (the authorization epoch) in
the same transaction (``storage.repositories.bump_authz_epoch``). A thread polls the counter
several times per lease; when it moved, a new, empty generation replaces the old one and fills
lazily from the database. A generation is trusted only for ``lease`` seconds after the start of
the last poll that confirmed it, and a request that finds it older polls itself (and fails with
a retryable error if the database cannot be read: fail closed). So a decision at time *t* reads
data that was current at some time after *t - lease*. Every change that takes something away
(a grant revoked or suspended, a character opted out, suspended or archived, a licensee archived,
a signing key or an API key revoked) returns to its caller only after waiting ``lease`` after its
commit (`AuthorizationView.settle`): after that, no server anywhere still allows what it took away.

The lease is the deployment's, kept in the database (``storage.serving``) and read with the epoch
at every poll, so replicas started with other settings cannot disagree; when it is changed, a
change that takes something away waits for the old lease too, for as long as a replica may still
be trusting it (``LeaseSetting.longest``, by the database's clock).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

import structlog
from charter.envelope import GRANT_PAYLOAD_TYPE, MAX_ENVELOPE_BYTES, MAX_SIGNATURES
from charter.grants import GrantStatus, GrantVerifier, KeyRing, KeyState
from charter.terms import DenyReason, Evaluation, UseContext
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import decision_pb2, envelope_pb2, grant_pb2, terms_pb2
from google.protobuf.message import DecodeError

from charter_server.domain import ids
from charter_server.domain.clock import Clock
from charter_server.domain.errors import Aborted, InvalidArgument, PermissionDenied, StorageUnavailable
from charter_server.domain.models import (
    CharacterState,
    Detection,
    GrantState,
    Principal,
    Role,
)
from charter_server.services.authorization_view import AuthorizationView, Generation, GrantView
from charter_server.services.idempotency import request_id_reused
from charter_server.services.keys import KeyService
from charter_server.services.receipts import (
    Outcome,
    ReceiptWriter,
    SignedReceipt,
    attested_context,
    request_digest,
)
from charter_server.services.screening import MAX_PROMPT_LENGTH, PromptScreen
from charter_server.services.terms_rules import is_territory
from charter_server.services.transparency.receipts import ReceiptLog
from charter_server.services.validation import Checker
from charter_server.storage.database import Database, may_block

log = structlog.get_logger(__name__)

MAX_CHARACTERS = 64
"""The most characters a request may declare."""
MAX_GRANTS = 64
"""The most grant envelopes a request may present."""
MAX_SIGNATURES_PER_REQUEST = 2 * MAX_GRANTS
"""The most signatures the presented envelopes may carry together (each at most
``charter.envelope.MAX_SIGNATURES``, one checked per key id): the bound on a request's Ed25519 work."""

_USE_TYPES = frozenset(terms_pb2.UseType.values()) - {terms_pb2.USE_TYPE_UNSPECIFIED}
_RATINGS = frozenset(terms_pb2.ContentRating.values()) - {terms_pb2.CONTENT_RATING_UNSPECIFIED}
_CATEGORIES = frozenset(terms_pb2.ContentCategory.values()) - {terms_pb2.CONTENT_CATEGORY_UNSPECIFIED}
_RECEIPT_PREFIX = f"{ids.PREFIXES['receipt']}_"
_VERDICT_REASON: dict[int, DenyReason] = {
    grant_pb2.GRANT_VERDICT_REVOKED: DenyReason.GRANT_REVOKED,
    grant_pb2.GRANT_VERDICT_SUSPENDED: DenyReason.GRANT_SUSPENDED,
    grant_pb2.GRANT_VERDICT_EXPIRED: DenyReason.GRANT_EXPIRED,
    grant_pb2.GRANT_VERDICT_NOT_YET_VALID: DenyReason.GRANT_NOT_YET_VALID,
}
_STATUS = {
    GrantState.ACTIVE: GrantStatus.ACTIVE,
    GrantState.SUSPENDED: GrantStatus.SUSPENDED,
    GrantState.REVOKED: GrantStatus.REVOKED,
}


# Deciding ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthorizeResult:
    """A decision: the signed receipt (whose payload is the decision), and what screening found."""

    signed: SignedReceipt
    detections: list[Detection]
    replay: bool = False
    """Whether this is a retry answered with the first call's receipt (logged with the first call)."""

    @property
    def decision(self) -> decision_pb2.DecisionReceipt:
        """The decision, as the receipt's payload states it."""
        return self.signed.decision()

    @property
    def receipt(self) -> envelope_pb2.Envelope:
        """The signed receipt."""
        return self.signed.receipt()


@dataclass(slots=True)
class _Candidate:
    """A grant that may decide a character: from the store, or presented (and verified) by the caller."""

    grant: GrantView | None
    grant_id: str
    problem: DenyReason | None  # a reason that the grant itself fails, before any terms


@dataclass(slots=True)
class _Outcome:
    character_id: str
    declared: bool
    detected: bool
    allowed: bool = False
    reasons: tuple[DenyReason, ...] = ()
    grant: GrantView | None = None
    grant_id: str = ""
    rights_holder_id: str = ""
    evaluation: Evaluation | None = None


class AuthorizationService:
    """Decides ``Authorize`` requests; see the module docstring."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        keys: KeyService,
        screen: PromptScreen,
        view: AuthorizationView,
        verifier: GrantVerifier,
        *,
        issuer: str,
        log_origin: str = "",
        receipt_log: ReceiptLog | None = None,
    ) -> None:
        self._db = db
        self._receipt_log = receipt_log
        self._clock = clock
        self._keys = keys
        self._screen = screen
        self._view = view
        self._verifier = verifier
        self._receipts = ReceiptWriter(issuer, log_origin)

    def authorize(self, principal: Principal, request: az.AuthorizeRequest) -> AuthorizeResult:
        """Decide a request (or, for a retry of one that counted a quota, return the first decision).

        Raises:
            PermissionDenied: The key is not a generator key bound to a licensee.
            InvalidArgument: A field is invalid (each one named), or a declared character does not exist.
            StorageUnavailable: The view cannot be refreshed (fail closed; retryable).
        """
        if principal.role is not Role.GENERATOR or not principal.licensee_id:
            raise PermissionDenied("only generator keys bound to a licensee may authorize", reason="ROLE_NOT_PERMITTED")
        licensee_id = principal.licensee_id
        # Fields this server does not know were never validated: they must not reach the receipt,
        # nor its request digest (nor the idempotency fingerprint).
        request.DiscardUnknownFields()
        presented = _validate(request)
        detections = self._screen.screen(request.prompt) if request.prompt.strip() else []

        declared = list(request.character_ids)
        order = dict.fromkeys(declared, True)
        for detection in detections:
            if not detection.ambiguous and detection.character_id not in order:
                order[detection.character_id] = False
        detected = {d.character_id for d in detections if not d.ambiguous or d.character_id in order}
        character_ids = list(order)

        for _ in range(3):  # a generation replaced while deciding is decided again (bounded)
            generation = self._view.current()
            now = self._clock.now()
            self._view.load(generation, licensee_id, character_ids, now)
            unknown = [i for i, cid in enumerate(declared) if cid not in generation.characters]
            if unknown:
                raise InvalidArgument.one(f"character_ids[{unknown[0]}]", "no such character")
            outcomes = self._decide(generation, licensee_id, order, detected, presented, request.context, now)
            if self._view.is_fresh(generation):
                break
        else:
            raise StorageUnavailable("the authorization view kept changing; retry")

        allowed = all(outcome.allowed for outcome in outcomes)
        quotas = [o for o in outcomes if o.grant is not None and _has_quota(o.grant)] if allowed else []
        if quotas:
            may_block()  # counting writes: never on the event loop (see api.dispatch)
        digest = request_digest(request)
        context = attested_context(request.context)
        signed = self._write(generation, licensee_id, digest, outcomes, context, now)
        if not quotas:
            result = AuthorizeResult(signed, detections)
        else:
            result = self._count(principal, request, outcomes, quotas, signed, context, detections, now)
        if self._receipt_log is not None and not result.replay:
            # Buffered, not written here: the log appends receipts in batches (services.transparency).
            self._receipt_log.add(result.signed.payload, principal.key_id)
        return result

    def _decide(
        self,
        generation: Generation,
        licensee_id: str,
        order: dict[str, bool],
        detected: set[str],
        presented: list[tuple[int, envelope_pb2.Envelope, str]],
        context: decision_pb2.UseContext,
        now: datetime,
    ) -> list[_Outcome]:
        licensee = generation.licensees[licensee_id]
        ring = generation.ring
        assert ring is not None
        everyone = frozenset(order)
        presented_by_character: dict[str, list[tuple[envelope_pb2.Envelope, str]]] = {}
        for _, envelope, character_id in presented:
            if character_id in everyone:
                presented_by_character.setdefault(character_id, []).append((envelope, character_id))
        outcomes = []
        for character_id, declared in order.items():
            outcome = _Outcome(character_id, declared=declared, detected=character_id in detected)
            outcomes.append(outcome)
            character = generation.characters.get(character_id)
            if character is not None:
                outcome.rights_holder_id = character.rights_holder_id
            if licensee.archived:
                outcome.reasons = (DenyReason.LICENSEE_ARCHIVED,)
                continue
            if character is None or character.state is not CharacterState.OPTED_IN:
                suspended = character is not None and character.state is CharacterState.SUSPENDED
                outcome.reasons = (DenyReason.CHARACTER_SUSPENDED if suspended else DenyReason.CHARACTER_NOT_OPTED_IN,)
                continue
            stored = generation.grants.get((licensee_id, character_id), ())
            if character_id in presented_by_character:
                candidates = [
                    self._presented(envelope, licensee_id, character_id, stored, ring, now)
                    for envelope, _ in presented_by_character[character_id]
                ]
            else:
                candidates = [_Candidate(g, g.id, _stored_problem(g, ring, now)) for g in stored]
            if not candidates:
                outcome.reasons = (DenyReason.NO_GRANT,)
                continue
            use = UseContext(
                context.use_type,
                context.content_rating,
                now,
                categories=context.categories,
                territory=context.territory,
                platform=licensee.platform,
                licensee_id=licensee_id,
                commercial=context.commercial,
                co_characters=everyone - {character_id},
            )
            _choose(outcome, candidates, use)
        return outcomes

    def _presented(
        self,
        envelope: envelope_pb2.Envelope,
        licensee_id: str,
        character_id: str,
        stored: tuple[GrantView, ...],
        ring: KeyRing,
        now: datetime,
    ) -> _Candidate:
        states = {g.id: g.state for g in stored}

        def status(grant_id: str) -> GrantStatus:
            # A grant this server signed but has no record of (for this licensee) is not honoured.
            state = states.get(grant_id)
            return _STATUS[state] if state is not None else GrantStatus.REVOKED

        result = self._verifier.verify(
            envelope, keys=ring, licensee_id=licensee_id, character_id=character_id, now=now, status=status
        )
        grant_id = result.claims.grant_id if result.claims is not None else ""
        if result.verdict != grant_pb2.GRANT_VERDICT_VALID:
            return _Candidate(None, grant_id, _VERDICT_REASON.get(result.verdict, DenyReason.GRANT_INVALID))
        grant = next(g for g in stored if g.id == grant_id)
        # The server's own clock, without the skew a client's verification allows.
        return _Candidate(grant, grant_id, _stored_problem(grant, ring, now))

    def _write(
        self,
        generation: Generation,
        licensee_id: str,
        digest: bytes,
        outcomes: list[_Outcome],
        context: bytes,
        now: datetime,
    ) -> SignedReceipt:
        """The receipt of these outcomes, signed by the active key."""
        # Unique, not secret: a Mersenne Twister draw (seeded from os.urandom) avoids a system
        # call, which under load costs a GIL hand-off per request.
        receipt_id = f"{_RECEIPT_PREFIX}{random.getrandbits(128):032x}"
        payload = self._receipts.payload(
            receipt_id=receipt_id,
            licensee_id=licensee_id,
            digest=digest,
            outcomes=[_stated(outcome) for outcome in outcomes],
            context=context,
            decide_time=now,
        )
        signer = self._keys.signer()
        ring = generation.ring
        key = ring.get(signer.key_id) if ring is not None else None
        if ring is not None and (key is None or key.state is not KeyState.ACTIVE):
            # Rotated (or revoked) through another server since it was cached: the generation's
            # ring is at most a lease old, so read the active key again.
            self._keys.forget_signer()
            signer = self._keys.signer()
        return self._receipts.sign(
            payload, receipt_id=receipt_id, digest=digest, key_id=signer.key_id, signing_key=signer.signing_key
        )

    def _count(
        self,
        principal: Principal,
        request: az.AuthorizeRequest,
        outcomes: list[_Outcome],
        quotas: list[_Outcome],
        signed: SignedReceipt,
        context: bytes,
        detections: list[Detection],
        now: datetime,
    ) -> AuthorizeResult:
        """Count the uses against every quota in one transaction, or none of them."""
        licensee_id = principal.licensee_id or ""
        fingerprint = signed.request_digest.hex()
        day, month = f"D{now:%Y-%m-%d}", f"M{now:%Y-%m}"
        with self._db.uow(write=True) as uow:
            if request.request_id:
                recorded = uow.request_records.get(principal.key_id, "Authorize", request.request_id)
                if recorded is not None:
                    if recorded[0] != fingerprint:
                        raise request_id_reused(request.request_id)
                    kept = uow.authorizations.get(recorded[1])
                    if kept is not None:
                        # The same request (same digest), so the same prompt and detections.
                        first = az.AuthorizeResponse.FromString(kept)
                        replayed = SignedReceipt(
                            first.decision.receipt_id,
                            first.decision.request_digest,
                            first.receipt.payload,  # the bytes as signed, not a re-serialization
                            first.receipt.SerializeToString(),
                        )
                        return AuthorizeResult(replayed, detections, replay=True)
            exhausted = None
            for outcome in quotas:
                assert outcome.grant is not None
                terms = outcome.grant.terms
                for period, limit in ((day, terms.daily_quota), (month, terms.monthly_quota)):
                    if limit is not None and not uow.quotas.consume(licensee_id, outcome.character_id, period, limit):
                        exhausted = outcome
                        break
                cap = outcome.grant.max_uses
                if exhausted is None and cap is not None and not uow.quotas.consume_grant(outcome.grant.id, cap):
                    exhausted = outcome
                if exhausted is not None:
                    break
            if exhausted is not None:
                uow.session.rollback()  # nothing counted: the use will not happen
                exhausted.allowed = False
                exhausted.reasons = (DenyReason.QUOTA_EXHAUSTED,)
                exhausted.evaluation = None
                denied = self._write(self._view.current(), licensee_id, signed.request_digest, outcomes, context, now)
                return AuthorizeResult(denied, detections)
            uow.authorizations.add(signed.receipt_id, licensee_id, now, signed.response())
            if request.request_id and not uow.request_records.add(
                principal.key_id, "Authorize", request.request_id, fingerprint, signed.receipt_id, now
            ):
                # Not an outage (STORAGE_UNAVAILABLE would page someone): the other call won.
                raise Aborted(
                    "a concurrent call with this request_id was decided first; retry", reason="REQUEST_IN_PROGRESS"
                )
            uow.commit()
        return AuthorizeResult(signed, detections)


def _stated(outcome: _Outcome) -> Outcome:
    """An outcome as the receipt states it."""
    grant = outcome.grant
    evaluation = outcome.evaluation
    return Outcome(
        outcome.character_id,
        outcome.allowed,
        outcome.reasons,
        outcome.grant_id,
        grant.terms_version if grant is not None else 0,
        outcome.rights_holder_id,
        outcome.declared,
        outcome.detected,
        evaluation.obligations if outcome.allowed and evaluation is not None else None,
    )


def _choose(outcome: _Outcome, candidates: list[_Candidate], use: UseContext) -> None:
    """Allow with the first candidate that allows; otherwise report the newest good grant's failed
    terms, or else the newest candidate's own problem."""
    reported: _Candidate | None = None
    reported_evaluation: Evaluation | None = None
    for candidate in candidates:
        if candidate.problem is None and candidate.grant is not None:
            evaluation = candidate.grant.terms.evaluate(use)
            if evaluation.allowed:
                outcome.allowed = True
                outcome.grant, outcome.grant_id = candidate.grant, candidate.grant_id
                outcome.evaluation = evaluation
                return
            if reported_evaluation is None:
                reported, reported_evaluation = candidate, evaluation
        elif reported is None:
            reported = candidate
    assert reported is not None
    outcome.grant, outcome.grant_id = reported.grant, reported.grant_id
    if reported_evaluation is not None:
        outcome.reasons = reported_evaluation.reasons
    else:
        assert reported.problem is not None
        outcome.reasons = (reported.problem,)


def _has_quota(grant: GrantView) -> bool:
    return grant.max_uses is not None or grant.terms.daily_quota is not None or grant.terms.monthly_quota is not None


def _stored_problem(grant: GrantView, ring: KeyRing, now: datetime) -> DenyReason | None:
    if grant.state is GrantState.REVOKED:
        return DenyReason.GRANT_REVOKED
    if grant.state is GrantState.SUSPENDED:
        return DenyReason.GRANT_SUSPENDED
    if now < grant.not_before:
        return DenyReason.GRANT_NOT_YET_VALID
    if now >= grant.expire_time:
        return DenyReason.GRANT_EXPIRED
    if grant.signing_key_id in ring.revoked:
        return DenyReason.GRANT_INVALID
    return None


# Validation ----------------------------------------------------------------------------------------


def _validate(request: az.AuthorizeRequest) -> list[tuple[int, envelope_pb2.Envelope, str]]:
    """Check every field; return the presented grants with the character each claims.

    A presented grant must at least be a grant envelope whose payload parses; whether it verifies
    is part of the decision (the claimed character is trusted only after its signature verified).
    """
    checker = Checker()
    if not request.HasField("context"):
        checker.add("context", "is required")
    else:
        _validate_context(checker, request.context)
    if len(request.character_ids) > MAX_CHARACTERS:
        checker.add("character_ids", f"must hold at most {MAX_CHARACTERS} ids")
    else:
        unique: set[str] = set()
        for i, character_id in enumerate(request.character_ids):
            if not ids.is_valid("character", character_id):
                checker.add(f"character_ids[{i}]", "must be a character id (chr_ and 32 hex digits)")
            elif character_id in unique:
                checker.add(f"character_ids[{i}]", "is a duplicate")
            unique.add(character_id)
    if len(request.prompt) > MAX_PROMPT_LENGTH:
        checker.add("prompt", f"must be at most {MAX_PROMPT_LENGTH} characters")
    if not request.character_ids and not request.prompt.strip():
        checker.add("character_ids", "at least one of character_ids and prompt is required")
    checker.request_id(request.request_id)
    presented = []
    if len(request.grants) > MAX_GRANTS:
        checker.add("grants", f"must hold at most {MAX_GRANTS} envelopes")
    elif sum(len(envelope.signatures) for envelope in request.grants) > MAX_SIGNATURES_PER_REQUEST:
        checker.add("grants", f"must hold at most {MAX_SIGNATURES_PER_REQUEST} signatures in all")
    else:
        for i, envelope in enumerate(request.grants):
            field = f"grants[{i}]"
            if envelope.ByteSize() > MAX_ENVELOPE_BYTES:
                checker.add(field, f"must be at most {MAX_ENVELOPE_BYTES} bytes")
                continue
            if len(envelope.signatures) > MAX_SIGNATURES:
                checker.add(f"{field}.signatures", f"must hold at most {MAX_SIGNATURES} signatures")
                continue
            if envelope.payload_type != GRANT_PAYLOAD_TYPE:
                checker.add(f"{field}.payload_type", f"must be {GRANT_PAYLOAD_TYPE} (a receipt is not a grant)")
                continue
            if not envelope.signatures:
                checker.add(f"{field}.signatures", "must hold at least one signature")
                continue
            try:
                claimed = grant_pb2.GrantClaims.FromString(envelope.payload).character_id
            except DecodeError:
                checker.add(f"{field}.payload", "is not a grant payload")
                continue
            presented.append((i, envelope, claimed))
    checker.done()
    return presented


def _validate_context(checker: Checker, context: decision_pb2.UseContext) -> None:
    if context.use_type not in _USE_TYPES:
        checker.add("context.use_type", "must be a known use type other than UNSPECIFIED")
    if context.content_rating not in _RATINGS:
        checker.add("context.content_rating", "must be a known content rating other than UNSPECIFIED")
    seen: set[int] = set()
    for i, category in enumerate(context.categories):
        if category not in _CATEGORIES:
            checker.add(f"context.categories[{i}]", "must be a known content category other than UNSPECIFIED")
        elif category in seen:
            checker.add(f"context.categories[{i}]", "is a duplicate")
        seen.add(category)
    if context.territory and not is_territory(context.territory.upper()):
        checker.add("context.territory", "must be an ISO 3166-1 alpha-2 code, or empty")
    if context.HasField("duration"):
        checker.content_length("context.duration", context.duration)
