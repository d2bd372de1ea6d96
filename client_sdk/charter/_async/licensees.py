"""Licensees: the generation services and apps that license characters (CatalogService)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from charter import _requests
from charter._async._transport import Transport
from charter._options import new_request_id
from charter.v1 import catalog_service_pb2, licensee_pb2


class LicenseeCalls(Transport):
    """Creating, reading, listing, changing and archiving licensees."""

    async def create_licensee(
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
        request = catalog_service_pb2.CreateLicenseeRequest(
            licensee=licensee_pb2.Licensee(
                display_name=display_name,
                contact_email=contact_email,
                platform=platform,
                legal_name=legal_name,
            ),
            request_id=request_id or new_request_id(),
        )
        response: catalog_service_pb2.CreateLicenseeResponse = await self._unary(
            self._catalog.CreateLicensee, request, timeout
        )
        return response.licensee

    async def get_licensee(self, id: str, *, timeout: float | None = None) -> licensee_pb2.Licensee:
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
        response: catalog_service_pb2.GetLicenseeResponse = await self._unary(
            self._catalog.GetLicensee, catalog_service_pb2.GetLicenseeRequest(id=id), timeout
        )
        return response.licensee

    async def get_licensee_profile(self, id: str, *, timeout: float | None = None) -> licensee_pb2.LicenseeProfile:
        """Gets a licensee's public profile: its name, platform and state, never its contact.

        Allowed roles: admin, auditor, and a rights holder for a licensee that holds or held a
        grant on one of its characters.

        Args:
            id: The licensee's id (`lic_...`).
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The licensee's profile.

        Raises:
            NotFoundError: If it does not exist (staff and auditors; reason `LICENSEE_NOT_FOUND`).
            PermissionDeniedError: For a rights-holder key, if the licensee never held a grant
                on one of its characters, or does not exist (reason `RESOURCE_NOT_OWNED`).
            CharterError: For any other failure.
        """
        response: catalog_service_pb2.GetLicenseeProfileResponse = await self._unary(
            self._catalog.GetLicenseeProfile, catalog_service_pb2.GetLicenseeProfileRequest(id=id), timeout
        )
        return response.profile

    def list_licensee_profiles(
        self, *, rights_holder_id: str = "", page_size: int = 0, timeout: float | None = None
    ) -> AsyncIterator[licensee_pb2.LicenseeProfile]:
        """Lists licensees' public profiles, oldest first, archived ones included.

        Allowed roles: admin, auditor, and a rights holder, which sees only the licensees
        that hold or held a grant on its characters.

        Args:
            rights_holder_id: Only licensees that hold or held a grant on a character of
                this rights holder; a rights-holder key always sees only its own.
            page_size: Profiles per call; 0 for the server's default.
            timeout: The deadline of each page's call in seconds.

        Returns:
            An async iterator over the profiles; errors are raised from the iteration.

        Raises:
            CharterError: If a page cannot be fetched.
        """
        request = catalog_service_pb2.ListLicenseeProfilesRequest(
            rights_holder_id=rights_holder_id, page_size=page_size
        )
        return self._paginate(self._catalog.ListLicenseeProfiles, request, lambda r: r.profiles, timeout)

    def list_licensees(
        self,
        *,
        state: int | str | None = None,
        query: str = "",
        platform: str = "",
        page_size: int = 0,
        timeout: float | None = None,
    ) -> AsyncIterator[licensee_pb2.Licensee]:
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
            An async iterator over the matching licensees; errors are raised from the
            iteration.

        Raises:
            ValueError: If `state` names no state (raised at once).
            CharterError: If a page cannot be fetched.
        """
        request = catalog_service_pb2.ListLicenseesRequest(query=query, platform=platform, page_size=page_size)
        if state is not None:
            request.state = _requests.parse_licensee_state(state)
        return self._paginate(self._catalog.ListLicensees, request, lambda r: r.licensees, timeout)

    async def update_licensee(
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
        resource = licensee_pb2.Licensee(id=id)
        changes = {
            "display_name": display_name,
            "contact_email": contact_email,
            "platform": platform,
            "legal_name": legal_name,
        }
        request = catalog_service_pb2.UpdateLicenseeRequest(
            licensee=resource, update_mask=_requests.apply_changes(resource, changes)
        )
        response: catalog_service_pb2.UpdateLicenseeResponse = await self._unary(
            self._catalog.UpdateLicensee, request, timeout
        )
        return response.licensee

    async def archive_licensee(self, id: str, *, timeout: float | None = None) -> licensee_pb2.Licensee:
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
        response: catalog_service_pb2.ArchiveLicenseeResponse = await self._unary(
            self._catalog.ArchiveLicensee, catalog_service_pb2.ArchiveLicenseeRequest(id=id), timeout
        )
        return response.licensee
