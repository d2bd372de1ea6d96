"""Decision records in ``ReportUsage``: offline uses reported and paid like online ones.

A usage record may carry, instead of a decision receipt, a **decision record** the SDK signed
with a key of the caller's licensee (`charter.decision_records`). Before the batch's transaction
each record is checked here, against what the batch reads once:

1. it verifies against the licensee's keys (`charter.decision_records.verify_decision_record`,
   the shared core): a forged, mangled, unknown-key, revoked-key or another licensee's record is
   refused with ``DECISION_RECORD_INVALID``;
2. it allowed the record's character under a grant of the licensee for that character, with the
   grant's terms version, decided while the grant was live (within its validity window, and not
   later than the clock skew after a revocation or suspension): otherwise
   ``DECISION_RECORD_MISMATCH``;
3. a grant whose uses are counted (a quota or a cap) needs a lease of the same licensee, grant
   and character whose spending period covers the decision time: otherwise
   ``DECISION_RECORD_MISMATCH`` (``LEASE_NOT_FOUND`` for a lease that is not the licensee's).

In the transaction (`charter_server.services.usage`), a record counts one use against its lease
(never past the lease: ``LEASE_EXCEEDED``; never after its report deadline: ``LEASE_CLOSED``) and
against the record id (a record reports its use once: ``DECISION_RECORD_REPLAYED``).

What a statement needs comes from the grant as Charter stored and signed it (rights holder,
revenue share, per-use fee), never from the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from charter.decision_records import DecisionRecordVerification, verify_decision_record
from charter.v1 import terms_pb2, usage_pb2

from charter_server.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from charter_server.domain.models import GrantRecord, GrantState
from charter_server.domain.offline import QuotaLeaseRecord
from charter_server.services.licensee_keys import licensee_ring
from charter_server.storage.database import Database

SKEW = timedelta(minutes=5)
"""How far a decision may lie outside a grant's or lease's window, or after a revocation: the
clock skew of usage records (``charter_server.services.usage.FUTURE_SKEW``)."""


@dataclass(frozen=True, slots=True)
class Basis:
    """What a usage record's use rests on: a verified receipt's decision or a decision record's."""

    receipt_id: str
    rights_holder_id: str
    grant_id: str
    revenue_share_bps: int
    fee: terms_pb2.Money | None
    decide_time: datetime
    lease_id: str = ""


def _mismatch(message: str) -> FailedPrecondition:
    return FailedPrecondition(message, reason="DECISION_RECORD_MISMATCH")


class OfflineBatch:
    """The decision records of one ``ReportUsage`` batch, verified together: the licensee's key
    ring, and the grants and leases they name, each read once, in one read transaction."""

    def __init__(self, db: Database, licensee_id: str) -> None:
        self._db = db
        self._licensee_id = licensee_id
        self._verified: dict[int, DecisionRecordVerification] = {}
        self._grants: dict[str, GrantRecord] = {}
        self._leases: dict[str, QuotaLeaseRecord] = {}

    def prepare(self, records: Sequence[usage_pb2.UsageRecord]) -> None:
        """Verify every decision record of the batch and read what they name, before any is checked."""
        offline = [(i, r) for i, r in enumerate(records) if r.HasField("decision_record")]
        if not offline:
            return
        with self._db.uow() as uow:
            ring = licensee_ring(uow.licensee_keys.of_licensee(self._licensee_id))
            grant_ids: set[str] = set()
            lease_ids: set[str] = set()
            for index, record in offline:
                verification = verify_decision_record(record.decision_record, keys=ring, licensee_id=self._licensee_id)
                self._verified[index] = verification
                if verification.valid and verification.claims is not None:
                    grant_ids.add(verification.claims.grant_id)
                    if verification.claims.lease_id:
                        lease_ids.add(verification.claims.lease_id)
            self._grants = uow.bundles.grants(sorted(grant_ids))
            self._leases = uow.leases.get_many(sorted(lease_ids))

    def basis(self, index: int, record: usage_pb2.UsageRecord) -> Basis:
        """Check the decision record of the batch's record ``index`` (already validated and
        prepared); what its use rests on (see the module docstring)."""
        verification = self._verified[index]
        claims = verification.claims
        if not verification.valid or claims is None:
            raise InvalidArgument.one(
                "decision_record",
                f"is not a decision record signed by a key of this licensee ({verification.reason})",
                reason="DECISION_RECORD_INVALID",
            )
        if claims.character_id != record.character_id or not claims.allowed:
            raise _mismatch("the decision record does not allow this character")
        decided = claims.decide_time.ToDatetime(tzinfo=UTC)
        grant = self._grants.get(claims.grant_id)
        if (
            grant is None
            or grant.licensee_id != self._licensee_id
            or grant.character_id != claims.character_id
            or grant.terms_version != claims.terms_version
        ):
            raise _mismatch("the decision record's grant is not this licensee's for the character and terms")
        if not grant.not_before - SKEW <= decided < grant.expire_time + SKEW:
            raise _mismatch("the decision record was made outside the grant's validity window")
        if grant.state is not GrantState.ACTIVE and decided > grant.state_time + SKEW:
            raise _mismatch("the decision record was made after the grant was revoked or suspended")
        terms = terms_pb2.Terms.FromString(grant.terms)
        lease_id = ""
        if grant.max_uses is not None or terms.HasField("daily_quota") or terms.HasField("monthly_quota"):
            if not claims.lease_id:
                raise _mismatch("the grant's uses are counted: the decision record must name a quota lease")
            lease = self._leases.get(claims.lease_id)
            if lease is None or lease.licensee_id != self._licensee_id:
                raise NotFound("no such lease", reason="LEASE_NOT_FOUND")
            if lease.grant_id != grant.id or lease.character_id != grant.character_id:
                raise _mismatch("the decision record's lease is another grant's")
            if not lease.create_time - SKEW <= decided <= lease.expire_time + SKEW:
                raise _mismatch("the decision record was made outside its lease's spending period")
            lease_id = lease.lease_id
        return Basis(
            receipt_id=claims.record_id,
            rights_holder_id=grant.rights_holder_id,
            grant_id=grant.id,
            revenue_share_bps=terms.revenue_share_bps,
            fee=terms.per_use_fee if terms.HasField("per_use_fee") else None,
            decide_time=decided,
            lease_id=lease_id,
        )
