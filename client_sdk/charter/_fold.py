"""The folding behind `charter.names`: character classes, the one-to-one fast path and the
cluster-by-cluster general path, and the tables both use. Private: `charter.names` is the API
(its module documentation states the rules)."""

from __future__ import annotations

import bisect
import codecs
import itertools
import re
import threading
import unicodedata
from collections.abc import Iterable, Mapping
from functools import lru_cache

import regex

# Per thread: where the error handler adds the runs outside ASCII it folds, if asked (`_fold_one_to_one`).
_SEEN = threading.local()

_KATAKANA_START, _KATAKANA_END = 0x30A1, 0x30F6
_KANA_SHIFT = 0x60
# Iteration marks ヽ ヾ fold to ゝ ゞ.
_ITERATION = {0x30FD: "\u309d", 0x30FE: "\u309e"}
# Marks that attach to the preceding character and must be normalised with it.
_ATTACHING = {"\u3099", "\u309a", "\uff9e", "\uff9f"}


_IGNORABLE = regex.compile(r"[\p{Default_Ignorable_Code_Point}\p{Cf}]")


@lru_cache(maxsize=4096)
def is_ignorable(ch: str) -> bool:
    """Whether ``ch`` is dropped by the normalisation: a default-ignorable or format character."""
    return _IGNORABLE.match(ch) is not None


def is_cjk(ch: str) -> bool:
    """Whether ``ch`` is written without spaces between words (Han, kana, Hangul and the like)."""
    if ch < "\u3005":  # most characters asked about (Latin, spaces) are answered here
        return False
    code = ord(ch)
    return (
        0x3040 <= code <= 0x30FF  # hiragana, katakana
        or 0x31F0 <= code <= 0x31FF  # katakana phonetic extensions
        or 0x3400 <= code <= 0x4DBF  # CJK extension A
        or 0x4E00 <= code <= 0x9FFF  # CJK unified ideographs
        or 0xAC00 <= code <= 0xD7AF  # Hangul syllables
        or 0xF900 <= code <= 0xFAFF  # CJK compatibility ideographs
        or 0x20000 <= code <= 0x3FFFF  # CJK extensions B and later
        or code == 0x3005  # 々
    )


def is_word_char(ch: str) -> bool:
    """Whether ``ch`` is part of a space-separated word (a letter or digit that is not CJK)."""
    return ch.isalnum() and not is_cjk(ch)


@lru_cache(maxsize=4096)
def _is_separator(ch: str) -> bool:
    if ch == "\u30fc":  # ー is a letter in Japanese, although Unicode calls it a modifier
        return False
    category = unicodedata.category(ch)
    return category[0] in "PSZC" or ch.isspace()


def _fold_char(ch: str) -> str:
    code = ord(ch)
    if _KATAKANA_START <= code <= _KATAKANA_END:
        return chr(code - _KANA_SHIFT)
    return _ITERATION.get(code, ch)


def _is_latin(ch: str) -> bool:
    code = ord(ch)
    return code < 0x0250 or 0x1E00 <= code <= 0x1EFF


@lru_cache(maxsize=8192)
def _fold_cluster(cluster: str) -> str:
    if any(is_ignorable(c) for c in cluster):
        cluster = "".join(c for c in cluster if not is_ignorable(c))
    text = unicodedata.normalize("NFKC", cluster).casefold()
    if text and _is_latin(text[0]):
        decomposed = unicodedata.normalize("NFD", text)
        text = unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))
    elif text and _is_separator(text[0]):
        # Marks on a separator go with it: kept, they would stand as key characters of their own
        # after a gap, which a second normalisation would then drop (it must be idempotent).
        text = text[0] + "".join(c for c in text[1:] if not unicodedata.category(c).startswith("M"))
    return "".join(_fold_char(c) for c in text)


def _clusters(text: str) -> list[tuple[int, int]]:
    """Spans of a base character and the combining or voicing marks (and ignorables) after it."""
    spans: list[tuple[int, int]] = []
    start = 0
    for index in range(1, len(text) + 1):
        if index < len(text) and _joins(text[index]):
            continue
        spans.append((start, index))
        start = index
    return spans if text else []


def _join(pieces: Iterable[tuple[int, int, str]]) -> tuple[str, list[tuple[int, int]]]:
    """Lay out folded pieces ``(start, end, folded)`` with the separator rule (rule 5)."""
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    pending_gap: tuple[int, int] | None = None  # a separator run not yet emitted
    for start, end, folded in pieces:
        for ch in folded:
            if _is_separator(ch):
                if out and pending_gap is None:
                    pending_gap = (start, end)
                elif pending_gap is not None:
                    pending_gap = (pending_gap[0], end)
                continue
            if pending_gap is not None:
                # One space between two word characters; none where CJK text meets anything.
                if not is_cjk(out[-1]) and not is_cjk(ch):
                    out.append(" ")
                    spans.append(pending_gap)
                pending_gap = None
            out.append(ch)
            spans.append((start, end))
    return "".join(out), spans


def _general(text: str) -> tuple[str, list[tuple[int, int]]]:
    """The rules applied cluster by cluster: right for any text, but slow."""
    return _join((start, end, _fold_cluster(text[start:end])) for start, end in _clusters(text))


# ---- The one-to-one fast path -------------------------------------------------------------------

# What the per-character table gives for a character the fast path cannot fold on its own: a
# mark that joins the character before it, or a fold of other than one character. It is a
# control character, which no fold ever yields (control characters fold to separators).
_MARK = "\x00"
# In a one-to-one fold, a mark folded into the character before it: it stands for no character
# of the key, and its place in the text belongs to that character's cluster. It is a
# noncharacter, which no fold ever yields either (it folds to a separator).
_JOINED = "\uffff"
# What the table gives for two kinds of joining character whose cluster usually folds like the
# character before it, so that they can be joined in C rather than cluster by cluster: a Latin
# combining diacritic (U+0300-U+036F, but U+0345, which case-folds to iota) after a Latin letter
# or digit, and an ignorable character after anything. Where that does not hold, they become
# _MARK. Both are noncharacters, which no fold yields (they fold to separators).
_LATIN_MARK = "\ufffe"
_DROPPED = "\ufdd0"
# A cluster's joining characters are joined all together or not at all (``_fold_clusters`` starts
# a cluster at its first _MARK): every run of them after a Latin letter or digit, and a run of
# ignorables alone after any character, unless another mark (_MARK) follows the run.
# (Each pattern starts with the joining character and looks behind it afterwards, so that the
# engine skips to candidates with a character-set scan instead of trying every position.)
_AFTER_LATIN = re.compile("[\ufffe\ufdd0](?<=[a-z0-9].)[\ufffe\ufdd0]*(?![\ufffe\ufdd0\x00])", re.DOTALL)
_IGNORABLES_ONLY = re.compile("\ufdd0(?<=[^\ufffe\ufdd0].)\ufdd0*(?![\ufffe\ufdd0\x00])", re.DOTALL)
# The same, for runs of one character (replaced without a call per run).
_ONE_AFTER_LATIN = re.compile("[\ufffe\ufdd0](?<=[a-z0-9].)(?![\ufffe\ufdd0\x00])", re.DOTALL)
_ONE_IGNORABLE = re.compile("\ufdd0(?<=[^\ufffe\ufdd0].)(?![\ufffe\ufdd0\x00])", re.DOTALL)
# Texts at least this long are translated whole: one C call, rather than one call of the error
# handler per run of non-ASCII characters, which is slow when runs are many (marks after letters).
_WHOLE_TEXT = 1024


@lru_cache(maxsize=4096)
def _joins(ch: str) -> bool:
    """Whether ``ch`` belongs to the cluster of the character before it (a mark or an ignorable)."""
    return bool(unicodedata.combining(ch)) or ch in _ATTACHING or is_ignorable(ch)


def _as_one(folded: str) -> str:
    """A cluster's fold as one character: itself, " " for separators only (or nothing: ignorable
    characters at the start of a text), or _MARK."""
    if all(_is_separator(c) for c in folded):
        return " "
    return folded if len(folded) == 1 else _MARK


def _fold_alone(ch: str) -> str:
    """The fold of ``ch`` as a cluster of its own: one character, " " for a separator, _MARK, or
    one of the two joining characters resolved by ``_resolve``."""
    if is_ignorable(ch):
        return _DROPPED
    if 0x300 <= ord(ch) <= 0x36F and ch != "\u0345":
        return _LATIN_MARK
    return _MARK if _joins(ch) else _as_one(_fold_cluster(ch))


def _resolve(folded: str, before: str) -> str:
    """Join the Latin marks and ignorables of a translated run that fold into the character before
    them (``before`` is the fold of the character before the run, if any); the others are _MARK."""
    if _LATIN_MARK not in folded and _DROPPED not in folded:
        return folded
    # Runs of one character first, with a fixed replacement (no call back into Python per run).
    joined = _ONE_AFTER_LATIN.sub(_JOINED, before + folded)
    if _LATIN_MARK in joined or _DROPPED in joined:
        joined = _AFTER_LATIN.sub(_joined_run, joined)
    if _DROPPED in joined:
        joined = _ONE_IGNORABLE.sub(_JOINED, joined)
        if _DROPPED in joined:
            joined = _IGNORABLES_ONLY.sub(_joined_run, joined)
    joined = joined[len(before) :]
    return joined.replace(_LATIN_MARK, _MARK).replace(_DROPPED, _MARK)


def _joined_run(found: re.Match[str]) -> str:
    return _JOINED * (found.end() - found.start())


class _FoldTable(dict[int, int]):
    """Code point → ``_fold_alone`` (as a code point, which ``str.translate`` handles fastest);
    filled on first sight of a character.

    Every character of the Basic Multilingual Plane is kept once seen (at most 65,536 entries);
    above it, control, private-use and unassigned code points are folded afresh each time, so
    arbitrary input cannot grow the table without bound.
    """

    def __missing__(self, code: int) -> int:
        folded = ord(_fold_alone(chr(code)))
        if code < 0x10000 or unicodedata.category(chr(code))[0] != "C":
            self[code] = folded
        return folded


_TABLE = _FoldTable()
# ASCII folds byte for byte: letters to lower case, digits kept, anything else is a separator.
# Bytes from 0x80 up (UTF-8 of the rest of the text, already folded) pass unchanged.
_ASCII_FOLD = bytes(ord(_fold_alone(chr(b))) if b < 0x80 else b for b in range(256))


def _fold_wide_alone(ch: str) -> str:
    """As `_fold_alone`, but a character that folds to several (``ß`` → ``ss``, ``㍿`` → ``株式会社``)
    gives them all, each separator as " ". Where a Latin mark after it would be joined to it in C
    but not in its cluster (its fold ends in a Latin letter or digit but does not start with a
    Latin character), it gives _BASE_MARK: its cluster is folded whole. (The other way round the
    mark is not joined in C and becomes _MARK, whose cluster is folded whole anyway.)"""
    one = _fold_alone(ch)
    if one != _MARK or _joins(ch):
        return one
    folded = _fold_cluster(ch)
    wide = "".join(" " if _is_separator(c) else c for c in folded)
    if wide.strip(" ") == "":
        return " "
    if wide[-1] in _LATIN_OR_DIGIT and not _is_latin(folded[0]):
        return _BASE_MARK
    return wide


_LATIN_OR_DIGIT = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
# In the wide fold, a character that starts a cluster to be folded whole (as _MARK stands for a
# joining character to be folded with its cluster). A control character, which no fold yields.
_BASE_MARK = "\x01"
# The clusters of a wide fold to be folded whole: a run of joining characters left as _MARK
# (after the character before them), or a _BASE_MARK and the run of them after it.
# (Written to start with a class, so that the engine skips to candidates with one scan instead
# of trying the optional _BASE_MARK at every position: eight times faster on a long text.)
_WHOLE_CLUSTER = re.compile("[\x00\x01]\x00*")


class _WideTable(dict[int, str]):
    """Code point → ``_fold_wide_alone``; kept as `_FoldTable` keeps its entries."""

    def __missing__(self, code: int) -> str:
        folded = _fold_wide_alone(chr(code))
        if code < 0x10000 or unicodedata.category(chr(code))[0] != "C":
            self[code] = folded
        return folded


class _LengthTable(dict[int, str]):
    """Code point → the length of ``_fold_wide_alone``, as a character."""

    def __missing__(self, code: int) -> str:
        length = chr(len(_WIDE[code]))
        if code < 0x10000 or unicodedata.category(chr(code))[0] != "C":
            self[code] = length
        return length


_WIDE = _WideTable()
_LENGTHS = _LengthTable()


class _NotOneToOne(Exception):
    """The text needs the general path."""


def _fold_clusters(text: str, start: int, end: int, folded: str) -> str:
    """Fold the run ``text[start:end]`` where the table gave _MARK: clusters of a character and
    the marks after it become the cluster's fold followed by _JOINED. Raises _NotOneToOne where
    a cluster folds to more than one character."""
    out = list(folded)
    i = start
    while i < end:
        if out[i - start] != _MARK:
            i += 1
            continue
        stop = i + 1
        while stop < end and _joins(text[stop]):
            stop += 1
        # The cluster's first character: the character before a mark (if any), else this one.
        first = i - 1 if i and _joins(text[i]) else i
        one = _as_one(_fold_cluster(text[first:stop]))
        if one == _MARK or (first < start and one != _as_one(_fold_cluster(text[first]))):
            # The fold is not one character; or the marks join the ASCII character before the
            # run, already written as folded alone, and change its fold.
            raise _NotOneToOne
        if first >= start:
            out[first - start] = one
        for index in range(max(first + 1, start), stop):
            out[index - start] = _JOINED
        i = stop
    return "".join(out)


# Kana followed by a voicing mark that NFKC composes with it into one character: half-width
# ``ｶﾞ``, ``ﾊﾟ`` (U+FF9E, U+FF9F) and decomposed ``か\u3099`` (U+3099, U+309A). Such a pair is
# replaced, before the table is applied, by the composed character and a zero-width space: the
# same fold (the cluster's NFKC is the composed character, since NFKD of the composed character
# is NFKD of the pair), the same clusters (the zero-width space is ignorable, so it joins the
# character before it like the mark did) and the same length, so the pair is folded in C, the
# space joined like any ignorable, instead of cluster by cluster in Python.
_VOICED_PAIR = re.compile("[\u3040-\u30ff\uff66-\uff9d][\u3099\u309a\uff9e\uff9f]")
_ZERO_WIDTH_SPACE = "\u200b"


@lru_cache(maxsize=1)
def _voiced_pairs() -> dict[str, str]:
    """Every pair of a kana and a voicing mark that NFKC composes into one character → that
    character and a zero-width space."""
    pairs = {}
    for base in itertools.chain(range(0x3040, 0x3100), range(0xFF66, 0xFF9E)):
        for mark in "\u3099\u309a\uff9e\uff9f":
            composed = unicodedata.normalize("NFKC", chr(base) + mark)
            if len(composed) == 1:
                pairs[chr(base) + mark] = composed + _ZERO_WIDTH_SPACE
    return pairs


def _voiced_text(text: str) -> str:
    """``text`` with its composable voiced pairs replaced (``text`` itself if it has none)."""
    found = _VOICED_PAIR.findall(text)
    if not found:
        return text
    pairs = _voiced_pairs()
    for pair in set(found):  # a handful of distinct pairs, however many times each occurs
        composed = pairs.get(pair)
        if composed is not None:
            text = text.replace(pair, composed)
    return text


def _voiced_composed(run: str, folded: str, table: dict[int, int]) -> str:
    """The fold of ``run`` (``folded``, which has _MARK) after its voiced pairs are composed."""
    composed = _voiced_text(run)
    if composed is run:
        return folded
    joining = _LATIN_MARK in folded or _DROPPED in folded
    folded = composed.translate(table)
    if joining or _MARK in folded or _LATIN_MARK in folded:
        return folded
    # Nothing else joins in the run: each zero-width space put in follows its composed kana and
    # joins it, as `_resolve` would find (one replacement instead of its expressions).
    return folded.replace(_DROPPED, _JOINED)


def _fold_run(error: UnicodeError) -> tuple[bytes, int]:
    """Encoding error handler: fold a run of non-ASCII characters through ``_TABLE``.

    Encoding to ASCII with this handler leaves ASCII runs to the C encoder and calls Python once
    per run of other characters, which is much cheaper than translating the whole text.
    """
    if not isinstance(error, UnicodeEncodeError):
        raise error
    text, start, end = error.object, error.start, error.end
    run = text[start:end]
    folded = run.translate(_TABLE)
    if (runs := _SEEN.runs) is not None:
        runs.append(run)
    # A fold is a letter, a digit or " " per character, all printable; _MARK, _LATIN_MARK and
    # _DROPPED are not, so one check answers the common run (nothing to join).
    if folded.isprintable():
        return folded.encode(), end
    if _MARK in folded:
        folded = _voiced_composed(text[start:end], folded, _TABLE)
    if _LATIN_MARK in folded or _DROPPED in folded:
        folded = _resolve(folded, chr(_ASCII_FOLD[ord(text[start - 1])]) if start else "")
    if _MARK in folded:
        folded = _fold_clusters(text, start, end, folded)
    return folded.encode(), end


@lru_cache(maxsize=1)
def _handler() -> str:
    """The name of ``_fold_run`` as an error handler, registered on first use (not at import)."""
    name = "charter.names.fold"
    codecs.register_error(name, _fold_run)
    return name


_CJK_CLASS = (
    "[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003ffff\u3005]"
)
# After runs of spaces are squeezed to one, the spaces that touch CJK text (rule 5).
_SPACES_AT_CJK = re.compile(f" (?:(?={_CJK_CLASS})|(?<={_CJK_CLASS} ))")


def _fold_one_to_one(text: str, runs: list[str] | None = None) -> str | None:
    """``text`` folded character for character (separators as " "), or None if it cannot be.
    Each run of a short text outside ASCII is added to ``runs``, if given (the error handler that
    folds them sees them one by one, so they are collected in the same pass)."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_FOLD).decode("ascii")
    try:
        if len(text) < _WHOLE_TEXT:
            _SEEN.runs = runs
            folded = text.encode("ascii", _handler()).translate(_ASCII_FOLD).decode()
            _SEEN.runs = None
            return folded
        folded = text.translate(_TABLE)
        if _MARK in folded:
            folded = _voiced_composed(text, folded, _TABLE)
        folded = _resolve(folded, "")
        return _fold_clusters(text, 0, len(text), folded) if _MARK in folded else folded
    except _NotOneToOne:
        _SEEN.runs = None
        return None


@lru_cache(maxsize=8192)
def _cluster_wide(cluster: str) -> str:
    """A cluster's fold, each separator as " " (one " " if it is nothing else)."""
    folded = "".join(" " if _is_separator(c) else c for c in _fold_cluster(cluster))
    return folded if folded.strip(" ") else " "


def _running_sums(lengths: str) -> list[int]:
    """Where each character's fold ends, from the lengths of the folds (as characters)."""
    try:  # the lengths as bytes iterate as integers, twice as fast as through ord
        return list(itertools.accumulate(lengths.encode("latin-1")))
    except UnicodeEncodeError:  # a cluster that folds to 256 characters or more
        return list(itertools.accumulate(map(ord, lengths)))


class _Replaced(dict[int, str]):
    """``table`` (`_WIDE` or `_LENGTHS`) of the text with ``replace`` applied first: code point →
    the entry of its replacement (or of itself); kept as `_FoldTable` keeps its entries. One
    translation of the text then does what replacing and folding do in two."""

    def __init__(self, replace: Mapping[int, str], table: dict[int, str]) -> None:
        super().__init__()
        self._replace = replace
        self._table = table

    def __missing__(self, code: int) -> str:
        to = self._replace.get(code)
        value = self._table[code if to is None else ord(to)]
        if code < 0x10000 or unicodedata.category(chr(code))[0] != "C":
            self[code] = value
        return value


# Per replacement map (by identity; the map is kept alive here): its `_WIDE` and `_LENGTHS`, and
# the characters it replaces with one whose fold has another length.
_REPLACED: dict[int, tuple[Mapping[int, str], _Replaced, _Replaced, tuple[str, ...]]] = {}


def _replaced(replace: Mapping[int, str]) -> tuple[Mapping[int, str], _Replaced, _Replaced, tuple[str, ...]]:
    found = _REPLACED.get(id(replace))
    if found is None or found[0] is not replace:
        if len(_REPLACED) >= 4:  # a handful of maps in a process (one: the look-alike skeleton)
            _REPLACED.clear()
        resized = tuple(chr(c) for c, to in replace.items() if _LENGTHS[c] != _LENGTHS[ord(to)])
        found = _REPLACED[id(replace)] = (replace, _Replaced(replace, _WIDE), _Replaced(replace, _LENGTHS), resized)
    return found


def _replaced_tables(replace: Mapping[int, str]) -> tuple[_Replaced, _Replaced]:
    found = _replaced(replace)
    return found[1], found[2]


def _same_lengths(replace: Mapping[int, str], text: str) -> bool:
    """Whether replacing in ``text`` leaves every character's fold as long as it was."""
    return not any(ch in text for ch in _replaced(replace)[3])  # a dozen characters, each a C search


def _fold_wide(
    text: str, replace: Mapping[int, str] | None = None, raw: str | None = None
) -> tuple[str, str | None, int, str | None]:
    """``text`` folded character by character in C, a character's fold as long as it is.

    Returns the fold (separators as " ", marks joined to the character before them as _JOINED),
    the fold's length per character of the text (as characters; None when every one is 1), how
    many clusters were folded one by one in Python (only those with a mark that does not simply
    join its character: a kana voicing mark, a mark after a character of another script), and
    the lengths of each character's fold before clusters are folded (``raw``, if given: the
    caller has them from the same text, and ``replace`` changes none; None if not needed).
    """
    wide_table, length_table = (_WIDE, _LENGTHS) if replace is None else _replaced_tables(replace)
    wide = text.translate(wide_table)
    measured = text
    if _MARK in wide and replace is None:  # (replaced text folds its voiced pairs by cluster)
        composed = _voiced_text(text)
        if composed is not text:
            wide, measured = composed.translate(wide_table), composed
    wide = _resolve(wide, "")
    if _MARK not in wide and _BASE_MARK not in wide:
        if len(wide) == len(text):
            return wide, None, 0, None
        lengths = raw if raw is not None else measured.translate(length_table)
        return wide, lengths, 0, lengths
    # (A voiced pair composed is as long, character by character, as the pair.)
    lengths = raw if raw is not None else measured.translate(length_table)
    # ends[i]: where character i's fold ends in ``wide`` (needed only where folds are wider).
    ends = None if len(wide) == len(text) else _running_sums(lengths)
    pieces: list[str] = []
    widths: list[str] = []
    done = done_text = slow = 0
    for found in _WHOLE_CLUSTER.finditer(wide):
        at, end = found.span()
        index = at if ends is None else bisect.bisect_right(ends, at)  # the character at ``at``
        # A run of marks belongs to the character before it (if any); a _BASE_MARK is the base.
        first = index - 1 if index and wide[at] == _MARK else index
        stop = index + (end - at)  # every mark and _BASE_MARK is one character of the fold
        folded = _cluster_wide(text[first:stop] if replace is None else text[first:stop].translate(replace))
        start = first if ends is None or not first else ends[first - 1]
        pieces += (wide[done:start], folded, _JOINED * (stop - first - 1))
        widths += (lengths[done_text:first], chr(len(folded)), "\x01" * (stop - first - 1))
        done, done_text = end, stop
        slow += 1
    pieces.append(wide[done:])
    widths.append(lengths[done_text:])
    folded_text = "".join(pieces)
    return folded_text, (None if len(folded_text) == len(text) else "".join(widths)), slow, lengths


def _squeeze(folded: str) -> str:
    """The key of a one-to-one fold: drop spaces at the ends, in runs and next to CJK text."""
    key = _collapse(folded)
    return key if key.isascii() else _SPACES_AT_CJK.sub("", key)


def _squeeze_within(folded: str, start: int, end: int) -> str:
    """As `_squeeze`, for a one-to-one fold whose characters outside ASCII (so any CJK text) all lie
    in ``folded[start:end]``: the regular expression, tried at every space, sees only the part of
    the key that can hold them, often a small part of an English prompt."""
    key = _collapse(folded)
    if key.isascii():
        return key
    # A key character sits at or before its fold position, after at most every space before it.
    low = max(0, start - folded.count(" ", 0, start) - 1)
    high = end + 1
    if low == 0 and high >= len(key):
        return _SPACES_AT_CJK.sub("", key)
    return key[:low] + _SPACES_AT_CJK.sub("", key[low:high]) + key[high:]


def _collapse(folded: str) -> str:
    """The key of a one-to-one fold without CJK text: drop spaces at the ends and in runs."""
    key = folded.strip(" ")
    while "  " in key:
        key = key.replace("  ", " ")
    return key


def _locate(key: str, folded: str, k: int, k0: int, i0: int) -> int:
    """The index in the one-to-one fold (and so in the text) of the non-space key character ``k``,
    given that key character ``k0 <= k`` sits at fold index ``i0`` (or ``k0 = i0 = 0``).

    Key characters are fold characters with some spaces dropped, so the answer is ``i0 + (k -
    k0)`` plus the spaces dropped in between: the fold's spaces from ``i0`` up to the answer,
    less the key's from ``k0`` to ``k``. Starting from no dropped spaces, the guess only grows
    until it stops on the answer (a guess on a space counts that space too, and moves on).
    """
    base = i0 + (k - k0) - key.count(" ", k0, k)
    i = i0 + (k - k0)
    while (found := base + folded.count(" ", i0, i + 1)) != i:
        i = found
    return i
