"""`AuthorizationService`: one ``Authorize`` use case, from a domain command to a signed receipt.

It validates (``validation``), screens the prompt, reads the view (``view``), decides every
character (``decision``, which calls `charter.decide`), writes and signs the receipt
(``receipt``) and, when the request is allowed and a quota applies, counts the uses
(``quotas``). See the package documentation for what is decided and why the view is safe.
"""

from __future__ import annotations

import random
from datetime import datetime

import structlog
from charter.grants import GrantVerifier, KeyState

from charter_server.domain import ids
from charter_server.domain.clock import Clock
from charter_server.domain.errors import InvalidArgument, PermissionDenied, StorageUnavailable
from charter_server.domain.models import Principal, Role
from charter_server.services.authorization import quotas
from charter_server.services.authorization.command import AuthorizeCommand, UseRequest
from charter_server.services.authorization.decision import CharacterOutcome, Decider
from charter_server.services.authorization.preview import PreviewCommand, PreviewResult, TermsPreviewer
from charter_server.services.authorization.receipt import (
    AuthorizeResult,
    Outcome,
    ReceiptWriter,
    SignedReceipt,
    attested_context,
)
from charter_server.services.authorization.simulate import SimulateCommand, SimulateResult, UseSimulator
from charter_server.services.authorization.validation import validate
from charter_server.services.authorization.view import AuthorizationView, Generation
from charter_server.services.keys import KeyService
from charter_server.services.screening import PromptScreen
from charter_server.services.transparency.receipts import ReceiptSink
from charter_server.storage.database import Database, may_block

log = structlog.get_logger(__name__)

_RECEIPT_PREFIX = f"{ids.PREFIXES['receipt']}_"


class AuthorizationService:
    """Decides ``Authorize`` requests; see the package documentation."""

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
        receipt_log: ReceiptSink | None = None,
    ) -> None:
        self._db = db
        self._receipt_log = receipt_log
        self._clock = clock
        self._keys = keys
        self._screen = screen
        self._view = view
        self._decider = Decider(verifier)
        self._receipts = ReceiptWriter(issuer, log_origin)
        self._simulator = UseSimulator(db, clock, screen, self._decider)
        self._previewer = TermsPreviewer(db, clock)

    def simulate(self, principal: Principal, command: SimulateCommand) -> SimulateResult:
        """What ``Authorize`` would decide (optionally under proposed terms): nothing counted, signed
        or recorded; see ``simulate``."""
        return self._simulator.simulate(principal, command)

    def preview_terms(self, principal: Principal, command: PreviewCommand) -> PreviewResult:
        """Proposed terms replayed over the character's recent decisions: nothing counted, signed
        or changed; see ``preview``."""
        return self._previewer.preview(principal, command)

    def authorize(self, principal: Principal, command: AuthorizeCommand) -> AuthorizeResult:
        """Decide a request (or, for a retry of one that counted a quota, return the first decision).

        Raises:
            PermissionDenied: The key is not a generator key bound to a licensee.
            InvalidArgument: A field is invalid (each one named), or a declared character does not exist.
            StorageUnavailable: The view cannot be refreshed (fail closed; retryable).
        """
        if principal.role is not Role.GENERATOR or not principal.licensee_id:
            raise PermissionDenied("only generator keys bound to a licensee may authorize", reason="ROLE_NOT_PERMITTED")
        licensee_id = principal.licensee_id
        presented = validate(command)
        use = command.use
        assert use is not None  # validated
        detections = self._screen.screen(command.prompt) if command.prompt.strip() else []

        declared = list(command.character_ids)
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
            outcomes = self._decider.decide(generation, licensee_id, order, detected, presented, use, now)
            if self._view.is_fresh(generation) or self._view.confirm(generation):
                break
        else:
            # Either the catalogue changed three times while deciding, or confirming the view takes
            # longer than the lease (a slow database, a starved process): an operator's signal.
            log.warning("authz.view_unconfirmed", attempts=3, lease_seconds=self._view.lease_seconds)
            raise StorageUnavailable("the authorization view kept changing; retry")

        allowed = all(outcome.allowed for outcome in outcomes)
        counted = [o for o in outcomes if o.grant is not None and quotas.has_quota(o.grant)] if allowed else []
        if counted:
            may_block()  # counting writes: never on the event loop (see api.dispatch)
        digest = command.request_digest
        context = attested_context(use)
        signed = self._write(generation, licensee_id, digest, outcomes, context, now)
        if not counted:
            self._log(signed, principal)
            return AuthorizeResult(signed, detections)
        fresh = [signed]

        def rewrite() -> SignedReceipt:
            fresh.append(self._write(self._view.current(), licensee_id, digest, outcomes, context, now))
            return fresh[-1]

        kept = quotas.count(self._db, principal, command.request_id, counted, signed, now, rewrite)
        if any(kept is receipt for receipt in fresh):  # not a retry answered with the first call's receipt
            self._log(kept, principal)
        return AuthorizeResult(kept, detections)

    def _log(self, signed: SignedReceipt, principal: Principal) -> None:
        """Hand the receipt to the transparency log: buffered, appended in batches, never written
        here (``services.transparency.receipts``)."""
        if self._receipt_log is not None:
            self._receipt_log.add(signed.payload, principal.key_id)

    def _write(
        self,
        generation: Generation,
        licensee_id: str,
        digest: bytes,
        outcomes: list[CharacterOutcome],
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
            outcomes=[stated(outcome) for outcome in outcomes],
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


def stated(outcome: CharacterOutcome) -> Outcome:
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


__all__ = ["AuthorizationService", "AuthorizeCommand", "AuthorizeResult", "UseRequest", "stated"]
