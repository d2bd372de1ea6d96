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

from datetime import UTC, timedelta
from types import TracebackType

from charter.decision_records import verify_decision_record
from charter.grants import KeyRing
from charter.v1 import envelope_pb2, terms_pb2

from charter_server.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from charter_server.domain.models import GrantRecord, GrantState
from charter_server.domain.offline import QuotaLeaseRecord
from charter_server.services.leases import has_quota
from charter_server.services.licensee_keys import licensee_ring
from charter_server.services.usage_receipts import Basis
from charter_server.storage.database import Database
from charter_server.storage.uow import UnitOfWork

SKEW = timedelta(minutes=5)
"""How far a decision may lie outside a grant's or lease's window, or after a revocation: the
clock skew of usage records (``charter_server.services.usage.FUTURE_SKEW``)."""


def _mismatch(message: str) -> FailedPrecondition:
    return FailedPrecondition(message, reason="DECISION_RECORD_MISMATCH")


class OfflineBatch:
    """The decision records of one ``ReportUsage`` batch: the licensee's key ring, and its grants
    and leases read once each, in one read transaction opened when first needed."""

    def __init__(self, db: Database, licensee_id: str) -> None:
        self._db = db
        self._licensee_id = licensee_id
        self._uow: UnitOfWork | None = None
        self._ring: KeyRing | None = None
        self._grants: dict[str, GrantRecord | None] = {}
        self._leases: dict[str, QuotaLeaseRecord | None] = {}

    def __enter__(self) -> OfflineBatch:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._uow is not None:
            self._uow.__exit__(kind, error, trace)
            self._uow = None

    def _read(self) -> UnitOfWork:
        if self._uow is None:
            uow = self._db.uow()
            self._uow = uow.__enter__()
        return self._uow

    def basis(self, envelope: bytes, character_id: str) -> Basis:
        """Check a record's decision record (the serialized envelope as received) for a use of
        ``character_id``; what the use rests on (see the module docstring)."""
        if self._ring is None:
            self._ring = licensee_ring(self._read().licensee_keys.of_licensee(self._licensee_id))
        verification = verify_decision_record(
            envelope_pb2.Envelope.FromString(envelope), keys=self._ring, licensee_id=self._licensee_id
        )
        claims = verification.claims
        if not verification.valid or claims is None:
            raise InvalidArgument.one(
                "decision_record",
                f"is not a decision record signed by a key of this licensee ({verification.reason})",
                reason="DECISION_RECORD_INVALID",
            )
        if claims.character_id != character_id or not claims.allowed:
            raise _mismatch("the decision record does not allow this character")
        decided = claims.decide_time.ToDatetime(tzinfo=UTC)
        grant = self._grant(claims.grant_id)
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
        lease_id = ""
        if has_quota(grant):
            if not claims.lease_id:
                raise _mismatch("the grant's uses are counted: the decision record must name a quota lease")
            lease = self._lease(claims.lease_id)
            if lease is None or lease.licensee_id != self._licensee_id:
                raise NotFound("no such lease", reason="LEASE_NOT_FOUND")
            if lease.grant_id != grant.id or lease.character_id != grant.character_id:
                raise _mismatch("the decision record's lease is another grant's")
            if not lease.create_time - SKEW <= decided <= lease.expire_time + SKEW:
                raise _mismatch("the decision record was made outside its lease's spending period")
            lease_id = lease.lease_id
        terms = terms_pb2.Terms.FromString(grant.terms)
        fee = terms.per_use_fee if terms.HasField("per_use_fee") else None
        fee_currency = fee.currency_code.upper() if fee is not None and fee.currency_code else ""
        return Basis(
            receipt_id=claims.record_id,
            decide_time=decided,
            rights_holder_id=grant.rights_holder_id,
            grant_id=grant.id,
            revenue_share_bps=terms.revenue_share_bps,
            fee_currency=fee_currency,
            fee_minor=fee.minor_units if fee is not None and fee_currency else 0,
            lease_id=lease_id,
        )

    def _grant(self, grant_id: str) -> GrantRecord | None:
        if grant_id not in self._grants:
            self._grants[grant_id] = self._read().grants.get(grant_id) if grant_id else None
        return self._grants[grant_id]

    def _lease(self, lease_id: str) -> QuotaLeaseRecord | None:
        if lease_id not in self._leases:
            self._leases[lease_id] = self._read().leases.get(lease_id)
        return self._leases[lease_id]
