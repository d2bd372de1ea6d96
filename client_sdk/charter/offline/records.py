"""Decision records of offline decisions: what `OfflineAuthorizer` signs with the licensee's key
so that a `license` block can report the use (see `charter.decision_records`)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from charter.decision_records import DecisionRecordSigner, use_context_digest
from charter.decisions import CharacterDecision
from charter.v1 import decision_pb2
from charter.v1.envelope_pb2 import Envelope

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND: Final = timedelta(microseconds=1)


@functools.lru_cache(maxsize=1024)
def offline_context_digest(
    use_type: int,
    content_rating: int,
    categories: tuple[int, ...],
    territory: str,
    commercial: bool,
    duration: timedelta | None,
) -> bytes:
    """`use_context_digest` of `offline_context`, remembered: a backend decides the same few
    contexts over and over, and each decision's records sign the digest."""
    return use_context_digest(offline_context(use_type, content_rating, categories, territory, commercial, duration))


def offline_context(
    use_type: int,
    content_rating: int,
    categories: Sequence[int],
    territory: str,
    commercial: bool,
    duration: timedelta | None,
) -> decision_pb2.UseContext:
    """The use context a record's digest covers, as ``Authorize`` would have received it."""
    context = decision_pb2.UseContext(
        use_type=use_type,  # type: ignore[arg-type]
        content_rating=content_rating,  # type: ignore[arg-type]
        categories=categories,  # type: ignore[arg-type]
        territory=territory,
        commercial=commercial,
    )
    if duration is not None:
        context.duration.FromTimedelta(duration)
    return context


def sign_records(
    signer: DecisionRecordSigner,
    characters: Sequence[CharacterDecision],
    digest: bytes,
    now: datetime,
    sequence: int,
    leases: Mapping[str, str],
    snapshot_version: str = "",
) -> tuple[Envelope, ...]:
    """The signed decision record of each character decided offline, in order (``digest``: the
    use context's, `offline_context_digest`; ``leases``: the quota lease each character's use was
    spent from, by character; ``snapshot_version``: the registry snapshot the prompt was screened
    with, recorded for the characters not declared)."""
    when = (now - _EPOCH) // _ONE_MICROSECOND * 1000
    return tuple(
        signer.sign(
            character_id=c.character_id,
            grant_id=c.grant_id,
            terms_version=c.terms_version,
            allowed=c.allowed,
            reasons=[decision_pb2.DenyReason.Value(f"DENY_REASON_{r.value}") for r in c.reasons] if c.reasons else (),
            context_digest=digest,
            revocation_sequence=sequence,
            lease_id=leases.get(c.character_id, ""),
            snapshot_version="" if c.declared else snapshot_version,
            decide_time_ns=when,
        )
        for c in characters
    )
