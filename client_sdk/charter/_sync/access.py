# Generated from charter/_async/access.py by client_sdk/generate_sync.py; do not edit.
"""API keys and the caller's own key (AccessService)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from charter import _requests
from charter._options import new_request_id
from charter._sync._transport import Transport
from charter.v1 import access_service_pb2, api_key_pb2


class AccessCalls(Transport):
    """Creating, reading, listing and revoking API keys."""

    def create_api_key(
        self,
        *,
        display_name: str,
        role: int | str,
        rights_holder_id: str = "",
        licensee_id: str = "",
        expire_time: dt.datetime | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> access_service_pb2.CreateApiKeyResponse:
        """Creates an API key. Allowed roles: admin.

        The secret is in the response only; the server stores a hash of it and
        never shows it again (a retry with the same `request_id` returns the key
        with an empty secret).

        Args:
            display_name: Who holds the key, for example `render farm eu-west`.
            role: `Role.ROLE_ADMIN` or a name such as `"admin"`, `"rights_holder"`,
                `"generator"`, `"auditor"` (case-insensitive, prefix optional).
            rights_holder_id: The rights holder a `rights_holder` key acts for.
            licensee_id: The licensee a `generator` key acts for.
            expire_time: When the key stops working; timezone-aware, in the future.
            request_id: Makes the call idempotent, as in `create_rights_holder`.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The response, holding `api_key` and its `secret`.

        Raises:
            ValueError: If `role` names no role or `expire_time` is naive.
            InvalidArgumentError: If a field is invalid (see `field_violations`).
            CharterError: For any other failure.
        """
        request = access_service_pb2.CreateApiKeyRequest(
            display_name=display_name,
            role=_requests.parse_role(role),
            rights_holder_id=rights_holder_id,
            licensee_id=licensee_id,
            expire_time=None if expire_time is None else _requests.timestamp(expire_time, what="expire_time"),
            request_id=request_id or new_request_id(),
        )
        response: access_service_pb2.CreateApiKeyResponse = self._unary(self._access.CreateApiKey, request, timeout)
        return response

    def get_api_key(self, id: str, *, timeout: float | None = None) -> api_key_pb2.ApiKey:
        """Gets an API key, without its secret. Allowed roles: admin, auditor.

        Args:
            id: The key's id (`key_...`).
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The API key.

        Raises:
            NotFoundError: If it does not exist (reason `API_KEY_NOT_FOUND`).
            CharterError: For any other failure.
        """
        response: access_service_pb2.GetApiKeyResponse = self._unary(
            self._access.GetApiKey, access_service_pb2.GetApiKeyRequest(id=id), timeout
        )
        return response.api_key

    def list_api_keys(
        self,
        *,
        role: int | str | None = None,
        show_inactive: bool = False,
        page_size: int = 0,
        timeout: float | None = None,
    ) -> Iterator[api_key_pb2.ApiKey]:
        """Lists API keys, oldest first, fetching further pages as it is iterated.

        Allowed roles: admin, auditor.

        Args:
            role: Only keys with this role (`"admin"`, `Role.ROLE_GENERATOR`, ...).
            show_inactive: Include revoked and expired keys.
            page_size: Keys per call; 0 for the server's default.
            timeout: The deadline of each page's call in seconds.

        Returns:
            An iterator over the matching keys, without their secrets; errors are
            raised from the iteration.

        Raises:
            ValueError: If `role` names no role (raised at once).
            CharterError: If a page cannot be fetched.
        """
        request = access_service_pb2.ListApiKeysRequest(show_inactive=show_inactive, page_size=page_size)
        if role is not None:
            request.role = _requests.parse_role(role)
        return self._paginate(self._access.ListApiKeys, request, lambda r: r.api_keys, timeout)

    def revoke_api_key(self, id: str, *, timeout: float | None = None) -> api_key_pb2.ApiKey:
        """Revokes an API key; it authenticates nothing from then on. Allowed roles: admin.

        Args:
            id: The key's id.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The revoked key.

        Raises:
            NotFoundError: If it does not exist.
            FailedPreconditionError: If it is already revoked (reason
                `API_KEY_ALREADY_REVOKED`).
            CharterError: For any other failure.
        """
        response: access_service_pb2.RevokeApiKeyResponse = self._unary(
            self._access.RevokeApiKey, access_service_pb2.RevokeApiKeyRequest(id=id), timeout
        )
        return response.api_key

    def get_caller(self, *, timeout: float | None = None) -> api_key_pb2.ApiKey:
        """Returns the API key this client authenticates with. Allowed roles: all.

        Args:
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The caller's key, without its secret.

        Raises:
            UnauthenticatedError: If the key is missing, unknown, revoked or expired.
            CharterError: For any other failure.
        """
        response: access_service_pb2.GetCallerResponse = self._unary(
            self._access.GetCaller, access_service_pb2.GetCallerRequest(), timeout
        )
        return response.api_key
