"""Appending log entries in the transaction of the change they record.

An entry is a ``charter.v1.LogEntry`` serialized here, once; the bytes are stored as they are and
never made again from a parsed message. The entry carries 16 random bytes of salt (leaf hashes
are public and entries short enough to guess) and the id of the API key that made the change.
Entries wait in ``log_pending`` until the sequencer integrates them; because they are written in
the same transaction as the change, a change that commits is logged and one that rolls back is not.
"""

from __future__ import annotations

import os
from datetime import datetime

from charter.transparency import leaf_hash
from charter.v1 import signing_key_pb2
from charter.v1 import transparency_pb2 as tp
from google.protobuf.message import Message

from charter_server.domain.clock import Clock
from charter_server.domain.context import acting_key_id
from charter_server.domain.models import SigningKeyPurpose, SigningKeyRecord, UsageEntry
from charter_server.domain.transparency import PendingEntry
from charter_server.storage.uow import UnitOfWork

_KEY_ACTIONS = {
    "activated": tp.SigningKeyLogged.ACTION_ACTIVATED,
    "retired": tp.SigningKeyLogged.ACTION_RETIRED,
    "revoked": tp.SigningKeyLogged.ACTION_REVOKED,
}
_KEY_PURPOSES = {
    SigningKeyPurpose.GRANTS: signing_key_pb2.SigningKey.PURPOSE_GRANTS,
    SigningKeyPurpose.TRANSPARENCY_LOG: signing_key_pb2.SigningKey.PURPOSE_TRANSPARENCY_LOG,
}
_CHANGES = frozenset(f.name for f in tp.LogEntry.DESCRIPTOR.oneofs_by_name["change"].fields)


def build_entry(change: str, message: Message, *, when: datetime, actor_key_id: str = "") -> bytes:
    """Serialize a ``LogEntry`` recording one change (``change`` names the oneof field)."""
    if change not in _CHANGES:
        raise ValueError(f"a LogEntry records no change called {change!r}")
    entry = tp.LogEntry(salt=os.urandom(16), actor_key_id=actor_key_id)
    entry.event_time.FromDatetime(when)
    getattr(entry, change).CopyFrom(message)
    return entry.SerializeToString()


def pending(
    entry: bytes, *, rights_holder_id: str = "", licensee_id: str = "", receipt_digest: bytes | None = None
) -> PendingEntry:
    """A serialized entry with its leaf hash and the tenants that may read it."""
    return PendingEntry(entry, leaf_hash(entry), rights_holder_id, licensee_id, receipt_digest)


class LogAppender:
    """Appends entries to the log in the caller's unit of work."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def append(
        self,
        uow: UnitOfWork,
        change: str,
        message: Message,
        *,
        actor_key_id: str | None = None,
        rights_holder_id: str = "",
        licensee_id: str = "",
        receipt_digest: bytes | None = None,
    ) -> PendingEntry:
        """Append one entry; it commits or rolls back with the change.

        Args:
            uow: The unit of work of the change.
            change: The ``LogEntry.change`` field set, for example ``"grant"``.
            message: Its value (a ``GrantLogged`` for ``"grant"``).
            actor_key_id: The API key whose call made the change ('' for the server itself); by
                default the current call's caller (`domain.context.acting_key_id`).
            rights_holder_id: The rights holder that may read the entry ('' for none).
            licensee_id: The licensee whose generator keys may read the entry ('' for none).
            receipt_digest: For decisions and usage records, the receipt digest the entry is found by.

        Returns:
            The pending entry (its bytes and leaf hash).
        """
        entry = pending(
            build_entry(
                change,
                message,
                when=self._clock.now(),
                actor_key_id=acting_key_id() if actor_key_id is None else actor_key_id,
            ),
            rights_holder_id=rights_holder_id,
            licensee_id=licensee_id,
            receipt_digest=receipt_digest,
        )
        uow.log.add_pending([entry])
        return entry

    def signing_key(
        self, uow: UnitOfWork, key: SigningKeyRecord, action: str, *, actor_key_id: str = "", reason: str = ""
    ) -> PendingEntry:
        """Append a signing key's activation, retirement or revocation (``action``)."""
        message = tp.SigningKeyLogged(
            action=_KEY_ACTIONS[action],
            key_id=key.key_id,
            purpose=_KEY_PURPOSES[key.purpose],
            public_key=key.public_key,
            reason=reason,
        )
        return self.append(uow, "signing_key", message, actor_key_id=actor_key_id)

    def usage(self, uow: UnitOfWork, entry: UsageEntry, receipt_digest: bytes) -> PendingEntry:
        """Append an accepted usage record (the ids, the receipt's digest, what it counts)."""
        message = tp.UsageLogged(
            usage_id=entry.id,
            idempotency_key=entry.idempotency_key,
            licensee_id=entry.licensee_id,
            character_id=entry.character_id,
            rights_holder_id=entry.rights_holder_id,
            receipt_digest=receipt_digest,
            statement_period=entry.statement_period,
            uses=entry.uses,
            duration_milliseconds=entry.duration_ms,
        )
        if entry.revenue_minor and entry.currency:
            message.attributed_revenue.currency_code = entry.currency
            message.attributed_revenue.minor_units = entry.revenue_minor
        message.happen_time.FromDatetime(entry.happen_time)
        return self.append(
            uow,
            "usage",
            message,
            rights_holder_id=entry.rights_holder_id,
            licensee_id=entry.licensee_id,
            # Not found by the receipt's digest: that proves the decision's entries, one per character.
        )
