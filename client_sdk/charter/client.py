"""The synchronous Charter client.

`AsyncClient` in `charter.aio` has the same methods for asyncio. Both share
their option handling (`charter._options`) and request building
(`charter._requests`); only the transport calls differ.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc

from charter import _requests
from charter._options import DEFAULT_RETRY, DEFAULT_TIMEOUT, ClientConfig, RetryPolicy, new_request_id
from charter.errors import from_rpc_error
from charter.v1 import (
    access_service_pb2,
    access_service_pb2_grpc,
    api_key_pb2,
    catalog_service_pb2,
    catalog_service_pb2_grpc,
    licensee_pb2,
    rights_holder_pb2,
)

__all__ = ["Client"]

_T = TypeVar("_T")


class Client:
    """A synchronous client of the Charter service.

    Every call sends the API key as `authorization: Bearer <key>` and a fresh
    `x-request-id`, has a deadline (the `timeout` given here, or the one given
    to the call), is retried by gRPC on `UNAVAILABLE` according to `retry`, and
    raises a `CharterError` subclass when it fails. The client is thread-safe;
    create one per process and close it (or use it as a context manager).

    Example:
        ```python
        with charter.Client("localhost:50051", api_key=secret) as client:
            holder = client.create_rights_holder(
                display_name="Example Studio", contact_email="licensing@example.com"
            )
            for holder in client.list_rights_holders():
                print(holder.id, holder.display_name)
        ```
    """

    def __init__(
        self,
        target: str,
        *,
        api_key: str | None = None,
        root_certificates: bytes | None = None,
        client_certificate: bytes | None = None,
        client_private_key: bytes | None = None,
        secure: bool = False,
        timeout: float | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = DEFAULT_RETRY,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        """Creates a client and its channel; no connection is made until the first call.

        Args:
            target: The server address, for example `localhost:50051` or
                `dns:///charter.example.com:443`.
            api_key: The secret of an API key; omitted calls are unauthenticated.
            root_certificates: PEM root certificates to verify the server with.
                Setting it makes the channel use TLS.
            client_certificate: The PEM client certificate chain for mutual TLS.
            client_private_key: The PEM private key of `client_certificate`.
            secure: Use TLS with the system's root certificates even without
                `root_certificates`.
            timeout: The default deadline of each call in seconds; None for none.
            retry: How to retry `UNAVAILABLE`; None disables retries.
            options: Extra gRPC channel arguments; they override the client's own.

        Raises:
            ValueError: If an option has a bad value.
            TypeError: If an option has the wrong type.
        """
        self._config = ClientConfig.create(
            target,
            api_key=api_key,
            root_certificates=root_certificates,
            client_certificate=client_certificate,
            client_private_key=client_private_key,
            secure=secure,
            timeout=timeout,
            retry=retry,
            options=options,
        )
        credentials = self._config.channel_credentials()
        channel_options = self._config.channel_options()
        if credentials is None:
            self._channel = grpc.insecure_channel(self._config.target, options=channel_options)
        else:
            self._channel = grpc.secure_channel(self._config.target, credentials, options=channel_options)
        self._catalog = catalog_service_pb2_grpc.CatalogServiceStub(self._channel)
        self._access = access_service_pb2_grpc.AccessServiceStub(self._channel)

    @property
    def target(self) -> str:
        """The server address this client talks to."""
        return self._config.target

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled. Closing twice is harmless."""
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        # Never the API key: reprs end up in logs.
        return f"Client(target={self._config.target!r})"

    # -- transport --------------------------------------------------------------------------

    def _unary(self, method: Callable[..., Any], request: Any, timeout: float | None) -> Any:
        timeout = self._config.deadline(timeout)
        request_id = new_request_id()
        try:
            return method(request, timeout=timeout, metadata=self._config.metadata(request_id))
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, request_id=request_id) from exc

    def _paginate(
        self,
        method: Callable[..., Any],
        request: Any,
        items: Callable[[Any], Iterable[_T]],
        timeout: float | None,
    ) -> Iterator[_T]:
        # A generator, so pages are fetched only as the caller iterates; each page
        # is its own call with its own deadline and request id.
        while True:
            response = self._unary(method, request, timeout)
            yield from items(response)
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token

    # -- rights holders ---------------------------------------------------------------------

    def create_rights_holder(
        self,
        *,
        display_name: str,
        contact_email: str,
        legal_name: str = "",
        revenue_share_account: str = "",
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> rights_holder_pb2.RightsHolder:
        """Creates a rights holder. Allowed roles: admin.

        Args:
            display_name: The name shown to people; required, at most 200 characters.
            contact_email: The licensing contact's e-mail address; required.
            legal_name: The registered legal name of the company.
            revenue_share_account: The default account reference for revenue share.
            request_id: Makes the call idempotent: a second call with the same id
                returns the first result. A fresh one is used when omitted, so
                the client's own retries never create twice.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The created rights holder.

        Raises:
            InvalidArgumentError: If a field is invalid (see `field_violations`).
            AlreadyExistsError: If `request_id` was used for a different request.
            CharterError: For any other failure.
        """
        request = _requests.create_rights_holder(
            display_name=display_name,
            contact_email=contact_email,
            legal_name=legal_name,
            revenue_share_account=revenue_share_account,
            request_id=request_id,
        )
        response: catalog_service_pb2.CreateRightsHolderResponse = self._unary(
            self._catalog.CreateRightsHolder, request, timeout
        )
        return response.rights_holder

    def get_rights_holder(self, id: str, *, timeout: float | None = None) -> rights_holder_pb2.RightsHolder:
        """Gets a rights holder. Allowed roles: admin, auditor, a rights holder for itself.

        Args:
            id: The rights holder's id (`rh_...`).
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The rights holder.

        Raises:
            NotFoundError: If it does not exist (reason `RIGHTS_HOLDER_NOT_FOUND`).
            CharterError: For any other failure.
        """
        response: catalog_service_pb2.GetRightsHolderResponse = self._unary(
            self._catalog.GetRightsHolder, catalog_service_pb2.GetRightsHolderRequest(id=id), timeout
        )
        return response.rights_holder

    def list_rights_holders(
        self,
        *,
        state: int | str | None = None,
        query: str = "",
        page_size: int = 0,
        timeout: float | None = None,
    ) -> Iterator[rights_holder_pb2.RightsHolder]:
        """Lists rights holders, oldest first, fetching further pages as it is iterated.

        Allowed roles: admin, auditor, and a rights holder, which sees only itself.

        Args:
            state: Only rights holders in this state (`RightsHolder.STATE_ARCHIVED`,
                `"archived"`, ...); by default the active ones.
            query: Only those whose display or legal name contains this text,
                ignoring case.
            page_size: Rights holders per call; 0 for the server's default.
            timeout: The deadline of each page's call in seconds.

        Returns:
            An iterator over the matching rights holders. Calls happen during
            iteration, so errors are raised from the iteration too.

        Raises:
            ValueError: If `state` names no state (raised at once).
            CharterError: If a page cannot be fetched.
        """
        request = _requests.list_rights_holders(state=state, query=query, page_size=page_size)
        return self._paginate(self._catalog.ListRightsHolders, request, lambda r: r.rights_holders, timeout)

    def update_rights_holder(
        self,
        id: str,
        *,
        display_name: str | None = None,
        legal_name: str | None = None,
        contact_email: str | None = None,
        revenue_share_account: str | None = None,
        timeout: float | None = None,
    ) -> rights_holder_pb2.RightsHolder:
        """Changes the given fields of a rights holder, leaving the others as they are.

        Allowed roles: admin, and a rights holder for itself. Pass `""` to clear an
        optional field; fields left as None are not changed.

        Args:
            id: The rights holder's id.
            display_name: The new display name.
            legal_name: The new legal name.
            contact_email: The new contact e-mail address.
            revenue_share_account: The new default revenue-share account.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The updated rights holder.

        Raises:
            ValueError: If no field is given.
            NotFoundError: If it does not exist.
            FailedPreconditionError: If it is archived (reason `RIGHTS_HOLDER_ARCHIVED`).
            CharterError: For any other failure.
        """
        request = _requests.update_rights_holder(
            id,
            {
                "display_name": display_name,
                "legal_name": legal_name,
                "contact_email": contact_email,
                "revenue_share_account": revenue_share_account,
            },
        )
        response: catalog_service_pb2.UpdateRightsHolderResponse = self._unary(
            self._catalog.UpdateRightsHolder, request, timeout
        )
        return response.rights_holder

    def archive_rights_holder(self, id: str, *, timeout: float | None = None) -> rights_holder_pb2.RightsHolder:
        """Archives a rights holder; archiving twice is harmless. Allowed roles: admin.

        Args:
            id: The rights holder's id.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The archived rights holder.

        Raises:
            NotFoundError: If it does not exist.
            CharterError: For any other failure.
        """
        response: catalog_service_pb2.ArchiveRightsHolderResponse = self._unary(
            self._catalog.ArchiveRightsHolder,
            catalog_service_pb2.ArchiveRightsHolderRequest(id=id),
            timeout,
        )
        return response.rights_holder

    # -- licensees --------------------------------------------------------------------------

    def create_licensee(
        self,
        *,
        display_name: str,
        contact_email: str,
        platform: str,
        legal_name: str = "",
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> licensee_pb2.Licensee:
        """Creates a licensee (a generation service or app). Allowed roles: admin.

        Args:
            display_name: The name shown to people; required, at most 200 characters.
            contact_email: The contact's e-mail address; required.
            platform: The platform slug, for example `example-video-app`; required.
            legal_name: The registered legal name of the company.
            request_id: Makes the call idempotent, as in `create_rights_holder`.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The created licensee.

        Raises:
            InvalidArgumentError: If a field is invalid (see `field_violations`).
            AlreadyExistsError: If `request_id` was used for a different request.
            CharterError: For any other failure.
        """
        request = _requests.create_licensee(
            display_name=display_name,
            contact_email=contact_email,
            platform=platform,
            legal_name=legal_name,
            request_id=request_id,
        )
        response: catalog_service_pb2.CreateLicenseeResponse = self._unary(
            self._catalog.CreateLicensee, request, timeout
        )
        return response.licensee

    def get_licensee(self, id: str, *, timeout: float | None = None) -> licensee_pb2.Licensee:
        """Gets a licensee. Allowed roles: admin, auditor, a generator for its own licensee.

        Args:
            id: The licensee's id (`lic_...`).
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The licensee.

        Raises:
            NotFoundError: If it does not exist (reason `LICENSEE_NOT_FOUND`).
            CharterError: For any other failure.
        """
        response: catalog_service_pb2.GetLicenseeResponse = self._unary(
            self._catalog.GetLicensee, catalog_service_pb2.GetLicenseeRequest(id=id), timeout
        )
        return response.licensee

    def list_licensees(
        self,
        *,
        state: int | str | None = None,
        query: str = "",
        platform: str = "",
        page_size: int = 0,
        timeout: float | None = None,
    ) -> Iterator[licensee_pb2.Licensee]:
        """Lists licensees, oldest first, fetching further pages as it is iterated.

        Allowed roles: admin, auditor.

        Args:
            state: Only licensees in this state (`"active"`, `"archived"`, ...); by
                default the active ones.
            query: Only those whose display or legal name contains this text,
                ignoring case.
            platform: Only licensees on this platform (exact match).
            page_size: Licensees per call; 0 for the server's default.
            timeout: The deadline of each page's call in seconds.

        Returns:
            An iterator over the matching licensees; errors are raised from the
            iteration.

        Raises:
            ValueError: If `state` names no state (raised at once).
            CharterError: If a page cannot be fetched.
        """
        request = _requests.list_licensees(state=state, query=query, platform=platform, page_size=page_size)
        return self._paginate(self._catalog.ListLicensees, request, lambda r: r.licensees, timeout)

    def update_licensee(
        self,
        id: str,
        *,
        display_name: str | None = None,
        contact_email: str | None = None,
        platform: str | None = None,
        legal_name: str | None = None,
        timeout: float | None = None,
    ) -> licensee_pb2.Licensee:
        """Changes the given fields of a licensee, leaving the others as they are.

        Allowed roles: admin. Pass `""` to clear an optional field; fields left as
        None are not changed.

        Args:
            id: The licensee's id.
            display_name: The new display name.
            contact_email: The new contact e-mail address.
            platform: The new platform slug.
            legal_name: The new legal name.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The updated licensee.

        Raises:
            ValueError: If no field is given.
            NotFoundError: If it does not exist.
            FailedPreconditionError: If it is archived (reason `LICENSEE_ARCHIVED`).
            CharterError: For any other failure.
        """
        request = _requests.update_licensee(
            id,
            {
                "display_name": display_name,
                "contact_email": contact_email,
                "platform": platform,
                "legal_name": legal_name,
            },
        )
        response: catalog_service_pb2.UpdateLicenseeResponse = self._unary(
            self._catalog.UpdateLicensee, request, timeout
        )
        return response.licensee

    def archive_licensee(self, id: str, *, timeout: float | None = None) -> licensee_pb2.Licensee:
        """Archives a licensee; archiving twice is harmless. Allowed roles: admin.

        Args:
            id: The licensee's id.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The archived licensee.

        Raises:
            NotFoundError: If it does not exist.
            CharterError: For any other failure.
        """
        response: catalog_service_pb2.ArchiveLicenseeResponse = self._unary(
            self._catalog.ArchiveLicensee, catalog_service_pb2.ArchiveLicenseeRequest(id=id), timeout
        )
        return response.licensee

    # -- API keys ---------------------------------------------------------------------------

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
        request = _requests.create_api_key(
            display_name=display_name,
            role=role,
            rights_holder_id=rights_holder_id,
            licensee_id=licensee_id,
            expire_time=expire_time,
            request_id=request_id,
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
        request = _requests.list_api_keys(role=role, show_inactive=show_inactive, page_size=page_size)
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
