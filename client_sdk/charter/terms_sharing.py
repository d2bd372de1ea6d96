"""Compiled terms shared between grants whose terms say the same thing.

Charter signs a grant's terms in their stored form, without the terms' ``version`` and
``character_id`` (``canonical`` on the server clears them), so the grants a licensee holds under one
rights holder's standard terms carry byte-identical terms: compiling them once per grant repeats
the same work. `compiled` keys the compiled form by the terms' content, ``version`` and
``character_id`` left out (the compiled terms carry those two as labels and nothing else depends on
them), and relabels what it finds when those two differ.

The key is the serialization of the parsed message, so equal keys mean equal fields (unknown ones
included): sharing never changes an answer. The table is bounded: cleared when full.
"""

from __future__ import annotations

from typing import Final

from charter.terms import CompiledTerms
from charter.v1.terms_pb2 import Terms

__all__ = ["compiled"]

# Content (the serialized terms without a leading version and character id) -> (those leading
# bytes, the compiled terms).
_SHARED: dict[bytes, tuple[bytes, CompiledTerms]] = {}
_SHARED_LIMIT: Final = 1024
_VERSION_TAG: Final = 0x08  # field 1, varint
_CHARACTER_TAG: Final = 0x12  # field 2, length-delimited


def compiled(terms: Terms) -> CompiledTerms:
    """``CompiledTerms.from_terms(terms)``, shared with earlier terms of the same content.

    Args:
        terms: The terms, as carried in grant claims.

    Returns:
        Compiled terms that evaluate every use as ``CompiledTerms.from_terms(terms)`` would, with
        its ``version`` and ``character_id``; treat them as read-only (as all compiled terms).
    """
    data = terms.SerializeToString()
    end = _labels_end(data)
    key = data[end:] if end else data
    found = _SHARED.get(key)
    if found is None:
        result = CompiledTerms(terms)
        if len(_SHARED) >= _SHARED_LIMIT:
            _SHARED.clear()
        _SHARED[key] = (data[:end], result)
        return result
    labels, shared = found
    if labels == data[:end]:
        return shared
    return shared.relabelled(terms.version, terms.character_id)


def _labels_end(data: bytes) -> int:
    """Where a leading ``version`` (field 1) and ``character_id`` (field 2) end in serialized terms
    (0 when neither leads). Fields serialize in field-number order; anything else stays in the key."""
    at = 0
    if data and data[0] == _VERSION_TAG:
        at = 1
        while data[at] & 0x80:
            at += 1
        at += 1
    if at < len(data) and data[at] == _CHARACTER_TAG:
        at += 1
        length = shift = 0
        while True:
            byte = data[at]
            at += 1
            length |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        at += length
    return at
