"""The morphological analysers of prompt screening (``charter.screen``): word boundaries of
Japanese (fugashi with UniDic-lite) and Chinese (jieba) text, each loaded once per process on
first use and shared. Importing ``charter`` or ``charter.screen`` loads neither; a server loads
both when it starts (`WordSegmenter.warm`), so that no request pays for it."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, Protocol

__all__ = ["Segmenter", "WordSegmenter", "default_segmenter"]


class Segmenter(Protocol):
    """Word boundaries of CJK text, from a morphological analyser."""

    def words(self, text: str, *, japanese: bool) -> list[tuple[int, int, bool]]:
        """The words of ``text`` as ``(start, end, known)``: known is False for a word the
        analyser's dictionary does not have."""
        ...

    def learn(self, names: Iterable[str]) -> None:
        """Add registered names to the analyser's dictionary, where it can take them."""
        ...


class WordSegmenter:
    """fugashi with UniDic-lite for Japanese, jieba for Chinese; each loaded on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tagger: Any = None
        self._jieba: Any = None
        self._learned: set[str] = set()

    def learn(self, names: Iterable[str]) -> None:
        """Add names written in hanzi to jieba's dictionary, so that a registered name is one word
        of the Chinese analyser (jieba takes words at run time; UniDic is compiled)."""
        new = {n for n in names if _HAN_WORD.fullmatch(n)} - self._learned
        with self._lock:
            self._learned |= new
            if self._jieba is not None:
                for name in new:
                    self._jieba.add_word(name)

    def warm(self, *, chinese: bool = True) -> None:
        """Load the analysers now rather than on a request's time: fugashi's tagger (milliseconds)
        and, unless ``chinese`` is False, jieba's dictionary with the names learned so far (0.5 s
        from jieba's cache, 2-4 s on a machine without it, most of it holding the interpreter
        lock). A request that needs an analyser while it loads waits for that load, never starts
        another. The server calls this once, in a thread of its own, when it starts."""
        self.words("初音ミク", japanese=True)
        if chinese:
            self.words("孙悟空", japanese=False)

    def words(self, text: str, *, japanese: bool) -> list[tuple[int, int, bool]]:
        """See `Segmenter.words`."""
        if japanese:
            tagger = self._tagger or self._load_tagger()
            found: list[tuple[int, int, bool]] = []
            position = 0
            for word in tagger(text):
                surface = word.surface
                start = text.find(surface, position) if surface else -1
                if start < 0:
                    continue
                # Whitespace the analyser skipped lies between words.
                found.append((start, start + len(surface), not word.is_unk))
                position = start + len(surface)
            return found
        tokenizer = self._jieba or self._load_jieba()
        return [(start, end, True) for _, start, end in tokenizer.tokenize(text)]

    def _load_tagger(self) -> Any:
        with self._lock:
            if self._tagger is None:
                self._tagger = _fugashi_tagger()
            return self._tagger

    def _load_jieba(self) -> Any:
        with self._lock:
            if self._jieba is None:
                tokenizer = _jieba_tokenizer()
                for name in self._learned:
                    tokenizer.add_word(name)
                self._jieba = tokenizer
            return self._jieba


# The analysers are loaded once per process (jieba's dictionary takes a second or two) and shared.
_ANALYSERS = threading.Lock()


@lru_cache(maxsize=1)
def _fugashi_tagger() -> Any:
    import fugashi

    with _ANALYSERS:
        return fugashi.Tagger()


@lru_cache(maxsize=1)
def _jieba_tokenizer() -> Any:
    import logging

    import jieba

    with _ANALYSERS:
        jieba.setLogLevel(logging.WARNING)
        tokenizer = jieba.Tokenizer()
        tokenizer.initialize()
        return tokenizer


@lru_cache(maxsize=1)
def default_segmenter() -> WordSegmenter:
    """The process's shared `WordSegmenter`."""
    return WordSegmenter()


# A word of two or more Han characters (kanji, hanzi: the script jieba segments), checked in C.
_HAN_WORD = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0010ffff]{2,}")
