"""One search of a prompt by ``charter.screen.ScreenIndex``: the automaton's hits checked against
word boundaries (Latin and CJK), plural endings, hashtags and camel case, then the detections and
the keyword sets found. See ``charter.screen`` for the rules."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from charter.decisions import Detection, DetectionRule
from charter.names import NormalizedText, is_cjk, is_ignorable, is_word_char, normalize_text

if TYPE_CHECKING:
    from charter.screen import ScreenIndex

Rule = DetectionRule
# One character a key stands for: (character id, name as registered, ambiguous, rule).
Entry = tuple[str, str, bool, Rule]
# A keyword a key stands for: (index of the keyword set in the index, index of the keyword).
KeywordRef = tuple[int, int]


class Search:
    """One search of one prompt (or of its look-alike replacement, which has the same length)."""

    __slots__ = ("_hashtags", "_index", "_key", "_prompt", "_skeleton", "_text", "_words")

    def __init__(self, index: ScreenIndex, prompt: str, searched: str, *, skeleton: bool = False) -> None:
        self._index = index
        self._prompt = prompt
        self._text: NormalizedText = normalize_text(searched)
        self._key = self._text.key
        self._skeleton = skeleton
        self._words: dict[tuple[int, int], list[tuple[int, int, bool]]] = {}  # analysed CJK runs
        self._hashtags: list[tuple[int, int]] | None = None  # found on first need

    def run(self, seen: set[tuple[str, int, int]] | None = None) -> list[Detection]:
        """The detections of this search; for the look-alike search, those not in ``seen`` (by
        character and span), each reported with `Rule.SKELETON`."""
        key = self._key
        last = len(key) - 1
        suppressed = self._index._suppressed if self._skeleton else frozenset()
        # The automaton reports matches by end, and a longer match before a shorter one with the
        # same end. Kept that way, a new match swallows the kept matches that start inside it, and
        # is itself inside a kept match only if that one has the same end and starts earlier.
        kept: list[tuple[int, int, tuple[Entry, ...], bool]] = []
        keywords: dict[KeywordRef, tuple[int, int]] = {}
        automaton = self._index.automaton
        for hit, (length, bounded_start, bounded_end, cjk_start, cjk_end, entries, refs, word) in automaton.iter(key):
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
        detections: list[Detection] = []
        text, prompt = self._text, self._prompt
        for start, end, entries, plural in kept:
            first, stop = text.span(start, end)
            matched = prompt[first:stop]
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
                detections.append(Detection(character_id, alias, first, stop, matched, ambiguous, reported))
        if keywords:
            detections = self._descriptions(keywords, detections, seen or set())
        return detections

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
        """Whether ``position`` of the prompt lies inside a hashtag (``#`` and the word after it)."""
        if self._hashtags is None:
            prompt = self._prompt
            self._hashtags = [m.span() for m in re.finditer(r"#\w+", prompt)] if "#" in prompt else []
        return any(start < position < end for start, end in self._hashtags)

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
            return True  # no analyser: count the match (fail closed)
        return (not need_start or _at_boundary(words, first)) and (not need_end or _at_boundary(words, stop))

    def _words_around(self, first: int, stop: int) -> list[tuple[int, int, bool]] | None:
        """The analyser's words of the CJK run of the prompt around ``[first, stop)``."""
        segmenter = self._index.segmenter
        if segmenter is None:
            return None
        prompt = self._prompt
        low, high = first, stop
        limit_low, limit_high = max(0, first - _WINDOW), min(len(prompt), stop + _WINDOW)
        while low > limit_low and _cjk_like(prompt[low - 1]):
            low -= 1
        while high < limit_high and _cjk_like(prompt[high]):
            high += 1
        found = self._words.get((low, high))
        if found is None:
            run = prompt[low:high]
            japanese = _has_kana(prompt)
            found = [(low + s, low + e, known) for s, e, known in segmenter.words(run, japanese=japanese)]
            self._words[(low, high)] = found
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


def _cjk_like(ch: str) -> bool:
    """Part of a CJK run for the analyser: CJK characters, the middle dot and the long vowel mark,
    and the half-width and voicing forms that fold into them."""
    return is_cjk(ch) or ch in "・ー゛゜" or 0xFF65 <= ord(ch) <= 0xFF9F or is_ignorable(ch)


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
    """Whether ``position`` starts or ends a word, or lies inside a word the analyser did not know."""
    for start, end, known in words:
        if position in (start, end):
            return True
        if start < position < end:
            return not known
    return True


def _hangul(ch: str) -> bool:
    return 0xAC00 <= ord(ch) <= 0xD7AF


def _needs_words(ch: str) -> bool:
    """Whether a key's end in ``ch`` needs a word boundary from an analyser (Japanese, Chinese)."""
    return is_cjk(ch) and not _hangul(ch)
