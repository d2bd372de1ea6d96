"""Name normalisation shared by the catalogue, alias collision checks and prompt screening.

One key per way of writing a name: ``Hatsune  Miku``, ``hatsune-miku`` and
``ＨＡＴＳＵＮＥ ＭＩＫＵ`` all become ``hatsune miku``; ``ハツネミク`` and ``はつねみく``
both become ``はつねみく``; ``初音・ミク`` and ``初音ミク`` both become ``初音みく``.

The rules, in order, applied per character cluster (a base character with the marks and the
ignorable characters that follow it) so every output character maps back to a span of the input:

0. Default-ignorable and format characters (zero-width space and joiners, soft hyphen, word
   joiner, combining grapheme joiner, variation selectors, bidirectional controls, tags; Unicode's
   ``Default_Ignorable_Code_Point`` and category ``Cf``, from the ``regex`` module's Unicode data)
   are dropped. They are never separators: ``Hat<U+200B>sune`` is ``hatsune``.
1. Unicode NFKC: full-width Latin becomes ASCII, half-width katakana becomes full-width,
   compatibility forms (ligatures, circled letters) become plain letters.
2. Case folding (``str.casefold``), which also folds ``ß`` to ``ss``.
3. Diacritics are removed from Latin letters (``Pokémon`` → ``pokemon``), never from kana,
   where the voicing marks change the sound (``が`` stays ``が``).
4. Katakana folds to hiragana (``ミク`` → ``みく``); the prolonged sound mark ``ー`` stays.
5. Whitespace, punctuation and symbols are separators: a run of them becomes one space
   between two Latin-script (or digit) neighbours and disappears next to CJK text or at
   either end.

Prompt screening normalises every prompt, so the common case is kept fast: when every character
of the text is its own cluster and folds to exactly one character (no combining or voicing
marks, no expansions such as ``ß`` → ``ss``), the text is folded one to one with C-speed string
operations (a byte table for ASCII, a cached per-character table for the rest) and the spaces
are then squeezed out; key positions map back to the text by counting separators. A kana
followed by a voicing mark that NFKC composes with it (half-width ``ｶﾞ``, ``ﾊﾟ``; decomposed
``か`` + U+3099) takes that path too: the pair is first replaced by the composed character and a
zero-width space, which fold and cluster alike. Any other text takes the general,
cluster-by-cluster path. Both give the same result.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping

from charter._fold import (
    _ASCII_FOLD,
    _JOINED,
    _WHOLE_TEXT,
    _collapse,
    _fold_one_to_one,
    _fold_wide,
    _general,
    _join,
    _locate,
    _running_sums,
    _same_lengths,
    _squeeze,
    _squeeze_within,
    is_cjk,
    is_ignorable,
    is_word_char,
)

__all__ = [
    "NormalizedText",
    "is_cjk",
    "is_ignorable",
    "is_word_char",
    "normalize",
    "normalize_text",
    "normalize_with_offsets",
]


class NormalizedText:
    """A text's matching key, and the way back from positions in the key to the text.

    Made by ``normalize_text``; ``span`` maps a range of the key to the range of the text it
    came from. On the fast path no per-character table is built: positions are found by
    counting separators, only for the ranges asked for.
    """

    __slots__ = (
        "_cursor",
        "_ends",
        "_folded",
        "_joined",
        "_last",
        "_lengths",
        "_raw",
        "_spans",
        "key",
        "non_ascii",
        "slow_clusters",
    )

    def __init__(
        self,
        key: str,
        folded: str | None,
        spans: list[tuple[int, int]] | None = None,
        joined: str | None = None,
        lengths: str | None = None,
    ) -> None:
        self.key = key
        """The matching key (what ``normalize`` returns)."""
        # Fast path: the one-to-one fold, separators as " " (and marks joined to the character
        # before them too, while ``joined`` keeps them apart, as _JOINED).
        self._folded = folded
        self._joined = joined
        self._spans = spans  # general path: per key character, its span in the text
        # The start of the last range asked for and its index in the text: ranges asked for in
        # order of start are found by counting from there.
        self._cursor = (0, 0)
        # Where the fold is not one to one: the length of each text character's fold (as a
        # character), and their running sums, made on first need.
        self._lengths = lengths
        self._ends: list[int] | None = None
        # The last range asked for and its answer (a boundary check and the report that follows
        # it ask for the same range).
        self._last: tuple[int, int, tuple[int, int]] = (-1, -1, (0, 0))
        # A long text's lengths of each character's fold before clusters are folded (if made).
        self._raw: str | None = None
        self.slow_clusters = 0
        """How many clusters were folded one by one in Python (the rest in C)."""
        self.non_ascii: str | None = None
        """The text's characters outside ASCII, in order, if the fold collected them (a short text
        with any); None otherwise."""

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The ``(start, end)`` span of the text that ``key[start:end]`` came from (end exclusive).

        Args:
            start: The start of a non-empty range of the key that neither starts nor ends with
                a space.
            end: Its end, exclusive.

        Returns:
            The span in the original text, in code points, end exclusive.
        """
        folded = self._folded
        if folded is None:
            assert self._spans is not None
            return self._spans[start][0], self._spans[end - 1][1]
        last = self._last
        if last[0] == start and last[1] == end:
            return last[2]
        key = self.key
        k0, i0 = self._cursor
        if start < k0:
            k0, i0 = 0, 0
        # _locate(key, folded, start, k0, i0), inline (the common case: one or two counts).
        first = i0 + (start - k0)
        base = first - key.count(" ", k0, start)
        while (found := base + folded.count(" ", i0, first + 1)) != first:
            first = found
        self._cursor = (start, first)
        stop = first + (end - start)
        if folded[first:stop] != key[start:end]:  # spaced otherwise in the text than in the key
            stop = _locate(key, folded, end - 1, start, first) + 1
        joined = self._joined
        if self._lengths is not None:  # fold positions to text positions
            ends = self._ends
            if ends is None:
                ends = self._ends = _running_sums(self._lengths)
            first, stop = bisect.bisect_right(ends, first), bisect.bisect_right(ends, stop - 1) + 1
            if joined is not None:  # the range ends after the marks joined to its last character
                while stop < len(ends) and joined[ends[stop - 1]] == _JOINED:
                    stop += 1
        elif joined is not None:  # the range ends after the marks joined to its last character
            while stop < len(joined) and joined[stop] == _JOINED:
                stop += 1
        self._last = (start, end, (first, stop))
        return first, stop


def _pieces(folded: str) -> Iterator[tuple[int, int, str]]:
    """``(start, end, folded)`` per character of a one-to-one fold, with joined marks."""
    index, length = 0, len(folded)
    while index < length:
        stop = index + 1
        while stop < length and folded[stop] == _JOINED:
            stop += 1
        yield index, stop, folded[index]
        index = stop


def _wide_text(text: str, replace: Mapping[int, str] | None = None, raw: str | None = None) -> NormalizedText:
    folded, lengths, slow, raw = _fold_wide(text, replace, raw)
    if _JOINED in folded:
        normalized = NormalizedText(
            _squeeze(folded.replace(_JOINED, "")), folded.replace(_JOINED, " "), None, folded, lengths
        )
    else:
        normalized = NormalizedText(_squeeze(folded), folded, None, None, lengths)
    normalized.slow_clusters = slow
    normalized._raw = raw
    return normalized


def normalize_text(
    text: str, replace: Mapping[int, str] | None = None, like: NormalizedText | None = None
) -> NormalizedText:
    """Normalise ``text`` for searching: its key and a map from key ranges back to the text.

    Args:
        text: The text.
        replace: Code point → one character, applied to ``text`` first (``text.translate``), as
            the look-alike screen does; on a long text, in the same pass as the fold. Spans are
            of ``text`` (a replacement is one character for one).
        like: ``text`` normalised without ``replace``, if the caller has it: where no replacement
            changes the length of a character's fold, its lengths are reused.
    """
    if replace is not None:
        if len(text) >= _WHOLE_TEXT:
            raw = like._raw if like is not None and like._raw is not None and _same_lengths(replace, text) else None
            return _wide_text(text, replace, raw)
        text = text.translate(replace)
    if text.isascii() and len(text) < _WHOLE_TEXT:  # (no CJK text: no spaces next to it to find)
        plain = text.encode("ascii").translate(_ASCII_FOLD).decode("ascii")
        return NormalizedText(_collapse(plain), plain)
    runs: list[str] = []  # the runs of the text outside ASCII
    folded = _fold_one_to_one(text, runs) if len(text) < _WHOLE_TEXT else None
    if folded is None:
        return _wide_text(text)
    if _JOINED in folded:
        normalized = NormalizedText(_squeeze(folded.replace(_JOINED, "")), folded.replace(_JOINED, " "), None, folded)
    else:
        # The text outside ASCII lies between the first run's start and the last run's end: the
        # first occurrence of the first run's first character (everything before it is ASCII),
        # and the last of the last run's last character.
        start, end = text.find(runs[0][0]), text.rfind(runs[-1][-1]) + 1
        normalized = NormalizedText(_squeeze_within(folded, start, end), folded)
    if runs:
        normalized.non_ascii = "".join(runs)
    return normalized


def normalize_with_offsets(text: str) -> tuple[str, list[tuple[int, int]]]:
    """Normalise ``text`` and give, for each output character, its ``(start, end)`` span in ``text``."""
    folded = _fold_one_to_one(text)
    if folded is None:
        return _general(text)
    return _join(_pieces(folded))


def normalize(text: str) -> str:
    """The matching key of a name or alias (see the module docstring for the rules)."""
    folded = _fold_one_to_one(text) if len(text) < _WHOLE_TEXT else None
    if folded is None:
        folded = _fold_wide(text)[0]
    return _squeeze(folded.replace(_JOINED, "") if _JOINED in folded else folded)
