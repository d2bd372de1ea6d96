"""DSSE envelopes: the pre-authentication encoding, signing, the JSON form and the digest."""

from __future__ import annotations

import base64
import json
from typing import Any

import nacl.signing
import pytest
from charter import envelope
from charter.envelope import GRANT_PAYLOAD_TYPE, MalformedEnvelope, digest, from_json, pae, sign, to_json
from charter.v1.envelope_pb2 import Envelope, Signature
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

# RFC 8032, section 7.1, TEST 1: a published Ed25519 key pair.
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
KEY_ID = "sk_0123456789abcdef"

envelopes = st.builds(
    lambda payload, payload_type, signatures: Envelope(
        payload=payload,
        payload_type=payload_type,
        signatures=[Signature(keyid=keyid, sig=sig) for keyid, sig in signatures],
    ),
    st.binary(max_size=300),
    st.text(max_size=60),
    st.lists(st.tuples(st.text(max_size=20), st.binary(max_size=80)), max_size=4),
)


def document(env: Envelope) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(to_json(env))
    return result


def signed(payload: bytes = b"claims", payload_type: str = GRANT_PAYLOAD_TYPE) -> Envelope:
    return sign(payload, payload_type, key_id=KEY_ID, private_key=RFC8032_SEED)


# PAE --------------------------------------------------------------------------------------------


def test_pae_matches_the_dsse_specification_example() -> None:
    # The example of the DSSE protocol specification (github.com/secure-systems-lab/dsse).
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


@pytest.mark.parametrize(
    ("payload_type", "payload", "expected"),
    [
        ("", b"", b"DSSEv1 0  0 "),
        (GRANT_PAYLOAD_TYPE, b"\x00\xff", b"DSSEv1 41 application/vnd.charter.grant.v1+protobuf 2 \x00\xff"),
        ("t\u00e9", b"x" * 10, b"DSSEv1 3 t\xc3\xa9 10 " + b"x" * 10),  # lengths count bytes, not characters
        ("a b", b"1 2", b"DSSEv1 3 a b 3 1 2"),  # spaces inside fields need no escaping
    ],
)
def test_pae_known_vectors(payload_type: str, payload: bytes, expected: bytes) -> None:
    assert pae(payload_type, payload) == expected


@given(st.text(max_size=30), st.binary(max_size=60), st.text(max_size=30), st.binary(max_size=60))
def test_pae_is_injective(type_a: str, payload_a: bytes, type_b: str, payload_b: bytes) -> None:
    if (type_a, payload_a) != (type_b, payload_b):
        assert pae(type_a, payload_a) != pae(type_b, payload_b)


# Signing ----------------------------------------------------------------------------------------


def test_sign_makes_one_ed25519_signature_over_the_pae() -> None:
    env = signed(b"hello world", "http://example.com/HelloWorld")

    assert env.payload == b"hello world"
    assert env.payload_type == "http://example.com/HelloWorld"
    assert [s.keyid for s in env.signatures] == [KEY_ID]
    assert len(env.signatures[0].sig) == 64
    # Ed25519 is deterministic: the same key and message always give the same signature.
    expected = nacl.signing.SigningKey(RFC8032_SEED).sign(pae(env.payload_type, env.payload)).signature
    assert env.signatures[0].sig == expected


def test_signatures_verify_with_an_independent_ed25519_implementation() -> None:
    env = signed(b"\x0a\x04grt_")
    public = Ed25519PublicKey.from_public_bytes(RFC8032_PUBLIC)

    public.verify(env.signatures[0].sig, pae(env.payload_type, env.payload))  # raises when wrong
    with pytest.raises(InvalidSignature):
        public.verify(env.signatures[0].sig, env.payload)  # over the PAE, not the bare payload
    with pytest.raises(InvalidSignature):
        public.verify(env.signatures[0].sig, pae("other/type", env.payload))


def test_sign_round_trips_through_nacl_verify() -> None:
    env = signed(b"payload bytes")
    verify_key = nacl.signing.VerifyKey(RFC8032_PUBLIC)

    assert verify_key.verify(pae(env.payload_type, env.payload), env.signatures[0].sig) == pae(
        env.payload_type, env.payload
    )


@pytest.mark.parametrize("seed", [b"", b"x" * 31, b"x" * 33, b"x" * 64])
def test_sign_refuses_a_private_key_that_is_not_a_32_byte_seed(seed: bytes) -> None:
    with pytest.raises(ValueError, match="32-byte"):
        sign(b"p", GRANT_PAYLOAD_TYPE, key_id=KEY_ID, private_key=seed)


def test_sign_refuses_an_empty_key_id() -> None:
    with pytest.raises(ValueError, match="key_id"):
        sign(b"p", GRANT_PAYLOAD_TYPE, key_id="", private_key=RFC8032_SEED)


# JSON form ----------------------------------------------------------------------------------------


def test_to_json_is_the_standard_dsse_form() -> None:
    env = signed(b"hi")

    assert document(env) == {
        "payload": "aGk=",
        "payloadType": GRANT_PAYLOAD_TYPE,
        "signatures": [{"keyid": KEY_ID, "sig": base64.b64encode(env.signatures[0].sig).decode()}],
    }


@settings(max_examples=200)
@given(envelopes)
def test_json_and_protobuf_convert_without_loss(env: Envelope) -> None:
    text = to_json(env)

    assert from_json(text) == env
    assert from_json(text.encode()) == env
    assert to_json(from_json(text)) == text


def test_from_json_reads_documents_written_by_other_tools() -> None:
    text = """
        {
          "signatures": [ {"sig": "AAEC", "keyid": "k1"}, {"sig": ""} ],
          "payloadType": "http://example.com/HelloWorld",
          "payload": "aGVsbG8gd29ybGQ=",
          "x-extension": {"ignored": true}
        }
    """

    env = from_json(text)

    assert env.payload == b"hello world"
    assert env.payload_type == "http://example.com/HelloWorld"
    assert [(s.keyid, s.sig) for s in env.signatures] == [("k1", b"\x00\x01\x02"), ("", b"")]


_MISSING = object()


def _with(**changes: Any) -> str:
    base: dict[str, Any] = {
        "payload": "aGk=",
        "payloadType": GRANT_PAYLOAD_TYPE,
        "signatures": [{"keyid": "k", "sig": "AAEC"}],
    }
    base.update(changes)
    return json.dumps({k: v for k, v in base.items() if v is not _MISSING})


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("not json", id="not-json"),
        pytest.param("[]", id="array"),
        pytest.param('"payload"', id="string"),
        pytest.param("null", id="null"),
        pytest.param('{"payload": "aGk=", "payloadType": "t", "signatures": []', id="truncated"),
        pytest.param(_with(payload=_MISSING), id="missing-payload"),
        pytest.param(_with(payloadType=_MISSING), id="missing-payloadType"),
        pytest.param(_with(signatures=_MISSING), id="missing-signatures"),
        pytest.param(_with(payload=12), id="payload-number"),
        pytest.param(_with(payload=None), id="payload-null"),
        pytest.param(_with(payloadType=7), id="payloadType-number"),
        pytest.param(_with(signatures={"keyid": "k", "sig": "AAEC"}), id="signatures-object"),
        pytest.param(_with(signatures=["AAEC"]), id="signature-string"),
        pytest.param(_with(signatures=[{"keyid": "k"}]), id="signature-without-sig"),
        pytest.param(_with(signatures=[{"keyid": 5, "sig": "AAEC"}]), id="keyid-number"),
        pytest.param(_with(signatures=[{"keyid": "k", "sig": ["AAEC"]}]), id="sig-list"),
        pytest.param(_with(payload="a!k="), id="payload-bad-character"),
        pytest.param(_with(payload="aGk"), id="payload-unpadded"),
        pytest.param(_with(payload="aGk=="), id="payload-extra-padding"),
        pytest.param(_with(payload="aG=k"), id="payload-padding-inside"),
        pytest.param(_with(payload="aGl="), id="payload-non-canonical-bits"),
        pytest.param(_with(payload="aG k="), id="payload-space"),
        pytest.param(_with(payload="aGk=\n"), id="payload-newline"),
        pytest.param(_with(payload="-_8="), id="payload-url-safe"),
        pytest.param(_with(payload="aGk=\u00e9"), id="payload-non-ascii"),
        pytest.param(_with(signatures=[{"keyid": "k", "sig": "AA$C"}]), id="sig-bad-character"),
        pytest.param(_with(signatures=[{"keyid": "k", "sig": "AAE"}]), id="sig-unpadded"),
        pytest.param(_with(signatures=[{"keyid": "\ud800", "sig": "AAEC"}]), id="keyid-lone-surrogate"),
        pytest.param(_with(payloadType="\udfff"), id="payloadType-lone-surrogate"),
        pytest.param('{"payload": "aGk=", "payload": "aGk=", "payloadType": "t", "signatures": []}', id="duplicate"),
        pytest.param(
            '{"payload": "aGk=", "payloadType": "t", "signatures": [{"sig": "", "sig": "AAEC"}]}', id="dup-sig"
        ),
    ],
)
def test_from_json_rejects_malformed_documents(text: str) -> None:
    with pytest.raises(MalformedEnvelope):
        from_json(text)


@pytest.mark.parametrize("data", [b"\xff\xfe\x00garbage", b"\x80", b'{"payload": "\xff"}'])
def test_from_json_rejects_undecodable_bytes(data: bytes) -> None:
    with pytest.raises(MalformedEnvelope):
        from_json(data)


def test_from_json_rejects_what_is_not_text() -> None:
    with pytest.raises(MalformedEnvelope):
        from_json(123)  # type: ignore[arg-type]


def test_malformed_envelope_is_a_value_error() -> None:
    assert issubclass(MalformedEnvelope, ValueError)


def test_deeply_nested_json_is_malformed_not_a_crash() -> None:
    with pytest.raises(MalformedEnvelope):
        from_json("[" * 100_000 + "]" * 100_000)


# Digest -------------------------------------------------------------------------------------------


def test_digest_is_32_bytes_and_the_same_for_both_forms() -> None:
    env = signed(b"claims")

    assert len(digest(env)) == 32
    assert digest(from_json(to_json(env))) == digest(env)


def test_digest_does_not_depend_on_protobuf_serialisation() -> None:
    env = signed(b"claims")
    # The same envelope with an unknown field (number 15) appended, as a newer writer might send.
    extended = Envelope.FromString(env.SerializeToString() + b"\x78\x01")

    assert extended.SerializeToString() != env.SerializeToString()
    assert digest(extended) == digest(env)


def test_digest_covers_every_field() -> None:
    env = signed(b"claims")
    variants = []
    for change in (
        lambda e: setattr(e, "payload", b"claimz"),
        lambda e: setattr(e, "payload_type", "other"),
        lambda e: setattr(e.signatures[0], "keyid", "sk_other"),
        lambda e: setattr(e.signatures[0], "sig", e.signatures[0].sig[:-1] + b"\x00"),
        lambda e: e.signatures.add(keyid="k", sig=b""),
    ):
        variant = Envelope()
        variant.CopyFrom(env)
        change(variant)
        variants.append(digest(variant))

    assert len({digest(env), *variants}) == 6


@settings(max_examples=300)
@given(envelopes, envelopes)
def test_different_envelopes_have_different_digests(a: Envelope, b: Envelope) -> None:
    if a != b:
        assert digest(a) != digest(b)
    else:
        assert digest(a) == digest(b)


def test_digest_is_unambiguous_where_fields_meet() -> None:
    # Moving bytes across field boundaries changes the digest.
    a = Envelope(payload=b"a 1 b", payload_type="t", signatures=[Signature(keyid="k", sig=b"s")])
    b = Envelope(payload=b"a", payload_type="t", signatures=[Signature(keyid="k", sig=b"s")])
    c = Envelope(payload=b"a", payload_type="t", signatures=[Signature(keyid="", sig=b"k 1 s")])

    assert len({digest(a), digest(b), digest(c)}) == 3


def test_module_constants() -> None:
    assert envelope.GRANT_PAYLOAD_TYPE == "application/vnd.charter.grant.v1+protobuf"
    assert envelope.RECEIPT_PAYLOAD_TYPE == "application/vnd.charter.receipt.v1+protobuf"
    assert envelope.MAX_ENVELOPE_BYTES == 64 * 1024
