"""Reading the JSON form of a catalogue import file (the fields are documented in
`charter.catalog_file`)."""

from __future__ import annotations

import json
from typing import Any

from charter import _requests
from charter._catalog_rows import REQUIRED_CSV_COLUMNS, CatalogFileError, CatalogRow, RowError, check_duplicate
from charter._catalog_terms import InvalidEntry, TermsOverride, json_type, terms_override
from charter.errors import FieldViolation
from charter.v1 import character_pb2


def parse_json(text: str) -> list[CatalogRow | RowError]:
    """Reads a JSON import file (see `charter.catalog_file` for the fields).

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
        entries.append(check_duplicate(_json_row(number, item), seen))
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
        return RowError(number, "", (FieldViolation("row", f"must be an object, not {json_type(item)}"),))
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
            violations.append(FieldViolation(key, f"must be a string, not {json_type(value)}"))
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
        violations.append(FieldViolation(key, f"must be a list of alias objects, not {json_type(aliases)}"))
    else:
        for index, entry in enumerate(aliases):
            try:
                character.aliases.append(_json_alias(entry, f"{key}[{index}]"))
            except InvalidEntry as exc:
                violations.extend(exc.violations)
    key, template = values.get("terms_template", ("terms_template", ""))
    if not isinstance(template, str):
        violations.append(FieldViolation(key, f"must be a template name, not {json_type(template)}"))
        template = ""
    terms: TermsOverride | None = None
    if "terms" in values:
        key, data = values["terms"]
        try:
            terms = terms_override(data, key)
        except InvalidEntry as exc:
            violations.extend(exc.violations)
    if violations:
        return RowError(number, external_id, tuple(violations))
    return CatalogRow(number, character, template.strip(), terms)


def _json_alias(entry: object, path: str) -> character_pb2.Alias:
    if not isinstance(entry, dict):
        raise InvalidEntry(path, f"must be an object with value and language, not {json_type(entry)}")
    unknown = sorted(set(entry) - _ALIAS_KEYS - {"normalized"})
    if unknown:
        raise InvalidEntry(f"{path}.{unknown[0]}", "is not a field of an alias")
    value, language = entry.get("value", ""), entry.get("language", "")
    kind, ambiguous = entry.get("kind", "nickname"), entry.get("ambiguous", False)
    for name, item in (("value", value), ("language", language)):
        if not isinstance(item, str) or not item.strip():
            raise InvalidEntry(f"{path}.{name}", "is required and must be a string")
    if not isinstance(ambiguous, bool):
        raise InvalidEntry(f"{path}.ambiguous", f"must be true or false, not {json_type(ambiguous)}")
    if isinstance(kind, bool) or not isinstance(kind, int | str):
        raise InvalidEntry(f"{path}.kind", f"must be a kind name, not {json_type(kind)}")
    try:
        # KIND_UNSPECIFIED would mean nickname on the server; writing it out keeps a
        # re-import of the same file identical to what was stored.
        return _requests.alias(value, language, kind or "nickname", ambiguous=ambiguous)
    except ValueError as exc:
        raise InvalidEntry(f"{path}.kind", str(exc)) from None
