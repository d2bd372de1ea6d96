"""The ``license(...)`` block shared by `Client`, `AsyncClient` and the offline authorizer.

Entering authorizes; a denial raises `LicenseDenied` and the body never runs. A clean exit marks
the use, records it in the client's `ReceiptJournal` and reports it to the server (one
`UsageReport` per allowed character of a decision that carries a receipt); an exception in the
body records and reports nothing and propagates unchanged. Reporting never raises from the block,
since the content was already rendered: reports that cannot be delivered wait in the client's
`PendingUsage` for ``flush_usage()``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence

from charter.decisions import Decision, LicenseDenied
from charter.errors import (
    CharterError,
    DeadlineExceededError,
    ResourceExhaustedError,
    UnavailableError,
)
from charter.terms import Obligations
from charter.usage import PendingUsage, UsageReport, UsageResult, currency_code, receipt_payload, usage_key
from charter.v1 import envelope_pb2

__all__ = [
    "DELIVERY_FAILURES",
    "License",
    "ReceiptJournal",
    "SendOutcome",
    "async_license_block",
    "license_block",
    "settle_flush",
    "settle_license_report",
]

log = logging.getLogger("charter.usage")

SendOutcome = tuple[list[UsageResult], int, CharterError | None]
"""What sending reports in batches came to: the results so far, how many reports were sent, and
the error that stopped it (None when every batch was answered)."""

DELIVERY_FAILURES: tuple[type[CharterError], ...] = (UnavailableError, DeadlineExceededError, ResourceExhaustedError)
"""Failures that say nothing about the reports themselves: the server could not be reached, did
not answer in time, or was overloaded. Reports that met one are kept for a later flush."""


class License:
    """A use that was allowed, inside a ``license(...)`` block.

    Set `duration` and call `attribute_revenue` in the body to have them reported with the use.
    After a clean exit, `usage_results` holds the server's answer per reported record.

    A decision made offline (`Decision.offline`, by `charter.OfflineAuthorizer` from grants it
    holds) has no receipt: it is reported under its signed decision records when the authorizer
    holds a licensee key (``signer=``), and otherwise stays in the client's `receipts` journal only.

    Attributes:
        decision: The allowing decision.
    """

    __slots__ = ("_duration", "_revenue", "_usage_results", "_used", "decision")

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self._used = False
        self._duration: dt.timedelta | None = None
        # Revenue per character id; the None key holds revenue attributed to every character.
        self._revenue: dict[str | None, tuple[int, str]] = {}
        self._usage_results: list[UsageResult] = []

    @property
    def receipt(self) -> envelope_pb2.Envelope | None:
        """The signed decision receipt (None for a decision made offline)."""
        return self.decision.receipt

    @property
    def receipt_digest(self) -> bytes:
        """The receipt's name in the transparency log (`Decision.receipt_digest`); empty offline."""
        return self.decision.receipt_digest

    @property
    def obligations(self) -> dict[str, Obligations]:
        """What the use owes, by character id: attribution, watermark, revenue share, fee."""
        return self.decision.obligations

    @property
    def used(self) -> bool:
        """Whether the block ended cleanly and the use was recorded."""
        return self._used

    @property
    def duration(self) -> dt.timedelta | None:
        """The length of the content rendered, reported with the use (0 to 24 hours).

        Set it in the body once the length is known; when it is left None, the `duration` given
        to ``license(...)`` (the decision's use context) is reported, if any.

        Raises:
            TypeError: When set to anything but a `datetime.timedelta` or None.
        """
        return self._duration

    @duration.setter
    def duration(self, value: dt.timedelta | None) -> None:
        if value is not None and not isinstance(value, dt.timedelta):
            raise TypeError(f"duration must be a datetime.timedelta or None, not {type(value).__name__}")
        self._duration = value

    def attribute_revenue(self, minor_units: int, currency: str, *, character_id: str | None = None) -> None:
        """Attributes revenue to the use, to be reported with it; a later call replaces it.

        Each rights holder's statement computes its share of the revenue reported for its
        character. Without `character_id` the revenue is reported for every allowed character
        of the decision (the content's revenue, of which each rights holder gets its share);
        with it, for that character only, overriding the revenue given for all.

        Args:
            minor_units: The amount in minor units of the currency (cents for USD, yen for
                JPY), not negative. Never a float.
            currency: The ISO 4217 code, for example ``"USD"``; when the terms set a per-use
                fee, it must be the fee's currency or the record is rejected
                (``CURRENCY_MISMATCH``).
            character_id: The one allowed character the revenue is for; None for all.

        Raises:
            TypeError: If `minor_units` is not an int or `currency` not a string.
            ValueError: If `minor_units` is negative, or `character_id` is not an allowed
                character of the decision.
        """
        if isinstance(minor_units, bool) or not isinstance(minor_units, int):
            raise TypeError(f"minor_units must be an int, not {type(minor_units).__name__}")
        if minor_units < 0:
            raise ValueError(f"minor_units must not be negative, got {minor_units}")
        if not isinstance(currency, str):
            raise TypeError(f"currency must be a string, not {type(currency).__name__}")
        if character_id is not None and character_id not in self.decision.obligations:
            raise ValueError(f"{character_id!r} is not an allowed character of this decision")
        self._revenue[character_id] = (minor_units, currency_code(currency))

    @property
    def usage_results(self) -> list[UsageResult]:
        """The server's answer per reported record, after a clean exit; empty before it.

        Empty too when nothing could be reported: an offline decision (no receipt), or reports
        that could not be delivered and wait in the client's ``pending_usage``. A record the
        server rejected is here (`UsageResult.accepted` false, with its reason) and is not
        queued again.
        """
        return list(self._usage_results)

    def usage_reports(self, happen_time: dt.datetime) -> list[UsageReport]:
        """Returns what a clean exit reports: one `UsageReport` per allowed character.

        Each report is for one use (``uses=1``) under the key
        ``charter.usage.usage_key(receipt_id, character_id)``, with `duration` (or the decision's
        use-context duration) and the revenue attributed. An offline decision is reported
        under its decision records (when it has them; otherwise nothing).

        Args:
            happen_time: When the use happened (the block's exit); timezone-aware.

        Returns:
            The reports, in the decision's character order.
        """
        receipt = self.decision.receipt
        if receipt is None:
            return self._offline_reports(happen_time)
        payload = receipt_payload(receipt)
        receipt_id = self.decision.receipt_id or (payload.receipt_id if payload is not None else "")
        if not receipt_id:
            return []
        duration = self._duration
        if duration is None and payload is not None and payload.context.HasField("duration"):
            duration = payload.context.duration.ToTimedelta()
        reports = []
        for character in self.decision.characters:
            if not character.allowed:
                continue
            revenue = self._revenue.get(character.character_id, self._revenue.get(None))
            reports.append(
                UsageReport(
                    receipt,
                    character.character_id,
                    uses=1,
                    duration=duration,
                    revenue_minor_units=None if revenue is None else revenue[0],
                    currency=None if revenue is None else revenue[1],
                    happen_time=happen_time,
                    idempotency_key=usage_key(receipt_id, character.character_id),
                )
            )
        return reports

    def _offline_reports(self, happen_time: dt.datetime) -> list[UsageReport]:
        """One report per allowed character under its signed decision record (offline decisions
        of an authorizer with a licensee key); empty without records."""
        records = self.decision.decision_records
        if len(records) != len(self.decision.characters):
            return []
        reports = []
        for character, record in zip(self.decision.characters, records, strict=True):
            if not character.allowed:
                continue
            revenue = self._revenue.get(character.character_id, self._revenue.get(None))
            reports.append(
                UsageReport(
                    record,
                    character.character_id,
                    uses=1,
                    duration=self._duration,
                    revenue_minor_units=None if revenue is None else revenue[0],
                    currency=None if revenue is None else revenue[1],
                    happen_time=happen_time,
                )
            )
        return reports

    def __repr__(self) -> str:
        return f"License(receipt_id={self.decision.receipt_id!r}, used={self._used})"


class ReceiptJournal:
    """The uses that ``license(...)`` blocks completed, newest last; thread-safe and bounded.

    A clean exit from a ``license(...)`` block appends its `License` here, besides reporting its
    use to the server (`License.usage_results`); a backend drains it to keep its own record of
    what it rendered under which receipt. It is the only record of a use decided offline, which
    has no receipt and so cannot be reported.

    Args:
        capacity: How many uses to keep; the oldest are dropped beyond it.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._items: deque[License] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def record(self, used: License) -> None:
        """Append one completed use."""
        with self._lock:
            self._items.append(used)

    def drain(self) -> list[License]:
        """Remove and return every recorded use, oldest first."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
        return items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def _allowed(decision: Decision) -> License:
    if not decision.allowed:
        raise LicenseDenied(decision)
    return License(decision)


def settle_license_report(
    granted: License, reports: Sequence[UsageReport], outcome: SendOutcome, pending: PendingUsage
) -> None:
    """Keeps the answers of a block's report on its `License`; queues what was not delivered.

    Never raises: the content was rendered, so a failed report becomes a warning and pending
    reports rather than an error in the caller's block.
    """
    results, sent, error = outcome
    granted._usage_results = results
    rejected = [result for result in results if not result.accepted]
    if rejected:
        log.warning(
            "charter.usage: the server rejected %d usage record(s) of receipt %s: %s",
            len(rejected),
            granted.decision.receipt_id,
            ", ".join(f"{r.idempotency_key} {r.error_reason or r.error_code}" for r in rejected),
        )
    if error is not None:
        pending.add(reports[sent:])
        log.warning(
            "charter.usage: could not report the use of receipt %s (%s); %d report(s) wait in pending_usage"
            " for flush_usage()",
            granted.decision.receipt_id,
            error.code.name,
            len(reports) - sent,
        )


def settle_flush(reports: Sequence[UsageReport], outcome: SendOutcome, pending: PendingUsage) -> list[UsageResult]:
    """Queues again the reports a flush did not deliver; returns the results, or raises.

    Raises:
        CharterError: The failure that stopped the flush, unless it was a delivery failure
            (`DELIVERY_FAILURES`); the reports it left unsent are queued again either way.
    """
    results, sent, error = outcome
    if error is None:
        return results
    pending.add(reports[sent:])
    if isinstance(error, DELIVERY_FAILURES):
        log.warning(
            "charter.usage: flush stopped (%s); %d report(s) wait in pending_usage",
            error.code.name,
            len(reports) - sent,
        )
        return results
    raise error


@contextlib.contextmanager
def license_block(
    decide: Callable[[], Decision],
    record: Callable[[License], None],
    report: Callable[[License], None] | None = None,
) -> Iterator[License]:
    """Authorize with ``decide()``; run the body; on a clean exit mark, ``record`` and ``report`` the use.

    ``report`` must not raise (the clients' own never do).
    """
    granted = _allowed(decide())
    yield granted  # an exception in the body propagates from here and skips the recording
    granted._used = True
    record(granted)
    if report is not None:
        report(granted)


@contextlib.asynccontextmanager
async def async_license_block(
    decide: Callable[[], Awaitable[Decision]],
    record: Callable[[License], None],
    report: Callable[[License], Awaitable[None]] | None = None,
) -> AsyncIterator[License]:
    """The asyncio form of `license_block`."""
    granted = _allowed(await decide())
    yield granted
    granted._used = True
    record(granted)
    if report is not None:
        await report(granted)
