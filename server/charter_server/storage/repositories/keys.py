"""Signing keys (the private half stored only encrypted)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    bindparam,
    select,
)
from sqlalchemy.orm import Session

from charter_server.domain import events as ev
from charter_server.domain.events import EventSink
from charter_server.domain.models import (
    SigningKeyPurpose,
    SigningKeyRecord,
    SigningKeyState,
)
from charter_server.storage.dialect import Dialect
from charter_server.storage.tables import (
    SigningKeyRow,
)

# Shared names: (normalised name, character ids, rights holder ids), and the name to continue after.


def _signing_key(row: SigningKeyRow) -> SigningKeyRecord:
    return SigningKeyRecord(
        key_id=row.key_id,
        public_key=bytes(row.public_key),
        state=SigningKeyState(row.state),
        activate_time=row.activate_time,
        retire_time=row.retire_time,
        revoke_time=row.revoke_time,
        purpose=SigningKeyPurpose(row.purpose),
    )


# Built once: building a statement costs more than running it.
_ACTIVE_KEY_ID = (
    select(SigningKeyRow.key_id)
    .where(SigningKeyRow.state == SigningKeyState.ACTIVE.value, SigningKeyRow.purpose == bindparam("purpose"))
    .limit(1)
)


class SigningKeyRepository:
    """Signing keys; the private half is stored only encrypted."""

    # Any fixed 64-bit number; it names the advisory lock that serializes changes to the key set.
    _LOCK = 0x636861727465726B

    def __init__(self, session: Session, dialect: Dialect, events: EventSink) -> None:
        self._session = session
        self._dialect = dialect
        self._events = events

    def lock(self, *, shared: bool = False) -> None:
        """Serialize key changes (first key, rotation, revocation) across replicas until commit;
        ``shared`` is for signing, which only needs the active key to stay active until commit.

        SQLite write transactions are serialized already (BEGIN IMMEDIATE). PostgreSQL runs at
        READ COMMITTED, where two rotations would each retire the old key and both insert an
        active one; a transaction-scoped advisory lock makes the second wait and see the first.
        """
        self._dialect.lock_key(self._session, self._LOCK, shared=shared)

    def add(self, key: SigningKeyRecord, encrypted_private_key: bytes) -> None:
        """Insert a new key."""
        self._session.add(
            SigningKeyRow(
                key_id=key.key_id,
                public_key=key.public_key,
                encrypted_private_key=encrypted_private_key,
                state=key.state.value,
                activate_time=key.activate_time,
                retire_time=key.retire_time,
                revoke_time=key.revoke_time,
                revoke_reason="",
                purpose=key.purpose.value,
            )
        )
        self._session.flush()
        self._events.raise_event(ev.SigningKeyAdded(key.key_id))

    def all(self, *, for_update: bool = False) -> list[SigningKeyRecord]:
        """Every key, newest first."""
        stmt = select(SigningKeyRow).order_by(SigningKeyRow.seq.desc())
        if for_update:
            stmt = self._dialect.for_update(stmt)
        return [_signing_key(row) for row in self._session.scalars(stmt)]

    def states(self) -> list[tuple[str, SigningKeyState]]:
        """Every key's id and state (what the key set's version is made of), without the secrets."""
        rows = self._session.execute(select(SigningKeyRow.key_id, SigningKeyRow.state))
        return [(key_id, SigningKeyState(state)) for key_id, state in rows]

    def active_key_id(self, purpose: SigningKeyPurpose = SigningKeyPurpose.GRANTS) -> str | None:
        """The id of the active key of a purpose, or None (one column: what a signer already
        holding that key needs to know, batch after batch)."""
        return self._session.scalar(_ACTIVE_KEY_ID, {"purpose": purpose.value})

    def active_with_secret(
        self, purpose: SigningKeyPurpose = SigningKeyPurpose.GRANTS
    ) -> tuple[SigningKeyRecord, bytes] | None:
        """The active key of a purpose and its encrypted private key, or None."""
        row = self._session.scalars(
            select(SigningKeyRow).where(
                SigningKeyRow.state == SigningKeyState.ACTIVE.value, SigningKeyRow.purpose == purpose.value
            )
        ).first()
        return None if row is None else (_signing_key(row), bytes(row.encrypted_private_key))

    def set_state(self, key_id: str, state: SigningKeyState, when: datetime, reason: str = "") -> None:
        """Retire or revoke a key."""
        row = self._session.scalars(select(SigningKeyRow).where(SigningKeyRow.key_id == key_id)).one()
        before = SigningKeyState(row.state)
        row.state = state.value
        if state is SigningKeyState.RETIRED:
            row.retire_time = when
        elif state is SigningKeyState.REVOKED:
            row.revoke_time = when
            row.revoke_reason = reason
            if row.retire_time is None:
                row.retire_time = when
        self._session.flush()
        self._events.raise_event(ev.SigningKeyStateChanged(key_id, before, state))
