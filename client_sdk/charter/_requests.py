"""Request building shared by `Client` and `AsyncClient`.

Pure functions from the clients' Python arguments to request messages: enum
parsing, timestamps, field masks and the create/list/update requests, plus the
few pure response helpers both clients need (unwrapping a stream message). A new
resource adds its builders here and thin methods to both clients.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeAlias, TypeVar

from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from google.protobuf.message import Message

from charter import envelope as _envelope
from charter._options import new_request_id
from charter.usage import MAX_BATCH_SIZE, UsageReport
from charter.v1 import (
    access_service_pb2,
    api_key_pb2,
    authorization_service_pb2,
    catalog_service_pb2,
    character_pb2,
    decision_pb2,
    envelope_pb2,
    grant_pb2,
    grant_service_pb2,
    licensee_pb2,
    rights_holder_pb2,
    terms_pb2,
    usage_pb2,
    usage_service_pb2,
)

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

_V = TypeVar("_V", bound=int)


def parse_enum(wrapper: _EnumTypeWrapper[_V], value: int | str, *, prefix: str, what: str) -> _V:
    """Returns the enum number for a value given as a number or a name.

    Names are case-insensitive, may omit the prefix and may use `-` for `_`, so
    `"admin"`, `"ROLE_ADMIN"` and `"Role_Admin"` all name ROLE_ADMIN, and
    `"rights-holder"` names ROLE_RIGHTS_HOLDER.

    Raises:
        ValueError: If the value names no member of the enum.
        TypeError: If the value is neither an int nor a str.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"{what} must be an enum value or its name, not {type(value).__name__}")
    if isinstance(value, int):
        for number in wrapper.values():
            if number == value:
                return number
        raise ValueError(f"unknown {what} {value!r}; expected one of {enum_choices(wrapper, prefix)}")
    name = value.strip().upper().replace("-", "_")
    if not name.startswith(prefix):
        name = prefix + name
    if name not in wrapper.DESCRIPTOR.values_by_name:
        raise ValueError(f"unknown {what} {value!r}; expected one of {enum_choices(wrapper, prefix)}")
    return wrapper.Value(name)


def enum_choices(wrapper: _EnumTypeWrapper[_V], prefix: str) -> str:
    """Returns the accepted short names of an enum, lowercase, comma-separated."""
    return ", ".join(
        value.name.removeprefix(prefix).lower()
        for value in wrapper.DESCRIPTOR.values
        if value.name != f"{prefix}UNSPECIFIED"
    )


def parse_role(value: int | str) -> api_key_pb2.Role.ValueType:
    """Returns the Role for `Role.ROLE_ADMIN`, `"admin"`, `"ROLE_ADMIN"` and the like."""
    return parse_enum(api_key_pb2.Role, value, prefix="ROLE_", what="role")


def parse_rights_holder_state(value: int | str) -> rights_holder_pb2.RightsHolder.State.ValueType:
    """Returns the RightsHolder.State for `"active"`, `"STATE_ARCHIVED"` and the like."""
    return parse_enum(rights_holder_pb2.RightsHolder.State, value, prefix="STATE_", what="state")


def parse_licensee_state(value: int | str) -> licensee_pb2.Licensee.State.ValueType:
    """Returns the Licensee.State for `"active"`, `"STATE_ARCHIVED"` and the like."""
    return parse_enum(licensee_pb2.Licensee.State, value, prefix="STATE_", what="state")


def parse_character_state(value: int | str) -> character_pb2.Character.State.ValueType:
    """Returns the Character.State for `"opted_in"`, `"STATE_SUSPENDED"` and the like."""
    return parse_enum(character_pb2.Character.State, value, prefix="STATE_", what="character state")


def parse_grant_state(value: int | str) -> grant_pb2.Grant.State.ValueType:
    """Returns the Grant.State for `"suspended"`, `"STATE_REVOKED"` and the like."""
    return parse_enum(grant_pb2.Grant.State, value, prefix="STATE_", what="grant state")


def parse_alias_kind(value: int | str) -> character_pb2.Alias.Kind.ValueType:
    """Returns the Alias.Kind for `"short_name"`, `"KIND_ROMANIZATION"` and the like."""
    return parse_enum(character_pb2.Alias.Kind, value, prefix="KIND_", what="alias kind")


def parse_use_type(value: int | str) -> terms_pb2.UseType.ValueType:
    """Returns the UseType for `"video_generation"`, `"USE_TYPE_CAMEO"` and the like."""
    return parse_enum(terms_pb2.UseType, value, prefix="USE_TYPE_", what="use type")


def parse_content_rating(value: int | str) -> terms_pb2.ContentRating.ValueType:
    """Returns the ContentRating for `"teen"`, `"CONTENT_RATING_MATURE"` and the like."""
    return parse_enum(terms_pb2.ContentRating, value, prefix="CONTENT_RATING_", what="content rating")


def parse_content_category(value: int | str) -> terms_pb2.ContentCategory.ValueType:
    """Returns the ContentCategory for `"sexual"`, `"CONTENT_CATEGORY_HATE"` and the like."""
    return parse_enum(terms_pb2.ContentCategory, value, prefix="CONTENT_CATEGORY_", what="content category")


def alias(value: str, language: str, kind: int | str = "nickname", *, ambiguous: bool = False) -> character_pb2.Alias:
    """Returns an `Alias` message: another name of a character, in one language.

    Example:
        ```python
        client.create_character(
            rights_holder_id=holder.id,
            canonical_name="Hatsune Miku",
            aliases=[
                charter.alias("初音ミク", "ja", "official_name"),
                charter.alias("Hatsune Miku", "ja-Latn", "romanization"),
                charter.alias("ミク", "ja", "short_name"),
            ],
        )
        ```

    Args:
        value: The alias as written, for example `ミク`.
        language: Its BCP 47 language tag, for example `ja`, `ja-Latn` or `en`.
        kind: What sort of name it is: `Alias.KIND_SHORT_NAME` or a name such as
            `"official_name"`, `"short_name"`, `"nickname"`, `"romanization"`,
            `"translation"` (case-insensitive, prefix optional).
        ambiguous: Whether the alias may also name another rights holder's
            character (for example a common word).

    Returns:
        The alias, ready for `aliases=` of `create_character` or `update_character`.

    Raises:
        ValueError: If `kind` names no alias kind.
        TypeError: If an argument has the wrong type.
    """
    if not isinstance(value, str) or not isinstance(language, str):
        raise TypeError("alias value and language must be strings")
    if not isinstance(ambiguous, bool):
        raise TypeError("ambiguous must be a bool")
    return character_pb2.Alias(value=value, language=language, kind=parse_alias_kind(kind), ambiguous=ambiguous)


_M = TypeVar("_M", bound=Message)


def message_list(values: Iterable[_M], kind: type[_M], *, what: str, builder: str) -> list[_M]:
    """Returns messages as a list, checking that each is a ``kind`` message (made by ``builder``).

    Raises:
        TypeError: If the value is a string or holds anything but ``kind`` messages.
    """
    name = kind.DESCRIPTOR.name
    if isinstance(values, str | bytes):
        raise TypeError(f"{what} must be a list of {name} messages (see {builder}), not a string")
    result = list(values)
    for item in result:
        if not isinstance(item, kind):
            raise TypeError(f"{what} must hold {name} messages (see {builder}), not {type(item).__name__}")
    return result


def alias_list(values: Iterable[character_pb2.Alias], *, what: str = "aliases") -> list[character_pb2.Alias]:
    """Returns aliases as a list, checking that each is an `Alias` message.

    Raises:
        TypeError: If the value is a string or holds anything but `Alias` messages.
    """
    return message_list(values, character_pb2.Alias, what=what, builder="charter.alias")


def string_list(values: Iterable[str], *, what: str) -> list[str]:
    """Returns strings as a list; a lone string is refused rather than split into characters.

    Raises:
        TypeError: If the value is a string or holds anything but strings.
    """
    if isinstance(values, str | bytes):
        raise TypeError(f"{what} must be a list of strings, not a single string")
    result = list(values)
    for item in result:
        if not isinstance(item, str):
            raise TypeError(f"{what} must hold strings, not {type(item).__name__}")
    return result


def check_terms(value: terms_pb2.Terms) -> terms_pb2.Terms:
    """Returns the terms, checking their type.

    Raises:
        TypeError: If the value is not a `Terms` message.
    """
    if not isinstance(value, terms_pb2.Terms):
        raise TypeError(f"terms must be a charter.v1.terms_pb2.Terms message, not {type(value).__name__}")
    return value


def timestamp(value: dt.datetime, *, what: str) -> timestamp_pb2.Timestamp:
    """Returns a Timestamp for an aware datetime.

    Raises:
        ValueError: If the datetime is naive; guessing its zone would silently
            shift an expiry by hours.
    """
    if not isinstance(value, dt.datetime):
        raise TypeError(f"{what} must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, for example datetime.now(UTC)")
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(value.astimezone(dt.UTC))
    return result


def apply_changes(resource: Message, changes: Mapping[str, object]) -> field_mask_pb2.FieldMask:
    """Sets the non-None changes on a resource and returns the mask naming them.

    An explicit mask lets a caller clear an optional field by passing `""` (or a
    list field by passing an empty list), which an empty mask (update every
    non-empty field) could not express. Repeated fields are replaced whole.

    Raises:
        ValueError: If every change is None, since an update must change something.
    """
    paths: list[str] = []
    for name, value in changes.items():
        if value is None:
            continue
        if resource.DESCRIPTOR.fields_by_name[name].is_repeated:
            field = getattr(resource, name)
            del field[:]
            field.extend(value)
        else:
            setattr(resource, name, value)
        paths.append(name)
    if not paths:
        raise ValueError(f"nothing to update: give at least one of {', '.join(changes)}")
    return field_mask_pb2.FieldMask(paths=paths)


# -- rights holders ---------------------------------------------------------------------------


def create_rights_holder(
    *,
    display_name: str,
    contact_email: str,
    legal_name: str,
    revenue_share_account: str,
    request_id: str | None,
) -> catalog_service_pb2.CreateRightsHolderRequest:
    """Builds a CreateRightsHolderRequest, with a fresh request id when none is given."""
    return catalog_service_pb2.CreateRightsHolderRequest(
        rights_holder=rights_holder_pb2.RightsHolder(
            display_name=display_name,
            contact_email=contact_email,
            legal_name=legal_name,
            revenue_share_account=revenue_share_account,
        ),
        request_id=request_id or new_request_id(),
    )


def list_rights_holders(
    *, state: int | str | None, query: str, page_size: int
) -> catalog_service_pb2.ListRightsHoldersRequest:
    """Builds the first ListRightsHoldersRequest of a listing."""
    request = catalog_service_pb2.ListRightsHoldersRequest(query=query, page_size=page_size)
    if state is not None:
        request.state = parse_rights_holder_state(state)
    return request


def update_rights_holder(id: str, changes: Mapping[str, str | None]) -> catalog_service_pb2.UpdateRightsHolderRequest:
    """Builds an UpdateRightsHolderRequest whose mask names the non-None changes."""
    resource = rights_holder_pb2.RightsHolder(id=id)
    mask = apply_changes(resource, changes)
    return catalog_service_pb2.UpdateRightsHolderRequest(rights_holder=resource, update_mask=mask)


# -- licensees --------------------------------------------------------------------------------


def create_licensee(
    *,
    display_name: str,
    contact_email: str,
    platform: str,
    legal_name: str,
    request_id: str | None,
) -> catalog_service_pb2.CreateLicenseeRequest:
    """Builds a CreateLicenseeRequest, with a fresh request id when none is given."""
    return catalog_service_pb2.CreateLicenseeRequest(
        licensee=licensee_pb2.Licensee(
            display_name=display_name,
            contact_email=contact_email,
            platform=platform,
            legal_name=legal_name,
        ),
        request_id=request_id or new_request_id(),
    )


def list_licensees(
    *, state: int | str | None, query: str, platform: str, page_size: int
) -> catalog_service_pb2.ListLicenseesRequest:
    """Builds the first ListLicenseesRequest of a listing."""
    request = catalog_service_pb2.ListLicenseesRequest(query=query, platform=platform, page_size=page_size)
    if state is not None:
        request.state = parse_licensee_state(state)
    return request


def update_licensee(id: str, changes: Mapping[str, str | None]) -> catalog_service_pb2.UpdateLicenseeRequest:
    """Builds an UpdateLicenseeRequest whose mask names the non-None changes."""
    resource = licensee_pb2.Licensee(id=id)
    mask = apply_changes(resource, changes)
    return catalog_service_pb2.UpdateLicenseeRequest(licensee=resource, update_mask=mask)


# -- API keys ---------------------------------------------------------------------------------


def create_api_key(
    *,
    display_name: str,
    role: int | str,
    rights_holder_id: str,
    licensee_id: str,
    expire_time: dt.datetime | None,
    request_id: str | None,
) -> access_service_pb2.CreateApiKeyRequest:
    """Builds a CreateApiKeyRequest, with a fresh request id when none is given."""
    return access_service_pb2.CreateApiKeyRequest(
        display_name=display_name,
        role=parse_role(role),
        rights_holder_id=rights_holder_id,
        licensee_id=licensee_id,
        expire_time=None if expire_time is None else timestamp(expire_time, what="expire_time"),
        request_id=request_id or new_request_id(),
    )


def list_api_keys(
    *, role: int | str | None, show_inactive: bool, page_size: int
) -> access_service_pb2.ListApiKeysRequest:
    """Builds the first ListApiKeysRequest of a listing."""
    request = access_service_pb2.ListApiKeysRequest(show_inactive=show_inactive, page_size=page_size)
    if role is not None:
        request.role = parse_role(role)
    return request


# -- characters -------------------------------------------------------------------------------


def create_character(
    *,
    rights_holder_id: str,
    canonical_name: str,
    franchise: str,
    description: str,
    reference_urls: Iterable[str],
    aliases: Iterable[character_pb2.Alias],
    external_id: str,
    request_id: str | None,
    canonical_name_ambiguous: bool = False,
    keyword_sets: Iterable[character_pb2.KeywordSet] = (),
) -> catalog_service_pb2.CreateCharacterRequest:
    """Builds a CreateCharacterRequest, with a fresh request id when none is given."""
    return catalog_service_pb2.CreateCharacterRequest(
        character=character_pb2.Character(
            rights_holder_id=rights_holder_id,
            canonical_name=canonical_name,
            franchise=franchise,
            description=description,
            reference_urls=string_list(reference_urls, what="reference_urls"),
            aliases=alias_list(aliases),
            external_id=external_id,
            canonical_name_ambiguous=canonical_name_ambiguous,
            keyword_sets=keyword_set_list(keyword_sets),
        ),
        request_id=request_id or new_request_id(),
    )


def keyword_set(name: str, *keywords: str | Iterable[str]) -> character_pb2.KeywordSet:
    """Returns a `KeywordSet` message: a description of a character by 2 to 6 keywords.

    A prompt that contains every keyword (any of its variants), in any order, is a detection of
    kind DESCRIPTION naming the set. Best-effort: see the README's screening section.

    Example:
        ```python
        client.add_keyword_set(character.id, charter.keyword_set(
            "plumber game", ("videogame", "video game", "ビデオゲーム"), ("plumber", "配管工")))
        ```

    Args:
        name: The set's name, unique among the character's sets.
        keywords: Each keyword: a word or phrase, or several variants of it (languages,
            spellings), any of which counts.

    Returns:
        The keyword set.

    Raises:
        TypeError: If a keyword is neither a string nor strings.
    """
    built = character_pb2.KeywordSet(name=name)
    for keyword in keywords:
        variants = [keyword] if isinstance(keyword, str) else string_list(keyword, what="keyword variants")
        built.keywords.append(character_pb2.Keyword(variants=variants))
    return built


def keyword_set_list(values: Iterable[character_pb2.KeywordSet]) -> list[character_pb2.KeywordSet]:
    """Returns keyword sets as a list, checking that each is a `KeywordSet` message.

    Raises:
        TypeError: If the value is a string or holds anything but `KeywordSet` messages.
    """
    return message_list(values, character_pb2.KeywordSet, what="keyword_sets", builder="charter.keyword_set")


class NameWarning(UserWarning):
    """A name the server registered but warns about: it may cause false detections in prompts.

    Issued (with `warnings.warn`) by `create_character` and `update_character` for each warning
    of the response; mark such a name ambiguous to have it decided only when declared.

    Attributes:
        field: The field of the name, for example `character.aliases[2].value`.
        name: The name.
        kind: `COMMON_WORD` or `TOO_SHORT`.
        language: For a common word, the language it is common in.
    """

    def __init__(self, field: str, name: str, kind: str, language: str) -> None:
        super().__init__(f"{field}: {name!r} {kind.lower().replace('_', ' ')}; consider marking it ambiguous")
        self.field = field
        self.name = name
        self.kind = kind
        self.language = language


def warn_names(found: Iterable[catalog_service_pb2.NameWarning]) -> None:
    """Issue a `NameWarning` for each warning of a response."""
    for item in found:
        kind = catalog_service_pb2.NameWarning.Kind.Name(item.kind).removeprefix("KIND_")
        warnings.warn(NameWarning(item.field, item.name, kind, item.language), stacklevel=3)


def list_characters(
    *, rights_holder_id: str, state: int | str | None, franchise: str, query: str, page_size: int
) -> catalog_service_pb2.ListCharactersRequest:
    """Builds the first ListCharactersRequest of a listing."""
    request = catalog_service_pb2.ListCharactersRequest(
        rights_holder_id=rights_holder_id, franchise=franchise, query=query, page_size=page_size
    )
    if state is not None:
        request.state = parse_character_state(state)
    return request


def update_character(
    id: str,
    *,
    canonical_name: str | None,
    franchise: str | None,
    description: str | None,
    reference_urls: Iterable[str] | None,
    aliases: Iterable[character_pb2.Alias] | None,
    external_id: str | None,
    canonical_name_ambiguous: bool | None = None,
    keyword_sets: Iterable[character_pb2.KeywordSet] | None = None,
) -> catalog_service_pb2.UpdateCharacterRequest:
    """Builds an UpdateCharacterRequest whose mask names the non-None changes; lists are replaced whole."""
    resource = character_pb2.Character(id=id)
    mask = apply_changes(
        resource,
        {
            "canonical_name": canonical_name,
            "franchise": franchise,
            "description": description,
            "reference_urls": None if reference_urls is None else string_list(reference_urls, what="reference_urls"),
            "aliases": None if aliases is None else alias_list(aliases),
            "external_id": external_id,
            "canonical_name_ambiguous": canonical_name_ambiguous,
            "keyword_sets": None if keyword_sets is None else keyword_set_list(keyword_sets),
        },
    )
    return catalog_service_pb2.UpdateCharacterRequest(character=resource, update_mask=mask)


def import_characters(
    rights_holder_id: str, rows: Iterable[catalog_service_pb2.ImportRow]
) -> catalog_service_pb2.ImportCharactersRequest:
    """Builds an ImportCharactersRequest, checking that every row is an `ImportRow`.

    Raises:
        TypeError: If a row is not an `ImportRow` message.
    """
    checked = list(rows)
    for row in checked:
        if not isinstance(row, catalog_service_pb2.ImportRow):
            raise TypeError(f"rows must hold ImportRow messages, not {type(row).__name__}")
    return catalog_service_pb2.ImportCharactersRequest(rights_holder_id=rights_holder_id, rows=checked)


# -- grants -----------------------------------------------------------------------------------


def issue_grant(
    *,
    character_id: str,
    licensee_id: str,
    expire_time: dt.datetime,
    not_before: dt.datetime | None,
    narrowed_terms: terms_pb2.Terms | None,
    request_id: str | None,
    max_uses: int | None = None,
) -> grant_service_pb2.IssueGrantRequest:
    """Builds an IssueGrantRequest, with a fresh request id when none is given.

    Raises:
        ValueError: If a time is naive.
        TypeError: If a time is not a datetime or `narrowed_terms` is not a `Terms` message.
    """
    request = grant_service_pb2.IssueGrantRequest(
        character_id=character_id,
        licensee_id=licensee_id,
        expire_time=timestamp(expire_time, what="expire_time"),
        request_id=request_id or new_request_id(),
    )
    if not_before is not None:
        request.not_before.CopyFrom(timestamp(not_before, what="not_before"))
    if narrowed_terms is not None:
        request.narrowed_terms.CopyFrom(check_terms(narrowed_terms))
    if max_uses is not None:
        if isinstance(max_uses, bool) or not isinstance(max_uses, int):
            raise TypeError(f"max_uses must be an int, not {type(max_uses).__name__}")
        request.max_uses = max_uses
    return request


def list_grants(
    *,
    character_id: str,
    licensee_id: str,
    rights_holder_id: str,
    state: int | str | None,
    page_size: int,
) -> grant_service_pb2.ListGrantsRequest:
    """Builds the first ListGrantsRequest of a listing."""
    request = grant_service_pb2.ListGrantsRequest(
        character_id=character_id,
        licensee_id=licensee_id,
        rights_holder_id=rights_holder_id,
        page_size=page_size,
    )
    if state is not None:
        request.state = parse_grant_state(state)
    return request


def verify_grant(
    envelope: envelope_pb2.Envelope | str, *, licensee_id: str, character_id: str
) -> authorization_service_pb2.VerifyGrantRequest:
    """Builds a VerifyGrantRequest carrying the envelope in its protobuf or DSSE JSON form.

    Raises:
        TypeError: If the envelope is neither an `Envelope` message nor a string.
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
    return request


# -- generation time --------------------------------------------------------------------------

RevocationMessage: TypeAlias = grant_pb2.RevocationEvent | authorization_service_pb2.Heartbeat
"""One message of the revocation stream, unwrapped: an event of the log or a heartbeat."""


def envelope_list(values: Sequence[envelope_pb2.Envelope | str], *, what: str) -> list[envelope_pb2.Envelope]:
    """Returns envelopes as messages; a string is DSSE JSON, decoded with `charter.envelope.from_json`.

    Raises:
        MalformedEnvelope: If a string is not a well-formed DSSE JSON envelope.
        TypeError: If the value is a lone string, or holds anything but envelopes and strings.
    """
    if isinstance(values, str | bytes):
        raise TypeError(f"{what} must be a list of envelopes or DSSE JSON strings, not a single string")
    result: list[envelope_pb2.Envelope] = []
    for item in values:
        if isinstance(item, envelope_pb2.Envelope):
            result.append(item)
        elif isinstance(item, str):
            result.append(_envelope.from_json(item))
        else:
            raise TypeError(
                f"{what} must hold charter.v1.envelope_pb2.Envelope messages or DSSE JSON strings,"
                f" not {type(item).__name__}"
            )
    return result


def protobuf_duration(value: dt.timedelta, *, what: str) -> duration_pb2.Duration:
    """Returns a Duration for a timedelta.

    Raises:
        TypeError: If the value is not a timedelta.
    """
    if not isinstance(value, dt.timedelta):
        raise TypeError(f"{what} must be a datetime.timedelta, not {type(value).__name__}")
    result = duration_pb2.Duration()
    result.FromTimedelta(value)
    return result


def use_context(
    *,
    use_type: int,
    content_rating: int,
    categories: Iterable[int],
    territory: str,
    commercial: bool,
    duration: dt.timedelta | None,
) -> decision_pb2.UseContext:
    """Builds a UseContext, checking that every enum value is one the contract defines.

    Raises:
        ValueError: If an enum value is unknown.
        TypeError: If an argument has the wrong type.
    """
    if isinstance(categories, str | bytes):
        raise TypeError("categories must be a list of ContentCategory values, not a string")
    if not isinstance(territory, str):
        raise TypeError(f"territory must be a string, not {type(territory).__name__}")
    if not isinstance(commercial, bool):
        raise TypeError(f"commercial must be a bool, not {type(commercial).__name__}")
    context = decision_pb2.UseContext(
        use_type=parse_use_type(use_type),
        content_rating=parse_content_rating(content_rating),
        categories=[parse_content_category(value) for value in categories],
        territory=territory,
        commercial=commercial,
    )
    if duration is not None:
        context.duration.CopyFrom(protobuf_duration(duration, what="duration"))
    return context


def authorize(
    *,
    character_ids: Sequence[str],
    prompt: str,
    use_type: int,
    content_rating: int,
    categories: Iterable[int],
    territory: str,
    commercial: bool,
    duration: dt.timedelta | None,
    grants: Sequence[envelope_pb2.Envelope | str],
    request_id: str | None,
) -> authorization_service_pb2.AuthorizeRequest:
    """Builds an AuthorizeRequest, with a fresh request id when none is given.

    The id is fixed here, once per `authorize` call, so gRPC's own retries of the call resend
    it and the server counts a quota once.

    Raises:
        MalformedEnvelope: If a grant given as a string is not well-formed DSSE JSON.
        ValueError: If an enum value is unknown.
        TypeError: If an argument has the wrong type.
    """
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string, not {type(prompt).__name__}")
    return authorization_service_pb2.AuthorizeRequest(
        character_ids=string_list(character_ids, what="character_ids"),
        prompt=prompt,
        grants=envelope_list(grants, what="grants"),
        context=use_context(
            use_type=use_type,
            content_rating=content_rating,
            categories=categories,
            territory=territory,
            commercial=commercial,
            duration=duration,
        ),
        request_id=request_id or new_request_id(),
    )


def screen_prompt(prompt: str) -> authorization_service_pb2.ScreenPromptRequest:
    """Builds a ScreenPromptRequest.

    Raises:
        TypeError: If the prompt is not a string.
    """
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string, not {type(prompt).__name__}")
    return authorization_service_pb2.ScreenPromptRequest(prompt=prompt)


def watch_revocations(since_sequence: int) -> authorization_service_pb2.WatchRevocationsRequest:
    """Builds a WatchRevocationsRequest.

    Raises:
        TypeError: If the sequence number is not an int.
        ValueError: If it is negative.
    """
    if isinstance(since_sequence, bool) or not isinstance(since_sequence, int):
        raise TypeError(f"since_sequence must be an int, not {type(since_sequence).__name__}")
    if since_sequence < 0:
        raise ValueError(f"since_sequence must not be negative, got {since_sequence}")
    return authorization_service_pb2.WatchRevocationsRequest(since_sequence=since_sequence)


def revocation_message(response: authorization_service_pb2.WatchRevocationsResponse) -> RevocationMessage | None:
    """Returns what one stream message carries: its event or its heartbeat; None when neither is set.

    A message with neither (for example one of a kind a newer server added) is skipped by the
    clients rather than handed on as an empty event.
    """
    kind = response.WhichOneof("message")
    if kind == "event":
        return response.event
    if kind == "heartbeat":
        return response.heartbeat
    return None


# -- usage and statements ---------------------------------------------------------------------


def usage_records(
    records: Iterable[UsageReport | usage_pb2.UsageRecord], *, now: dt.datetime
) -> list[usage_pb2.UsageRecord]:
    """Returns the records to send; a `UsageReport` without a time gets `now`.

    Raises:
        TypeError: If an item is neither a `UsageReport` nor a `UsageRecord` message.
    """
    if isinstance(records, str | bytes | UsageReport | usage_pb2.UsageRecord):
        raise TypeError("records must be a list of UsageReport objects or UsageRecord messages")
    result: list[usage_pb2.UsageRecord] = []
    for item in records:
        if isinstance(item, UsageReport):
            result.append(item.to_proto(now))
        elif isinstance(item, usage_pb2.UsageRecord):
            result.append(item)
        else:
            raise TypeError(
                "records must hold charter.usage.UsageReport objects or charter.v1.usage_pb2.UsageRecord"
                f" messages, not {type(item).__name__}"
            )
    return result


def check_batch_size(batch_size: int) -> int:
    """Returns the batch size, checked: 1 to `charter.usage.MAX_BATCH_SIZE` records per call.

    Raises:
        TypeError: If it is not an int.
        ValueError: If it is out of range.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise TypeError(f"batch_size must be an int, not {type(batch_size).__name__}")
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}, got {batch_size}")
    return batch_size


def _day(value: dt.date | str, what: str) -> str:
    if isinstance(value, dt.datetime):
        raise TypeError(f"{what} must be a date or 'YYYY-MM-DD', not a datetime")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return value
    raise TypeError(f"{what} must be a date or 'YYYY-MM-DD', not {type(value).__name__}")


def get_statement(
    rights_holder_id: str,
    *,
    period: str,
    start_date: dt.date | str,
    end_date: dt.date | str,
    licensee_id: str,
) -> usage_service_pb2.GetStatementRequest:
    """Builds a GetStatementRequest for a month or a date range (the server checks the formats).

    Raises:
        ValueError: Unless exactly one of `period` and the pair `start_date`, `end_date` is given.
        TypeError: If a date is neither a `date` nor a string.
    """
    start = _day(start_date, "start_date")
    end = _day(end_date, "end_date")
    if not isinstance(period, str):
        raise TypeError(f"period must be a 'YYYY-MM' string, not {type(period).__name__}")
    if bool(start) != bool(end):
        raise ValueError("start_date and end_date must be given together")
    if bool(period) == bool(start):
        raise ValueError("give either period ('YYYY-MM') or start_date and end_date, not both or neither")
    return usage_service_pb2.GetStatementRequest(
        rights_holder_id=rights_holder_id,
        period=period,
        start_date=start,
        end_date=end,
        licensee_id=licensee_id,
    )
