"""Prompt screening on the server: the current index of every character and the thread that keeps
it current.

The matching itself (keys, variants, boundaries, look-alikes, descriptions) is the SDK's shared
matcher, ``charter.screen.ScreenIndex``, built here from the catalogue: the names and keyword
sets of every character in every state — opted in, opted out, suspended and archived alike, for
good — because a prompt that names a character that is not opted in must be caught and denied,
not ignored.

When the server starts (unless the ``preload`` setting is off), a background thread loads the
morphological analysers (fugashi, and jieba, whose dictionary takes a second or more) and the
converters and word lists that registering a name uses (``readings.warm``), so that no request
pays for loading them: a request that needs one while it loads waits for that load rather than
starting its own. ``warmed`` is set when they are loaded (or failed to, or preload is off: then
each loads on first use, as in the SDK).

The index refreshes without a restart and without blocking requests: a background thread
checks a cheap marker of the catalogue every ``refresh_seconds`` (it reads the shared database,
so it sees changes made through any replica), builds a new index off to the side from the
current one when the marker moved (deriving again only the characters that changed), and swaps
one reference. ``screen`` only reads that reference and takes no lock.
"""

from __future__ import annotations

import gc
import threading
import time

import structlog
from charter.screen import ScreenIndex, WordSegmenter

from charter_server.domain.errors import InvalidArgument
from charter_server.domain.models import Detection
from charter_server.services import readings
from charter_server.storage.database import Database

__all__ = ["MAX_PROMPT_LENGTH", "PromptScreen", "ScreenIndex"]

log = structlog.get_logger(__name__)

MAX_PROMPT_LENGTH = 8000
"""The longest prompt, in code points (the contract documents it on ``ScreenPromptRequest``)."""


class PromptScreen:
    """The prompt screen of one server: the current index and the thread that refreshes it."""

    def __init__(
        self, db: Database, *, refresh_seconds: float = 1.0, join_seconds: float = 5.0, preload: bool = True
    ) -> None:
        self._db = db
        self._preload = preload
        self._refresh_seconds = refresh_seconds
        self._join_seconds = join_seconds
        # Read without a lock by ``screen``: a reference assignment is atomic, and an index is
        # never changed once built.
        self._index: ScreenIndex | None = None
        self._build_lock = threading.Lock()  # one build at a time, so swaps happen in order
        self._segmenter = WordSegmenter()  # the analysers are loaded once and shared by every index
        self.warmed = threading.Event()
        """Set once the analysers, converters and word lists are loaded (or failed to load)."""
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
        # The analysers, converters and word lists, in the background so that the server serves
        # at once (started before the first call can arrive, so no call pays for loading them).
        if self._preload:
            threading.Thread(target=self._warm, name="charter-screen-warm", daemon=True).start()
        else:
            self.warmed.set()
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

    def _warm(self) -> None:
        started = time.perf_counter()
        try:
            self._segmenter.warm()
            readings.warm()
            # What was just loaded is kept for the life of the process, and it is most of the
            # process's objects: out of the cyclic collector's sight, a full collection no longer
            # walks them. With them it took 150-170 ms each, a pause of whatever call was running
            # (the p95 of a year's usage series, measured with bench_console.py); now a few ms.
            # Once per process (the loaded objects are the process's, not this screen's), and after
            # a collection, so that only live objects are frozen: a frozen cycle is never freed.
            if not gc.get_freeze_count():
                gc.collect()
                gc.freeze()
            log.info(
                "screen.warmed", seconds=round(time.perf_counter() - started, 3), frozen_objects=gc.get_freeze_count()
            )
        except Exception as error:  # loaded on first use instead
            log.warning("screen.warm_failed", error=repr(error))
        finally:
            self.warmed.set()

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
            # From the current generation: only the characters that changed are derived again
            # (a full build of 10,000 characters holds the GIL for about 0.45 s, a pause in
            # every call the process serves meanwhile; one changed character costs about 0.12 s).
            index = ScreenIndex.build(characters, segmenter=self._segmenter, marker=marker, previous=current)
            self._index = index
            if current is None or current.marker != marker:
                log.info("screen.index_built", characters=index.characters, names=index.names, keys=index.keys)
                for merged, character_id, other_id in index.skeleton_collisions:
                    log.warning("screen.skeleton_collision", key=merged, character_id=character_id, other_id=other_id)
            return index

    def _marker(self) -> object:
        with self._db.uow() as uow:
            return uow.characters.names_marker()
