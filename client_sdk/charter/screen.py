"""Prompt screening: find every character a prompt names or describes, in any script, and where.

The matcher is built from plain data (`ScreenCharacter`: names with their ambiguity and whether
they are derived readings, keyword sets), so the server's index and a screen inside the SDK give
the same answers. It needs the ``screening`` extra (``pip install 'charter-sdk[screening]'``):
``pyahocorasick`` for the automaton, ``pyicu-wheels`` for the Unicode confusables data, and the
morphological analysers ``fugashi`` with ``unidic-lite`` (Japanese) and ``jieba`` (Chinese). They
are imported when an index is built, never when ``charter`` is.

**Keys.** Names, keyword variants and prompts are keyed by the shared normalisation
(`charter.names`). Each name is indexed under several keys, each with the rule it stands for,
so that one pass of an Aho-Corasick automaton over the prompt's key finds them all:

* its own key (`Rule.EXACT`, or `Rule.READING` for a derived reading);
* for a name in Latin (or another spaced) script of two or more words, the words run together
  (``hatsunemiku``: `Rule.HASHTAG` after ``#``, else `Rule.JOINED`, which covers camel case);
* its letters one by one (``h a t s u n e m i k u``: `Rule.SPACED`), which is what letters
  separated by single spaces, dots, hyphens or underscores normalise to;
* for a character with a name in Japanese, Chinese or Korean script, whose Latin names are
  romanisations: a two-word name that is not ambiguous in the other order
  (`Rule.REVERSED_ORDER`), and, for a name written with a long vowel (ō, ô, ou, oo; ū, û, uu),
  every spelling of it, ō/ou/oo/o and ū/uu/u, in either order (`Rule.LONG_VOWEL`);
* a name ending in a consonant and ``y`` with ``ies`` (`Rule.PLURAL`).

**Word boundaries.** A key that starts (ends) with a Latin-script letter or digit must start
(end) on a word boundary of the prompt: a separator, the text's end, a change between CJK and
other text, a camel-case hump in the original (``ILoveMiku``), a dropped invisible character, or
(for a name of several words) anywhere inside a hashtag. After a Latin name, ``s``, ``es`` or
``'s`` may come before the boundary (`Rule.PLURAL`; the possessive is already a separator).
A key that starts (ends) in Japanese or Chinese next to more CJK text counts only where a
morphological analyser (fugashi with UniDic-lite; jieba for text without kana) puts a word
boundary; a match may cover several of its words (``初音|ミク|が``), and a side that falls
inside a word the analyser does not know (a name run together with other katakana) counts too.
Katakana meeting hiragana is a boundary without asking (``マリオが``, ``ミクさん``). The analyser
runs only on the CJK text around such a candidate, so prompts without one pay nothing; jieba
learns the registered names in hanzi. Korean (Hangul) names need a boundary before them only,
since particles follow names.

**Look-alikes.** When the prompt has characters outside ASCII and CJK whose UTS #39 confusables
skeleton is another single character (a Cyrillic ``Н``, a Greek ``Μ``), a second pass screens the
prompt with those characters replaced by their prototypes (`Rule.SKELETON`). Kana and kanji are
never folded (``ロ`` and ``口`` are both common). A replacement that would turn one registered
name into another (their keys merge) is not applied for that name, and the merge is listed in
`ScreenIndex.skeleton_collisions` for staff.

**Overlaps.** A match that lies inside a longer match is dropped; matches that overlap in part
are both kept. Each (character, span) is reported once, ordered by start; spans are in code
points of the original prompt, end exclusive.

**Descriptions.** A keyword set matches when every one of its keywords (any variant) is found
with the same boundary rules, anywhere and in any order (`Rule.DESCRIPTION`, best-effort).
"""

from __future__ import annotations

import itertools
import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from charter.decisions import Detection, DetectionRule
from charter.names import NormalizedText, is_cjk, is_ignorable, is_word_char, normalize, normalize_text

__all__ = [
    "KeywordSet",
    "Rule",
    "ScreenCharacter",
    "ScreenIndex",
    "ScreenName",
    "Segmenter",
    "WordSegmenter",
    "look_alike_key",
    "skeleton_map",
]


Rule = DetectionRule
"""The rule that made a detection (`charter.decisions.DetectionRule`)."""


@dataclass(frozen=True, slots=True)
class ScreenName:
    """A name of a character as the screen sees it.

    Attributes:
        value: The name as registered.
        ambiguous: Whether it may name something else (matches are reported, decided only when declared).
        reading: Whether it is a reading derived from a name in kanji or hanzi.
    """

    value: str
    ambiguous: bool = False
    reading: bool = False


@dataclass(frozen=True, slots=True)
class KeywordSet:
    """A description of a character: every keyword must be found (any of its variants).

    Attributes:
        name: The set's name, reported with a detection.
        keywords: The keywords, each a tuple of its variants.
    """

    name: str
    keywords: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class ScreenCharacter:
    """A character to screen for: its id, names (canonical first) and keyword sets."""

    id: str
    names: tuple[ScreenName, ...]
    keyword_sets: tuple[KeywordSet, ...] = ()


class Segmenter(Protocol):
    """Word boundaries of CJK text, from a morphological analyser."""

    def words(self, text: str, *, japanese: bool) -> list[tuple[int, int, bool]]:
        """The words of ``text`` as ``(start, end, known)``: known is False for a word the
        analyser's dictionary does not have."""
        ...

    def learn(self, names: Iterable[str]) -> None:
        """Add registered names to the analyser's dictionary, where it can take them."""
        ...


class WordSegmenter:
    """fugashi with UniDic-lite for Japanese, jieba for Chinese; each loaded on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tagger: Any = None
        self._jieba: Any = None
        self._learned: set[str] = set()

    def learn(self, names: Iterable[str]) -> None:
        """Add names written in hanzi to jieba's dictionary, so that a registered name is one word
        of the Chinese analyser (jieba takes words at run time; UniDic is compiled)."""
        new = {n for n in names if len(n) > 1 and all(is_cjk(c) for c in n)} - self._learned
        with self._lock:
            self._learned |= new
            if self._jieba is not None:
                for name in new:
                    self._jieba.add_word(name)

    def warm(self) -> None:
        """Load the analysers now rather than on a request's time: fugashi always (milliseconds),
        jieba (a second or two) once it has registered names in hanzi to learn."""
        self.words("初音ミク", japanese=True)
        if self._learned:
            self.words("初音未来", japanese=False)

    def words(self, text: str, *, japanese: bool) -> list[tuple[int, int, bool]]:
        """See `Segmenter.words`."""
        if japanese:
            tagger = self._tagger or self._load_tagger()
            found: list[tuple[int, int, bool]] = []
            position = 0
            for word in tagger(text):
                surface = word.surface
                start = text.find(surface, position) if surface else -1
                if start < 0:
                    continue
                # Whitespace the analyser skipped lies between words.
                found.append((start, start + len(surface), not word.is_unk))
                position = start + len(surface)
            return found
        tokenizer = self._jieba or self._load_jieba()
        return [(start, end, True) for _, start, end in tokenizer.tokenize(text)]

    def _load_tagger(self) -> Any:
        with self._lock:
            if self._tagger is None:
                self._tagger = _fugashi_tagger()
            return self._tagger

    def _load_jieba(self) -> Any:
        with self._lock:
            if self._jieba is None:
                tokenizer = _jieba_tokenizer()
                for name in self._learned:
                    tokenizer.add_word(name)
                self._jieba = tokenizer
            return self._jieba


# The analysers are loaded once per process (jieba's dictionary takes a second or two) and shared.
_ANALYSERS = threading.Lock()


@lru_cache(maxsize=1)
def _fugashi_tagger() -> Any:
    import fugashi

    with _ANALYSERS:
        return fugashi.Tagger()


@lru_cache(maxsize=1)
def _jieba_tokenizer() -> Any:
    import logging

    import jieba

    with _ANALYSERS:
        jieba.setLogLevel(logging.WARNING)
        tokenizer = jieba.Tokenizer()
        tokenizer.initialize()
        return tokenizer


@lru_cache(maxsize=1)
def _default_segmenter() -> WordSegmenter:
    return WordSegmenter()


# ---- Look-alike characters (UTS #39) -----------------------------------------------------------


@lru_cache(maxsize=1)
def skeleton_map() -> dict[int, str]:
    """Code point → prototype for every character outside ASCII and CJK whose UTS #39 skeleton
    (ICU's ``SpoofChecker``) is one other character that normalises differently."""
    import icu

    checker = icu.SpoofChecker()
    found: dict[int, str] = {}
    for code in range(0x80, 0x30000):
        ch = chr(code)
        if is_cjk(ch) or unicodedata.category(ch) in ("Cn", "Co", "Cs"):
            continue
        prototype = str(checker.getSkeleton(0, ch))
        if len(prototype) == 1 and prototype != ch and normalize(prototype) != normalize(ch):
            found[code] = prototype
    return found


@lru_cache(maxsize=1)
def _skeleton_prefilter() -> re.Pattern[str]:
    """Finds a character of `skeleton_map` in the Basic Multilingual Plane, or any character above
    it. One class of ranges, which ``re`` checks with a bitmap; a class of the scattered characters
    above the plane would be checked range by range, a hundred times slower."""
    ranges: list[list[int]] = []
    for code in sorted(c for c in skeleton_map() if c < 0x10000):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    parts = "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)
    return re.compile(f"[{parts}\U00010000-\U0010ffff]")


def _has_look_alikes(prompt: str) -> bool:
    """Whether ``prompt`` has a character of `skeleton_map` (``search`` first: the common answer is
    no, and it is the fastest way to it)."""
    prefilter = _skeleton_prefilter()
    found = prefilter.search(prompt)
    if found is None:
        return False
    table = skeleton_map()
    return any(ord(m.group()) in table for m in prefilter.finditer(prompt, found.start()))


def look_alike_key(name: str) -> str | None:
    """The key ``name`` has once its look-alike characters are replaced by their prototypes, or
    None when it has none (or the key stays the same)."""
    if name.isascii() or not _has_look_alikes(name):
        return None
    merged = normalize(_skeleton(name))
    return merged if merged and merged != normalize(name) else None


def _skeleton(text: str) -> str:
    return text.translate(skeleton_map())


# ---- Building --------------------------------------------------------------------------------

# One character a key stands for: (character id, name as registered, ambiguous, rule).
_Entry = tuple[str, str, bool, Rule]
# A keyword a key stands for: (index of the keyword set in the index, index of the keyword).
_KeywordRef = tuple[int, int]
_RANK = {rule: rank for rank, rule in enumerate(Rule)}  # which rule a key reports when several apply
_LONG = re.compile(r"ō|ô|ou|oo|ū|û|uu")
_LONG_SPELLINGS = {"o": ("o", "ou", "oo"), "u": ("u", "uu")}
_MAX_LONG_VOWELS = 4  # 3^4 spellings at most per name


# The characters of `charter.names.is_cjk`, as one class (a search of it runs in C).
_CJK = re.compile(
    "[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003ffff\u3005]"
)


def _latin(key: str) -> bool:
    """Whether a key is written in a spaced script (it has no CJK character)."""
    return key.isascii() or not _CJK.search(key)


def _long_vowel_spellings(value: str) -> list[str]:
    """Every spelling of ``value``'s long vowels (ō, ou, oo; ū, uu), as normalised keys."""
    text = unicodedata.normalize("NFKC", value).casefold()
    parts = _LONG.split(text)
    vowels = ["o" if m in ("ō", "ô", "ou", "oo") else "u" for m in _LONG.findall(text)]
    if not vowels or len(vowels) > _MAX_LONG_VOWELS:
        return []
    keys = []
    for choice in itertools.product(*(_LONG_SPELLINGS[v] for v in vowels)):
        spelled = parts[0] + "".join(c + p for c, p in zip(choice, parts[1:], strict=True))
        keys.append(normalize(spelled))
    return keys


def _variants(name: ScreenName, key: str, east_asian: bool) -> list[tuple[str, Rule]]:
    """The keys a name is found under, with their rules (its own key first)."""
    own = Rule.READING if name.reading else Rule.EXACT
    found = [(key, own)]
    if not _latin(key) or not any(c.isalpha() for c in key):
        return found
    words = key.split(" ")
    compact = "".join(words)
    if len(words) > 1:
        found.append((compact, Rule.JOINED))
    if len(compact) >= 3:
        found.append((" ".join(compact), Rule.SPACED))
    if len(words[-1]) > 2 and words[-1][-1] == "y" and words[-1][-2] not in "aeiou":
        found.append((key[:-1] + "ies", Rule.PLURAL))
    if east_asian:
        reversible = len(words) == 2 and not name.ambiguous
        if reversible:
            found.append((f"{words[1]} {words[0]}", Rule.REVERSED_ORDER))
        for spelled in _long_vowel_spellings(name.value):
            found.append((spelled, Rule.LONG_VOWEL))
            parts = spelled.split(" ")
            if reversible and len(parts) == 2:
                found.append((f"{parts[1]} {parts[0]}", Rule.LONG_VOWEL))
    return found


@dataclass(slots=True)
class _Key:
    """What one key of the automaton stands for."""

    entries: dict[str, tuple[str, bool, Rule]] = field(default_factory=dict)
    keywords: list[_KeywordRef] = field(default_factory=list)

    def add(self, character_id: str, value: str, ambiguous: bool, rule: Rule) -> None:
        found = self.entries.get(character_id)
        if found is None:
            self.entries[character_id] = (value, ambiguous, rule)
            return
        # Ambiguous only if every name of the character with this key is; the best rule reports.
        best = found if _RANK[found[2]] <= _RANK[rule] else (value, ambiguous, rule)
        self.entries[character_id] = (best[0], found[1] and ambiguous, best[2])


def _bounded(ch: str) -> bool:
    return is_word_char(ch)


def _hangul(ch: str) -> bool:
    return 0xAC00 <= ord(ch) <= 0xD7AF


def _needs_words(ch: str) -> bool:
    """Whether a key's end in ``ch`` needs a word boundary from an analyser (Japanese, Chinese)."""
    return is_cjk(ch) and not _hangul(ch)


@dataclass(frozen=True, slots=True)
class ScreenIndex:
    """One immutable generation of the screen: build it with `ScreenIndex.build`, ask `find`.

    Attributes:
        automaton: The Aho-Corasick automaton (None when nothing is indexed).
        names: How many distinct name keys are indexed (variants not counted).
        characters: How many characters.
        keys: How many keys the automaton holds (every variant and keyword).
        skeleton_collisions: Look-alike merges that were not applied: (the key a name turns
            into, the character whose name it is, the character that key belongs to).
        marker: Whatever the owner uses to tell generations apart.
    """

    automaton: Any
    names: int
    characters: int
    keys: int = 0
    keyword_sets: tuple[tuple[str, KeywordSet], ...] = ()
    skeleton_collisions: tuple[tuple[str, str, str], ...] = ()
    segmenter: Segmenter | None = None
    marker: object = None
    _suppressed: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls, characters: Iterable[ScreenCharacter], *, segmenter: Segmenter | None = None, marker: object = None
    ) -> ScreenIndex:
        """Index every name, variant and keyword of ``characters``.

        Args:
            characters: The characters, each with its names (the canonical name first).
            segmenter: The analyser for CJK word boundaries (a `WordSegmenter` by default).
            marker: Kept on the index for its owner.
        """
        import ahocorasick

        by_key: dict[str, _Key] = {}
        own_keys: dict[str, set[str]] = {}  # name key → characters (for look-alike merges)
        sets: list[tuple[str, KeywordSet]] = []
        skeleton_names: list[tuple[str, str]] = []  # (character id, name) with look-alike characters
        learned: list[ScreenName] = []
        count = 0
        for character in characters:
            count += 1
            keyed = [(n, normalize(n.value)) for n in character.names]
            east_asian = any(_CJK.search(n.value) for n in character.names)
            learned.extend(character.names)
            for name, key in keyed:
                if not key:
                    continue
                own_keys.setdefault(key, set()).add(character.id)
                if not name.value.isascii() and _has_look_alikes(name.value):
                    skeleton_names.append((character.id, name.value))
                for variant, rule in _variants(name, key, east_asian):
                    if variant:
                        by_key.setdefault(variant, _Key()).add(character.id, name.value, name.ambiguous, rule)
            for keyword_set in character.keyword_sets:
                position = len(sets)
                sets.append((character.id, keyword_set))
                for number, variants in enumerate(keyword_set.keywords):
                    for variant in variants:
                        if variant_key := normalize(variant):
                            refs = by_key.setdefault(variant_key, _Key()).keywords
                            if (position, number) not in refs:
                                refs.append((position, number))
        collisions = []
        suppressed = set()
        for character_id, value in skeleton_names:
            merged = look_alike_key(value) or ""
            for other in sorted(own_keys.get(merged, set()) - {character_id}):
                collisions.append((merged, character_id, other))
                suppressed.add(merged)
        segmenter = segmenter if segmenter is not None else _default_segmenter()
        segmenter.learn(c.value for c in learned)
        if not by_key:
            return cls(None, 0, count, segmenter=segmenter, marker=marker)
        automaton = ahocorasick.Automaton()
        for key, meaning in by_key.items():
            entries = tuple((cid, alias, ambiguous, rule) for cid, (alias, ambiguous, rule) in meaning.entries.items())
            bounds = (_bounded(key[0]), _bounded(key[-1]), is_cjk(key[0]), is_cjk(key[-1]))
            automaton.add_word(key, (len(key), *bounds, entries, tuple(meaning.keywords), key))
        automaton.make_automaton()
        return cls(
            automaton,
            names=len(own_keys),
            characters=count,
            keys=len(by_key),
            keyword_sets=tuple(sets),
            skeleton_collisions=tuple(collisions),
            segmenter=segmenter,
            marker=marker,
            _suppressed=frozenset(suppressed),
        )

    def find(self, prompt: str) -> list[Detection]:
        """Every detection in ``prompt``, ordered by start (see the module docstring)."""
        if self.automaton is None:
            return []
        detections = _Search(self, prompt, prompt).run()
        if not prompt.isascii() and _has_look_alikes(prompt):
            seen = {(d.character_id, d.start, d.end) for d in detections}
            extra = _Search(self, prompt, _skeleton(prompt), skeleton=True).run(seen)
            if extra:
                detections = _outermost(sorted(detections + extra, key=lambda d: d.start))
        return detections


class _Search:
    """One search of one prompt (or of its look-alike replacement, which has the same length)."""

    __slots__ = ("_boundaries", "_hashtags", "_index", "_key", "_prompt", "_skeleton", "_text", "_words")

    def __init__(self, index: ScreenIndex, prompt: str, searched: str, *, skeleton: bool = False) -> None:
        self._index = index
        self._prompt = prompt
        self._text: NormalizedText = normalize_text(searched)
        self._key = self._text.key
        self._skeleton = skeleton
        self._words: dict[tuple[int, int], list[tuple[int, int, bool]]] = {}
        self._hashtags: list[tuple[int, int]] | None = None
        self._boundaries = None

    def run(self, seen: set[tuple[str, int, int]] | None = None) -> list[Detection]:
        """The detections of this search; for the look-alike search, those not in ``seen`` (by
        character and span), each reported with `Rule.SKELETON`."""
        key = self._key
        last = len(key) - 1
        suppressed = self._index._suppressed if self._skeleton else frozenset()
        # The automaton reports matches by end, and a longer match before a shorter one with the
        # same end. Kept that way, a new match swallows the kept matches that start inside it, and
        # is itself inside a kept match only if that one has the same end and starts earlier.
        kept: list[tuple[int, int, tuple[_Entry, ...], bool]] = []
        keywords: dict[_KeywordRef, tuple[int, int]] = {}
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

    def _soft_start(self, start: int, entries: tuple[_Entry, ...]) -> bool:
        """Whether a Latin key starting at ``start`` after a word character still starts a word:
        a camel-case hump, a dropped invisible character, or a several-word name in a hashtag."""
        first, _ = self._text.span(start, start + 1)
        prompt = self._prompt
        if first and ((prompt[first - 1].islower() and prompt[first].isupper()) or is_ignorable(prompt[first - 1])):
            return True
        return any(rule is Rule.JOINED for *_, rule in entries) and self._in_hashtag(first)

    def _soft_end(self, end: int, entries: tuple[_Entry, ...]) -> bool:
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
        self, found: dict[_KeywordRef, tuple[int, int]], detections: list[Detection], seen: set[tuple[str, int, int]]
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


def _outermost(detections: list[Detection]) -> list[Detection]:
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
