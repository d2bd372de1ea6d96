"""The pure pieces of request building that several calls (and the CLI) share.

Enum parsing by name or number, type checks of lists, timestamps and durations, field masks,
the use context and `UseRequest` of ``authorize``, and unwrapping a stream message. Each call
builds its own request in its module of `charter._async`; what more than one call needs lives
here.
"""

from __future__ import annotations

import dataclasses
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
    api_key_pb2,
    authorization_service_pb2,
    catalog_service_pb2,
    character_pb2,
    decision_pb2,
    envelope_pb2,
    grant_pb2,
    licensee_pb2,
    rights_holder_pb2,
    terms_pb2,
    usage_pb2,
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


# -- generation time --------------------------------------------------------------------------

RevocationMessage: TypeAlias = (
    grant_pb2.RevocationEvent | authorization_service_pb2.Heartbeat | authorization_service_pb2.RevocationSkip
)
"""One message of the revocation stream, unwrapped: an event of the log, a heartbeat, or a skip of
events that are not the caller's."""


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


@dataclasses.dataclass(frozen=True, slots=True)
class UseRequest:
    """A generation backend's question, checked: may these characters be used this way? (private).

    ``authorize`` and ``license(...)`` turn their keyword arguments into one of these with `of`
    as soon as they are given, so they are checked before any call; from then on the question
    travels as this one value (``license`` hands it to the call it makes on entry).

    Attributes:
        character_ids: The declared characters.
        prompt: The prompt to screen; empty for none.
        context: The use context, its enum values checked.
        grants: The grants presented, as messages.
        request_id: The request id, fixed here so that gRPC's retries of the call resend it and
            the server counts a quota once.
    """

    character_ids: tuple[str, ...]
    prompt: str
    context: decision_pb2.UseContext
    grants: tuple[envelope_pb2.Envelope, ...]
    request_id: str

    @classmethod
    def of(
        cls,
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
    ) -> UseRequest:
        """Checks the keyword arguments of ``authorize`` (see there) and returns the question.

        Enum values given by name become numbers, grants given as DSSE JSON text become
        `Envelope` messages, and a missing request id becomes a fresh one.

        Raises:
            MalformedEnvelope: If a grant given as a string is not well-formed DSSE JSON.
            ValueError: If an enum value is unknown.
            TypeError: If an argument has the wrong type.
        """
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a string, not {type(prompt).__name__}")
        return cls(
            character_ids=tuple(string_list(character_ids, what="character_ids")),
            prompt=prompt,
            context=use_context(
                use_type=use_type,
                content_rating=content_rating,
                categories=categories,
                territory=territory,
                commercial=commercial,
                duration=duration,
            ),
            grants=tuple(envelope_list(grants, what="grants")),
            request_id=request_id or new_request_id(),
        )

    def to_proto(self) -> authorization_service_pb2.AuthorizeRequest:
        """Returns the `AuthorizeRequest` that asks the question."""
        return authorization_service_pb2.AuthorizeRequest(
            character_ids=self.character_ids,
            prompt=self.prompt,
            grants=self.grants,
            context=self.context,
            request_id=self.request_id,
        )


def revocation_message(response: authorization_service_pb2.WatchRevocationsResponse) -> RevocationMessage | None:
    """Returns what one stream message carries: its event, its heartbeat or its skip (events left
    out as not the caller's); None when none is set.

    A message with neither (for example one of a kind a newer server added) is skipped by the
    clients rather than handed on as an empty event.
    """
    kind = response.WhichOneof("message")
    if kind == "event":
        return response.event
    if kind == "heartbeat":
        return response.heartbeat
    if kind == "skip":
        return response.skip
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


def day(value: dt.date | str, *, what: str) -> str:
    """Returns a day as `YYYY-MM-DD` text (the server checks the format of text given as it is).

    Raises:
        TypeError: If the value is a datetime, or neither a date nor a string.
    """
    if isinstance(value, dt.datetime):
        raise TypeError(f"{what} must be a date or 'YYYY-MM-DD', not a datetime")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return value
    raise TypeError(f"{what} must be a date or 'YYYY-MM-DD', not {type(value).__name__}")
