"""Query helpers the repositories share: substring filters and keyset pages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    func,
    or_,
)
from sqlalchemy.orm import Session

# Shared names: (normalised name, character ids, rights holder ids), and the name to continue after.


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains_text(columns: Sequence[Any], text: str) -> ColumnElement[bool]:
    """Case-insensitive substring match over several columns."""
    pattern = f"%{escape_like(text.lower())}%"
    return or_(*(func.lower(c).like(pattern, escape="\\") for c in columns))


def keyset_page(
    session: Session, stmt: Select[Any], seq_column: Any, after: int, limit: int
) -> tuple[list[Any], int | None]:
    """Run ``stmt`` as one keyset page ordered by the sequence column."""
    rows = list(session.scalars(stmt.where(seq_column > after).order_by(seq_column).limit(limit + 1)))
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, int(rows[-1].seq)
    return rows, None
