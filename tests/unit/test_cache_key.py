"""The offline cache's file key is HKDF-SHA256 (RFC 5869) of the API key, checked against
``cryptography``'s HKDF, an implementation the SDK does not use, and against RFC 5869's own
test case 3 (SHA-256, empty salt and info) through that same reference."""

from __future__ import annotations

from charter.offline import cache
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def _reference(secret: bytes, info: bytes, *, salt: bytes | None = cache._SALT) -> bytes:
    return HKDF(algorithm=SHA256(), length=32, salt=salt, info=info).derive(secret)


def test_the_reference_gives_rfc_5869_test_case_3() -> None:
    okm = HKDF(algorithm=SHA256(), length=42, salt=None, info=b"").derive(bytes([0x0B]) * 22)

    assert okm.hex() == ("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")


def test_the_file_key_and_fingerprint_are_hkdf_sha256_of_the_api_key() -> None:
    api_key = "key_0123456789abcdef0123456789abcdef.c2VjcmV0LXBhcnQtb2YtdGhlLWtleQ"

    key = cache.CacheKey.of_api_key(api_key)

    assert key.mac_key == _reference(api_key.encode(), cache._MAC_INFO)
    assert key.fingerprint == _reference(api_key.encode(), cache._FINGERPRINT_INFO)[:16].hex()


def test_keys_differing_only_in_the_secret_give_other_file_keys() -> None:
    one = cache.CacheKey.of_api_key("key_0123456789abcdef0123456789abcdef.first-secret")
    two = cache.CacheKey.of_api_key("key_0123456789abcdef0123456789abcdef.other-secret")

    assert one.mac_key != two.mac_key
    assert one.fingerprint != two.fingerprint
    assert len(one.mac_key) == 32
