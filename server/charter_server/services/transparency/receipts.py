"""Decision receipts into the log without a transaction per decision.

``Authorize`` signs a receipt on its hot path, often on the event loop, and must not wait for the
database; so the signed payload (the serialized ``DecisionReceipt``, exactly as signed) is put in
a buffer, which a thread of its own empties every ``interval`` seconds: it reads each payload,
builds one ``DecisionLogged`` entry per character decided (all with the receipt's digest, so each
rights holder reads only the entries about its own characters) and appends the whole batch as
pending entries in one transaction. The sequencer then integrates them with everything else, so a
receipt is in a signed tree within about ``interval`` plus the sequencer's interval of its signing.

A buffer that the database cannot drain stops growing at ``max_pending`` receipts: ``Authorize``
then fails closed (retryable) rather than sign receipts the log could not hold.

The same transaction counts each character decision into the decisions per hour
(``domain.decision_history``) that ``PreviewTerms`` replays, and about once an hour the rows past
`DECISION_RETENTION` are deleted.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from datetime import UTC, timedelta

import structlog
from charter.v1 import decision_pb2
from charter.v1 import transparency_pb2 as tp

from charter_server.domain.clock import Clock
from charter_server.domain.decision_history import DecidedUse, DecisionTally, hour_of
from charter_server.domain.errors import StorageBusy
from charter_server.domain.transparency import PendingEntry
from charter_server.services.transparency.appender import build_entry, pending
from charter_server.storage.database import Database

log = structlog.get_logger(__name__)

MAX_PENDING = 200_000
"""The most receipts the buffer holds before ``Authorize`` fails closed."""
DECISION_RETENTION = timedelta(days=90)
"""How long decisions per hour are kept (the longest ``PreviewTerms`` window)."""
_PRUNE_SECONDS = 3600.0
_REASON_NAMES = {value: name.removeprefix("DENY_REASON_") for name, value in decision_pb2.DenyReason.items()}


def decision_entries(payload: bytes, receipt: decision_pb2.DecisionReceipt, actor_key_id: str) -> list[PendingEntry]:
    """The entries of one receipt (``payload`` as signed, ``receipt`` parsed from it): one per
    character decided, or one without a character."""
    digest = hashlib.sha256(payload).digest()
    when = receipt.decide_time.ToDatetime(tzinfo=UTC)
    characters = list(receipt.characters) or [decision_pb2.CharacterDecision()]
    entries = []
    for character in characters:
        message = tp.DecisionLogged(
            receipt_id=receipt.receipt_id,
            receipt_digest=digest,
            licensee_id=receipt.licensee_id,
            character_id=character.character_id,
            rights_holder_id=character.rights_holder_id,
            # A receipt that named no character: whether the request as a whole was allowed.
            allowed=character.allowed if receipt.characters else receipt.allowed,
            grant_id=character.grant_id,
            terms_version=character.terms_version,
        )
        entries.append(
            pending(
                build_entry("decision", message, when=when, actor_key_id=actor_key_id),
                rights_holder_id=character.rights_holder_id,
                licensee_id=receipt.licensee_id,
                receipt_digest=digest,
            )
        )
    return entries


class ReceiptLog:
    """The buffer of signed receipts and the thread that appends them to the log in batches."""

    def __init__(self, db: Database, clock: Clock, *, interval: float = 0.1, max_pending: int = MAX_PENDING) -> None:
        self._db = db
        self._clock = clock
        self._interval = interval
        self._max = max_pending
        # deque.append and popleft are atomic: the hot path takes no lock.
        self._buffer: deque[tuple[bytes, str]] = deque()
        self._flushing: list[tuple[bytes, str]] = []
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, payload: bytes, actor_key_id: str) -> None:
        """Log a signed receipt (its payload exactly as signed) soon.

        Raises:
            StorageBusy: The buffer is full because the database has not taken receipts for a while.
        """
        if len(self._buffer) >= self._max:
            raise StorageBusy("the transparency log is behind; retry")
        self._buffer.append((payload, actor_key_id))

    def is_buffered(self, receipt_digest: bytes) -> bool:
        """Whether a receipt with this digest waits in the buffer (signed, not yet appended)."""
        waiting = [*self._flushing, *list(self._buffer)]
        return any(hashlib.sha256(payload).digest() == receipt_digest for payload, _ in waiting)

    def __len__(self) -> int:
        return len(self._buffer)

    def flush(self) -> int:
        """Append every buffered receipt's entries in one transaction; return how many receipts.

        On a database failure the receipts stay buffered for the next try.
        """
        with self._flush_lock:
            if not self._flushing:
                self._flushing = _take(self._buffer)
            if not self._flushing:
                return 0
            entries: list[PendingEntry] = []
            tallies: list[DecisionTally] = []
            for payload, actor in self._flushing:
                receipt = decision_pb2.DecisionReceipt.FromString(payload)
                entries += decision_entries(payload, receipt, actor)
                tallies += decision_tallies(receipt)
            with self._db.uow(write=True) as uow:
                uow.log.add_pending(entries)
                uow.decisions.add(tallies)
                uow.commit()
            count = len(self._flushing)
            self._flushing = []
            return count

    def start(self) -> None:
        """Start appending in the background."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="charter-receipt-log", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Append what is buffered one last time and stop (call before the sequencer stops)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        try:
            self.flush()
        except Exception:
            log.exception("transparency_log.receipts_lost", receipts=len(self._buffer) + len(self._flushing))

    def prune(self) -> int:
        """Delete the decisions per hour older than `DECISION_RETENTION`; how many rows."""
        with self._db.uow(write=True) as uow:
            removed = uow.decisions.prune(hour_of(self._clock.now() - DECISION_RETENTION))
            uow.commit()
        return removed

    def _run(self) -> None:
        next_prune = time.monotonic()
        while not self._stop.wait(self._interval):
            try:
                self.flush()
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + _PRUNE_SECONDS
                    self.prune()
            except Exception:
                log.exception("transparency_log.receipts_not_appended", receipts=len(self._buffer))


def decision_tallies(receipt: decision_pb2.DecisionReceipt) -> list[DecisionTally]:
    """One decision per character the receipt decides (a character the server did not know, which
    has no rights holder, is left out: no terms decided it)."""
    context = receipt.context
    categories = tuple(sorted(set(context.categories)))
    hour = hour_of(receipt.decide_time.ToDatetime(tzinfo=UTC))
    everyone = {c.character_id for c in receipt.characters if c.character_id}
    tallies = []
    for character in receipt.characters:
        if not character.rights_holder_id:
            continue
        use = DecidedUse(
            context.use_type,
            context.content_rating,
            categories,
            context.territory,
            context.commercial,
            tuple(sorted(everyone - {character.character_id})),
        )
        outcome = tuple(_REASON_NAMES[reason] for reason in character.reasons)
        tallies.append(DecisionTally(character.character_id, hour, receipt.licensee_id, use, outcome, 1))
    return tallies


def _take(buffer: deque[tuple[bytes, str]]) -> list[tuple[bytes, str]]:
    taken = []
    for _ in range(len(buffer)):
        taken.append(buffer.popleft())
    return taken
