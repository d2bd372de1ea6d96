# Generated from charter/_async/keys.py by client_sdk/generate_sync.py; do not edit.
"""The server's signing keys: rotating, revoking and listing them (KeyService)."""

from __future__ import annotations

from charter._sync._transport import Transport
from charter.v1 import key_service_pb2, signing_key_pb2


class KeyCalls(Transport):
    """Rotating, revoking and listing signing keys."""

    def rotate_signing_key(
        self, *, log: bool = False, timeout: float | None = None
    ) -> key_service_pb2.RotateSigningKeyResponse:
        """Makes a new signing key active and retires the previous one. Allowed roles: admin.

        The retired key signs nothing new but keeps verifying what it signed, so
        every grant issued so far stays valid (and every checkpoint, for the log's key).

        Args:
            log: Rotate the transparency log's key (which signs checkpoints) instead of the
                key that signs grants and receipts.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The response, holding the new `active_key` and the `retired_key` it replaced.

        Raises:
            PermissionDeniedError: If the caller is not an admin.
            CharterError: For any other failure.
        """
        response: key_service_pb2.RotateSigningKeyResponse = self._unary(
            self._keys.RotateSigningKey,
            key_service_pb2.RotateSigningKeyRequest(
                purpose=signing_key_pb2.SigningKey.PURPOSE_TRANSPARENCY_LOG
                if log
                else signing_key_pb2.SigningKey.PURPOSE_GRANTS
            ),
            timeout,
        )
        return response

    def revoke_signing_key(
        self, key_id: str, *, reason: str, timeout: float | None = None
    ) -> signing_key_pb2.SigningKey:
        """Revokes a signing key: every grant it signed fails with KEY_REVOKED. Allowed roles: admin.

        Args:
            key_id: The key's id (`sk_...`).
            reason: Why, for the audit log; required, at most 500 characters.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The revoked key.

        Raises:
            InvalidArgumentError: If `reason` is empty or too long.
            NotFoundError: If the key does not exist (`SIGNING_KEY_NOT_FOUND`).
            FailedPreconditionError: If it is the active key (`SIGNING_KEY_ACTIVE`;
                rotate first) or already revoked (`SIGNING_KEY_ALREADY_REVOKED`).
            CharterError: For any other failure.
        """
        response: key_service_pb2.RevokeSigningKeyResponse = self._unary(
            self._keys.RevokeSigningKey,
            key_service_pb2.RevokeSigningKeyRequest(key_id=key_id, reason=reason),
            timeout,
        )
        return response.key

    def list_signing_keys(self, *, timeout: float | None = None) -> list[signing_key_pb2.SigningKey]:
        """Returns every signing key, revoked ones included, newest first. Allowed roles: admin, auditor.

        There are few keys and no pages, so this returns a list rather than an iterator.

        Args:
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The keys, public halves only: private keys never leave the server.

        Raises:
            CharterError: If the call fails.
        """
        response: key_service_pb2.ListSigningKeysResponse = self._unary(
            self._keys.ListSigningKeys, key_service_pb2.ListSigningKeysRequest(), timeout
        )
        return list(response.keys)
