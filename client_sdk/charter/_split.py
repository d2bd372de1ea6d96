"""The second pass of a search (``charter._search.Search``) for names whose letters the prompt
groups otherwise than the name does (``Pi-ka-chu``, ``Pika'chu``, ``Hatsu ne Mi ku``): the
automaton runs again over the prompt's key with its spaces skipped. See ``charter.screen``."""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from charter.decisions import Detection, DetectionRule

if TYPE_CHECKING:
    from charter._search import Entry, Search

# The rules this pass reports, read once.
_SPACED_RULE, _SKELETON_RULE = DetectionRule.SPACED, DetectionRule.SKELETON


def split_words(search: Search, found: list[Detection], limit: int) -> list[Detection]:
    """Latin names whose letters are grouped otherwise than in the name (``Pi-ka-chu``,
    ``Pika'chu``, ``Hatsu ne Mi ku``): the key's words run together are searched, and a key
    found there counts when it starts and ends on words of the key and covers two or more of
    them (`Rule.SPACED`; for the look-alike search, `Rule.SKELETON`), unless those words as
    they are spaced are a key of the same characters (the search of the key judged them).
    ``found`` is what this search found already: a hit naming only characters found there
    (decided, or as ambiguously as there) adds nothing to what the prompt decides and is
    skipped before any check, and what lies inside a detection found is not reported again.

    One more automaton pass over the key, skipping its spaces, and a few counts within each
    hit. At most `limit` detections per character and ambiguity."""
    key = search._key
    if " " not in key:
        return []
    last = len(key) - 1
    get = search._index.automaton.get
    split: list[Detection] = []
    counts: dict[tuple[str, bool], int] = {}
    named = {(d.character_id, d.ambiguous) for d in found}
    named.update([(character_id, True) for character_id, ambiguous in named if not ambiguous])
    hits = 0
    # The automaton skips the spaces itself and reports where in the key each hit ends.
    for stop, meaning in search._index.automaton.iter(key, ignore_white_space=True):
        hits += 1
        length, bounded_start, bounded_end, _, _, entries, _, _ = meaning
        if not (entries and bounded_start and bounded_end):
            continue  # only keys in a spaced script, which start and end with a letter or digit
        if named and _all_named(entries, named):
            continue
        first = _first_of(key, stop, length)
        if first + length == stop + 1:
            continue  # no space inside: one word, which the search of the key judged
        if (first and key[first - 1] != " ") or (stop < last and key[stop + 1] != " "):
            continue  # it starts or ends inside a word
        judged = get(key[first : stop + 1], None)
        if judged is None or not _covers(judged[5], entries):
            _add_split(search, first, stop + 1, entries, found, named, (counts, limit), split)
    if search._work is not None:
        search._work.hits += hits
    return split


def _add_split(
    search: Search,
    first: int,
    stop: int,
    entries: tuple[Entry, ...],
    found: list[Detection],
    named: set[tuple[str, bool]],
    counted: tuple[dict[tuple[str, bool], int], int],
    split: list[Detection],
) -> None:
    """Add to ``split`` a detection per character of ``entries`` found on ``key[first:stop]``
    by `split_words`, unless inside a detection ``found`` or ``named`` already; ``counted``:
    the detections added per character and ambiguity, and the limit, at which a character is
    added to ``named`` (reported in full: later hits naming only such are skipped first)."""
    counts, limit = counted
    begin, end = search._text.span(first, stop)
    if _inside(found, begin, end):
        return  # inside a longer detection: `outermost` would drop it
    rule = _SKELETON_RULE if search._skeleton else _SPACED_RULE
    # (A span is one hit, of one key, which names each character once: no span is added twice.)
    for character_id, alias, ambiguous, _ in entries:
        group = (character_id, ambiguous)
        if group in named:
            continue
        counts[group] = count = counts.get(group, 0) + 1
        if count >= limit:
            named.add(group)
        split.append(Detection(character_id, alias, begin, end, search._prompt[begin:end], ambiguous, rule))


def _first_of(key: str, stop: int, length: int) -> int:
    """Where a hit of ``length`` characters other than spaces, ending at ``key[stop]``, starts:
    that many characters back, plus the spaces passed, counted until the place found passes no
    more (within the hit: a few counts over at most the longest key)."""
    first = stop - length + 1
    while (found := stop - length + 1 - key.count(" ", first, stop + 1)) != first:
        first = found
    return first


def _all_named(entries: tuple[Entry, ...], named: set[tuple[str, bool]]) -> bool:
    """Whether every character of ``entries``, with its ambiguity, is in ``named``."""
    for entry in entries:  # noqa: SIM110  (a loop: all() over a generator costs twice as much per hit)
        if (entry[0], entry[2]) not in named:
            return False
    return True


def _covers(judged: tuple[Entry, ...], entries: tuple[Entry, ...]) -> bool:
    """Whether every character of ``entries`` is one of ``judged``."""
    for entry in entries:
        for other in judged:
            if other[0] == entry[0]:
                break
        else:
            return False
    return True


def _inside(found: list[Detection], begin: int, end: int) -> bool:
    """Whether ``[begin, end)`` lies inside a longer span of ``found`` (ordered by start)."""
    at = bisect.bisect_right(found, begin, key=_start)
    return any(d.end >= end and (d.start, d.end) != (begin, end) for d in found[:at])


def _start(detection: Detection) -> int:
    return detection.start
