# Generated from charter/_async/offline.py by client_sdk/generate_sync.py; do not edit.
"""What an offline-first backend needs besides Authorize: the licensee's own keys for decision
records, its grant bundle, and quota leases (OfflineService)."""

from __future__ import annotations

from google.protobuf import duration_pb2

from charter._sync._transport import Transport
from charter.v1 import offline_pb2, offline_service_pb2


def _ttl(seconds: float) -> duration_pb2.Duration:
    whole = int(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))


class OfflineCalls(Transport):
    """Licensee keys, grant bundles and quota leases."""

    def register_licensee_key(
        self,
        public_key: bytes,
        *,
        display_name: str,
        licensee_id: str = "",
        replaces_key_id: str = "",
        timeout: float | None = None,
    ) -> offline_service_pb2.RegisterLicenseeKeyResponse:
        """Registers an Ed25519 public key that signs the licensee's decision records.

        Make the key pair with `charter.decision_records.generate_key`; only the public half is
        sent. Allowed roles: admin (naming `licensee_id`), licensee admin (its own licensee).

        Args:
            public_key: The 32-byte raw Ed25519 public key.
            display_name: Where the key is used, for people; at most 200 characters.
            licensee_id: The licensee; required for admin keys, optional for a licensee's own.
            replaces_key_id: A key of the licensee to retire (rotation); it keeps verifying the
                records it signed before.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The response: the new `key`, and the `retired_key` when one was replaced.

        Raises:
            InvalidArgumentError: If a field is malformed (the violation names it).
            AlreadyExistsError: If the public key is registered already (`LICENSEE_KEY_EXISTS`).
            NotFoundError: If the licensee or the replaced key does not exist.
            PermissionDeniedError: If a licensee-admin key names another licensee.
            CharterError: For any other failure.
        """
        request = offline_service_pb2.RegisterLicenseeKeyRequest(
            licensee_id=licensee_id, public_key=public_key, display_name=display_name, replaces_key_id=replaces_key_id
        )
        response: offline_service_pb2.RegisterLicenseeKeyResponse = self._unary(
            self._offline.RegisterLicenseeKey, request, timeout
        )
        return response

    def list_licensee_keys(
        self, *, licensee_id: str = "", timeout: float | None = None
    ) -> list[offline_pb2.LicenseeKey]:
        """Returns a licensee's keys, revoked ones included, newest first.

        Allowed roles: admin and auditor (naming `licensee_id`), licensee admin and generator
        (their own licensee).

        Args:
            licensee_id: The licensee; required for staff keys.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The keys.

        Raises:
            CharterError: If the call fails.
        """
        response: offline_service_pb2.ListLicenseeKeysResponse = self._unary(
            self._offline.ListLicenseeKeys,
            offline_service_pb2.ListLicenseeKeysRequest(licensee_id=licensee_id),
            timeout,
        )
        return list(response.keys)

    def revoke_licensee_key(self, key_id: str, *, reason: str, timeout: float | None = None) -> offline_pb2.LicenseeKey:
        """Revokes a licensee key: every decision record it signed is refused from now on.

        Allowed roles: admin, licensee admin (its own licensee's keys).

        Args:
            key_id: The key's id (`lk_...`).
            reason: Why, for the audit log; required, at most 500 characters.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The revoked key.

        Raises:
            NotFoundError: If there is no such key of the caller's licensee (`LICENSEE_KEY_NOT_FOUND`).
            FailedPreconditionError: If it is revoked already (`LICENSEE_KEY_ALREADY_REVOKED`).
            CharterError: For any other failure.
        """
        response: offline_service_pb2.RevokeLicenseeKeyResponse = self._unary(
            self._offline.RevokeLicenseeKey,
            offline_service_pb2.RevokeLicenseeKeyRequest(key_id=key_id, reason=reason),
            timeout,
        )
        return response.key

    def get_grant_bundle(self, *, timeout: float | None = None) -> offline_service_pb2.GetGrantBundleResponse:
        """Returns the caller's licensee's live grants with their envelopes, Charter's key set,
        the licensee's keys and the revocation position they are current at. Allowed roles:
        generator.

        Args:
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The bundle.

        Raises:
            CharterError: If the call fails.
        """
        response: offline_service_pb2.GetGrantBundleResponse = self._unary(
            self._offline.GetGrantBundle, offline_service_pb2.GetGrantBundleRequest(), timeout
        )
        return response

    def get_registry_snapshot(
        self, *, since_version: int = 0, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> offline_service_pb2.GetRegistrySnapshotResponse:
        """Returns one signed page of the screening registry, whole or changed since a version.

        The page is a DSSE envelope whose payload is a ``charter.v1.RegistrySnapshotClaims``;
        verify it (`charter.offline.snapshot`) before using it. Allowed roles: generator, admin,
        auditor.

        Args:
            since_version: The registry version held (a snapshot's ``version``) for a delta; 0
                for the whole registry.
            page_size: The most characters per page (1 to 2,000; 0 for 1,000).
            page_token: The previous page's ``next_page_token``; empty for the first page.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The page and the token of the next one (empty after the last).

        Raises:
            InvalidArgumentError: If ``since_version`` is negative or beyond the log, or the
                token is not one this call returned.
            CharterError: For any other failure.
        """
        request = offline_service_pb2.GetRegistrySnapshotRequest(
            since_version=since_version, page_size=page_size, page_token=page_token
        )
        response: offline_service_pb2.GetRegistrySnapshotResponse = self._unary(
            self._offline.GetRegistrySnapshot, request, timeout
        )
        return response

    def lease_quota(
        self, character_id: str, grant_id: str, *, uses: int, ttl: float, timeout: float | None = None
    ) -> offline_pb2.QuotaLease:
        """Leases a block of uses of a grant with a quota or a cap, to spend offline.

        The uses are counted at once against every quota and the cap; what is not reported with
        decision records by the lease's `report_deadline` goes back. Allowed roles: generator.

        Args:
            character_id: The character.
            grant_id: The grant (the caller's licensee's, for the character, with a quota or cap).
            uses: How many uses, 1 to 10,000.
            ttl: How long they may be spent, in seconds (1 to 86,400); shortened to the end of
                the UTC day or month whose quota counts them.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The lease.

        Raises:
            ResourceExhaustedError: If fewer uses are left (`LEASE_REFUSED`, cause `QUOTA`).
            FailedPreconditionError: If the grant is not live (`LEASE_REFUSED`).
            NotFoundError: If the grant is not the caller's licensee's (`GRANT_NOT_FOUND`).
            CharterError: For any other failure.
        """
        request = offline_service_pb2.LeaseQuotaRequest(
            character_id=character_id, grant_id=grant_id, uses=uses, ttl=_ttl(ttl)
        )
        response: offline_service_pb2.LeaseQuotaResponse = self._unary(self._offline.LeaseQuota, request, timeout)
        return response.lease

    def renew_quota_lease(
        self, lease_id: str, *, add_uses: int = 0, ttl: float, timeout: float | None = None
    ) -> offline_pb2.QuotaLease:
        """Adds uses to an open, unexpired lease and moves its expiry to now plus `ttl`.

        Allowed roles: generator.

        Args:
            lease_id: The lease (`ql_...`).
            add_uses: Further uses, 0 to 10,000.
            ttl: The new time to live in seconds, as in `lease_quota`.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The renewed lease.

        Raises:
            FailedPreconditionError: If the lease expired or was returned (`LEASE_CLOSED`).
            ResourceExhaustedError: If fewer uses are left (`LEASE_REFUSED`).
            CharterError: For any other failure.
        """
        request = offline_service_pb2.RenewQuotaLeaseRequest(lease_id=lease_id, add_uses=add_uses, ttl=_ttl(ttl))
        response: offline_service_pb2.RenewQuotaLeaseResponse = self._unary(
            self._offline.RenewQuotaLease, request, timeout
        )
        return response.lease

    def return_quota_lease(
        self, lease_id: str, *, spent_uses: int, timeout: float | None = None
    ) -> offline_service_pb2.ReturnQuotaLeaseResponse:
        """Gives back the uses of a lease that were not spent. Allowed roles: generator.

        Args:
            lease_id: The lease (`ql_...`).
            spent_uses: The uses spent, reported or not; the rest go back to the quotas.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The response: the returned `lease` and the `released_uses`.

        Raises:
            FailedPreconditionError: If it was returned or reclaimed already (`LEASE_CLOSED`).
            CharterError: For any other failure.
        """
        request = offline_service_pb2.ReturnQuotaLeaseRequest(lease_id=lease_id, spent_uses=spent_uses)
        response: offline_service_pb2.ReturnQuotaLeaseResponse = self._unary(
            self._offline.ReturnQuotaLease, request, timeout
        )
        return response
