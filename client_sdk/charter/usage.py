"""Usage reporting: what a generation backend rendered under an allowing decision.

A decision receipt (`charter.decisions.Decision.receipt`) covers **one use of each character it
allowed**. After rendering, the backend reports that use with a `UsageReport` through
`Client.report_usage` (or `AsyncClient.report_usage`); Charter adds the accepted records up into
the rights holders' revenue-share statements. A clean exit from a ``license(...)`` block reports
its use by itself (see `charter.License`).

**Idempotency.** Every record carries an idempotency key, unique per licensee forever. The server
counts a key once: the same key with the same record is answered as the first time
(`UsageResult.duplicate`), the same key with a different record is refused with
``IDEMPOTENCY_KEY_REUSED``. By default the key is `usage_key` of the receipt id and the character
id, so a report can be re-sent after a lost reply, a timeout or a crash without ever counting
twice. Re-send the *same* report (the same time, duration and revenue): `PendingUsage` keeps the
reports exactly as first sent for that reason.

**Per-record answers.** One bad record never sinks the others: each comes back as a `UsageResult`,
accepted or rejected with the gRPC status code name and `ErrorReason` a call with this record alone
would have failed with (for example ``RECEIPT_DOES_NOT_ALLOW_CHARACTER``, ``RECEIPT_CONSUMED``,
``USAGE_TOO_OLD``, ``CURRENCY_MISMATCH``).

Example:
    ```python
    from charter.usage import UsageReport

    decision = client.authorize(character_ids=["chr_..."], use_type=..., content_rating=...)
    video = render(...)
    results = client.report_usage(
        [UsageReport(decision.receipt, "chr_...", duration=timedelta(seconds=12),
                     revenue_minor_units=500, currency="USD")]
    )
    assert results[0].accepted
    ```
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Iterable

from google.protobuf.message import DecodeError

from charter import envelope as _envelope
from charter.envelope import DECISION_RECORD_PAYLOAD_TYPE
from charter.errors import FieldViolation
from charter.v1 import decision_pb2, envelope_pb2, terms_pb2, usage_pb2
from charter.v1.offline_pb2 import DecisionRecordClaims

__all__ = ["MAX_BATCH_SIZE", "PendingUsage", "UsageReport", "UsageResult", "usage_key"]

log = logging.getLogger(__name__)

MAX_BATCH_SIZE = 1000
"""The most records one ``ReportUsage`` call may carry (batches of about 100 are fastest)."""


def usage_key(receipt_id: str, character_id: str) -> str:
    """Returns the idempotency key the SDK derives for the use of a character under a receipt.

    The key is ``"<receipt_id>:<character_id>"``, for example
    ``rcp_0123...cdef:chr_4567...89ab``. ``license(...)`` blocks report under it, and a
    `UsageReport` without an explicit key uses it. Since a receipt covers one use of each
    character it allowed, the pair names that use exactly: reporting it again under this key
    is never counted twice.

    Args:
        receipt_id: The decision receipt's id (`rcp_...`).
        character_id: The character's id (`chr_...`).

    Returns:
        The key.
    """
    return f"{receipt_id}:{character_id}"


def currency_code(value: str) -> str:
    """Returns a currency code in upper case, as ISO 4217 writes it; non-ASCII text unchanged.

    Only ASCII is folded: Unicode case mapping would turn text that is no currency code into one
    (the long s, U+017F, upper-cases to ``S``), and the server must see, and refuse, what was given.
    """
    return value.upper() if value.isascii() else value


def receipt_payload(receipt: envelope_pb2.Envelope) -> decision_pb2.DecisionReceipt | None:
    """Returns the `DecisionReceipt` an envelope carries, unverified; None when it does not parse.

    Only for reading what the SDK itself received (its id, its use context); the server verifies
    every receipt it is sent.
    """
    try:
        return decision_pb2.DecisionReceipt.FromString(receipt.payload)
    except DecodeError:
        return None


@dataclasses.dataclass(frozen=True, slots=True, init=False)
class UsageReport:
    """One use to report: a character rendered under a decision receipt (or, for an offline
    decision, under its signed decision record).

    Attributes:
        receipt: The decision receipt the use follows, as `authorize` returned it
            (`Decision.receipt`), or an offline decision's record (`Decision.decision_records`,
            payload type `charter.envelope.DECISION_RECORD_PAYLOAD_TYPE`), which is sent as the
            record's ``decision_record``.
        character_id: The character used; the receipt must allow it.
        uses: The uses rendered, 0 or 1: a receipt covers one use of each character it allowed.
            Records with 0 uses (parts of the content, each under its own key) are accepted only
            before the use is reported, at most 100 per receipt and character
            (``RECEIPT_RECORD_LIMIT``); once a record with the use is accepted, any further record
            of that receipt's character is refused with ``RECEIPT_CONSUMED``. So report the parts
            first and the use last, or the whole content in one record.
        duration: The length of the content rendered, 0 to 24 hours; None when not measured.
        revenue_minor_units: The revenue attributed to this use, in minor units of `currency`
            (cents for USD, yen for JPY); None for none. When the terms set a per-use fee, the
            revenue must be in the fee's currency.
        currency: The ISO 4217 code of the revenue, for example ``"USD"``; set exactly when
            `revenue_minor_units` is.
        happen_time: When the use happened (timezone-aware); None means the time it is first
            sent. It must not be older than the server's usage window (60 days by default), nor
            in the future, nor before the decision.
        idempotency_key: The key that makes the report idempotent: 1 to 128 characters of
            ``A-Z a-z 0-9 . _ : ~ -``. `usage_key` of the receipt's id and the character when
            not given.
    """

    receipt: envelope_pb2.Envelope
    character_id: str
    uses: int
    duration: dt.timedelta | None
    revenue_minor_units: int | None
    currency: str | None
    happen_time: dt.datetime | None
    idempotency_key: str

    def __init__(
        self,
        receipt: envelope_pb2.Envelope | str,
        character_id: str,
        *,
        uses: int = 1,
        duration: dt.timedelta | None = None,
        revenue_minor_units: int | None = None,
        currency: str | None = None,
        happen_time: dt.datetime | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        """Creates a report, checking the types of its fields (the server checks their values).

        Args:
            receipt: The decision receipt, as an `Envelope` message or its DSSE JSON text
                (`charter.envelope.to_json`, as `charter authorize --json` prints it).
            character_id: The character used.
            uses: 0 or 1.
            duration: The content's length.
            revenue_minor_units: The revenue attributed, in minor units; with `currency`.
            currency: The revenue's ISO 4217 currency code; with `revenue_minor_units`.
            happen_time: When the use happened, timezone-aware; None for the time it is sent.
            idempotency_key: The key; by default `usage_key(receipt id, character_id)`.

        Raises:
            MalformedEnvelope: If `receipt` is text that is not DSSE JSON.
            TypeError: If a field has the wrong type.
            ValueError: If only one of `revenue_minor_units` and `currency` is given,
                `happen_time` is naive, or no key is given and the receipt carries no
                receipt id to derive one from.
        """
        if isinstance(receipt, str):
            receipt = _envelope.from_json(receipt)
        if not isinstance(receipt, envelope_pb2.Envelope):
            raise TypeError(
                "receipt must be a charter.v1.envelope_pb2.Envelope or its DSSE JSON text,"
                f" not {type(receipt).__name__}"
            )
        if not isinstance(character_id, str):
            raise TypeError(f"character_id must be a string, not {type(character_id).__name__}")
        if isinstance(uses, bool) or not isinstance(uses, int):
            raise TypeError(f"uses must be an int, not {type(uses).__name__}")
        if duration is not None and not isinstance(duration, dt.timedelta):
            raise TypeError(f"duration must be a datetime.timedelta, not {type(duration).__name__}")
        if (revenue_minor_units is None) != (currency is None):
            raise ValueError("revenue_minor_units and currency must be given together")
        if revenue_minor_units is not None and (
            isinstance(revenue_minor_units, bool) or not isinstance(revenue_minor_units, int)
        ):
            raise TypeError(f"revenue_minor_units must be an int, not {type(revenue_minor_units).__name__}")
        if currency is not None and not isinstance(currency, str):
            raise TypeError(f"currency must be a string, not {type(currency).__name__}")
        if happen_time is not None:
            _check_aware(happen_time, "happen_time")
        if idempotency_key is None:
            use_id = _use_id(receipt)
            if not use_id:
                raise ValueError("the receipt carries no receipt id to derive a key from; pass idempotency_key")
            idempotency_key = usage_key(use_id, character_id)
        elif not isinstance(idempotency_key, str):
            raise TypeError(f"idempotency_key must be a string, not {type(idempotency_key).__name__}")
        set_field = object.__setattr__  # frozen: assigned once, here
        set_field(self, "receipt", receipt)
        set_field(self, "character_id", character_id)
        set_field(self, "uses", uses)
        set_field(self, "duration", duration)
        set_field(self, "revenue_minor_units", revenue_minor_units)
        set_field(self, "currency", None if currency is None else currency_code(currency))
        set_field(self, "happen_time", happen_time)
        set_field(self, "idempotency_key", idempotency_key)

    def at(self, happen_time: dt.datetime) -> UsageReport:
        """Returns this report with its time fixed, unless it already has one.

        A report is re-sent with the time it was first sent with (`PendingUsage` keeps reports
        that way): with another time it would be a different record under the same key.

        Args:
            happen_time: The time to use when the report has none; timezone-aware.

        Returns:
            A report with `happen_time` set (this one, when it already was).

        Raises:
            ValueError: If `happen_time` is naive.
        """
        if self.happen_time is not None:
            return self
        _check_aware(happen_time, "happen_time")
        return dataclasses.replace(self, happen_time=happen_time)

    def to_proto(self, now: dt.datetime | None = None) -> usage_pb2.UsageRecord:
        """Returns the ``charter.v1.UsageRecord`` to send.

        Args:
            now: The time of a report without `happen_time`; the current time when None.

        Returns:
            The record.

        Raises:
            ValueError: If `now` is naive.
        """
        happened = self.happen_time or now or dt.datetime.now(dt.UTC)
        _check_aware(happened, "now")
        record = usage_pb2.UsageRecord(
            idempotency_key=self.idempotency_key, character_id=self.character_id, uses=self.uses
        )
        # An offline decision's record travels in its own field; the server tells them apart.
        if self.receipt.payload_type == DECISION_RECORD_PAYLOAD_TYPE:
            record.decision_record.CopyFrom(self.receipt)
        else:
            record.receipt.CopyFrom(self.receipt)
        if self.duration is not None:
            record.duration.FromTimedelta(self.duration)
        if self.revenue_minor_units is not None and self.currency is not None:
            record.attributed_revenue.CopyFrom(
                terms_pb2.Money(currency_code=self.currency, minor_units=self.revenue_minor_units)
            )
        record.happen_time.FromDatetime(happened.astimezone(dt.UTC))
        return record


def _use_id(envelope: envelope_pb2.Envelope) -> str:
    """The id a report's default key derives from: the receipt's id, or a decision record's."""
    if envelope.payload_type == DECISION_RECORD_PAYLOAD_TYPE:
        try:
            return DecisionRecordClaims.FromString(envelope.payload).record_id
        except DecodeError:  # not a record this SDK can read
            return ""
    payload = receipt_payload(envelope)
    return payload.receipt_id if payload is not None else ""


def _check_aware(value: dt.datetime, what: str) -> None:
    if not isinstance(value, dt.datetime):
        raise TypeError(f"{what} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, for example datetime.now(UTC)")


@dataclasses.dataclass(frozen=True, slots=True)
class UsageResult:
    """The server's answer to one reported record.

    Attributes:
        index: The record's position in the list given to `report_usage`, from 0.
        idempotency_key: The record's key, as sent.
        accepted: Whether the record is counted (now or, when `duplicate`, the first time).
        duplicate: Whether the key was accepted by an earlier report; the other fields are then
            the first answer's.
        usage_id: The id of the stored record (``use_...``), when accepted.
        statement_period: The statement month the record counts in, ``YYYY-MM``, when accepted:
            the month it happened, or the next open month when that one was already closed.
        accept_time: When the record was first accepted; None when rejected.
        error_code: When rejected, the gRPC status code name a call with this record alone would
            have failed with, for example ``"FAILED_PRECONDITION"``; empty when accepted.
        error_reason: When rejected, the `ErrorReason` name without prefix, for example
            ``"RECEIPT_CONSUMED"``; branch on this, never on the message.
        error_message: When rejected, what went wrong, for people.
        field_violations: When rejected for invalid fields, each one, with paths within the
            record (for example ``attributed_revenue.currency_code``).
        late: Whether an offline use (a decision record) was accepted after its quota lease's
            report deadline: paid all the same, and counted again in the quotas its lease had
            given it back to. Seen often, it says to lease for longer.
    """

    index: int
    idempotency_key: str
    accepted: bool
    duplicate: bool = False
    usage_id: str = ""
    statement_period: str = ""
    accept_time: dt.datetime | None = None
    error_code: str = ""
    error_reason: str = ""
    error_message: str = ""
    field_violations: tuple[FieldViolation, ...] = ()
    late: bool = False

    @property
    def rejected(self) -> bool:
        """Whether the server refused the record (the opposite of `accepted`)."""
        return not self.accepted

    @classmethod
    def from_proto(cls, message: usage_pb2.UsageResult, *, offset: int = 0) -> UsageResult:
        """Builds a result from its ``charter.v1.UsageResult`` message.

        Args:
            message: The message.
            offset: Added to the message's index: the position of its batch's first record in
                the caller's whole list.

        Returns:
            The result.
        """
        accepted = message.status == usage_pb2.USAGE_STATUS_ACCEPTED
        return cls(
            index=message.index + offset,
            idempotency_key=message.idempotency_key,
            accepted=accepted,
            duplicate=message.duplicate,
            usage_id=message.usage_id,
            statement_period=message.statement_period,
            accept_time=message.accept_time.ToDatetime(tzinfo=dt.UTC) if message.HasField("accept_time") else None,
            error_code=message.error_code,
            error_reason=message.error_reason,
            error_message=message.error_message,
            field_violations=tuple(FieldViolation(v.field, v.description) for v in message.field_violations),
            late=message.late,
        )


class PendingUsage:
    """Usage reports that could not be sent yet, oldest first; thread-safe and bounded.

    A ``license(...)`` block whose report cannot be delivered (the server unreachable after the
    client's retries, or the call failing) puts its reports here instead of raising, and
    `Client.flush_usage` sends them again. The reports are kept with their time fixed, so a
    report re-sent after a lost reply is the same record under the same key and is never
    counted twice. Keep the process's reports from being lost when it exits: flush before
    closing, or drain the queue and store the reports yourself.

    Args:
        capacity: How many reports to keep; beyond it the oldest are dropped (with a warning
            logged, and counted in `dropped`).
    """

    def __init__(self, capacity: int = 100_000) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be a positive int, got {capacity!r}")
        self._items: collections.deque[UsageReport] = collections.deque()
        self._capacity = capacity
        self._dropped = 0
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        """How many reports the queue keeps."""
        return self._capacity

    @property
    def dropped(self) -> int:
        """How many reports were dropped because the queue was full, since it was created."""
        with self._lock:
            return self._dropped

    def add(self, reports: Iterable[UsageReport]) -> None:
        """Appends reports; beyond the capacity the oldest are dropped.

        Args:
            reports: The reports, each with its time fixed (see `UsageReport.at`).

        Raises:
            TypeError: If an item is not a `UsageReport`.
        """
        added = list(reports)
        for report in added:
            if not isinstance(report, UsageReport):
                raise TypeError(f"PendingUsage holds UsageReport objects, not {type(report).__name__}")
        with self._lock:
            self._items.extend(added)
            overflow = len(self._items) - self._capacity
            for _ in range(max(overflow, 0)):
                self._items.popleft()
            self._dropped += max(overflow, 0)
        if overflow > 0:
            log.warning("charter.usage: the pending usage queue is full; dropped the %d oldest report(s)", overflow)

    def drain(self) -> list[UsageReport]:
        """Removes and returns every pending report, oldest first."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
        return items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __repr__(self) -> str:
        return f"PendingUsage(pending={len(self)}, capacity={self._capacity})"
