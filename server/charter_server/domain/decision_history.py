"""Decisions as ``PreviewTerms`` replays them: per character, hour, licensee, use and outcome, how
many (``decision_hours``). A use is kept as canonical text, so equal uses share one row per hour."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOUR = timedelta(hours=1)


def hour_of(when: datetime) -> int:
    """The hour a time falls in: whole hours since 1970-01-01T00:00Z."""
    return (when - _EPOCH) // _HOUR


def start_of(hour: int) -> datetime:
    """The first instant of an hour of `hour_of`."""
    return _EPOCH + hour * _HOUR


@dataclass(frozen=True, slots=True)
class DecidedUse:
    """The use a character was decided for, as its receipt states it (the platform aside: a
    replay takes the licensee's platform as it is now).

    Attributes:
        use_type: A ``charter.v1.UseType`` value.
        content_rating: A ``charter.v1.ContentRating`` value.
        categories: ``charter.v1.ContentCategory`` values, ascending.
        territory: The territory code ("" when none was given).
        commercial: Whether the use was commercial.
        co_characters: The other characters of the same request, ascending.
    """

    use_type: int
    content_rating: int
    categories: tuple[int, ...]
    territory: str
    commercial: bool
    co_characters: tuple[str, ...]

    def text(self) -> str:
        """The canonical text: ``use_type;content_rating;categories;territory;commercial;co_characters``
        (lists comma-separated); `parse` reads it back."""
        categories = ",".join(str(c) for c in self.categories)
        return (
            f"{self.use_type};{self.content_rating};{categories};{self.territory};"
            f"{int(self.commercial)};{','.join(self.co_characters)}"
        )

    @staticmethod
    def parse(text: str) -> DecidedUse:
        """The use of a canonical text (as `text` wrote it)."""
        use_type, rating, categories, territory, commercial, co = text.split(";")
        return DecidedUse(
            int(use_type),
            int(rating),
            tuple(int(c) for c in categories.split(",") if c),
            territory,
            commercial == "1",
            tuple(c for c in co.split(",") if c),
        )


def digest_of(text: str) -> bytes:
    """The key of a use's canonical text (16 bytes of its SHA-256)."""
    return hashlib.sha256(text.encode()).digest()[:16]


@dataclass(frozen=True, slots=True)
class DecisionTally:
    """How many decisions about one character, in one hour, for one licensee and one use, had one
    outcome.

    Attributes:
        character_id: The character decided.
        hour: The hour (`hour_of` the decision time).
        licensee_id: The licensee that asked.
        use: The use decided.
        outcome: The deny reasons' names in the order decided; empty when allowed.
        decisions: How many.
    """

    character_id: str
    hour: int
    licensee_id: str
    use: DecidedUse
    outcome: tuple[str, ...]
    decisions: int

    @property
    def allowed(self) -> bool:
        """Whether these decisions allowed the character."""
        return not self.outcome
