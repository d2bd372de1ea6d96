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
* at most `MAX_OCCURRENCES` detections are reported per character and ambiguity
  (``ScreenIndex.find``), and matches naming only characters reported that often already are
  skipped before any check.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import regex

from charter._split import split_words
from charter.decisions import Detection, DetectionRule
from charter.names import NormalizedText, is_cjk, is_ignorable, is_word_char, normalize_text

if TYPE_CHECKING:
    from charter.screen import ScreenIndex

Rule = DetectionRule
# The rules the search reports, read once (an enum member read from its class costs a look-up
# through the class each time).
_PLURAL, _HASHTAG_RULE, _SKELETON_RULE, _SPACED_RULE = Rule.PLURAL, Rule.HASHTAG, Rule.SKELETON, Rule.SPACED
_NOTHING: frozenset[str] = frozenset()
# One character a key stands for: (character id, name as registered, ambiguous, the rule's value).
# The rule is kept as its string value, so that an entry holds only strings and a boolean: the
# collector stops tracking such tuples (an enum member is an object it tracks), and an index of
# some 250,000 of them is not walked again by every full collection of the process.
Entry = tuple[str, str, bool, str]
RULES: dict[str, Rule] = {rule.value: rule for rule in Rule}
"""A rule's value → the rule."""
_EXACT_VALUE, _JOINED_VALUE = Rule.EXACT.value, Rule.JOINED.value
# A keyword a key stands for: (index of the keyword set in the index, index of the keyword).
KeywordRef = tuple[int, int]

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


# `Detection` is a frozen dataclass with slots: its __init__ sets each field through the frozen
# check. A detection is made per match reported, so it is made here as an instance of a plain
# class with the same slots (set at the speed of any slot), whose class is then set to
# `Detection`: Python allows that between classes of the same layout, and the object is then a
# `Detection` like any other (equal, frozen), in a third of the time. The fields are checked
# once, here.
_FIELDS = tuple(f.name for f in dataclasses.fields(Detection))
if _FIELDS != ("character_id", "matched_alias", "start", "end", "text", "ambiguous", "rule", "keyword_set"):
    raise RuntimeError(f"charter._search makes Detection objects field by field; its fields changed: {_FIELDS}")


class _Unfrozen:
    __slots__ = _FIELDS
    character_id: str
    matched_alias: str
    start: int
    end: int
    text: str
    ambiguous: bool
    rule: Rule
    keyword_set: str


_new = object.__new__


class Search:
    """One search of one prompt (or of its look-alike replacement, which has the same length)."""

    __slots__ = ("_hashtags", "_index", "_kana", "_key", "_prompt", "_skeleton", "_text", "_windows", "_work")

    @property
    def non_ascii(self) -> str | None:
        """The prompt's characters outside ASCII, if its normalisation collected them."""
        return self._text.non_ascii

    @property
    def work(self) -> ScreenWork | None:
        """What this search counted (None if nothing asked for counts and no analyser ran)."""
        return self._work

    def __init__(
        self,
        index: ScreenIndex,
        prompt: str,
        work: ScreenWork | None,
        replace: Mapping[int, str] | None = None,
        first: Search | None = None,
    ) -> None:
        """Search ``prompt``, or (the look-alike search) ``prompt`` with ``replace`` applied: the
        look-alike characters replaced by their prototypes (one character for one), reusing what
        it can of the ``first`` search's normalisation."""
        self._index = index
        self._prompt = prompt
        self._text: NormalizedText = normalize_text(prompt, replace, None if first is None else first._text)
        self._key = self._text.key
        self._skeleton = replace is not None
        # The counts, made on first need when the caller did not ask for them: the analysers'
        # budget is kept in them, so a search that needs one always has them.
        self._work = work
        if work is not None:
            work.slow_clusters += self._text.slow_clusters
        # Analysed windows of the prompt: (start, end, words), in order of start.
        self._windows: list[tuple[int, int, list[tuple[int, int, bool]]]] = []
        self._hashtags: list[tuple[int, int]] | None = None  # found on first need
        self._kana: bool | None = None  # whether the prompt has kana, found on first need

    def run(
        self, seen: set[tuple[str, int, int]] | None = None, full: set[tuple[str, bool]] | None = None
    ) -> list[Detection]:
        """The detections of this search, ordered by start; for the look-alike search, those not
        in ``seen`` (by character and span), each reported with `Rule.SKELETON`, and none of the
        characters (with their ambiguity) in ``full``, reported `MAX_OCCURRENCES` times already."""
        key = self._key
        last = len(key) - 1
        suppressed = self._index._suppressed if self._skeleton else _NOTHING
        # A merge that is not applied is dropped only where the first pass found a name on the very
        # same span (the look-alike name as registered): dropping it everywhere would let anyone who
        # registers a look-alike of another character's name turn off the look-alike rule for it.
        spans = {(first, stop) for _, first, stop in seen} if suppressed and seen else set()
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
        counts: dict[tuple[str, bool], int] = {}
        settled, longest = 0, self._index._longest
        hits = checked = 0
        for hit, meaning in automaton.iter(key):
            length, bounded_start, bounded_end, cjk_start, cjk_end, entries, refs, word = meaning
            hits += 1
            if settled < len(kept) and kept[settled][0] <= hit - longest:
                settled = _settle(kept, settled, hit - longest, counts, full)
            if full and not refs and _all_full(entries, full):
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
            # Only a CJK neighbour (from U+3005 on: `is_cjk`) needs the CJK rules, checked first.
            if (
                (cjk_start and start and key[start - 1] >= "\u3005")
                or (cjk_end and end < last and key[end + 1] >= "\u3005")
            ) and not self._cjk_ok(start, end, cjk_start, cjk_end, None if refs else kept):
                continue
            if suppressed and word in suppressed and self._text.span(start, end + 1) in spans:
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
        work = self._work
        if work is not None:
            work.hits += hits
            work.checked += checked
        found = self._report(kept, seen)
        if keywords:
            found = self._descriptions(keywords, found, seen or set())
        return found

    def _report(
        self, kept: list[tuple[int, int, tuple[Entry, ...], bool]], seen: set[tuple[str, int, int]] | None
    ) -> list[Detection]:
        """The detections of the kept matches, with their spans in the prompt and the rule reported."""
        found: list[Detection] = []
        span, prompt = self._text.span, self._prompt
        for start, end, entries, plural in kept:
            first, stop = span(start, end)
            matched = prompt[first:stop]
            for character_id, alias, ambiguous, rule in entries:
                if seen is not None:
                    if (character_id, first, stop) in seen:
                        continue
                    reported = _SKELETON_RULE
                elif plural and rule == _EXACT_VALUE:
                    reported = _PLURAL
                elif rule == _JOINED_VALUE and self._in_hashtag(first):
                    reported = _HASHTAG_RULE
                else:
                    reported = RULES[rule]
                # Detection(character_id, alias, first, stop, matched, ambiguous, reported), made faster
                made = _new(_Unfrozen)
                made.character_id = character_id
                made.matched_alias = alias
                made.start = first
                made.end = stop
                made.text = matched
                made.ambiguous = ambiguous
                made.rule = reported
                made.keyword_set = ""
                made.__class__ = Detection  # type: ignore[assignment]
                found.append(made)  # type: ignore[arg-type]
        return found

    def split_words(self, found: list[Detection]) -> list[Detection]:
        """The names whose letters this search's prompt groups otherwise than the name does
        (``Pi-ka-chu``), beyond ``found`` (see `charter._split.split_words`)."""
        return split_words(self, found, MAX_OCCURRENCES)

    # Boundaries --------------------------------------------------------------------------------

    def _soft_start(self, start: int, entries: tuple[Entry, ...]) -> bool:
        """Whether a Latin key starting at ``start`` after a word character still starts a word:
        a camel-case hump, a dropped invisible character, or a several-word name in a hashtag."""
        first, _ = self._text.span(start, start + 1)
        prompt = self._prompt
        if first and ((prompt[first - 1].islower() and prompt[first].isupper()) or is_ignorable(prompt[first - 1])):
            return True
        return any(rule == _JOINED_VALUE for *_, rule in entries) and self._in_hashtag(first)

    def _soft_end(self, end: int, entries: tuple[Entry, ...]) -> bool:
        """As `_soft_start`, for the end of a key."""
        _, stop = self._text.span(end, end + 1)
        prompt = self._prompt
        if stop < len(prompt) and (prompt[stop - 1].islower() and prompt[stop].isupper()):
            return True
        if is_ignorable(prompt[stop - 1]) or (stop < len(prompt) and is_ignorable(prompt[stop])):
            return True
        return any(rule == _JOINED_VALUE for *_, rule in entries) and self._in_hashtag(stop - 1)

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

    def _cjk_ok(
        self,
        start: int,
        end: int,
        start_kind: int,
        end_kind: int,
        kept: list[tuple[int, int, tuple[Entry, ...], bool]] | None,
    ) -> bool:
        """Whether a key that starts or ends next to more CJK text lines up with word boundaries
        (``start_kind`` and ``end_kind``: the `cjk_kind` of the key's first and last character).
        A key that would need the analyser but lies inside the last of ``kept`` and ends with it
        (a short name ending the full name: カマカ in ホシノ・カマカ) is dropped without asking, as
        `run` would drop it anyway (``kept`` is None for a key with keywords: those count)."""
        key = self._key
        if start_kind == _HANGUL and start and _hangul(key[start - 1]):
            # Korean: particles follow a name, but a name starts a word (spaces are gone from the key).
            first, _ = self._text.span(start, start + 1)
            return not _hangul(self._prompt[first - 1])
        need_start = start_kind == _WORDS and start > 0 and is_cjk(key[start - 1])
        need_end = end_kind == _WORDS and end + 1 < len(key) and is_cjk(key[end + 1])
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
        if kept and kept[-1][0] < start and kept[-1][1] > end:
            return False
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
        if work is None:
            work = self._work = ScreenWork()
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
        self, found: dict[KeywordRef, tuple[int, int]], detections: list[Detection], seen: set[tuple[str, int, int]]
    ) -> list[Detection]:
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
            text = self._prompt[first:stop]
            detections.append(
                Detection(character_id, label, first, stop, text, False, Rule.DESCRIPTION, keyword_set.name)
            )
        return sorted(detections, key=lambda d: d.start)


def _all_full(entries: tuple[Entry, ...], full: set[tuple[str, bool]]) -> bool:
    """Whether every character (with its ambiguity) a key stands for is reported in full."""
    return all((character_id, ambiguous) in full for character_id, _, ambiguous, _ in entries)


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


def outermost(detections: list[Detection]) -> list[Detection]:
    """The detections that do not lie inside a longer one. One pass in order of start (longest
    first): a span lies inside another only if one that starts no later reaches at least as far."""
    kept: list[Detection] = []
    reach, reach_start = -1, -1  # the furthest end so far, and the start of the span reaching it
    for d in sorted(detections, key=lambda d: (d.start, -d.end)):
        if not d.described:
            if d.end <= reach and (reach_start, reach) != (d.start, d.end):
                continue
            if d.end > reach:
                reach, reach_start = d.end, d.start
        kept.append(d)
    return sorted(kept, key=lambda d: d.start)


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
    return "\uac00" <= ch <= "\ud7af"


_WORDS, _HANGUL = 1, 2


def cjk_kind(ch: str) -> int:
    """What a key's first or last character ``ch`` needs next to more CJK text: 0 nothing (not
    CJK), 1 a word boundary from an analyser (Japanese, Chinese), 2 the Korean rule (Hangul)."""
    if not is_cjk(ch):
        return 0
    return _HANGUL if _hangul(ch) else _WORDS
