"""OfflineService servicer: licensee keys, grant bundles, quota leases and registry snapshots over
gRPC."""

from __future__ import annotations

import grpc
from charter.v1 import offline_pb2
from charter.v1 import offline_service_pb2 as osv
from charter.v1 import offline_service_pb2_grpc as osv_grpc
from google.protobuf import duration_pb2

from charter_server.api import convert
from charter_server.api.context import current_principal
from charter_server.domain.offline import LeaseState, LicenseeKeyRecord, LicenseeKeyState, QuotaLeaseRecord
from charter_server.services.grant_bundles import GrantBundleService
from charter_server.services.grants import GrantService
from charter_server.services.keys import KeyService
from charter_server.services.leases import LeaseService
from charter_server.services.licensee_keys import LicenseeKeyService
from charter_server.services.registry_snapshots import RegistrySnapshotService

_KEY_STATE = {
    LicenseeKeyState.ACTIVE: offline_pb2.LicenseeKey.STATE_ACTIVE,
    LicenseeKeyState.RETIRED: offline_pb2.LicenseeKey.STATE_RETIRED,
    LicenseeKeyState.REVOKED: offline_pb2.LicenseeKey.STATE_REVOKED,
}
_LEASE_STATE = {
    LeaseState.OPEN: offline_pb2.QuotaLease.STATE_OPEN,
    LeaseState.RETURNED: offline_pb2.QuotaLease.STATE_RETURNED,
    LeaseState.RECLAIMED: offline_pb2.QuotaLease.STATE_RECLAIMED,
}


def licensee_key(key: LicenseeKeyRecord) -> offline_pb2.LicenseeKey:
    """The protobuf form of a licensee key."""
    return offline_pb2.LicenseeKey(
        key_id=key.key_id,
        licensee_id=key.licensee_id,
        algorithm="ed25519",
        public_key=key.public_key,
        state=_KEY_STATE[key.state],
        display_name=key.display_name,
        activate_time=convert.timestamp(key.activate_time),
        retire_time=convert.timestamp(key.retire_time),
        revoke_time=convert.timestamp(key.revoke_time),
    )


def quota_lease(lease: QuotaLeaseRecord) -> offline_pb2.QuotaLease:
    """The protobuf form of a quota lease."""
    return offline_pb2.QuotaLease(
        lease_id=lease.lease_id,
        licensee_id=lease.licensee_id,
        character_id=lease.character_id,
        grant_id=lease.grant_id,
        uses=lease.uses,
        reported_uses=lease.reported,
        state=_LEASE_STATE[lease.state],
        create_time=convert.timestamp(lease.create_time),
        expire_time=convert.timestamp(lease.expire_time),
        report_deadline=convert.timestamp(lease.report_deadline),
    )


def _seconds(message: object, field: str) -> float | None:
    if not message.HasField(field):  # type: ignore[attr-defined]
        return None
    value: duration_pb2.Duration = getattr(message, field)
    return value.seconds + value.nanos / 1e9


class OfflineServicer(osv_grpc.OfflineServiceServicer):
    """Licensee keys, grant bundles and quota leases."""

    def __init__(
        self,
        licensee_keys: LicenseeKeyService,
        bundles: GrantBundleService,
        leases: LeaseService,
        grants: GrantService,
        keys: KeyService,
        registry: RegistrySnapshotService,
    ) -> None:
        self._licensee_keys = licensee_keys
        self._bundles = bundles
        self._leases = leases
        self._grants = grants
        self._keys = keys
        self._registry = registry

    def RegisterLicenseeKey(
        self, request: osv.RegisterLicenseeKeyRequest, context: grpc.ServicerContext
    ) -> osv.RegisterLicenseeKeyResponse:
        key, retired = self._licensee_keys.register(
            current_principal(), request.licensee_id, request.public_key, request.display_name, request.replaces_key_id
        )
        return osv.RegisterLicenseeKeyResponse(
            key=licensee_key(key), retired_key=licensee_key(retired) if retired is not None else None
        )

    def ListLicenseeKeys(
        self, request: osv.ListLicenseeKeysRequest, context: grpc.ServicerContext
    ) -> osv.ListLicenseeKeysResponse:
        keys = self._licensee_keys.list(current_principal(), request.licensee_id)
        return osv.ListLicenseeKeysResponse(keys=[licensee_key(k) for k in keys])

    def RevokeLicenseeKey(
        self, request: osv.RevokeLicenseeKeyRequest, context: grpc.ServicerContext
    ) -> osv.RevokeLicenseeKeyResponse:
        key = self._licensee_keys.revoke(current_principal(), request.key_id, request.reason)
        return osv.RevokeLicenseeKeyResponse(key=licensee_key(key))

    def GetGrantBundle(
        self, request: osv.GetGrantBundleRequest, context: grpc.ServicerContext
    ) -> osv.GetGrantBundleResponse:
        bundle = self._bundles.bundle(current_principal())
        names = self._grants.names_of(bundle.grants)
        return osv.GetGrantBundleResponse(
            grants=[convert.grant(g, names) for g in bundle.grants],
            key_set=convert.key_set(self._keys.key_ring(), self._keys.all_keys()),
            licensee_keys=[licensee_key(k) for k in bundle.licensee_keys],
            revocation_sequence=bundle.revocation_sequence,
        )

    def LeaseQuota(self, request: osv.LeaseQuotaRequest, context: grpc.ServicerContext) -> osv.LeaseQuotaResponse:
        lease = self._leases.lease(
            current_principal(), request.character_id, request.grant_id, request.uses, _seconds(request, "ttl")
        )
        return osv.LeaseQuotaResponse(lease=quota_lease(lease))

    def RenewQuotaLease(
        self, request: osv.RenewQuotaLeaseRequest, context: grpc.ServicerContext
    ) -> osv.RenewQuotaLeaseResponse:
        lease = self._leases.renew(current_principal(), request.lease_id, request.add_uses, _seconds(request, "ttl"))
        return osv.RenewQuotaLeaseResponse(lease=quota_lease(lease))

    def ReturnQuotaLease(
        self, request: osv.ReturnQuotaLeaseRequest, context: grpc.ServicerContext
    ) -> osv.ReturnQuotaLeaseResponse:
        returned = self._leases.give_back(current_principal(), request.lease_id, request.spent_uses)
        return osv.ReturnQuotaLeaseResponse(lease=quota_lease(returned.lease), released_uses=returned.released)

    def GetRegistrySnapshot(
        self, request: osv.GetRegistrySnapshotRequest, context: grpc.ServicerContext
    ) -> osv.GetRegistrySnapshotResponse:
        page, token = self._registry.page(
            current_principal(), request.since_version, request.page_size, request.page_token
        )
        return osv.GetRegistrySnapshotResponse(page=page, next_page_token=token)
