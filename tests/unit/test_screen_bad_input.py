"""Bad input for the screen: lone combining marks, bidirectional overrides, thousands of invisible
characters, every script at once, the maximum length. Every answer is a correct one (spans inside
the prompt, naming exactly what was written), and a name stays found whatever noise surrounds it
or is dropped inside it. Time bounds are the benchmark's (``bench/bench_screening.py``), not a test's.
"""

# ruff: noqa: RUF001  (look-alike characters are the point)

from __future__ import annotations

from charter.screen import MAX_OCCURRENCES
from hypothesis import given, settings
from hypothesis import strategies as st

from . import screening_catalogue as catalogue

NOISE = (
    "\u0301\u0308\u20e3\u3099"  # combining marks, alone or not
    "\u202e\u202d\u2066\u2069\u200f"  # bidirectional controls
    "\u200b\u200c\u200d\u2060\u00ad\u034f\ufeff\ufe0f"  # invisible characters
    "aZ9 .#-_'éßﬁ"  # Latin, expansions
    "Наоі"  # look-alikes
    "ミクマリオるかぞ初音ﾐｸｰ・。"  # Japanese
    "皮卡丘的"  # Chinese
    "피카츄가 "  # Korean
    "مرحبא😀\U0001d400\U000e0001"  # right-to-left scripts, emoji, a math letter, a tag
)
noise = st.text(alphabet=st.sampled_from(NOISE), max_size=60)
INVISIBLE = st.sampled_from(["\u200b", "\u00ad", "\u2060", "\u034f", "\ufeff", "\u200d"])


@settings(max_examples=300, deadline=None)
@given(noise | st.text(max_size=60))
def test_any_text_gets_a_correct_answer(text: str) -> None:
    for d in catalogue.index().find(text):
        assert 0 <= d.start < d.end <= len(text)
        assert text[d.start : d.end] == d.text


@settings(max_examples=200, deadline=None)
@given(noise, noise, st.lists(INVISIBLE, min_size=1, max_size=40), st.integers(min_value=1, max_value=11))
def test_a_name_is_found_whatever_noise_surrounds_it_or_is_dropped_inside_it(
    before: str, after: str, invisible: list[str], at: int
) -> None:
    name = "Hatsune Miku"
    written = name[:at] + "".join(invisible) + name[at:]
    prompt = f"{before} {written} {after}"
    found = catalogue.index().find(prompt)
    start = len(before) + 1
    assert any(d.character_id == "chr_miku" and d.start <= start and d.end >= start + len(written) for d in found)


def test_the_longest_prompts_of_every_kind_get_answers() -> None:
    every_script = "".join(chr(c) for c in range(0x20, 0x30000, 37) if chr(c).isprintable())
    for prompt in (
        "\u0301" * 8000,
        "\u202e" + "ukim enustah " * 615,
        "\u200b" * 8000,
        (every_script * 2)[:8000],
        ("Нatsune Мiku " * 700)[:8000],
        ("初音ミクが歌う" * 1200)[:8000],
    ):
        for d in catalogue.index().find(prompt):
            assert prompt[d.start : d.end] == d.text
    found = catalogue.index().find(("Нatsune Мiku " * 700)[:8000])
    # Each Hatsune Miku, and each Miku Hatsune between two (reversed order overlaps in part), up
    # to the cap on occurrences of a character; past it, the longer names are skipped unchecked,
    # so an ambiguous Miku inside them may be reported (never fewer detections, at most the cap).
    assert {(d.character_id, d.rule) for d in found} == {("chr_miku", "SKELETON")}
    named = [d for d in found if not d.ambiguous]
    assert [d.text for d in named] == ["Нatsune Мiku", "Мiku Нatsune"] * (MAX_OCCURRENCES // 2)
    assert [d.start for d in named[:3]] == [0, 8, 13]
    assert len(found) - len(named) <= MAX_OCCURRENCES
