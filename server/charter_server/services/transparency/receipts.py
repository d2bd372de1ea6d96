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

``charter-server serve`` runs all of this in the log's own process (`charter_server.log_process`),
which the server hands its receipts to in batches.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

import structlog
from charter.v1 import decision_pb2

from charter_server.domain.clock import Clock
from charter_server.domain.decision_history import DecidedUse, DecisionTally, hour_of
from charter_server.domain.errors import StorageBusy, StorageUnavailable
from charter_server.domain.transparency import PendingEntry
from charter_server.services.wire import varint as _varint
from charter_server.storage.database import Database

log = structlog.get_logger(__name__)

_RECEIPT = decision_pb2.DecisionReceipt.FromString
_NO_CHARACTER = (decision_pb2.CharacterDecision(),)
_SALT_SIZE = 16  # as `appender.build_entry` draws
_sha256 = hashlib.sha256
_LEAF_PREFIX = b"\x00"  # RFC 9162: a leaf hash is SHA-256(0x00 || entry), as `charter.transparency.leaf_hash`

MAX_PENDING = 200_000
"""The most receipts the buffer holds before ``Authorize`` fails closed."""
DECISION_RETENTION = timedelta(days=90)
"""How long decisions per hour are kept (the longest ``PreviewTerms`` window)."""
_PRUNE_SECONDS = 3600.0
_PRUNE_RETRY_SECONDS = 60.0
_REASON_NAMES: dict[int, str] = {
    value: name.removeprefix("DENY_REASON_") for name, value in decision_pb2.DenyReason.items()
}


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


def _text(tag: bytes, value: str) -> bytes:
    """A proto3 ``string`` field (``tag`` its key byte): nothing when empty, as the generated code."""
    if not value:
        return b""
    data = value.encode()
    return tag + _varint(len(data)) + data


def _decided(character_id: str, rights_holder_id: str, allowed: bool, grant_id: str, terms_version: int) -> bytes:
    """The fields of one character's decision in a ``DecisionLogged``: character_id (4),
    rights_holder_id (5), allowed (6), grant_id (7), terms_version (8)."""
    return (
        _text(b"\x22", character_id)
        + _text(b"\x2a", rights_holder_id)
        + (b"\x30\x01" if allowed else b"")
        + _text(b"\x3a", grant_id)
        + (b"\x40" + _varint(terms_version) if terms_version else b"")
    )


# A decision's tally key: character, hour, licensee, the use context's fields, the ids of every
# character of the receipt (empty for a receipt of one) and the deny reasons' values.
_UseKey = tuple[int, int, tuple[int, ...], str, bool]
_TallyKey = tuple[str, int, str, _UseKey, tuple[str, ...], tuple[int, ...]]


class DecisionRecords:
    """The log entries and the decisions per hour of a batch of receipts.

    `add` runs once per receipt signed, so it does the least per decision: each entry is the
    ``LogEntry`` that `appender.build_entry` would make (a ``DecisionLogged`` change, ``event_time``
    the receipt's ``decide_time``, a salt of 16 bytes), written straight in the protobuf wire
    format in field order with proto3's defaults left out, byte for byte what the generated code
    serializes (tests/server/test_receipt_log_entries.py checks it against the generated code for
    any receipt). The encoded fields that repeat from receipt to receipt (the actor's key, the
    licensee, each character's decision) are encoded once per batch and looked up after that; and
    the decisions are only counted by their raw fields, the `DecisionTally` of each distinct key
    being made once per batch (`tallies`).
    """

    __slots__ = ("_counts", "_encoded", "entries")

    def __init__(self) -> None:
        self.entries: list[PendingEntry] = []
        self._counts: dict[_TallyKey, int] = {}
        # Encoded fields by what they encode: a batch's few licensees, keys and decided characters.
        self._encoded: dict[tuple[object, ...], bytes] = {}

    def add(
        self,
        payload: bytes,
        actor_key_id: str,
        random_bytes: Callable[[int], bytes] = os.urandom,
        receipt: decision_pb2.DecisionReceipt | None = None,
    ) -> None:
        """Add a signed receipt's entries (one per character decided, or one without a character)
        and count its decisions (one per character with a rights holder: a character the server
        did not know has none, and no terms decided it)."""
        if receipt is None:
            receipt = _RECEIPT(payload)
        digest = _sha256(payload).digest()
        characters = receipt.characters
        count = len(characters)
        salt = random_bytes(_SALT_SIZE * (count or 1))
        when = receipt.decide_time
        seconds, nanos = when.seconds, when.nanos
        moment = (b"\x08" + _varint(seconds) if seconds else b"") + (b"\x10" + _varint(nanos) if nanos else b"")
        # LogEntry: event_time (1, always set), salt (2), actor_key_id (3), decision (17, always set).
        head = b"\x0a" + _varint(len(moment)) + moment + b"\x12\x10"
        encoded = self._encoded
        licensee_id = receipt.licensee_id
        key_and_licensee = (actor_key_id, licensee_id)
        found = encoded.get(key_and_licensee)
        if found is None:
            found = encoded[key_and_licensee] = _text(b"\x1a", actor_key_id) + b"\x8a\x01"
        middle = found
        found = encoded.get((licensee_id,))
        if found is None:
            found = encoded[(licensee_id,)] = _text(b"\x1a", licensee_id)
        # DecisionLogged: receipt_id (1), receipt_digest (2), licensee_id (3), then per character
        # character_id (4), rights_holder_id (5), allowed (6), grant_id (7), terms_version (8).
        prefix = _text(b"\x0a", receipt.receipt_id) + b"\x12\x20" + digest + found
        hour = seconds // 3600  # `decision_history.hour_of` the decide time, without a datetime
        use: _UseKey | None = None
        everyone: tuple[str, ...] = tuple(c.character_id for c in characters) if count > 1 else ()
        entries, counts = self.entries, self._counts
        for number, character in enumerate(characters or _NO_CHARACTER):
            character_id = character.character_id
            holder = character.rights_holder_id
            # A receipt that named no character: whether the request as a whole was allowed.
            decided = (
                character_id,
                holder,
                character.allowed if count else receipt.allowed,
                character.grant_id,
                character.terms_version,
            )
            found = encoded.get(decided)
            if found is None:
                found = encoded[decided] = _decided(*decided)
            body = prefix + found
            offset = number * _SALT_SIZE
            entry = head + salt[offset : offset + _SALT_SIZE] + middle + _varint(len(body)) + body
            entries.append(PendingEntry(entry, _sha256(_LEAF_PREFIX + entry).digest(), holder, licensee_id, digest))
            if holder:
                if use is None:
                    context = receipt.context
                    use = (
                        context.use_type,
                        context.content_rating,
                        tuple(context.categories),
                        context.territory,
                        context.commercial,
                    )
                reasons = character.reasons
                key = (character_id, hour, licensee_id, use, everyone, tuple(reasons) if reasons else ())
                counts[key] = counts.get(key, 0) + 1

    def tallies(self) -> list[DecisionTally]:
        """The decisions counted, one `DecisionTally` per distinct character, hour, licensee, use
        and outcome."""
        tallies = []
        for (character_id, hour, licensee_id, use, everyone, reasons), decisions in self._counts.items():
            use_type, content_rating, categories, territory, commercial = use
            others = tuple(sorted({c for c in everyone if c} - {character_id}))
            kinds = tuple(sorted(set(categories)))
            decided = DecidedUse(use_type, content_rating, kinds, territory, commercial, others)
            outcome = tuple(_REASON_NAMES[reason] for reason in reasons)
            tallies.append(DecisionTally(character_id, hour, licensee_id, decided, outcome, decisions))
        return tallies


def decision_entries(
    payload: bytes,
    actor_key_id: str,
    random_bytes: Callable[[int], bytes] = os.urandom,
    receipt: decision_pb2.DecisionReceipt | None = None,
) -> list[PendingEntry]:
    """The entries of one receipt: one per character decided, or one without a character
    (`DecisionRecords.add`), with a salt of 16 bytes of ``random_bytes`` each, drawn at once."""
    records = DecisionRecords()
    records.add(payload, actor_key_id, random_bytes, receipt)
    return records.entries


@dataclass(slots=True)
class Drain:
    """Receipts handed to the sequencer (`ReceiptLog.draining`): their entries and their decisions
    per hour (the sequencer adds both in its transaction), and whether that transaction committed
    (it sets ``committed``)."""

    receipts: int
    entries: list[PendingEntry] = field(default_factory=list)
    tallies: list[DecisionTally] = field(default_factory=list)
    committed: bool = False


class ReceiptSink(Protocol):
    """Where ``Authorize`` puts each receipt it signs: a `ReceiptLog`, or a server's
    `charter_server.log_process.LogProcess`."""

    def add(self, payload: bytes, actor_key_id: str) -> None:
        """Log a signed receipt (its payload exactly as signed) soon; `StorageBusy` when behind."""


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
        self.committed = 0
        """How many receipts this buffer's transactions have committed (appended or integrated)."""

    def add(self, payload: bytes, actor_key_id: str) -> None:
        """Log a signed receipt (its payload exactly as signed) soon.

        Raises:
            StorageBusy: The buffer is full because the database has not taken receipts for a while.
        """
        if len(self._buffer) >= self._max:
            raise StorageBusy("the transparency log is behind; retry")
        self._buffer.append((payload, actor_key_id))

    def accept(self, receipts: Sequence[tuple[bytes, str]], *, resent: bool = False) -> int:
        """Buffer receipts (payload, actor key id) signed in another process; return how many.

        ``resent`` receipts were handed over before to a process that stopped without saying
        whether it logged them, or to this one by a server that lost its connection to it: those
        already in the log (pending or integrated) or still waiting here are left out, so none is
        logged, nor its decision counted, twice.
        """
        if not resent:
            self._buffer.extend(receipts)
            return len(receipts)
        with self._flush_lock:  # nothing moves from the buffer to the log meanwhile
            waiting = {_sha256(payload).digest() for payload, _ in (*self._flushing, *self._buffer)}
            taken = self.unlogged([r for r in receipts if _sha256(r[0]).digest() not in waiting])
            self._buffer.extend(taken)
        return len(taken)

    def unlogged(self, receipts: Sequence[tuple[bytes, str]]) -> list[tuple[bytes, str]]:
        """The receipts none of whose entries is in the log yet, pending or integrated."""
        with self._db.uow() as uow:
            # Pending first: an entry integrated between the two reads is then found the second time.
            return [
                (payload, actor)
                for payload, actor in receipts
                if not uow.log.is_pending(receipt_digest=(digest := hashlib.sha256(payload).digest()))
                and not uow.log.entries_by_receipt(digest, 1)
            ]

    def is_buffered(self, receipt_digest: bytes) -> bool:
        """Whether a receipt with this digest waits in the buffer (signed, not yet appended)."""
        return holds([*self._flushing, *list(self._buffer)], receipt_digest)

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
                self._flushing = take(self._buffer, limit)
            drain = Drain(len(self._flushing))
            drain.entries, drain.tallies = self._records()
            try:
                yield drain
            finally:
                if drain.committed:
                    self.committed += len(self._flushing)
                    self._flushing = []

    def flush(self) -> int:
        """Append every buffered receipt's entries in one transaction; return how many receipts.

        On a database failure the receipts stay buffered for the next try.
        """
        with self._flush_lock:
            if not self._flushing:
                self._flushing = take(self._buffer, len(self._buffer))
            if not self._flushing:
                return 0
            entries, tallies = self._records()
            with self._db.uow(write=True) as uow:
                uow.log.add_pending(entries)
                uow.decisions.add(tallies)
                uow.commit()
            count = len(self._flushing)
            self.committed += count
            self._flushing = []
            return count

    def _records(self) -> tuple[list[PendingEntry], list[DecisionTally]]:
        """The log entries and the decisions per hour of the receipts being flushed (under the lock)."""
        records = DecisionRecords()
        for payload, actor in self._flushing:
            records.add(payload, actor, self._salts)
        return records.entries, records.tallies()

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
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + (_PRUNE_SECONDS if self._try_prune() else _PRUNE_RETRY_SECONDS)
            if time.monotonic() < self._handed_until:
                continue  # the local sequencer takes them
            try:
                self.flush()
            except Exception:
                log.exception("transparency_log.receipts_not_appended", receipts=len(self._buffer))

    def _try_prune(self) -> bool:
        """Prune; on failure say so (the receipts are not concerned) and return False, so that the
        prune is tried again in a minute rather than an hour, and the receipts are appended anyway."""
        try:
            self.prune()
        except (StorageBusy, StorageUnavailable) as error:  # another writer, or an outage: transient
            log.warning("transparency_log.prune_failed", error_type=type(error).__name__, error=str(error))
            return False
        except Exception:
            log.exception("transparency_log.prune_failed")
            return False
        return True


def take(buffer: deque[tuple[bytes, str]], limit: int) -> list[tuple[bytes, str]]:
    """The first ``limit`` receipts of ``buffer``, taken out of it (appends on other threads go on)."""
    taken = []
    for _ in range(min(limit, len(buffer))):
        taken.append(buffer.popleft())
    return taken


def holds(receipts: Sequence[tuple[bytes, str]], receipt_digest: bytes) -> bool:
    """Whether one of ``receipts`` (payload, actor key id) has this digest."""
    return any(hashlib.sha256(payload).digest() == receipt_digest for payload, _ in receipts)
