"""What a `charter.grants.GrantVerifier` reads from grant payload bytes (`Claimed`) and remembers
about an envelope whose signature verified (`Entry`).

Kept apart from `charter.grants` for the module's size; private to it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

from charter.envelope import MAX_ENVELOPE_BYTES, MalformedEnvelope, PreparedEnvelope, _decode_json
from charter.keyring import UsableKey
from charter.v1.envelope_pb2 import Envelope
from charter.v1.grant_pb2 import GrantClaims

if TYPE_CHECKING:
    from charter.grants import Verification

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_TIME: Final = datetime.min.replace(tzinfo=UTC)
_MAX_TIME: Final = datetime.max.replace(tzinfo=UTC)
# The range of google.protobuf.Timestamp: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
_MIN_SECONDS: Final = -62_135_596_800
_MAX_SECONDS: Final = 253_402_300_799
_NANOS_PER_SECOND: Final = 1_000_000_000


class Claimed:
    """Grant payload bytes parsed once: the claims and the values a verifier judges them by.

    Built from the payload alone, before (or without) any signature check: nothing here is to be
    trusted until a signature verified over the PAE of exactly ``payload`` (`Entry` takes a
    `Claimed` only then). ``usable`` is False when the bytes are not ``GrantClaims`` with a grant
    id and its three times, each within the range of ``google.protobuf.Timestamp`` (a verifier
    reports such a payload ``MALFORMED`` once a signature over it verified).

    Attributes:
        payload: The payload bytes parsed (the very object; it is immutable).
        claims: The parsed message, or None when the bytes do not parse. Shared: read-only.
        usable: Whether the claims have everything a verifier needs.
    """

    __slots__ = (
        "_limits",
        "character_id",
        "claims",
        "expire_ns",
        "grant_id",
        "issue_ns",
        "licensee_id",
        "not_before_ns",
        "payload",
        "usable",
    )

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.usable = False
        self._limits: tuple[int, datetime, datetime] | None = None
        try:
            claims = GrantClaims.FromString(payload)
        except Exception:  # DecodeError, or anything else a hostile payload provokes
            self.claims: GrantClaims | None = None
            return
        self.claims = claims
        grant_id = claims.grant_id  # (each read of a string field makes a new str)
        if not (
            grant_id
            and claims.HasField("issue_time")
            and claims.HasField("not_before")
            and claims.HasField("expire_time")
        ):
            return
        issue, not_before, expire = claims.issue_time, claims.not_before, claims.expire_time
        issue_s, issue_n = issue.seconds, issue.nanos
        nb_s, nb_n = not_before.seconds, not_before.nanos
        ex_s, ex_n = expire.seconds, expire.nanos
        if not (
            _MIN_SECONDS <= issue_s <= _MAX_SECONDS
            and _MIN_SECONDS <= nb_s <= _MAX_SECONDS
            and _MIN_SECONDS <= ex_s <= _MAX_SECONDS
            and 0 <= issue_n < _NANOS_PER_SECOND
            and 0 <= nb_n < _NANOS_PER_SECOND
            and 0 <= ex_n < _NANOS_PER_SECOND
        ):
            return
        self.grant_id = grant_id
        self.licensee_id = claims.licensee_id
        self.character_id = claims.character_id
        self.issue_ns = issue_s * _NANOS_PER_SECOND + issue_n
        self.not_before_ns = nb_s * _NANOS_PER_SECOND + nb_n
        self.expire_ns = ex_s * _NANOS_PER_SECOND + ex_n
        self.usable = True

    def limits(self, skew_us: int) -> tuple[datetime, datetime]:
        """The validity window with ``skew_us`` applied: (the earliest time it is valid, the time
        from which it is expired), as datetimes so that checking a time is two comparisons;
        rounded to whole microseconds so that the window never grows. Kept for the last skew.
        Only for usable claims."""
        kept = self._limits
        if kept is not None and kept[0] == skew_us:
            return kept[1], kept[2]
        nb_s, nb_n = divmod(self.not_before_ns, _NANOS_PER_SECOND)
        ex_s, ex_n = divmod(self.expire_ns, _NANOS_PER_SECOND)
        try:
            not_before = _EPOCH + timedelta(0, nb_s, -(-nb_n // 1000) - skew_us)
        except OverflowError:
            not_before = _MAX_TIME if nb_s > 0 else _MIN_TIME
        try:
            expire = _EPOCH + timedelta(0, ex_s, ex_n // 1000 + skew_us)
        except OverflowError:
            expire = _MAX_TIME if ex_s > 0 else _MIN_TIME
        self._limits = (skew_us, not_before, expire)
        return not_before, expire


class PreparedGrant(PreparedEnvelope):
    """A grant envelope read once (`charter.envelope.PreparedEnvelope`) with its payload parsed once.

    For a holder of grants that parses their claims when it takes them (to index them) and
    verifies them later: `charter.grants.GrantVerifier.verify_prepared` takes the claims parsed
    here once a signature verified over the PAE of this envelope's payload, rather than parsing
    the same bytes again. That is sound because both come from one immutable object: ``message``
    is the PAE of ``payload`` and ``claimed`` was parsed from that very ``payload`` when the object
    was made, and neither can be changed or replaced since. Until a signature verified, the
    claims are unverified (a holder may read them to index the grant, never to decide).

    A verifier with a cache remembers what it found about a prepared grant on the grant itself
    (`remembered`), not under its digest: a holder's grants are checked again only when its key
    ring changes, and then without a look-up in a shared table, a lock or an eviction.

    Attributes:
        claimed: The payload parsed (`Claimed`).
        remembered: The `Entry` of the last verifier with a cache whose signature check of this
            envelope succeeded (its ``owner`` names the verifier); None before.

    Args:
        envelope: The envelope.
    """

    __slots__ = ("claimed", "remembered")

    claimed: Claimed
    remembered: Entry | None

    def __init__(self, envelope: Envelope) -> None:
        super().__init__(envelope)
        object.__setattr__(self, "claimed", Claimed(self.payload))
        object.__setattr__(self, "remembered", None)

    def remember(self, entry: Entry) -> None:
        """Keep a verifier's entry (its ``owner`` names the verifier and its cache's generation)."""
        remember_on(self, entry)


remember_on: Final[Callable[[PreparedGrant, Entry], None]] = PreparedGrant.__dict__["remembered"].__set__
"""`PreparedGrant.remember` without its call: the slot's own setter (as ``object.__setattr__``
sets it past the envelope's immutability; a grant's first verification calls it)."""


class Entry:
    """What the cache remembers about an envelope whose signature verified and claims parsed."""

    __slots__ = (
        "character_id",
        "checked_key",
        "claims",
        "expire_limit",
        "grant_id",
        "issue_ns",
        "key_id",
        "licensee_id",
        "not_before_limit",
        "owner",
        "payload_type",
        "public_key",
        "used",
        "valid",
    )

    claims: GrantClaims | None
    key_id: str
    public_key: bytes
    payload_type: str
    grant_id: str
    licensee_id: str
    character_id: str
    issue_ns: int
    not_before_limit: datetime
    expire_limit: datetime
    checked_key: UsableKey | None
    used: bool
    # The token of the verifier (and its cache's generation) that made it, for a
    # `PreparedGrant` that remembers it; set by that verifier.
    owner: object
    # The verifier's answer when every check passes, shared; set by the verifier, which builds
    # the entry (`charter.grants.Verification` is defined there).
    valid: Verification


_new: Final = object.__new__


def new_entry(claimed: Claimed, usable: UsableKey, payload_type: str, skew_us: int) -> Entry:
    """The entry of verified claims (its ``valid`` is set by the verifier); raises ValueError when
    they are not usable.

    (A function, built without ``__init__``: one is made on every cold verification; a class
    method was looked up and bound on each call.)
    """
    if not claimed.usable:
        raise ValueError("claims that do not parse, or without a grant id or a time in range")
    entry = _new(Entry)
    entry.claims = claimed.claims
    entry.key_id = usable.key.key_id
    entry.public_key = usable.raw
    entry.payload_type = payload_type
    entry.grant_id = claimed.grant_id
    entry.licensee_id = claimed.licensee_id
    entry.character_id = claimed.character_id
    entry.issue_ns = claimed.issue_ns
    kept = claimed._limits  # (`Claimed.limits`, its common case written out: kept for this skew)
    if kept is not None and kept[0] == skew_us:
        entry.not_before_limit, entry.expire_limit = kept[1], kept[2]
    else:
        entry.not_before_limit, entry.expire_limit = claimed.limits(skew_us)
    # The usable key the issue time was last found valid for; rechecked when the ring changes.
    entry.checked_key = None
    # Read since the cache last considered evicting it (second-chance eviction).
    entry.used = False
    entry.owner = None
    return entry


def evict(cache: dict[object, Entry], order: deque[object], capacity: int) -> None:
    """Evict a verifier's cache down to ``capacity`` keys, oldest first, second chance: an entry
    read (under either of its keys) since it was last considered goes round once more. The
    caller holds the cache's lock."""
    budget = 2 * len(order) + 1  # every key gets at most one second chance per round
    while len(cache) > capacity and order:
        oldest = order.popleft()
        entry = cache.get(oldest)
        if entry is None:
            continue
        if entry.used and budget > 0:
            budget -= 1
            entry.used = False
            order.append(oldest)
        else:
            del cache[oldest]


def decode_text(envelope: str | bytes | bytearray | memoryview) -> tuple[str, bytes, list[tuple[str, bytes]]] | None:
    """(payload type, payload, [(keyid, sig)]) of the JSON form; None if malformed."""
    text = bytes(envelope) if isinstance(envelope, bytearray | memoryview) else envelope
    try:
        if isinstance(text, str) and len(text.encode("utf-8")) > MAX_ENVELOPE_BYTES:
            return None
        return _decode_json(text)
    except (MalformedEnvelope, UnicodeEncodeError):
        return None
