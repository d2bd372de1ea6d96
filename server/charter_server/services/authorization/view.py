"""The in-memory view ``Authorize`` decides from, one generation per value of the authorization
epoch, trusted for the deployment's lease; see ``charter_server.services.authorization`` for why
this is safe across servers."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from charter.grants import KeyRing
from charter.terms import CompiledTerms
from charter.v1 import terms_pb2

from charter_server.domain.errors import StorageUnavailable
from charter_server.domain.events import DomainEvent
from charter_server.domain.models import Character, CharacterState, GrantRecord, GrantState, LifecycleState
from charter_server.services.deployment import MAX_LEASE_SECONDS
from charter_server.services.keys import build_ring
from charter_server.storage.database import Database

log = structlog.get_logger(__name__)

_RECENTLY_EXPIRED = timedelta(days=30)  # expired grants still loaded, to answer GRANT_EXPIRED rather than NO_GRANT
_MAX_GENERATION_AGE = 60.0  # seconds; a safety net under the epoch: no generation lives longer


@dataclass(frozen=True, slots=True)
class CharacterView:
    state: CharacterState
    rights_holder_id: str


@dataclass(frozen=True, slots=True)
class LicenseeView:
    archived: bool
    platform: str


@dataclass(frozen=True, slots=True)
class GrantView:
    id: str
    state: GrantState
    not_before: datetime
    expire_time: datetime
    terms_version: int
    signing_key_id: str
    terms: CompiledTerms
    max_uses: int | None


class Generation:
    """What decisions read, as of one value of the authorization epoch; filled lazily."""

    __slots__ = ("characters", "checked", "created", "epoch", "grants", "lease", "licensees", "lock", "ring")

    def __init__(self, epoch: int, started: float, lease: float) -> None:
        self.epoch = epoch
        self.created = started
        self.checked = started  # the start of the latest poll that found the epoch unchanged
        self.lease = lease  # the deployment's lease as that poll read it: trusted until checked + lease
        self.characters: dict[str, CharacterView] = {}
        self.licensees: dict[str, LicenseeView] = {}
        self.grants: dict[tuple[str, str], tuple[GrantView, ...]] = {}
        self.ring: KeyRing | None = None
        self.lock = threading.Lock()


class AuthorizationView:
    """The in-memory view of one server, kept current by polling the authorization epoch.

    See the module docstring for the lease argument that makes it safe across servers. The lease
    is the deployment's (``storage.serving``), read with the epoch at every poll, so replicas
    started with other settings still agree.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lease = 1.0  # until the first poll reads the deployment's
        self._poll_seconds = self._lease / 4
        self._lock = threading.Lock()
        self._generation: Generation | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._terms: dict[str, CompiledTerms] = {}  # by grant id: a grant's terms never change

    @property
    def lease_seconds(self) -> float:
        """The deployment's lease as the latest poll read it: how long a generation is trusted
        after the poll that last confirmed it."""
        return self._lease

    def start(self) -> None:
        """Poll once, then keep polling in the background."""
        if self._thread is not None:
            return
        self.poll()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="charter-authz-view", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling (bounded wait)."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=2)

    def current(self) -> Generation:
        """A generation confirmed within the lease; polls now if there is none.

        Raises:
            StorageUnavailable: The database cannot be read, so nothing can be decided safely.
        """
        generation = self._generation
        if generation is None or time.monotonic() - generation.checked > generation.lease:
            generation = self.poll()
        return generation

    def is_fresh(self, generation: Generation) -> bool:
        """Whether decisions may still rest on ``generation``: current, and confirmed within the lease."""
        return generation is self._generation and time.monotonic() - generation.checked <= generation.lease

    def confirm(self, generation: Generation) -> bool:
        """Whether ``generation`` is still current once the epoch is read again (after a decision
        that outlasted the lease: nothing changed up to this read, so the decision stands).

        Raises:
            StorageUnavailable: The database cannot be read.
        """
        return self.poll() is generation and self.is_fresh(generation)

    def poll(self) -> Generation:
        """Read the epoch now; start a new generation if it moved (or the current one is old)."""
        started = time.monotonic()
        try:
            with self._db.uow() as uow:
                epoch, lease = uow.authz.epoch_and_lease()
        except Exception as error:
            raise StorageUnavailable("the authorization view cannot be refreshed; retry") from error
        with self._lock:
            if lease != self._lease:
                log.info("authz_view.lease", seconds=lease)
                self._lease, self._poll_seconds = lease, lease / 4
            generation = self._generation
            if generation is None or generation.epoch != epoch or started - generation.created > _MAX_GENERATION_AGE:
                generation = Generation(epoch, started, lease)
                self._generation = generation
            elif started > generation.checked:
                generation.checked = started
                generation.lease = lease
            return generation

    def settle(self) -> None:
        """After committing a change that takes something away: look at once, then wait out the
        longest lease any server may still trust, so that none still decides on a view from before
        the change.

        The wait is read from the database after the commit (the lease, or the one it replaced
        while that may still be in use); if it cannot be read, the longest lease there can be.
        """
        try:
            with self._db.uow() as uow:
                wait = uow.deployment.lease().longest
        except Exception as error:  # the change is committed: wait as long as any lease could be
            log.warning("authz_view.lease_unreadable", error_type=type(error).__name__)
            wait = MAX_LEASE_SECONDS
        try:
            self.poll()  # this server: at once
        except StorageUnavailable:
            self._wake.set()  # the lease below still bounds what this server trusts
        time.sleep(wait)

    def changed(self) -> None:
        """After committing a change that may allow more (a grant issued, a suspension lifted): look at once."""
        try:
            self.poll()
        except StorageUnavailable:
            self._wake.set()  # the poller tries again

    def on_committed(self, events: Sequence[DomainEvent]) -> None:
        """The view's subscriber to committed events (``storage.uow``): `settle` once after a
        commit whose events may take something away, `changed` after one that may only allow more,
        nothing when no event touches what ``Authorize`` reads."""
        if any(e.takes_away for e in events):
            self.settle()
        elif any(e.affects_authorization for e in events):
            self.changed()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake.wait(self._poll_seconds * min(2**failures, 8))
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.poll()
            except StorageUnavailable as error:
                failures += 1
                log.warning("authz_view.poll_failed", error=repr(error.__cause__))
            else:
                failures = 0

    # Loading into a generation -------------------------------------------------------------------

    def load(self, generation: Generation, licensee_id: str, character_ids: Sequence[str], now: datetime) -> None:
        """Read what ``generation`` lacks for this licensee and these characters, in one read transaction."""
        missing_characters = [cid for cid in character_ids if cid not in generation.characters]
        missing_pairs = [cid for cid in character_ids if (licensee_id, cid) not in generation.grants]
        need_licensee = licensee_id not in generation.licensees
        need_ring = generation.ring is None
        if not (missing_characters or missing_pairs or need_licensee or need_ring):
            return
        with self._db.uow() as uow:
            characters = uow.characters.get_many(missing_characters) if missing_characters else {}
            licensee = uow.licensees.get(licensee_id) if need_licensee else None
            grants = uow.authz.grants_for(licensee_id, missing_pairs, now - _RECENTLY_EXPIRED) if missing_pairs else []
            ring = build_ring(uow.signing_keys.all()) if need_ring else None
        by_character: dict[str, list[GrantView]] = {cid: [] for cid in missing_pairs}
        for record in grants:
            by_character[record.character_id].append(self._grant_view(record))
        with generation.lock:
            for cid, character in characters.items():
                generation.characters[cid] = view_of(character)
            for cid, views in by_character.items():
                generation.grants[(licensee_id, cid)] = tuple(views)
            if need_licensee:
                generation.licensees[licensee_id] = LicenseeView(
                    archived=licensee is None or licensee.state is LifecycleState.ARCHIVED,
                    platform=licensee.platform if licensee is not None else "",
                )
            if ring is not None and generation.ring is None:
                generation.ring = ring

    def _grant_view(self, record: GrantRecord) -> GrantView:
        compiled = self._terms.get(record.id)
        if compiled is None:
            compiled = CompiledTerms.from_terms(terms_pb2.Terms.FromString(record.terms))
            if len(self._terms) > 100_000:
                self._terms.clear()
            self._terms[record.id] = compiled
        return GrantView(
            id=record.id,
            state=record.state,
            not_before=record.not_before,
            expire_time=record.expire_time,
            terms_version=record.terms_version,
            signing_key_id=record.signing_key_id,
            terms=compiled,
            max_uses=record.max_uses,
        )


def view_of(character: Character) -> CharacterView:
    return CharacterView(state=character.state, rights_holder_id=character.rights_holder_id)
