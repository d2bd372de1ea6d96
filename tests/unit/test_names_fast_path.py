"""The fast path of the name normalisation gives exactly what the reference model gives.

``charter.names`` folds most text one to one with C-speed string operations and maps key
positions back by counting separators; ``names_reference`` is the original cluster-by-cluster
implementation. Keys, per-character spans and the spans of every key range must agree, for
text drawn from the characters where the two paths could part: marks that join the character
before them, folds longer than one character, separators of every kind next to CJK and Latin
text, characters above the Basic Multilingual Plane.
"""

# ruff: noqa: RUF001  (full-width and other look-alike characters are the point)

from __future__ import annotations

import unicodedata

import pytest
from charter.names import NormalizedText, normalize, normalize_text, normalize_with_offsets
from hypothesis import given, settings
from hypothesis import strategies as st

from . import names_reference as ref

TRICKY = (
    "aAzZ09 -_,.!?\t\n\x00\x7f"  # ASCII letters, digits, separators, controls
    "éÉÅøßﬁİŉǅ\u0301\u0308\u0345<\u0338\u20e3"  # accents, marks, expansions, a dotted capital I
    "\u3099\u309aｶﾞﾟﾊﾐｸｰｳﾜｦわワゝ"  # voicing marks, half-width kana, kana that compose with them and that do not
    "ミクはつねー初音々〆〇ヽヾ・、。「」\u3000"  # kana, kanji, marks, CJK punctuation
    "ㄅꀀ가각ㄱ"  # bopomofo, Yi, Hangul and a compatibility jamo
    "ＡＭｍ１！①㍿"  # full-width forms, a circled digit, a squared word
    "мΩω€¥\u00a0\u200b\u2028\uffff"  # Cyrillic, Greek, symbols, odd spaces, a noncharacter
    "😀\U00020000\U0001d400\U000e0001\U0010fffd"  # emoji, CJK extension B, a math letter, tags, private use
)
texts = st.text(alphabet=st.sampled_from(TRICKY), max_size=40) | st.text(max_size=40)


def spans_of_every_range(text: NormalizedText) -> dict[tuple[int, int], tuple[int, int]]:
    """``text.span`` of every range of the key that starts and ends on a non-space, asked in an
    order that goes back and forth (so the position cursor is reset as well as reused)."""
    key = text.key
    found = {}
    for start in range(len(key)):
        if key[start] == " ":
            continue
        for end in range(len(key), start, -1):
            if key[end - 1] != " ":
                found[(start, end)] = text.span(start, end)
    return found


@settings(max_examples=400)
@given(texts)
def test_keys_and_spans_equal_the_reference(text: str) -> None:
    key, spans = ref.normalize_with_offsets(text)
    assert normalize(text) == key
    assert normalize_with_offsets(text) == (key, spans)
    fast = normalize_text(text)
    assert fast.key == key
    expected = {
        (start, end): (spans[start][0], spans[end - 1][1])
        for start in range(len(key))
        for end in range(start + 1, len(key) + 1)
        if key[start] != " " and key[end - 1] != " "
    }
    assert spans_of_every_range(fast) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Draw Hatsune Miku, 初音ミク and ﾊﾂﾈﾐｸ!",
        "  leading, trailing  ",
        "ｶﾞﾝﾀﾞﾑ vs Poke\u0301mon",  # voiced half-width kana and a decomposed accent: the general path
        "Straße ﬁn ㍿",  # folds longer than one character: the general path
        "〆切 and 〇 — characters near CJK that are not CJK",
        "a\u3000b、c。d「e」",
        "😀 初音ミク 😀",
    ],
)
def test_examples_equal_the_reference(text: str) -> None:
    key, spans = ref.normalize_with_offsets(text)
    assert normalize_with_offsets(text) == (key, spans)
    fast = normalize_text(text)
    assert fast.key == key
    for (start, end), span in spans_of_every_range(fast).items():
        assert span == (spans[start][0], spans[end - 1][1])


def test_every_code_point_of_the_planes_in_use_folds_as_the_reference() -> None:
    """Each character alone and between Latin and CJK neighbours, over the first three planes in
    steps (every code point of the blocks the fast path treats specially)."""
    special = [*range(0x0000, 0x0300), *range(0x3000, 0x3100), *range(0xFF00, 0xFFF0)]
    sampled = [*special, *range(0x0300, 0x30000, 7)]
    for code in sampled:
        ch = chr(code)
        for text in (ch, f"a {ch} b", f"初{ch}音", f"a{ch}"):
            assert normalize_with_offsets(text) == ref.normalize_with_offsets(text), repr(text)


def test_every_joining_mark_after_every_kind_of_character() -> None:
    """Marks join the character before them into one cluster: after ASCII (already written by
    the time the mark is seen), kana, full- and half-width forms, a character that folds to two,
    and at the very start."""
    joining = [chr(c) for c in range(0x30000) if unicodedata.combining(chr(c))] + ["\uff9e", "\uff9f"]
    for mark in joining:
        for base in ("", "a", "<", " ", "カ", "ｶ", "ﾊ", "ｳ", "ｦ", "ワ", "わ", "ゝ", "é", "ß", "初", "Ａ"):
            for text in (f"{base}{mark}", f"x {base}{mark}{mark}y", f"初{base}{mark}"):
                assert normalize_with_offsets(text) == ref.normalize_with_offsets(text), repr(text)
    for code in range(0x80):
        for mark in ("\u0301", "\u0338", "\u0345", "\u3099", "\uff9e"):
            text = f"x{chr(code)}{mark}y"
            assert normalize_with_offsets(text) == ref.normalize_with_offsets(text), repr(text)


@settings(max_examples=60, deadline=None)
@given(texts)
def test_long_texts_translated_whole_equal_the_reference(text: str) -> None:
    """At 1,024 characters and more the fast path translates the text whole (the marks and
    ignorables joined by one regular expression) instead of run by run."""
    long = ("x" + text) * (1100 // (len(text) + 1) + 1)
    assert len(long) >= 1024
    key, spans = ref.normalize_with_offsets(long)
    assert normalize(long) == key
    assert normalize_with_offsets(long) == (key, spans)
    fast = normalize_text(long)
    assert fast.key == key
    for first in range(0, len(key), 97):
        start, end = first, min(len(key), first + 13)
        while start < end and key[start] == " ":
            start += 1
        while end > start and key[end - 1] == " ":
            end -= 1
        if start < end:
            assert fast.span(start, end) == (spans[start][0], spans[end - 1][1])


@pytest.mark.parametrize(
    "text",
    [
        "e\u0301" * 4000,
        "Hatsune\u200bMiku " * 600,
        "\u200b" * 3000 + "Miku",
        "\u202eukim enustah " * 600,
        "<\u0338\u0301 a\u0345 İ\u0307 ｅ\u0301 ß\u0301 初\u200b音 " * 120,
        "Ⅰ\u0301 \u0301\u0301 ｶﾞ\u200b " * 200,
    ],
)
def test_long_examples_with_marks_and_ignorables_equal_the_reference(text: str) -> None:
    assert len(text) >= 1024
    assert normalize_with_offsets(text) == ref.normalize_with_offsets(text)
    assert normalize_text(text).key == ref.normalize(text)


@pytest.mark.parametrize(
    "text",
    [
        "、\U000e0001\u0301",  # an ignorable, then a Latin mark, after a separator: one cluster
        "a\U000e0001\u0301x",
        "\u200b\u0301a",
        "e\u0301\u200b\u0302 ß\u200b\u0301",
        "Ω\U000e0001\u3099 0\U000e0001\u3099",  # ... and a mark that is not Latin after them
    ],
)
def test_the_joining_characters_of_a_cluster_are_joined_all_or_none(text: str) -> None:
    for sample in (text, text * (1100 // len(text) + 1)):  # run by run, and translated whole
        assert normalize_with_offsets(sample) == ref.normalize_with_offsets(sample)
        assert normalize_text(sample).key == ref.normalize(sample)


def agrees_with_the_reference(text: str) -> bool:
    """``normalize_text`` gives the reference's key, and the reference's span for every key range
    of up to three characters (the wide path: folds of several characters, marks folded by
    cluster), and ``normalize`` the same key."""
    key, spans = ref.normalize_with_offsets(text)
    fast = normalize_text(text)
    if fast.key != key or normalize(text) != key:
        return False
    for start in range(len(key)):
        for end in range(start + 1, min(len(key), start + 3) + 1):
            spaced = key[start] == " " or key[end - 1] == " "
            if not spaced and fast.span(start, end) != (spans[start][0], spans[end - 1][1]):
                return False
    return True


def test_every_code_point_folds_as_the_reference_on_the_wide_path_too() -> None:
    """Each character alone, between neighbours and in a text long enough to be folded whole,
    with a Latin mark and a voicing mark after it: the wide path (folds longer than one
    character) against the reference."""
    special = [*range(0x0000, 0x0300), *range(0x3000, 0x3100), *range(0xFF00, 0xFFF0)]
    sampled = [*special, *range(0x0300, 0x30000, 7)]
    wide = [chr(c) for c in range(0x30000) if len(normalize(chr(c))) > 1 or unicodedata.combining(chr(c))]
    for code in sampled:
        ch = chr(code)
        for text in (f"初{ch}\u0301音", f"{ch}\u3099a"):
            assert agrees_with_the_reference(text), repr(text)
    # Texts this long are folded whole; the reference is slow, so one text holds many characters.
    for first in range(0, len(wide), 64):
        text = "".join(f"{ch}\u0301 {ch}\u3099x{ch}" for ch in wide[first : first + 64])
        assert agrees_with_the_reference(text.ljust(1100, "y")), repr(text)


@settings(max_examples=200, deadline=None)
@given(texts)
def test_long_texts_on_the_wide_path_equal_the_reference(text: str) -> None:
    assert agrees_with_the_reference(("ß" + text) * (1100 // (len(text) + 1) + 1))


# One character for one, as the look-alike screen replaces: letters to letters of other scripts,
# a letter to a mark and a mark to a letter, a separator to a letter and a letter to a separator.
REPLACE = {
    ord("м"): "m",
    ord("Ω"): "O",
    ord("a"): "\u0301",
    ord("\u0308"): "e",
    ord("!"): "l",
    ord("z"): "-",
    ord("Å"): "ß",  # a fold of one character replaced by one of two
    ord("ß"): "s",  # and the other way round
}


@settings(max_examples=60, deadline=None)
@given(texts)
def test_a_replacement_made_in_the_fold_equals_folding_the_replaced_text(text: str) -> None:
    """``normalize_text(text, replace)`` folds a long text and replaces its characters in one
    pass: the same key and spans as replacing first and folding the result."""
    for sample in (text, ("x" + text) * (1100 // (len(text) + 1) + 1)):
        expected = normalize_text(sample.translate(REPLACE))
        # Alone, and reusing the lengths of the text folded without the replacement (which the
        # look-alike screen has), which it may where no replacement changes a fold's length.
        for found in (normalize_text(sample, REPLACE), normalize_text(sample, REPLACE, normalize_text(sample))):
            assert found.key == expected.key
            key = expected.key
            for first in range(0, len(key), 7):
                start, end = first, min(len(key), first + 5)
                while start < end and key[start] == " ":
                    start += 1
                while end > start and key[end - 1] == " ":
                    end -= 1
                if start < end:
                    assert found.span(start, end) == expected.span(start, end)
