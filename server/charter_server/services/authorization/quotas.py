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
from charter_server.services.leases import reclaim_due
from charter_server.storage.database import Database
from charter_server.storage.uow import UnitOfWork

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
        decision when ``request_id`` was decided before; otherwise (tried once more when leases
        past their report deadline were reclaimed first), with the exhausted character's outcome
        turned into a ``QUOTA_EXHAUSTED`` denial, ``rewrite()``.

    Raises:
        InvalidArgument: ``request_id`` was used before for another request.
        Aborted: A concurrent call with the same ``request_id`` was decided first.
    """
    licensee_id = principal.licensee_id or ""
    fingerprint = signed.request_digest.hex()
    day, month = f"D{now:%Y-%m-%d}", f"M{now:%Y-%m}"
    for attempt in (1, 2):
        with db.uow(write=True) as uow:
            if request_id:
                recorded = uow.request_records.get(principal.key_id, _RPC, request_id)
                if recorded is not None:
                    if recorded[0] != fingerprint:
                        raise request_id_reused(request_id)
                    kept = uow.authorizations.get(recorded[1])
                    if kept is not None:
                        return SignedReceipt.from_response(kept)  # the same request, so the same detections
            exhausted = _consume(uow, licensee_id, quotas, day, month)
            if exhausted is None:
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
            uow.session.rollback()  # nothing counted: the use will not happen
        # Uses leased and not reported by their report deadline go back only when reclaimed, and
        # reclaiming is lazy: before denying, reclaim what is due and count once more.
        if attempt == 1:
            # The exhausted character's leases hold its quotas' and its grants' caps' uses.
            character_id = exhausted.character_id
            with db.uow() as reader:  # most denials find nothing due: no second write transaction
                due = bool(
                    licensee_id and reader.leases.due(now, 1, licensee_id=licensee_id, character_id=character_id)
                )
            if due:
                with db.uow(write=True) as uow:
                    reclaimed = reclaim_due(uow, now, licensee_id=licensee_id, character_id=character_id)
                    uow.commit()
                if reclaimed:
                    continue
        break
    assert exhausted is not None  # (the loop returns whenever every use was counted)
    exhausted.allowed = False
    exhausted.reasons = (DenyReason.QUOTA_EXHAUSTED,)
    exhausted.evaluation = None
    return rewrite()


def _consume(
    uow: UnitOfWork, licensee_id: str, quotas: list[CharacterOutcome], day: str, month: str
) -> CharacterOutcome | None:
    """Count one use of each outcome (not committed); the first one a quota or cap refused."""
    for outcome in quotas:
        assert outcome.grant is not None
        terms = outcome.grant.terms
        for period, limit in ((day, terms.daily_quota), (month, terms.monthly_quota)):
            if limit is not None and not uow.quotas.consume(licensee_id, outcome.character_id, period, limit):
                return outcome
        cap = outcome.grant.max_uses
        if cap is not None and not uow.quotas.consume_grant(outcome.grant.id, cap):
            return outcome
    return None
