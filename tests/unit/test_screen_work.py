"""The work one screen may cost is bounded, whatever the prompt: counted in operations (what
``charter.screen.ScreenWork`` counts, and characters a real analyser is given), never in time.
Each prompt is one an adversary could send at the maximum length; each bound holds at 1,000 and
at 8,000 characters alike, so the work does not grow with the number of candidates. Wall-clock
figures for the same prompts are the benchmark's (``bench/bench_screening.py``)."""

# ruff: noqa: RUF001  (look-alike characters are the point)

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

import pytest
from charter.names import is_ignorable, normalize
from charter.screen import (
    ANALYSER_BUDGET,
    MAX_OCCURRENCES,
    ScreenCharacter,
    ScreenIndex,
    ScreenName,
    ScreenWork,
    WordSegmenter,
)

from . import screening_catalogue as catalogue

MAX_PROMPT = 8000


class CountingSegmenter:
    """The real analysers, counting the characters and calls given to them."""

    def __init__(self) -> None:
        self.inner = WordSegmenter()
        self.characters = 0
        self.calls = 0

    def words(self, text: str, *, japanese: bool) -> list[tuple[int, int, bool]]:
        self.characters += len(text)
        self.calls += 1
        return self.inner.words(text, japanese=japanese)

    def learn(self, names: Iterable[str]) -> None:
        self.inner.learn(names)


def screened(prompt: str) -> tuple[ScreenWork, CountingSegmenter, list[tuple[str, bool]]]:
    """Screen ``prompt`` with the catalogue and a counting analyser: the work, the analyser's
    counts and the (character, ambiguous) pairs detected."""
    segmenter = CountingSegmenter()
    index = ScreenIndex.build([catalogue.character(row) for row in catalogue.rows()], segmenter=segmenter)
    work = ScreenWork()
    found = index.find(prompt, work=work)
    for d in found:
        assert prompt[d.start : d.end] == d.text
    return work, segmenter, sorted({(d.character_id, d.ambiguous) for d in found})


def repeated(unit: str, length: int) -> str:
    return (unit * (length // len(unit) + 1))[:length]


# Ordinary words that hold short names (マリオネット, ミクロ, ぞろぞろ...) and names followed by
# particles: every candidate needs the analyser.
JAPANESE_CANDIDATES = "マリオネットとミクロの話、エルサレムでぞろぞろ降るかもしれない。初音ミクが歌う。"
CHINESE_CANDIDATES = "孙悟空和皮卡丘的朋友在北京吃饭，"


@pytest.mark.parametrize("unit", [JAPANESE_CANDIDATES, CHINESE_CANDIDATES])
def test_the_analysers_see_at_most_the_budget_and_past_it_candidates_count(unit: str) -> None:
    for length in (1000, MAX_PROMPT):
        work, segmenter, _ = screened(repeated(unit, length))
        assert segmenter.characters == work.analysed <= ANALYSER_BUDGET
        assert segmenter.calls == work.analyser_calls
    # Past the budget, a candidate the analyser would have rejected counts (fail closed): more
    # detections for a flood of candidates, never fewer.
    work, _, detected = screened(repeated(JAPANESE_CANDIDATES, MAX_PROMPT))
    assert work.unanalysed > 0
    assert ("chr_mario", False) in detected


def test_a_window_analysed_once_answers_every_candidate_it_covers() -> None:
    prompt = "マリオネットとミクロの話"  # two candidates in one short run: one call
    work, segmenter, detected = screened(prompt)
    assert (work.analyser_calls, segmenter.characters) == (1, len(prompt))
    assert detected == []
    long_run = repeated("マリオネットとミクロの話", 600)  # one long run: windows, not one per candidate
    work, segmenter, _ = screened(long_run)
    assert work.analyser_calls <= 10
    assert segmenter.characters <= 2 * len(long_run)


def test_a_short_name_ending_a_full_name_already_found_needs_no_analyser() -> None:
    # カマカ after ・ meets katakana, which only the analyser could call a boundary; but it lies
    # inside ホシノ・カマカ, found first (same end, longer), so it is dropped without asking.
    segmenter = CountingSegmenter()
    names = (ScreenName("Kamaka Hoshino"), ScreenName("ホシノ・カマカ"), ScreenName("カマカ"))
    index = ScreenIndex.build([ScreenCharacter("chr_kamaka", names)], segmenter=segmenter)
    prompt = "A poster; ホシノ・カマカさん waves."
    work = ScreenWork()
    found = index.find(prompt, work=work)
    assert [(d.matched_alias, d.text) for d in found] == [("ホシノ・カマカ", "ホシノ・カマカ")]
    assert (work.analyser_calls, segmenter.calls) == (0, 0)
    # Alone next to katakana, the short name still asks the analyser.
    work = ScreenWork()
    index.find("ホシノ・カマカさんとテンカマカ", work=work)
    assert work.analyser_calls == 1


REPEATED_NAMES = {
    "a name": "Hatsune Miku ",
    "a name with an invisible character": "Hatsune\u200bMiku ",
    "look-alike names": "Нatsune Мiku ",
    "hashtags": "#HatsuneMikuHatsuneMiku ",
    "camel case": "HatsuneMikuPikachu",
    "names with particles": "初音ミクが歌う",
    "katakana names in hiragana": "マリオのピカチュウが",
    "Korean names": "피카츄가 ",
    "plurals": "Pikachus ",
}


@pytest.mark.parametrize("label", sorted(REPEATED_NAMES))
def test_a_name_repeated_is_checked_and_reported_a_bounded_number_of_times(label: str) -> None:
    unit = REPEATED_NAMES[label]
    short, _, detected_short = screened(repeated(unit, 1000))
    long, _, detected_long = screened(repeated(unit, MAX_PROMPT))
    assert detected_long == detected_short != []
    groups = len(detected_long)
    assert long.reported <= MAX_OCCURRENCES * groups
    # Past the cap, hits naming only characters reported in full are skipped before any check:
    # the checks do not grow with the prompt.
    assert long.checked == short.checked
    assert long.hits > 5 * short.checked


def test_look_alike_names_repeated_are_checked_a_bounded_number_of_times_in_the_second_pass() -> None:
    work, _, detected = screened(repeated("Нatsune Мiku ", MAX_PROMPT))
    assert ("chr_miku", False) in detected
    assert work.checked < 100 < work.hits


def test_the_cap_keeps_every_character_and_ambiguity_a_prompt_names() -> None:
    """The cap is per character and ambiguity: an unambiguous name after many ambiguous ones of
    the same character is still reported (a decision depends on it)."""
    index = ScreenIndex.build(
        [ScreenCharacter("chr_miku", (ScreenName("Hatsune Miku"), ScreenName("Miku", ambiguous=True)))]
    )
    prompt = "Miku " * 500 + "Hatsune Miku"
    found = index.find(prompt)
    assert {(d.character_id, d.ambiguous) for d in found} == {("chr_miku", True), ("chr_miku", False)}
    assert sum(d.ambiguous for d in found) == MAX_OCCURRENCES
    assert [d.text for d in found if not d.ambiguous] == ["Hatsune Miku"]


def test_many_different_names_are_each_reported() -> None:
    """The cap never drops a character: a prompt naming every character of the catalogue once
    reports each of them."""
    rows = catalogue.rows()
    prompt = " and ".join(str(row["canonical"]) for row in rows)
    found = catalogue.index().find(prompt)
    assert {d.character_id for d in found} >= {str(row["id"]) for row in rows if not row.get("canonical_ambiguous")}


EVERY_SCRIPT = "".join(chr(c) for c in range(0x20, 0x30000, 37) if chr(c).isprintable())
FOLDED_IN_C = {
    "expansions": "ßﬁ㍿⑴ ",
    "Latin marks": "e\u0301",
    "lone marks": "\u0301",
    "invisible characters": "\u200b",
    "invisible characters in names": "Hatsune\u200bMiku ",
    "right-to-left overrides": "\u202eukim enustah ",
    "expansions with Latin marks": "ß\u0301ﬁ\u0308 ",
}


@pytest.mark.parametrize("label", sorted(FOLDED_IN_C))
def test_the_normalisation_folds_these_whole_in_c(label: str) -> None:
    """Folds longer than one character, Latin marks and invisible characters cost no Python
    work per character or cluster, however many."""
    work, _, _ = screened(repeated(FOLDED_IN_C[label], MAX_PROMPT))
    assert work.slow_clusters <= 1  # at most one: a text that starts with marks


@pytest.mark.parametrize("unit", ["ｶﾞﾊﾟ", "ﾊﾞｯﾄﾏﾝ ", "カ\u3099ハ\u309a", "初音ﾐｸﾞ"])
def test_kana_with_the_voicing_marks_they_compose_with_are_folded_in_c(unit: str) -> None:
    """A kana and a voicing mark that NFKC composes into one character (half-width ``ｶﾞ``,
    decomposed ``か\u3099``) are folded in C, however many: no cluster folded one by one."""
    for length in (300, MAX_PROMPT):
        work, _, _ = screened(repeated(unit, length))
        assert work.slow_clusters == 0


def test_only_clusters_with_marks_of_other_kinds_are_folded_one_by_one() -> None:
    """Voicing marks that compose with nothing and marks after other scripts are folded cluster
    by cluster: never more than one per such mark, and nothing else (every script at once holds
    a few hundred)."""
    voiced = repeated("ｱﾞﾜﾟ", MAX_PROMPT)  # no character is ア or ワ with these marks
    work, _, _ = screened(voiced)
    assert work.slow_clusters == voiced.count("ﾞ") + voiced.count("ﾟ")
    every = (EVERY_SCRIPT * 2)[:MAX_PROMPT]
    work, _, _ = screened(every)
    clustered = sum(1 for ch in every if unicodedata.combining(ch) or is_ignorable(ch) or len(normalize(ch)) > 1)
    assert 0 < work.slow_clusters <= 2 * clustered < len(every) // 20  # both passes (it has look-alikes)
