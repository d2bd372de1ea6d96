"""Terms in catalogue import files: protobuf JSON with short enum names, laid over a template.

Part of `charter.catalog_file`, which documents the formats and exports the public names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from charter.errors import FieldViolation
from charter.v1 import terms_pb2

# Terms fields the server sets; accepted in files (so `charter terms show --json` output
# reads back) and then dropped.
_TERMS_OUTPUT_ONLY = frozenset({"version", "character_id", "create_time", "author_key_id"})


@dataclasses.dataclass(frozen=True, slots=True)
class TermsOverride:
    """Terms given field by field, to lay over a starting point such as a template.

    Attributes:
        terms: The values of the given fields (output-only fields unset).
        fields: The names of the `Terms` fields given, for example
            `{"daily_quota", "prohibited_categories"}`. A given field replaces
            the starting point's value even when its own value is empty.
    """

    terms: terms_pb2.Terms
    fields: frozenset[str]

    def over(self, base: terms_pb2.Terms | None = None) -> terms_pb2.Terms:
        """Returns `base` with the given fields replaced; `base` itself is left alone.

        Args:
            base: The starting point, for example a template's terms; None starts
                from empty terms.

        Returns:
            New terms, with output-only fields cleared.
        """
        result = terms_pb2.Terms()
        if base is not None:
            result.CopyFrom(base)
        # Clearing first makes a given field replace the base's value: MergeFrom alone
        # would append to lists and could not set a field back to its default.
        _clear(result, self.fields)
        result.MergeFrom(self.terms)
        _clear(result, _TERMS_OUTPUT_ONLY)
        return result


def _clear(message: Message, names: Iterable[str]) -> None:
    # Typed as Message: the generated stubs accept only literal field names.
    for name in names:
        message.ClearField(name)


class InvalidEntry(Exception):
    """Raised inside the parsers for a bad value; becomes violations of the row."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.violations = (FieldViolation(field, description),)


def json_type(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), "a number")


def terms_from_json(data: object) -> TermsOverride:
    """Reads terms given as protobuf JSON (snake_case or camelCase field names).

    Enum values may be short (`"video_generation"`, `"teen"`, `"sexual"`) as well
    as full (`"USE_TYPE_VIDEO_GENERATION"`). Output-only fields (`version`,
    `character_id`, `create_time`, `author_key_id`) are accepted and dropped, so
    the output of `charter terms show --json` reads back.

    Example:
        ```python
        override = terms_from_json({"permitted_use_types": ["image_generation"], "max_content_rating": "teen"})
        terms = override.over(template.terms)
        ```

    Args:
        data: The decoded JSON object.

    Returns:
        The terms and the names of the fields the object gives.

    Raises:
        ValueError: If the object is not valid terms; the message names the field.
    """
    try:
        return terms_override(data, "terms")
    except InvalidEntry as exc:
        raise ValueError(str(exc)) from None


_TERMS_FIELDS: dict[str, FieldDescriptor] = {}
for _field in terms_pb2.Terms.DESCRIPTOR.fields:
    _TERMS_FIELDS[_field.name] = _field
    _TERMS_FIELDS[_field.json_name] = _field


def terms_override(data: object, path: str) -> TermsOverride:
    if not isinstance(data, dict):
        raise InvalidEntry(path, f"must be a JSON object of terms, not {json_type(data)}")
    result = terms_pb2.Terms()
    fields: dict[str, str] = {}
    for key, value in data.items():
        field = _TERMS_FIELDS.get(key)
        if field is None:
            raise InvalidEntry(f"{path}.{key}", "is not a field of Terms")
        if field.name in fields:
            raise InvalidEntry(f"{path}.{key}", f"is given twice (also as {fields[field.name]})")
        fields[field.name] = key
        if field.name in _TERMS_OUTPUT_ONLY:
            continue
        one = terms_pb2.Terms()
        try:
            json_format.ParseDict({field.json_name: _expand_enums(field, value, f"{path}.{key}")}, one)
        except json_format.ParseError as exc:
            raise InvalidEntry(f"{path}.{key}", _parse_error_text(exc)) from None
        result.MergeFrom(one)
    return TermsOverride(result, frozenset(name for name in fields if name not in _TERMS_OUTPUT_ONLY))


def _expand_enums(field: FieldDescriptor, value: object, path: str) -> object:
    """Returns the value with short enum names replaced by the full ones protobuf JSON wants."""
    enum = field.enum_type
    if enum is None:
        return value
    prefix = enum.values[0].name.removesuffix("UNSPECIFIED")

    def full(item: object, item_path: str) -> object:
        if not isinstance(item, str):
            return item
        name = item.strip().upper().replace("-", "_")
        if not name.startswith(prefix):
            name = prefix + name
        if name not in enum.values_by_name or name == f"{prefix}UNSPECIFIED":
            choices = ", ".join(v.name.removeprefix(prefix).lower() for v in enum.values[1:])
            raise InvalidEntry(item_path, f"unknown value {item!r}; expected one of {choices}")
        return name

    if field.is_repeated and isinstance(value, list):
        return [full(item, f"{path}[{index}]") for index, item in enumerate(value)]
    return full(value, path)


def _parse_error_text(exc: json_format.ParseError) -> str:
    text = str(exc)
    # "Failed to parse dailyQuota field: <why> at Terms.dailyQuota." -> "<why>"
    if text.startswith("Failed to parse ") and " field: " in text:
        text = text.split(" field: ", 1)[1]
    head, sep, _ = text.rpartition(" at Terms")
    return (head if sep else text).rstrip(".") or "is invalid"
