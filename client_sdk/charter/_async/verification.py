"""Verifying grants: the public key set, and verification by the server (AuthorizationService)."""

from __future__ import annotations

from charter._async._transport import Transport
from charter.v1 import authorization_service_pb2, envelope_pb2, signing_key_pb2


class VerificationCalls(Transport):
    """Fetching the keys that verify grants, and asking the server to verify one."""

    async def get_key_set(self, *, timeout: float | None = None) -> signing_key_pb2.KeySet:
        """Returns the public keys that verify grants: active and retired, never revoked. Allowed roles: all.

        Build a `charter.grants.KeyRing` from it (`KeyRing.from_key_set`) to verify
        grants locally, and refresh it when its `version` moves.

        Args:
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The key set, with its version and the ids of revoked keys.

        Raises:
            CharterError: If the call fails.
        """
        response: authorization_service_pb2.GetKeySetResponse = await self._unary(
            self._authorization.GetKeySet, authorization_service_pb2.GetKeySetRequest(), timeout
        )
        return response.key_set

    async def verify_grant(
        self,
        envelope: envelope_pb2.Envelope | str,
        *,
        licensee_id: str,
        character_id: str,
        timeout: float | None = None,
    ) -> authorization_service_pb2.VerifyGrantResponse:
        """Asks the server to verify a grant envelope, revocation and suspension included.

        An invalid grant is an answer, not an error: check `verdict` (a
        `GrantVerdict`, `GRANT_VERDICT_VALID` when every check passed). Allowed
        roles: all; a generator key may verify only for its own licensee.

        Args:
            envelope: The envelope: an `Envelope` message, or its standard DSSE JSON
                text exactly as received (it is sent unchanged).
            licensee_id: The licensee presenting the grant.
            character_id: The character the grant is presented for.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The response, holding the `verdict`, the parsed `claims` when the
            payload verified and parsed, and the `key_id` whose signature verified.

        Raises:
            TypeError: If `envelope` is neither an `Envelope` nor a string.
            InvalidArgumentError: If a required field is missing.
            PermissionDeniedError: If a generator key verifies for another licensee.
            CharterError: For any other failure.
        """
        request = authorization_service_pb2.VerifyGrantRequest(licensee_id=licensee_id, character_id=character_id)
        if isinstance(envelope, envelope_pb2.Envelope):
            request.envelope.CopyFrom(envelope)
        elif isinstance(envelope, str):
            # Sent as received: the server verifies these bytes, never a re-encoding of them.
            request.envelope_json = envelope
        else:
            raise TypeError(
                "envelope must be a charter.v1.envelope_pb2.Envelope or its DSSE JSON text (str),"
                f" not {type(envelope).__name__}"
            )
        response: authorization_service_pb2.VerifyGrantResponse = await self._unary(
            self._authorization.VerifyGrant, request, timeout
        )
        return response
