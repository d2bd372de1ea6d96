"""The labelled screening corpus: built as its script says, large and varied enough, and screened
with recall and precision no lower than the README states (per category)."""

# ruff: noqa: RUF001  (the README writes "no figure" as an en dash)

from __future__ import annotations

import re
import runpy
from collections import Counter
from pathlib import Path

from . import screening_catalogue, screening_corpus

ROOT = Path(__file__).resolve().parent.parent.parent
_ROW = re.compile(r"^\| `(\w+)` \| (\d+) \| ([\d.]+|–) \| ([\d.]+|(\d+) false positives) \|$")


def stated() -> dict[str, tuple[int, float | None, float | None, int | None]]:
    """The README's corpus table: category → (prompts, recall, precision, false positives)."""
    rows = {}
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        if match := _ROW.match(line):
            category, prompts, recall, precision, false_positives = match.groups()
            rows[category] = (
                int(prompts),
                None if recall == "–" else float(recall),
                None if false_positives is not None else float(precision),
                None if false_positives is None else int(false_positives),
            )
    return rows


def test_the_committed_corpus_is_what_its_script_builds() -> None:
    script = runpy.run_path(str(screening_corpus.CORPUS.parent / "build_corpus.py"))
    assert screening_corpus.CORPUS.read_text(encoding="utf-8") == script["render"](script["build"]())


def test_the_corpus_is_large_and_covers_every_category_and_language() -> None:
    corpus = screening_corpus.load()
    categories = Counter(str(e["category"]) for e in corpus)
    languages = Counter(str(e["language"]) for e in corpus)
    assert len(corpus) >= 1500
    assert categories["ordinary"] >= 1000
    assert set(categories) == set(stated())
    assert {"ja", "en", "zh", "ko", "mixed"} <= set(languages)
    assert len({str(e["prompt"]) for e in corpus}) == len(corpus)  # no prompt twice
    assert all(e["expected"] for e in corpus if e["category"] != "ordinary")


def test_recall_and_precision_are_at_least_what_the_readme_states() -> None:
    scores = screening_corpus.evaluate(screening_catalogue.index(), screening_corpus.load())
    table = stated()
    for category, (prompts, recall, precision, false_positives) in table.items():
        score = scores[category]
        assert score.prompts == prompts, category
        if recall is not None:
            assert score.recall is not None and score.recall >= recall, (category, score.missed)
        if precision is not None:
            assert score.precision is not None and score.precision >= precision, (category, score.false_positives)
        if false_positives is not None:
            assert len(score.false_positives) <= false_positives, (category, score.false_positives)
