"""Reading the CSV form of a catalogue import file (the columns are documented in
`charter.catalog_file`)."""

from __future__ import annotations

import csv
import io
import json

from charter import _requests
from charter._catalog_rows import (
    CSV_COLUMNS,
    REQUIRED_CSV_COLUMNS,
    CatalogFileError,
    CatalogRow,
    RowError,
    check_duplicate,
)
from charter._catalog_terms import InvalidEntry, TermsOverride, terms_override
from charter.errors import FieldViolation
from charter.v1 import character_pb2

_LIST_SEPARATOR = ";"
_ALIAS_PART_SEPARATOR = "|"
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0", ""})


def parse_csv(text: str) -> list[CatalogRow | RowError]:
    """Reads a CSV import file (see `charter.catalog_file` for the columns).

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
            entries.append(check_duplicate(entry, seen))
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
                terms = terms_override(data, "terms_json")
            except InvalidEntry as exc:
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
