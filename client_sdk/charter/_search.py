"""One search of a prompt by ``charter.screen.ScreenIndex``: the automaton's hits checked against
word boundaries (Latin and CJK), plural endings, hashtags and camel case, then the detections and
the keyword sets found. See ``charter.screen`` for the rules.

**Bounded work.** Every prompt costs work linear in its length with small constants, whatever
it holds; the parts that could cost more are bounded outright and counted in `ScreenWork`:

* the analysers see at most `ANALYSER_BUDGET` characters per screen (both passes together):
  each candidate's window (its CJK run, at most `_WINDOW` characters each side) is analysed
  once and reused by every later candidate it covers with `_CONTEXT` characters of context; a
  candidate found when the budget is spent counts as a match without asking (fail closed: an
  adversary who floods a prompt with candidates gets more detections, never fewer);
* hashtags are found once per prompt and looked up by bisection;
* a search yields plain tuples; `Detection` objects are made only for what is reported, at most
  `MAX_OCCURRENCES` per character and ambiguity (``ScreenIndex.find``).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import regex

from charter.decisions import DetectionRule
from charter.names import NormalizedText, is_cjk, is_ignorable, is_word_char, normalize_text

if TYPE_CHECKING:
    from charter.screen import ScreenIndex

Rule = DetectionRule
# One character a key stands for: (character id, name as registered, ambiguous, rule).
Entry = tuple[str, str, bool, Rule]
# A keyword a key stands for: (index of the keyword set in the index, index of the keyword).
KeywordRef = tuple[int, int]
# A detection before it is made a `Detection`: (start, end, character id, name as registered,
# ambiguous, rule, keyword set name); start and end in code points of the prompt.
Found = tuple[int, int, str, str, bool, Rule, str]

MAX_OCCURRENCES = 8
"""Detections reported per character and ambiguity (and keyword set): the first ones. What a
prompt decides depends only on which characters it names and whether ambiguously, so the rest
add nothing but work and bytes (a prompt may name one character a thousand times)."""

ANALYSER_BUDGET = 1024
"""Characters of a prompt the analysers may see in one screen (both passes together). A 300-
character prompt with CJK candidates uses one or two windows of about 100 characters; past the
budget a CJK candidate counts without asking (fail closed)."""


@dataclass(slots=True)
class ScreenWork:
    """What one screen did, counted: the bounds of `charter.screen` are enforced, and tests and
    the benchmark check them through these counts.

    Attributes:
        hits: Automaton hits (both passes).
        checked: Hits checked against boundaries (the others named only characters reported
            `MAX_OCCURRENCES` times already).
        analysed: Characters given to the analysers.
        analyser_calls: Windows analysed.
        unanalysed: CJK candidates counted without the analyser because the budget was spent.
        slow_clusters: Clusters the normalisation folded one by one in Python.
        found: Detections found before the cap on occurrences.
        reported: Detections reported.
    """

    hits: int = 0
    checked: int = 0
    analysed: int = 0
    analyser_calls: int = 0
    unanalysed: int = 0
    slow_clusters: int = 0
    found: int = 0
    reported: int = 0


class Search:
    """One search of one prompt (or of its look-alike replacement, which has the same length)."""

    __slots__ = ("_hashtags", "_index", "_kana", "_key", "_prompt", "_skeleton", "_text", "_windows", "_work")

    def __init__(
        self, index: ScreenIndex, prompt: str, searched: str, work: ScreenWork, *, skeleton: bool = False
    ) -> None:
        self._index = index
        self._prompt = prompt
        self._text: NormalizedText = normalize_text(searched)
        self._key = self._text.key
        self._skeleton = skeleton
        self._work = work
        work.slow_clusters += self._text.slow_clusters
        # Analysed windows of the prompt: (start, end, words), in order of start.
        self._windows: list[tuple[int, int, list[tuple[int, int, bool]]]] = []
        self._hashtags: list[tuple[int, int]] | None = None  # found on first need
        self._kana: bool | None = None  # whether the prompt has kana, found on first need

    def run(
        self, seen: set[tuple[str, int, int]] | None = None, full: set[tuple[str, bool]] | None = None
    ) -> list[Found]:
        """The detections of this search, ordered by start; for the look-alike search, those not
        in ``seen`` (by character and span), each reported with `Rule.SKELETON`, and none of the
        characters (with their ambiguity) in ``full``, reported `MAX_OCCURRENCES` times already."""
        key = self._key
        last = len(key) - 1
        suppressed = self._index._suppressed if self._skeleton else frozenset()
        # The automaton reports matches by end, and a longer match before a shorter one with the
        # same end. Kept that way, a new match swallows the kept matches that start inside it, and
        # is itself inside a kept match only if that one has the same end and starts earlier.
        kept: list[tuple[int, int, tuple[Entry, ...], bool]] = []
        keywords: dict[KeywordRef, tuple[int, int]] = {}
        automaton = self._index.automaton
        # A kept match that starts more than the longest key before the current end can no longer
        # be swallowed: it is settled. A character (with its ambiguity) settled `MAX_OCCURRENCES`
        # times is reported in full, so later matches naming only such characters (and no keyword)
        # are skipped before any boundary check: a name repeated a thousand times costs a thousand
        # automaton hits, not a thousand checks. (The look-alike pass starts from ``full``.)
        full = set() if full is None else full
        settled, counts, longest = 0, dict[tuple[str, bool], int](), self._index._longest
        hits = checked = 0
        for hit, meaning in automaton.iter(key):
            length, bounded_start, bounded_end, cjk_start, cjk_end, entries, refs, word, groups = meaning
            hits += 1
            if settled < len(kept) and kept[settled][0] <= hit - longest:
                settled = _settle(kept, settled, hit - longest, counts, full)
            if full and not refs and groups <= full:
                continue
            checked += 1
            start, end, plural = hit - length + 1, hit, False
            # A space is the common boundary, checked before anything dearer.
            if (
                bounded_start
                and start
                and key[start - 1] != " "
                and is_word_char(key[start - 1])
                and not self._soft_start(start, entries)
            ):
                continue
            if bounded_end and end < last and key[end + 1] != " " and is_word_char(key[end + 1]):
                extra = self._plural(end)
                if extra:
                    end += extra
                    plural = True
                elif not self._soft_end(end, entries):
                    continue
            if ((cjk_start and start) or (cjk_end and end < last)) and not self._cjk_ok(start, end):
                continue
            if suppressed and word in suppressed:
                continue
            for ref in refs:
                keywords.setdefault(ref, (start, end + 1))
            if not entries:
                continue
            while kept and kept[-1][0] >= start:
                kept.pop()
            if kept and kept[-1][1] > end:
                continue
            kept.append((start, end + 1, entries, plural))
        self._work.hits += hits
        self._work.checked += checked
        found = self._report(kept, seen)
        if keywords:
            found = self._descriptions(keywords, found, seen or set())
        return found

    def _report(
        self, kept: list[tuple[int, int, tuple[Entry, ...], bool]], seen: set[tuple[str, int, int]] | None
    ) -> list[Found]:
        """The detections of the kept matches, with their spans in the prompt and the rule reported."""
        found: list[Found] = []
        text = self._text
        for start, end, entries, plural in kept:
            first, stop = text.span(start, end)
            for character_id, alias, ambiguous, rule in entries:
                reported = rule
                if seen is not None:
                    if (character_id, first, stop) in seen:
                        continue
                    reported = Rule.SKELETON
                elif plural and rule is Rule.EXACT:
                    reported = Rule.PLURAL
                elif rule is Rule.JOINED and self._in_hashtag(first):
                    reported = Rule.HASHTAG
                found.append((first, stop, character_id, alias, ambiguous, reported, ""))
        return found

    # Boundaries --------------------------------------------------------------------------------

    def _soft_start(self, start: int, entries: tuple[Entry, ...]) -> bool:
        """Whether a Latin key starting at ``start`` after a word character still starts a word:
        a camel-case hump, a dropped invisible character, or a several-word name in a hashtag."""
        first, _ = self._text.span(start, start + 1)
        prompt = self._prompt
        if first and ((prompt[first - 1].islower() and prompt[first].isupper()) or is_ignorable(prompt[first - 1])):
            return True
        return any(rule is Rule.JOINED for *_, rule in entries) and self._in_hashtag(first)

    def _soft_end(self, end: int, entries: tuple[Entry, ...]) -> bool:
        """As `_soft_start`, for the end of a key."""
        _, stop = self._text.span(end, end + 1)
        prompt = self._prompt
        if stop < len(prompt) and (prompt[stop - 1].islower() and prompt[stop].isupper()):
            return True
        if is_ignorable(prompt[stop - 1]) or (stop < len(prompt) and is_ignorable(prompt[stop])):
            return True
        return any(rule is Rule.JOINED for *_, rule in entries) and self._in_hashtag(stop - 1)

    def _plural(self, end: int) -> int:
        """How many characters of an English plural ending follow the key ending at ``end``."""
        key = self._key
        for ending in ("s", "es"):
            after = end + 1 + len(ending)
            if key.startswith(ending, end + 1) and (after >= len(key) or not is_word_char(key[after])):
                return len(ending)
        return 0

    def _in_hashtag(self, position: int) -> bool:
        """Whether ``position`` of the prompt lies inside a hashtag (``#`` and the word after it).
        The hashtags are found once, in order and apart, so one bisection answers."""
        if self._hashtags is None:
            prompt = self._prompt
            self._hashtags = [m.span() for m in _HASHTAG.finditer(prompt)] if "#" in prompt else []
        hashtags = self._hashtags
        if not hashtags:
            return False
        at = bisect.bisect_left(hashtags, (position,)) - 1  # the last hashtag starting before position
        return at >= 0 and position < hashtags[at][1]

    def _cjk_ok(self, start: int, end: int) -> bool:
        """Whether a key that starts or ends next to more CJK text lines up with word boundaries."""
        key = self._key
        if start and _hangul(key[start]) and _hangul(key[start - 1]):
            # Korean: particles follow a name, but a name starts a word (spaces are gone from the key).
            first, _ = self._text.span(start, start + 1)
            return not _hangul(self._prompt[first - 1])
        need_start = start > 0 and _needs_words(key[start]) and is_cjk(key[start - 1])
        need_end = end + 1 < len(key) and _needs_words(key[end]) and is_cjk(key[end + 1])
        if not (need_start or need_end):
            return True
        first, stop = self._text.span(start, end + 1)
        prompt = self._prompt
        # Katakana meeting hiragana is a word boundary without asking the analyser: a name in
        # katakana followed by a particle or honorific (マリオが, ミクさん), or after one (はマリオ).
        if need_start and _script_change(prompt[first], prompt[first - 1]):
            need_start = False
        if need_end and stop < len(prompt) and _script_change(prompt[stop - 1], prompt[stop]):
            need_end = False
        if not (need_start or need_end):
            return True
        words = self._words_around(first, stop)
        if words is None:
            return True  # no analyser, or its budget spent: count the match (fail closed)
        return (not need_start or _at_boundary(words, first)) and (not need_end or _at_boundary(words, stop))

    def _words_around(self, first: int, stop: int) -> list[tuple[int, int, bool]] | None:
        """The analyser's words of the CJK run of the prompt around ``[first, stop)``: from a
        window already analysed that covers it with `_CONTEXT` characters (or up to the run's
        ends) on each side, else from a new window, if the budget allows (None otherwise)."""
        segmenter = self._index.segmenter
        if segmenter is None:
            return None
        prompt = self._prompt
        limit_low = max(0, first - _WINDOW)
        low = first - _CJK_LIKE_RUN.match(prompt[limit_low:first][::-1]).end()
        high = _CJK_LIKE_RUN.match(prompt, stop, min(len(prompt), stop + _WINDOW)).end()
        need_low, need_high = max(low, first - _CONTEXT), min(high, stop + _CONTEXT)
        windows = self._windows
        # The window starting last at or before need_low covers it if any does (windows are
        # analysed only where none covered, so they rarely nest); one bisection, not a scan.
        at = bisect.bisect_right(windows, (need_low, _AFTER)) - 1
        if at >= 0 and need_high <= windows[at][1]:
            return windows[at][2]
        work = self._work
        if work.analysed + (high - low) > ANALYSER_BUDGET:
            work.unanalysed += 1
            return None
        work.analysed += high - low
        work.analyser_calls += 1
        if self._kana is None:
            self._kana = _has_kana(prompt)
        found = [(low + s, low + e, known) for s, e, known in segmenter.words(prompt[low:high], japanese=self._kana)]
        bisect.insort(windows, (low, high, found))
        return found

    # Descriptions ------------------------------------------------------------------------------

    def _descriptions(
        self, found: dict[KeywordRef, tuple[int, int]], detections: list[Found], seen: set[tuple[str, int, int]]
    ) -> list[Found]:
        """Add a detection per keyword set whose every keyword was found (unless ``seen``)."""
        sets = self._index.keyword_sets
        for position in sorted({p for p, _ in found}):
            character_id, keyword_set = sets[position]
            spans = [found.get((position, n)) for n in range(len(keyword_set.keywords))]
            located = [self._text.span(*span) for span in spans if span is not None]
            if len(located) < len(spans):
                continue
            first, stop = min(s for s, _ in located), max(e for _, e in located)
            if (character_id, first, stop) in seen:
                continue
            label = " + ".join(variants[0] for variants in keyword_set.keywords)
            detections.append((first, stop, character_id, label, False, Rule.DESCRIPTION, keyword_set.name))
        detections.sort(key=_start)
        return detections


def _settle(
    kept: list[tuple[int, int, tuple[Entry, ...], bool]],
    settled: int,
    horizon: int,
    counts: dict[tuple[str, bool], int],
    full: set[tuple[str, bool]],
) -> int:
    """Count the kept matches from ``settled`` on that start at or before ``horizon`` (no later
    match can swallow them) per character and ambiguity, adding to ``full`` each one that reaches
    `MAX_OCCURRENCES`; return the index of the first match not settled."""
    while settled < len(kept) and kept[settled][0] <= horizon:
        for character_id, _, ambiguous, _ in kept[settled][2]:
            count = counts[character_id, ambiguous] = counts.get((character_id, ambiguous), 0) + 1
            if count >= MAX_OCCURRENCES:
                full.add((character_id, ambiguous))
        settled += 1
    return settled


def _start(found: Found) -> int:
    return found[0]


def outermost(found: list[Found]) -> list[Found]:
    """The detections that do not lie inside a longer one. One pass in order of start (longest
    first): a span lies inside another only if one that starts no later reaches at least as far."""
    kept: list[Found] = []
    reach, reach_start = -1, -1  # the furthest end so far, and the start of the span reaching it
    for d in sorted(found, key=lambda d: (d[0], -d[1])):
        start, end = d[0], d[1]
        if d[5] is not Rule.DESCRIPTION:
            if end <= reach and (reach_start, reach) != (start, end):
                continue
            if end > reach:
                reach, reach_start = end, start
        kept.append(d)
    kept.sort(key=_start)
    return kept


_WINDOW = 48  # characters of CJK text on each side of a candidate given to the analyser
_CONTEXT = 16  # characters of context on each side with which an analysed window answers a candidate
_HASHTAG = re.compile(r"#\w+")
# Part of a CJK run for the analyser: CJK characters, the middle dot and the long vowel mark,
# the half-width and voicing forms that fold into them, and invisible characters.
_CJK_LIKE_RUN = regex.compile(
    r"[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003ffff"
    r"\u3005・ー゛゜\uff65-\uff9f\p{Default_Ignorable_Code_Point}\p{Cf}]*"
)


_KANA = re.compile("[\u3040-\u30ff\uff66-\uff9d]")


def _katakana(ch: str) -> bool:
    return 0x30A1 <= ord(ch) <= 0x30FA or 0xFF66 <= ord(ch) <= 0xFF9D


def _script_change(inside: str, outside: str) -> bool:
    """Whether a name's character ``inside`` in katakana meets ``outside`` in hiragana. (Not kanji:
    ゾロ目 is one word.)"""
    return _katakana(inside) and 0x3041 <= ord(outside) <= 0x3096


def _has_kana(text: str) -> bool:
    return _KANA.search(text) is not None


def _at_boundary(words: Sequence[tuple[int, int, bool]], position: int) -> bool:
    """Whether ``position`` starts or ends a word, or lies inside a word the analyser did not know.
    The words are in order and apart, so one bisection finds the word at ``position``."""
    at = bisect.bisect_right(words, (position, _AFTER)) - 1  # the last word starting at or before position
    if at < 0:
        return True
    start, end, known = words[at]
    if position in (start, end):
        return True
    if position < end:
        return not known
    return True


_AFTER = 1 << 62  # sorts after any end position: (position, _AFTER) follows every word starting at position


def _hangul(ch: str) -> bool:
    return 0xAC00 <= ord(ch) <= 0xD7AF


def _needs_words(ch: str) -> bool:
    """Whether a key's end in ``ch`` needs a word boundary from an analyser (Japanese, Chinese)."""
    return is_cjk(ch) and not _hangul(ch)
