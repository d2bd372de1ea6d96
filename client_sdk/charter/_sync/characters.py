# Generated from charter/_async/characters.py by client_sdk/generate_sync.py; do not edit.
"""Characters: their records, suspension, bulk import and shared names (CatalogService)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from charter import _requests
from charter._options import new_request_id
from charter._sync._transport import Transport
from charter.v1 import catalog_service_pb2, character_pb2


class CharacterCalls(Transport):
    """Creating, reading, listing, changing, archiving, suspending and importing characters."""

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
        request = catalog_service_pb2.CreateCharacterRequest(
            character=character_pb2.Character(
                rights_holder_id=rights_holder_id,
                canonical_name=canonical_name,
                franchise=franchise,
                description=description,
                reference_urls=_requests.string_list(reference_urls, what="reference_urls"),
                aliases=_requests.alias_list(aliases),
                external_id=external_id,
                canonical_name_ambiguous=canonical_name_ambiguous,
                keyword_sets=_requests.keyword_set_list(keyword_sets),
            ),
            request_id=request_id or new_request_id(),
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
        request = catalog_service_pb2.ListCharactersRequest(
            rights_holder_id=rights_holder_id, franchise=franchise, query=query, page_size=page_size
        )
        if state is not None:
            request.state = _requests.parse_character_state(state)
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
        resource = character_pb2.Character(id=id)
        changes = {
            "canonical_name": canonical_name,
            "franchise": franchise,
            "description": description,
            "reference_urls": (
                None if reference_urls is None else _requests.string_list(reference_urls, what="reference_urls")
            ),
            "aliases": None if aliases is None else _requests.alias_list(aliases),
            "external_id": external_id,
            "canonical_name_ambiguous": canonical_name_ambiguous,
            "keyword_sets": None if keyword_sets is None else _requests.keyword_set_list(keyword_sets),
        }
        request = catalog_service_pb2.UpdateCharacterRequest(
            character=resource, update_mask=_requests.apply_changes(resource, changes)
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
        checked = list(rows)
        for row in checked:
            if not isinstance(row, catalog_service_pb2.ImportRow):
                raise TypeError(f"rows must hold ImportRow messages, not {type(row).__name__}")
        request = catalog_service_pb2.ImportCharactersRequest(rights_holder_id=rights_holder_id, rows=checked)
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
