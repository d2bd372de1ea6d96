"""The reference model of the shared name normalisation: the original, cluster-by-cluster
implementation of ``charter.names`` (with ignorable characters joined to the cluster before them
and dropped), kept so the fast path can be checked against it.
Slow and obviously right; never used outside the tests."""

from __future__ import annotations

import unicodedata
from functools import cache

import regex

_KATAKANA_START, _KATAKANA_END = 0x30A1, 0x30F6
_KANA_SHIFT = 0x60
# Iteration marks ヽ ヾ fold to ゝ ゞ.
_ITERATION = {0x30FD: "\u309d", 0x30FE: "\u309e"}
# Marks that attach to the preceding character and must be normalised with it.
_ATTACHING = {"\u3099", "\u309a", "\uff9e", "\uff9f"}


def is_cjk(ch: str) -> bool:
    """Whether ``ch`` is written without spaces between words (Han, kana, Hangul and the like)."""
    code = ord(ch)
    return (
        0x3040 <= code <= 0x30FF  # hiragana, katakana
        or 0x31F0 <= code <= 0x31FF  # katakana phonetic extensions
        or 0x3400 <= code <= 0x4DBF  # CJK extension A
        or 0x4E00 <= code <= 0x9FFF  # CJK unified ideographs
        or 0xAC00 <= code <= 0xD7AF  # Hangul syllables
        or 0xF900 <= code <= 0xFAFF  # CJK compatibility ideographs
        or 0x20000 <= code <= 0x3FFFF  # CJK extensions B and later
        or code == 0x3005  # 々
    )


def is_word_char(ch: str) -> bool:
    """Whether ``ch`` is part of a space-separated word (a letter or digit that is not CJK)."""
    return ch.isalnum() and not is_cjk(ch)


# The model's pure functions of one character or cluster remember their answers: the tests ask them
# about the same few characters (the neighbours of each code point tested) again and again, and
# `regex.match` looked its pattern up anew on every call (a third of those tests' time).


@cache
def _is_separator(ch: str) -> bool:
    if ch == "\u30fc":  # ー is a letter in Japanese, although Unicode calls it a modifier
        return False
    category = unicodedata.category(ch)
    return category[0] in "PSZC" or ch.isspace()


def _fold_char(ch: str) -> str:
    code = ord(ch)
    if _KATAKANA_START <= code <= _KATAKANA_END:
        return chr(code - _KANA_SHIFT)
    return _ITERATION.get(code, ch)


def _is_latin(ch: str) -> bool:
    code = ord(ch)
    return code < 0x0250 or 0x1E00 <= code <= 0x1EFF


@cache
def _ignorable(ch: str) -> bool:
    return regex.match(r"[\p{Default_Ignorable_Code_Point}\p{Cf}]", ch) is not None


@cache
def _fold_cluster(cluster: str) -> str:
    cluster = "".join(c for c in cluster if not _ignorable(c))
    text = unicodedata.normalize("NFKC", cluster).casefold()
    if text and _is_latin(text[0]):
        decomposed = unicodedata.normalize("NFD", text)
        text = unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))
    elif text and _is_separator(text[0]):
        # Marks on a separator go with it: kept, they would stand as key characters of their own
        # after a gap, which a second normalisation would then drop (it must be idempotent).
        text = text[0] + "".join(c for c in text[1:] if not unicodedata.category(c).startswith("M"))
    return "".join(_fold_char(c) for c in text)


def _clusters(text: str) -> list[tuple[int, int]]:
    """Spans of a base character and the combining or voicing marks after it."""
    spans: list[tuple[int, int]] = []
    start = 0
    for index in range(1, len(text) + 1):
        if index < len(text) and (
            unicodedata.combining(text[index]) or text[index] in _ATTACHING or _ignorable(text[index])
        ):
            continue
        spans.append((start, index))
        start = index
    return spans if text else []


def normalize_with_offsets(text: str) -> tuple[str, list[tuple[int, int]]]:
    """Normalise ``text`` and give, for each output character, its ``(start, end)`` span in ``text``."""
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    pending_gap: tuple[int, int] | None = None  # a separator run not yet emitted
    for start, end in _clusters(text):
        folded = _fold_cluster(text[start:end])
        for ch in folded:
            if _is_separator(ch):
                if out and pending_gap is None:
                    pending_gap = (start, end)
                elif pending_gap is not None:
                    pending_gap = (pending_gap[0], end)
                continue
            if pending_gap is not None:
                # One space between two word characters; none where CJK text meets anything.
                if not is_cjk(out[-1]) and not is_cjk(ch):
                    out.append(" ")
                    spans.append(pending_gap)
                pending_gap = None
            out.append(ch)
            spans.append((start, end))
    return "".join(out), spans


def normalize(text: str) -> str:
    """The matching key of a name or alias (see the module docstring for the rules)."""
    return normalize_with_offsets(text)[0]
