"""Decision records in ``ReportUsage``: offline uses reported and paid like online ones.

A usage record may carry, instead of a decision receipt, a **decision record** the SDK signed
with a key of the caller's licensee (`charter.decision_records`). Before the batch's transaction
each record is checked here, against what the batch reads once:

1. it verifies against the licensee's keys (`charter.decision_records.verify_decision_record`,
   the shared core): a forged, mangled, unknown-key, revoked-key or another licensee's record is
   refused with ``DECISION_RECORD_INVALID``, and so is a record whose id is not a decision record
   id (``dr_`` and 32 hex digits, as ``offline.proto`` promises): the id is the key its use is
   counted under, next to the ids of Charter's receipts (``rcp_...``), so a chosen one could name a
   receipt and have one report stand for two uses, and a long one would not fit the column;
2. it allowed the record's character under a grant of the licensee for that character, with the
   grant's terms version, decided while the grant was live (within its validity window, and not
   later than the clock skew after a revocation or suspension): otherwise
   ``DECISION_RECORD_MISMATCH``; its character was opted in when it was decided (a suspension,
   opt-out or archiving leaves the grant active, but ``Authorize`` denies from then on): a record
   decided later than the clock skew after the latest of them is refused with the reason
   ``Authorize`` gives, ``CHARACTER_SUSPENDED`` or ``CHARACTER_NOT_OPTED_IN``;
3. a grant whose uses are counted (a quota or a cap) needs a lease of the same licensee, grant
   and character whose spending period covers the decision time: otherwise
   ``DECISION_RECORD_MISMATCH`` (``LEASE_NOT_FOUND`` for a lease that is not the licensee's).

Like ``charter_server.services.usage_receipts``, this module reads protobuf: a decision record is
verified as the signed envelope received, and the grant's terms as Charter stored them.

In the transaction (`charter_server.services.usage`), a record counts one use against its lease
(never past the lease: ``LEASE_EXCEEDED``) and against the licensee's record id (a record reports
its use once: ``DECISION_RECORD_REPLAYED``). The id is the SDK's choice, so it is counted per
licensee: another licensee's record under the same id is that licensee's own use and never blocks
this one's. After the lease's report deadline it is still accepted, since
its decision time lies within the lease (3.): the lease is reclaimed and the use counted again in
the quotas it went back to (`charter_server.services.leases.report_use`).

What a statement needs comes from the grant as Charter stored and signed it (rights holder,
revenue share, per-use fee), never from the record.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta

from charter.decision_records import DecisionRecordVerification, verify_decision_record
from charter.transparency import payload_digest
from charter.v1 import envelope_pb2, terms_pb2
from charter.v1.offline_pb2 import DecisionRecordClaims

from charter_server.domain import ids
from charter_server.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from charter_server.domain.models import CharacterState, GrantRecord, GrantState, RevocationKind
from charter_server.domain.offline import QuotaLeaseRecord
from charter_server.services.licensee_keys import licensee_ring
from charter_server.services.usage_receipts import ReceiptUse
from charter_server.storage.database import Database

SKEW = timedelta(minutes=5)
"""How far a decision may lie outside a grant's or lease's window, or after a revocation: the
clock skew of usage records (``charter_server.services.usage.FUTURE_SKEW``)."""
# A verdict no verifier returns: not an envelope, or a record whose id Charter cannot count under.
_MALFORMED = DecisionRecordVerification(1 << 30, None, "")


_LEFT_SERVICE = (
    RevocationKind.CHARACTER_SUSPENDED,
    RevocationKind.CHARACTER_WITHDRAWN,
    RevocationKind.CHARACTER_ARCHIVED,
)
"""The revocation-log events after which a character is no longer opted in."""


def _claimed_lease(envelope: envelope_pb2.Envelope) -> str:
    """The lease a record names, read without verifying it: only for bytes Charter verified and
    accepted before."""
    try:
        return DecisionRecordClaims.FromString(envelope.payload).lease_id
    except Exception:  # DecodeError: a fingerprint match makes it unlikely, not impossible
        return ""


def _mismatch(message: str) -> FailedPrecondition:
    return FailedPrecondition(message, reason="DECISION_RECORD_MISMATCH")


class OfflineBatch:
    """The decision records of one ``ReportUsage`` batch, verified together: the licensee's key
    ring, and the grants and leases they name, each read once, in one read transaction."""

    def __init__(self, db: Database, licensee_id: str) -> None:
        self._db = db
        self._licensee_id = licensee_id
        self._verified: dict[int, DecisionRecordVerification] = {}
        # Each record's payload digest: its name in the log's usage entry, as a receipt's digest is.
        self._digests: dict[int, bytes] = {}
        self._grants: dict[str, GrantRecord] = {}
        self._leases: dict[str, QuotaLeaseRecord] = {}
        # Characters not opted in now: the reason Authorize denies them with, and since when.
        self._not_live: dict[str, tuple[str, datetime]] = {}
        self._lease_of: dict[int, str] = {}  # the lease each record names, by position

    def prepare(self, records: Sequence[tuple[int, bytes]], accepted: Collection[int] = ()) -> None:
        """Verify the batch's decision records (by position, as serialized envelopes) and read
        what they name, before any is checked. The records at positions ``accepted`` were accepted
        before as they are (same fingerprint): they are not verified again (their key may be
        revoked since), only their lease is read, to answer them as the first time."""
        if not records:
            return
        with self._db.uow() as uow:
            ring = licensee_ring(uow.licensee_keys.of_licensee(self._licensee_id))
            grant_ids: set[str] = set()
            lease_ids: set[str] = set()
            for index, serialized in records:
                try:
                    envelope = envelope_pb2.Envelope.FromString(serialized)
                except Exception:  # DecodeError, or anything else hostile bytes provoke
                    self._verified[index] = _MALFORMED
                    continue
                if index in accepted:
                    self._lease_of[index] = _claimed_lease(envelope)
                    lease_ids.add(self._lease_of[index])
                    continue
                verification = verify_decision_record(envelope, keys=ring, licensee_id=self._licensee_id)
                claims = verification.claims
                if verification.valid and claims is not None and not ids.is_valid("decision_record", claims.record_id):
                    # The SDK's own ids always pass; only a hand-made record names a receipt's id or
                    # an id too long to store, and either is refused before anything is read for it.
                    verification = _MALFORMED
                self._verified[index] = verification
                self._digests[index] = payload_digest(envelope)
                if verification.valid and verification.claims is not None:
                    grant_ids.add(verification.claims.grant_id)
                    if verification.claims.lease_id:
                        lease_ids.add(verification.claims.lease_id)
                        self._lease_of[index] = verification.claims.lease_id
            self._grants = uow.bundles.grants(sorted(grant_ids))
            self._leases = uow.leases.get_many(sorted(lease_ids - {""}))
            characters = uow.characters.get_many(sorted({g.character_id for g in self._grants.values()}))
            not_live = {cid: c for cid, c in characters.items() if c.state is not CharacterState.OPTED_IN}
            since = uow.revocations.last_of_characters(sorted(not_live), _LEFT_SERVICE)
            for character_id, character in not_live.items():
                suspended = character.state is CharacterState.SUSPENDED
                reason = "CHARACTER_SUSPENDED" if suspended else "CHARACTER_NOT_OPTED_IN"
                self._not_live[character_id] = (reason, since.get(character_id, character.update_time))

    def accepted_late(self, index: int, accept_time: datetime) -> bool:
        """Whether the record at ``index``, accepted at ``accept_time``, was accepted after its
        lease's report deadline (``late``); False for a record without a lease."""
        deadline = self.report_deadline(self._lease_of.get(index, ""))
        return deadline is not None and accept_time > deadline

    def report_deadline(self, lease_id: str) -> datetime | None:
        """The report deadline of a lease the batch read, or None."""
        lease = self._leases.get(lease_id) if lease_id else None
        return None if lease is None else lease.report_deadline

    def use_of(self, index: int, character_id: str) -> tuple[ReceiptUse, str]:
        """Check the decision record of the batch's record ``index`` (prepared) for
        ``character_id``; what its use owes, and the lease it counts against ('' for none).

        Raises:
            InvalidArgument: It does not verify (``DECISION_RECORD_INVALID``).
            FailedPrecondition: It does not match its grant or lease (``DECISION_RECORD_MISMATCH``).
            NotFound: Its lease is not the licensee's (``LEASE_NOT_FOUND``).
        """
        verification = self._verified.get(index, _MALFORMED)
        claims = verification.claims
        if not verification.valid or claims is None:
            reason = "MALFORMED" if verification is _MALFORMED else verification.reason
            raise InvalidArgument.one(
                "decision_record",
                f"is not a decision record signed by a key of this licensee ({reason})",
                reason="DECISION_RECORD_INVALID",
            )
        if claims.character_id != character_id or not claims.allowed:
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
        not_live = self._not_live.get(grant.character_id)
        if not_live is not None and decided > not_live[1] + SKEW:
            raise FailedPrecondition("the record was decided after its character was withdrawn", reason=not_live[0])
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
        fee = terms.per_use_fee if terms.HasField("per_use_fee") else None
        fee_currency = fee.currency_code.upper() if fee is not None and fee.currency_code else ""
        use = ReceiptUse(
            receipt_id=claims.record_id,
            decide_time=decided,
            rights_holder_id=grant.rights_holder_id,
            grant_id=grant.id,
            revenue_share_bps=terms.revenue_share_bps,
            fee_currency=fee_currency,
            fee_minor=fee.minor_units if fee is not None and fee_currency else 0,
            receipt_digest=self._digests[index],
        )
        return use, lease_id
