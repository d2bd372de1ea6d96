"""Signed notes against Go's golang.org/x/mod/sumdb/note vectors, the C2SP example and a
verifier written from the C2SP text (`reference.verify_note`)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from charter.transparency import note
from charter.transparency.note import (
    InvalidNoteSignature,
    MalformedNote,
    NoteSigner,
    NoteVerifier,
    UnverifiedNote,
    open_note,
    parse_note,
    sign_note,
)

from . import reference

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "data" / "transparency" / "signed-note-vectors.json").read_text()
)
GO = VECTORS["go"]
PETER = NoteVerifier.from_vkey(GO["peter_vkey"])
ENOCH = NoteVerifier.from_vkey(GO["enoch_vkey"])
TEXT: str = GO["text"]
PETER_LINE: str = GO["peter_signature_line"]
ENOCH_LINE: str = GO["enoch_signature_line"]


def _note(*lines: str, text: str = TEXT) -> bytes:
    return (text + "\n" + "".join(lines)).encode("utf-8")


def test_go_signer_key_signs_exactly_as_go_does() -> None:
    signer = NoteSigner.from_skey(GO["peter_skey_published_test_key"])

    assert signer.name == "PeterNeumann" and signer.key_id == 0xC74F20A3
    assert signer.verifier == PETER
    assert sign_note(TEXT, signer) == GO["signed_by_peter"].encode("utf-8")
    assert "PRIVATE" not in repr(signer)


def test_go_vkeys_parse_and_print_back() -> None:
    assert PETER.name == "PeterNeumann" and PETER.key_id == 0xC74F20A3
    assert PETER.vkey == GO["peter_vkey"]
    assert ENOCH.vkey == GO["enoch_vkey"]
    assert note.key_id("PeterNeumann", PETER.public_key) == 0xC74F20A3


def test_every_mangled_go_vkey_is_refused() -> None:
    """As Go's TestNewVerifier: every proper substring and every byte changed by one."""
    vkey = GO["peter_vkey"]
    refused = 0
    for i in range(len(vkey) + 1):
        for j in range(i + 1, len(vkey) + 1):
            if (i, j) != (0, len(vkey)):
                with pytest.raises(MalformedNote):
                    NoteVerifier.from_vkey(vkey[i:j])
                refused += 1
    for i in range(len(vkey)):
        mangled = vkey[:i] + chr(ord(vkey[i]) + 1) + vkey[i + 1 :]
        with pytest.raises(MalformedNote):
            NoteVerifier.from_vkey(mangled)
        refused += 1
    assert refused == len(vkey) * (len(vkey) + 1) // 2 - 1 + len(vkey)


def test_every_mangled_go_skey_is_refused() -> None:
    skey = GO["peter_skey_published_test_key"]
    for i in range(len(skey)):
        mangled = skey[:i] + chr(ord(skey[i]) + 1) + skey[i + 1 :]
        with pytest.raises(MalformedNote):
            NoteSigner.from_skey(mangled)
    for cut in range(1, len(skey)):
        with pytest.raises(MalformedNote):
            NoteSigner.from_skey(skey[:cut])
    assert NoteSigner.from_skey(skey).key_id == PETER.key_id


def test_go_open_one_signature_verified_one_unknown() -> None:
    opened = open_note(_note(PETER_LINE, ENOCH_LINE), [PETER])

    assert opened.text == TEXT
    assert [(s.name, s.key_id) for s in opened.signatures] == [("PeterNeumann", 0xC74F20A3)]
    assert [(s.name, s.key_id) for s in opened.unverified] == [("EnochRoot", 0xAF0CFE78)]
    assert opened.signatures[0].line + "\n" == PETER_LINE


def test_go_open_both_verified() -> None:
    opened = open_note(_note(PETER_LINE, ENOCH_LINE), [PETER, ENOCH])

    assert [s.name for s in opened.signatures] == ["PeterNeumann", "EnochRoot"]
    assert opened.unverified == ()


def test_go_open_no_known_key() -> None:
    with pytest.raises(UnverifiedNote) as raised:
        open_note(_note(PETER_LINE, ENOCH_LINE), [])

    assert raised.value.note.signatures == ()
    assert [s.name for s in raised.value.note.unverified] == ["PeterNeumann", "EnochRoot"]


def _colliding(verifier: NoteVerifier) -> NoteVerifier:
    """Another public key under the same name and key id: a 32-bit collision, which an attacker
    can search for but a test cannot afford, so the validation is bypassed to build it."""
    twin = object.__new__(NoteVerifier)
    for field, value in (("name", verifier.name), ("key_id", verifier.key_id), ("public_key", PETER.public_key)):
        object.__setattr__(twin, field, value)
    return twin


def test_go_open_ambiguous_key_only_when_a_signature_names_it() -> None:
    with pytest.raises(MalformedNote):
        open_note(_note(ENOCH_LINE), [ENOCH, PETER, _colliding(ENOCH)])

    opened = open_note(_note(PETER_LINE), [ENOCH, PETER, _colliding(ENOCH)])
    assert [s.name for s in opened.signatures] == ["PeterNeumann"]
    # The same key listed twice is not ambiguous.
    assert open_note(_note(ENOCH_LINE), [ENOCH, ENOCH]).signatures[0].name == "EnochRoot"


def test_go_open_too_many_signatures() -> None:
    with pytest.raises(MalformedNote):
        open_note(_note(PETER_LINE * 101), [PETER])
    with pytest.raises(MalformedNote):
        open_note(_note(PETER_LINE * 101), [])
    assert len(open_note(_note(PETER_LINE * 100), [PETER]).signatures) == 1


def test_go_open_invalid_signature_rejects_the_note() -> None:
    broken = PETER_LINE[:60] + "ABCD" + PETER_LINE[60:]

    with pytest.raises(InvalidNoteSignature) as raised:
        open_note(_note(broken), [PETER])

    assert (raised.value.name, raised.value.key_id) == ("PeterNeumann", 0xC74F20A3)


def test_go_open_duplicates_are_dropped() -> None:
    broken_enoch = ENOCH_LINE[:60] + "ABCD" + ENOCH_LINE[60:]

    opened = open_note(_note(PETER_LINE, PETER_LINE, ENOCH_LINE, ENOCH_LINE, broken_enoch), [PETER])

    assert [s.name for s in opened.signatures] == ["PeterNeumann"]
    assert len(opened.unverified) == 2


@pytest.mark.parametrize(
    "message",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_LINE[:-1],
        "\x01" + TEXT + "\n" + PETER_LINE,
        TEXT + "\n" + PETER_LINE.replace("PeterNeumann", "Bad Name"),
        TEXT + "\n" + PETER_LINE + "Unexpected line.\n",
        TEXT + "\n" + "\u2014 PeterNeumann AAAA\n",
        TEXT + "\n" + "\u2014 PeterNeumann not-base64!\n",
        TEXT + "\n" + "\u2014 Peter+Neumann x08g\n",
    ],
)
def test_go_open_malformed_messages(message: str) -> None:
    with pytest.raises(MalformedNote):
        open_note(message.encode("utf-8"), [PETER])


def test_invalid_utf8_and_oversized_notes_are_malformed() -> None:
    with pytest.raises(MalformedNote):
        open_note(b"\xff" + _note(PETER_LINE), [PETER])
    with pytest.raises(MalformedNote):
        open_note(b"x" * (note.MAX_NOTE_BYTES + 1), [PETER])
    with pytest.raises(MalformedNote):
        open_note("not bytes", [PETER])  # type: ignore[arg-type]


def test_the_c2sp_example_verifies() -> None:
    example = VECTORS["c2sp"]
    verifier = NoteVerifier.from_vkey(example["vkey"])

    opened = open_note(example["note"].encode("utf-8"), [verifier])

    assert opened.text == "This is an example message.\n"
    assert reference.verify_note(example["note"].encode("utf-8"), reference.parse_vkey(example["vkey"])) == opened.text


def test_the_spec_verifier_accepts_our_notes_and_go_agrees_on_the_keys() -> None:
    signer = NoteSigner("charter.example/log", bytes(range(32)))
    other = NoteSigner("witness.example/w1", bytes(range(1, 33)))
    text = "A note\nwith lines\n\nand an empty one inside.\n"

    signed = sign_note(text, signer, other)

    for key in (signer.verifier, other.verifier):
        assert reference.verify_note(signed, reference.parse_vkey(key.vkey)) == text
    opened = open_note(signed, [signer.verifier])
    assert opened.text == text
    assert [s.name for s in opened.unverified] == ["witness.example/w1"]


def test_the_spec_verifier_rejects_our_note_once_altered() -> None:
    signer = NoteSigner("charter.example/log", bytes(range(32)))
    signed = sign_note("charter.example/log\n5\nroot\n", signer)
    altered = signed.replace(b"\n5\n", b"\n6\n")

    with pytest.raises(AssertionError):
        reference.verify_note(altered, reference.parse_vkey(signer.verifier.vkey))
    with pytest.raises(InvalidNoteSignature):
        open_note(altered, [signer.verifier])

    assert reference.verify_note(signed, reference.parse_vkey(signer.verifier.vkey))


def test_signing_needs_a_text_and_a_signer() -> None:
    signer = NoteSigner("charter.example/log", bytes(32))
    for text in ("no final newline", "tab\there\n", ""):
        with pytest.raises(MalformedNote):
            sign_note(text, signer)
    with pytest.raises(MalformedNote):
        sign_note("text\n")


@pytest.mark.parametrize("name", ["", "a+b", "a b", "a\u00a0b", "a\u3000b", "tab\tname"])
def test_key_names_without_spaces_or_plus(name: str) -> None:
    with pytest.raises(MalformedNote):
        NoteSigner(name, bytes(32))
    with pytest.raises(MalformedNote):
        NoteVerifier.from_public_key(name, bytes(32))


def test_parse_note_keeps_every_signature_in_order() -> None:
    text, signatures = parse_note(_note(ENOCH_LINE, PETER_LINE, ENOCH_LINE))

    assert text == TEXT
    assert [s.name for s in signatures] == ["EnochRoot", "PeterNeumann", "EnochRoot"]
    assert base64.b64decode(PETER_LINE.split(" ")[2])[4:] == signatures[1].signature


def test_a_verifier_never_raises_on_bad_signatures() -> None:
    assert PETER.verify(b"anything", b"short") is False
    assert PETER.verify(b"anything", bytes(64)) is False
