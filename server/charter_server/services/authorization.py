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
than counting again. The response carries a **decision receipt**: a DSSE envelope of its own
payload type, signed by the active signing key, over a ``DecisionReceipt`` that holds the digest
of the request, the decisions, the licensee and the time.

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
a signing key revoked) returns to its caller only after waiting ``lease`` after its commit
(`AuthorizationView.settle`): after that, no server anywhere still allows what it took away.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from charter.envelope import GRANT_PAYLOAD_TYPE, RECEIPT_PAYLOAD_TYPE, sign
from charter.grants import GrantStatus, GrantVerifier, KeyRing, KeyState
from charter.terms import CompiledTerms, DenyReason, Evaluation, UseContext
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import decision_pb2, envelope_pb2, grant_pb2, terms_pb2
from google.protobuf import timestamp_pb2
from google.protobuf.message import DecodeError

from charter_server.domain import ids
from charter_server.domain.clock import Clock
from charter_server.domain.errors import InvalidArgument, PermissionDenied, StorageUnavailable
from charter_server.domain.models import (
    Character,
    CharacterState,
    Detection,
    GrantRecord,
    GrantState,
    LifecycleState,
    Principal,
    Role,
)
from charter_server.services.idempotency import request_id_reused
from charter_server.services.keys import KeyService, build_ring
from charter_server.services.screening import MAX_PROMPT_LENGTH, PromptScreen
from charter_server.services.terms_rules import is_territory
from charter_server.services.validation import Checker
from charter_server.storage.database import Database

log = structlog.get_logger(__name__)

MAX_CHARACTERS = 64
"""The most characters a request may declare."""
MAX_GRANTS = 64
"""The most grant envelopes a request may present."""
_RECENTLY_EXPIRED = timedelta(days=30)  # expired grants still loaded, to answer GRANT_EXPIRED rather than NO_GRANT
_MAX_GENERATION_AGE = 60.0  # seconds; a safety net under the epoch: no generation lives longer

_USE_TYPES = frozenset(terms_pb2.UseType.values()) - {terms_pb2.USE_TYPE_UNSPECIFIED}
_RATINGS = frozenset(terms_pb2.ContentRating.values()) - {terms_pb2.CONTENT_RATING_UNSPECIFIED}
_CATEGORIES = frozenset(terms_pb2.ContentCategory.values()) - {terms_pb2.CONTENT_CATEGORY_UNSPECIFIED}
_REASON_VALUE = {reason: decision_pb2.DenyReason.Value(f"DENY_REASON_{reason}") for reason in DenyReason}
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


# The in-memory view ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CharacterView:
    state: CharacterState
    rights_holder_id: str


@dataclass(frozen=True, slots=True)
class _LicenseeView:
    archived: bool
    platform: str


@dataclass(frozen=True, slots=True)
class _GrantView:
    id: str
    state: GrantState
    not_before: datetime
    expire_time: datetime
    terms_version: int
    signing_key_id: str
    terms: CompiledTerms
    max_uses: int | None


class _Generation:
    """What decisions read, as of one value of the authorization epoch; filled lazily."""

    __slots__ = ("characters", "checked", "created", "epoch", "grants", "licensees", "lock", "ring")

    def __init__(self, epoch: int, started: float) -> None:
        self.epoch = epoch
        self.created = started
        self.checked = started  # the start of the latest poll that found the epoch unchanged
        self.characters: dict[str, _CharacterView] = {}
        self.licensees: dict[str, _LicenseeView] = {}
        self.grants: dict[tuple[str, str], tuple[_GrantView, ...]] = {}
        self.ring: KeyRing | None = None
        self.lock = threading.Lock()


class AuthorizationView:
    """The in-memory view of one server, kept current by polling the authorization epoch.

    See the module docstring for the lease argument that makes it safe across servers.
    """

    def __init__(self, db: Database, *, lease_seconds: float = 1.0) -> None:
        self._db = db
        self._lease = lease_seconds
        self._poll_seconds = lease_seconds / 4
        self._lock = threading.Lock()
        self._generation: _Generation | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._terms: dict[str, CompiledTerms] = {}  # by grant id: a grant's terms never change

    @property
    def lease_seconds(self) -> float:
        """How long a generation is trusted after the poll that last confirmed it."""
        return self._lease

    def start(self) -> None:
        """Poll once, then keep polling in the background."""
        if self._thread is not None:
            return
        self.poll()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="charter-authz-view", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling (bounded wait)."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=2)

    def current(self) -> _Generation:
        """A generation confirmed within the lease; polls now if there is none.

        Raises:
            StorageUnavailable: The database cannot be read, so nothing can be decided safely.
        """
        generation = self._generation
        if generation is None or time.monotonic() - generation.checked > self._lease:
            generation = self.poll()
        return generation

    def is_fresh(self, generation: _Generation) -> bool:
        """Whether decisions may still rest on ``generation``: current, and confirmed within the lease."""
        return generation is self._generation and time.monotonic() - generation.checked <= self._lease

    def poll(self) -> _Generation:
        """Read the epoch now; start a new generation if it moved (or the current one is old)."""
        started = time.monotonic()
        try:
            with self._db.uow() as uow:
                epoch = uow.authz.epoch()
        except Exception as error:
            raise StorageUnavailable("the authorization view cannot be refreshed; retry") from error
        with self._lock:
            generation = self._generation
            if generation is None or generation.epoch != epoch or started - generation.created > _MAX_GENERATION_AGE:
                generation = _Generation(epoch, started)
                self._generation = generation
            elif started > generation.checked:
                generation.checked = started
            return generation

    def settle(self) -> None:
        """After committing a change that takes something away: look at once, then wait out the lease,
        so that no server still decides on a view from before the change."""
        try:
            self.poll()  # this server: at once
        except StorageUnavailable:
            self._wake.set()  # the lease below still bounds what this server trusts
        time.sleep(self._lease)

    def changed(self) -> None:
        """After committing a change that may allow more (a grant issued, a suspension lifted): look at once."""
        try:
            self.poll()
        except StorageUnavailable:
            self._wake.set()  # the poller tries again

    def after_commit(self, takes_away: bool) -> None:
        """The services' hook: `settle` after a change that takes something away, else `changed`."""
        if takes_away:
            self.settle()
        else:
            self.changed()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake.wait(self._poll_seconds * min(2**failures, 8))
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.poll()
            except StorageUnavailable as error:
                failures += 1
                log.warning("authz_view.poll_failed", error=repr(error.__cause__))
            else:
                failures = 0

    # Loading into a generation -------------------------------------------------------------------

    def load(self, generation: _Generation, licensee_id: str, character_ids: Sequence[str], now: datetime) -> None:
        """Read what ``generation`` lacks for this licensee and these characters, in one read transaction."""
        missing_characters = [cid for cid in character_ids if cid not in generation.characters]
        missing_pairs = [cid for cid in character_ids if (licensee_id, cid) not in generation.grants]
        need_licensee = licensee_id not in generation.licensees
        need_ring = generation.ring is None
        if not (missing_characters or missing_pairs or need_licensee or need_ring):
            return
        with self._db.uow() as uow:
            characters = uow.characters.get_many(missing_characters) if missing_characters else {}
            licensee = uow.licensees.get(licensee_id) if need_licensee else None
            grants = uow.authz.grants_for(licensee_id, missing_pairs, now - _RECENTLY_EXPIRED) if missing_pairs else []
            ring = build_ring(uow.signing_keys.all()) if need_ring else None
        by_character: dict[str, list[_GrantView]] = {cid: [] for cid in missing_pairs}
        for record in grants:
            by_character[record.character_id].append(self._grant_view(record))
        with generation.lock:
            for cid, character in characters.items():
                generation.characters[cid] = _view_of(character)
            for cid, views in by_character.items():
                generation.grants[(licensee_id, cid)] = tuple(views)
            if need_licensee:
                generation.licensees[licensee_id] = _LicenseeView(
                    archived=licensee is None or licensee.state is LifecycleState.ARCHIVED,
                    platform=licensee.platform if licensee is not None else "",
                )
            if ring is not None and generation.ring is None:
                generation.ring = ring

    def _grant_view(self, record: GrantRecord) -> _GrantView:
        compiled = self._terms.get(record.id)
        if compiled is None:
            compiled = CompiledTerms.from_terms(terms_pb2.Terms.FromString(record.terms))
            if len(self._terms) > 100_000:
                self._terms.clear()
            self._terms[record.id] = compiled
        return _GrantView(
            id=record.id,
            state=record.state,
            not_before=record.not_before,
            expire_time=record.expire_time,
            terms_version=record.terms_version,
            signing_key_id=record.signing_key_id,
            terms=compiled,
            max_uses=record.max_uses,
        )


def _view_of(character: Character) -> _CharacterView:
    return _CharacterView(state=character.state, rights_holder_id=character.rights_holder_id)


# Deciding ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthorizeResult:
    """A decision: the signed receipt's content, the receipt, and what screening found in the prompt."""

    decision: decision_pb2.DecisionReceipt
    receipt: envelope_pb2.Envelope
    detections: list[Detection]


@dataclass(slots=True)
class _Candidate:
    """A grant that may decide a character: from the store, or presented (and verified) by the caller."""

    grant: _GrantView | None
    grant_id: str
    problem: DenyReason | None  # a reason that the grant itself fails, before any terms


@dataclass(slots=True)
class _Outcome:
    character_id: str
    declared: bool
    detected: bool
    allowed: bool = False
    reasons: tuple[DenyReason, ...] = ()
    grant: _GrantView | None = None
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
    ) -> None:
        self._db = db
        self._clock = clock
        self._keys = keys
        self._screen = screen
        self._view = view
        self._verifier = verifier
        self._issuer = issuer

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
        decision = self._receipt(licensee_id, request, outcomes, now)
        envelope = self._sign(generation, decision)
        if not quotas:
            return AuthorizeResult(decision, envelope, detections)
        return self._count(principal, request, outcomes, quotas, decision, envelope, detections, now)

    def _decide(
        self,
        generation: _Generation,
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
        stored: tuple[_GrantView, ...],
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

    def _receipt(
        self, licensee_id: str, request: az.AuthorizeRequest, outcomes: list[_Outcome], now: datetime
    ) -> decision_pb2.DecisionReceipt:
        decide_time = timestamp_pb2.Timestamp()
        decide_time.FromDatetime(now)
        characters = []
        for outcome in outcomes:
            message = decision_pb2.CharacterDecision(
                character_id=outcome.character_id,
                allowed=outcome.allowed,
                reasons=[_REASON_VALUE[reason] for reason in outcome.reasons],
                grant_id=outcome.grant_id,
                terms_version=outcome.grant.terms_version if outcome.grant is not None else 0,
                rights_holder_id=outcome.rights_holder_id,
                declared=outcome.declared,
                detected=outcome.detected,
            )
            if outcome.allowed and outcome.evaluation is not None and outcome.evaluation.obligations is not None:
                obligations = outcome.evaluation.obligations
                message.obligations.attribution_text = obligations.attribution_text
                message.obligations.watermark_required = obligations.watermark_required
                message.obligations.revenue_share_bps = obligations.revenue_share_bps
                if obligations.per_use_fee_currency:
                    message.obligations.per_use_fee.currency_code = obligations.per_use_fee_currency
                    message.obligations.per_use_fee.minor_units = obligations.per_use_fee_minor_units
            characters.append(message)
        return decision_pb2.DecisionReceipt(
            # Unique, not secret: a Mersenne Twister draw (seeded from os.urandom) avoids a system
            # call, which under load costs a GIL hand-off per request.
            receipt_id=f"{ids.PREFIXES['receipt']}_{random.getrandbits(128):032x}",
            licensee_id=licensee_id,
            request_digest=hashlib.sha256(request.SerializeToString(deterministic=True)).digest(),
            allowed=all(outcome.allowed for outcome in outcomes),
            characters=characters,
            context=request.context,
            decide_time=decide_time,
            issuer=self._issuer,
        )

    def _sign(self, generation: _Generation, decision: decision_pb2.DecisionReceipt) -> envelope_pb2.Envelope:
        signer = self._keys.signer()
        ring = generation.ring
        key = ring.get(signer.key_id) if ring is not None else None
        if ring is not None and (key is None or key.state is not KeyState.ACTIVE):
            # Rotated (or revoked) through another server since it was cached: the generation's
            # ring is at most a lease old, so read the active key again.
            self._keys.forget_signer()
            signer = self._keys.signer()
        return sign(
            decision.SerializeToString(), RECEIPT_PAYLOAD_TYPE, key_id=signer.key_id, private_key=signer.signing_key
        )

    def _count(
        self,
        principal: Principal,
        request: az.AuthorizeRequest,
        outcomes: list[_Outcome],
        quotas: list[_Outcome],
        decision: decision_pb2.DecisionReceipt,
        envelope: envelope_pb2.Envelope,
        detections: list[Detection],
        now: datetime,
    ) -> AuthorizeResult:
        """Count the uses against every quota in one transaction, or none of them."""
        licensee_id = decision.licensee_id
        fingerprint = decision.request_digest.hex()
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
                        return AuthorizeResult(first.decision, first.receipt, detections)
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
                denied = self._receipt(licensee_id, request, outcomes, now)
                return AuthorizeResult(denied, self._sign(self._view.current(), denied), detections)
            first = az.AuthorizeResponse(decision=decision, receipt=envelope)
            uow.authorizations.add(decision.receipt_id, licensee_id, now, first.SerializeToString())
            if request.request_id and not uow.request_records.add(
                principal.key_id, "Authorize", request.request_id, fingerprint, decision.receipt_id, now
            ):
                raise StorageUnavailable("a concurrent retry of this request is being decided; retry")
            uow.commit()
        return AuthorizeResult(decision, envelope, detections)


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


def _has_quota(grant: _GrantView) -> bool:
    return grant.max_uses is not None or grant.terms.daily_quota is not None or grant.terms.monthly_quota is not None


def _stored_problem(grant: _GrantView, ring: KeyRing, now: datetime) -> DenyReason | None:
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
    else:
        for i, envelope in enumerate(request.grants):
            field = f"grants[{i}]"
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
