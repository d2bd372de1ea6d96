"""Fixtures shared by the unit tests of the grant verifier and its prepared forms."""

from __future__ import annotations

from typing import Any

import nacl.signing
import pytest
from charter import _grant_entry
from charter.v1 import grant_pb2 as g


@pytest.fixture
def signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every Ed25519 verification libsodium is asked for, recorded through nacl's VerifyKey."""
    calls: list[bytes] = []
    original = nacl.signing.VerifyKey.verify

    def spy(self: nacl.signing.VerifyKey, smessage: bytes, signature: bytes | None = None, **kw: Any) -> bytes:
        calls.append(smessage)
        return original(self, smessage, signature, **kw)

    monkeypatch.setattr(nacl.signing.VerifyKey, "verify", spy)
    return calls


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every payload parsed as GrantClaims where the verifier and `PreparedGrant` parse."""
    calls: list[bytes] = []

    class Spy:
        @staticmethod
        def FromString(data: bytes) -> g.GrantClaims:
            calls.append(data)
            return g.GrantClaims.FromString(data)

    monkeypatch.setattr(_grant_entry, "GrantClaims", Spy)  # where the verifier parses
    return calls
