"""The keys of a screen (``charter.screen``) and what each stands for, derived per character so
that a changed registry re-derives only the characters that changed.

A `KeyTable` maps every key of the automaton to its *value*, the tuple the automaton reports on a
hit (``charter._search`` unpacks it): the key's length, its boundary kinds at either end, the
characters it names (`Entry`, in the registry's order) and the keywords it is (`KeywordRef`).
What a character contributes depends on that character alone (its names and their variants,
merged per key), so `KeyTable.update` takes the table of a previous generation, removes what the
changed characters contributed and adds what they contribute now: work proportional to the
change, plus copying the table (one dictionary copy). Keyword sets are numbered in the
registry's order, so a change to any keyword set renumbers them all (work proportional to the
keyword sets, a small part of a registry); names are unaffected.

The build allocates few objects that outlive it (per key: the value, its entries tuple, one
entry per character): a full build of 10,000 characters makes some 250,000, and the collector's
full passes over the process's heap, which a growing heap triggers, are paid per object made.
They hold only strings, numbers and booleans (a rule as its value), so the collector stops
tracking them once they survive a collection: the index costs the process's later collections
nothing, and fewer full collections run during a build.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from charter._search import Entry, KeywordRef, cjk_kind
from charter.decisions import DetectionRule as Rule
from charter.names import is_word_char, normalize

if TYPE_CHECKING:
    from charter.screen import KeywordSet, ScreenCharacter, ScreenName

# What the automaton holds for a key: (length, bounded start, bounded end, CJK kind of its first
# character, of its last, entries, keyword refs, the key).
Value = tuple[int, bool, bool, int, int, tuple[Entry, ...], tuple[KeywordRef, ...], str]

# Rules as entries hold them (their values, see `charter._search.Entry`).
_EXACT, _SKELETON, _READING, _SPACED, _JOINED, _PLURAL, _REVERSED, _LONG_VOWEL = (
    Rule.EXACT.value,
    Rule.SKELETON.value,
    Rule.READING.value,
    Rule.SPACED.value,
    Rule.JOINED.value,
    Rule.PLURAL.value,
    Rule.REVERSED_ORDER.value,
    Rule.LONG_VOWEL.value,
)
_RANK: Final = {rule.value: rank for rank, rule in enumerate(Rule)}  # which rule a key reports when several apply
# A character's own names (not variants): they outrank every variant in `_RANK`, so an entry
# keeps one of these rules exactly when the key is one of the character's own names.
_OWN: Final = frozenset({_EXACT, _READING})
_LONG = re.compile(r"ō|ô|ou|oo|ū|û|uu")
_LONG_SPELLINGS = {"o": ("o", "ou", "oo"), "u": ("u", "uu")}
_MAX_LONG_VOWELS = 4  # 3^4 spellings at most per name


# The characters of `charter.names.is_cjk`, as one class (a search of it runs in C).
CJK: Final = re.compile(
    "[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003ffff\u3005]"
)


_KANA = re.compile("[\u3041-\u309f]")  # hiragana, which every kana is once folded


def _latin(key: str) -> bool:
    """Whether a key is written in a spaced script (it has no CJK character)."""
    return key.isascii() or not CJK.search(key)


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


# Kana (folded to hiragana) by the vowel they end in; small kana and the large kana they look like.
_VOWEL_OF = {
    **dict.fromkeys("あかさたなはまやらわがざだばぱぁゃゎ", "a"),
    **dict.fromkeys("いきしちにひみりぎじぢびぴぃ", "i"),
    **dict.fromkeys("うくすつぬふむゆるぐずづぶぷぅゅゔ", "u"),
    **dict.fromkeys("えけせてねへめれげぜでべぺぇ", "e"),
    **dict.fromkeys("おこそとのほもよろをごぞどぼぽぉょ", "o"),
}
# The kana that lengthen each vowel (written instead of ー, or ー instead of them).
_LENGTHENING = {"a": ("あ",), "i": ("い",), "u": ("う",), "e": ("い", "え"), "o": ("う", "お")}
_SMALL_TO_LARGE = str.maketrans("ぁぃぅぇぉっゃゅょゎゕゖ", "あいうえおつやゆよわかけ")
_MAX_KANA_LONG_VOWELS = 2  # 4^2 spellings at most per name; with more, 3 (each written alike)
_MIN_KANA = 3  # a spelling without a long vowel keeps at least this many kana


def _kana_spellings(key: str) -> list[tuple[str, str]]:
    """Other spellings of a name in kana (``key`` folded to hiragana), with their rules' values:
    each long vowel written ー, with the kana that lengthens it (ゅう, いい, おう), or not at all
    (`Rule.LONG_VOWEL`: ピカチュー, ピカチュ for ピカチュウ; ルイジ, ルイ〜ジ for ルイージ), and each of
    those with its small kana written large (`Rule.SKELETON`: ピカチユウ). A name with more than
    `_MAX_KANA_LONG_VOWELS` long vowels gets the spellings that write them all alike."""
    slots = []
    for at in range(1, len(key)):
        vowel = _VOWEL_OF.get(key[at - 1])
        if vowel is not None and (key[at] == "ー" or key[at] in _LENGTHENING[vowel]):
            slots.append((at, ("ー", *_LENGTHENING[vowel], "")))
    spellings = [key]
    if slots:
        spellings = []
        choices: Iterable[tuple[str, ...]] = itertools.product(*(options for _, options in slots))
        if len(slots) > _MAX_KANA_LONG_VOWELS:  # each long vowel written alike only
            choices = [("ー",) * len(slots), tuple(options[1] for _, options in slots), ("",) * len(slots)]
        for choice in choices:
            parts, last = [], 0
            for (at, _), written in zip(slots, choice, strict=True):
                parts += [key[last:at], written]
                last = at + 1
            spelled = "".join(parts) + key[last:]
            if len(spelled) >= _MIN_KANA:
                spellings.append(spelled)
    found = [(spelled, _LONG_VOWEL) for spelled in spellings if spelled != key]
    found += [(large, _SKELETON) for spelled in spellings if (large := spelled.translate(_SMALL_TO_LARGE)) != spelled]
    return found


def variants(name: ScreenName, key: str, east_asian: bool) -> list[tuple[str, str]]:
    """The keys a name is found under, with their rules' values (its own key first)."""
    own = _READING if name.reading else _EXACT
    found = [(key, own)]
    if _KANA.search(key) and not name.ambiguous:
        found += _kana_spellings(key)
    if not _latin(key) or not any(c.isalpha() for c in key):
        return found
    words = key.split(" ")
    compact = "".join(words)
    if len(words) > 1:
        found.append((compact, _JOINED))
    if len(compact) >= 3:
        found.append((" ".join(compact), _SPACED))
    if len(words[-1]) > 2 and words[-1][-1] == "y" and words[-1][-2] not in "aeiou":
        found.append((key[:-1] + "ies", _PLURAL))
    if east_asian:
        reversible = len(words) == 2 and not name.ambiguous
        if reversible:
            found.append((f"{words[1]} {words[0]}", _REVERSED))
        for spelled in _long_vowel_spellings(name.value):
            found.append((spelled, _LONG_VOWEL))
            parts = spelled.split(" ")
            if reversible and len(parts) == 2:
                found.append((f"{parts[1]} {parts[0]}", _LONG_VOWEL))
    return found


def _entries_of(character: ScreenCharacter) -> dict[str, Entry]:
    """Key → the entry of ``character`` it stands for: every name and variant, merged per key
    (ambiguous only if every name of the character with that key is; the best rule reports)."""
    cid = character.id
    east_asian = any(CJK.search(n.value) for n in character.names)
    merged: dict[str, Entry] = {}
    rank = _RANK
    for name in character.names:
        key = normalize(name.value)
        if not key:
            continue
        value, ambiguous = name.value, name.ambiguous
        for variant, rule in variants(name, key, east_asian):
            if not variant:
                continue
            found = merged.get(variant)
            if found is None:
                merged[variant] = (cid, value, ambiguous, rule)
            elif rank[found[3]] <= rank[rule] or (found[3] in _OWN and rule not in _OWN):
                if found[2] and not ambiguous:
                    merged[variant] = (cid, found[1], False, found[3])
            else:
                merged[variant] = (cid, value, found[2] and ambiguous, rule)
    return merged


def _keywords(
    owners: Iterable[ScreenCharacter],
) -> tuple[tuple[tuple[str, KeywordSet], ...], dict[str, tuple[KeywordRef, ...]]]:
    """The keyword sets of ``owners`` (in order), numbered, and key → the keywords it is."""
    sets: list[tuple[str, KeywordSet]] = []
    refs: dict[str, list[KeywordRef]] = {}
    for character in owners:
        for keyword_set in character.keyword_sets:
            position = len(sets)
            sets.append((character.id, keyword_set))
            for number, keyword_variants in enumerate(keyword_set.keywords):
                for variant in keyword_variants:
                    if variant_key := normalize(variant):
                        found = refs.setdefault(variant_key, [])
                        if (position, number) not in found:
                            found.append((position, number))
    return tuple(sets), {key: tuple(found) for key, found in refs.items()}


def _skeleton_names(character: ScreenCharacter, looks_alike: Callable[[str], bool]) -> list[tuple[str, str]]:
    return [
        (character.id, n.value)
        for n in character.names
        if not n.value.isascii() and looks_alike(n.value) and normalize(n.value)
    ]


class _Values:
    """Makes the automaton's values, the boundary kinds of each edge character looked up once."""

    def __init__(self) -> None:
        self._edges: dict[str, tuple[bool, int]] = {}

    def _edge(self, ch: str) -> tuple[bool, int]:
        found = self._edges.get(ch)
        if found is None:
            found = self._edges[ch] = (is_word_char(ch), cjk_kind(ch))
        return found

    def make(self, key: str, entries: tuple[Entry, ...], refs: tuple[KeywordRef, ...]) -> Value:
        edges = self._edges
        first = edges.get(key[0]) or self._edge(key[0])
        last = edges.get(key[-1]) or self._edge(key[-1])
        return (len(key), first[0], last[0], first[1], last[1], entries, refs, key)


def _has_own(value: Value | None) -> bool:
    return value is not None and any(entry[3] in _OWN for entry in value[5])


@dataclass(frozen=True, slots=True, eq=False)
class KeyTable:
    """Every key of a screen and its value, with what it was derived from; immutable.

    Attributes:
        values: Key → the automaton's value for it.
        characters: Character id → the character, in the registry's order.
        order: Character id → its place in that order (gaps where characters were removed).
        keyword_sets: The keyword sets, numbered by their place here (as `KeywordRef` says).
        keyword_refs: Key → the keywords it is.
        skeleton_names: (character id, name) of the names with look-alike characters, in order.
        names: How many keys are a character's own name (variants and keywords not counted).
    """

    values: dict[str, Value]
    characters: dict[str, ScreenCharacter]
    order: dict[str, int]
    keyword_sets: tuple[tuple[str, KeywordSet], ...]
    keyword_refs: dict[str, tuple[KeywordRef, ...]]
    skeleton_names: tuple[tuple[str, str], ...]
    names: int

    @staticmethod
    def build(characters: Iterable[ScreenCharacter], looks_alike: Callable[[str], bool]) -> KeyTable:
        """The table of ``characters`` (each id once), derived from nothing."""
        by_id: dict[str, ScreenCharacter] = {}
        entries: dict[str, tuple[Entry, ...]] = {}
        skeleton: list[tuple[str, str]] = []
        for character in characters:
            by_id[character.id] = character
            for key, entry in _entries_of(character).items():
                found = entries.get(key)
                entries[key] = (entry,) if found is None else (*found, entry)
            if any(not n.value.isascii() for n in character.names):
                skeleton += _skeleton_names(character, looks_alike)
        keyword_sets, refs = _keywords(c for c in by_id.values() if c.keyword_sets)
        make = _Values().make
        nothing: tuple[KeywordRef, ...] = ()
        values = {key: make(key, found, refs.get(key, nothing)) for key, found in entries.items()}
        for key, found_refs in refs.items():
            if key not in values:
                values[key] = make(key, (), found_refs)
        names = sum(1 for found in entries.values() if any(entry[3] in _OWN for entry in found))
        order = {cid: place for place, cid in enumerate(by_id)}
        return KeyTable(values, by_id, order, keyword_sets, refs, tuple(skeleton), names)

    def update(
        self, characters: Iterable[ScreenCharacter], looks_alike: Callable[[str], bool]
    ) -> tuple[KeyTable, tuple[ScreenCharacter, ...]] | None:
        """The table of ``characters`` as `build` makes it, re-deriving only the characters that
        differ from this table's, with those that differ (new or changed); None when the order
        of ``characters`` is not this table's (the ones kept in their order, new ones after)."""
        given: dict[str, ScreenCharacter] = {}
        for character in characters:
            given[character.id] = character
        held = self.characters
        kept = [cid for cid in held if cid in given]
        if list(itertools.islice(given, len(kept))) != kept:
            return None
        changed = {cid: c for cid, c in given.items() if (old := held.get(cid)) is not c and old != c}
        removed = [cid for cid in held if cid not in given] if len(kept) < len(held) else []
        if not changed and not removed:
            return self, ()
        order = dict(self.order)
        touched: dict[str, None] = {}
        fresh: dict[str, dict[str, Entry]] = {}
        for cid in itertools.chain(changed, removed):
            old = held.get(cid)
            if old is not None:
                touched.update(dict.fromkeys(_entries_of(old)))
        for cid in removed:
            del order[cid]
        # A new character goes after every one kept (places only grow: a count of them would
        # reuse a removed one's place, below a kept character's).
        place = max(self.order.values(), default=-1) + 1
        for cid, character in changed.items():
            if cid not in order:
                order[cid] = place
                place += 1
            fresh[cid] = _entries_of(character)
            touched.update(dict.fromkeys(fresh[cid]))
        gone = set(changed).union(removed)
        keyword_sets, refs = self.keyword_sets, self.keyword_refs
        if any(c.keyword_sets for c in changed.values()) or any(held[cid].keyword_sets for cid in gone if cid in held):
            keyword_sets, refs = _keywords(c for c in given.values() if c.keyword_sets)
            old_refs = self.keyword_refs
            touched.update((key, None) for key in itertools.chain(old_refs, refs) if old_refs.get(key) != refs.get(key))
        values = dict(self.values)
        make = _Values().make
        names = self.names
        for key in touched:
            before = values.get(key)
            entries: list[Entry] = [] if before is None else [e for e in before[5] if e[0] not in gone]
            entries += (found[key] for found in fresh.values() if key in found)
            entries.sort(key=lambda entry: order[entry[0]])
            key_refs = refs.get(key, ())
            names -= _has_own(before)
            if not entries and not key_refs:
                del values[key]
                continue
            after = values[key] = make(key, tuple(entries), key_refs)
            names += _has_own(after)
        skeleton = [(cid, name) for cid, name in self.skeleton_names if cid not in gone]
        for character in changed.values():
            skeleton += _skeleton_names(character, looks_alike)
        skeleton.sort(key=lambda pair: order[pair[0]])
        table = KeyTable(values, given, order, keyword_sets, refs, tuple(skeleton), names)
        return table, tuple(changed.values())


def own_characters(value: Any) -> set[str]:
    """The characters whose own name a key's value (`Value`) is."""
    return {entry[0] for entry in value[5] if entry[3] in _OWN}
