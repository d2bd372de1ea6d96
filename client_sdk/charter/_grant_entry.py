"""What a `charter.grants.GrantVerifier` remembers about an envelope whose signature verified.

Kept apart from `charter.grants` for the module's size; private to it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

from charter.keyring import UsableKey
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
        "payload_type",
        "public_key",
        "valid",
    )

    # The verifier's answer when every check passes, shared; set by the verifier, which builds
    # the entry (`charter.grants.Verification` is defined there).
    valid: Verification

    def __init__(self, payload: bytes, usable: UsableKey, payload_type: str, skew_us: int) -> None:
        """Parse verified payload bytes; raises (anything) when they are not usable claims."""
        claims = GrantClaims.FromString(payload)
        grant_id = claims.grant_id  # (each read of a string field makes a new str)
        if not (
            grant_id
            and claims.HasField("issue_time")
            and claims.HasField("not_before")
            and claims.HasField("expire_time")
        ):
            raise ValueError("claims without a grant id or a time")
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
            raise ValueError("a time outside the range of google.protobuf.Timestamp")
        key_id = usable.key.key_id
        self.claims = claims
        self.key_id = key_id
        self.public_key = usable.raw
        self.payload_type = payload_type
        self.grant_id = grant_id
        self.licensee_id = claims.licensee_id
        self.character_id = claims.character_id
        self.issue_ns = issue_s * _NANOS_PER_SECOND + issue_n
        # The window's limits, skew included, as datetimes so that checking `now` is two
        # comparisons; rounded to whole microseconds so that the window never grows.
        try:
            self.not_before_limit = _EPOCH + timedelta(0, nb_s, -(-nb_n // 1000) - skew_us)
        except OverflowError:
            self.not_before_limit = _MAX_TIME if nb_s > 0 else _MIN_TIME
        try:
            self.expire_limit = _EPOCH + timedelta(0, ex_s, ex_n // 1000 + skew_us)
        except OverflowError:
            self.expire_limit = _MAX_TIME if ex_s > 0 else _MIN_TIME
        # The usable key the issue time was last found valid for; rechecked when the ring changes.
        self.checked_key: UsableKey | None = None


class Slot:
    __slots__ = ("entry", "used")

    def __init__(self, entry: Entry) -> None:
        self.entry = entry
        self.used = False
