"""Decision receipts into the log without a transaction per decision.

``Authorize`` signs a receipt on its hot path, often on the event loop, and must not wait for the
database; so the signed payload (the serialized ``DecisionReceipt``, exactly as signed) is put in
a buffer. Each payload becomes one ``DecisionLogged`` entry per character decided (all with the
receipt's digest, so each rights holder reads only the entries about its own characters).

While this replica's sequencer holds the log's lease, the sequencer empties the buffer itself
(`ReceiptLog.draining`): the entries go straight into its batch, in its one transaction, after the
pending entries, so a receipt costs no row in ``log_pending`` (no insert, read and delete of it)
and no transaction of its own, and is in a signed tree within about one sequencer interval of its
signing. Otherwise (another replica sequences, or this one's sequencer stopped) a thread of this
module empties the buffer every ``interval`` seconds into ``log_pending`` in one transaction, and
whichever replica sequences integrates them with everything else.

A buffer that the database cannot drain stops growing at ``max_pending`` receipts: ``Authorize``
then fails closed (retryable) rather than sign receipts the log could not hold.

The same transaction (the sequencer's, or this module's) counts each character decision into the
decisions per hour (``domain.decision_history``) that ``PreviewTerms`` replays, and about once an
hour this module's thread deletes the rows past `DECISION_RETENTION`.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, timedelta

import structlog
from charter.transparency import leaf_hash
from charter.v1 import decision_pb2
from charter.v1 import transparency_pb2 as tp

from charter_server.domain.clock import Clock
from charter_server.domain.decision_history import DecidedUse, DecisionTally, hour_of
from charter_server.domain.errors import StorageBusy
from charter_server.domain.transparency import PendingEntry
from charter_server.storage.database import Database

log = structlog.get_logger(__name__)

_RECEIPT = decision_pb2.DecisionReceipt.FromString
_NO_CHARACTER = (decision_pb2.CharacterDecision(),)
_SALT_SIZE = 16  # as `appender.build_entry` draws
_sha256 = hashlib.sha256

MAX_PENDING = 200_000
"""The most receipts the buffer holds before ``Authorize`` fails closed."""
DECISION_RETENTION = timedelta(days=90)
"""How long decisions per hour are kept (the longest ``PreviewTerms`` window)."""
_PRUNE_SECONDS = 3600.0
_REASON_NAMES = {value: name.removeprefix("DENY_REASON_") for name, value in decision_pb2.DenyReason.items()}


class SaltPool:
    """Random salts cut from one draw of the system's random source per 256 entries.

    A system call per entry costs more than building the entry where system calls are dear (a
    sandboxed container); the bytes are the same ``os.urandom`` bytes. Not thread-safe: the
    `ReceiptLog` uses its pool under its lock.
    """

    __slots__ = ("_at", "_pool")

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def __call__(self, size: int) -> bytes:
        """``size`` random bytes, each handed out once."""
        if self._at + size > len(self._pool):
            self._pool = os.urandom(max(size, 256 * _SALT_SIZE))
            self._at = 0
        drawn = self._pool[self._at : self._at + size]
        self._at += size
        return drawn


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


def decision_entries(
    payload: bytes,
    actor_key_id: str,
    random_bytes: Callable[[int], bytes] = os.urandom,
    receipt: decision_pb2.DecisionReceipt | None = None,
) -> list[PendingEntry]:
    """The entries of one receipt: one per character decided, or one without a character.

    Each entry is the ``LogEntry`` that `appender.build_entry` would make, with a
    ``DecisionLogged`` change, ``event_time`` the receipt's ``decide_time`` (copied, not converted
    through a datetime) and a salt of 16 bytes of ``random_bytes``, built in one constructor call:
    this runs once per decision.
    """
    if receipt is None:
        receipt = _RECEIPT(payload)
    digest = _sha256(payload).digest()
    characters = receipt.characters
    salt = random_bytes(_SALT_SIZE * max(1, len(characters)))
    entries = []
    for number, character in enumerate(characters or _NO_CHARACTER):
        entry = tp.LogEntry(
            event_time=receipt.decide_time,
            salt=salt[number * _SALT_SIZE : (number + 1) * _SALT_SIZE],
            actor_key_id=actor_key_id,
            decision=tp.DecisionLogged(
                receipt_id=receipt.receipt_id,
                receipt_digest=digest,
                licensee_id=receipt.licensee_id,
                character_id=character.character_id,
                rights_holder_id=character.rights_holder_id,
                # A receipt that named no character: whether the request as a whole was allowed.
                allowed=character.allowed if characters else receipt.allowed,
                grant_id=character.grant_id,
                terms_version=character.terms_version,
            ),
        ).SerializeToString()
        entries.append(PendingEntry(entry, leaf_hash(entry), character.rights_holder_id, receipt.licensee_id, digest))
    return entries


@dataclass(slots=True)
class Drain:
    """Receipts handed to the sequencer (`ReceiptLog.draining`): their entries and their decisions
    per hour (the sequencer adds both in its transaction), and whether that transaction committed
    (it sets ``committed``)."""

    receipts: int
    entries: list[PendingEntry] = field(default_factory=list)
    tallies: list[DecisionTally] = field(default_factory=list)
    committed: bool = False


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
        self._salts = SaltPool()  # used under the lock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Until when (monotonic) the local sequencer takes the buffer itself (`hand_over`).
        self._handed_until = -float("inf")

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

    def waiting(self) -> bool:
        """Whether any receipt waits (buffered, or left over from a transaction that failed)."""
        return bool(self._buffer or self._flushing)

    def hand_over(self, until: float) -> None:
        """The local sequencer holds the lease and takes the buffer itself until ``until``
        (`time.monotonic`); this module's thread leaves the buffer alone till then."""
        self._handed_until = until

    @contextmanager
    def draining(self, limit: int) -> Iterator[Drain]:
        """Hand at most ``limit`` receipts (and those a failed transaction left) to the sequencer.

        The sequencer integrates ``drain.entries`` in its transaction and sets ``drain.committed``
        right after it commits; receipts of a transaction that did not commit stay here, for the
        next batch or `flush`. Holds the buffer's lock throughout, so no receipt is appended twice.
        """
        with self._flush_lock:
            if not self._flushing:
                self._flushing = _take(self._buffer, limit)
            drain = Drain(len(self._flushing))
            drain.entries, drain.tallies = self._records()
            try:
                yield drain
            finally:
                if drain.committed:
                    self._flushing = []

    def flush(self) -> int:
        """Append every buffered receipt's entries in one transaction; return how many receipts.

        On a database failure the receipts stay buffered for the next try.
        """
        with self._flush_lock:
            if not self._flushing:
                self._flushing = _take(self._buffer, len(self._buffer))
            if not self._flushing:
                return 0
            entries, tallies = self._records()
            with self._db.uow(write=True) as uow:
                uow.log.add_pending(entries)
                uow.decisions.add(tallies)
                uow.commit()
            count = len(self._flushing)
            self._flushing = []
            return count

    def _records(self) -> tuple[list[PendingEntry], list[DecisionTally]]:
        """The log entries and the decisions per hour of the receipts being flushed (under the lock)."""
        entries: list[PendingEntry] = []
        tallies: list[DecisionTally] = []
        for payload, actor in self._flushing:
            receipt = _RECEIPT(payload)  # parsed once for both
            entries += decision_entries(payload, actor, self._salts, receipt)
            tallies += decision_tallies(receipt)
        return entries, tallies

    def prune(self) -> int:
        """Delete the decisions per hour older than `DECISION_RETENTION`; how many rows."""
        with self._db.uow(write=True) as uow:
            removed = uow.decisions.prune(hour_of(self._clock.now() - DECISION_RETENTION))
            uow.commit()
        return removed

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

    def _run(self) -> None:
        next_prune = time.monotonic()
        while not self._stop.wait(self._interval):
            try:
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + _PRUNE_SECONDS
                    self.prune()
                if time.monotonic() < self._handed_until:
                    continue  # the local sequencer takes them
                self.flush()
            except Exception:
                log.exception("transparency_log.receipts_not_appended", receipts=len(self._buffer))


def _take(buffer: deque[tuple[bytes, str]], limit: int) -> list[tuple[bytes, str]]:
    taken = []
    for _ in range(min(limit, len(buffer))):
        taken.append(buffer.popleft())
    return taken
