"""Prompt screening: find every character a prompt names, in any script, and where.

The index holds the canonical name and every alias of every character in every state — opted
in, opted out, suspended and archived alike, for good — because a prompt that names a character
that is not opted in must be caught and denied, not ignored. Names and prompts are keyed by the shared
normalisation (``charter.names``), and an Aho-Corasick automaton (``pyahocorasick``) finds
every key in a prompt's key in one pass.

The matching rules:

* A name whose key starts (ends) with a Latin-script letter or digit must start (end) on a word
  boundary of the prompt: ``Miku`` is not found in ``Mikunopolis``. CJK text has no spaces
  between words, so an end in CJK needs no boundary: ``ミク`` is found in ``初音ミクさん``.
* Overlaps: a match that lies inside a longer match is dropped, so ``Hatsune Miku`` is not
  reported again as ``Miku``. Matches that only partly overlap are both kept: each may name a
  character, and a screen must not hide either.
* Each (character, span) is reported once; when several characters share a name, each is
  reported. Spans are in code points of the original prompt, end exclusive, and detections are
  ordered by start.

The index refreshes without a restart and without blocking requests: a background thread
checks a cheap marker of the catalogue every ``refresh_seconds`` (it reads the shared database,
so it sees changes made through any replica), builds a new automaton off to the side when the
marker moved, and swaps one reference. ``screen`` only reads that reference and takes no lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import ahocorasick
import structlog
from charter.names import is_word_char, normalize, normalize_text

from charter_server.domain.errors import InvalidArgument
from charter_server.domain.models import Detection
from charter_server.storage.database import Database
from charter_server.storage.repositories import CharacterNames

log = structlog.get_logger(__name__)

MAX_PROMPT_LENGTH = 8000
"""The longest prompt, in code points (the contract documents it on ``ScreenPromptRequest``)."""

# One character a name key stands for: (character id, the name as registered, ambiguous).
_Entry = tuple[str, str, bool]


@dataclass(frozen=True, slots=True)
class ScreenIndex:
    """One immutable generation of the index: the automaton and how many names it holds.

    The automaton's value for a key is ``(length, bounded_start, bounded_end, entries)``:
    whether the key's first and last characters need a word boundary, and the characters it
    names.
    """

    automaton: Any  # ahocorasick.Automaton; None when there are no names at all
    names: int
    characters: int
    marker: object = None

    @classmethod
    def build(cls, characters: Iterable[CharacterNames], marker: object = None) -> ScreenIndex:
        """Index every name of ``characters`` by its normalised key."""
        by_key: dict[str, dict[str, tuple[str, bool]]] = {}
        count = 0
        for character_id, canonical_name, aliases in characters:
            count += 1
            # The canonical name first, so it is the name reported when an alias has its key.
            for value, ambiguous in ((canonical_name, False), *aliases):
                key = normalize(value)
                if not key:
                    continue
                owners = by_key.setdefault(key, {})
                found = owners.get(character_id)
                if found is None:
                    owners[character_id] = (value, ambiguous)
                elif found[1] and not ambiguous:
                    # Ambiguous only if every name of the character with this key is.
                    owners[character_id] = (found[0], False)
        if not by_key:
            return cls(automaton=None, names=0, characters=count, marker=marker)
        automaton = ahocorasick.Automaton()
        for key, owners in by_key.items():
            entries = tuple((cid, value, ambiguous) for cid, (value, ambiguous) in owners.items())
            automaton.add_word(key, (len(key), is_word_char(key[0]), is_word_char(key[-1]), entries))
        automaton.make_automaton()
        return cls(automaton=automaton, names=len(by_key), characters=count, marker=marker)

    def find(self, prompt: str) -> list[Detection]:
        """Every detection in ``prompt`` (already validated), by the rules of the module docstring."""
        if self.automaton is None:
            return []
        text = normalize_text(prompt)
        key = text.key
        last = len(key) - 1
        # The automaton reports matches by end, and a longer match before a shorter one with
        # the same end. Kept that way, a new match swallows the kept matches that start inside
        # it (they end no later), and is itself inside a kept match only if that one has the
        # same end and starts earlier. What is kept never nests, so it is in order of start too.
        kept: list[tuple[int, int, tuple[_Entry, ...]]] = []
        for end, (length, bounded_start, bounded_end, entries) in self.automaton.iter(key):
            start = end - length + 1
            if bounded_start and start and (before := key[start - 1]) != " " and is_word_char(before):
                continue
            if bounded_end and end < last and (after := key[end + 1]) != " " and is_word_char(after):
                continue
            while kept and kept[-1][0] >= start:
                kept.pop()
            if kept and kept[-1][1] > end:
                continue
            kept.append((start, end + 1, entries))
        detections: list[Detection] = []
        for start, end, entries in kept:
            first, stop = text.span(start, end)
            matched = prompt[first:stop]
            for character_id, alias, ambiguous in entries:
                detections.append(Detection(character_id, alias, first, stop, matched, ambiguous))
        return detections


class PromptScreen:
    """The prompt screen of one server: the current index and the thread that refreshes it."""

    def __init__(self, db: Database, *, refresh_seconds: float = 1.0, join_seconds: float = 5.0) -> None:
        self._db = db
        self._refresh_seconds = refresh_seconds
        self._join_seconds = join_seconds
        # Read without a lock by ``screen``: a reference assignment is atomic, and an index is
        # never changed once built.
        self._index: ScreenIndex | None = None
        self._build_lock = threading.Lock()  # one build at a time, so swaps happen in order
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def screen(self, prompt: str) -> list[Detection]:
        """The characters ``prompt`` names, with the alias matched and the span, ordered by start.

        Raises:
            InvalidArgument: ``prompt`` is empty or longer than ``MAX_PROMPT_LENGTH``.
        """
        if not prompt.strip():
            raise InvalidArgument.one("prompt", "is required")
        if len(prompt) > MAX_PROMPT_LENGTH:
            raise InvalidArgument.one("prompt", f"must be at most {MAX_PROMPT_LENGTH} characters")
        index = self._index
        if index is None:
            index = self._rebuild(force=False)
        return index.find(prompt)

    def refresh_now(self) -> ScreenIndex:
        """Rebuild the index from the catalogue now, whether or not it changed; return it."""
        return self._rebuild(force=True)

    def start(self) -> None:
        """Build the first index and start the background refresh."""
        if self._thread is not None:
            return
        self._rebuild(force=True)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="charter-screen-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background refresh, waiting a bounded time for the thread to end."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(self._join_seconds)
            if thread.is_alive():
                log.warning("screen.refresh_thread_still_running", join_seconds=self._join_seconds)

    @property
    def index(self) -> ScreenIndex | None:
        """The current index (None before the first build)."""
        return self._index

    def _run(self) -> None:
        while not self._stop.wait(self._refresh_seconds):
            try:
                self._rebuild(force=False)
            except Exception as error:  # keep serving the last index; try again next time
                log.warning("screen.refresh_failed", error=repr(error))

    def _rebuild(self, *, force: bool) -> ScreenIndex:
        with self._build_lock:
            current = self._index
            if not force and current is not None and self._marker() == current.marker:
                return current
            # The marker is read before the names: a change that lands in between moves the
            # marker again, so the next check rebuilds.
            with self._db.uow() as uow:
                marker = uow.characters.names_marker()
                characters = uow.characters.all_names()
            index = ScreenIndex.build(characters, marker)
            self._index = index
            if current is None or current.marker != marker:
                log.info("screen.index_built", characters=index.characters, names=index.names)
            return index

    def _marker(self) -> object:
        with self._db.uow() as uow:
            return uow.characters.names_marker()
