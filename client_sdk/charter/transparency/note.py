"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys: sign, parse, verify.

A signed note is a UTF-8 text ending in a newline, a blank line, then one line per
signature::

    — <key name> base64(key id (4 bytes, big-endian) || signature)

For Ed25519 (signature type ``0x01``) the signature is over the text (final newline
included, blank line excluded) and the key id is the first four bytes of
``SHA-256(key name || 0x0A || 0x01 || public key)``. A verifier key ("vkey") is written
``<key name>+<key id, 8 lowercase hex digits>+base64(0x01 || public key)``. The format and
the verification rules are those of Go's ``golang.org/x/mod/sumdb/note``, so notes signed
here open there and the other way round:

* a note must be valid UTF-8 with no ASCII control character but newline, and carry at
  most `MAX_SIGNATURES` signature lines;
* signatures by unknown keys (no known key with both the same name and key id) are ignored;
* a signature by a known key that does not verify rejects the whole note
  (`InvalidNoteSignature`);
* a note with no verified signature is rejected (`UnverifiedNote`).

Everything here is pure: no I/O, no global state.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
from collections.abc import Iterable
from typing import Final

import nacl.exceptions
import nacl.signing

__all__ = [
    "ED25519",
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "InvalidNoteSignature",
    "MalformedNote",
    "Note",
    "NoteError",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "UnverifiedNote",
    "check_key_name",
    "key_id",
    "open_note",
    "parse_note",
    "sign_note",
]

ED25519: Final = 0x01
"""The signature type byte of Ed25519 note signatures."""

MAX_SIGNATURES: Final = 100
"""The most signature lines a note may carry (Go's limit; C2SP asks for at least 16)."""

MAX_NOTE_BYTES: Final = 1 << 20
"""The largest note accepted, in bytes: far more than a checkpoint with every cosignature."""

_SIGNATURE_PREFIX: Final = "\u2014 "  # em dash, space
_SEPARATOR: Final = b"\n\n"
_ED25519_KEY_BYTES: Final = 32
_ED25519_SIGNATURE_BYTES: Final = 64
_KEY_ID_BYTES: Final = 4
_PRIVATE_KEY_PREFIX: Final = "PRIVATE+KEY+"


class NoteError(ValueError):
    """A note could not be opened: the base class of the errors of this module."""


class MalformedNote(NoteError):
    """The note, a key name or a key string is not in the signed-note format."""


class InvalidNoteSignature(NoteError):
    """A signature by a known key does not verify: the note is rejected as a whole.

    Attributes:
        name: The key name of the failing signature.
        key_id: Its key id.
    """

    def __init__(self, name: str, key_id: int) -> None:
        super().__init__(f"invalid signature for key {name}+{key_id:08x}")
        self.name = name
        self.key_id = key_id


class UnverifiedNote(NoteError):
    """No signature of the note is by a known key.

    Attributes:
        note: The note with every signature in ``unverified`` (its text is not trustworthy).
    """

    def __init__(self, note: Note) -> None:
        super().__init__("the note has no signature by a known key")
        self.note = note


def check_key_name(name: str) -> None:
    """Check a note key name: not empty, no Unicode space, no ``+``.

    Args:
        name: The key name.

    Raises:
        MalformedNote: The name is not valid.
    """
    if not isinstance(name, str) or not name or "+" in name or any(c.isspace() for c in name):
        raise MalformedNote("a key name must be non-empty, without spaces or '+'")


def key_id(name: str, public_key: bytes, signature_type: int = ED25519) -> int:
    """Return the key id of a note key: ``SHA-256(name || 0x0A || type || public key)[:4]``.

    Args:
        name: The key name.
        public_key: The public key (32 bytes for Ed25519).
        signature_type: The signature type byte; `ED25519` by default.

    Returns:
        The key id as an unsigned 32-bit integer (its big-endian bytes start each signature).
    """
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([signature_type]) + public_key).digest()
    return int.from_bytes(digest[:_KEY_ID_BYTES], "big")


def _b64decode(text: str) -> bytes:
    """Standard, padded base64; anything else raises ``binascii.Error``."""
    return base64.b64decode(text.encode("ascii"), validate=True)


@dataclasses.dataclass(frozen=True, slots=True)
class NoteVerifier:
    """The public half of an Ed25519 note key: verifies the signatures it made.

    Attributes:
        name: The key name; by convention the log's origin.
        key_id: The key id (see `key_id`).
        public_key: The 32-byte Ed25519 public key.

    Raises:
        MalformedNote: The name is not valid, the key is not 32 bytes, or the key id is not
            the one the name and key give.
    """

    name: str
    key_id: int
    public_key: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if not isinstance(self.public_key, bytes) or len(self.public_key) != _ED25519_KEY_BYTES:
            raise MalformedNote("an Ed25519 public key is 32 bytes")
        if self.key_id != key_id(self.name, self.public_key):
            raise MalformedNote("the key id does not match the key name and public key")

    @classmethod
    def from_public_key(cls, name: str, public_key: bytes) -> NoteVerifier:
        """Make the verifier of an Ed25519 public key under a key name.

        Args:
            name: The key name.
            public_key: The 32-byte Ed25519 public key.

        Returns:
            The verifier, with its key id computed.

        Raises:
            MalformedNote: The name or the key is not valid.
        """
        check_key_name(name)
        return cls(name, key_id(name, public_key), public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse a verifier key string, ``<name>+<8 hex digits>+base64(0x01 || public key)``.

        Args:
            vkey: The verifier key.

        Returns:
            The verifier.

        Raises:
            MalformedNote: The string is not a valid Ed25519 verifier key, or its key id does
                not match its name and key.
        """
        # The key is base64, which may hold '+': only the first two separate parts.
        parts = vkey.split("+", 2) if isinstance(vkey, str) else []
        if len(parts) != 3:
            raise MalformedNote("a verifier key is <name>+<key id>+<key>")
        name, hex_id, encoded = parts
        check_key_name(name)
        try:
            raw = _b64decode(encoded)
        except (binascii.Error, UnicodeEncodeError):
            raise MalformedNote("the key part of a verifier key is not base64") from None
        if len(hex_id) != 8 or any(c not in "0123456789abcdefABCDEF" for c in hex_id):
            raise MalformedNote("the key id of a verifier key is 8 hex digits")
        if len(raw) != 1 + _ED25519_KEY_BYTES or raw[0] != ED25519:
            raise MalformedNote("only Ed25519 verifier keys (type 0x01, 32 bytes) are supported")
        return cls(name, int(hex_id, 16), raw[1:])

    @property
    def vkey(self) -> str:
        """The verifier key string, ``<name>+<key id>+base64(0x01 || public key)``."""
        encoded = base64.b64encode(bytes([ED25519]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id:08x}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``.

        Args:
            message: The signed bytes (a note's text).
            signature: The 64-byte signature, without the key id.

        Returns:
            True when it verifies; False otherwise (never raises on bad input).
        """
        if len(signature) != _ED25519_SIGNATURE_BYTES:
            return False
        try:
            nacl.signing.VerifyKey(self.public_key).verify(message, signature)
        except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
            return False
        return True


class NoteSigner:
    """The private half of an Ed25519 note key: signs note texts.

    Args:
        name: The key name; by convention the log's origin.
        private_key: The 32-byte Ed25519 seed, or a PyNaCl ``SigningKey``.

    Raises:
        MalformedNote: The name is not valid.
        ValueError: The seed is not 32 bytes.
    """

    __slots__ = ("_key", "verifier")

    def __init__(self, name: str, private_key: bytes | nacl.signing.SigningKey) -> None:
        check_key_name(name)
        if not isinstance(private_key, nacl.signing.SigningKey):
            if len(private_key) != _ED25519_KEY_BYTES:
                raise ValueError("an Ed25519 private key is a 32-byte seed")
            private_key = nacl.signing.SigningKey(bytes(private_key))
        self._key = private_key
        self.verifier = NoteVerifier.from_public_key(name, bytes(private_key.verify_key))
        """The matching `NoteVerifier`."""

    @classmethod
    def from_skey(cls, skey: str) -> NoteSigner:
        """Parse a Go-style signer key, ``PRIVATE+KEY+<name>+<key id>+base64(0x01 || seed)``.

        Args:
            skey: The signer key string.

        Returns:
            The signer.

        Raises:
            MalformedNote: The string is not a valid Ed25519 signer key, or its key id does
                not match the key.
        """
        if not isinstance(skey, str) or not skey.startswith(_PRIVATE_KEY_PREFIX):
            raise MalformedNote("a signer key starts with PRIVATE+KEY+")
        parts = skey.removeprefix(_PRIVATE_KEY_PREFIX).split("+", 2)
        if len(parts) != 3 or len(parts[1]) != 8:
            raise MalformedNote("a signer key is PRIVATE+KEY+<name>+<key id>+<key>")
        name, hex_id, encoded = parts
        try:
            raw = _b64decode(encoded)
            expected = int(hex_id, 16)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise MalformedNote("a signer key holds a hex key id and a base64 key") from None
        if len(raw) != 1 + _ED25519_KEY_BYTES or raw[0] != ED25519:
            raise MalformedNote("only Ed25519 signer keys (type 0x01, 32 bytes) are supported")
        signer = cls(name, raw[1:])
        if signer.key_id != expected:
            raise MalformedNote("the key id does not match the key name and key")
        return signer

    @property
    def name(self) -> str:
        """The key name."""
        return self.verifier.name

    @property
    def key_id(self) -> int:
        """The key id."""
        return self.verifier.key_id

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``message``."""
        return bytes(self._key.sign(message).signature)

    def __repr__(self) -> str:  # never the private key
        return f"NoteSigner({self.verifier.vkey!r})"


@dataclasses.dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line of a note.

    Attributes:
        name: The key name.
        key_id: The key id (the first four bytes of the encoded signature).
        signature: The signature bytes after the key id.
    """

    name: str
    key_id: int
    signature: bytes

    @property
    def line(self) -> str:
        """The signature line, without its newline: ``— <name> <base64>``."""
        encoded = base64.b64encode(self.key_id.to_bytes(_KEY_ID_BYTES, "big") + self.signature).decode("ascii")
        return f"{_SIGNATURE_PREFIX}{self.name} {encoded}"


@dataclasses.dataclass(frozen=True, slots=True)
class Note:
    """A parsed note.

    Attributes:
        text: The note text, final newline included. Trust it only when `open_note` returned
            it (at least one signature by a known key verified).
        signatures: The signatures that verified, one per key, in note order.
        unverified: The signatures by keys the verifier did not know, duplicates dropped.
    """

    text: str
    signatures: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...]


def _has_control_character(text: str) -> bool:
    return any(ord(c) < 0x20 and c != "\n" for c in text)


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise MalformedNote("a note text ends with a newline")
    if _has_control_character(text):
        raise MalformedNote("a note holds no control character but newline")


def sign_note(text: str, *signers: NoteSigner) -> bytes:
    """Sign a note text with one or more keys.

    Args:
        text: The note text; must end with a newline and hold no control character but
            newline.
        *signers: The keys, at least one; signatures appear in this order.

    Returns:
        The signed note: the text, a blank line and one signature line per signer, as UTF-8.

    Raises:
        MalformedNote: The text is not a valid note text, or no signer was given.
    """
    _check_text(text)
    if not signers:
        raise MalformedNote("a note needs at least one signature")
    message = text.encode("utf-8")
    lines = [NoteSignature(s.name, s.key_id, s.sign(message)).line + "\n" for s in signers]
    return message + b"\n" + "".join(lines).encode("utf-8")


def parse_note(data: bytes) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text and signature lines, verifying nothing.

    Args:
        data: The signed note as bytes.

    Returns:
        The text (final newline included) and every signature line, in order.

    Raises:
        MalformedNote: The note is not in the signed-note format, larger than
            `MAX_NOTE_BYTES`, or has more than `MAX_SIGNATURES` signatures.
    """
    if not isinstance(data, bytes | bytearray) or len(data) > MAX_NOTE_BYTES:
        raise MalformedNote(f"a note is at most {MAX_NOTE_BYTES} bytes")
    try:
        decoded = bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedNote("a note is UTF-8") from None
    if _has_control_character(decoded):
        raise MalformedNote("a note holds no control character but newline")
    split = data.rfind(_SEPARATOR)
    if split < 0:
        raise MalformedNote("a note has a blank line before its signatures")
    # Valid UTF-8 never holds a newline byte inside a character, so the byte split is safe.
    text, block = bytes(data[: split + 1]).decode("utf-8"), bytes(data[split + 2 :]).decode("utf-8")
    if not block.endswith("\n"):
        raise MalformedNote("a note ends with a signature line and a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNote(f"a note has at most {MAX_SIGNATURES} signatures")
    signatures: list[NoteSignature] = []
    for line in lines:
        if not line.startswith(_SIGNATURE_PREFIX):
            raise MalformedNote("a signature line starts with an em dash and a space")
        name, _, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
        check_key_name(name)
        try:
            raw = _b64decode(encoded)
        except (binascii.Error, UnicodeEncodeError):
            raise MalformedNote("a signature is base64") from None
        if len(raw) <= _KEY_ID_BYTES:
            raise MalformedNote("a signature holds a key id and signature bytes")
        signatures.append(NoteSignature(name, int.from_bytes(raw[:_KEY_ID_BYTES], "big"), raw[_KEY_ID_BYTES:]))
    return text, signatures


def open_note(data: bytes, verifiers: Iterable[NoteVerifier]) -> Note:
    """Parse a signed note and verify its signatures by the known keys.

    Args:
        data: The signed note as bytes.
        verifiers: The known keys. Two with the same name and key id are ambiguous and
            rejected when a signature names them.

    Returns:
        The note; its ``signatures`` hold at least one verified signature.

    Raises:
        MalformedNote: The note is not in the signed-note format, or a signature names an
            ambiguous key.
        InvalidNoteSignature: A signature by a known key does not verify.
        UnverifiedNote: No signature is by a known key.
    """
    text, signatures = parse_note(data)
    known: dict[tuple[str, int], NoteVerifier | None] = {}
    for verifier in verifiers:
        slot = (verifier.name, verifier.key_id)
        known[slot] = None if slot in known and known[slot] != verifier else verifier
    message = text.encode("utf-8")
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    seen: set[tuple[str, int]] = set()
    for signature in signatures:
        slot = (signature.name, signature.key_id)
        if slot not in known:
            if signature not in unverified:
                unverified.append(signature)
            continue
        key = known[slot]
        if key is None:
            raise MalformedNote(f"ambiguous key {signature.name}+{signature.key_id:08x}")
        if slot in seen:
            continue
        seen.add(slot)
        if not key.verify(message, signature.signature):
            raise InvalidNoteSignature(signature.name, signature.key_id)
        verified.append(signature)
    note = Note(text, tuple(verified), tuple(unverified))
    if not verified:
        raise UnverifiedNote(note)
    return note
