"""The entries read from a catalogue import file: well-formed rows and failed ones.

Part of `charter.catalog_file`, which documents the formats and exports the public names.
"""

from __future__ import annotations

import dataclasses

from charter._catalog_terms import TermsOverride
from charter.errors import FieldViolation
from charter.v1 import catalog_service_pb2, character_pb2

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


class CatalogFileError(ValueError):
    """The file as a whole cannot be read: not UTF-8, not JSON, no usable header, and the like.

    Problems of single rows are `RowError` entries instead, so the other rows
    still import.
    """


@dataclasses.dataclass(frozen=True, slots=True)
class CatalogRow:
    """One well-formed character of an import file, before its terms template is resolved.

    Attributes:
        row: The row number (see `charter.catalog_file`).
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
        row: The row number (see `charter.catalog_file`).
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


def check_duplicate(entry: CatalogRow | RowError, seen: dict[str, int]) -> CatalogRow | RowError:
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
