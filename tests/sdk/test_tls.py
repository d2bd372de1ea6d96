"""TLS and mutual TLS against the real server: the client verifies the server with the given roots and
presents its certificate."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import charter
import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ._live import Live, serve


@dataclasses.dataclass(frozen=True)
class _Pki:
    ca: bytes
    server_cert: bytes
    server_key: bytes
    client_cert: bytes
    client_key: bytes
    other_ca: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    server: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki() -> _Pki:
    ca_key, other_key, server_key, client_key = _key(), _key(), _key(), _key()
    ca = _certificate("test ca", ca_key, None)
    other_ca = _certificate("other ca", other_key, None)
    server_cert = _certificate("localhost", server_key, (ca, ca_key), server=True)
    client_cert = _certificate("client", client_key, (ca, ca_key))

    def pem(cert: x509.Certificate) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    return _Pki(
        ca=pem(ca),
        server_cert=pem(server_cert),
        server_key=_pem_key(server_key),
        client_cert=pem(client_cert),
        client_key=_pem_key(client_key),
        other_ca=pem(other_ca),
    )


@pytest.fixture(scope="module")
def mtls_server(pki: _Pki, tmp_path_factory: pytest.TempPathFactory, clock: Any) -> Iterator[Live]:
    """A real server that speaks TLS with the PKI's server certificate and requires a client certificate."""
    folder: Path = tmp_path_factory.mktemp("tls")
    files = {"cert.pem": pki.server_cert, "key.pem": pki.server_key, "client-ca.pem": pki.ca}
    for name, content in files.items():
        (folder / name).write_bytes(content)
    yield from serve(
        f"sqlite:///{folder / 'charter.db'}",
        clock,
        tls_cert_file=str(folder / "cert.pem"),
        tls_key_file=str(folder / "key.pem"),
        tls_client_ca_file=str(folder / "client-ca.pem"),
    )


def test_mutual_tls_with_the_right_roots_and_client_certificate(pki: _Pki, mtls_server: Live) -> None:
    with charter.Client(
        mtls_server.target,
        api_key=mtls_server.admin,
        root_certificates=pki.ca,
        client_certificate=pki.client_cert,
        client_private_key=pki.client_key,
    ) as client:
        caller = client.get_caller()

    assert caller.id == mtls_server.admin_key_id


def test_async_client_uses_mutual_tls_too(pki: _Pki, mtls_server: Live) -> None:
    async def main() -> str:
        async with charter.AsyncClient(
            mtls_server.target,
            api_key=mtls_server.admin,
            root_certificates=pki.ca,
            client_certificate=pki.client_cert,
            client_private_key=pki.client_key,
        ) as client:
            return (await client.get_caller()).id

    assert asyncio.run(main()) == mtls_server.admin_key_id


def test_without_a_client_certificate_the_handshake_fails(pki: _Pki, mtls_server: Live) -> None:
    with (
        charter.Client(
            mtls_server.target, api_key=mtls_server.admin, root_certificates=pki.ca, retry=None, timeout=2.0
        ) as client,
        pytest.raises(charter.UnavailableError) as exc,
    ):
        client.get_caller()

    assert exc.value.reason is None  # the server never answered: every answer of its carries a reason


def test_a_server_signed_by_another_ca_is_rejected(pki: _Pki, mtls_server: Live) -> None:
    with (
        charter.Client(
            mtls_server.target,
            api_key=mtls_server.admin,
            root_certificates=pki.other_ca,
            client_certificate=pki.client_cert,
            client_private_key=pki.client_key,
            retry=None,
            timeout=2.0,
        ) as client,
        pytest.raises(charter.UnavailableError) as exc,
    ):
        client.get_caller()

    assert exc.value.code is grpc.StatusCode.UNAVAILABLE
    assert exc.value.reason is None
