"""A character's terms: opting in and out, and the versions of its terms (CatalogService)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from charter import _requests
from charter._async._transport import Transport
from charter.v1 import catalog_service_pb2, terms_pb2


class TermsCalls(Transport):
    """Opting characters in and out, changing their terms and reading terms versions and templates."""

    async def opt_in(
        self, character_id: str, terms: terms_pb2.Terms, *, timeout: float | None = None
    ) -> catalog_service_pb2.OptInResponse:
        """Opts a character in with terms, making terms version 1 (or the next one).

        Allowed roles: admin, a rights holder for its own characters.

        Args:
            character_id: The character's id.
            terms: The terms; output-only fields are ignored. Start from a template
                of `list_terms_templates` or build a `Terms` message.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The response, holding the `character` (now OPTED_IN) and the new `terms`.

        Raises:
            TypeError: If `terms` is not a `Terms` message.
            InvalidArgumentError: If the terms are invalid (see `field_violations`,
                for example `terms.revenue_share_bps`).
            NotFoundError: If the character does not exist.
            FailedPreconditionError: If it is already opted in
                (`CHARACTER_ALREADY_OPTED_IN`; use `update_terms`), suspended or
                archived.
            CharterError: For any other failure.
        """
        request = catalog_service_pb2.OptInRequest(character_id=character_id, terms=_requests.check_terms(terms))
        response: catalog_service_pb2.OptInResponse = await self._unary(self._catalog.OptIn, request, timeout)
        return response

    async def update_terms(
        self, character_id: str, terms: terms_pb2.Terms, *, timeout: float | None = None
    ) -> terms_pb2.Terms:
        """Replaces the terms of an opted-in character whole, making a new version.

        The older versions stay readable (`get_terms(version=...)`), since grants
        record the version they were issued under. Allowed roles: admin, a rights
        holder for its own characters.

        Args:
            character_id: The character's id.
            terms: The new terms; output-only fields are ignored.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The new terms version.

        Raises:
            TypeError: If `terms` is not a `Terms` message.
            InvalidArgumentError: If the terms are invalid (see `field_violations`).
            NotFoundError: If the character does not exist.
            FailedPreconditionError: If it is not opted in (`CHARACTER_NOT_OPTED_IN`;
                use `opt_in`), suspended or archived.
            CharterError: For any other failure.
        """
        request = catalog_service_pb2.UpdateTermsRequest(character_id=character_id, terms=_requests.check_terms(terms))
        response: catalog_service_pb2.UpdateTermsResponse = await self._unary(
            self._catalog.UpdateTerms, request, timeout
        )
        return response.terms

    async def opt_out(
        self, character_id: str, *, reason: str = "", timeout: float | None = None
    ) -> catalog_service_pb2.OptOutResponse:
        """Opts a character out: nothing may be rendered any more, and its grants are revoked.

        Allowed roles: admin, a rights holder for its own characters.

        Args:
            character_id: The character's id.
            reason: Why, for the audit log; at most 500 characters.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The response, holding the `character` (now OPTED_OUT) and the
            `revoked_grant_count`.

        Raises:
            NotFoundError: If the character does not exist.
            FailedPreconditionError: If it is suspended or archived.
            CharterError: For any other failure.
        """
        response: catalog_service_pb2.OptOutResponse = await self._unary(
            self._catalog.OptOut,
            catalog_service_pb2.OptOutRequest(character_id=character_id, reason=reason),
            timeout,
        )
        return response

    async def get_terms(self, character_id: str, *, version: int = 0, timeout: float | None = None) -> terms_pb2.Terms:
        """Gets one version of a character's terms, the current one by default.

        Allowed roles: admin, auditor, a rights holder for its own characters.

        Args:
            character_id: The character's id.
            version: The version to get; 0 for the one in force.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The terms version.

        Raises:
            NotFoundError: If the character does not exist (`CHARACTER_NOT_FOUND`)
                or has no such version (`TERMS_VERSION_NOT_FOUND`, also when it was
                never opted in).
            CharterError: For any other failure.
        """
        response: catalog_service_pb2.GetTermsResponse = await self._unary(
            self._catalog.GetTerms,
            catalog_service_pb2.GetTermsRequest(character_id=character_id, version=version),
            timeout,
        )
        return response.terms

    def list_terms_versions(
        self, character_id: str, *, page_size: int = 0, timeout: float | None = None
    ) -> AsyncIterator[terms_pb2.Terms]:
        """Lists every terms version of a character, newest first, fetching pages as it is iterated.

        Allowed roles: admin, auditor, a rights holder for its own characters.

        Args:
            character_id: The character's id.
            page_size: Versions per call; 0 for the server's default.
            timeout: The deadline of each page's call in seconds.

        Returns:
            An async iterator over the versions; errors are raised from the iteration.

        Raises:
            NotFoundError: If the character does not exist.
            CharterError: If a page cannot be fetched.
        """
        request = catalog_service_pb2.ListTermsVersionsRequest(character_id=character_id, page_size=page_size)
        return self._paginate(self._catalog.ListTermsVersions, request, lambda r: r.terms, timeout)

    async def list_terms_templates(self, *, timeout: float | None = None) -> list[terms_pb2.TermsTemplate]:
        """Returns every terms template: named starting points for terms. Allowed roles: all.

        There are few templates and no pages, so this returns a list rather than
        an iterator. Copy a template's `terms`, adjust them and pass them to
        `opt_in` or `update_terms`.

        Args:
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The templates, for example `fan-noncommercial`.

        Raises:
            CharterError: If the call fails.
        """
        response: catalog_service_pb2.ListTermsTemplatesResponse = await self._unary(
            self._catalog.ListTermsTemplates, catalog_service_pb2.ListTermsTemplatesRequest(), timeout
        )
        return list(response.templates)
