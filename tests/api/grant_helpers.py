"""Helpers of the grant, signing-key and verification API tests: the generated stubs, a fresh
world (a rights holder with an opted-in character, a licensee), issuing, verifying and the
revocation log as the server stored it.

Every helper builds its own rights holders, characters and licensees, so the tests never depend
on each other's rows; times come from the session clock so a moved clock moves them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import grpc
from charter.v1 import (
    access_service_pb2,
    access_service_pb2_grpc,
    api_key_pb2,
    authorization_service_pb2,
    authorization_service_pb2_grpc,
    catalog_service_pb2,
    catalog_service_pb2_grpc,
    envelope_pb2,
    grant_pb2,
    grant_service_pb2,
    grant_service_pb2_grpc,
    key_service_pb2,
    key_service_pb2_grpc,
    signing_key_pb2,
    terms_pb2,
)
from charter_server.domain.models import RevocationEvent, RevocationKind
from google.protobuf import timestamp_pb2

from .character_helpers import Holder, create, new_holder, opt_in
from .helpers import auth, unique

Grant = grant_pb2.Grant
Verdict = grant_pb2.GrantVerdict
SigningKey = signing_key_pb2.SigningKey

ACTIVE = Grant.STATE_ACTIVE
SUSPENDED = Grant.STATE_SUSPENDED
REVOKED = Grant.STATE_REVOKED
KEY_ACTIVE = SigningKey.STATE_ACTIVE
KEY_RETIRED = SigningKey.STATE_RETIRED
KEY_REVOKED = SigningKey.STATE_REVOKED


@dataclass(frozen=True)
class Stubs:
    """The generated stubs of every service, over one channel."""

    catalog: catalog_service_pb2_grpc.CatalogServiceStub
    access: access_service_pb2_grpc.AccessServiceStub
    grants: grant_service_pb2_grpc.GrantServiceStub
    keys: key_service_pb2_grpc.KeyServiceStub
    authz: authorization_service_pb2_grpc.AuthorizationServiceStub


def stubs(channel: grpc.Channel) -> Stubs:
    return Stubs(
        catalog=catalog_service_pb2_grpc.CatalogServiceStub(channel),
        access=access_service_pb2_grpc.AccessServiceStub(channel),
        grants=grant_service_pb2_grpc.GrantServiceStub(channel),
        keys=key_service_pb2_grpc.KeyServiceStub(channel),
        authz=authorization_service_pb2_grpc.AuthorizationServiceStub(channel),
    )


def stamp(value: datetime) -> timestamp_pb2.Timestamp:
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(value)
    return result


def new_licensee(api: Stubs, admin: str, platform: str = "test-app") -> str:
    """A new active licensee."""
    request = catalog_service_pb2.CreateLicenseeRequest(
        licensee={"display_name": f"App {unique()}", "contact_email": "ops@app.example", "platform": platform}
    )
    return str(api.catalog.CreateLicensee(request, metadata=auth(admin)).licensee.id)


def generator_key(api: Stubs, admin: str, licensee_id: str) -> str:
    """The secret of a new generator key bound to ``licensee_id``."""
    request = access_service_pb2.CreateApiKeyRequest(
        display_name=f"gen {unique()}", role=api_key_pb2.ROLE_GENERATOR, licensee_id=licensee_id
    )
    return str(api.access.CreateApiKey(request, metadata=auth(admin)).secret)


def opted_in_character(api: Stubs, holder: Holder, terms: terms_pb2.Terms | None = None) -> str:
    """A new character of ``holder``, opted in under ``terms`` (simple valid terms by default)."""
    character = create(api.catalog, holder.secret, holder.id)
    opt_in(api.catalog, holder.secret, character.id, terms)
    return str(character.id)


@dataclass(frozen=True)
class World:
    """A fresh rights holder (with its key), one of its characters opted in, and a fresh licensee."""

    holder: Holder
    character_id: str
    licensee_id: str


def new_world(api: Stubs, admin: str, terms: terms_pb2.Terms | None = None) -> World:
    holder = new_holder(api.catalog, api.access, admin)
    return World(holder, opted_in_character(api, holder, terms), new_licensee(api, admin))


def issue_request(
    clock: Any,
    character_id: str,
    licensee_id: str,
    *,
    lifetime: timedelta = timedelta(days=30),
    not_before: datetime | None = None,
    narrowed: terms_pb2.Terms | None = None,
    request_id: str = "",
    max_uses: int | None = None,
) -> grant_service_pb2.IssueGrantRequest:
    """An IssueGrant request valid for ``lifetime`` from ``not_before`` (or from now)."""
    start = not_before or clock.now()
    return grant_service_pb2.IssueGrantRequest(
        character_id=character_id,
        licensee_id=licensee_id,
        narrowed_terms=narrowed,
        not_before=stamp(not_before) if not_before is not None else None,
        expire_time=stamp(start + lifetime),
        request_id=request_id,
        max_uses=max_uses,
    )


def issue(api: Stubs, admin: str, clock: Any, character_id: str, licensee_id: str, **options: Any) -> Grant:
    """Issue a grant as staff."""
    request = issue_request(clock, character_id, licensee_id, **options)
    return api.grants.IssueGrant(request, metadata=auth(admin)).grant


def verify(
    api: Stubs,
    secret: str,
    presented: envelope_pb2.Envelope | str,
    licensee_id: str,
    character_id: str,
) -> authorization_service_pb2.VerifyGrantResponse:
    """VerifyGrant with the protobuf form (an Envelope) or the DSSE JSON form (a str)."""
    request = authorization_service_pb2.VerifyGrantRequest(licensee_id=licensee_id, character_id=character_id)
    if isinstance(presented, str):
        request.envelope_json = presented
    else:
        request.envelope.CopyFrom(presented)
    return api.authz.VerifyGrant(request, metadata=auth(secret))


def verdict(api: Stubs, secret: str, grant: Grant, presented: envelope_pb2.Envelope | str | None = None) -> int:
    """The verdict on ``grant`` (or on ``presented`` instead of its envelope) for its own licensee and character."""
    envelope = grant.envelope if presented is None else presented
    return int(verify(api, secret, envelope, grant.licensee_id, grant.character_id).verdict)


def claims_of(grant: Grant) -> grant_pb2.GrantClaims:
    """The claims signed into a grant's envelope, parsed from the exact payload bytes."""
    return grant_pb2.GrantClaims.FromString(grant.envelope.payload)


def get_grant(api: Stubs, secret: str, grant_id: str) -> Grant:
    return api.grants.GetGrant(grant_service_pb2.GetGrantRequest(id=grant_id), metadata=auth(secret)).grant


def key_set(api: Stubs, secret: str) -> signing_key_pb2.KeySet:
    return api.authz.GetKeySet(authorization_service_pb2.GetKeySetRequest(), metadata=auth(secret)).key_set


def signing_keys(api: Stubs, admin: str) -> list[SigningKey]:
    """Every signing key, newest first."""
    return list(api.keys.ListSigningKeys(key_service_pb2.ListSigningKeysRequest(), metadata=auth(admin)).keys)


def active_key(api: Stubs, admin: str) -> SigningKey:
    # The active key of grants and receipts (the transparency log has an active key of its own).
    (found,) = [
        k
        for k in signing_keys(api, admin)
        if k.state == KEY_ACTIVE and k.purpose != SigningKey.PURPOSE_TRANSPARENCY_LOG
    ]
    return found


def rotate(api: Stubs, admin: str) -> key_service_pb2.RotateSigningKeyResponse:
    return api.keys.RotateSigningKey(key_service_pb2.RotateSigningKeyRequest(), metadata=auth(admin))


def revocation_log(server: Any, after: int) -> list[RevocationEvent]:
    """The revocation log entries after sequence ``after``, as stored, without the registry's
    (``REGISTRY_CHANGED``: a character's screening entry changed, for registry snapshots)."""
    with server.db.uow() as uow:
        events: list[RevocationEvent] = uow.revocations.since(after, 10_000)
    return [e for e in events if e.kind is not RevocationKind.REGISTRY_CHANGED]


def revocation_head(server: Any) -> int:
    """The newest sequence number of the revocation log."""
    with server.db.uow() as uow:
        return int(uow.revocations.head())
