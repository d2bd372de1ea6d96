"""Evasions found by trying to hide a name from the shared matcher (``charter.screen``) with a
realistic catalogue: each case is a prompt a model would still read as the name, with the rule
that must catch it; and the ordinary text next to each trick that must stay quiet."""

# ruff: noqa: RUF001  (look-alike characters are the point)

from __future__ import annotations

import pytest
from charter.screen import Rule

from .test_screen_rules import named


def _letters(text: str, upper: int, lower: int) -> str:
    """``text`` with its ASCII letters replaced by the letters of a block (A and a at those code points)."""
    return "".join(
        chr(upper + ord(c) - 65) if c.isupper() else chr(lower + ord(c) - 97) if c.islower() else c for c in text
    )


@pytest.mark.parametrize(
    ("prompt", "character", "text"),
    [
        ("a poster of ᴘɪᴋᴀᴄʜᴜ at dusk", "chr_pikachu", "ᴘɪᴋᴀᴄʜᴜ"),  # small capitals
        ("ʜᴀᴛꜱᴜɴᴇ ᴍɪᴋᴜ on stage", "chr_miku", "ʜᴀᴛꜱᴜɴᴇ ᴍɪᴋᴜ"),
        (f"a {_letters('PIKACHU', 0x1F170, 0)} sticker", "chr_pikachu", _letters("PIKACHU", 0x1F170, 0)),  # 🅿
        (f"a {_letters('MARIO', 0x1F150, 0)} sticker", "chr_mario", _letters("MARIO", 0x1F150, 0)),  # 🅜
        ("flags: 🇵🇮🇰🇦🇨🇭🇺!", "chr_pikachu", "🇵🇮🇰🇦🇨🇭🇺"),  # regional indicator symbols
        ("🇱 🇺 🇮 🇬 🇮 jumps", "chr_luigi", "🇱 🇺 🇮 🇬 🇮"),
        ("a ΡΙΚΑCΗU poster", "chr_pikachu", "ΡΙΚΑCΗU"),  # Greek capitals, IOTA for I
        ("ΗΑΤSUΝΕ ΜΙΚU live", "chr_miku", "ΗΑΤSUΝΕ ΜΙΚU"),
        ("a ZELDA poster, LΙNK with a sword", "chr_link", "LΙNK"),
    ],
)
def test_letters_that_read_as_latin_letters_are_caught_by_the_skeleton(prompt: str, character: str, text: str) -> None:
    assert (character, Rule.SKELETON, text) in [(c, r, t) for c, r, t, _ in named(prompt)]


@pytest.mark.parametrize(
    ("prompt", "character", "text"),
    [
        ("a poster of Pi ka chu at dusk", "chr_pikachu", "Pi ka chu"),
        ("Pi-ka-chu!", "chr_pikachu", "Pi-ka-chu"),
        ("a Pika'chu plush", "chr_pikachu", "Pika'chu"),
        ("draw Pika chu, watercolour", "chr_pikachu", "Pika chu"),
        ("Hat-su-ne Mi-ku sings", "chr_miku", "Hat-su-ne Mi-ku"),
        ("Hatsu ne Miku sings", "chr_miku", "Hatsu ne Miku"),
        ("Zel.da in a field", "chr_zelda", "Zel.da"),
        ("Bat-man on a roof", "chr_batman", "Bat-man"),
    ],
)
def test_a_name_split_into_other_groups_of_letters_is_spaced(prompt: str, character: str, text: str) -> None:
    assert named(prompt) == [(character, Rule.SPACED, text, False)]


def test_a_split_name_with_look_alike_letters_is_caught_too() -> None:
    assert named("a Pіka-chu plush") == [("chr_pikachu", Rule.SKELETON, "Pіka-chu", False)]


@pytest.mark.parametrize(
    "prompt",
    [
        "a pi chart and a cup of chu",  # words of the name apart, or in another order
        "chu ka pi",
        "epi ka chum",  # ... or starting or ending inside other words
        "Mari olive oil",
        "the cat sat on a mat",
        "flags of Japan 🇯🇵 and Peru 🇵🇪 at a parade",
        "ᴛʜᴇ ǫᴜɪᴇᴛ ʟɪʙʀᴀʀʏ",  # small capitals that name nobody
        "ΑΘΗΝΑ ΚΑΙ ΠΕΙΡΑΙΑΣ",  # Greek capitals
    ],
)
def test_the_new_rules_stay_quiet_on_ordinary_text(prompt: str) -> None:
    assert [d for d in named(prompt) if not d[3]] == []


def test_a_name_split_a_thousand_times_is_reported_eight_times() -> None:
    from charter.screen import MAX_OCCURRENCES

    found = named("Pi ka chu and " * 1000)
    assert len(found) == MAX_OCCURRENCES
    assert {(c, r) for c, r, _, _ in found} == {("chr_pikachu", Rule.SPACED)}


@pytest.mark.parametrize(
    ("prompt", "character", "rule", "text"),
    [
        ("ピカチューのぬいぐるみ", "chr_pikachu", Rule.LONG_VOWEL, "ピカチュー"),  # ー for ウ
        ("ピカチュが走る", "chr_pikachu", Rule.LONG_VOWEL, "ピカチュ"),  # the long vowel left out
        ("ルイ〜ジが走る", "chr_luigi", Rule.LONG_VOWEL, "ルイ〜ジ"),  # a wave dash for ー
        ("ルイ~ジが走る", "chr_luigi", Rule.LONG_VOWEL, "ルイ~ジ"),
        ("ルイ‐ジが走る", "chr_luigi", Rule.LONG_VOWEL, "ルイ‐ジ"),  # a hyphen for ー
        ("ルイイジの絵", "chr_luigi", Rule.LONG_VOWEL, "ルイイジ"),  # イ for ー
        ("ピカチユウのぬいぐるみ", "chr_pikachu", Rule.SKELETON, "ピカチユウ"),  # ユ for ュ
        ("ヨツシーと遊ぶ", "chr_yoshi", Rule.SKELETON, "ヨツシー"),  # ツ for ッ
        ("ぴかちゅーって", "chr_pikachu", Rule.LONG_VOWEL, "ぴかちゅー"),  # in hiragana
    ],
)
def test_other_spellings_of_a_name_in_kana_are_caught(prompt: str, character: str, rule: Rule, text: str) -> None:
    assert (character, rule, text, False) in named(prompt)


@pytest.mark.parametrize(
    "prompt",
    [
        "類似した形",
        "るいじする",
        "ぴちぴちの魚",
        "キヤノンのカメラ",
        "ちゅうちょする",
        "ゆっくりと歩く",
        "ルイ・ヴィトンの鞄",
    ],
)
def test_kana_spellings_stay_quiet_on_ordinary_japanese(prompt: str) -> None:
    assert [d for d in named(prompt) if not d[3]] == []


@pytest.mark.parametrize(
    ("written", "character"),
    [
        ("Pi-ka-chu", "chr_pikachu"),
        ("Pі-ka-chu", "chr_pikachu"),  # regrouped, with a Cyrillic i (U+0456)
        ("ᴘɪᴋᴀᴄʜᴜ", "chr_pikachu"),
        ("🇵🇮🇰🇦🇨🇭🇺", "chr_pikachu"),
        ("ピカチユウ", "chr_pikachu"),
        ("ルイ〜ジ", "chr_luigi"),
    ],
)
def test_an_evasion_is_caught_anywhere_in_the_longest_prompt(written: str, character: str) -> None:
    """Prompts of 1,024 characters and more are folded whole (another path of charter.names)."""
    filler = "a quiet library at dawn, watercolour. " * 220
    for prompt in (filler[: 7990 - len(written)] + " " + written, (written + " " + filler)[:8000]):
        assert len(prompt) <= 8000
        assert character in [c for c, _, _, _ in named(prompt)]
