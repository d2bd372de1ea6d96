"""The realistic catalogue of the screening tests, corpus and benchmark: about forty well-known
characters with their real names in Japanese, English, Chinese and Korean
(``tests/data/screening/catalogue.json``), a few keyword sets, and the readings the server
derives from names in kanji and hanzi when they are registered."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from charter.names import normalize
from charter.screen import KeywordSet, ScreenCharacter, ScreenIndex, ScreenName
from charter_server.services.readings import readings

DATA = Path(__file__).resolve().parent.parent / "data" / "screening"

KEYWORD_SETS = {
    "chr_mario": (
        KeywordSet(
            "plumber game", (("videogame", "video game", "ビデオゲーム", "电子游戏"), ("plumber", "配管工", "水管工"))
        ),
    ),
    "chr_miku": (
        KeywordSet(
            "vocaloid twin tails",
            (("twin tails", "twintails", "ツインテール", "双马尾"), ("vocaloid", "ボーカロイド", "ボカロ")),
        ),
    ),
    "chr_pikachu": (
        KeywordSet("electric mouse", (("yellow", "黄色い", "黄色"), ("electric mouse", "電気ネズミ", "电老鼠"))),
    ),
}


def rows() -> list[dict[str, object]]:
    """The catalogue as stored: id, canonical name, aliases as [value, language, ambiguous?]."""
    loaded: list[dict[str, object]] = json.loads((DATA / "catalogue.json").read_text(encoding="utf-8"))
    return loaded


def character(row: dict[str, object], *, derive: bool = True) -> ScreenCharacter:
    """A catalogue row as the screen sees it, with derived readings (as the server stores them)."""
    canonical = str(row["canonical"])
    names = [ScreenName(canonical, bool(row.get("canonical_ambiguous", False)))]
    keys = {normalize(canonical)}
    aliases = [(str(a[0]), str(a[1]), bool(a[2]) if len(a) > 2 else False) for a in row["aliases"]]  # type: ignore[attr-defined]
    for value, _, ambiguous in aliases:
        names.append(ScreenName(value, ambiguous))
        keys.add(normalize(value))
    if derive:
        for value, language in [(canonical, ""), *((v, lang) for v, lang, _ in aliases)]:
            for reading, _ in readings(value, language):
                if normalize(reading) not in keys:
                    keys.add(normalize(reading))
                    names.append(ScreenName(reading, reading=True))
    return ScreenCharacter(str(row["id"]), tuple(names), KEYWORD_SETS.get(str(row["id"]), ()))


@lru_cache(maxsize=1)
def index() -> ScreenIndex:
    """The index of the whole catalogue."""
    return ScreenIndex.build([character(row) for row in rows()])
