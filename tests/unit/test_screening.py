"""Prompt screening's matching rules, on hand-built indexes: scripts and widths, word boundaries,
overlaps, and spans that map back exactly to the original prompt."""

# ruff: noqa: RUF001  (full-width and other look-alike characters are the point)

from __future__ import annotations

import pytest
from charter.decisions import Detection
from charter.names import normalize
from charter.screen import ScreenCharacter, ScreenIndex, ScreenName
from hypothesis import given
from hypothesis import strategies as st

Names = tuple[str, str, list[tuple[str, bool]]]


def characters(*rows: Names) -> list[ScreenCharacter]:
    """Screen characters from (id, canonical name, [(alias, ambiguous)])."""
    return [
        ScreenCharacter(cid, (ScreenName(name), *(ScreenName(v, a) for v, a in aliases))) for cid, name, aliases in rows
    ]


def build(*rows: Names) -> ScreenIndex:
    return ScreenIndex.build(characters(*rows))


MIKU: Names = (
    "chr_miku",
    "Hatsune Miku",
    [("初音ミク", False), ("ハツネミク", False), ("Miku", True), ("ミク", True)],
)
GAKUPO: Names = ("chr_gakupo", "Kamui Gakupo", [("ガクポ", False)])
POKEMON: Names = ("chr_pokemon", "Pokémon Trainer", [])
RIN: Names = ("chr_rin", "Kagamine Rin", [("鏡音リン", False)])
LEN: Names = ("chr_len", "Rin Len", [])  # shares words with Kagamine Rin, to overlap it in part

INDEX = build(MIKU, GAKUPO, POKEMON, RIN, LEN)


def found(prompt: str, index: ScreenIndex = INDEX) -> list[tuple[str, str, str]]:
    """(character id, matched alias, matched text) of each detection, checking every span."""
    detections = index.find(prompt)
    for d in detections:
        assert prompt[d.start : d.end] == d.text
    assert [d.start for d in detections] == sorted(d.start for d in detections)
    return [(d.character_id, d.matched_alias, d.text) for d in detections]


@pytest.mark.parametrize(
    ("prompt", "alias", "text"),
    [
        ("Draw 初音ミク on stage", "初音ミク", "初音ミク"),
        ("初音・ミクを描いて", "初音ミク", "初音・ミク"),  # a separator inside CJK text disappears
        ("描いて：はつねみく。", "ハツネミク", "はつねみく"),  # hiragana for katakana
        ("ﾊﾂﾈﾐｸのイラスト", "ハツネミク", "ﾊﾂﾈﾐｸ"),  # half-width katakana
        ("a poster of ＨＡＴＳＵＮＥ　ＭＩＫＵ!", "Hatsune Miku", "ＨＡＴＳＵＮＥ　ＭＩＫＵ"),  # full-width
        ("hatsune-miku fan art", "Hatsune Miku", "hatsune-miku"),  # romanised, any separator
        ("HATSUNE   MIKU", "Hatsune Miku", "HATSUNE   MIKU"),
        ("by ｶﾞｸﾎﾟ.", "ガクポ", "ｶﾞｸﾎﾟ"),  # half-width voiced kana: two code points each
        ("by ｶﾞｸﾎﾟ", "ガクポ", "ｶﾞｸﾎﾟ"),
        ("カ\u3099クホ\u309a sings", "ガクポ", "カ\u3099クホ\u309a"),  # combining voicing marks
        ("a POKEMON TRAINER", "Pokémon Trainer", "POKEMON TRAINER"),
        ("a Poke\u0301mon Trainer!", "Pokémon Trainer", "Poke\u0301mon Trainer"),  # a decomposed accent
    ],
)
def test_every_way_of_writing_a_name_is_found_with_its_exact_span(prompt: str, alias: str, text: str) -> None:
    (detection,) = INDEX.find(prompt)
    assert (detection.matched_alias, detection.text) == (alias, text)
    assert prompt[detection.start : detection.end] == text
    assert prompt.index(text) == detection.start


def test_spans_are_in_code_points_of_the_original_prompt() -> None:
    prompt = "😀🎨 ＭＩＫＵ and ｶﾞｸﾎﾟ"
    assert INDEX.find(prompt) == [
        Detection("chr_miku", "Miku", 3, 7, "ＭＩＫＵ", True),
        Detection("chr_gakupo", "ガクポ", 12, 17, "ｶﾞｸﾎﾟ", False),
    ]


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("Mikunopolis tour", []),  # Latin names need a word boundary ...
        ("HatsuneMiku", [("chr_miku", "Hatsune Miku", "HatsuneMiku")]),  # run together: a rule of its own
        ("Miku2", []),
        ("the Miku-chan look", [("chr_miku", "Miku", "Miku")]),  # ... which any separator makes
        ("「Miku」", [("chr_miku", "Miku", "Miku")]),
        ("描いてMikuを", [("chr_miku", "Miku", "Miku")]),  # CJK text next to a Latin name is a boundary
        ("Miku", [("chr_miku", "Miku", "Miku")]),
        ("初音ミクさん", [("chr_miku", "初音ミク", "初音ミク")]),  # CJK names end where the analyser's words do
    ],
)
def test_word_boundaries(prompt: str, expected: list[tuple[str, str, str]]) -> None:
    assert found(prompt) == expected


def test_a_cjk_name_inside_cjk_text_is_found() -> None:
    only_short = build(("chr_miku", "ミク", []))
    assert found("初音ミクさん", only_short) == [("chr_miku", "ミク", "ミク")]
    assert found("ミクミク", only_short) == [("chr_miku", "ミク", "ミク")] * 2


def test_a_match_inside_a_longer_one_is_dropped() -> None:
    assert found("Hatsune Miku sings; Miku dances") == [
        ("chr_miku", "Hatsune Miku", "Hatsune Miku"),
        ("chr_miku", "Miku", "Miku"),
    ]
    assert found("初音ミクのライブ") == [("chr_miku", "初音ミク", "初音ミク")]


def test_matches_that_overlap_in_part_are_both_kept() -> None:
    assert found("Kagamine Rin Len duet") == [
        ("chr_rin", "Kagamine Rin", "Kagamine Rin"),
        ("chr_len", "Rin Len", "Rin Len"),
    ]


def test_a_name_shared_by_several_characters_names_each_once() -> None:
    index = build(("chr_a", "Sakura", []), ("chr_b", "Sakura Hoshino", [("SAKURA", True)]), ("chr_c", "Kaito", []))
    detections = index.find("sakura and Sakura!")
    assert [(d.character_id, d.start, d.ambiguous) for d in detections] == [
        ("chr_a", 0, False),
        ("chr_b", 0, True),
        ("chr_a", 11, False),
        ("chr_b", 11, True),
    ]


def test_names_of_one_character_with_one_key_count_once() -> None:
    index = build(("chr_a", "ミク", [("みく", True), ("ﾐｸ", True)]))
    (detection,) = index.find("ミク")
    assert (detection.matched_alias, detection.ambiguous) == ("ミク", False)  # the canonical name is first
    index = build(("chr_a", "Hatsune Miku", [("みく", True), ("ﾐｸ", False)]))
    (detection,) = index.find("ミク")
    assert (detection.matched_alias, detection.ambiguous) == ("みく", False)  # not every alias is ambiguous


def test_detections_are_ordered_by_start() -> None:
    prompt = "鏡音リン, Hatsune Miku, ｶﾞｸﾎﾟ and a Pokémon Trainer"
    assert [d.character_id for d in INDEX.find(prompt)] == ["chr_rin", "chr_miku", "chr_gakupo", "chr_pokemon"]


def test_nothing_to_find() -> None:
    assert INDEX.find("a quiet lake at dawn") == []
    assert INDEX.find("!!! ・・・") == []
    empty = build()
    assert (empty.names, empty.find("Hatsune Miku")) == (0, [])
    assert build(("chr_x", "!?", [("・", False)])).find("!?") == []


LATIN_VARIANTS = {
    "Hatsune Miku": ["Hatsune Miku", "HATSUNE MIKU", "hatsune-miku", "ＨＡＴＳＵＮＥ　ＭＩＫＵ", "Hatsune,  Miku"],
    "初音ミク": ["初音ミク", "初音みく", "初音・ミク", "初音ﾐｸ", "初音 ミク"],
    "ガクポ": ["ガクポ", "がくぽ", "ｶﾞｸﾎﾟ", "カ\u3099クホ\u309a"],
}
FILLER = st.text(alphabet=st.sampled_from(list("ab xyz,.!・。描いて😀ＡＺｶﾞ\u3000")), max_size=12)


@given(
    st.sampled_from(sorted(LATIN_VARIANTS)).flatmap(lambda name: st.sampled_from(LATIN_VARIANTS[name])),
    FILLER,
    FILLER,
)
def test_a_name_between_any_text_maps_back_to_exactly_what_was_written(variant: str, before: str, after: str) -> None:
    prompt = f"{before} {variant} {after}"
    detections = INDEX.find(prompt)
    for d in detections:
        assert prompt[d.start : d.end] == d.text
        assert normalize(d.text) == normalize(d.matched_alias)
    start = len(before) + 1
    assert any(d.start == start and d.end == start + len(variant) for d in detections), detections
