"""Display names by id: what lists and statements show next to the ids they carry."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from charter_server.domain.models import DisplayNames
from charter_server.storage.tables import CharacterRow, LicenseeRow, RightsHolderRow

# Ids per IN list: far below every backend's limit on bound parameters.
_CHUNK = 500


def _chunks(ids: Collection[str]) -> Iterator[list[str]]:
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start : start + _CHUNK]


class DisplayNameRepository:
    """Looks up the names of characters, licensees and rights holders, a few queries per kind."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def lookup(
        self,
        *,
        character_ids: Collection[str] = (),
        licensee_ids: Collection[str] = (),
        rights_holder_ids: Collection[str] = (),
    ) -> DisplayNames:
        """The current names of the given ids; ids that name nothing are left out."""
        return DisplayNames(
            characters=self._names(CharacterRow.id, CharacterRow.canonical_name, character_ids),
            licensees=self._names(LicenseeRow.id, LicenseeRow.display_name, licensee_ids),
            rights_holders=self._names(RightsHolderRow.id, RightsHolderRow.display_name, rights_holder_ids),
        )

    def _names(self, id_column: Any, name_column: Any, ids: Collection[str]) -> dict[str, str]:
        names: dict[str, str] = {}
        for chunk in _chunks(ids):
            rows = self._session.execute(select(id_column, name_column).where(id_column.in_(chunk)))
            names.update((str(row_id), str(name)) for row_id, name in rows)
        return names
