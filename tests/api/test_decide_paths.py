"""One decision on every path: the server deciding from its records, the server deciding from
presented grants, and the SDK's offline authorizer, for the character declared and for the
character named in a prompt it screens itself (against its registry snapshot, `screen_locally`),
give the same decision and the same reasons (`charter.decide`'s documented order) for every
combination of grant state (active, suspended, revoked), validity window (valid, not yet valid,
expired), signing key (active, retired, revoked), character state (opted in, suspended, archived,
opted out) and licensee state (active, archived); and the answer is the one the documented order
gives.

A real server in process on 127.0.0.1 with its own SQLite database and its own clock (the test
rotates and revokes signing keys and moves time), driven through the SDK. Every state is reached
through the API, as in production: a grant signed by a key was issued while that key was active,
an opted-out or archived character's grants are revoked, and so on. The offline authorizer learns
every state from the revocation log (an opted-out or archived character has an event of its own,
so it answers ``CHARACTER_NOT_OPTED_IN`` as the server does, not its revoked grants' reason); for a
character named in a prompt, its registry snapshot tells it the state of a character whose grants
it does not hold.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import charter
import pytest
from charter.decide import GRANT_PROBLEM_ORDER
from charter.decisions import CharacterDecision
from charter.offline import OfflineAuthorizer
from charter.terms import DenyReason
from charter.v1 import api_key_pb2, grant_pb2, terms_pb2
from charter_server.app import CharterServer, build_server
from charter_server.config import Settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

IMAGE = terms_pb2.USE_TYPE_IMAGE_GENERATION
VIDEO = terms_pb2.USE_TYPE_VIDEO_GENERATION
TEEN = terms_pb2.CONTENT_RATING_TEEN
WAIT = 10.0  # seconds: the bound of every wait for the offline authorizer
MOVE = timedelta(hours=2)  # how far the clock moves between issuing and deciding

GRANT_STATES = ("active", "suspended", "revoked")
WINDOWS = ("valid", "not_yet_valid", "expired")
KEY_STATES = ("active", "retired", "revoked")
CHARACTER_STATES = ("opted_in", "suspended", "archived", "opted_out")


class ManualClock:
    """The server's and the authorizer's clock: real time plus an offset only the test moves."""

    def __init__(self) -> None:
        self._offset = timedelta()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._offset += delta


@dataclass(frozen=True)
class GrantSpec:
    state: str
    window: str
    key: str
    narrow: bool = False  # terms narrowed to video only: the image use fails its terms


@dataclass(frozen=True)
class CharacterSpec:
    state: str
    grants: tuple[GrantSpec, ...]  # oldest first (the issue order within a key's turn)


@dataclass
class Built:
    """A licensee and its characters, with the grants issued (oldest first) for each."""

    generator: str
    character_ids: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    grants: dict[str, list[grant_pb2.Grant]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def own_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory, own_clock: ManualClock) -> Iterator[CharterServer]:
    """A server of its own: the test revokes signing keys and moves the clock."""
    path = Path(tmp_path_factory.mktemp("decide_paths")) / "charter.db"
    built = build_server(
        Settings(
            listen="127.0.0.1:0",
            database_url=f"sqlite:///{path}",
            migrate=True,
            log_format="json",
            shutdown_grace_seconds=1.0,
            revocation_heartbeat_seconds=0.1,
            authorization_lease_seconds=0.01,
        ),
        clock=own_clock,
    )
    built.start()
    try:
        yield built
    finally:
        built.stop(grace=0)


@pytest.fixture(scope="module")
def admin(own_server: CharterServer) -> Iterator[charter.Client]:
    secret = own_server.services.access.create_bootstrap_admin("decide paths admin").secret
    with charter.Client(f"127.0.0.1:{own_server.port}", api_key=secret) as client:
        yield client


def _marker() -> str:
    return uuid.uuid4().hex[:10]


def build(
    admin: charter.Client, clock: ManualClock, characters: Sequence[CharacterSpec], *, licensee_archived: bool
) -> Built:
    """Reach every state through the API, in an order production could take."""
    holder = admin.create_rights_holder(display_name=f"Studio {_marker()}", contact_email="rights@studio.example")
    licensee = admin.create_licensee(display_name=f"App {_marker()}", contact_email="ops@app.example", platform="app")
    key = admin.create_api_key(display_name="paths", role=api_key_pb2.ROLE_GENERATOR, licensee_id=licensee.id)
    built = Built(key.secret)
    base = terms_pb2.Terms(permitted_use_types=[IMAGE, VIDEO], max_content_rating=TEEN)
    for _ in characters:
        created = admin.create_character(rights_holder_id=holder.id, canonical_name=f"Paths {_marker()}")
        admin.opt_in(created.id, base)
        built.character_ids.append(created.id)
        built.names[created.id] = created.canonical_name
        built.grants[created.id] = []
    start = clock.now()
    # A grant is signed by the key active when it is issued: the grants of a revoked key first,
    # then those of a key that will be retired, then those of the key that stays active.
    revoked_keys = []
    for turn in KEY_STATES[::-1]:
        turn_grants = [
            (cid, grant)
            for cid, spec in zip(built.character_ids, characters, strict=True)
            for grant in spec.grants
            if grant.key == turn
        ]
        if not turn_grants:
            continue
        rotated = admin.rotate_signing_key()
        if turn == "revoked":
            revoked_keys.append(rotated.active_key.key_id)
        for cid, grant in turn_grants:
            not_before = start + timedelta(days=5) if grant.window == "not_yet_valid" else None
            lifetime = MOVE / 2 if grant.window == "expired" else timedelta(days=10)
            narrowed = terms_pb2.Terms(permitted_use_types=[VIDEO], max_content_rating=TEEN) if grant.narrow else None
            issued = admin.issue_grant(
                character_id=cid,
                licensee_id=licensee.id,
                not_before=not_before,
                expire_time=start + lifetime + (timedelta(days=5) if not_before else timedelta()),
                narrowed_terms=narrowed,
            )
            built.grants[cid].append(issued)
            clock.advance(timedelta(milliseconds=1))  # distinct issue times: one order everywhere
        if turn != "active":
            admin.rotate_signing_key()  # retires it
    for key_id in revoked_keys:
        admin.revoke_signing_key(key_id, reason="compromised")
    for cid, spec in zip(built.character_ids, characters, strict=True):
        ordered = sorted(built.grants[cid], key=lambda g: (g.issue_time.seconds, g.issue_time.nanos))
        built.grants[cid] = ordered
        for issued, grant in zip(ordered, _issue_order(spec), strict=True):
            if grant.state == "suspended":
                admin.suspend_grant(issued.id, reason="review")
            elif grant.state == "revoked":
                admin.revoke_grant(issued.id, reason="ended")
        if spec.state == "suspended":
            admin.suspend_character(cid, reason="staff review")
        elif spec.state == "archived":
            admin.archive_character(cid)
        elif spec.state == "opted_out":
            admin.opt_out(cid, reason="rights holder left")
    if licensee_archived:
        admin.archive_licensee(licensee.id)
    clock.advance(MOVE)
    return built


def _issue_order(spec: CharacterSpec) -> list[GrantSpec]:
    """The character's grants in the order `build` issued them (by key turn, then as given)."""
    return [grant for turn in KEY_STATES[::-1] for grant in spec.grants if grant.key == turn]


def asks_server(spec: CharacterSpec, *, licensee_archived: bool) -> bool:
    """Whether the offline authorizer hands the character to the server: an archived licensee, or
    no held grant (the revocation stream tells a licensee only of the characters it holds grants
    of, so it does not know either whether such a character is suspended)."""
    return licensee_archived or not spec.grants


def prompt_asks_server(spec: CharacterSpec, *, licensee_archived: bool) -> bool:
    """Whether the offline authorizer hands a character named in a prompt to the server: its
    snapshot tells it the character's state, so only an archived licensee, or an opted-in character
    without a held grant (the server knows whether the licensee has one on record)."""
    return licensee_archived or (spec.state == "opted_in" and not spec.grants)


def expected(spec: CharacterSpec, *, licensee_archived: bool) -> tuple[bool, tuple[DenyReason, ...]]:
    """The documented order, as a table."""
    if licensee_archived:
        refusal = DenyReason.LICENSEE_ARCHIVED
    elif spec.state == "suspended":
        refusal = DenyReason.CHARACTER_SUSPENDED
    elif spec.state in ("archived", "opted_out"):
        refusal = DenyReason.CHARACTER_NOT_OPTED_IN
    elif not spec.grants:
        refusal = DenyReason.NO_GRANT
    else:
        return _by_grants(_issue_order(spec)[::-1])
    return False, (refusal,)


def _by_grants(newest_first: list[GrantSpec]) -> tuple[bool, tuple[DenyReason, ...]]:
    problems: list[DenyReason | None] = []
    for grant in newest_first:
        found = []
        if grant.key == "revoked":
            found.append(DenyReason.GRANT_INVALID)
        if grant.state == "revoked":
            found.append(DenyReason.GRANT_REVOKED)
        elif grant.state == "suspended":
            found.append(DenyReason.GRANT_SUSPENDED)
        if grant.window == "not_yet_valid":
            found.append(DenyReason.GRANT_NOT_YET_VALID)
        if grant.window == "expired":
            found.append(DenyReason.GRANT_EXPIRED)
        problem = min(found, key=GRANT_PROBLEM_ORDER.index) if found else None
        if problem is None and not grant.narrow:
            return True, ()
        problems.append(problem)
    if None in problems:  # the failed terms of the newest grant that is itself good
        return False, (DenyReason.USE_TYPE_NOT_PERMITTED,)
    first = problems[0]
    assert first is not None
    return False, (first,)


def _answer(decision: CharacterDecision) -> tuple[bool, tuple[DenyReason, ...]]:
    return decision.allowed, tuple(decision.reasons)


def decide_every_way(
    server: CharterServer, clock: ManualClock, built: Built, *, licensee_archived: bool = False
) -> dict[str, list[tuple[CharacterDecision, bool]]]:
    """Each character decided from records, from presented grants, and by the offline authorizer,
    declared (with `authorize` and with `decide`) and named in a prompt."""
    found: dict[str, list[tuple[CharacterDecision, bool]]] = {
        "records": [],
        "presented": [],
        "offline": [],
        "prompt": [],
        "lean": [],
    }
    held = [grant.envelope for grants in built.grants.values() for grant in grants]
    server.services.screen.refresh_now()  # the server's own screen refreshes every second
    with charter.Client(f"127.0.0.1:{server.port}", api_key=built.generator) as client:
        authorizer = OfflineAuthorizer(
            client,
            grants=held,
            clock=clock.now,
            skew=timedelta(0),  # the server's window exactly
            min_backoff=timedelta(milliseconds=50),
            max_backoff=timedelta(milliseconds=500),
            screen_locally=True,
        )
        try:
            # An archived licensee's authorizer never becomes current (it asks the server).
            authorizer.start(timeout=None if licensee_archived else WAIT)
            assert licensee_archived or authorizer.is_current()
            assert licensee_archived or authorizer.wait_screen(timeout=WAIT)
            for cid in built.character_ids:
                presented = [grant.envelope for grant in built.grants[cid]]
                records = client.authorize(character_ids=[cid], use_type=IMAGE, content_rating=TEEN)
                shown = client.authorize(character_ids=[cid], grants=presented, use_type=IMAGE, content_rating=TEEN)
                offline = authorizer.authorize(character_ids=[cid], use_type=IMAGE, content_rating=TEEN)
                named = f"a portrait of {built.names[cid]} at dusk"
                prompted = authorizer.authorize(prompt=named, use_type=IMAGE, content_rating=TEEN)
                assert [(c.character_id, c.declared, c.detected) for c in prompted.characters] == [(cid, False, True)]
                found["records"].append((records.characters[0], records.offline))
                found["presented"].append((shown.characters[0], shown.offline))
                found["offline"].append((offline.characters[0], offline.offline))
                found["prompt"].append((prompted.characters[0], prompted.offline))
                # `OfflineAuthorizer.decide` twice: the first checks the held grants against the ring
                # (`decide_offline`), the second takes its warm path; None when the server decides.
                lean = [
                    authorizer.decide(cid, authorizer.use_context(use_type=IMAGE, content_rating=TEEN)) for _ in "ab"
                ]
                assert lean[0] is None or lean[1] is None or _answer(lean[0]) == _answer(lean[1])
                found["lean"].append((lean[1] or offline.characters[0], lean[1] is not None))
        finally:
            authorizer.close()
    return found


def check(
    server: CharterServer, clock: ManualClock, built: Built, specs: Sequence[CharacterSpec], *, licensee_archived: bool
) -> None:
    found = decide_every_way(server, clock, built, licensee_archived=licensee_archived)
    for i, spec in enumerate(specs):
        records, _ = found["records"][i]
        presented, _ = found["presented"][i]
        offline, decided_offline = found["offline"][i]
        prompted, prompt_offline = found["prompt"][i]
        lean, lean_offline = found["lean"][i]
        answer = expected(spec, licensee_archived=licensee_archived)
        answers = (_answer(records), _answer(presented), _answer(offline), _answer(prompted))
        assert answers == (answer, answer, answer, answer), spec
        assert lean_offline is decided_offline, spec
        assert _answer(lean) == answer, spec
        assert decided_offline is not asks_server(spec, licensee_archived=licensee_archived), spec
        assert prompt_offline is not prompt_asks_server(spec, licensee_archived=licensee_archived), spec
        if answer[0]:
            assert records.grant_id == presented.grant_id == offline.grant_id == prompted.grant_id, spec


# Every combination of one grant, on every path ------------------------------------------------------

ONE_GRANT = [
    CharacterSpec(character, (GrantSpec(state, window, key),))
    for character, state, window, key in itertools.product(CHARACTER_STATES, GRANT_STATES, WINDOWS, KEY_STATES)
]


def test_every_combination_of_one_grant_is_decided_alike_on_every_path(
    own_server: CharterServer, own_clock: ManualClock, admin: charter.Client
) -> None:
    built = build(admin, own_clock, ONE_GRANT, licensee_archived=False)

    check(own_server, own_clock, built, ONE_GRANT, licensee_archived=False)


def test_an_archived_licensee_is_refused_first_on_every_path(
    own_server: CharterServer, own_clock: ManualClock, admin: charter.Client
) -> None:
    # Whatever the character and the grant: every combination of character and grant state (the
    # window and the key, which come after, are drawn by the test below).
    specs = [
        CharacterSpec(character, (GrantSpec(state, "valid", "active"),))
        for character, state in itertools.product(CHARACTER_STATES, GRANT_STATES)
    ]
    built = build(admin, own_clock, specs, licensee_archived=True)

    check(own_server, own_clock, built, specs, licensee_archived=True)


def test_revoked_and_expired_is_revoked_on_every_path(
    own_server: CharterServer, own_clock: ManualClock, admin: charter.Client
) -> None:
    """The disagreement this order ended: GRANT_REVOKED from records, GRANT_EXPIRED elsewhere."""
    spec = CharacterSpec("opted_in", (GrantSpec("revoked", "expired", "active"),))
    built = build(admin, own_clock, [spec], licensee_archived=False)

    found = decide_every_way(own_server, own_clock, built)

    assert {path: _answer(decisions[0][0]) for path, decisions in found.items()} == {
        "records": (False, (DenyReason.GRANT_REVOKED,)),
        "presented": (False, (DenyReason.GRANT_REVOKED,)),
        "offline": (False, (DenyReason.GRANT_REVOKED,)),
        "prompt": (False, (DenyReason.GRANT_REVOKED,)),
        "lean": (False, (DenyReason.GRANT_REVOKED,)),
    }


# Several grants per character, drawn ---------------------------------------------------------------

GRANTS = st.builds(
    GrantSpec,
    st.sampled_from(GRANT_STATES),
    st.sampled_from(WINDOWS),
    st.sampled_from(KEY_STATES),
    st.booleans(),
)
CHARACTERS = st.builds(CharacterSpec, st.sampled_from(CHARACTER_STATES), st.lists(GRANTS, max_size=3).map(tuple))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=st.lists(CHARACTERS, min_size=1, max_size=6), licensee_archived=st.booleans())
def test_several_grants_are_decided_alike_on_every_path(
    own_server: CharterServer,
    own_clock: ManualClock,
    admin: charter.Client,
    specs: list[CharacterSpec],
    licensee_archived: bool,
) -> None:
    built = build(admin, own_clock, specs, licensee_archived=licensee_archived)

    check(own_server, own_clock, built, specs, licensee_archived=licensee_archived)
