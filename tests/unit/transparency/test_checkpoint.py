"""Checkpoints and proof bundles: a real checkpoint of Go's checksum database, our own checked
by the spec-written verifier, strict parsing, origins, and the log keys of a key set."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from charter import transparency
from charter.grants import KeyRing
from charter.transparency import merkle
from charter.transparency.bundle import MalformedBundle, ProofBundle, verify_bundle
from charter.transparency.checkpoint import (
    Checkpoint,
    MalformedCheckpoint,
    WrongOrigin,
    sign_checkpoint,
    verify_checkpoint,
)
from charter.transparency.note import InvalidNoteSignature, MalformedNote, NoteSigner, NoteVerifier, UnverifiedNote
from charter.v1.signing_key_pb2 import KeySet, SigningKey
from google.protobuf import timestamp_pb2

from . import reference

DATA = Path(__file__).resolve().parents[2] / "data" / "transparency"
SUMDB = json.loads((DATA / "signed-note-vectors.json").read_text())["sumdb"]
SUMDB_BUNDLE = (DATA / "go.sum-database-tree-43930254.tlog-proof").read_bytes()
SUMDB_LEAF = (DATA / "go.sum-database-tree-43930254.raw").read_bytes()
SUMDB_KEY = NoteVerifier.from_vkey(SUMDB["vkey"])

ORIGIN = "charter.example/log"
SIGNER = NoteSigner(ORIGIN, bytes(range(32)))
ROOT = merkle.leaf_hash(b"a root")


def test_a_real_sum_golang_org_checkpoint_and_inclusion_proof_verify() -> None:
    leaf = merkle.leaf_hash(SUMDB_LEAF)
    assert leaf.hex() == SUMDB["leaf_hash_hex"]

    signed = verify_bundle(SUMDB_BUNDLE, leaf, origin=SUMDB["origin"], verifiers=[SUMDB_KEY])

    assert signed.checkpoint.origin == "go.sum database tree"
    assert signed.checkpoint.size == 58253265
    assert [s.name for s in signed.note.signatures] == ["sum.golang.org"]
    bundle = ProofBundle.from_text(SUMDB_BUNDLE)
    assert bundle.index == 43930254 and len(bundle.proof) == 26
    assert bundle.to_text() == SUMDB_BUNDLE


def test_the_real_checkpoint_fails_once_anything_changes() -> None:
    bundle = ProofBundle.from_text(SUMDB_BUNDLE)
    leaf = merkle.leaf_hash(SUMDB_LEAF)
    with pytest.raises(merkle.InvalidProof):
        verify_bundle(SUMDB_BUNDLE, merkle.leaf_hash(SUMDB_LEAF + b" "), origin=SUMDB["origin"], verifiers=[SUMDB_KEY])
    with pytest.raises(merkle.InvalidProof):
        verify_bundle(
            ProofBundle(bundle.index + 1, bundle.proof, bundle.checkpoint),
            leaf,
            origin=SUMDB["origin"],
            verifiers=[SUMDB_KEY],
        )
    with pytest.raises(InvalidNoteSignature):
        verify_bundle(
            SUMDB_BUNDLE.replace(b"58253265", b"58253266"), leaf, origin=SUMDB["origin"], verifiers=[SUMDB_KEY]
        )
    with pytest.raises(WrongOrigin):
        verify_bundle(SUMDB_BUNDLE, leaf, origin="sum.golang.org", verifiers=[SUMDB_KEY])
    with pytest.raises(UnverifiedNote):
        verify_bundle(SUMDB_BUNDLE, leaf, origin=SUMDB["origin"], verifiers=[SIGNER.verifier])
    assert verify_bundle(SUMDB_BUNDLE, leaf, origin=SUMDB["origin"], verifiers=[SUMDB_KEY]).checkpoint.size == 58253265


def test_the_spec_verifier_accepts_our_checkpoint() -> None:
    checkpoint = Checkpoint(ORIGIN, 1234, ROOT)

    signed = sign_checkpoint(checkpoint, SIGNER)

    text = reference.verify_note(signed, reference.parse_vkey(SIGNER.verifier.vkey))
    assert reference.parse_checkpoint(text) == (ORIGIN, 1234, ROOT)
    assert signed.decode().startswith(f"{ORIGIN}\n1234\n{base64.b64encode(ROOT).decode()}\n\n\u2014 {ORIGIN} ")
    assert verify_checkpoint(signed, origin=ORIGIN, verifiers=[SIGNER.verifier]).checkpoint == checkpoint


def test_extension_lines_round_trip_and_are_signed() -> None:
    checkpoint = Checkpoint(ORIGIN, 0, merkle.EMPTY_ROOT, ("ext one", "ext two"))

    signed = sign_checkpoint(checkpoint, SIGNER)

    assert verify_checkpoint(signed, origin=ORIGIN, verifiers=[SIGNER.verifier]).checkpoint == checkpoint
    with pytest.raises(InvalidNoteSignature):
        verify_checkpoint(signed.replace(b"ext two", b"ext 2"), origin=ORIGIN, verifiers=[SIGNER.verifier])


@pytest.mark.parametrize(
    "text",
    [
        f"{ORIGIN}\n5\n",
        f"{ORIGIN}\n05\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n-5\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n5.0\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n9223372036854775808\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n5\n{base64.b64encode(ROOT[:31]).decode()}\n",
        f"{ORIGIN}\n5\n{base64.b64encode(ROOT).decode().rstrip('=')}\n",
        f"{ORIGIN}\n5\n{base64.b64encode(ROOT).decode()}\n\nextension after an empty line\n",
        f"\n5\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n\u0665\n{base64.b64encode(ROOT).decode()}\n",
        # RFC 9162 §2.1.1: the root of the empty tree is SHA-256 of the empty string, nothing else.
        f"{ORIGIN}\n0\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n0\n{base64.b64encode(bytes(32)).decode()}\n",
    ],
)
def test_signed_texts_that_are_not_checkpoints_are_refused(text: str) -> None:
    signed = transparency.sign_note(text, SIGNER)

    with pytest.raises(MalformedCheckpoint):
        verify_checkpoint(signed, origin=ORIGIN, verifiers=[SIGNER.verifier])


def test_the_signature_is_checked_before_the_text() -> None:
    """An unsigned or wrongly signed note is refused as such, whatever its text says."""
    forged = sign_checkpoint(Checkpoint(ORIGIN, 5, ROOT), NoteSigner(ORIGIN, bytes(32)))

    with pytest.raises(UnverifiedNote):
        verify_checkpoint(forged, origin=ORIGIN, verifiers=[SIGNER.verifier])
    with pytest.raises(UnverifiedNote):
        verify_checkpoint(b"junk\n\n\xe2\x80\x94 other AAAAAAA=\n", origin=ORIGIN, verifiers=[SIGNER.verifier])


def test_checkpoint_fields_are_checked() -> None:
    for args in (
        (ORIGIN, -1, ROOT),
        (ORIGIN, 1 << 63, ROOT),
        ("", 1, ROOT),
        ("two\nlines", 1, ROOT),
        (ORIGIN, 1, b"x"),
        (ORIGIN, 0, ROOT),
    ):
        with pytest.raises(MalformedCheckpoint):
            Checkpoint(*args)
    with pytest.raises(MalformedCheckpoint):
        Checkpoint(ORIGIN, 1, ROOT, ("",))


def test_bundles_round_trip_with_extra_data() -> None:
    checkpoint = sign_checkpoint(Checkpoint(ORIGIN, 3, ROOT), SIGNER)
    bundle = ProofBundle(2, (bytes(32), bytes(range(32))), checkpoint, extra=b"receipt rcp_1")

    parsed = ProofBundle.from_text(bundle.to_text())

    assert parsed == bundle


@pytest.mark.parametrize(
    "text",
    [
        b"c2sp.org/tlog-proof@v2\nindex 1\n\ncheckpoint",
        b"c2sp.org/tlog-proof@v1\nindex 01\n\ncheckpoint",
        b"c2sp.org/tlog-proof@v1\nindex 1\nnot base64\n\ncheckpoint",
        b"c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\ncheckpoint",
        b"c2sp.org/tlog-proof@v1\nextra !!\nindex 1\n\ncheckpoint",
        b"c2sp.org/tlog-proof@v1\nindex 1\n\n",
        b"c2sp.org/tlog-proof@v1\nindex 1",
        b"c2sp.org/tlog-proof@v1\n\ncheckpoint",
        b"c2sp.org/tlog-proof@v1\nindex 1\n" + b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n" * 64 + b"\ncheckpoint",
    ],
)
def test_malformed_bundles(text: bytes) -> None:
    with pytest.raises(MalformedBundle):
        ProofBundle.from_text(text)


def _log_key(key_id: str, signer: NoteSigner, state: int = SigningKey.STATE_ACTIVE) -> SigningKey:
    return SigningKey(
        key_id=key_id,
        algorithm="ed25519",
        public_key=signer.verifier.public_key,
        state=state,  # type: ignore[arg-type]
        activate_time=timestamp_pb2.Timestamp(seconds=1_700_000_000),
        purpose=SigningKey.PURPOSE_TRANSPARENCY_LOG,
        note_verifier_key=signer.verifier.vkey,
    )


def test_log_verifiers_come_from_the_key_set_and_grant_verifiers_ignore_them() -> None:
    retired_signer = NoteSigner(ORIGIN, bytes(range(1, 33)))
    revoked_signer = NoteSigner(ORIGIN, bytes(range(2, 34)))
    grant_key = SigningKey(
        key_id="sk_00000000000000aa",
        algorithm="ed25519",
        public_key=bytes(32),
        state=SigningKey.STATE_ACTIVE,
        activate_time=timestamp_pb2.Timestamp(seconds=1_700_000_000),
        purpose=SigningKey.PURPOSE_GRANTS,
    )
    key_set = KeySet(
        version="v1",
        keys=[
            grant_key,
            _log_key("sk_00000000000000bb", SIGNER),
            _log_key("sk_00000000000000cc", retired_signer, SigningKey.STATE_RETIRED),
            _log_key("sk_00000000000000dd", revoked_signer),
        ],
        revoked_key_ids=["sk_00000000000000dd"],
    )

    verifiers = transparency.log_verifiers(key_set)

    assert verifiers == [SIGNER.verifier, retired_signer.verifier]
    old = sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), retired_signer)
    assert verify_checkpoint(old, origin=ORIGIN, verifiers=verifiers).checkpoint.size == 1
    with pytest.raises(UnverifiedNote):
        verify_checkpoint(
            sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), revoked_signer), origin=ORIGIN, verifiers=verifiers
        )
    assert list(KeyRing.from_key_set(key_set)) == ["sk_00000000000000aa"]


def test_a_log_key_whose_verifier_key_names_another_key_is_refused() -> None:
    key = _log_key("sk_00000000000000bb", SIGNER)
    key.note_verifier_key = NoteSigner(ORIGIN, bytes(32)).verifier.vkey

    with pytest.raises(MalformedNote):
        transparency.log_verifiers(KeySet(keys=[key]))

    assert transparency.log_verifiers(KeySet(keys=[_log_key("sk_00000000000000bb", SIGNER)])) == [SIGNER.verifier]


def test_two_log_keys_under_one_id_are_refused() -> None:
    """A key set is malformed when two keys share an id, log keys as grant keys (`KeyRing`)."""
    twice = [_log_key("sk_00000000000000bb", SIGNER), _log_key("sk_00000000000000bb", NoteSigner(ORIGIN, bytes(32)))]

    with pytest.raises(MalformedNote):
        transparency.log_verifiers(KeySet(keys=twice))
