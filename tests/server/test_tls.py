"""TLS and mutual TLS with certificates made at test time: a CA, a server certificate for
127.0.0.1 and localhost, a client certificate, and a second CA nobody trusts."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest
from charter.v1 import access_service_pb2 as access_pb
from charter.v1 import api_key_pb2
from charter_server.app import CharterServer
from cryptography.x509.oid import ExtendedKeyUsageOID

from ._pki import LOOPBACK_SANS, Pem, issue
from ._support import access_stub, bearer, open_channel, reason, run_cli
from .conftest import ServerFactory


@dataclass(frozen=True)
class Pki:
    """Everything the TLS tests need."""

    ca: Pem
    server: Pem
    client: Pem
    rogue_ca: Pem
    rogue_client: Pem


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, ca_cert, ca_key = issue(directory, "ca", "Charter Test CA")
    server, _, _ = issue(
        directory,
        "server",
        "charter.test",
        issuer=(ca_cert, ca_key),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        sans=LOOPBACK_SANS,
    )
    client, _, _ = issue(
        directory, "client", "render-app", issuer=(ca_cert, ca_key), usage=ExtendedKeyUsageOID.CLIENT_AUTH
    )
    rogue_ca, rogue_cert, rogue_key = issue(directory, "rogue-ca", "Someone Else's CA")
    rogue_client, _, _ = issue(
        directory, "rogue-client", "render-app", issuer=(rogue_cert, rogue_key), usage=ExtendedKeyUsageOID.CLIENT_AUTH
    )
    return Pki(ca, server, client, rogue_ca, rogue_client)


def _tls_server(server_factory: ServerFactory, sqlite_url: str, pki: Pki, *, mutual: bool) -> tuple[CharterServer, str]:
    srv = server_factory(
        database_url=sqlite_url,
        tls_cert_file=pki.server.cert_file,
        tls_key_file=pki.server.key_file,
        tls_client_ca_file=pki.ca.cert_file if mutual else "",
    )
    return srv, srv.services.access.create_bootstrap_admin("tls test").secret


def _caller(target: str, credentials: grpc.ChannelCredentials | None, secret: str | None) -> grpc.StatusCode:
    """The status of a GetCaller call over the given transport."""
    metadata = bearer(secret) if secret else None
    with open_channel(target, credentials) as channel:
        try:
            reply = access_stub(channel).GetCaller(access_pb.GetCallerRequest(), metadata=metadata, timeout=5)
        except grpc.RpcError as error:
            return error.code()
    assert reply.api_key.role == api_key_pb2.ROLE_ADMIN
    return grpc.StatusCode.OK


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_tls_server_serves_a_secure_channel(
    server_factory: ServerFactory, sqlite_url: str, pki: Pki, host: str
) -> None:
    srv, admin = _tls_server(server_factory, sqlite_url, pki, mutual=False)
    target = f"{host}:{srv.port}"

    trusted = _caller(target, grpc.ssl_channel_credentials(root_certificates=pki.ca.cert), admin)
    untrusted = _caller(target, grpc.ssl_channel_credentials(root_certificates=pki.rogue_ca.cert), admin)
    plaintext = _caller(f"127.0.0.1:{srv.port}", None, admin)

    assert trusted == grpc.StatusCode.OK
    assert untrusted == grpc.StatusCode.UNAVAILABLE
    assert plaintext == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_needs_a_client_certificate_signed_by_the_ca(
    server_factory: ServerFactory, sqlite_url: str, pki: Pki
) -> None:
    srv, admin = _tls_server(server_factory, sqlite_url, pki, mutual=True)
    target = f"127.0.0.1:{srv.port}"

    def creds(client: Pem | None) -> grpc.ChannelCredentials:
        if client is None:
            return grpc.ssl_channel_credentials(root_certificates=pki.ca.cert)
        return grpc.ssl_channel_credentials(
            root_certificates=pki.ca.cert, private_key=client.key, certificate_chain=client.cert
        )

    without_certificate = _caller(target, creds(None), admin)
    foreign_certificate = _caller(target, creds(pki.rogue_client), admin)
    with_certificate = _caller(target, creds(pki.client), admin)
    with open_channel(target, creds(pki.client)) as channel, pytest.raises(grpc.RpcError) as no_key:
        access_stub(channel).GetCaller(access_pb.GetCallerRequest(), timeout=5)

    assert without_certificate == grpc.StatusCode.UNAVAILABLE
    assert foreign_certificate == grpc.StatusCode.UNAVAILABLE
    assert with_certificate == grpc.StatusCode.OK
    assert no_key.value.code() == grpc.StatusCode.UNAUTHENTICATED  # the API key is still required
    assert reason(no_key.value) == "CREDENTIALS_MISSING"


def test_the_health_check_presents_a_client_certificate_under_mutual_tls(
    server_factory: ServerFactory, sqlite_url: str, pki: Pki, clean_env: pytest.MonkeyPatch
) -> None:
    """Seen: ``charter-server healthcheck`` could not present a client certificate, so the Docker
    health check failed under mutual TLS."""
    srv, _ = _tls_server(server_factory, sqlite_url, pki, mutual=True)
    common = ["--tls-cert-file", pki.server.cert_file, "--tls-key-file", pki.server.key_file]
    target = ["--target", f"127.0.0.1:{srv.port}", "--tls-ca-file", pki.ca.cert_file]

    without = run_cli([*common, "healthcheck", *target, "--timeout", "2"])
    with_flags = run_cli(
        [
            *common,
            "healthcheck",
            *target,
            "--tls-client-cert-file",
            pki.client.cert_file,
            "--tls-client-key-file",
            pki.client.key_file,
        ]
    )
    half = run_cli([*common, "healthcheck", *target, "--tls-client-cert-file", pki.client.cert_file])
    clean_env.setenv("CHARTER_HEALTHCHECK_TLS_CLIENT_CERT_FILE", pki.client.cert_file)
    clean_env.setenv("CHARTER_HEALTHCHECK_TLS_CLIENT_KEY_FILE", pki.client.key_file)
    clean_env.setenv("CHARTER_HEALTHCHECK_TLS_CA_FILE", pki.ca.cert_file)
    clean_env.setenv("CHARTER_HEALTHCHECK_TLS_SERVER_NAME", "localhost")
    from_env = run_cli([*common, "--listen", f"127.0.0.1:{srv.port}", "healthcheck"])

    assert without.exit_code == 1
    assert with_flags.exit_code == 0, with_flags.output
    assert with_flags.stdout.strip() == "SERVING"
    assert from_env.exit_code == 0, from_env.output
    assert half.exit_code == 2
