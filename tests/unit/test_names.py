"""Name normalisation: one key per way of writing a name, with spans back into the input."""

from __future__ import annotations

import pytest
from charter.names import is_cjk, normalize, normalize_with_offsets
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("variants", "key"),
    [
        (
            ["Hatsune Miku", "Hatsune  Miku", "hatsune-miku", "ＨＡＴＳＵＮＥ ＭＩＫＵ", " HATSUNE_MIKU! "],
            "hatsune miku",
        ),
        (["はつねみく", "ハツネミク", "ﾊﾂﾈﾐｸ"], "はつねみく"),
        (["初音ミク", "初音・ミク", "初音 ミク", "初音ﾐｸ"], "初音みく"),
        (["ガンダム", "ｶﾞﾝﾀﾞﾑ", "がんだむ"], "がんだむ"),
        (["Pokémon", "POKEMON", "pokémon"], "pokemon"),
        (["Straße", "STRASSE"], "strasse"),
        (["ラー", "らー"], "らー"),
    ],
)
def test_variants_share_one_key(variants: list[str], key: str) -> None:
    assert {normalize(v) for v in variants} == {key}


def test_voicing_marks_are_kept() -> None:
    assert normalize("が") != normalize("か")
    assert normalize("パ") != normalize("ハ")


def test_distinct_names_stay_distinct() -> None:
    assert normalize("Miku") != normalize("Mika")
    assert normalize("hatsune miku") != normalize("hatsunemiku")


def test_empty_and_separator_only() -> None:
    assert normalize("") == ""
    assert normalize(" -・! ") == ""


def test_offsets_point_into_the_original() -> None:
    text = "Draw ＭＩＫＵ and ﾐｸ!"
    key, spans = normalize_with_offsets(text)
    assert len(key) == len(spans)
    start = key.index("miku")
    assert text[spans[start][0] : spans[start + 3][1]] == "ＭＩＫＵ"
    kana = key.index("みく")
    assert text[spans[kana][0] : spans[kana + 1][1]] == "ﾐｸ"


def test_half_width_voiced_kana_maps_to_both_input_characters() -> None:
    key, spans = normalize_with_offsets("ｶﾞ")
    assert key == "が"
    assert spans == [(0, 2)]


def test_cjk_detection() -> None:
    assert is_cjk("初") and is_cjk("ミ") and is_cjk("み")
    assert not is_cjk("a") and not is_cjk("1")


@given(st.text(max_size=40))
def test_normalisation_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@given(st.text(max_size=40))
def test_spans_are_ordered_and_inside_the_input(text: str) -> None:
    key, spans = normalize_with_offsets(text)
    assert len(key) == len(spans)
    previous = 0
    for start, end in spans:
        assert 0 <= start < end <= len(text)
        assert start >= previous
        previous = start
