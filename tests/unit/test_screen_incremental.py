"""A screen built from a previous generation (`ScreenIndex.build(..., previous=...)`, what a
registry delta does) is the screen a full build of the same characters makes: the same keys with
the same values in the automaton, the same counts, keyword sets and look-alike collisions, and
so the same detections of every prompt.

Registries are drawn from a small pool of names chosen to collide: names shared between
characters (ambiguous for one, not for the other), a Latin name that is another's variant, long
vowels, names ending in ``y``, Cyrillic look-alikes of a Latin name, katakana, kanji, Hangul and
keyword sets sharing their keywords with names. Each change replaces, adds or removes characters.
"""

# ruff: noqa: RUF001  (look-alike letters are the point)

from __future__ import annotations

from typing import Any

from charter.screen import KeywordSet, ScreenCharacter, ScreenIndex, ScreenName
from hypothesis import given, settings
from hypothesis import strategies as st

from .screening_catalogue import character, rows

POOL = (
    "Sara",
    "Сара",  # Cyrillic: its skeleton is Latin "capa"
    "Capa",
    "Kayari Kagami",
    "Kagami Kayari",
    "Kagamikayari",
    "Satō Yūki",
    "Sato Yuki",
    "Lily",
    "Lilies",
    "Miku",
    "Hatsune Miku",
    "初音ミク",
    "ミク",
    "孙悟空",
    "김민지",
    "Nаtsu",  # Cyrillic a
    "Natsu",
    "video game",
    "Plumber",
    "",
    "!!",
)
KEYWORDS = (
    KeywordSet("game", (("video game", "videogame"), ("plumber",))),
    KeywordSet("twins", (("twin tails", "ツインテール"), ("miku",))),
    KeywordSet("lily", (("lily",),)),
)
PROMPTS = (
    "Sara and Сара meet Capa; #KayariKagami and Kagami Kayari, k a y a r i, Satou Yuuki, Yuki Sato",
    "Lilies of Lily, Hatsune Miku as 初音ミク: ミクさん plays a video game as a plumber, twin tails",
    "孙悟空和김민지 meet Nаtsu and Natsu; Kagamikayari's cat; a ツインテール miku in a videogame",
)

names = st.builds(ScreenName, st.sampled_from(POOL), st.booleans(), st.booleans())
sets = st.lists(st.sampled_from(KEYWORDS), max_size=2, unique=True).map(tuple)


def _character(number: int) -> Any:
    return st.builds(
        ScreenCharacter, st.just(f"chr_{number}"), st.lists(names, min_size=1, max_size=4).map(tuple), sets
    )


@st.composite
def registries(draw: st.DrawFn) -> tuple[list[ScreenCharacter], list[list[ScreenCharacter]]]:
    """A registry and the registries after each of a few changes (replaced, added, removed)."""
    count = draw(st.integers(1, 8))
    current = [draw(_character(n)) for n in range(count)]
    steps = []
    for _ in range(draw(st.integers(1, 4))):
        changed = list(current)
        for _ in range(draw(st.integers(1, 3))):
            action = draw(st.sampled_from(("replace", "add", "remove", "same")))
            if action == "replace" and changed:
                at = draw(st.integers(0, len(changed) - 1))
                changed[at] = draw(_character(int(changed[at].id.split("_")[1])))
            elif action == "add":
                count += 1
                changed.append(draw(_character(count)))
            elif action == "remove" and len(changed) > 1:
                changed.pop(draw(st.integers(0, len(changed) - 1)))
            elif action == "same" and changed:  # an equal character, not the same object
                at = draw(st.integers(0, len(changed) - 1))
                old = changed[at]
                changed[at] = ScreenCharacter(old.id, tuple(old.names), tuple(old.keyword_sets))
        steps.append(changed)
        current = changed
    return current, steps


def _contents(index: ScreenIndex) -> dict[str, Any]:
    automaton = {} if index.automaton is None else dict(index.automaton.items())
    return {
        "automaton": automaton,
        "names": index.names,
        "characters": index.characters,
        "keys": index.keys,
        "keyword_sets": index.keyword_sets,
        "collisions": index.skeleton_collisions,
        "suppressed": index._suppressed,
        "longest": index._longest,
    }


def _assert_same(updated: ScreenIndex, full: ScreenIndex) -> None:
    assert _contents(updated) == _contents(full)
    for prompt in PROMPTS:
        assert updated.find(prompt) == full.find(prompt)


@settings(max_examples=150)
@given(registries())
def test_an_index_built_from_the_previous_one_equals_a_full_build(drawn: Any) -> None:
    _, steps = drawn
    first = steps[0]
    index = ScreenIndex.build(first)
    for characters in steps[1:]:
        updated = ScreenIndex.build(characters, previous=index)
        _assert_same(updated, ScreenIndex.build(characters))
        index = updated


def test_a_changed_alias_of_the_catalogue_is_found_and_the_old_one_no_longer() -> None:
    catalogue = [character(row) for row in rows()]
    index = ScreenIndex.build(catalogue)
    at = next(n for n, c in enumerate(catalogue) if c.id == "chr_miku")
    miku = catalogue[at]
    changed = list(catalogue)
    changed[at] = ScreenCharacter(miku.id, (*miku.names[:1], ScreenName("Zorblax Quenn")), miku.keyword_sets)

    updated = ScreenIndex.build(changed, previous=index)

    _assert_same(updated, ScreenIndex.build(changed))
    assert [d.character_id for d in updated.find("a poster of Zorblax Quenn")] == ["chr_miku"]
    assert [d.character_id for d in index.find("a poster of Zorblax Quenn")] == []
    assert {d.character_id for d in index.find("初音ミクの絵")} == {"chr_miku"}
    assert [d.character_id for d in updated.find("初音ミクの絵")] == []  # no longer a name of hers
    assert updated._table is not None and index._table is not None
    # What no change touched is the previous generation's, not made again.
    mario = next(key for key, value in index._table.values.items() if value[5] and value[5][0][0] == "chr_mario")
    assert updated._table.values[mario] is index._table.values[mario]


def test_characters_in_another_order_are_derived_again_and_still_equal() -> None:
    catalogue = [character(row) for row in rows()]
    index = ScreenIndex.build(catalogue)
    reordered = catalogue[1:] + catalogue[:1]

    updated = ScreenIndex.build(reordered, previous=index)

    _assert_same(updated, ScreenIndex.build(reordered))


def test_no_change_gives_the_previous_index() -> None:
    # A registry delta that changed only states or owners (not what the screen sees).
    catalogue = [character(row) for row in rows()]
    index = ScreenIndex.build(catalogue, marker=1)
    equal = [ScreenCharacter(c.id, c.names, c.keyword_sets) for c in catalogue]

    again = ScreenIndex.build(equal, previous=index, marker=1)
    marked = ScreenIndex.build(equal, previous=index, marker=2)

    assert again is index
    assert marked.automaton is index.automaton and marked._table is index._table and marked.marker == 2
    _assert_same(marked, ScreenIndex.build(equal))


def test_a_character_added_after_removals_comes_after_every_kept_one() -> None:
    # Found by hypothesis: two characters of one name, the second added once others were removed,
    # took a place before the first (a count of the places reused a removed one's), so the index
    # listed them in another order than a full build.
    def named(cid: str) -> ScreenCharacter:
        return ScreenCharacter(cid, (ScreenName("Sara", False, False),), ())

    index = ScreenIndex.build([named("chr_1"), named("chr_2")])
    for generation in (["chr_2", "chr_4"], ["chr_4"], ["chr_4", "chr_5"]):
        characters = [named(cid) for cid in generation]
        index = ScreenIndex.build(characters, previous=index)
        _assert_same(index, ScreenIndex.build(characters))
