"""Counting an allowed request's uses against daily and monthly quotas and grants' caps
(``max_uses``): one conditional update per quota, all in one transaction, or none of them; and the
idempotent replay of a request (by ``request_id``) whose decision counted a quota."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from charter.terms import DenyReason

from charter_server.domain.errors import Aborted
from charter_server.domain.models import Principal
from charter_server.services.authorization.decision import CharacterOutcome
from charter_server.services.authorization.receipt import SignedReceipt
from charter_server.services.authorization.view import GrantView
from charter_server.services.idempotency import request_id_reused
from charter_server.storage.database import Database

_RPC = "Authorize"


def has_quota(grant: GrantView) -> bool:
    """Whether a use under ``grant`` is counted (a quota of its terms, or its cap)."""
    return grant.max_uses is not None or grant.terms.daily_quota is not None or grant.terms.monthly_quota is not None


def count(
    db: Database,
    principal: Principal,
    request_id: str,
    quotas: list[CharacterOutcome],
    signed: SignedReceipt,
    now: datetime,
    rewrite: Callable[[], SignedReceipt],
) -> SignedReceipt:
    """Count the uses of ``quotas`` (allowed outcomes), or none of them.

    Returns:
        ``signed`` when every use was counted (and the response kept for a retry); the first
        decision when ``request_id`` was decided before; otherwise, with the exhausted
        character's outcome turned into a ``QUOTA_EXHAUSTED`` denial, ``rewrite()``.

    Raises:
        InvalidArgument: ``request_id`` was used before for another request.
        Aborted: A concurrent call with the same ``request_id`` was decided first.
    """
    licensee_id = principal.licensee_id or ""
    fingerprint = signed.request_digest.hex()
    day, month = f"D{now:%Y-%m-%d}", f"M{now:%Y-%m}"
    with db.uow(write=True) as uow:
        if request_id:
            recorded = uow.request_records.get(principal.key_id, _RPC, request_id)
            if recorded is not None:
                if recorded[0] != fingerprint:
                    raise request_id_reused(request_id)
                kept = uow.authorizations.get(recorded[1])
                if kept is not None:
                    return SignedReceipt.from_response(kept)  # the same request, so the same detections
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
            return rewrite()
        uow.authorizations.add(signed.receipt_id, licensee_id, now, signed.response())
        if request_id and not uow.request_records.add(
            principal.key_id, _RPC, request_id, fingerprint, signed.receipt_id, now
        ):
            # Not an outage (STORAGE_UNAVAILABLE would page someone): the other call won.
            raise Aborted(
                "a concurrent call with this request_id was decided first; retry", reason="REQUEST_IN_PROGRESS"
            )
        uow.commit()
    return signed
