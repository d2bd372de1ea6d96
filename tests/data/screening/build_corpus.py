"""Builds ``corpus.jsonl``, the labelled prompts of the screening evaluation, from ``catalogue.json``.

    .venv/bin/python tests/data/screening/build_corpus.py

Deterministic (no randomness): the same catalogue always gives the same corpus, and
``tests/unit/test_screening_corpus.py`` checks that the committed file is what this script
builds. One JSON object per line: ``prompt``, ``category``, ``language`` and ``expected`` (the
ids of the characters the prompt names or describes; empty for an ordinary sentence).

Categories: ``exact`` (names as registered, in Japanese, English, Chinese and Korean sentences,
with particles and honorifics), the evasions ``invisible``, ``skeleton``, ``spaced``,
``hashtag``, ``joined``, ``plural``, ``reversed_order``, ``long_vowel``, the ``reading``
of names in kanji and hanzi, ``description`` (keyword sets), and ``ordinary``: sentences with no
character in them, in the four languages and mixed, including the words that once raised false
alarms (マリオネット, エルサレム, ミクロ, 降るかもしれない, ぞろぞろ, ゆっくりと).
"""

# ruff: noqa: RUF001  (look-alike characters and CJK punctuation are the point)

from __future__ import annotations

import itertools
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
LATIN_LOOK_ALIKES = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "H": "Н", "M": "М", "K": "К",
                     "T": "Т", "B": "В", "P": "Р", "C": "С", "A": "А", "E": "Е", "O": "О", "Z": "Ζ",
                     "N": "Ν", "i": "і", "s": "ѕ", "y": "у", "L": "Ꮮ", "D": "Ꭰ", "S": "Ѕ", "G": "Ԍ",
                     "R": "Ꭱ", "u": "ս", "r": "г", "n": "ո", "k": "κ", "d": "ԁ", "g": "ɡ", "h": "һ",
                     "l": "ӏ", "m": "ṃ", "t": "τ"}  # fmt: skip
# Letters that read as Latin letters without being look-alikes in UTS #39: small capitals (no X),
# regional indicator symbols (🇦 to 🇿).
SMALL_CAPITALS = dict(zip("abcdefghijklmnopqrstuvwyz", "ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘꞯʀꜱᴛᴜᴠᴡʏᴢ", strict=True))
SMALL_KANA = str.maketrans("ャュョッァィゥェォ", "ヤユヨツアイウエオ")
INVISIBLE = ("\u200b", "\u00ad", "\u2060", "\u034f", "\u200d", "\ufeff")
EN = ("A watercolour poster of {n} at dusk.", "{n} walking through a rainy street, cinematic.",
      "Draw {n} on a beach, soft light.", "A photo of {n} eating ramen in Tokyo.")  # fmt: skip
JA = ("{n}が歌うイラスト", "{n}さんが海辺を歩く写真", "夕暮れの街を歩く{n}を描いて", "{n}と猫のポスター")
ZH = ("{n}在跳舞的插画", "画一张{n}在海边的照片", "{n}和猫咪的海报")
KO = ("{n}가 춤추는 그림", "해변을 걷는 {n} 사진", "{n}와 고양이 포스터")
LONG_VOWELS = {
    "chr_gojo": ("Satoru Gojou", "Satoru Gojoo", "Gojou Satoru"),
    "chr_ryuko": ("Ryuuko Matoi", "Matoi Ryuuko"),
}
DESCRIPTIONS = {
    "chr_mario": ("a plumber hero in a retro videogame", "video game poster of a jumping plumber",
                  "配管工が主人公のビデオゲームの絵", "电子游戏里的水管工"),
    "chr_miku": ("a vocaloid singer with long twin tails", "ツインテールのボーカロイドが歌う",
                 "twintails and a vocaloid mic"),
    "chr_pikachu": ("a yellow electric mouse in a forest", "黄色い電気ネズミのぬいぐるみ", "黄色的电老鼠"),
}  # fmt: skip


def _latin(value: str) -> bool:
    return value.isascii() and any(c.isalpha() for c in value)


def _words(value: str) -> list[str]:
    return [w for w in value.replace("-", " ").replace(".", " ").split() if w]


def positives(rows: list[dict]) -> list[dict]:
    """Every category but ordinary."""
    found: list[dict] = []

    def add(prompt: str, category: str, language: str, character: str) -> None:
        found.append({"prompt": prompt, "category": category, "language": language, "expected": [character]})

    for number, row in enumerate(rows):
        cid, canonical = row["id"], row["canonical"]
        aliases = [a for a in row["aliases"] if not (len(a) > 2 and a[2])]
        add(EN[number % len(EN)].format(n=canonical), "exact", "en", cid)
        for value, language, *_ in aliases:
            base = language.split("-")[0]
            templates = {"ja": JA, "zh": ZH, "ko": KO}.get(base)
            if templates:
                add(templates[number % len(templates)].format(n=value), "exact", base, cid)
            template = (templates or EN)[(number + 1) % len(templates or EN)]
            # Other spellings in kana: ー as a wave dash or a hyphen, ウ lengthening as ー, small kana large.
            if base == "ja" and "ー" in value:
                add(template.format(n=value.replace("ー", "〜")), "long_vowel", base, cid)
                add(template.format(n=value.replace("ー", "-")), "long_vowel", base, cid)
            if base == "ja" and ("ュウ" in value or "ョウ" in value):
                add(template.format(n=value.replace("ュウ", "ュー").replace("ョウ", "ョー")), "long_vowel", base, cid)
            if base == "ja" and value.translate(SMALL_KANA) != value:
                add(template.format(n=value.translate(SMALL_KANA)), "skeleton", base, cid)
        if not _latin(canonical) or len(canonical) < 5:
            continue
        # Evasions of the canonical name in Latin script.
        middle = len(canonical) // 2 if canonical[len(canonical) // 2] != " " else len(canonical) // 2 + 1
        for mark in INVISIBLE[: 4 if number % 2 else 6]:
            add(
                EN[(number + 1) % len(EN)].format(n=canonical[:middle] + mark + canonical[middle:]),
                "invisible",
                "en",
                cid,
            )
        swaps = [i for i, c in enumerate(canonical) if c in LATIN_LOOK_ALIKES]
        for i in swaps[:2]:
            swapped = canonical[:i] + LATIN_LOOK_ALIKES[canonical[i]] + canonical[i + 1 :]
            add(EN[(number + 2) % len(EN)].format(n=swapped), "skeleton", "en", cid)
        letters = [c for c in canonical if c.isalnum()]
        words = _words(canonical)
        spaced = (" ".join(letters), ".".join(letters), "-".join(letters), " ".join(" ".join(w) for w in words))
        for text in spaced:
            add(EN[(number + 3) % len(EN)].format(n=text), "spaced", "en", cid)
        # Letters grouped otherwise than in the name: in threes with hyphens, in twos with spaces.
        compact = "".join(letters)
        for size, mark in ((3, "-"), (2, " ")):
            groups = mark.join(compact[i : i + size] for i in range(0, len(compact), size))
            add(EN[(number + 1) % len(EN)].format(n=groups), "spaced", "en", cid)
        if all(c.lower() in SMALL_CAPITALS or not c.isalpha() for c in canonical):
            small = "".join(SMALL_CAPITALS.get(c.lower(), c) for c in canonical)
            add(EN[(number + 2) % len(EN)].format(n=small), "skeleton", "en", cid)
        regional = " ".join("".join(chr(0x1F1E6 + ord(c.lower()) - 97) for c in w if c.isalpha()) for w in words)
        add(EN[number % len(EN)].format(n=regional), "skeleton", "en", cid)
        if len(words) > 1:
            camel = "".join(w[:1].upper() + w[1:] for w in words)
            add(f"#{camel} fan art, {EN[number % len(EN)].format(n='a girl').lower()}", "hashtag", "en", cid)
            add(f"best cosplay #{camel.lower()} #cosplay", "hashtag", "en", cid)
            add(f"a poster of {camel} in the rain", "joined", "en", cid)
            add(f"ILove{camel} sticker on a laptop", "joined", "en", cid)
        else:
            add(f"three {canonical}s on a shelf", "plural", "en", cid)
            add(f"the {canonical}s' adventure, watercolour", "plural", "en", cid)
        if len(words) == 2 and any(not _latin(a[0]) for a in row["aliases"]) and "-" not in canonical:
            add(EN[number % len(EN)].format(n=f"{words[1]} {words[0]}"), "reversed_order", "en", cid)
    for cid, spellings in LONG_VOWELS.items():
        for text in spellings:
            add(EN[len(text) % len(EN)].format(n=text), "long_vowel", "en", cid)
    for cid, prompts in DESCRIPTIONS.items():
        for text in prompts:
            add(text, "description", "mixed", cid)
    return found


def readings(rows: list[dict]) -> list[dict]:
    """Prompts that name a character only by a reading of its name in kanji or hanzi."""
    from charter.names import normalize
    from charter_server.services.readings import readings as derive

    found = []
    for number, row in enumerate(rows):
        registered = {normalize(row["canonical"]), *(normalize(a[0]) for a in row["aliases"])}
        for value, language, *_ in row["aliases"]:
            for reading, tag in derive(value, language):
                if normalize(reading) in registered:
                    continue
                template = EN[number % len(EN)] if tag.endswith("Latn") else JA[number % len(JA)]
                found.append({"prompt": template.format(n=reading), "category": "reading",
                              "language": tag.split("-")[0], "expected": [row["id"]]})  # fmt: skip
    return found


ORDINARY_EN = (
    ("A lighthouse", "An old fisherman", "A red bicycle", "Two children", "A quiet library", "A sleepy cat",
     "A mountain village", "A street musician", "A paper lantern", "An astronaut", "A bakery window",
     "A flock of geese", "A tram", "A chess player", "A violinist", "A wooden boat", "A sunflower field",
     "A night market", "A robot vacuum", "A plumber fixing a sink", "A marionette show", "A link in a chain",
     "A sonic boom over the desert", "A superhero movie poster", "Peach trees"),
    ("at dawn", "in the snow", "under neon lights", "after the rain", "on a windy hill", "in a busy station",
     "by the sea", "in autumn", "at midnight", "in soft morning haze", "during a festival", "in the desert"),
    ("watercolour", "oil painting", "35mm photo", "pencil sketch"),
)  # fmt: skip
ORDINARY_JA = (
    ("マリオネットの人形劇", "エルサレムの旧市街", "ミクロの世界", "雨が降るかもしれない夕方",
     "人がぞろぞろ歩く商店街", "ゆっくりと流れる川", "古い灯台", "静かな図書館", "赤い自転車",
     "山あいの村", "夜市の屋台", "紙の提灯", "桜並木", "雪の駅", "猫の昼寝", "海辺の喫茶店",
     "リンクを貼ったブログ", "ゾロ目のサイコロ", "ソニックブームの実験"),
    ("を描いて", "の写真", "の水彩画", "のイラスト、やわらかい光", "を映画のように"),
)  # fmt: skip
ORDINARY_ZH = (
    ("雨后的老街", "安静的图书馆", "红色的自行车", "海边的灯塔", "夜市的小吃摊", "山里的村庄", "秋天的公园",
     "下雪的车站", "午睡的猫", "纸灯笼", "李白菜汤", "超人气的咖啡店", "小孩子在放风筝", "渔夫和小船"),
    ("的插画", "的照片", "的水彩画", "，电影感"),
)  # fmt: skip
ORDINARY_KO = (
    ("비 온 뒤의 골목", "조용한 도서관", "빨간 자전거", "바닷가 등대", "야시장 포장마차", "산골 마을", "가을 공원",
     "눈 내리는 역", "낮잠 자는 고양이", "종이 등불", "링크가 걸린 블로그"),
    (" 그림", " 사진", " 수채화", ", 영화 같은 장면"),
)  # fmt: skip


# Ordinary text next to each trick: flags, small capitals, Hangul jamo, Greek capitals, short
# words in a row, katakana words with long vowels and small kana.
ORDINARY_TRICKY = (
    ("en", "Flags of Japan 🇯🇵 and Peru 🇵🇪 at a parade, 35mm photo."),
    ("en", "A sign reading ᴛʜᴇ ǫᴜɪᴇᴛ ʟɪʙʀᴀʀʏ above a door."),
    ("en", "ΑΘΗΝΑ ΚΑΙ ΠΕΙΡΑΙΑΣ written on an old map."),
    ("en", "A bat, a ball and a glove on the grass."),
    ("en", "The man in a hat, so quiet, by the sea."),
    ("en", "Go to the park at ten, pa and ma said."),
    ("en", "A pi chart and a cup of tea at dawn."),
    ("en", "An epic ode to a red kite, pencil sketch."),
    ("en", "A sonnet on a windy hill, oil painting."),
    ("ja", "コーヒーを飲む人の写真"),
    ("ja", "スーパーで買い物をする家族"),
    ("ja", "ルーレットの盤と赤いチップ"),
    ("ja", "クッキーの箱とミルク"),
    ("ja", "キヤノンのカメラで撮った夜景"),
    ("ja", "ちゅうちょする猫のイラスト"),
    ("ja", "ぴちぴちの魚が跳ねる"),
    ("ja", "類似した形の雲"),
    ("ja", "ルイ・ヴィトンの鞄"),
    ("ja", "チューリップ畑の水彩画"),
    ("ko", "\u1100\u1161\u1102\u1161\u1103\u1161 순서의 그림"),
)


def ordinary() -> list[dict]:
    """Sentences with no character in them (at least 1,000)."""
    found = []
    for subject, setting, medium in itertools.product(*ORDINARY_EN):
        found.append(
            {"prompt": f"{subject} {setting}, {medium}.", "category": "ordinary", "language": "en", "expected": []}
        )
    for subject, tail in itertools.product(*ORDINARY_JA):
        found.append({"prompt": f"{subject}{tail}", "category": "ordinary", "language": "ja", "expected": []})
    for subject, tail in itertools.product(*ORDINARY_ZH):
        found.append({"prompt": f"{subject}{tail}", "category": "ordinary", "language": "zh", "expected": []})
    for subject, tail in itertools.product(*ORDINARY_KO):
        found.append({"prompt": f"{subject}{tail}", "category": "ordinary", "language": "ko", "expected": []})
    for ja, en in zip(ORDINARY_JA[0], ORDINARY_EN[0], strict=False):
        found.append(
            {"prompt": f"{en} and {ja}, mixed media", "category": "ordinary", "language": "mixed", "expected": []}
        )
    for language, prompt in ORDINARY_TRICKY:
        found.append({"prompt": prompt, "category": "ordinary", "language": language, "expected": []})
    return found


def build() -> list[dict]:
    """The whole corpus, in a fixed order, each prompt once (its first label)."""
    rows = json.loads((HERE / "catalogue.json").read_text(encoding="utf-8"))
    seen: set[str] = set()
    corpus = []
    for entry in positives(rows) + readings(rows) + ordinary():
        if entry["prompt"] not in seen:
            seen.add(entry["prompt"])
            corpus.append(entry)
    return corpus


def render(corpus: list[dict]) -> str:
    """The JSON Lines text of the corpus."""
    return "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in corpus)


if __name__ == "__main__":
    (HERE / "corpus.jsonl").write_text(render(build()), encoding="utf-8")
