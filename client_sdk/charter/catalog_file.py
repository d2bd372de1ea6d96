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

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from charter._catalog_csv import parse_alias_entry, parse_csv
from charter._catalog_json import parse_json
from charter._catalog_rows import CSV_COLUMNS, REQUIRED_CSV_COLUMNS, CatalogFileError, CatalogRow, RowError
from charter._catalog_terms import TermsOverride, terms_from_json
from charter.errors import FieldViolation
from charter.v1 import catalog_service_pb2, terms_pb2

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
