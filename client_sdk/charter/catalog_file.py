"""The catalogue import files: the documented CSV and JSON formats, read into import rows.

Everything here is pure (no calls to the server), so anyone can check a file
before importing it. `charter characters import` uses it; so can a script:

```python
from charter import catalog_file

entries = catalog_file.load("catalogue.csv")
templates = client.list_terms_templates()
rows, failed = [], []
for entry in entries:
    resolved = entry if isinstance(entry, catalog_file.RowError) else catalog_file.resolve(entry, templates)
    (failed if isinstance(resolved, catalog_file.RowError) else rows).append(resolved)
for start in range(0, len(rows), 100):
    results = client.import_characters(holder_id, rows[start : start + 100])
```

Reading yields, per character in the file, either a `CatalogRow` or a
`RowError` naming the row, the field and what is wrong with it: a malformed
row never stops the rest. Only the shape of the file is checked here; the
server validates the values (lengths, URLs, language tags, terms) and reports
its findings per row in `ImportRowResult`.

**JSON**: a list of objects, or an object `{"characters": [...]}`. Each object
has the `Character` fields in protobuf JSON, snake_case or camelCase:
`external_id` (required), `canonical_name` (required), `franchise`,
`description`, `reference_urls` (a list of strings) and `aliases` (a list of
`{"value", "language", "kind", "ambiguous"}` objects), plus optionally
`terms` (a `Terms` object in protobuf JSON) and `terms_template` (a template
name). Output-only fields (`id`, `rights_holder_id`, `state`, `terms_version`,
`create_time`, `update_time`, an alias's `normalized`) are ignored, so the
output of `charter characters list --json` can be read back; any other key is
an error.

**CSV** (UTF-8, a header row naming the columns, in any order): `external_id`
(required), `canonical_name` (required), `franchise`, `description`,
`reference_urls` (separated by `;`), `aliases` (entries separated by `;`, each
`value|language|kind|ambiguous` with `kind` and `ambiguous` optional),
`terms_template` and `terms_json` (a JSON object of `Terms`). Unknown columns
are an error; blank rows are skipped.

In both formats an alias kind is one of `official_name`, `short_name`,
`nickname`, `romanization`, `translation` (the `KIND_` names work too) and
defaults to `nickname`; enum values in terms may be given short, for example
`"video_generation"` for `USE_TYPE_VIDEO_GENERATION`. When a row has a
template and terms, the row's terms start from the template's and each field
the row gives replaces the template's value of that field (lists replaced
whole, not appended to).

Row numbers: in a CSV file the row number a spreadsheet shows (the header is
row 1, so the first character is row 2); in a JSON file the position of the
object in the list, from 1.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from charter import _requests
from charter.errors import FieldViolation
from charter.v1 import catalog_service_pb2, character_pb2, terms_pb2

__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "REQUIRED_CSV_COLUMNS",
    "CatalogFileError",
    "CatalogRow",
    "RowError",
    "TermsOverride",
    "load",
    "parse",
    "parse_alias_entry",
    "parse_csv",
    "parse_json",
    "resolve",
    "terms_from_json",
]

FORMATS: tuple[str, ...] = ("csv", "json")
"""The file formats `load` and `parse` read."""

CSV_COLUMNS: tuple[str, ...] = (
    "external_id",
    "canonical_name",
    "franchise",
    "description",
    "reference_urls",
    "aliases",
    "terms_template",
    "terms_json",
)
"""Every column a CSV import file may have, in the documented order."""

REQUIRED_CSV_COLUMNS: tuple[str, ...] = ("external_id", "canonical_name")
"""The columns a CSV import file must have (and every row must fill)."""

# The reasons a RowError carries: ErrorReason names, as the server puts in ImportRowResult.
_INVALID_FIELD = "INVALID_FIELD"
_EXTERNAL_ID_CONFLICT = "EXTERNAL_ID_CONFLICT"

_LIST_SEPARATOR = ";"
_ALIAS_PART_SEPARATOR = "|"
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0", ""})

# Terms fields the server sets; accepted in files (so `charter terms show --json` output
# reads back) and then dropped.
_TERMS_OUTPUT_ONLY = frozenset({"version", "character_id", "create_time", "author_key_id"})


class CatalogFileError(ValueError):
    """The file as a whole cannot be read: not UTF-8, not JSON, no usable header, and the like.

    Problems of single rows are `RowError` entries instead, so the other rows
    still import.
    """


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


@dataclasses.dataclass(frozen=True, slots=True)
class CatalogRow:
    """One well-formed character of an import file, before its terms template is resolved.

    Attributes:
        row: The row number (see the module documentation).
        character: The character: external id, names, franchise, description,
            reference URLs and aliases.
        terms_template: The name of the terms template the row starts from, or `""`.
        terms: The row's own terms (`terms` in JSON, `terms_json` in CSV), laid
            over the template's; None when the row gives none.
    """

    row: int
    character: character_pb2.Character
    terms_template: str = ""
    terms: TermsOverride | None = None

    @property
    def external_id(self) -> str:
        """The row's external id."""
        return self.character.external_id


@dataclasses.dataclass(frozen=True, slots=True)
class RowError:
    """One row of an import file that cannot be imported, and why.

    Attributes:
        row: The row number (see the module documentation).
        external_id: The row's external id, or `""` when it has none.
        violations: What is wrong: each names the column or field, for example
            `aliases[1]` or `terms_json.maxContentRating`, with a description.
        reason: The `ErrorReason` name, as `ImportRowResult.error_reason`:
            `INVALID_FIELD`, or `EXTERNAL_ID_CONFLICT` for an external id that an
            earlier row of the file already has.
    """

    row: int
    external_id: str
    violations: tuple[FieldViolation, ...]
    reason: str = _INVALID_FIELD

    def to_result(self) -> catalog_service_pb2.ImportRowResult:
        """Returns the error as a failed `ImportRowResult`, like the server's failed rows.

        Returns:
            A result with outcome `OUTCOME_FAILED`; its `index` is 0, since the
            row was never sent.
        """
        return catalog_service_pb2.ImportRowResult(
            external_id=self.external_id,
            outcome=catalog_service_pb2.ImportRowResult.OUTCOME_FAILED,
            error_reason=self.reason,
            field_violations=[
                catalog_service_pb2.ImportFieldViolation(field=v.field, description=v.description)
                for v in self.violations
            ],
        )


def _clear(message: Message, names: Iterable[str]) -> None:
    # Typed as Message: the generated stubs accept only literal field names.
    for name in names:
        message.ClearField(name)


class _Invalid(Exception):
    """Raised inside the parsers for a bad value; becomes violations of the row."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.violations = (FieldViolation(field, description),)


# -- reading ----------------------------------------------------------------------------------


def load(path: str | os.PathLike[str], *, format: str | None = None) -> list[CatalogRow | RowError]:
    """Reads an import file.

    Args:
        path: The file.
        format: `"csv"` or `"json"`; by default taken from the file's extension.

    Returns:
        One entry per character of the file, in file order.

    Raises:
        CatalogFileError: If the format is unknown or the file cannot be read as a whole.
        OSError: If the file cannot be opened.
    """
    file = Path(path)
    chosen = format or file.suffix.lower().removeprefix(".")
    if chosen not in FORMATS:
        raise CatalogFileError(
            f"cannot tell the format of {file.name} from its extension; give the format: csv or json"
        )
    return parse(file.read_bytes(), format=chosen)


def parse(data: str | bytes, *, format: str) -> list[CatalogRow | RowError]:
    """Reads the text of an import file.

    Args:
        data: The file's content; bytes must be UTF-8 (a byte-order mark is allowed).
        format: `"csv"` or `"json"`.

    Returns:
        One entry per character, in file order.

    Raises:
        CatalogFileError: If the format is unknown or the text cannot be read as a whole.
    """
    text = _decode(data)
    if format == "csv":
        return parse_csv(text)
    if format == "json":
        return parse_json(text)
    raise CatalogFileError(f"unknown format {format!r}; expected csv or json")


def _decode(data: str | bytes) -> str:
    if isinstance(data, str):
        return data
    try:
        # utf-8-sig drops the byte-order mark spreadsheet programs like to write.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CatalogFileError(f"the file is not UTF-8: undecodable byte at offset {exc.start}") from None


def parse_csv(text: str) -> list[CatalogRow | RowError]:
    """Reads a CSV import file (see the module documentation for the columns).

    Args:
        text: The file's text.

    Returns:
        One entry per non-blank row after the header, in file order.

    Raises:
        CatalogFileError: If there is no header, it lacks a required column, names
            an unknown or repeated column, or the CSV cannot be tokenised.
    """
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    entries: list[CatalogRow | RowError] = []
    seen: dict[str, int] = {}
    try:
        header_cells = next(reader, None)
        if header_cells is None or not any(cell.strip() for cell in header_cells):
            raise CatalogFileError("the CSV file has no header row; the first row must name the columns")
        header = _csv_header(header_cells)
        for number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            entry = _csv_row(number, header, cells)
            entries.append(_check_duplicate(entry, seen))
    except csv.Error as exc:
        raise CatalogFileError(f"the CSV cannot be read at line {reader.line_num}: {exc}") from None
    return entries


def _csv_header(cells: list[str]) -> list[str]:
    names = [cell.strip().lower() for cell in cells]
    unknown = [name for name in names if name and name not in CSV_COLUMNS]
    if unknown:
        raise CatalogFileError(f"unknown CSV column(s) {', '.join(unknown)}; the columns are {', '.join(CSV_COLUMNS)}")
    repeated = sorted({name for name in names if name and names.count(name) > 1})
    if repeated:
        raise CatalogFileError(f"repeated CSV column(s) {', '.join(repeated)}")
    missing = [name for name in REQUIRED_CSV_COLUMNS if name not in names]
    if missing:
        raise CatalogFileError(f"the CSV header lacks the required column(s) {', '.join(missing)}")
    return names


def _csv_row(number: int, header: list[str], cells: list[str]) -> CatalogRow | RowError:
    values = {name: cell.strip() for name, cell in zip(header, cells, strict=False) if name}
    external_id = values.get("external_id", "")
    violations: list[FieldViolation] = []
    if len(cells) > len(header):
        violations.append(FieldViolation("row", f"has {len(cells)} cells but the header names {len(header)} columns"))
    violations.extend(
        FieldViolation(f"column {index + 1}", "has a value but no name in the header")
        for index, (name, cell) in enumerate(zip(header, cells, strict=False))
        if not name and cell.strip()
    )
    character = character_pb2.Character(
        external_id=external_id,
        canonical_name=values.get("canonical_name", ""),
        franchise=values.get("franchise", ""),
        description=values.get("description", ""),
        reference_urls=_split(values.get("reference_urls", "")),
    )
    violations.extend(FieldViolation(name, "is required") for name in REQUIRED_CSV_COLUMNS if not values.get(name))
    for index, entry in enumerate(_split(values.get("aliases", ""))):
        try:
            character.aliases.append(parse_alias_entry(entry))
        except ValueError as exc:
            violations.append(FieldViolation(f"aliases[{index}]", f"{entry!r}: {exc}"))
    terms: TermsOverride | None = None
    terms_json = values.get("terms_json", "")
    if terms_json:
        try:
            data = json.loads(terms_json)
        except json.JSONDecodeError as exc:
            violations.append(FieldViolation("terms_json", f"is not valid JSON: {exc.msg} at character {exc.pos + 1}"))
        else:
            try:
                terms = _terms_override(data, "terms_json")
            except _Invalid as exc:
                violations.extend(exc.violations)
    if violations:
        return RowError(number, external_id, tuple(violations))
    return CatalogRow(number, character, values.get("terms_template", ""), terms)


def _split(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(_LIST_SEPARATOR) if part.strip()]


def parse_alias_entry(text: str) -> character_pb2.Alias:
    """Reads one alias written as `value|language|kind|ambiguous`, as in the CSV `aliases` column.

    `kind` and `ambiguous` are optional: `ミク|ja|short_name`, `Miku|ja-Latn`,
    `Blue|en|nickname|true`. Spaces around the parts are ignored.

    Args:
        text: The alias entry.

    Returns:
        The alias; its kind is `KIND_NICKNAME` when none is given.

    Raises:
        ValueError: If the value or language is missing, the kind is unknown, the
            ambiguous flag is not true or false, or there are more than four parts.
    """
    parts = [part.strip() for part in text.split(_ALIAS_PART_SEPARATOR)]
    if len(parts) > 4:
        raise ValueError("has more than 4 parts; write value|language|kind|ambiguous")
    value, language, kind, ambiguous = (*parts, "", "", "")[:4]
    if not value:
        raise ValueError("the alias value is empty")
    if not language:
        raise ValueError("the language is missing; write value|language, for example ミク|ja")
    flag = ambiguous.lower()
    if flag not in _TRUE | _FALSE:
        raise ValueError(f"ambiguous must be true or false, not {ambiguous!r}")
    return _requests.alias(value, language, kind or "nickname", ambiguous=flag in _TRUE)


def parse_json(text: str) -> list[CatalogRow | RowError]:
    """Reads a JSON import file (see the module documentation for the fields).

    Args:
        text: The file's text.

    Returns:
        One entry per object of the list, in order.

    Raises:
        CatalogFileError: If the text is not JSON, or neither a list nor an object
            with a `characters` list.
    """
    try:
        data = json.loads(text.removeprefix("\ufeff"))
    except json.JSONDecodeError as exc:
        raise CatalogFileError(
            f"the file is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    if isinstance(data, dict) and set(data) == {"characters"}:
        data = data["characters"]
    if not isinstance(data, list):
        raise CatalogFileError('the JSON file must hold a list of characters, or {"characters": [...]}')
    entries: list[CatalogRow | RowError] = []
    seen: dict[str, int] = {}
    for number, item in enumerate(data, start=1):
        entries.append(_check_duplicate(_json_row(number, item), seen))
    return entries


_CHARACTER_KEYS = {
    "external_id": "external_id",
    "externalId": "external_id",
    "canonical_name": "canonical_name",
    "canonicalName": "canonical_name",
    "franchise": "franchise",
    "description": "description",
    "reference_urls": "reference_urls",
    "referenceUrls": "reference_urls",
    "aliases": "aliases",
    "terms": "terms",
    "terms_template": "terms_template",
    "termsTemplate": "terms_template",
}
_CHARACTER_OUTPUT_ONLY = frozenset(
    {
        "id",
        "rights_holder_id",
        "rightsHolderId",
        "state",
        "terms_version",
        "termsVersion",
        "create_time",
        "createTime",
        "update_time",
        "updateTime",
    }
)
_ALIAS_KEYS = frozenset({"value", "language", "kind", "ambiguous"})


def _json_row(number: int, item: object) -> CatalogRow | RowError:
    if not isinstance(item, dict):
        return RowError(number, "", (FieldViolation("row", f"must be an object, not {_json_type(item)}"),))
    raw_id = item.get("external_id", item.get("externalId", ""))
    external_id = raw_id if isinstance(raw_id, str) else ""
    violations: list[FieldViolation] = []
    values: dict[str, tuple[str, Any]] = {}
    for key, value in item.items():
        if key in _CHARACTER_OUTPUT_ONLY:
            continue
        name = _CHARACTER_KEYS.get(key)
        if name is None:
            violations.append(FieldViolation(key, "is not a field of an import row"))
        elif name in values:
            violations.append(FieldViolation(key, f"is given twice (also as {values[name][0]})"))
        else:
            values[name] = (key, value)
    character = character_pb2.Character()
    for name in ("external_id", "canonical_name", "franchise", "description"):
        key, value = values.get(name, (name, ""))
        if not isinstance(value, str):
            violations.append(FieldViolation(key, f"must be a string, not {_json_type(value)}"))
        elif not value.strip() and name in REQUIRED_CSV_COLUMNS:
            violations.append(FieldViolation(key, "is required"))
        else:
            setattr(character, name, value)
    key, urls = values.get("reference_urls", ("reference_urls", []))
    if not isinstance(urls, list) or not all(isinstance(url, str) for url in urls):
        violations.append(FieldViolation(key, "must be a list of strings"))
    else:
        character.reference_urls.extend(urls)
    key, aliases = values.get("aliases", ("aliases", []))
    if not isinstance(aliases, list):
        violations.append(FieldViolation(key, f"must be a list of alias objects, not {_json_type(aliases)}"))
    else:
        for index, entry in enumerate(aliases):
            try:
                character.aliases.append(_json_alias(entry, f"{key}[{index}]"))
            except _Invalid as exc:
                violations.extend(exc.violations)
    key, template = values.get("terms_template", ("terms_template", ""))
    if not isinstance(template, str):
        violations.append(FieldViolation(key, f"must be a template name, not {_json_type(template)}"))
        template = ""
    terms: TermsOverride | None = None
    if "terms" in values:
        key, data = values["terms"]
        try:
            terms = _terms_override(data, key)
        except _Invalid as exc:
            violations.extend(exc.violations)
    if violations:
        return RowError(number, external_id, tuple(violations))
    return CatalogRow(number, character, template.strip(), terms)


def _json_alias(entry: object, path: str) -> character_pb2.Alias:
    if not isinstance(entry, dict):
        raise _Invalid(path, f"must be an object with value and language, not {_json_type(entry)}")
    unknown = sorted(set(entry) - _ALIAS_KEYS - {"normalized"})
    if unknown:
        raise _Invalid(f"{path}.{unknown[0]}", "is not a field of an alias")
    value, language = entry.get("value", ""), entry.get("language", "")
    kind, ambiguous = entry.get("kind", "nickname"), entry.get("ambiguous", False)
    for name, item in (("value", value), ("language", language)):
        if not isinstance(item, str) or not item.strip():
            raise _Invalid(f"{path}.{name}", "is required and must be a string")
    if not isinstance(ambiguous, bool):
        raise _Invalid(f"{path}.ambiguous", f"must be true or false, not {_json_type(ambiguous)}")
    if isinstance(kind, bool) or not isinstance(kind, int | str):
        raise _Invalid(f"{path}.kind", f"must be a kind name, not {_json_type(kind)}")
    try:
        # KIND_UNSPECIFIED would mean nickname on the server; writing it out keeps a
        # re-import of the same file identical to what was stored.
        return _requests.alias(value, language, kind or "nickname", ambiguous=ambiguous)
    except ValueError as exc:
        raise _Invalid(f"{path}.kind", str(exc)) from None


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), "a number")


def _check_duplicate(entry: CatalogRow | RowError, seen: dict[str, int]) -> CatalogRow | RowError:
    # The server would quietly apply both rows in turn; in a catalogue file a repeated
    # external id is almost always a copy-and-paste mistake, so the later row fails.
    if isinstance(entry, RowError):
        return entry
    first = seen.setdefault(entry.external_id, entry.row)
    if first == entry.row:
        return entry
    return RowError(
        entry.row,
        entry.external_id,
        (FieldViolation("external_id", f"repeats the external id of row {first}"),),
        reason=_EXTERNAL_ID_CONFLICT,
    )


# -- terms ------------------------------------------------------------------------------------


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
        return _terms_override(data, "terms")
    except _Invalid as exc:
        raise ValueError(str(exc)) from None


_TERMS_FIELDS: dict[str, FieldDescriptor] = {}
for _field in terms_pb2.Terms.DESCRIPTOR.fields:
    _TERMS_FIELDS[_field.name] = _field
    _TERMS_FIELDS[_field.json_name] = _field


def _terms_override(data: object, path: str) -> TermsOverride:
    if not isinstance(data, dict):
        raise _Invalid(path, f"must be a JSON object of terms, not {_json_type(data)}")
    result = terms_pb2.Terms()
    fields: dict[str, str] = {}
    for key, value in data.items():
        field = _TERMS_FIELDS.get(key)
        if field is None:
            raise _Invalid(f"{path}.{key}", "is not a field of Terms")
        if field.name in fields:
            raise _Invalid(f"{path}.{key}", f"is given twice (also as {fields[field.name]})")
        fields[field.name] = key
        if field.name in _TERMS_OUTPUT_ONLY:
            continue
        one = terms_pb2.Terms()
        try:
            json_format.ParseDict({field.json_name: _expand_enums(field, value, f"{path}.{key}")}, one)
        except json_format.ParseError as exc:
            raise _Invalid(f"{path}.{key}", _parse_error_text(exc)) from None
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
            raise _Invalid(item_path, f"unknown value {item!r}; expected one of {choices}")
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


# -- templates --------------------------------------------------------------------------------


def resolve(
    row: CatalogRow, templates: Iterable[terms_pb2.TermsTemplate] | Mapping[str, terms_pb2.TermsTemplate]
) -> catalog_service_pb2.ImportRow | RowError:
    """Turns a row into an `ImportRow`, resolving its terms template.

    The row's terms start from its template's terms (when it names one), and
    each field the row's own terms give replaces the template's value.

    Args:
        row: A row read from an import file.
        templates: The templates (`Client.list_terms_templates()`), as a list or
            by name.

    Returns:
        The row to send, or a `RowError` on `terms_template` when the template
        does not exist.
    """
    base: terms_pb2.Terms | None = None
    if row.terms_template:
        by_name = templates if isinstance(templates, Mapping) else {t.name: t for t in templates}
        template = by_name.get(row.terms_template)
        if template is None:
            known = ", ".join(sorted(by_name)) or "none"
            return RowError(
                row.row,
                row.external_id,
                (FieldViolation("terms_template", f"unknown template {row.terms_template!r}; known: {known}"),),
            )
        base = template.terms
    result = catalog_service_pb2.ImportRow(character=row.character)
    if row.terms is not None:
        result.terms.CopyFrom(row.terms.over(base))
    elif base is not None:
        result.terms.CopyFrom(TermsOverride(terms_pb2.Terms(), frozenset()).over(base))
    return result
