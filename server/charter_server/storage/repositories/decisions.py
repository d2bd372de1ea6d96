"""Decisions per hour (``decision_hours``): added from each batch of logged receipts, read back by
``PreviewTerms``, pruned past their retention."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, delete, func, select
from sqlalchemy.orm import Session

from charter_server.domain.decision_history import DecidedUse, DecisionTally, digest_of
from charter_server.storage.dialect import Dialect
from charter_server.storage.tables import DecisionHourRow

_KEY = ("character_id", "hour", "licensee_id", "context_digest", "outcome")


@functools.cache
def _add_statement(dialect: Dialect) -> Any:
    """The upsert that adds a batch's counts to each row, built once per dialect."""
    table = cast(Table, DecisionHourRow.__table__)
    upsert = dialect.insert(table)
    return upsert.on_conflict_do_update(
        index_elements=list(_KEY), set_={"decisions": table.c.decisions + upsert.excluded.decisions}
    )


class DecisionHistoryRepository:
    """Decisions per character, hour, licensee, use and outcome."""

    def __init__(self, session: Session, dialect: Dialect) -> None:
        self._session = session
        self._add = _add_statement(dialect)

    def add(self, tallies: Sequence[DecisionTally]) -> None:
        """Add the counts (summed first, so each row is written once); rows go in key order, so
        concurrent batches take their row locks in one order."""
        summed: dict[tuple[str, int, str, bytes, str], tuple[str, int]] = {}
        for tally in tallies:
            text = tally.use.text()
            key = (tally.character_id, tally.hour, tally.licensee_id, digest_of(text), ",".join(tally.outcome))
            _, count = summed.get(key, (text, 0))
            summed[key] = (text, count + tally.decisions)
        if summed:
            values = [
                dict(zip(_KEY, key, strict=True), context=text, decisions=count)
                for key, (text, count) in sorted(summed.items())
            ]
            self._session.execute(self._add, values)

    def tallies(self, character_id: str, first_hour: int, end_hour: int) -> list[DecisionTally]:
        """The character's decisions in hours ``[first_hour, end_hour)``, summed over the hours (each
        tally has ``first_hour`` as its hour)."""
        rows = self._session.execute(
            select(
                DecisionHourRow.licensee_id,
                DecisionHourRow.context,
                DecisionHourRow.outcome,
                func.sum(DecisionHourRow.decisions),
            )
            .where(
                DecisionHourRow.character_id == character_id,
                DecisionHourRow.hour >= first_hour,
                DecisionHourRow.hour < end_hour,
            )
            .group_by(DecisionHourRow.licensee_id, DecisionHourRow.context, DecisionHourRow.outcome)
        )
        return [
            DecisionTally(
                character_id,
                first_hour,
                licensee_id,
                DecidedUse.parse(context),
                tuple(outcome.split(",")) if outcome else (),
                int(count),
            )
            for licensee_id, context, outcome, count in rows
        ]

    def prune(self, before_hour: int) -> int:
        """Delete the rows of hours before ``before_hour``; how many."""
        result = self._session.execute(delete(DecisionHourRow).where(DecisionHourRow.hour < before_hour))
        return int(getattr(result, "rowcount", 0) or 0)
