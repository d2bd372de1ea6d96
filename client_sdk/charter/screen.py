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
points of the original prompt, end exclusive. At most `MAX_OCCURRENCES` detections are reported
per character and ambiguity (and keyword set), the first ones: a decision depends only on which
characters a prompt names and whether ambiguously.

**Bounded work.** No prompt costs more than work linear in its length with small constants: the
analysers see at most `ANALYSER_BUDGET` characters per screen (past it, a CJK candidate counts
without asking: fail closed), and matches naming only characters already reported in full are
skipped before any check. `ScreenWork` counts what a screen did (see ``charter._search``).

**Descriptions.** A keyword set matches when every one of its keywords (any variant) is found
with the same boundary rules, anywhere and in any order (`Rule.DESCRIPTION`, best-effort).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from charter._analysers import Segmenter, WordSegmenter, default_segmenter
from charter._search import ANALYSER_BUDGET, MAX_OCCURRENCES, KeywordRef, ScreenWork, Search, cjk_kind, outermost
from charter.decisions import Detection, DetectionRule
from charter.names import is_cjk, is_word_char, normalize

__all__ = [
    "ANALYSER_BUDGET",
    "MAX_OCCURRENCES",
    "KeywordSet",
    "Rule",
    "ScreenCharacter",
    "ScreenIndex",
    "ScreenName",
    "ScreenWork",
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


@lru_cache(maxsize=1)
def _look_alikes_in_bmp() -> re.Pattern[str]:
    """Finds a character of `skeleton_map` in the Basic Multilingual Plane (a bitmap, as above)."""
    return re.compile(_skeleton_prefilter().pattern.replace("\U00010000-\U0010ffff", ""))


@lru_cache(maxsize=1)
def _look_alikes_above_bmp() -> frozenset[str]:
    return frozenset(chr(c) for c in skeleton_map() if c >= 0x10000)


_ABOVE_BMP = re.compile("[\U00010000-\U0010ffff]")


def _has_look_alikes(prompt: str) -> bool:
    """Whether ``prompt`` has a character of `skeleton_map`. One search answers the common case
    (none, and no character above the plane); characters above it are then collected and looked
    up as a set, in C, however many there are."""
    found = _skeleton_prefilter().search(prompt)
    if found is None:
        return False
    if found.group() < "\U00010000" or _look_alikes_in_bmp().search(prompt, found.start()) is not None:
        return True
    return not _look_alikes_above_bmp().isdisjoint(_ABOVE_BMP.findall(prompt, found.start()))


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
    keywords: list[KeywordRef] = field(default_factory=list)

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


# The automaton (pyahocorasick) finds a node's child by scanning its children in the order they
# were added, and most characters of a prompt are looked up at the root, which has a child per
# character that starts a key: a character that starts none (a space, most letters of English
# words) is compared with every child. So the root's children are added first in the order of how
# often characters occur in English (prompts are mostly English), and the most frequent of
# those that start no key get a placeholder child (the character followed by _NEVER, a character
# no key has, so it is never found): they are then found after a few comparisons, not all. In
# CJK text a character that starts no key is compared with the placeholders too; a catalogue in
# Japanese or Chinese has hundreds of such children at its root, and a few more cost little.
_ROOT_ORDER = " etaoinshrdlcumwfgypbvkjxqz0123456789"
_PLACEHOLDERS = frozenset(" etaoin")
_NEVER = "\x00"  # a control character: a separator, never in a key


def _root_order(keys: Iterable[str]) -> list[str]:
    """``keys`` in the order to add them to the automaton: first, per character of _ROOT_ORDER,
    one key starting with it or (for _PLACEHOLDERS) a placeholder, then every key."""
    starts: dict[str, str] = {}
    for key in keys:
        starts.setdefault(key[0], key)
    first = []
    for ch in _ROOT_ORDER:
        if ch in starts:
            first.append(starts[ch])
        elif ch in _PLACEHOLDERS:
            first.append(ch + _NEVER)
    chosen = set(first)
    return first + [key for key in keys if key not in chosen]


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
    _longest: int = 0  # the length of the longest key

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
        segmenter = segmenter if segmenter is not None else default_segmenter()
        segmenter.learn(c.value for c in learned)
        if not by_key:
            return cls(None, 0, count, segmenter=segmenter, marker=marker)
        automaton = ahocorasick.Automaton()
        for key in _root_order(by_key):
            if key not in by_key:  # a placeholder: never found (see _root_order)
                automaton.add_word(key, (len(key), False, False, 0, 0, (), (), key))
                continue
            meaning = by_key[key]
            entries = tuple((cid, alias, ambiguous, rule) for cid, (alias, ambiguous, rule) in meaning.entries.items())
            bounds = (_bounded(key[0]), _bounded(key[-1]), cjk_kind(key[0]), cjk_kind(key[-1]))
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
            _longest=max(map(len, by_key)),
        )

    def find(self, prompt: str, *, work: ScreenWork | None = None) -> list[Detection]:
        """Every detection in ``prompt``, ordered by start (see the module docstring): at most
        `MAX_OCCURRENCES` per character and ambiguity, the first ones.

        Args:
            prompt: The prompt.
            work: Counts what this screen did, if given (see `ScreenWork`).
        """
        if self.automaton is None:
            return []
        search = Search(self, prompt, work)
        found = search.run()
        # Look-alikes are outside ASCII: only those characters are searched, if the fold collected them.
        if not prompt.isascii() and _has_look_alikes(search.non_ascii or prompt):
            seen = {(d.character_id, d.start, d.end) for d in found}
            # What the first pass reported in full needs no look-alike occurrences.
            counts: dict[tuple[str, bool], int] = {}
            for d in found:
                counts[d.character_id, d.ambiguous] = counts.get((d.character_id, d.ambiguous), 0) + 1
            full = {group for group, count in counts.items() if count >= MAX_OCCURRENCES}
            # The second pass shares the first's counts, and so the analysers' budget.
            extra = Search(self, prompt, search.work, skeleton_map(), search).run(seen, full)
            if extra:
                found = outermost(sorted(found + extra, key=_by_start))
        reported = _first_occurrences(found)
        if work is not None:
            work.found += len(found)
            work.reported += len(reported)
        return reported


def _by_start(detection: Detection) -> int:
    return detection.start


def _first_occurrences(found: list[Detection]) -> list[Detection]:
    """``found`` with at most `MAX_OCCURRENCES` of each character, ambiguity and keyword set."""
    if len(found) <= MAX_OCCURRENCES:
        return found
    counts: dict[tuple[str, bool, str], int] = {}
    kept = []
    for d in found:
        group = (d.character_id, d.ambiguous, d.keyword_set)
        count = counts.get(group, 0)
        if count < MAX_OCCURRENCES:
            counts[group] = count + 1
            kept.append(d)
    return kept
