"""What the catalogue works out about names when they are registered, for prompt screening.

* **Readings.** A name in kanji or hanzi is read in prompts in other scripts: ``初音ミク`` as
  ``はつねみく`` or ``Hatsune Miku``. When such a name is added, its kana reading and Hepburn
  romanisation (pykakasi) and, for Chinese, its pinyin (pypinyin) are added as aliases marked
  ``derived``. Readings are best-effort (a dictionary's reading of a name can be wrong), which
  is why the rights holder sees them and can remove them or add others; a removed reading is not
  derived again unless its name is added anew.
* **Warnings.** A name that is a common word of its language (Zipf frequency at least
  `COMMON_WORD_ZIPF` in wordfreq's lists) or shorter than `MIN_LATIN_LENGTH` letters or digits
  (`MIN_CJK_LENGTH` characters in Japanese, Chinese or Korean) would match ordinary prompts; it is
  registered all the same, with a warning suggesting that it be marked ambiguous.
* **Keyword sets** are checked here too.

The converters and word lists load once per process (about a second together, more on a busy
machine): `warm` loads them all, and the server calls it in the background when it starts, so
that the first request registering a name in kanji or hanzi does not pay for it.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from charter.names import is_cjk, normalize
from charter.screen import KeywordSet

from charter_server.domain.models import Alias, AliasKind, Character
from charter_server.services.validation import Checker, has_bidi_control
from charter_server.storage.uow import UnitOfWork

COMMON_WORD_ZIPF = 4.5
"""Names at least this frequent (Zipf scale: 6 is ``the``, 3 a rare word) are common words."""
MIN_LATIN_LENGTH = 4
"""Names with fewer letters or digits than this, in Latin and other spaced scripts, are too short."""
MIN_CJK_LENGTH = 2
"""Names with fewer characters than this, in Japanese, Chinese or Korean, are too short."""
MAX_NAME_KEY = 400
"""The longest normalised key (and look-alike key) of a name, in characters: what the name table
stores. NFKC and case folding can lengthen a name many times (``ﷺ`` is 18 characters once
normalised), so a name within its own limit may still be refused for its key."""
MAX_KEYWORD_SETS = 20
MAX_VARIANTS = 10
MAX_VARIANT_KEY = 200
"""The longest normalised key of a keyword variant (a variant is at most 100 characters)."""

_lock = threading.Lock()


def _han(ch: str) -> bool:
    code = ord(ch)
    return 0x3400 <= code <= 0x4DBF or 0x4E00 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF or code >= 0x20000


def _kana(ch: str) -> bool:
    return 0x3040 <= ord(ch) <= 0x30FF


@lru_cache(maxsize=1)
def _kakasi() -> Any:
    import pykakasi

    return pykakasi.kakasi()  # type: ignore[no-untyped-call]


def _japanese(value: str) -> list[tuple[str, str]]:
    with _lock:  # pykakasi's converter is not documented as thread-safe
        parts = _kakasi().convert(value)
    kana = "".join(p["hira"] for p in parts if p["hira"].strip())
    romaji = " ".join(p["hepburn"].capitalize() for p in parts if p["hepburn"].strip())
    return [(kana, "ja-Hira"), (romaji, "ja-Latn")]


def _chinese(value: str) -> list[tuple[str, str]]:
    from pypinyin import lazy_pinyin

    syllables = [s for s in lazy_pinyin(value) if s.strip()]
    if not syllables:
        return []
    if len(syllables) >= 3:  # a family name of one syllable, then the given name
        return [(f"{syllables[0].capitalize()} {''.join(syllables[1:]).capitalize()}", "zh-Latn")]
    return [("".join(syllables).capitalize(), "zh-Latn")]


def warm() -> None:
    """Load pykakasi's and pypinyin's dictionaries and wordfreq's lists of the four languages."""
    readings("初音ミク", "ja")
    readings("孙悟空", "zh")
    for language in ("en", "ja", "zh", "ko"):
        _frequencies(language)


def readings(value: str, language: str) -> list[tuple[str, str]]:
    """The readings of a name with kanji or hanzi in it, as (value, BCP 47 tag); none otherwise."""
    if not any(_han(c) for c in value):
        return []
    base = language.split("-", maxsplit=1)[0].casefold()
    found: list[tuple[str, str]] = []
    if base == "ja" or any(_kana(c) for c in value) or base not in ("zh",):
        found += _japanese(value)
    if base == "zh" or (base != "ja" and not any(_kana(c) for c in value)):
        found += _chinese(value)
    return [(v, tag) for v, tag in found if normalize(v)]


def with_readings(canonical_name: str, aliases: tuple[Alias, ...], before: set[str], limit: int) -> tuple[Alias, ...]:
    """``aliases`` with the readings of every name that is not in ``before`` (the names the
    character had), each unless a name with its key is there already, up to ``limit`` aliases."""
    result = list(aliases)
    keys = {normalize(canonical_name), *(a.normalized for a in aliases)}
    sources = [(canonical_name, "")] + [(a.value, a.language) for a in aliases if not a.derived]
    for value, language in sources:
        if value in before:
            continue
        for reading, tag in readings(value, language):
            key = normalize(reading)
            if key in keys or len(result) >= limit or len(key) > MAX_NAME_KEY:
                continue
            keys.add(key)
            result.append(Alias(reading, tag, AliasKind.READING, False, key, derived=True))
    return tuple(result)


def without_shared_readings(uow: UnitOfWork, character: Character) -> Character:
    """The character without the derived readings that another rights holder's character has as
    a name: many names share a reading, and a reading is a guess, never grounds to refuse."""
    derived = {a.normalized for a in character.aliases if a.derived}
    if not derived:
        return character
    given = {key for key, _ in character.names()} - derived | {a.normalized for a in character.aliases if not a.derived}
    taken = {name for name, _, _ in uow.characters.name_owners(list(derived - given), character.rights_holder_id)}
    if not taken:
        return character
    kept = tuple(a for a in character.aliases if not (a.derived and a.normalized in taken))
    return dataclasses.replace(character, aliases=kept)


@dataclass(frozen=True, slots=True)
class NameWarning:
    """A name that may cause false detections (kind ``common_word`` or ``too_short``)."""

    field: str
    name: str
    kind: str
    language: str = ""


@lru_cache(maxsize=8)
def _frequencies(language: str) -> dict[str, float]:
    import wordfreq

    with _lock:
        return dict(wordfreq.get_frequency_dict(language))


def _languages(value: str, language: str) -> list[str]:
    base = language.split("-", maxsplit=1)[0].casefold()
    if base in ("en", "ja", "zh", "ko"):
        return [base]
    if any(0xAC00 <= ord(c) <= 0xD7AF for c in value):
        return ["ko"]
    if any(_kana(c) for c in value):
        return ["ja"]
    if any(_han(c) for c in value):
        return ["ja", "zh"]
    return ["en"]


def _common(value: str, language: str) -> str:
    """The language in which ``value`` is a common word, or ''."""
    word = value.strip().casefold()
    if " " in word:
        return ""
    for tag in _languages(value, language):
        frequency = _frequencies(tag).get(word, 0.0)
        if frequency and math.log10(frequency) + 9 >= COMMON_WORD_ZIPF:
            return tag
    return ""


def name_warnings(character: Character) -> list[NameWarning]:
    """The warnings of a character's names that are not marked ambiguous (derived ones included)."""
    names = [("character.canonical_name", character.canonical_name, "", character.canonical_name_ambiguous)]
    names += [
        (f"character.aliases[{i}].value", a.value, a.language, a.ambiguous) for i, a in enumerate(character.aliases)
    ]
    warnings = []
    for field, value, language, ambiguous in names:
        key = normalize(value)
        if ambiguous or not key:
            continue
        length = sum(c.isalnum() for c in key)
        cjk = any(is_cjk(c) for c in key)
        if length < (MIN_CJK_LENGTH if cjk else MIN_LATIN_LENGTH):
            warnings.append(NameWarning(field, value, "too_short"))
        elif found := _common(value, language):
            warnings.append(NameWarning(field, value, "common_word", found))
    return warnings


def check_keyword_sets(checker: Checker, sets: tuple[KeywordSet, ...], path: str) -> None:
    """Record what is wrong with ``sets`` (see ``charter.v1.KeywordSet`` for the limits)."""
    if len(sets) > MAX_KEYWORD_SETS:
        checker.add(path, f"must have at most {MAX_KEYWORD_SETS} entries")
    seen: set[str] = set()
    for index, keyword_set in enumerate(sets[:MAX_KEYWORD_SETS]):
        at = f"{path}[{index}]"
        checker.text(f"{at}.name", keyword_set.name, max_len=100, required=True)
        if has_bidi_control(keyword_set.name):
            checker.add(f"{at}.name", "must not contain bidirectional controls or line separators")
        if keyword_set.name in seen:
            checker.add(f"{at}.name", "must be unique among the character's keyword sets")
        seen.add(keyword_set.name)
        if not 2 <= len(keyword_set.keywords) <= 6:
            checker.add(f"{at}.keywords", "must have 2 to 6 keywords")
        for number, variants in enumerate(keyword_set.keywords[:6]):
            where = f"{at}.keywords[{number}].variants"
            if not 1 <= len(variants) <= MAX_VARIANTS:
                checker.add(where, f"must have 1 to {MAX_VARIANTS} variants")
            for position, variant in enumerate(variants[:MAX_VARIANTS]):
                before = len(checker.violations)
                checker.text(f"{where}[{position}]", variant, max_len=100, required=True)
                key = normalize(variant) if len(checker.violations) == before else ""
                if len(checker.violations) == before and not key:
                    checker.add(f"{where}[{position}]", "must contain a letter or digit")
                elif len(key) > MAX_VARIANT_KEY:
                    # Every variant is a key of the screen's index, on every replica and in every
                    # registry snapshot: NFKC must not make 100 characters 1,800.
                    checker.add(f"{where}[{position}]", f"must be at most {MAX_VARIANT_KEY} characters once normalised")
                elif len(checker.violations) == before and has_bidi_control(variant):
                    checker.add(f"{where}[{position}]", "must not contain bidirectional controls or line separators")
