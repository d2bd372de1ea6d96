# Generated from charter/_async/rights_holders.py by client_sdk/generate_sync.py; do not edit.
"""Rights holders: the companies that own characters (CatalogService)."""

from __future__ import annotations

from collections.abc import Iterator

from charter import _requests
from charter._options import new_request_id
from charter._sync._transport import Transport
from charter.v1 import catalog_service_pb2, rights_holder_pb2


class RightsHolderCalls(Transport):
    """Creating, reading, listing, changing and archiving rights holders."""

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
        request = catalog_service_pb2.CreateRightsHolderRequest(
            rights_holder=rights_holder_pb2.RightsHolder(
                display_name=display_name,
                contact_email=contact_email,
                legal_name=legal_name,
                revenue_share_account=revenue_share_account,
            ),
            request_id=request_id or new_request_id(),
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
        request = catalog_service_pb2.ListRightsHoldersRequest(query=query, page_size=page_size)
        if state is not None:
            request.state = _requests.parse_rights_holder_state(state)
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
        resource = rights_holder_pb2.RightsHolder(id=id)
        changes = {
            "display_name": display_name,
            "legal_name": legal_name,
            "contact_email": contact_email,
            "revenue_share_account": revenue_share_account,
        }
        request = catalog_service_pb2.UpdateRightsHolderRequest(
            rights_holder=resource, update_mask=_requests.apply_changes(resource, changes)
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
