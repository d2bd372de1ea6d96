"""Signing-key secrets on both backends: a new deployment makes one active key, private keys are
stored only encrypted under the key-encryption key (KEK), a restart with the same KEK keeps the key
and its grants, another KEK refuses to start, and no private key or KEK reaches the logs, the
RPC answers or ``repr(Settings)``.
"""

from __future__ import annotations

import base64
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import nacl.secret
import pytest
from charter.v1 import authorization_service_pb2 as az
from charter.v1 import authorization_service_pb2_grpc as az_grpc
from charter.v1 import catalog_service_pb2 as catalog_pb
from charter.v1 import grant_pb2, signing_key_pb2, terms_pb2
from charter.v1 import grant_service_pb2 as gs
from charter.v1 import grant_service_pb2_grpc as gs_grpc
from charter.v1 import key_service_pb2 as ks
from charter.v1 import key_service_pb2_grpc as ks_grpc
from charter_server.app import CharterServer, StartupError, build_server
from charter_server.config import Settings, SettingsError
from charter_server.storage import migrate
from charter_server.storage.database import Database
from google.protobuf import timestamp_pb2
from sqlalchemy import text

from ._support import bearer, catalog_stub, open_channel
from .conftest import CapturedLogs, ServerFactory

VALID = grant_pb2.GRANT_VERDICT_VALID
ACTIVE = signing_key_pb2.SigningKey.STATE_ACTIVE


def new_kek() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def stored_rows(srv: CharterServer) -> list[dict[str, Any]]:
    """Every row of the grant-signing keys in the signing_keys table, every column, as the database
    holds it (the transparency log's own key is checked with the log)."""
    with srv.db.engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM signing_keys WHERE purpose = 'grants'"))
        return [dict(row._mapping) for row in rows]


def secret_forms(secret: bytes) -> list[bytes]:
    """The ways a secret could show up in text or bytes: raw, hex, base64 (standard and URL-safe), repr."""
    return [
        secret,
        secret.hex().encode(),
        base64.b64encode(secret).rstrip(b"="),
        base64.urlsafe_b64encode(secret).rstrip(b"="),
        repr(secret).encode(),
    ]


def issue_a_grant(srv: CharterServer, admin: str, clock: Any) -> grant_pb2.Grant:
    """Make a rights holder, a licensee and an opted-in character through the API; grant it."""
    with open_channel(f"127.0.0.1:{srv.port}") as channel:
        catalog = catalog_stub(channel)
        holder = catalog.CreateRightsHolder(
            catalog_pb.CreateRightsHolderRequest(
                rights_holder={"display_name": "Key Studio", "contact_email": "rights@studio.example"}
            ),
            metadata=bearer(admin),
        ).rights_holder
        licensee = catalog.CreateLicensee(
            catalog_pb.CreateLicenseeRequest(
                licensee={"display_name": "Key App", "contact_email": "ops@app.example", "platform": "key-app"}
            ),
            metadata=bearer(admin),
        ).licensee
        character = catalog.CreateCharacter(
            catalog_pb.CreateCharacterRequest(
                character={"rights_holder_id": holder.id, "canonical_name": f"Keyed {secrets.token_hex(4)}"}
            ),
            metadata=bearer(admin),
        ).character
        catalog.OptIn(
            catalog_pb.OptInRequest(
                character_id=character.id,
                terms={
                    "permitted_use_types": [terms_pb2.USE_TYPE_IMAGE_GENERATION],
                    "max_content_rating": terms_pb2.CONTENT_RATING_TEEN,
                },
            ),
            metadata=bearer(admin),
        )
        expire = timestamp_pb2.Timestamp()
        expire.FromDatetime(clock.now() + timedelta(days=10))
        request = gs.IssueGrantRequest(character_id=character.id, licensee_id=licensee.id, expire_time=expire)
        return gs_grpc.GrantServiceStub(channel).IssueGrant(request, metadata=bearer(admin)).grant


def verdict(srv: CharterServer, admin: str, grant: grant_pb2.Grant) -> int:
    with open_channel(f"127.0.0.1:{srv.port}") as channel:
        request = az.VerifyGrantRequest(
            envelope=grant.envelope, licensee_id=grant.licensee_id, character_id=grant.character_id
        )
        return int(az_grpc.AuthorizationServiceStub(channel).VerifyGrant(request, metadata=bearer(admin)).verdict)


def list_keys(srv: CharterServer, admin: str) -> list[signing_key_pb2.SigningKey]:
    with open_channel(f"127.0.0.1:{srv.port}") as channel:
        return list(
            key
            for key in ks_grpc.KeyServiceStub(channel)
            .ListSigningKeys(ks.ListSigningKeysRequest(), metadata=bearer(admin))
            .keys
            if key.purpose == signing_key_pb2.SigningKey.PURPOSE_GRANTS
        )


def test_a_new_deployment_has_exactly_one_active_key(fresh_database_url: str, server_factory: ServerFactory) -> None:
    srv = server_factory(database_url=fresh_database_url, key_encryption_key=new_kek())
    admin = srv.services.access.create_bootstrap_admin("keys test").secret

    listed = list_keys(srv, admin)

    assert [k.state for k in listed] == [ACTIVE]
    assert listed[0].key_id == srv.services.keys.signer().key_id
    assert len(stored_rows(srv)) == 1


def test_the_table_holds_the_private_key_only_encrypted_under_the_kek(
    fresh_database_url: str, server_factory: ServerFactory
) -> None:
    kek = new_kek()
    srv = server_factory(database_url=fresh_database_url, key_encryption_key=kek)
    first = srv.services.keys.signer()
    srv.services.keys.rotate()
    second = srv.services.keys.signer()

    rows = {row["key_id"]: row for row in stored_rows(srv)}

    assert set(rows) == {first.key_id, second.key_id}
    box = nacl.secret.SecretBox(base64.b64decode(kek))
    for signer in (first, second):
        row = rows[signer.key_id]
        stored = b"|".join(
            value if isinstance(value, bytes) else str(value).encode() for value in row.values() if value is not None
        )
        assert not [form for form in secret_forms(signer.private_key) if form in stored]
        assert box.decrypt(bytes(row["encrypted_private_key"])) == signer.private_key


def test_a_restart_with_the_same_kek_keeps_the_key_and_its_grants(
    fresh_database_url: str, server_factory: ServerFactory, clock: Any
) -> None:
    kek = new_kek()
    first = server_factory(database_url=fresh_database_url, key_encryption_key=kek)
    admin = first.services.access.create_bootstrap_admin("restart test").secret
    grant = issue_a_grant(first, admin, clock)
    key_id, seed = first.services.keys.signer().key_id, first.services.keys.signer().private_key
    first.stop(grace=0)

    again = server_factory(database_url=fresh_database_url, key_encryption_key=kek)

    assert (again.services.keys.signer().key_id, again.services.keys.signer().private_key) == (key_id, seed)
    assert [k.key_id for k in list_keys(again, admin)] == [key_id]
    assert verdict(again, admin, grant) == VALID


def test_the_kek_may_come_from_a_file_or_the_environment(
    fresh_database_url: str, server_factory: ServerFactory, tmp_path: Path
) -> None:
    kek = new_kek()
    path = tmp_path / "kek"
    path.write_text(kek + "\n")
    from_file = server_factory(database_url=fresh_database_url, key_encryption_key_file=str(path))
    key_id = from_file.services.keys.signer().key_id
    from_file.stop(grace=0)
    settings = Settings.from_env(
        {"CHARTER_KEY_ENCRYPTION_KEY": kek, "CHARTER_ENVIRONMENT": "production"},
        database_url=fresh_database_url,
        listen="127.0.0.1:0",
        log_format="json",
    )

    from_env = build_server(settings)
    from_env.start()
    try:
        started_key = from_env.services.keys.signer().key_id
    finally:
        from_env.stop(grace=0)

    assert started_key == key_id


def test_another_kek_refuses_to_start_with_a_clear_message(
    fresh_database_url: str, server_factory: ServerFactory
) -> None:
    kek = new_kek()
    server_factory(database_url=fresh_database_url, key_encryption_key=kek).stop(grace=0)
    other = Settings(listen="127.0.0.1:0", database_url=fresh_database_url, key_encryption_key=new_kek())
    development = Settings(listen="127.0.0.1:0", database_url=fresh_database_url)

    with pytest.raises(StartupError) as wrong:
        build_server(other)
    with pytest.raises(StartupError) as missing:
        build_server(development)

    for raised in (wrong, missing):
        message = str(raised.value)
        assert "key-encryption key" in message
        assert kek not in message and other.key_encryption_key not in message


def test_production_without_a_kek_refuses_to_start(fresh_database_url: str) -> None:
    settings = Settings(listen="127.0.0.1:0", database_url=fresh_database_url, environment="production")

    with pytest.raises(SettingsError) as raised:
        build_server(settings)

    assert "key_encryption_key" in str(raised.value)


def test_no_private_key_or_kek_is_logged_or_answered(
    fresh_database_url: str, server_factory: ServerFactory, captured_logs: CapturedLogs, clock: Any
) -> None:
    kek = new_kek()
    srv = server_factory(database_url=fresh_database_url, key_encryption_key=kek)
    admin = srv.services.access.create_bootstrap_admin("secrets test").secret
    seeds = [srv.services.keys.signer().private_key]
    grant = issue_a_grant(srv, admin, clock)
    with open_channel(f"127.0.0.1:{srv.port}") as channel:
        keys_stub = ks_grpc.KeyServiceStub(channel)
        rotated = keys_stub.RotateSigningKey(ks.RotateSigningKeyRequest(), metadata=bearer(admin))
        seeds.append(srv.services.keys.signer().private_key)
        keys_stub.RotateSigningKey(ks.RotateSigningKeyRequest(), metadata=bearer(admin))
        revoked = keys_stub.RevokeSigningKey(
            ks.RevokeSigningKeyRequest(key_id=rotated.retired_key.key_id, reason="test"), metadata=bearer(admin)
        )
        listed = keys_stub.ListSigningKeys(ks.ListSigningKeysRequest(), metadata=bearer(admin))
        key_set = az_grpc.AuthorizationServiceStub(channel).GetKeySet(az.GetKeySetRequest(), metadata=bearer(admin))
    with pytest.raises(StartupError):
        build_server(Settings(listen="127.0.0.1:0", database_url=fresh_database_url, key_encryption_key=new_kek()))

    logged = captured_logs.text.encode()
    answered = b"".join(m.SerializeToString() for m in (grant, rotated, revoked, listed, key_set))
    raw_kek = base64.b64decode(kek)
    secrets_seen = [
        form
        for secret in (*seeds, raw_kek)
        for form in secret_forms(secret)
        if form in logged or form in answered or form in repr(srv.services.keys.signer()).encode()
    ]
    assert captured_logs.events("signing_key.rotated") and captured_logs.events("signing_key.revoked")
    assert captured_logs.events("grant.issued")
    assert secrets_seen == []
    assert kek.encode() not in logged


def test_a_development_server_without_a_kek_warns(
    fresh_database_url: str, server_factory: ServerFactory, captured_logs: CapturedLogs
) -> None:
    server_factory(database_url=fresh_database_url)

    assert captured_logs.events("signing_keys.development_kek")


def test_the_rpc_set_has_no_private_key_field() -> None:
    """The contract itself: no message a key RPC answers has a field for a private key."""
    names = {
        f.name
        for message in (signing_key_pb2.SigningKey, signing_key_pb2.KeySet, ks.RotateSigningKeyResponse)
        for f in message.DESCRIPTOR.fields
    }

    assert not [n for n in names if "private" in n or "secret" in n or "seed" in n]


def test_replicas_starting_together_make_one_key(fresh_database_url: str) -> None:
    """Several replicas starting at once on a new database agree on a single first key."""
    db = Database(fresh_database_url)
    migrate.upgrade(db.engine)
    db.dispose()
    settings = Settings(listen="127.0.0.1:0", database_url=fresh_database_url, key_encryption_key=new_kek())
    start = threading.Barrier(6)

    def replica(_: int) -> str:
        start.wait(timeout=10)
        built = build_server(settings)
        try:
            return built.services.keys.signer().key_id
        finally:
            built.db.dispose()

    with ThreadPoolExecutor(max_workers=6) as pool:
        signers = set(pool.map(replica, range(6)))

    check = Database(fresh_database_url)
    try:
        with check.engine.connect() as connection:
            rows = connection.execute(text("SELECT purpose, state FROM signing_keys ORDER BY purpose"))
            states = [(row[0], row[1]) for row in rows]
    finally:
        check.dispose()
    # One first key per purpose: the grants' and the transparency log's.
    assert states == [("grants", "active"), ("transparency_log", "active")]
    assert len(signers) == 1
