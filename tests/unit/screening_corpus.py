"""The labelled screening corpus (``tests/data/screening/corpus.jsonl``) and its evaluation: recall
and precision per category, as ``bench/bench_screening.py`` prints them and the README states."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from charter.screen import ScreenIndex

CORPUS = Path(__file__).resolve().parent.parent / "data" / "screening" / "corpus.jsonl"


def load() -> list[dict[str, object]]:
    """Every labelled prompt: prompt, category, language, expected (character ids)."""
    with CORPUS.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


@dataclass
class Score:
    """The figures of one category.

    A prompt is recalled when every character it names or describes is detected (ambiguous
    detections count: they are reported). Precision counts the characters detected without
    ambiguity, since only those are decided without being declared; a false positive is an
    ordinary sentence with such a detection.
    """

    prompts: int = 0
    recalled: int = 0
    expected: int = 0
    detected: int = 0
    correct: int = 0
    false_positives: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float | None:
        return self.recalled / self.expected if self.expected else None

    @property
    def precision(self) -> float | None:
        return self.correct / self.detected if self.detected else None


def evaluate(index: ScreenIndex, corpus: Iterable[dict[str, object]]) -> dict[str, Score]:
    """The score of each category of ``corpus`` (in the order categories first appear)."""
    scores: dict[str, Score] = {}
    for entry in corpus:
        prompt, expected = str(entry["prompt"]), set(entry["expected"])  # type: ignore[call-overload]
        score = scores.setdefault(str(entry["category"]), Score())
        found = index.find(prompt)
        named = {d.character_id for d in found}
        decided = {d.character_id for d in found if not d.ambiguous}
        score.prompts += 1
        if expected:
            score.expected += 1
            if expected <= named:
                score.recalled += 1
            else:
                score.missed.append(prompt)
        score.detected += len(decided)
        score.correct += len(decided & expected)
        if decided - expected:
            score.false_positives.append(prompt)
    return scores
