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
  separated by single spaces, dots, hyphens or underscores normalise to; letters in other groups
  (``Pi-ka-chu``, ``Pika'chu``) are found by a second pass over the words run together (below);
* for a character with a name in Japanese, Chinese or Korean script, whose Latin names are
  romanisations: a two-word name that is not ambiguous in the other order
  (`Rule.REVERSED_ORDER`), and, for a name written with a long vowel (ō, ô, ou, oo; ū, û, uu),
  every spelling of it, ō/ou/oo/o and ū/uu/u, in either order (`Rule.LONG_VOWEL`);
* a name ending in a consonant and ``y`` with ``ies`` (`Rule.PLURAL`);
* a name in kana (not ambiguous): each long vowel written ー, with the kana that lengthens it, or
  not at all (`Rule.LONG_VOWEL`: ピカチュー, ピカチュ; ルイジ, which ルイ〜ジ folds to), and those
  spellings with the small kana written large (`Rule.SKELETON`: ピカチユウ).

**Regrouped letters.** After the pass over the key, one more pass of the automaton runs over the
key with its spaces skipped: a Latin key found there that starts and ends on words of the key and
covers two or more of them is a `Rule.SPACED` detection (``Hatsu ne Mi ku``), unless those words
as spaced are a key of the same characters (judged already) or it names only characters already
detected (the decision cannot change).

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
skeleton is another single character (a Cyrillic ``Н``, a Greek ``Μ``; an upper-case look-alike
of the stroke ``l`` counts as ``I``), or that read as a Latin letter without being in UTS #39
(small capitals, negative circled and squared letters, regional indicator symbols), a second
pass screens the prompt with those characters replaced by their prototypes (`Rule.SKELETON`). Kana and kanji are
never folded (``ロ`` and ``口`` are both common). A replacement that would turn one registered
name into another (their keys merge) is not applied where the first pass found the look-alike
name itself (on the same span), and the merge is listed in `ScreenIndex.skeleton_collisions` for
staff; elsewhere it is applied, so registering a look-alike of a name never hides that name.

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

import dataclasses
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from charter._analysers import Segmenter, WordSegmenter, default_segmenter
from charter._screen_keys import KeyTable, own_characters
from charter._search import ANALYSER_BUDGET, MAX_OCCURRENCES, ScreenWork, Search, outermost
from charter.decisions import Detection, DetectionRule
from charter.names import is_cjk, normalize

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


# Letters that read as a Latin letter but that neither NFKC nor UTS #39 maps to one: small
# capitals (``ᴘɪᴋᴀ``), negative circled and squared letters (``🅿``, ``🅟``) and regional indicator
# symbols (``🇵``, a flag only in pairs that name a country). Their Unicode names say which letter.
_LETTER_NAME = re.compile(
    r"(?:LATIN LETTER SMALL CAPITAL|NEGATIVE (?:CIRCLED|SQUARED) LATIN CAPITAL LETTER"
    r"|REGIONAL INDICATOR SYMBOL LETTER) ([A-Z])"
)


def _prototype(checker: Any, ch: str) -> str:
    """The one character ``ch`` looks like: the letter its Unicode name says (`_LETTER_NAME`), else
    its UTS #39 skeleton (possibly several characters, or itself)."""
    named = _LETTER_NAME.fullmatch(unicodedata.name(ch, ""))
    if named is not None:
        return named.group(1)
    prototype = str(checker.getSkeleton(0, ch))
    # UTS #39 maps capital I and everything like it to a lower-case l, the prototype of the
    # vertical stroke; but keys are case-folded, and an upper-case stroke (Greek Ι, Cyrillic І,
    # palochka Ӏ) stands for I in an upper-case word (``ΡΙΚΑCΗU``).
    return "I" if prototype == "l" and ch.isupper() else prototype


@lru_cache(maxsize=1)
def skeleton_map() -> dict[int, str]:
    """Code point → prototype for every character outside ASCII and CJK whose UTS #39 skeleton
    (ICU's ``SpoofChecker``) is one other character that normalises differently; upper-case
    look-alikes of the stroke ``l`` map to ``I``; small capitals, negative circled and squared
    letters and regional indicator symbols map to the Latin letter their Unicode name says."""
    import icu

    checker = icu.SpoofChecker()
    found: dict[int, str] = {}
    for code in range(0x80, 0x30000):
        ch = chr(code)
        if is_cjk(ch) or unicodedata.category(ch) in ("Cn", "Co", "Cs"):
            continue
        prototype = _prototype(checker, ch)
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


def _collisions(table: KeyTable) -> tuple[tuple[tuple[str, str, str], ...], frozenset[str]]:
    """The look-alike merges that are not applied: (the key a name turns into, its character, the
    character whose own name that key is), and those keys."""
    collisions = []
    suppressed = set()
    for character_id, value in table.skeleton_names:
        merged = look_alike_key(value) or ""
        found = table.values.get(merged)
        for other in sorted(own_characters(found) - {character_id}) if found is not None else ():
            collisions.append((merged, character_id, other))
            suppressed.add(merged)
    return tuple(collisions), frozenset(suppressed)


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

    _table: KeyTable | None = None  # what it was built from, for the next generation

    @classmethod
    def build(
        cls,
        characters: Iterable[ScreenCharacter],
        *,
        segmenter: Segmenter | None = None,
        marker: object = None,
        previous: ScreenIndex | None = None,
    ) -> ScreenIndex:
        """Index every name, variant and keyword of ``characters``.

        With ``previous``, only the characters that differ from those it was built from are
        derived again (their names normalised, their variants made): the index is the same as
        without, in less time when few changed; when none did, it is ``previous`` itself (with
        ``marker``). That holds when ``characters`` keeps the order of ``previous``'s, new ones
        after; otherwise everything is derived again.

        Args:
            characters: The characters, each with its names (the canonical name first), each id once.
            segmenter: The analyser for CJK word boundaries (``previous``'s, else a
                `WordSegmenter`, by default).
            marker: Kept on the index for its owner.
            previous: An earlier generation to derive from.
        """
        table, learned = None, None
        if previous is not None and previous._table is not None:
            characters = list(characters)  # read twice when the order is not previous's
            updated = previous._table.update(characters, _has_look_alikes)
            if updated is not None:
                table, learned = updated
                if segmenter is None or segmenter is previous.segmenter:
                    segmenter = previous.segmenter
                    if table is previous._table:  # nothing the screen sees changed: the same index
                        return previous if marker is previous.marker else dataclasses.replace(previous, marker=marker)
                else:  # another analyser: it learns every name
                    learned = tuple(table.characters.values())
        if table is None:
            table = KeyTable.build(characters, _has_look_alikes)
            learned = tuple(table.characters.values())
        segmenter = segmenter if segmenter is not None else default_segmenter()
        segmenter.learn(n.value for c in learned or () for n in c.names)
        return cls._of(table, segmenter, marker)

    @classmethod
    def _of(cls, table: KeyTable, segmenter: Segmenter, marker: object) -> ScreenIndex:
        """The index of ``table``: its automaton filled (every key: C calls only) and made."""
        import ahocorasick

        values = table.values
        if not values:
            return cls(None, 0, len(table.characters), segmenter=segmenter, marker=marker, _table=table)
        collisions, suppressed = _collisions(table)
        automaton = ahocorasick.Automaton()
        add = automaton.add_word
        for key in _root_order(values):
            value = values.get(key)
            if value is None:  # a placeholder: never found, and it would report nothing (see _root_order)
                value = (len(key), False, False, 0, 0, (), (), key)
            add(key, value)
        automaton.make_automaton()
        return cls(
            automaton,
            names=table.names,
            characters=len(table.characters),
            keys=len(values),
            keyword_sets=table.keyword_sets,
            skeleton_collisions=collisions,
            segmenter=segmenter,
            marker=marker,
            _suppressed=suppressed,
            _longest=max(map(len, values)),
            _table=table,
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
        split = search.split_words(found)
        if split:
            found = outermost(sorted(found + split, key=_by_start))
        # Look-alikes are outside ASCII: only those characters are searched, if the fold collected them.
        if not prompt.isascii() and _has_look_alikes(search.non_ascii or prompt):
            seen = {(d.character_id, d.start, d.end) for d in found}
            # What the first pass reported in full needs no look-alike occurrences.
            counts: dict[tuple[str, bool], int] = {}
            for d in found:
                counts[d.character_id, d.ambiguous] = counts.get((d.character_id, d.ambiguous), 0) + 1
            full = {group for group, count in counts.items() if count >= MAX_OCCURRENCES}
            # The second pass shares the first's counts, and so the analysers' budget.
            second = Search(self, prompt, search.work, skeleton_map(), search)
            extra = second.run(seen, full)
            if extra:
                found = outermost(sorted(found + extra, key=_by_start))
            extra = second.split_words(found)
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
