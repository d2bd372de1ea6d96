"""The synchronous Charter client.

`AsyncClient` in `charter.aio` has the same methods for asyncio. Both share
their option handling (`charter._options`) and request building
(`charter._requests`); only the transport calls differ.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc

from charter import _requests
from charter._license import License, ReceiptJournal, SendOutcome, license_block, settle_flush, settle_license_report
from charter._options import (
    DEFAULT_RETRY,
    DEFAULT_TIMEOUT,
    ClientConfig,
    RetryPolicy,
    check_timeout,
    new_request_id,
    retry_delays,
)
from charter._requests import RevocationMessage
from charter.decisions import Decision, Detection
from charter.errors import CharterError, DeadlineExceededError, from_rpc_error
from charter.usage import MAX_BATCH_SIZE, PendingUsage, UsageReport, UsageResult
from charter.v1 import (
    access_service_pb2,
    access_service_pb2_grpc,
    api_key_pb2,
    authorization_service_pb2,
    authorization_service_pb2_grpc,
    catalog_service_pb2,
    catalog_service_pb2_grpc,
    character_pb2,
    envelope_pb2,
    grant_pb2,
    grant_service_pb2,
    grant_service_pb2_grpc,
    key_service_pb2,
    key_service_pb2_grpc,
    licensee_pb2,
    rights_holder_pb2,
    signing_key_pb2,
    terms_pb2,
    usage_pb2,
    usage_service_pb2,
    usage_service_pb2_grpc,
)

__all__ = ["Client", "RevocationWatch"]

_T = TypeVar("_T")


class Client:
    """A synchronous client of the Charter service.

    Every call sends the API key as `authorization: Bearer <key>` and a fresh
    `x-request-id`, has a deadline (the `timeout` given here, or the one given
    to the call), is retried by gRPC on `UNAVAILABLE` according to `retry`, and
    raises a `CharterError` subclass when it fails. The client is thread-safe;
    create one per process and close it (or use it as a context manager).

    Attributes:
        receipts: The uses that `license` blocks of this client completed, newest last: a
            clean exit from a `license` block records its `License` here (a body that raises
            records nothing); drain it to keep your own record of what was rendered under
            which receipt. It is the only record of a use decided offline, which has no
            receipt and so cannot be reported.
        pending_usage: Usage reports of `license` blocks that could not be delivered (the
            server unreachable, or the call failing); `flush_usage` sends them again.

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
        self._grants = grant_service_pb2_grpc.GrantServiceStub(self._channel)
        self._keys = key_service_pb2_grpc.KeyServiceStub(self._channel)
        self._authorization = authorization_service_pb2_grpc.AuthorizationServiceStub(self._channel)
        self._usage = usage_service_pb2_grpc.UsageServiceStub(self._channel)
        self.receipts = ReceiptJournal()
        self.pending_usage = PendingUsage()

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

    # -- characters -------------------------------------------------------------------------

    def create_character(
        self,
        *,
        rights_holder_id: str,
        canonical_name: str,
        franchise: str = "",
        description: str = "",
        reference_urls: Iterable[str] = (),
        aliases: Iterable[character_pb2.Alias] = (),
        external_id: str = "",
        request_id: str | None = None,
        canonical_name_ambiguous: bool = False,
        keyword_sets: Iterable[character_pb2.KeywordSet] = (),
        timeout: float | None = None,
    ) -> character_pb2.Character:
        """Creates a character, OPTED_OUT until its rights holder opts it in.

        Allowed roles: admin, and a rights holder for itself.

        Args:
            rights_holder_id: The owner's id (`rh_...`); required, immutable.
            canonical_name: The canonical name, for example `Hatsune Miku`; required.
            franchise: The franchise or work the character belongs to.
            description: A description for people.
            reference_urls: Official pages or model sheets, `https://` URLs.
            aliases: The character's other names, as `Alias` messages (see
                `charter.alias`).
            external_id: The rights holder's own identifier, unique per rights
                holder; bulk imports match on it.
            request_id: Makes the call idempotent, as in `create_rights_holder`.
            canonical_name_ambiguous: Whether the canonical name may also name something
                else (then a match of it is decided only when the character is declared).
            keyword_sets: Descriptions of the character (see `charter.keyword_set`).
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The created character, with the readings the server derived from names in
            kanji or hanzi among its aliases (marked `derived`). A name that may cause false
            detections (a common word, a very short name) issues a `charter.NameWarning`.

        Raises:
            TypeError: If `aliases` holds anything but `Alias` messages, or
                `reference_urls` is a single string.
            InvalidArgumentError: If a field is invalid (see `field_violations`).
            AlreadyExistsError: If an alias names another rights holder's character
                (reason `ALIAS_CONFLICT`), the external id is taken
                (`EXTERNAL_ID_CONFLICT`), or `request_id` was used for a different
                request (`REQUEST_ID_REUSED`).
            CharterError: For any other failure.
        """
        request = _requests.create_character(
            rights_holder_id=rights_holder_id,
            canonical_name=canonical_name,
            franchise=franchise,
            description=description,
            reference_urls=reference_urls,
            aliases=aliases,
            external_id=external_id,
            request_id=request_id,
            canonical_name_ambiguous=canonical_name_ambiguous,
            keyword_sets=keyword_sets,
        )
        response: catalog_service_pb2.CreateCharacterResponse = self._unary(
            self._catalog.CreateCharacter, request, timeout
        )
        _requests.warn_names(response.warnings)
        return response.character

    def get_character(self, id: str, *, timeout: float | None = None) -> character_pb2.Character:
        """Gets a character. Allowed roles: admin, auditor, a rights holder for its own.

        Args:
            id: The character's id (`chr_...`).
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The character.

        Raises:
            NotFoundError: If it does not exist (reason `CHARACTER_NOT_FOUND`).
            CharterError: For any other failure.
        """
        response: catalog_service_pb2.GetCharacterResponse = self._unary(
            self._catalog.GetCharacter, catalog_service_pb2.GetCharacterRequest(id=id), timeout
        )
        return response.character

    def list_characters(
        self,
        *,
        rights_holder_id: str = "",
        state: int | str | None = None,
        franchise: str = "",
        query: str = "",
        page_size: int = 0,
        timeout: float | None = None,
    ) -> Iterator[character_pb2.Character]:
        """Lists characters, oldest first, fetching further pages as it is iterated.

        Allowed roles: admin, auditor, and a rights holder, which sees only its own.

        Args:
            rights_holder_id: Only characters of this rights holder.
            state: Only characters in this state (`Character.STATE_OPTED_IN`,
                `"opted_out"`, `"suspended"`, `"archived"`, ...); by default every
                state but archived.
            franchise: Only characters of this franchise (exact, ignoring case).
            query: Only characters whose canonical name or an alias contains this
                text after normalisation (so `ミク` finds `みく`).
            page_size: Characters per call; 0 for the server's default.
            timeout: The deadline of each page's call in seconds.

        Returns:
            An iterator over the matching characters. Calls happen during
            iteration, so errors are raised from the iteration too.

        Raises:
            ValueError: If `state` names no state (raised at once).
            CharterError: If a page cannot be fetched.
        """
        request = _requests.list_characters(
            rights_holder_id=rights_holder_id, state=state, franchise=franchise, query=query, page_size=page_size
        )
        return self._paginate(self._catalog.ListCharacters, request, lambda r: r.characters, timeout)

    def update_character(
        self,
        id: str,
        *,
        canonical_name: str | None = None,
        franchise: str | None = None,
        description: str | None = None,
        reference_urls: Iterable[str] | None = None,
        aliases: Iterable[character_pb2.Alias] | None = None,
        external_id: str | None = None,
        canonical_name_ambiguous: bool | None = None,
        keyword_sets: Iterable[character_pb2.KeywordSet] | None = None,
        timeout: float | None = None,
    ) -> character_pb2.Character:
        """Changes the given fields of a character, leaving the others as they are.

        Allowed roles: admin, and a rights holder for its own characters. Fields
        left as None are not changed; `""` clears an optional field. Lists
        (`reference_urls`, `aliases`) are replaced whole, and an empty list clears
        them; to add one alias, fetch the character and pass its aliases plus the
        new one.

        Args:
            id: The character's id.
            canonical_name: The new canonical name.
            franchise: The new franchise.
            description: The new description.
            reference_urls: The new reference URLs, replacing the old ones.
            aliases: The new aliases (`Alias` messages), replacing the old ones.
            external_id: The new external id.
            canonical_name_ambiguous: Whether the canonical name may also name something else.
            keyword_sets: The new keyword sets, replacing the old ones.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The updated character (readings of newly added names in kanji or hanzi are
            derived; a name that may cause false detections issues a `charter.NameWarning`).

        Raises:
            ValueError: If no field is given.
            TypeError: If `aliases` holds anything but `Alias` messages.
            NotFoundError: If it does not exist.
            FailedPreconditionError: If it is archived (reason `CHARACTER_ARCHIVED`).
            AlreadyExistsError: If an alias names another rights holder's character
                (`ALIAS_CONFLICT`) or the external id is taken (`EXTERNAL_ID_CONFLICT`).
            CharterError: For any other failure.
        """
        request = _requests.update_character(
            id,
            canonical_name=canonical_name,
            franchise=franchise,
            description=description,
            reference_urls=reference_urls,
            aliases=aliases,
            external_id=external_id,
            canonical_name_ambiguous=canonical_name_ambiguous,
            keyword_sets=keyword_sets,
        )
        response: catalog_service_pb2.UpdateCharacterResponse = self._unary(
            self._catalog.UpdateCharacter, request, timeout
        )
        _requests.warn_names(response.warnings)
        return response.character

    def add_keyword_set(
        self, character_id: str, keyword_set: character_pb2.KeywordSet, *, timeout: float | None = None
    ) -> character_pb2.Character:
        """Adds a keyword set to a character, or replaces its set of the same name.

        Allowed roles: admin, and a rights holder for its own characters. Reads the character
        and writes its keyword sets back, so two concurrent changes of one character's sets
        may lose one; use `update_character(keyword_sets=...)` to set them all at once.

        Args:
            character_id: The character's id.
            keyword_set: The set (see `charter.keyword_set`).
            timeout: The deadline of each call in seconds, instead of the default.

        Returns:
            The updated character.

        Raises:
            TypeError: If `keyword_set` is not a `KeywordSet` message.
            InvalidArgumentError: If the set is invalid (2-6 keywords, 1-10 variants each).
            CharterError: For any other failure.
        """
        (checked,) = _requests.keyword_set_list([keyword_set])
        current = self.get_character(character_id, timeout=timeout)
        kept = [k for k in current.keyword_sets if k.name != checked.name]
        return self.update_character(character_id, keyword_sets=[*kept, checked], timeout=timeout)

    def remove_keyword_set(
        self, character_id: str, name: str, *, timeout: float | None = None
    ) -> character_pb2.Character:
        """Removes a character's keyword set by name (removing a set it does not have changes nothing).

        Allowed roles: admin, and a rights holder for its own characters; see `add_keyword_set`.

        Args:
            character_id: The character's id.
            name: The set's name.
            timeout: The deadline of each call in seconds, instead of the default.

        Returns:
            The character as it is now.

        Raises:
            CharterError: For any failure.
        """
        current = self.get_character(character_id, timeout=timeout)
        kept = [k for k in current.keyword_sets if k.name != name]
        if len(kept) == len(current.keyword_sets):
            return current
        return self.update_character(character_id, keyword_sets=kept, timeout=timeout)

    def archive_character(self, id: str, *, timeout: float | None = None) -> character_pb2.Character:
        """Archives a character; it stays denied at generation time. Archiving twice is harmless.

        Allowed roles: admin, a rights holder for its own characters.

        Args:
            id: The character's id.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The archived character.

        Raises:
            NotFoundError: If it does not exist.
            CharterError: For any other failure.
        """
        response: catalog_service_pb2.ArchiveCharacterResponse = self._unary(
            self._catalog.ArchiveCharacter, catalog_service_pb2.ArchiveCharacterRequest(id=id), timeout
        )
        return response.character

    def suspend_character(self, id: str, *, reason: str, timeout: float | None = None) -> character_pb2.Character:
        """Suspends a character: it is treated as opted out until reinstated. Allowed roles: admin.

        Args:
            id: The character's id.
            reason: Why, for the audit log; required, at most 500 characters.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The suspended character.

        Raises:
            InvalidArgumentError: If `reason` is empty or too long.
            NotFoundError: If it does not exist.
            FailedPreconditionError: If it is archived (reason `CHARACTER_ARCHIVED`).
            CharterError: For any other failure.
        """
        response: catalog_service_pb2.SuspendCharacterResponse = self._unary(
            self._catalog.SuspendCharacter,
            catalog_service_pb2.SuspendCharacterRequest(id=id, reason=reason),
            timeout,
        )
        return response.character

    def reinstate_character(self, id: str, *, timeout: float | None = None) -> character_pb2.Character:
        """Lifts a suspension: back to OPTED_IN if it has terms in force, else OPTED_OUT.

        Allowed roles: admin.

        Args:
            id: The character's id.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The reinstated character.

        Raises:
            NotFoundError: If it does not exist.
            FailedPreconditionError: If it is not suspended (reason
                `CHARACTER_NOT_SUSPENDED`).
            CharterError: For any other failure.
        """
        response: catalog_service_pb2.ReinstateCharacterResponse = self._unary(
            self._catalog.ReinstateCharacter, catalog_service_pb2.ReinstateCharacterRequest(id=id), timeout
        )
        return response.character

    # -- terms ------------------------------------------------------------------------------

    def opt_in(
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
        response: catalog_service_pb2.OptInResponse = self._unary(self._catalog.OptIn, request, timeout)
        return response

    def update_terms(
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
        response: catalog_service_pb2.UpdateTermsResponse = self._unary(self._catalog.UpdateTerms, request, timeout)
        return response.terms

    def opt_out(
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
        response: catalog_service_pb2.OptOutResponse = self._unary(
            self._catalog.OptOut,
            catalog_service_pb2.OptOutRequest(character_id=character_id, reason=reason),
            timeout,
        )
        return response

    def get_terms(self, character_id: str, *, version: int = 0, timeout: float | None = None) -> terms_pb2.Terms:
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
        response: catalog_service_pb2.GetTermsResponse = self._unary(
            self._catalog.GetTerms,
            catalog_service_pb2.GetTermsRequest(character_id=character_id, version=version),
            timeout,
        )
        return response.terms

    def list_terms_versions(
        self, character_id: str, *, page_size: int = 0, timeout: float | None = None
    ) -> Iterator[terms_pb2.Terms]:
        """Lists every terms version of a character, newest first, fetching pages as it is iterated.

        Allowed roles: admin, auditor, a rights holder for its own characters.

        Args:
            character_id: The character's id.
            page_size: Versions per call; 0 for the server's default.
            timeout: The deadline of each page's call in seconds.

        Returns:
            An iterator over the versions; errors are raised from the iteration.

        Raises:
            NotFoundError: If the character does not exist.
            CharterError: If a page cannot be fetched.
        """
        request = catalog_service_pb2.ListTermsVersionsRequest(character_id=character_id, page_size=page_size)
        return self._paginate(self._catalog.ListTermsVersions, request, lambda r: r.terms, timeout)

    def list_terms_templates(self, *, timeout: float | None = None) -> list[terms_pb2.TermsTemplate]:
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
        response: catalog_service_pb2.ListTermsTemplatesResponse = self._unary(
            self._catalog.ListTermsTemplates, catalog_service_pb2.ListTermsTemplatesRequest(), timeout
        )
        return list(response.templates)

    # -- import and collisions --------------------------------------------------------------

    def import_characters(
        self,
        rights_holder_id: str,
        rows: Iterable[catalog_service_pb2.ImportRow],
        *,
        timeout: float | None = None,
    ) -> list[catalog_service_pb2.ImportRowResult]:
        """Imports one batch of characters of a rights holder, matched by external id.

        New rows are created, changed rows updated, identical rows left alone, so
        importing the same rows again changes nothing. Each row succeeds or fails
        on its own, and a failed row leaves nothing behind: a failed row is an
        `OUTCOME_FAILED` result, not an exception. `charter.catalog_file` reads the
        documented CSV and JSON files into rows. Allowed roles: admin, a rights
        holder for itself.

        Args:
            rights_holder_id: The rights holder that owns every row.
            rows: 1 to 500 `ImportRow` messages; send larger catalogues in batches.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            One result per row, in order; `index` is the row's position in `rows`.

        Raises:
            TypeError: If a row is not an `ImportRow` message.
            InvalidArgumentError: If the batch as a whole is invalid (no rows, too
                many, no rights holder).
            NotFoundError: If the rights holder does not exist.
            CharterError: For any other failure.
        """
        request = _requests.import_characters(rights_holder_id, rows)
        response: catalog_service_pb2.ImportCharactersResponse = self._unary(
            self._catalog.ImportCharacters, request, timeout
        )
        return list(response.results)

    def list_alias_collisions(
        self, *, page_size: int = 0, timeout: float | None = None
    ) -> Iterator[catalog_service_pb2.AliasCollision]:
        """Lists names shared by characters of different rights holders, fetching pages as it is iterated.

        Such sharing is allowed only for aliases marked ambiguous; staff review
        the list. Allowed roles: admin, auditor.

        Args:
            page_size: Collisions per call; 0 for the server's default.
            timeout: The deadline of each page's call in seconds.

        Returns:
            An iterator over the collisions, ordered by normalised name; errors are
            raised from the iteration.

        Raises:
            CharterError: If a page cannot be fetched.
        """
        request = catalog_service_pb2.ListAliasCollisionsRequest(page_size=page_size)
        return self._paginate(self._catalog.ListAliasCollisions, request, lambda r: r.collisions, timeout)

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

    # -- grants -----------------------------------------------------------------------------

    def issue_grant(
        self,
        *,
        character_id: str,
        licensee_id: str,
        expire_time: dt.datetime,
        not_before: dt.datetime | None = None,
        narrowed_terms: terms_pb2.Terms | None = None,
        max_uses: int | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> grant_pb2.Grant:
        """Issues a signed grant: a licensee may use an opted-in character under its terms for a time.

        The grant carries its signed `envelope`; hand that to the licensee (its
        standard DSSE JSON form is `charter.envelope.to_json(grant.envelope)`).
        Allowed roles: admin.

        Args:
            character_id: The character (`chr_...`); it must be opted in.
            licensee_id: The licensee (`lic_...`); it must be active and allowed by the terms.
            expire_time: When the grant stops being valid; timezone-aware, after
                `not_before` and within the server's maximum grant lifetime.
            not_before: When the grant starts to be valid; timezone-aware. Now when omitted.
            narrowed_terms: Terms at most as permissive as the character's current
                terms in every field; the current terms as they are when omitted.
            max_uses: The most uses the grant allows over its whole validity, counted when
                `authorize` allows one (then `QUOTA_EXHAUSTED`); no cap when omitted.
            request_id: Makes the call idempotent: a second call with the same id
                returns the first grant. A fresh one is used when omitted.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The issued grant with its signed envelope.

        Raises:
            ValueError: If a time is naive.
            TypeError: If a time is not a datetime, `narrowed_terms` is not a `Terms` message or
                `max_uses` is not an int.
            InvalidArgumentError: If a field is invalid, for example an expiry beyond the
                maximum lifetime, or narrowed terms wider than the character's
                (`TERMS_WIDER_THAN_CHARACTER`, each wider field in `field_violations`).
            NotFoundError: If the character or licensee does not exist.
            FailedPreconditionError: If the character is not opted in
                (`CHARACTER_NOT_OPTED_IN`), the licensee is archived, or the terms
                exclude the licensee (`LICENSEE_NOT_PERMITTED_BY_TERMS`).
            CharterError: For any other failure.
        """
        request = _requests.issue_grant(
            character_id=character_id,
            licensee_id=licensee_id,
            expire_time=expire_time,
            not_before=not_before,
            narrowed_terms=narrowed_terms,
            request_id=request_id,
            max_uses=max_uses,
        )
        response: grant_service_pb2.IssueGrantResponse = self._unary(self._grants.IssueGrant, request, timeout)
        return response.grant

    def get_grant(self, id: str, *, timeout: float | None = None) -> grant_pb2.Grant:
        """Gets a grant with its envelope.

        Allowed roles: admin, auditor, a rights holder for grants of its own characters.

        Args:
            id: The grant's id (`grt_...`).
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The grant.

        Raises:
            NotFoundError: If it does not exist (reason `GRANT_NOT_FOUND`).
            CharterError: For any other failure.
        """
        response: grant_service_pb2.GetGrantResponse = self._unary(
            self._grants.GetGrant, grant_service_pb2.GetGrantRequest(id=id), timeout
        )
        return response.grant

    def list_grants(
        self,
        *,
        character_id: str = "",
        licensee_id: str = "",
        rights_holder_id: str = "",
        state: int | str | None = None,
        page_size: int = 0,
        timeout: float | None = None,
    ) -> Iterator[grant_pb2.Grant]:
        """Lists grants, newest first, fetching further pages as it is iterated.

        Allowed roles: admin, auditor, and a rights holder, which sees only grants
        of its own characters.

        Args:
            character_id: Only grants for this character.
            licensee_id: Only grants for this licensee.
            rights_holder_id: Only grants for characters of this rights holder.
            state: Only grants in this state (`Grant.STATE_SUSPENDED`, `"revoked"`, ...);
                every state by default.
            page_size: Grants per call; 0 for the server's default.
            timeout: The deadline of each page's call in seconds.

        Returns:
            An iterator over the matching grants. Calls happen during iteration,
            so errors are raised from the iteration too.

        Raises:
            ValueError: If `state` names no state (raised at once).
            CharterError: If a page cannot be fetched.
        """
        request = _requests.list_grants(
            character_id=character_id,
            licensee_id=licensee_id,
            rights_holder_id=rights_holder_id,
            state=state,
            page_size=page_size,
        )
        return self._paginate(self._grants.ListGrants, request, lambda r: r.grants, timeout)

    def suspend_grant(
        self, id: str, *, reason: str, timeout: float | None = None
    ) -> grant_service_pb2.SuspendGrantResponse:
        """Suspends an active grant; it verifies as SUSPENDED until reinstated. Allowed roles: admin.

        Args:
            id: The grant's id.
            reason: Why; required, at most 500 characters.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The response, holding the suspended `grant` and the revocation log's
            `sequence` number of the suspension.

        Raises:
            InvalidArgumentError: If `reason` is empty or too long.
            NotFoundError: If the grant does not exist.
            FailedPreconditionError: If it is already suspended
                (`GRANT_ALREADY_SUSPENDED`) or revoked (`GRANT_REVOKED`).
            CharterError: For any other failure.
        """
        response: grant_service_pb2.SuspendGrantResponse = self._unary(
            self._grants.SuspendGrant, grant_service_pb2.SuspendGrantRequest(id=id, reason=reason), timeout
        )
        return response

    def reinstate_grant(self, id: str, *, timeout: float | None = None) -> grant_service_pb2.ReinstateGrantResponse:
        """Lifts the suspension of a grant. Allowed roles: admin.

        Args:
            id: The grant's id.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The response, holding the reinstated `grant` and the revocation log's
            `sequence` number of the reinstatement.

        Raises:
            NotFoundError: If the grant does not exist.
            FailedPreconditionError: If it is not suspended (`GRANT_NOT_SUSPENDED`)
                or is revoked (`GRANT_REVOKED`).
            CharterError: For any other failure.
        """
        response: grant_service_pb2.ReinstateGrantResponse = self._unary(
            self._grants.ReinstateGrant, grant_service_pb2.ReinstateGrantRequest(id=id), timeout
        )
        return response

    def revoke_grant(
        self, id: str, *, reason: str, timeout: float | None = None
    ) -> grant_service_pb2.RevokeGrantResponse:
        """Revokes a grant for good.

        Allowed roles: admin, a rights holder for grants of its own characters.

        Args:
            id: The grant's id.
            reason: Why; required, at most 500 characters.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The response, holding the revoked `grant` and the revocation log's
            `sequence` number of the revocation. An offline authorizer given this
            number refuses to decide offline until it has seen the revocation.

        Raises:
            InvalidArgumentError: If `reason` is empty or too long.
            NotFoundError: If the grant does not exist.
            FailedPreconditionError: If it is already revoked (`GRANT_REVOKED`).
            CharterError: For any other failure.
        """
        response: grant_service_pb2.RevokeGrantResponse = self._unary(
            self._grants.RevokeGrant, grant_service_pb2.RevokeGrantRequest(id=id, reason=reason), timeout
        )
        return response

    # -- signing keys -----------------------------------------------------------------------

    def rotate_signing_key(self, *, timeout: float | None = None) -> key_service_pb2.RotateSigningKeyResponse:
        """Makes a new signing key active and retires the previous one. Allowed roles: admin.

        The retired key signs nothing new but keeps verifying what it signed, so
        every grant issued so far stays valid.

        Args:
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The response, holding the new `active_key` and the `retired_key` it replaced.

        Raises:
            PermissionDeniedError: If the caller is not an admin.
            CharterError: For any other failure.
        """
        response: key_service_pb2.RotateSigningKeyResponse = self._unary(
            self._keys.RotateSigningKey, key_service_pb2.RotateSigningKeyRequest(), timeout
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

    # -- verification -----------------------------------------------------------------------

    def get_key_set(self, *, timeout: float | None = None) -> signing_key_pb2.KeySet:
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
        response: authorization_service_pb2.GetKeySetResponse = self._unary(
            self._authorization.GetKeySet, authorization_service_pb2.GetKeySetRequest(), timeout
        )
        return response.key_set

    def verify_grant(
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
        request = _requests.verify_grant(envelope, licensee_id=licensee_id, character_id=character_id)
        response: authorization_service_pb2.VerifyGrantResponse = self._unary(
            self._authorization.VerifyGrant, request, timeout
        )
        return response

    # -- generation time --------------------------------------------------------------------

    def authorize(
        self,
        *,
        character_ids: Sequence[str] = (),
        prompt: str = "",
        use_type: int,
        content_rating: int,
        categories: Iterable[int] = (),
        territory: str = "",
        commercial: bool = False,
        duration: dt.timedelta | None = None,
        grants: Sequence[envelope_pb2.Envelope | str] = (),
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> Decision:
        """Asks, before rendering, whether the caller's licensee may use these characters this way.

        Every character declared in `character_ids` or named by `prompt` is decided; a denial is
        an answer (`Decision.allowed` is false, with reasons per character), not an error.
        Allowed roles: generator (the licensee is the API key's).

        Args:
            character_ids: The characters the content will show, at most 64, without duplicates.
            prompt: The prompt, at most 8000 characters; every character it names is decided too
                (a match of an ambiguous alias only if the character is declared).
            use_type: How the characters are used, a `charter.v1.UseType` value; required.
            content_rating: The audience rating, a `charter.v1.ContentRating` value; required.
            categories: `charter.v1.ContentCategory` values your own classifiers flagged.
            territory: The ISO 3166-1 alpha-2 code of where the content is served; empty when
                unknown, which fails any terms that restrict territories.
            commercial: Whether the use is commercial (advertising, paid products, monetised).
            duration: The length of the content, for usage records (0 to 24 hours).
            grants: Grant envelopes you hold, as `Envelope` messages or their DSSE JSON text; for
                a character with a presented grant only presented grants are considered.
            request_id: Makes a retry safe: the same id never counts a quota twice. A fresh one
                is used when omitted, so the client's own retries of this call resend it.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The decision, with its signed receipt (`Decision.receipt`) and the detections.

        Raises:
            MalformedEnvelope: If a grant given as text is not well-formed DSSE JSON (raised
                before any call).
            ValueError: If an enum value is unknown, or the server answered with a deny reason
                this SDK does not know (update the SDK).
            TypeError: If an argument has the wrong type.
            InvalidArgumentError: If the request is invalid (see `field_violations`).
            PermissionDeniedError: If the API key is not a generator's.
            CharterError: For any other failure.
        """
        request = _requests.authorize(
            character_ids=character_ids,
            prompt=prompt,
            use_type=use_type,
            content_rating=content_rating,
            categories=categories,
            territory=territory,
            commercial=commercial,
            duration=duration,
            grants=grants,
            request_id=request_id,
        )
        response: authorization_service_pb2.AuthorizeResponse = self._unary(
            self._authorization.Authorize, request, timeout
        )
        return Decision.from_response(response)

    def license(
        self,
        *,
        character_ids: Sequence[str] = (),
        prompt: str = "",
        use_type: int,
        content_rating: int,
        categories: Iterable[int] = (),
        territory: str = "",
        commercial: bool = False,
        duration: dt.timedelta | None = None,
        grants: Sequence[envelope_pb2.Envelope | str] = (),
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> contextlib.AbstractContextManager[License]:
        """Authorizes a use and runs the block only when it is allowed.

        Entering calls `authorize` with these arguments: a denial raises `LicenseDenied` (with
        the whole `decision` and its `reasons`) and the body never runs. An exception in the
        body records and reports nothing and propagates unchanged. A clean exit marks the
        `License` used, records it in `receipts` and reports the use: one record per allowed
        character, under the key `charter.usage.usage_key(receipt_id, character_id)`, with one
        use, `License.duration` (or the `duration` given here), the revenue given to
        `License.attribute_revenue`, and the exit time. The answers are in
        `License.usage_results`.

        Reporting never raises from the block, since the content was rendered: a report that
        cannot be delivered (the server unreachable after gRPC's retries of `UNAVAILABLE`, or
        the call failing; a block's report is not repeated after `DEADLINE_EXCEEDED`, so a hung
        server delays the exit by one deadline at most) is logged as a warning and waits in
        `pending_usage` for `flush_usage`. Flushing sends the same record under the same key,
        so a report that did reach the server is never counted twice. A record the server
        rejects is in `usage_results` and is not queued. A block that is retried after an
        error authorizes again and gets a new receipt: that is a new use, reported under its
        own key.

        Example:
            ```python
            with client.license(
                prompt=prompt,
                use_type=terms_pb2.USE_TYPE_IMAGE_GENERATION,
                content_rating=terms_pb2.CONTENT_RATING_TEEN,
            ) as granted:
                image = render(prompt, obligations=granted.obligations)
                granted.attribute_revenue(120, "USD")       # optional, reported with the use
            store(image, receipt=granted.receipt)
            ```

        Args:
            character_ids: As in `authorize`.
            prompt: As in `authorize`.
            use_type: As in `authorize`; required.
            content_rating: As in `authorize`; required.
            categories: As in `authorize`.
            territory: As in `authorize`.
            commercial: As in `authorize`.
            duration: As in `authorize`; reported with the use unless `License.duration` is set.
            grants: As in `authorize`.
            request_id: As in `authorize`.
            timeout: As in `authorize`; also the deadline of the usage report.

        Returns:
            A context manager that yields the `License` (the allowing decision, its receipt and
            obligations).

        Raises:
            LicenseDenied: On entry, when any character is denied.
            MalformedEnvelope: On entry, if a grant given as text is not well-formed DSSE JSON.
            CharterError: On entry, if the call fails (as in `authorize`).
        """
        return license_block(
            lambda: self.authorize(
                character_ids=character_ids,
                prompt=prompt,
                use_type=use_type,
                content_rating=content_rating,
                categories=categories,
                territory=territory,
                commercial=commercial,
                duration=duration,
                grants=grants,
                request_id=request_id,
                timeout=timeout,
            ),
            self.receipts.record,
            lambda granted: self._report_license(granted, timeout),
        )

    def screen_prompt(self, prompt: str, *, timeout: float | None = None) -> list[Detection]:
        """Finds the characters a prompt names, opted in or not, in every script. Allowed roles: all.

        Args:
            prompt: The prompt, at most 8000 characters.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            Every detection, with its span in code points, ordered by start.

        Raises:
            TypeError: If the prompt is not a string.
            InvalidArgumentError: If the prompt is empty or too long.
            CharterError: For any other failure.
        """
        response: authorization_service_pb2.ScreenPromptResponse = self._unary(
            self._authorization.ScreenPrompt, _requests.screen_prompt(prompt), timeout
        )
        return [Detection.from_proto(detection) for detection in response.detections]

    def watch_revocations(self, since_sequence: int = 0, *, timeout: float | None = None) -> RevocationWatch:
        """Opens the revocation stream: the log's events after `since_sequence`, then live ones.

        The stream yields `charter.v1.grant_pb2.RevocationEvent` messages and, every few
        seconds, a `charter.v1.authorization_service_pb2.Heartbeat` carrying the newest sequence
        number and the server time. It runs until cancelled (`RevocationWatch.cancel`, or
        leaving its `with` block). Allowed roles: all.

        Example:
            ```python
            with client.watch_revocations(since_sequence=last_seen) as watch:
                for message in watch:
                    if isinstance(message, RevocationEvent):
                        last_seen = message.sequence
            ```

        Args:
            since_sequence: Send the events after this sequence number; 0 for the whole log.
            timeout: A deadline for the whole stream in seconds; None (the default) for none,
                not the client's default deadline, since a watch is meant to stay open.

        Returns:
            The open stream, an iterator of events and heartbeats. Calls happen during
            iteration, so errors are raised from the iteration too.

        Raises:
            ValueError: If `since_sequence` is negative or `timeout` is not positive.
            TypeError: If `since_sequence` is not an int.
            CharterError: From the iteration, if the stream fails (a cancel by the caller is
                not a failure: the iteration just ends).
        """
        request = _requests.watch_revocations(since_sequence)
        check_timeout(timeout, allow_none=True)
        request_id = new_request_id()
        # Retrying a stream replays nothing: gRPC retries a call only until the server's first
        # response headers arrive (gRFC A6), which come with or before the first message.
        call = self._authorization.WatchRevocations(
            request, timeout=timeout, metadata=self._config.metadata(request_id)
        )
        return RevocationWatch(call, request_id)

    # -- usage and statements ---------------------------------------------------------------

    def report_usage(
        self,
        records: Iterable[UsageReport | usage_pb2.UsageRecord],
        *,
        batch_size: int = 100,
        timeout: float | None = None,
    ) -> list[UsageResult]:
        """Reports what was rendered: one record per use of a character under a decision receipt.

        The records go in batches of `batch_size`, one call each, and are answered one by one:
        a rejected record (for example `RECEIPT_DOES_NOT_ALLOW_CHARACTER`) does not sink the
        others. Every record is idempotent by its key, so a batch is safe to send again: gRPC
        retries it on `UNAVAILABLE` according to the client's `retry`, and the client sends it
        again with a fresh deadline after `DEADLINE_EXCEEDED`, up to the same number of attempts.
        Allowed roles: generator (the records of its own licensee).

        Example:
            ```python
            results = client.report_usage([UsageReport(decision.receipt, "chr_...")])
            for result in results:
                if not result.accepted:
                    print(result.index, result.error_reason)
            ```

        Args:
            records: `charter.usage.UsageReport` objects or `charter.v1.usage_pb2.UsageRecord`
                messages. A report without `happen_time` gets the time of this call; give it a
                time (or fix it with `UsageReport.at`) if you may send it again, since a record
                re-sent with another time is refused with `IDEMPOTENCY_KEY_REUSED`.
            batch_size: Records per call, 1 to 1000.
            timeout: The deadline of each call in seconds, instead of the default.

        Returns:
            One result per record, in the order given (`UsageResult.index` is the position in
            `records`); empty when `records` is.

        Raises:
            TypeError: If a record is neither a `UsageReport` nor a `UsageRecord`.
            ValueError: If `batch_size` is out of range.
            PermissionDeniedError: If the API key is not a generator's.
            CharterError: If a batch still fails after the retries; the batches before it were
                recorded, and sending the same records again is safe (they come back as
                duplicates).
        """
        batch_size = _requests.check_batch_size(batch_size)
        prepared = _requests.usage_records(records, now=dt.datetime.now(dt.UTC))
        results, _, error = self._send_usage(prepared, batch_size, timeout, repeat=True)
        if error is not None:
            raise error
        return results

    def flush_usage(self, *, batch_size: int = 100, timeout: float | None = None) -> list[UsageResult]:
        """Sends the reports waiting in `pending_usage` again.

        ``license(...)`` blocks whose report could not be delivered leave it there. Each report
        is sent exactly as first attempted (same key, same time), so one that did reach the
        server before is answered as a duplicate and never counted twice. Reports that meet a
        delivery failure again (`UNAVAILABLE`, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`) go back
        in the queue; a rejected record does not (its result says why). Allowed roles: generator.

        Args:
            batch_size: Records per call, 1 to 1000.
            timeout: The deadline of each call in seconds, instead of the default.

        Returns:
            The results of the reports delivered, `index` counting from 0 over the reports taken
            from the queue; empty when nothing was pending or nothing could be delivered.

        Raises:
            ValueError: If `batch_size` is out of range.
            CharterError: If a call fails other than by a delivery failure (for example
                `PermissionDeniedError` for a key that is not a generator's); the reports not
                delivered are back in the queue.
        """
        batch_size = _requests.check_batch_size(batch_size)
        reports = self.pending_usage.drain()
        if not reports:
            return []
        prepared = [report.to_proto() for report in reports]  # their times were fixed when queued
        outcome = self._send_usage(prepared, batch_size, timeout, repeat=True)
        return settle_flush(reports, outcome, self.pending_usage)

    def get_statement(
        self,
        rights_holder_id: str,
        *,
        period: str = "",
        start_date: dt.date | str = "",
        end_date: dt.date | str = "",
        licensee_id: str = "",
        timeout: float | None = None,
    ) -> usage_pb2.Statement:
        """Gets a rights holder's revenue-share statement for a month or a date range.

        Every amount is an integer number of minor units of the line's currency. Allowed roles:
        admin and auditor (any rights holder), a rights holder (its own), a generator (any
        rights holder, but only its own licensee's lines).

        Args:
            rights_holder_id: The rights holder (`rh_...`).
            period: The calendar month, `YYYY-MM` (UTC); give this or the two dates.
            start_date: The first day of a date range (a `date` or `YYYY-MM-DD`), inclusive.
            end_date: The last day of the range, inclusive; the range covers at most 366 days.
            licensee_id: Only this licensee's lines.
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The statement with its lines and totals per currency; its `state` is open or closed
            for a month, range for a date range.

        Raises:
            ValueError: Unless exactly one of `period` and the two dates is given.
            InvalidArgumentError: If a field is malformed (see `field_violations`).
            NotFoundError: If the rights holder does not exist.
            PermissionDeniedError: If the key may not see this rights holder or licensee.
            CharterError: For any other failure.
        """
        request = _requests.get_statement(
            rights_holder_id, period=period, start_date=start_date, end_date=end_date, licensee_id=licensee_id
        )
        response: usage_service_pb2.GetStatementResponse = self._unary(self._usage.GetStatement, request, timeout)
        return response.statement

    def list_statements(
        self,
        *,
        rights_holder_id: str = "",
        licensee_id: str = "",
        page_size: int = 0,
        timeout: float | None = None,
    ) -> Iterator[usage_pb2.Statement]:
        """Lists monthly statements (totals, no lines), newest month first, fetching pages as iterated.

        A month is listed when a rights holder's characters were used in it, or when it was
        closed. Allowed roles: admin and auditor; a rights holder sees its own statements; a
        generator its own licensee's usage.

        Args:
            rights_holder_id: Only this rights holder's statements.
            licensee_id: Only this licensee's usage.
            page_size: Statements per call; 0 for the server's default.
            timeout: The deadline of each page's call in seconds.

        Returns:
            An iterator over the statements. Calls happen during iteration, so errors are
            raised from the iteration too.

        Raises:
            CharterError: If a page cannot be fetched.
        """
        request = usage_service_pb2.ListStatementsRequest(
            rights_holder_id=rights_holder_id, licensee_id=licensee_id, page_size=page_size
        )
        return self._paginate(self._usage.ListStatements, request, lambda r: r.statements, timeout)

    def close_statement_period(
        self, rights_holder_id: str, *, period: str, timeout: float | None = None
    ) -> usage_pb2.Statement:
        """Closes a rights holder's calendar month, which must have ended. Allowed roles: admin.

        A closed statement never changes: records that arrive late for it count in the next
        open month, as adjustments naming it.

        Args:
            rights_holder_id: The rights holder (`rh_...`).
            period: The month, `YYYY-MM` (UTC).
            timeout: The deadline of this call in seconds, instead of the default.

        Returns:
            The closed statement, with its lines and totals.

        Raises:
            InvalidArgumentError: If a field is malformed.
            NotFoundError: If the rights holder does not exist.
            FailedPreconditionError: If the month is already closed (`STATEMENT_PERIOD_CLOSED`)
                or has not ended (`STATEMENT_PERIOD_NOT_ENDED`).
            CharterError: For any other failure.
        """
        request = usage_service_pb2.CloseStatementPeriodRequest(rights_holder_id=rights_holder_id, period=period)
        response: usage_service_pb2.CloseStatementPeriodResponse = self._unary(
            self._usage.CloseStatementPeriod, request, timeout
        )
        return response.statement

    def _send_usage(
        self, records: list[usage_pb2.UsageRecord], batch_size: int, timeout: float | None, *, repeat: bool
    ) -> SendOutcome:
        """Sends records in batches until one fails; never raises a `CharterError`."""
        results: list[UsageResult] = []
        for start in range(0, len(records), batch_size):
            request = usage_service_pb2.ReportUsageRequest(records=records[start : start + batch_size])
            try:
                response = self._report_batch(request, timeout, repeat=repeat)
            except CharterError as error:
                return results, start, error
            results.extend(UsageResult.from_proto(result, offset=start) for result in response.results)
        return results, len(records), None

    def _report_batch(
        self, request: usage_service_pb2.ReportUsageRequest, timeout: float | None, *, repeat: bool
    ) -> usage_service_pb2.ReportUsageResponse:
        # gRPC retries UNAVAILABLE within the deadline by itself; a deadline that passed is
        # retried here with a fresh one, which the idempotency keys make safe.
        for delay in retry_delays(self._config.retry) if repeat else ():
            try:
                response: usage_service_pb2.ReportUsageResponse = self._unary(self._usage.ReportUsage, request, timeout)
            except DeadlineExceededError:
                time.sleep(delay)
                continue
            return response
        last: usage_service_pb2.ReportUsageResponse = self._unary(self._usage.ReportUsage, request, timeout)
        return last

    def _report_license(self, granted: License, timeout: float | None) -> None:
        """Reports a clean exit of a `license` block; never raises (see `License`)."""
        reports = granted.usage_reports(dt.datetime.now(dt.UTC))
        if not reports:
            return
        # One attempt, with gRPC's own retries of UNAVAILABLE: a hung server delays the block's
        # exit by one deadline at most, and flush_usage() sends the report again later.
        outcome = self._send_usage([r.to_proto() for r in reports], MAX_BATCH_SIZE, timeout, repeat=False)
        settle_license_report(granted, reports, outcome, self.pending_usage)


class RevocationWatch:
    """An open revocation stream, returned by `Client.watch_revocations`.

    Iterate it for `charter.v1.grant_pb2.RevocationEvent` and
    `charter.v1.authorization_service_pb2.Heartbeat` messages. `cancel` (from any thread)
    ends it; an iteration then stops quietly. Used as a context manager, leaving the block
    cancels it. A failure of the stream raises a `CharterError` subclass from the iteration.
    """

    def __init__(self, call: Any, request_id: str) -> None:
        """Wraps a started WatchRevocations call (private; use `Client.watch_revocations`).

        Args:
            call: The gRPC call: an iterator of responses with `cancel()`.
            request_id: The `x-request-id` the call was sent with.
        """
        self._call = call
        self._request_id = request_id
        self._cancelled = False

    @property
    def request_id(self) -> str:
        """The `x-request-id` the stream was opened with, for finding it in the server's log."""
        return self._request_id

    @property
    def cancelled(self) -> bool:
        """Whether `cancel` was called."""
        return self._cancelled

    def cancel(self) -> None:
        """Ends the stream; an iteration in progress stops quietly. Cancelling twice is harmless."""
        self._cancelled = True
        self._call.cancel()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> RevocationMessage:
        while not self._cancelled:
            try:
                response = next(self._call)
            except grpc.RpcError as exc:
                if self._cancelled:  # the caller's own cancel, seen by a concurrent iteration
                    break
                raise from_rpc_error(exc, request_id=self._request_id) from exc
            message = _requests.revocation_message(response)
            if message is not None:
                return message
        raise StopIteration

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cancel()

    def __repr__(self) -> str:
        return f"RevocationWatch(request_id={self._request_id!r}, cancelled={self._cancelled})"
