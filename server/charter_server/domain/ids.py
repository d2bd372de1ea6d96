"""Resource identifiers: a type prefix, an underscore and 32 lowercase hex digits."""

from __future__ import annotations

import re
import uuid

PREFIXES = {
    "rights_holder": "rh",
    "licensee": "lic",
    "api_key": "key",
    "character": "chr",
    "grant": "grt",
    "receipt": "rcp",
    "usage": "use",
    "licensee_key": "lk",
    "quota_lease": "ql",
    "decision_record": "dr",
}
_ID_RE = {kind: re.compile(rf"^{prefix}_[0-9a-f]{{32}}$") for kind, prefix in PREFIXES.items()}


def new_id(kind: str) -> str:
    """Return a fresh random id of ``kind`` (a key of ``PREFIXES``)."""
    return f"{PREFIXES[kind]}_{uuid.uuid4().hex}"


def is_valid(kind: str, value: str) -> bool:
    """Whether ``value`` is a well-formed id of ``kind``."""
    return bool(_ID_RE[kind].fullmatch(value))
