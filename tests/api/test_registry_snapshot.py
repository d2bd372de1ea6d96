"""Registry snapshots and local screening (issue 16, part 2), on both backends.

``OfflineService/GetRegistrySnapshot`` pages verify with the key set and hold every character
(archived ones too) with its names, state and owner; a delta holds what changed since a version.
An `OfflineAuthorizer` with ``screen_locally`` screens a prompt itself and gives the server's
answer, character by character (declared, named, named ambiguously, not opted in, archived,
suspended), with the same detections; it keeps the snapshot in its cache directory, so a restart
with Charter unreachable still screens; a snapshot whose cache file or signature was tampered
with is refused with its own reason, never used, never raised.
"""

# ruff: noqa: RUF001  (full-width letters are the point)

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import charter
import pytest
from charter.decision_records import DecisionRecordSigner, generate_key
from charter.decisions import Decision
from charter.envelope import GRANT_PAYLOAD_TYPE, REGISTRY_SNAPSHOT_PAYLOAD_TYPE, sign
from charter.grants import KeyRing
from charter.names import normalize
from charter.offline import OfflineAuthorizer
from charter.offline.cache import SNAPSHOT_FILE_NAME, CacheKey, load_snapshot, save_snapshot
from charter.offline.snapshot import (
    MAX_PAGES,
    PAGE_CHARACTERS,
    Registry,
    SnapshotInvalid,
    SnapshotKeyUnknown,
    fetch,
    pack,
    unpack,
    verify_page,
)
from charter.screen import ScreenIndex
from charter.terms import DenyReason
from charter.v1 import api_key_pb2, character_pb2, grant_pb2, offline_pb2, terms_pb2
from charter.v1 import offline_service_pb2 as osv
from charter.v1.signing_key_pb2 import KeySet, SigningKey
from charter_server.app import CharterServer, build_server
from charter_server.config import Settings
from charter_server.services import registry_snapshots

from .character_helpers import full_width

IMAGE = terms_pb2.USE_TYPE_IMAGE_GENERATION
TEEN = terms_pb2.CONTENT_RATING_TEEN
WAIT = 20.0
STATE = character_pb2.Character


def _marker() -> str:
    return "".join(chr(ord("a") + int(d, 16)) for d in uuid.uuid4().hex[:8])


@pytest.fixture(scope="module")
def admin(keys: Any) -> Iterator[charter.Client]:
    with charter.Client(keys.target, api_key=keys.admin) as client:
        yield client


@pytest.fixture(scope="module")
def generator(keys: Any) -> Iterator[charter.Client]:
    with charter.Client(keys.target, api_key=keys.generator) as client:
        yield client


@pytest.fixture(scope="module")
def cast(admin: charter.Client, keys: Any) -> dict[str, Any]:
    """Characters in every state, named in Latin and kana, one with an ambiguous alias; the
    generator's licensee holds grants of the opted-in ones."""
    base = terms_pb2.Terms(permitted_use_types=[IMAGE], max_content_rating=TEEN)
    made: dict[str, Any] = {}
    for role in ("granted", "ambiguous", "no_grant", "opted_out", "archived", "suspended"):
        name = f"Zq{_marker()} Vex{_marker()}"
        aliases = []
        if role == "ambiguous":
            aliases = [character_pb2.Alias(value=f"Wisp{_marker()}", language="en", ambiguous=True)]
        created = admin.create_character(rights_holder_id=keys.rights_holder_id, canonical_name=name, aliases=aliases)
        if role != "opted_out":
            admin.opt_in(created.id, base)
        if role in ("granted", "ambiguous", "suspended"):
            admin.issue_grant(
                character_id=created.id,
                licensee_id=keys.licensee_id,
                expire_time=datetime.now(UTC) + timedelta(days=30),
            )
        if role == "archived":
            admin.archive_character(created.id)
        elif role == "suspended":
            admin.suspend_character(created.id, reason="staff review")
        made[role] = (created.id, name, aliases[0].value if aliases else "")
    return made


def _authorizer(client: charter.Client, cache_dir: Path | None = None, **options: Any) -> OfflineAuthorizer:
    return OfflineAuthorizer(
        client,
        fetch_bundle=True,
        screen_locally=True,
        cache_dir=cache_dir,
        min_backoff=timedelta(milliseconds=50),
        max_backoff=timedelta(milliseconds=500),
        **options,
    )


def _answers(decision: Decision) -> list[tuple[Any, ...]]:
    return [(c.character_id, c.allowed, c.reasons, c.declared, c.detected) for c in decision.characters]


def _detections(decision: Decision) -> list[tuple[Any, ...]]:
    return [(d.character_id, d.start, d.end, d.rule, d.ambiguous) for d in decision.detections]


def _ring(client: charter.Client) -> KeyRing:
    return KeyRing.from_key_set(client.get_key_set())


def test_snapshot_pages_verify_and_hold_every_character_in_its_state(
    generator: charter.Client, cast: dict[str, Any]
) -> None:
    ring = _ring(generator)
    # Several pages, never more than a reader takes: the database may hold other tests' characters.
    everyone = len(verify_page(generator.get_registry_snapshot(page_size=2000).page, ring).characters)
    page_size = max(4, -(-everyone // (MAX_PAGES // 2)))
    pages, token = [], ""
    while True:
        response = generator.get_registry_snapshot(page_size=page_size, page_token=token)
        pages.append((response.page, verify_page(response.page, ring)))
        token = response.next_page_token
        if not token:
            break

    registry = Registry.assemble(pages, None)

    assert len(pages) > 1 and pages[-1][1].last_page and pages[0][1].since_version == 0
    states = {role: registry.entries[cid].state.name for role, (cid, _, _) in cast.items()}
    assert states == {
        "granted": "OPTED_IN",
        "ambiguous": "OPTED_IN",
        "no_grant": "OPTED_IN",
        "opted_out": "NOT_OPTED_IN",
        "archived": "NOT_OPTED_IN",
        "suspended": "SUSPENDED",
    }
    names = registry.screens[cast["ambiguous"][0]].names
    assert [(n.value, n.ambiguous) for n in names] == [(cast["ambiguous"][1], False), (cast["ambiguous"][2], True)]


def test_a_page_ends_at_its_byte_bound_whatever_the_page_size(
    generator: charter.Client, cast: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A character may have 100 aliases: a page is cut by its bytes too, so it always fits a message.
    monkeypatch.setattr(registry_snapshots, "MAX_PAGE_BYTES", 1)
    ring = _ring(generator)
    pages, token = [], ""
    while len(pages) < 3:
        response = generator.get_registry_snapshot(page_size=2000, page_token=token)
        pages.append(verify_page(response.page, ring))
        token = response.next_page_token

    assert [len(p.characters) for p in pages] == [1, 1, 1]
    assert len({p.characters[0].character_id for p in pages}) == 3
    assert not any(p.last_page for p in pages[:2])


def test_a_registry_is_fetched_in_the_largest_pages_the_server_serves(
    generator: charter.Client, cast: dict[str, Any]
) -> None:
    asked: list[int] = []
    served = generator.get_registry_snapshot

    def recording(**options: Any) -> Any:
        asked.append(options["page_size"])
        return served(**options)

    generator.get_registry_snapshot = recording  # type: ignore[method-assign]
    try:
        registry = fetch(generator, _ring(generator), None)
    finally:
        del generator.get_registry_snapshot

    # So MAX_PAGES pages hold 128,000 characters (the server's default page would halve that).
    assert registry.entries
    assert asked and set(asked) == {PAGE_CHARACTERS} == {registry_snapshots.MAX_PAGE_CHARACTERS}


def test_a_delta_holds_what_changed_and_applies_only_to_its_version(
    admin: charter.Client, generator: charter.Client, cast: dict[str, Any]
) -> None:
    ring = _ring(generator)
    first = generator.get_registry_snapshot(page_size=2000)
    held = Registry.assemble([(first.page, verify_page(first.page, ring))], None)
    character_id = cast["no_grant"][0]
    added = f"Nym{_marker()}"
    admin.update_character(character_id, aliases=[character_pb2.Alias(value=added, language="en")])

    delta = generator.get_registry_snapshot(since_version=held.version)
    claims = verify_page(delta.page, ring)
    applied = Registry.assemble([(delta.page, claims)], held)

    assert claims.since_version == held.version and claims.version > held.version
    assert [c.character_id for c in claims.characters] == [character_id]
    assert added in [n.value for n in applied.screens[character_id].names]
    with pytest.raises(SnapshotInvalid):
        Registry.assemble([(delta.page, claims)], applied)  # not onto another version


def test_pages_that_do_not_make_one_snapshot_are_refused(generator: charter.Client, cast: dict[str, Any]) -> None:
    ring = _ring(generator)

    def pages(count: int) -> list[Any]:
        found, token = [], ""
        for _ in range(count):
            response = generator.get_registry_snapshot(page_size=1, page_token=token)
            found.append((response.page, verify_page(response.page, ring)))
            token = response.next_page_token
        return found

    one, other = pages(3), pages(3)  # (the cast alone is six characters: none of these is the last)

    # Not from the first page; out of order; two snapshots mixed; no last page.
    for wrong in (one[1:], one[::-1], [one[0], other[1], one[2]], one[:2]):
        with pytest.raises(SnapshotInvalid):
            Registry.assemble(wrong, None)


def test_a_delta_comes_in_pages_too(admin: charter.Client, generator: charter.Client, cast: dict[str, Any]) -> None:
    ring = _ring(generator)
    first = generator.get_registry_snapshot(page_size=1)
    version = verify_page(first.page, ring).version
    changed = [cast["no_grant"][0], cast["opted_out"][0]]
    for character_id in changed:
        admin.update_character(character_id, aliases=[character_pb2.Alias(value=f"Nym{_marker()}", language="en")])

    pages, token = [], ""
    while len(pages) < 10:
        response = generator.get_registry_snapshot(since_version=version, page_size=1, page_token=token)
        pages.append(verify_page(response.page, ring))
        token = response.next_page_token
        if not token:
            break

    assert [p.since_version for p in pages] == [version] * len(pages) and pages[-1].last_page
    assert sorted(c.character_id for p in pages for c in p.characters) == sorted(changed)
    assert len({p.snapshot_id for p in pages}) == 1 and [p.page for p in pages] == list(range(len(pages)))


def test_a_page_whose_payload_was_changed_is_refused(generator: charter.Client) -> None:
    page = generator.get_registry_snapshot(page_size=1).page
    page.payload = page.payload[:-1] + bytes([page.payload[-1] ^ 1])

    with pytest.raises(SnapshotInvalid):
        verify_page(page, _ring(generator))


def test_a_page_verifies_only_as_a_snapshot_page_signed_by_a_usable_grant_key() -> None:
    # Pure: the ring decides which keys may sign a page, whatever the page says.
    (grant_seed, grant_public), (log_seed, log_public), (own_seed, _) = generate_key(), generate_key(), generate_key()

    def key(key_id: str, public: bytes, purpose: int) -> SigningKey:
        made = SigningKey(key_id=key_id, public_key=public, state=SigningKey.STATE_ACTIVE, purpose=purpose)
        made.activate_time.FromDatetime(datetime(2026, 1, 1, tzinfo=UTC))
        return made

    listed = [
        key("sk_grants", grant_public, SigningKey.PURPOSE_GRANTS),
        key("sk_log", log_public, SigningKey.PURPOSE_TRANSPARENCY_LOG),
    ]
    ring = KeyRing.from_key_set(KeySet(keys=listed, version="1"))
    revoked = KeyRing.from_key_set(KeySet(keys=listed, revoked_key_ids=["sk_grants"], version="2"))
    claims = offline_pb2.RegistrySnapshotClaims(snapshot_id="rs_" + "0" * 32, version=3, last_page=True)

    def page(key_id: str, seed: bytes, payload_type: str = REGISTRY_SNAPSHOT_PAYLOAD_TYPE) -> Any:
        return sign(claims.SerializeToString(), payload_type, key_id=key_id, private_key=seed)

    assert verify_page(page("sk_grants", grant_seed), ring).version == 3
    with pytest.raises(SnapshotKeyUnknown):
        verify_page(page("sk_log", log_seed), ring)  # the log's key signs checkpoints, never pages
    with pytest.raises(SnapshotKeyUnknown):
        verify_page(page("lk_" + "0" * 32, own_seed), ring)  # a licensee's own key: not Charter's
    # Refused outright (not a key to fetch the key set for): a grant envelope offered as a page,
    # another key's signature under the grant key's id, the grant key once revoked.
    for wrong, with_ring in (
        (page("sk_grants", grant_seed, GRANT_PAYLOAD_TYPE), ring),
        (page("sk_grants", own_seed), ring),
        (page("sk_grants", grant_seed), revoked),
    ):
        with pytest.raises(SnapshotInvalid) as raised:
            verify_page(wrong, with_ring)
        assert type(raised.value) is SnapshotInvalid


def test_registry_events_reach_only_watchers_that_ask(
    admin: charter.Client, generator: charter.Client, cast: dict[str, Any]
) -> None:
    since = generator.get_registry_snapshot(page_size=1)
    version = verify_page(since.page, _ring(generator)).version
    admin.update_character(cast["no_grant"][0], aliases=[character_pb2.Alias(value=f"Nym{_marker()}", language="en")])
    seen: dict[bool, list[int]] = {}
    for registry in (False, True):
        kinds = []
        with generator.watch_revocations(version, timeout=WAIT, registry=registry) as watch:
            for item in watch:
                if isinstance(item, grant_pb2.RevocationEvent):
                    kinds.append(item.kind)
                elif not hasattr(item, "server_time"):
                    continue  # a skip
                else:
                    break  # the first heartbeat: the backlog is over
        seen[registry] = kinds

    assert grant_pb2.RevocationEvent.KIND_REGISTRY_CHANGED not in seen[False]
    assert grant_pb2.RevocationEvent.KIND_REGISTRY_CHANGED in seen[True]


PROMPTS = {
    "every state": "{granted} meets {opted_out}, {archived} and {suspended}",
    "ambiguous only": "a {wisp} drifts over the hill",
    "mixed script": "ポスター: {wide} と {wisp}、ｆｕｌｌ ｗｉｄｔｈ, café, {archived}さん",
}


@pytest.mark.parametrize("prompt", list(PROMPTS))
@pytest.mark.parametrize("declare", [(), ("granted",), ("ambiguous",)])
def test_a_prompt_is_decided_offline_as_the_server_decides_it(
    server: Any, generator: charter.Client, cast: dict[str, Any], prompt: str, declare: tuple[str, ...]
) -> None:
    names = {role: name for role, (_, name, _) in cast.items()}
    text = PROMPTS[prompt].format(wisp=cast["ambiguous"][2], wide=full_width(cast["granted"][1]), **names)
    ids = [cast[role][0] for role in declare]
    with _authorizer(generator) as authorizer:
        assert authorizer.wait_screen(timeout=WAIT)
        offline = authorizer.authorize(character_ids=ids, prompt=text, use_type=IMAGE, content_rating=TEEN)
    server.services.screen.refresh_now()  # the server's own index refreshes every second
    online = generator.authorize(character_ids=ids, prompt=text, use_type=IMAGE, content_rating=TEEN)

    assert offline.offline and not online.offline
    assert (_answers(offline), _detections(offline), offline.allowed) == (
        _answers(online),
        _detections(online),
        online.allowed,
    )


def test_each_request_gets_its_own_flags_from_one_held_grant(
    server: Any, generator: charter.Client, cast: dict[str, Any]
) -> None:
    # One authorizer, one held grant: the character detected, declared and detected, declared
    # only, then detected again; each answer has its own request's flags, as the server's.
    granted, name = cast["granted"][0], cast["granted"][1]
    requests: list[tuple[tuple[str, ...], str]] = [
        ((), name),
        ((granted,), name),
        ((granted,), "a quiet street"),
        ((), name),
    ]
    server.services.screen.refresh_now()
    with _authorizer(generator) as authorizer:
        assert authorizer.wait_screen(timeout=WAIT)
        offline = [
            authorizer.authorize(character_ids=i, prompt=p, use_type=IMAGE, content_rating=TEEN) for i, p in requests
        ]
    online = [generator.authorize(character_ids=i, prompt=p, use_type=IMAGE, content_rating=TEEN) for i, p in requests]

    assert all(decision.offline for decision in offline)
    assert [_answers(decision) for decision in offline] == [_answers(decision) for decision in online]
    flags = [(c.declared, c.detected) for decision in offline for c in decision.characters]
    assert flags == [(False, True), (True, True), (True, False), (False, True)]


def test_a_named_character_without_a_held_grant_is_left_to_the_server(
    server: Any, generator: charter.Client, cast: dict[str, Any]
) -> None:
    # Opted in, no grant held: the server alone knows whether the licensee has one on record.
    text = f"{cast['granted'][1]} and {cast['no_grant'][1]}"
    server.services.screen.refresh_now()
    with _authorizer(generator) as authorizer:
        assert authorizer.wait_screen(timeout=WAIT)
        asked = authorizer.authorize(prompt=text, use_type=IMAGE, content_rating=TEEN)
    online = generator.authorize(prompt=text, use_type=IMAGE, content_rating=TEEN)

    assert not asked.offline
    assert _answers(asked) == _answers(online)
    assert [c.reasons for c in online.characters] == [(), (DenyReason.NO_GRANT,)]


def test_decision_records_name_the_snapshot_a_named_character_was_screened_with(
    generator: charter.Client, keys: Any, cast: dict[str, Any]
) -> None:
    seed, _public = generate_key()
    signer = DecisionRecordSigner(key_id="lk_" + "0" * 32, private_key=seed, licensee_id=keys.licensee_id)
    granted, ambiguous = cast["granted"][0], cast["ambiguous"][0]
    with _authorizer(generator, signer=signer) as authorizer:
        assert authorizer.wait_screen(timeout=WAIT)
        decision = authorizer.authorize(
            character_ids=[ambiguous], prompt=f"{cast['granted'][1]}", use_type=IMAGE, content_rating=TEEN
        )
        version = authorizer.snapshot_version

    records = [offline_pb2.DecisionRecordClaims.FromString(r.payload) for r in decision.decision_records]
    assert decision.offline and version > 0
    # The declared character's record names no snapshot; the one found in the prompt names it.
    assert [(r.character_id, r.snapshot_version) for r in records] == [(ambiguous, ""), (granted, str(version))]


def test_a_new_alias_is_screened_offline_once_its_delta_arrives(
    admin: charter.Client, generator: charter.Client, cast: dict[str, Any]
) -> None:
    character_id = cast["granted"][0]
    added = f"Nym{_marker()}"
    with _authorizer(generator) as authorizer:
        assert authorizer.wait_screen(timeout=WAIT)
        held = authorizer._registry
        before = authorizer.snapshot_version
        admin.update_character(character_id, aliases=[character_pb2.Alias(value=added, language="en")])
        deadline = time.monotonic() + WAIT
        while authorizer.snapshot_version == before and time.monotonic() < deadline:
            time.sleep(0.05)
        registry = authorizer._registry
        decision = authorizer.authorize(prompt=f"draw {added}", use_type=IMAGE, content_rating=TEEN)

    assert decision.offline
    assert [(c.character_id, c.allowed, c.detected) for c in decision.characters] == [(character_id, True, True)]
    # The delta's screen was derived from the previous one (what the delta did not change is
    # the previous generation's), and it is the screen a full build of the registry makes.
    assert held is not None and held.index is not None and held.index._table is not None
    assert registry is not None and registry.index is not None and registry.index._table is not None
    assert registry.deltas > held.deltas
    other = normalize(cast["no_grant"][1])
    assert registry.index._table.values[other] is held.index._table.values[other]
    full = ScreenIndex.build(registry.screens.values())
    assert dict(registry.index.automaton.items()) == dict(full.automaton.items())
    assert (registry.index.names, registry.index.keys) == (full.names, full.keys)


def _kept(generator: charter.Client, cache_dir: Path) -> None:
    """Run an authorizer until its snapshot is in the cache directory."""
    with _authorizer(generator, cache_dir) as authorizer:
        assert authorizer.wait_screen(timeout=WAIT)
    assert (cache_dir / SNAPSHOT_FILE_NAME).exists()


def _restarted_offline(keys: Any, cache_dir: Path, cast: dict[str, Any], also: str = "") -> Decision:
    """A restart from the cache directory with Charter unreachable: the granted character's
    name in a prompt (with ``also``), the character declared too (so that a denial says why)."""
    with charter.Client("127.0.0.1:1", api_key=keys.generator, timeout=2.0) as dead:
        authorizer = _authorizer(dead, cache_dir)
        try:
            authorizer.start(timeout=None)
            # The registry thread's first pass takes the kept snapshot or refuses it; a refused one
            # never screens, so the wait ends there instead of at its 5 s.
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and authorizer._registry_problem is None and not authorizer.can_screen():
                authorizer.wait_screen(timeout=0.05)
            return authorizer.authorize(
                character_ids=[cast["granted"][0]],
                prompt=f"{cast['granted'][1]} waves {also}",
                use_type=IMAGE,
                content_rating=TEEN,
            )
        finally:
            authorizer.close()


def test_a_restart_with_charter_unreachable_screens_from_the_kept_snapshot(
    generator: charter.Client, keys: Any, cast: dict[str, Any], tmp_path: Path
) -> None:
    _kept(generator, tmp_path)

    decision = _restarted_offline(keys, tmp_path, cast)

    assert decision.offline and decision.allowed
    assert [d.character_id for d in decision.detections] == [cast["granted"][0]]


def test_a_damaged_snapshot_file_is_refused_as_a_corrupted_cache(
    generator: charter.Client, keys: Any, cast: dict[str, Any], tmp_path: Path
) -> None:
    _kept(generator, tmp_path)
    path = tmp_path / SNAPSHOT_FILE_NAME
    data = bytearray(path.read_bytes())
    data[-5] ^= 1
    path.write_bytes(bytes(data))

    decision = _restarted_offline(keys, tmp_path, cast)

    assert not decision.allowed
    assert [c.reasons for c in decision.characters] == [(DenyReason.CACHE_CORRUPTED,)]


def test_a_kept_snapshot_whose_signature_fails_is_refused(
    generator: charter.Client, keys: Any, cast: dict[str, Any], tmp_path: Path
) -> None:
    _kept(generator, tmp_path)
    body = load_snapshot(tmp_path, CacheKey.of_api_key(keys.generator))
    assert body is not None
    pages = unpack(body)
    # A name taken out of the first page, the file's digest made to match: only the signature tells.
    pages[0].payload = pages[0].payload.replace(cast["granted"][1].encode(), b"Z" * len(cast["granted"][1]))
    save_snapshot(tmp_path, CacheKey.of_api_key(keys.generator), keys.licensee_id, pack(pages))

    decision = _restarted_offline(keys, tmp_path, cast)

    assert not decision.allowed
    assert [c.reasons for c in decision.characters] == [(DenyReason.SNAPSHOT_INVALID,)]


def test_a_kept_snapshot_body_that_does_not_unpack_is_refused_as_a_corrupted_cache(
    generator: charter.Client, keys: Any, cast: dict[str, Any], tmp_path: Path
) -> None:
    _kept(generator, tmp_path)
    body = load_snapshot(tmp_path, CacheKey.of_api_key(keys.generator))
    assert body is not None
    # The digest made to match each time: a length cut short, then a frame that is no envelope.
    for wrong in (body + b"\x00\x00", body + b"\x00\x00\x00\x02\xff\xff"):
        save_snapshot(tmp_path, CacheKey.of_api_key(keys.generator), keys.licensee_id, wrong)
        with pytest.raises(ValueError):
            unpack(wrong)

        decision = _restarted_offline(keys, tmp_path, cast)

        assert not decision.allowed
        assert [c.reasons for c in decision.characters] == [(DenyReason.CACHE_CORRUPTED,)]


def test_a_kept_snapshot_older_than_the_one_the_state_was_current_with_is_not_screened_with(
    admin: charter.Client, generator: charter.Client, keys: Any, cast: dict[str, Any], tmp_path: Path
) -> None:
    _kept(generator, tmp_path)
    older = load_snapshot(tmp_path, CacheKey.of_api_key(keys.generator))
    newcomer = admin.create_character(
        rights_holder_id=keys.rights_holder_id, canonical_name=f"Zq{_marker()} Vex{_marker()}"
    )
    with _authorizer(generator, tmp_path) as authorizer:  # takes the delta naming it; the state is kept at close
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and newcomer.id not in getattr(authorizer._registry, "entries", {}):
            time.sleep(0.05)
        assert authorizer.wait_screen(timeout=WAIT)
        assert authorizer._registry is not None and newcomer.id in authorizer._registry.entries
    # The newer snapshot's write failed (a full disk, a backup restored): the older one is kept.
    assert older is not None
    save_snapshot(tmp_path, CacheKey.of_api_key(keys.generator), keys.licensee_id, older)

    decision = _restarted_offline(keys, tmp_path, cast, also=f"with {newcomer.canonical_name}")

    # Screened with the older snapshot, the prompt would be allowed: it does not know the newcomer.
    assert not decision.allowed
    assert [c.reasons for c in decision.characters] == [(DenyReason.SNAPSHOT_STALE,)]


def test_a_kept_snapshot_of_a_version_beyond_the_servers_log_is_never_current_and_is_replaced(
    server: Any, admin: charter.Client, generator: charter.Client, keys: Any, cast: dict[str, Any], tmp_path: Path
) -> None:
    # Kept from a log the server's is now behind (its database restored from a backup): signed by
    # the server's own key, but no heartbeat of this log can vouch for its version.
    beyond = 10**9
    signer = server.services.keys.signer()
    pages, token = [], ""
    while not pages or token:
        response = generator.get_registry_snapshot(page_size=2000, page_token=token)
        claims = verify_page(response.page, _ring(generator))
        claims.version += beyond
        pages.append(
            sign(
                claims.SerializeToString(),
                REGISTRY_SNAPSHOT_PAYLOAD_TYPE,
                key_id=signer.key_id,
                private_key=signer.signing_key,
            )
        )
        token = response.next_page_token
    save_snapshot(tmp_path, CacheKey.of_api_key(keys.generator), keys.licensee_id, pack(pages))
    newcomer = admin.create_character(
        rights_holder_id=keys.rights_holder_id, canonical_name=f"Zq{_marker()} Vex{_marker()}"
    )
    granted, name = cast["granted"][0], cast["granted"][1]

    with _authorizer(generator, tmp_path) as authorizer:
        assert authorizer.wait_screen(timeout=WAIT)
        version = authorizer.snapshot_version
        decision = authorizer.authorize(
            character_ids=[granted],
            prompt=f"{name} with {newcomer.canonical_name}",
            use_type=IMAGE,
            content_rating=TEEN,
        )

    assert version < beyond
    assert decision.offline
    assert [(c.character_id, c.reasons) for c in decision.characters] == [
        (granted, ()),
        (newcomer.id, (DenyReason.CHARACTER_NOT_OPTED_IN,)),
    ]


class _CutOff(charter.Client):
    """The real client, but once ``cut`` is set, snapshots and Authorize fail as if Charter could
    not be reached (the revocation stream, already open, stays current)."""

    cut = False

    def get_registry_snapshot(self, **kwargs: Any) -> osv.GetRegistrySnapshotResponse:
        if self.cut:
            raise charter.UnavailableError("cut off")
        return super().get_registry_snapshot(**kwargs)

    def authorize(self, **kwargs: Any) -> Decision:
        if self.cut:
            raise charter.UnavailableError("cut off")
        return super().authorize(**kwargs)


def test_a_snapshot_that_cannot_catch_up_is_used_until_the_staleness_bound_then_denied_stale(
    admin: charter.Client, keys: Any, cast: dict[str, Any]
) -> None:
    # The heartbeat comes every 5 s on the session's server, so the bound is above it.
    bound = timedelta(seconds=7)
    character_id, name = cast["granted"][0], cast["granted"][1]
    with _CutOff(keys.target, api_key=keys.generator) as client, _authorizer(client, max_staleness=bound) as authorizer:
        assert authorizer.wait_screen(timeout=WAIT)
        client.cut = True
        admin.update_character(
            cast["no_grant"][0], aliases=[character_pb2.Alias(value=f"Nym{_marker()}", language="en")]
        )
        changed = time.monotonic()

        def decide() -> Decision:
            return authorizer.authorize(
                character_ids=[character_id], prompt=f"{name} waves", use_type=IMAGE, content_rating=TEEN
            )

        within = decide()
        deadline = changed + bound.total_seconds() + 6
        late = within
        while time.monotonic() < deadline and late.allowed:
            time.sleep(0.2)
            late = decide()
        denied = time.monotonic()
        declared = authorizer.authorize(character_ids=[character_id], use_type=IMAGE, content_rating=TEEN)

    assert within.offline and within.allowed  # current as of the heartbeat before the change
    assert [c.reasons for c in late.characters] == [(DenyReason.SNAPSHOT_STALE,)]
    # The bound counts from the last heartbeat before the change: at most 5 s (one interval) earlier.
    assert bound.total_seconds() - 5.5 <= denied - changed <= bound.total_seconds() + 6
    assert declared.offline and declared.allowed  # the revocation view itself is current


class _Tampering(charter.Client):
    """The real client, with every registry snapshot page's payload changed in transit."""

    def get_registry_snapshot(self, **kwargs: Any) -> osv.GetRegistrySnapshotResponse:
        response = super().get_registry_snapshot(**kwargs)
        response.page.payload = response.page.payload + b"\x00"
        return response


def test_a_snapshot_from_the_server_that_does_not_verify_is_never_used(keys: Any, cast: dict[str, Any]) -> None:
    with _Tampering(keys.target, api_key=keys.generator) as client, _authorizer(client) as authorizer:
        assert not authorizer.wait_screen(timeout=2.0)
        decision = authorizer.authorize(
            character_ids=[cast["granted"][0]], prompt=f"{cast['granted'][1]}", use_type=IMAGE, content_rating=TEEN
        )

    # Not screened here: the server decided (and would have been denied SNAPSHOT_INVALID if down).
    assert not decision.offline and decision.allowed
    assert authorizer.snapshot_version == 0


class _Replaying(charter.Client):
    """The real client; once ``replay`` is set, every snapshot request is answered with the pages
    of the first whole snapshot it passed on (signed, but older), as a man in the middle could."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.replay = False
        self.kept: list[osv.GetRegistrySnapshotResponse] = []
        self.whole = False  # the first whole snapshot is kept

    def get_registry_snapshot(self, **kwargs: Any) -> osv.GetRegistrySnapshotResponse:
        if self.replay:
            return self.kept[int(kwargs.get("page_token") or 0)]
        response = super().get_registry_snapshot(**kwargs)
        if not kwargs.get("since_version") and not self.whole:
            more = str(len(self.kept) + 1) if response.next_page_token else ""
            self.kept.append(osv.GetRegistrySnapshotResponse(page=response.page, next_page_token=more))
            self.whole = not more
        return response


def test_an_older_snapshot_replayed_never_replaces_the_newer_one_held(
    admin: charter.Client, keys: Any, cast: dict[str, Any]
) -> None:
    character_id = cast["no_grant"][0]
    with _Replaying(keys.target, api_key=keys.generator) as client, _authorizer(client) as authorizer:
        assert authorizer.wait_screen(timeout=WAIT)
        first = authorizer.snapshot_version
        admin.update_character(character_id, aliases=[character_pb2.Alias(value=f"Nym{_marker()}", language="en")])
        deadline = time.monotonic() + WAIT
        while authorizer.snapshot_version == first and time.monotonic() < deadline:
            time.sleep(0.05)
        newer = authorizer.snapshot_version
        client.replay = True
        admin.update_character(character_id, aliases=[character_pb2.Alias(value=f"Nym{_marker()}", language="en")])
        deadline = time.monotonic() + WAIT
        while authorizer._registry_problem is None and time.monotonic() < deadline:
            time.sleep(0.05)
        problem, after = authorizer._registry_problem, authorizer.snapshot_version

    assert newer > first
    assert (problem, after) == (DenyReason.SNAPSHOT_INVALID, newer)


@contextmanager
def _own_database(database_url: str, folder: Path) -> Iterator[str]:
    """An empty database of ``database_url``'s backend (a new one next to it), dropped afterwards."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{folder / 'charter.db'}"
        return
    import psycopg

    admin = database_url.replace("postgresql+psycopg://", "postgresql://")
    name = f"charter_keys_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{database_url.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def own_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CharterServer]:
    """A server of its own, on a database of its own of each backend: the test revokes a signing key."""
    with _own_database(database_url, tmp_path_factory.mktemp("registry_keys")) as url:
        built = build_server(
            Settings(
                listen="127.0.0.1:0",
                database_url=url,
                migrate=True,
                log_format="json",
                shutdown_grace_seconds=1.0,
                revocation_heartbeat_seconds=0.2,
                authorization_lease_seconds=0.05,
                preload=False,
            )
        )
        built.start()
        try:
            yield built
        finally:
            built.stop(grace=0)


def _kept_keys(cache_dir: Path, api_key: str) -> set[str]:
    """The keys that signed the pages kept in the cache directory (by the client of ``api_key``)."""
    return {page.signatures[0].keyid for page in unpack(load_snapshot(cache_dir, CacheKey.of_api_key(api_key)) or b"")}


def test_a_kept_snapshot_signed_by_a_key_revoked_since_is_dropped_and_fetched_again(
    own_server: CharterServer, tmp_path: Path
) -> None:
    target = f"127.0.0.1:{own_server.port}"
    secret = own_server.services.access.create_bootstrap_admin("keys").secret
    with charter.Client(target, api_key=secret) as staff:
        holder = staff.create_rights_holder(display_name="Studio", contact_email="rights@studio.example")
        licensee = staff.create_licensee(display_name="App", contact_email="ops@app.example", platform="app")
        created = staff.create_character(rights_holder_id=holder.id, canonical_name=f"Zq{_marker()}")
        generator = staff.create_api_key(
            display_name="gen", role=api_key_pb2.ROLE_GENERATOR, licensee_id=licensee.id
        ).secret
        first_key = staff.rotate_signing_key().active_key.key_id
        with charter.Client(target, api_key=generator) as client:
            authorizer = _authorizer(client, tmp_path, key_refresh=timedelta(seconds=1))
            with authorizer:
                assert authorizer.wait_screen(timeout=WAIT)
                signed_by = _kept_keys(tmp_path, generator)
                deadline = time.monotonic() + WAIT
                while not signed_by and time.monotonic() < deadline:  # written just after it is used
                    time.sleep(0.05)
                    signed_by = _kept_keys(tmp_path, generator)
                staff.rotate_signing_key()
                staff.revoke_signing_key(first_key, reason="compromised")
                deadline = time.monotonic() + WAIT
                kept: set[str] = signed_by
                while kept == signed_by and time.monotonic() < deadline:
                    time.sleep(0.1)
                    kept = _kept_keys(tmp_path, generator)
                screened = authorizer.wait_screen(timeout=WAIT)
                decision = authorizer.authorize(prompt=f"{created.canonical_name}", use_type=IMAGE, content_rating=TEEN)

    assert signed_by == {first_key}
    assert kept and first_key not in kept  # fetched again, signed by the new key
    assert screened and decision.offline
    assert [(c.character_id, c.reasons) for c in decision.characters] == [
        (created.id, (DenyReason.CHARACTER_NOT_OPTED_IN,))
    ]
