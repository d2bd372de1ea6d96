"""Reference implementations written from the specifications, apart from the production code.

Nothing here imports `charter.transparency`: the Merkle functions are the recursive
definitions of RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1 transcribed literally, and the note
verifier follows the text of c2sp.org/signed-note, with the `cryptography` package's Ed25519
instead of PyNaCl. They are slow on purpose (no stored hashes, no shortcuts), so tests that
compare with them stay on small trees.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

# -- RFC 9162 §2.1.1 ----------------------------------------------------------------------------


def mth(entries: list[bytes]) -> bytes:
    """MTH(D[n]): the Merkle Tree Hash of a list of entries."""
    n = len(entries)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + entries[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2  # the largest power of two smaller than n
    return hashlib.sha256(b"\x01" + mth(entries[:k]) + mth(entries[k:])).digest()


def path(m: int, entries: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of §2.1.3.1: the inclusion proof of entry m."""
    n = len(entries)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*path(m, entries[:k]), mth(entries[k:])]
    return [*path(m - k, entries[k:]), mth(entries[:k])]


def proof(m: int, entries: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of §2.1.4.1: the consistency proof from the tree of the first m entries."""
    return subproof(m, entries, True)


def subproof(m: int, entries: list[bytes], b: bool) -> list[bytes]:
    n = len(entries)
    if m == n:
        return [] if b else [mth(entries)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*subproof(m, entries[:k], b), mth(entries[k:])]
    return [*subproof(m - k, entries[k:], False), mth(entries[:k])]


# -- c2sp.org/signed-note -----------------------------------------------------------------------


@dataclass(frozen=True)
class SpecKey:
    """A verifier key as the specification describes it."""

    name: str
    key_id: bytes
    public_key: bytes


def parse_vkey(vkey: str) -> SpecKey:
    """`<key name>+hex(32-bit key ID)+base64(signature type || public key)`, Ed25519 only."""
    name, key_id_hex, key_b64 = vkey.split("+", 2)  # base64 may hold '+' too
    material = base64.b64decode(key_b64, validate=True)
    assert material[0] == 0x01 and len(material) == 33, "Ed25519 keys only"
    key_id = bytes.fromhex(key_id_hex)
    expected = hashlib.sha256(name.encode() + b"\n" + material).digest()[:4]
    assert key_id == expected, "the key ID is SHA-256(name || 0x0A || 0x01 || key)[:4]"
    return SpecKey(name, key_id, material[1:])


def verify_note(note: bytes, key: SpecKey) -> str:
    """Return the note text when `key` signed it; raise AssertionError otherwise.

    "A signed note consists of a text ending in newline, followed by a blank line, followed
    by one or more signature lines [...] em dash, space, key name, space, base64-encoded
    signature, newline." The text ends at the last empty line.
    """
    decoded = note.decode("utf-8")
    assert all(c == "\n" or ord(c) >= 0x20 for c in decoded), "no control characters but newline"
    cut = note.rindex(b"\n\n")
    text, signature_block = note[: cut + 1], note[cut + 2 :]
    assert signature_block.endswith(b"\n")
    verified = False
    for line in signature_block.decode("utf-8").split("\n")[:-1]:
        assert line.startswith("\u2014 "), "a signature line starts with an em dash and a space"
        name, encoded = line[2:].split(" ")
        raw = base64.b64decode(encoded, validate=True)
        if name != key.name or raw[:4] != key.key_id:
            continue  # unknown keys are ignored
        try:
            Ed25519PublicKey.from_public_bytes(key.public_key).verify(raw[4:], text)
        except InvalidSignature:
            raise AssertionError("a signature by the known key does not verify") from None
        verified = True
    assert verified, "no signature by the known key"
    return text.decode("utf-8")


def parse_checkpoint(text: str) -> tuple[str, int, bytes]:
    """c2sp.org/tlog-checkpoint: origin, decimal size, base64 root hash, then extension lines."""
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) >= 4
    origin, size, root = lines[0], lines[1], lines[2]
    assert origin and size == str(int(size))
    root_hash = base64.b64decode(root, validate=True)
    assert len(root_hash) == 32
    return origin, int(size), root_hash
