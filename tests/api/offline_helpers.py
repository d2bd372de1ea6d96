"""A licensee set up for offline-first generation: its generator and licensee-admin keys, a
registered decision-record key, and helpers for leases and decision records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import grpc
from charter.decision_records import DecisionRecordSigner, generate_key
from charter.v1 import (
    access_service_pb2,
    api_key_pb2,
    decision_pb2,
    offline_service_pb2_grpc,
    terms_pb2,
    usage_pb2,
    usage_service_pb2_grpc,
)
from charter.v1 import offline_service_pb2 as osv
from charter.v1 import usage_service_pb2 as us
from charter.v1.envelope_pb2 import Envelope
from google.protobuf import duration_pb2

from .character_helpers import Holder, new_holder, terms
from .grant_helpers import Grant, Stubs, generator_key, issue, new_licensee, opted_in_character, stamp
from .helpers import auth, unique

OfflineStub = offline_service_pb2_grpc.OfflineServiceStub
UsageStub = usage_service_pb2_grpc.UsageServiceStub
CONTEXT = decision_pb2.UseContext(
    use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION, content_rating=terms_pb2.CONTENT_RATING_ALL_AGES
)


def licensee_admin_key(api: Stubs, admin: str, licensee_id: str) -> str:
    """The secret of a new licensee-admin key bound to ``licensee_id``."""
    request = access_service_pb2.CreateApiKeyRequest(
        display_name=f"ladmin {unique()}", role=api_key_pb2.ROLE_LICENSEE_ADMIN, licensee_id=licensee_id
    )
    return str(api.access.CreateApiKey(request, metadata=auth(admin)).secret)


@dataclass
class Edge:
    """A fresh rights holder and licensee, keys for the licensee, and a registered record key."""

    holder: Holder
    licensee_id: str
    generator: str
    licensee_admin: str
    signer: DecisionRecordSigner
    public_key: bytes


def new_edge(api: Stubs, offline: OfflineStub, admin: str) -> Edge:
    holder = new_holder(api.catalog, api.access, admin)
    licensee_id = new_licensee(api, admin)
    ladmin = licensee_admin_key(api, admin, licensee_id)
    seed, public = generate_key()
    key = offline.RegisterLicenseeKey(
        osv.RegisterLicenseeKeyRequest(public_key=public, display_name="render farm"), metadata=auth(ladmin)
    ).key
    signer = DecisionRecordSigner(key_id=key.key_id, private_key=seed, licensee_id=licensee_id)
    return Edge(holder, licensee_id, generator_key(api, admin, licensee_id), ladmin, signer, public)


def granted(
    api: Stubs, admin: str, clock: Any, edge: Edge, given: terms_pb2.Terms | None = None, **options: Any
) -> Grant:
    """A new character of the edge's rights holder opted in under ``given``, granted to its licensee."""
    character_id = opted_in_character(api, edge.holder, given or terms())
    return issue(api, admin, clock, character_id, edge.licensee_id, **options)


def ttl(seconds: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=seconds)


def lease(offline: OfflineStub, edge: Edge, grant: Grant, uses: int, seconds: int = 600) -> Any:
    request = osv.LeaseQuotaRequest(character_id=grant.character_id, grant_id=grant.id, uses=uses, ttl=ttl(seconds))
    return offline.LeaseQuota(request, metadata=auth(edge.generator)).lease


def signed(edge: Edge, grant: Grant, when: datetime, *, lease_id: str = "", allowed: bool = True) -> Envelope:
    """A decision record allowing the grant's character at ``when``."""
    return edge.signer.sign(
        character_id=grant.character_id,
        grant_id=grant.id,
        terms_version=grant.terms_version,
        allowed=allowed,
        context=CONTEXT,
        lease_id=lease_id,
        decide_time_ns=int(when.timestamp() * 1e9),
    )


def offline_record(envelope: Envelope, character_id: str, when: datetime, *, key: str = "") -> usage_pb2.UsageRecord:
    return usage_pb2.UsageRecord(
        idempotency_key=key or unique("off-"),
        decision_record=envelope,
        character_id=character_id,
        uses=1,
        happen_time=stamp(when),
    )


def report(usage: UsageStub, secret: str, *records: usage_pb2.UsageRecord) -> list[usage_pb2.UsageResult]:
    return list(usage.ReportUsage(us.ReportUsageRequest(records=list(records)), metadata=auth(secret)).results)


def reasons(results: list[usage_pb2.UsageResult]) -> list[str]:
    """Each result's error reason, or ``ACCEPTED`` (``DUPLICATE`` for a repeat)."""
    return [
        ("DUPLICATE" if r.duplicate else "ACCEPTED") if r.status == usage_pb2.USAGE_STATUS_ACCEPTED else r.error_reason
        for r in results
    ]


def call_error(call: Any, request: Any, secret: str) -> grpc.RpcError:
    try:
        call(request, metadata=auth(secret))
    except grpc.RpcError as error:
        return error
    raise AssertionError("the call succeeded")
